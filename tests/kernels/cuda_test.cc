// The CUDA backend (kernels/cuda_backend.h, kernels/matmul.cu) against matmul_reference on the
// dequantized weights, for every type x M x K. The type x M x K cases are registered only when a
// device answers, so a machine without one lists a single skipped CudaBackend.GpuCases that says
// why (and CudaBackend.ExplainsUnavailability checks the reason) instead of ~1,200 skipped cases;
// ctest lists this binary's tests when it runs (tests/CMakeLists.txt: DISCOVERY_MODE PRE_TEST),
// so a build tree taken to a GPU machine runs them all there.
//
// Tolerances, per output element, as in matmul_test.cc:
//  - float weights: fp32 accumulation of K products, |err| <= gamma_K * sum|w x|, gamma_K =
//    K * 2^-24 (any summation order; the GPU's warp tree only tightens it).
//  - quantized weights: the GPU quantizes x exactly as quantize_acts() (same scale, same
//    rounding, so the same x^ = s*q), hence |y - y_ref| <= sum_i |w_i| s_b(i) / 2 plus fp32
//    rounding. The CPU bound counts K/32 + 8 fp32 terms; the GPU adds up to twice as many
//    (the GEMV sums half-block partials, 16 weights per lane and plane) and reduces them over
//    5 shuffle levels and 4 warps, so the rounding term is (K/16 + 16) * 2^-23 * sum|w x^|.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels/cuda_backend.h"
#include "kernels/matmul_impl.h"
#include "kernels/quantize.h"
#include "tests/kernels/test_util.h"

namespace lowbit {
namespace {

using test::AlignedBytes;

// The plugin is built next to the build tree's root, the test binary under tests/: point the
// loader at it unless the caller already did.
const CudaBackend* backend(std::string* why) {
#ifdef LOWBIT_BINARY_DIR
  setenv("LOWBIT_CUDA_LIB", LOWBIT_BINARY_DIR "/" LOWBIT_CUDA_LIBRARY, 0);
#endif
  return cuda_backend(why);
}

// Why there is no backend here, in a few words; empty when there is one.
const std::string& unavailable() {
  static const std::string why = [] {
    std::string w;
    if (backend(&w)) return std::string();
#ifndef LOWBIT_HAVE_CUDA
    // The plugin's loader would say "not found": this build left CUDA out on purpose.
    return std::string("this build has no CUDA backend (LOWBIT_CUDA=OFF, or no nvcc at configure time)");
#else
    return "no CUDA device: " + w;
#endif
  }();
  return why;
}

#define SKIP_WITHOUT_CUDA(be)            \
  const CudaBackend* be = backend(nullptr); \
  if (!be) GTEST_SKIP() << unavailable()

// Weights uploaded for one test; freed on scope exit.
struct DeviceWeights {
  const CudaBackend* be;
  LowbitCudaMatrix* w = nullptr;
  DeviceWeights(const CudaBackend* b, const QMatrix& m) : be(b) {
    const LowbitCudaWeightDesc d = cuda_weight_desc(m);
    EXPECT_EQ(be->upload(&d, m.data, (uint64_t)q_layout(m.type, m.n, m.k).bytes, &w), 0) << be->last_error();
  }
  ~DeviceWeights() { be->free_matrix(w); }
};

TEST(CudaBackend, ExplainsUnavailability) {
  std::string why;
  const CudaBackend* be = backend(&why);
  std::string again;
  EXPECT_EQ(backend(&again), be) << "loaded once per process";
  if (!be) {
    ASSERT_FALSE(why.empty());
    EXPECT_EQ(why, again);
    const bool known = why.find("not found") != std::string::npos || why.find("driver") != std::string::npos ||
                       why.find("device") != std::string::npos || why.find("ABI") != std::string::npos ||
                       why.find("disabled") != std::string::npos;
    EXPECT_TRUE(known) << why;
    std::printf("CUDA backend unavailable: %s\n", unavailable().c_str());
    return;
  }
  EXPECT_TRUE(why.empty()) << why;
  EXPECT_EQ(be->abi_version, LOWBIT_CUDA_ABI_VERSION);
  int count = 0;
  ASSERT_EQ(be->device_count(&count), 0) << be->last_error();
  ASSERT_GE(count, 1);
  LowbitCudaDeviceInfo info;
  ASSERT_EQ(be->device_info(0, &info), 0) << be->last_error();
  EXPECT_GE(info.cc_major, 8) << "kernels are built for sm_80 and sm_90";
  std::printf("CUDA device 0: %s, sm_%d%d, %d SMs, %.1f GiB, %.0f GB/s peak; plugin %s\n", info.name,
              info.cc_major, info.cc_minor, info.sm_count, info.total_bytes / 1073741824.0, info.peak_gbps,
              be->build);
}

TEST(CudaBackend, RejectsBadInput) {
  SKIP_WITHOUT_CUDA(be);
  LowbitCudaWeightDesc d{};
  d.base = (uint8_t)Base::q;
  d.bits = 3;  // no such type
  d.group = 32;
  d.n = d.k = 32;
  uint8_t bytes[4096] = {};
  LowbitCudaMatrix* w = nullptr;
  EXPECT_NE(be->upload(&d, bytes, sizeof(bytes), &w), 0);
  EXPECT_EQ(w, nullptr);
  EXPECT_STRNE(be->last_error(), "");
  d.bits = 4;
  EXPECT_NE(be->upload(&d, bytes, 17, &w), 0) << "wrong byte count";
  EXPECT_NE(be->matmul(nullptr, nullptr, 1, nullptr), 0);
}

struct Case {
  QType type;
  int64_t m, k;
};

std::string case_name(const testing::TestParamInfo<Case>& info) {
  const Case& c = info.param;
  return type_name(c.type) + "_m" + std::to_string(c.m) + "_k" + std::to_string(c.k);
}

class CudaMatmul : public testing::TestWithParam<Case> {};

TEST_P(CudaMatmul, MatchesReference) {
  SKIP_WITHOUT_CUDA(be);
  const Case c = GetParam();
  const int64_t n = 37;  // odd, and not a multiple of the 16-row tensor-core tile
  const auto w = test::matmul_test_weights(n, c.k);
  const auto x = test::random_matrix(c.m, c.k, 5 + (uint32_t)c.m);
  AlignedBytes buf(q_layout(c.type, n, c.k).bytes);
  quantize(c.type, w.data(), n, c.k, buf.data());
  const QMatrix qm{c.type, n, c.k, buf.data()};

  std::vector<float> got(c.m * n, NAN);  // poisoned: every element must be written
  DeviceWeights dw(be, qm);
  ASSERT_NE(dw.w, nullptr);
  ASSERT_EQ(be->matmul(dw.w, x.data(), c.m, got.data()), 0) << be->last_error();
  EXPECT_TRUE(test::matches_reference(qm, x.data(), c.m, got, c.k / 16.0 + 16)) << be->matmul_path(dw.w, c.m);
}

void PrintTo(const Case& c, std::ostream* os) { *os << type_name(c.type) << " m=" << c.m << " k=" << c.k; }

std::vector<Case> all_cases() {
  std::vector<QType> types = test::all_quant_types();
  for (const QType& t : test::float_types()) types.push_back(t);
  std::vector<Case> out;
  for (const QType& t : types)
    for (int64_t m : {1, 2, 3, 7, 16, 32, 100})
      for (int64_t k : {32, 64, 172, 4096}) out.push_back({t, m, k});
  return out;
}

// Evaluated when GoogleTest registers the tests (InitGoogleTest), not at static initialisation.
std::vector<Case> cases() { return unavailable().empty() ? all_cases() : std::vector<Case>{}; }

INSTANTIATE_TEST_SUITE_P(All, CudaMatmul, testing::ValuesIn(cases()), case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CudaMatmul);  // no cases without a device

TEST(CudaBackend, GpuCases) {
  if (!unavailable().empty())
    GTEST_SKIP() << unavailable() << "; the " << all_cases().size() << " CudaMatmul cases are not registered";
  // With a device every case is registered (run or filtered out, they are counted here).
  const testing::UnitTest& u = *testing::UnitTest::GetInstance();
  int registered = 0;
  for (int i = 0; i < u.total_test_suite_count(); ++i)
    if (std::string(u.GetTestSuite(i)->name()) == "All/CudaMatmul") registered = u.GetTestSuite(i)->total_test_count();
  EXPECT_EQ(registered, (int)all_cases().size());
}

// x and y in device memory take the same kernels as host pointers: bit-identical results, and
// the same from run to run (no atomics, fixed reduction order).
TEST(CudaMatmulDevice, DevicePointersMatchHostPointers) {
  SKIP_WITHOUT_CUDA(be);
  const int64_t n = 300, k = 1024;
  auto w = test::random_matrix(n, k, 31);
  for (const QType& t : {parse_type("q4_g32_asym"), parse_type("q2_row_sym"), QType{Base::f16, 16}}) {
    AlignedBytes buf(q_layout(t, n, k).bytes);
    quantize(t, w.data(), n, k, buf.data());
    DeviceWeights dw(be, QMatrix{t, n, k, buf.data()});
    ASSERT_NE(dw.w, nullptr);
    for (int64_t m : {1, 5, 16, 40}) {
      auto x = test::random_matrix(m, k, 32 + (uint32_t)m);
      std::vector<float> host(m * n, NAN), dev(m * n, NAN);
      ASSERT_EQ(be->matmul(dw.w, x.data(), m, host.data()), 0) << be->last_error();
      void *dx = nullptr, *dy = nullptr;
      ASSERT_EQ(be->device_alloc(m * k * sizeof(float), &dx), 0) << be->last_error();
      ASSERT_EQ(be->device_alloc(m * n * sizeof(float), &dy), 0) << be->last_error();
      ASSERT_EQ(be->copy(dx, x.data(), m * k * sizeof(float)), 0) << be->last_error();
      for (int rep = 0; rep < 2; ++rep) {
        ASSERT_EQ(be->copy(dy, dev.data(), m * n * sizeof(float)), 0);  // NaN poison
        ASSERT_EQ(be->matmul(dw.w, static_cast<float*>(dx), m, static_cast<float*>(dy)), 0) << be->last_error();
        std::vector<float> out(m * n);
        ASSERT_EQ(be->copy(out.data(), dy, m * n * sizeof(float)), 0);
        EXPECT_EQ(std::memcmp(out.data(), host.data(), out.size() * sizeof(float)), 0)
            << type_name(t) << " m=" << m << " rep " << rep;
      }
      be->device_free(dx);
      be->device_free(dy);
    }
  }
}

}  // namespace
}  // namespace lowbit
