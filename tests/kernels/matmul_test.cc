// Every type x every compiled ISA against matmul_reference on the dequantized weights.
// Tolerances come from the arithmetic, per output element:
//  - float weights: fp32 accumulation of K products, |err| <= gamma_K * sum|w x| with
//    gamma_K = K * 2^-24 (Higham's bound; FMA only tightens it).
//  - quantized weights: x is replaced by x^ = s*q with |x - x^| <= s/2 per 32-block, so
//    |y - y_ref| <= sum_i |w_i| s_b(i) / 2, plus fp32 rounding of the per-block and per-group
//    sums: (K/32 + 8) * 2^-23 * sum_i |w_i x^_i|.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "kernels/error.h"
#include "kernels/isa.h"
#include "kernels/matmul_impl.h"
#include "kernels/quantize.h"
#include "kernels/thread_pool.h"
#include "tests/kernels/test_util.h"

namespace lowbit {
namespace {

using test::AlignedBytes;

struct Case {
  QType type;
  int64_t m, k;
  Isa isa;
};

std::string case_name(const testing::TestParamInfo<Case>& info) {
  const Case& c = info.param;
  return type_name(c.type) + "_m" + std::to_string(c.m) + "_k" + std::to_string(c.k) + "_" + isa_name(c.isa);
}

// What GoogleTest prints for GetParam() in a failure message: the case, not its bytes.
void PrintTo(const Case& c, std::ostream* os) {
  *os << type_name(c.type) << " m=" << c.m << " k=" << c.k << " " << isa_name(c.isa);
}

class Matmul : public testing::TestWithParam<Case> {};

TEST_P(Matmul, MatchesReference) {
  const Case c = GetParam();
  const int64_t n = 37;  // odd, and not a multiple of any row tile
  const auto w = test::matmul_test_weights(n, c.k);
  const auto x = test::random_matrix(c.m, c.k, 5 + (uint32_t)c.m);
  AlignedBytes buf(q_layout(c.type, n, c.k).bytes);
  quantize(c.type, w.data(), n, c.k, buf.data());
  const QMatrix qm{c.type, n, c.k, buf.data()};

  std::vector<float> got(c.m * n, NAN);  // poisoned: every element must be written
  ThreadPool pool(2);
  matmul(qm, x.data(), c.m, got.data(), {c.isa, &pool});
  const bool f32_acts = runs_q_in_f32(kernels_for(resolve_isa(c.isa)), c.type, c.m);
  EXPECT_TRUE(test::matches_reference(qm, x.data(), c.m, got, c.k / 32.0 + 8, f32_acts));
}

std::vector<Case> cases() {
  std::vector<QType> types = test::all_quant_types();
  for (const QType& t : test::float_types()) types.push_back(t);
  std::vector<Case> out;
  for (Isa isa : available_isas())
    for (const QType& t : types)
      for (int64_t m : {1, 2, 3, 7, 32, 100})
        for (int64_t k : {32, 64, 172, 384, 4096}) {
          // Keep the sweep's cost bounded: the largest M only with the two smaller K; 384 (12
          // blocks: decode rows that end on half of the 8-block step) only at M <= 3.
          if (m == 100 && k == 4096) continue;
          if (k == 384 && m > 3) continue;
          out.push_back({t, m, k, isa});
        }
  return out;
}

INSTANTIATE_TEST_SUITE_P(All, Matmul, testing::ValuesIn(cases()), case_name);

// The fp32 prefill path (runs_q_in_f32) on shapes the sweep above leaves out: K over several
// slices and ending inside one (300, 4096 + 172), activation rows that are not whole micro-tiles
// (the 6-row kernel) and weight rows that are not whole 16-row panels, with the tight bound of
// fp32 activations. Where no compiled ISA has the path, nothing runs it and the test says so.
TEST(MatmulIsa, F32PrefillPathMatchesReference) {
  ThreadPool pool(2);
  int ran = 0;
  for (Isa isa : available_isas()) {
    const CpuKernels& kern = kernels_for(resolve_isa(isa));
    if (!kern.q_in_f32) continue;
    for (const QType& t : test::all_quant_types())
      for (int64_t k : {300, 4096 + 172}) {
        int64_t m = 0;
        for (int64_t c = 1; c <= 512 && !m; c *= 2)
          if (runs_q_in_f32(kern, t, c)) m = c + 5;
        if (!m) continue;
        const int64_t n = 37;
        const auto w = test::matmul_test_weights(n, k);
        const auto x = test::random_matrix(m, k, 77);
        AlignedBytes buf(q_layout(t, n, k).bytes);
        quantize(t, w.data(), n, k, buf.data());
        const QMatrix qm{t, n, k, buf.data()};
        std::vector<float> got(m * n, NAN);
        matmul(qm, x.data(), m, got.data(), {isa, &pool});
        ASSERT_TRUE(runs_q_in_f32(kern, t, m));
        EXPECT_TRUE(test::matches_reference(qm, x.data(), m, got, 0, true)) << type_name(t) << " k " << k;
        ++ran;
      }
  }
  if (!ran) GTEST_SKIP() << "no compiled ISA runs quantized prefill in fp32";
}

// The same kernel called directly at every width, group and scheme, including those matmul()
// keeps on the int8 tile (the benchmarks time both paths everywhere to choose between them), on
// two row ranges the way the driver splits W: the second starts inside a 16-row panel's stride.
TEST(MatmulIsa, F32PrefillKernelAtEveryWidth) {
  int ran = 0;
  for (Isa isa : available_isas()) {
    const CpuKernels& kern = kernels_for(resolve_isa(isa));
    if (!kern.gemm_q_f32) continue;
    const int64_t n = 37, k = 300, m = 13;
    const auto w = test::matmul_test_weights(n, k);
    const auto x = test::random_matrix(m, k, 78);
    for (const QType& t : test::all_quant_types()) {
      AlignedBytes buf(q_layout(t, n, k).bytes);
      quantize(t, w.data(), n, k, buf.data());
      const QMatrix qm{t, n, k, buf.data()};
      std::vector<float> got(m * n, NAN);
      kern.gemm_q_f32(qm, x.data(), m, got.data(), 0, 20);
      kern.gemm_q_f32(qm, x.data(), m, got.data(), 20, n);
      EXPECT_TRUE(test::matches_reference(qm, x.data(), m, got, 0, true)) << type_name(t) << " " << isa_name(isa);
      ++ran;
    }
  }
  if (!ran) GTEST_SKIP() << "no compiled ISA has a quantized fp32 prefill kernel";
}

// The SIMD kernels add up to 8 code x activation products of a block in 16-bit lanes before
// widening (quad_dot): with every code at its largest and every activation at 127 those sums
// reach their bound (15240 at 4 bits, 32512 for the scaled 1-bit planes), one step short of
// overflow. Weights 1 with a 0 at the start of each group put the codes at the top for every
// scheme (the 0 fixes the asymmetric minimum), constant activations quantize to 127.
TEST(MatmulIsa, LargestIntegerSumsDoNotOverflow) {
  const int64_t n = 8, k = 4096, m = 1;
  std::vector<float> w(n * k), x(m * k, 1.0f);
  for (int64_t i = 0; i < n * k; ++i) w[i] = i % 32 == 0 ? 0.0f : 1.0f;
  for (const QType& t : test::all_quant_types()) {
    AlignedBytes buf(q_layout(t, n, k).bytes);
    quantize(t, w.data(), n, k, buf.data());
    const QMatrix qm{t, n, k, buf.data()};
    for (Isa isa : available_isas()) {
      std::vector<float> got(m * n, NAN);
      matmul(qm, x.data(), m, got.data(), {isa, nullptr});
      EXPECT_TRUE(test::matches_reference(qm, x.data(), m, got, k / 32.0 + 8)) << type_name(t) << " " << isa_name(isa);
    }
  }
}

// The SIMD kernels do the scalar kernel's integer arithmetic; only the order of fp32 sums may
// differ, so they agree to a few ulps of the magnitude.
TEST(MatmulIsa, SimdMatchesScalarIntegerPath) {
  const int64_t n = 64, k = 4096, m = 3;
  auto w = test::random_matrix(n, k, 21);
  auto x = test::random_matrix(m, k, 22);
  for (const QType& t : test::all_quant_types()) {
    AlignedBytes buf(q_layout(t, n, k).bytes);
    quantize(t, w.data(), n, k, buf.data());
    const QMatrix qm{t, n, k, buf.data()};
    std::vector<float> scalar(m * n), simd(m * n);
    matmul(qm, x.data(), m, scalar.data(), {Isa::scalar, nullptr});
    for (Isa isa : available_isas()) {
      matmul(qm, x.data(), m, simd.data(), {isa, nullptr});
      double mag = 0;
      for (float v : scalar) mag = std::max(mag, (double)std::fabs(v));
      for (int64_t i = 0; i < m * n; ++i)
        ASSERT_NEAR(simd[i], scalar[i], (k / 32.0 + 8) * std::ldexp(1.0, -22) * (mag + 1) * 8)
            << type_name(t) << " " << isa_name(isa) << " at " << i;
    }
  }
}

// MatmulOptions::int8_acts keeps quantized weights on the integer path at every M: at a prefill
// size where an ISA would switch to fp32, the result is the scalar integer kernel's to a few
// ulps (as in SimdMatchesScalarIntegerPath), and without it, the fp32 path's (tight bound).
TEST(MatmulIsa, Int8ActsOptionKeepsTheIntegerPath) {
  const int64_t n = 40, k = 1024, m = 130;
  auto w = test::random_matrix(n, k, 23);
  auto x = test::random_matrix(m, k, 24);
  int ran = 0;
  for (const QType& t : test::all_quant_types()) {
    AlignedBytes buf(q_layout(t, n, k).bytes);
    quantize(t, w.data(), n, k, buf.data());
    const QMatrix qm{t, n, k, buf.data()};
    std::vector<float> scalar(m * n), simd(m * n), fp(m * n);
    matmul(qm, x.data(), m, scalar.data(), {Isa::scalar, nullptr});
    double mag = 0;
    for (float v : scalar) mag = std::max(mag, (double)std::fabs(v));
    for (Isa isa : available_isas()) {
      if (!runs_q_in_f32(kernels_for(resolve_isa(isa)), t, m)) continue;
      matmul(qm, x.data(), m, simd.data(), {isa, nullptr, true});
      for (int64_t i = 0; i < m * n; ++i)
        ASSERT_NEAR(simd[i], scalar[i], (k / 32.0 + 8) * std::ldexp(1.0, -22) * (mag + 1) * 8)
            << type_name(t) << " " << isa_name(isa) << " at " << i;
      matmul(qm, x.data(), m, fp.data(), {isa, nullptr});
      EXPECT_TRUE(test::matches_reference(qm, x.data(), m, fp, 0, true)) << type_name(t);
      ++ran;
    }
  }
  if (!ran) GTEST_SKIP() << "no compiled ISA runs quantized prefill in fp32";
}

// matmul_many runs the same kernels on the same row split as one matmul() per matrix, with one
// activation quantization: its outputs must be identical, bit for bit, whether the matrices share
// it (same group size), fall back to separate matmuls (different group sizes, float with
// quantized), or are float; at M = 130, where AVX2 runs 8-bit matrices with groups in fp32, an
// 8-bit and a float matrix share the fp32 path.
TEST(MatmulMany, IdenticalToSeparateMatmuls) {
  const int64_t k = 172 + 256;
  auto qt = [](uint8_t bits, Scheme s, uint32_t g) { return QType{Base::q, bits, s, g}; };
  const std::vector<std::vector<QType>> sets = {
      {qt(4, Scheme::asym, 32), qt(4, Scheme::asym, 32), qt(4, Scheme::asym, 32)},  // q, k, v
      {qt(8, Scheme::sym, 32), qt(2, Scheme::sym, 32)},                              // same group
      {qt(4, Scheme::sym, 64), qt(4, Scheme::sym, 128), qt(1, Scheme::asym, 0)},     // fallback
      {{Base::f16, 16}, {Base::f32, 32}},
      {qt(4, Scheme::asym, 32), {Base::bf16, 16}},
      {qt(8, Scheme::sym, 128), {Base::f16, 16}},
  };
  ThreadPool pool(2);
  for (const auto& types : sets)
    for (int64_t m : {1, 5, 130})
      for (Isa isa : available_isas()) {
        const int64_t rows[3] = {96, 33, 40};
        std::vector<AlignedBytes> bufs;
        std::vector<std::vector<float>> together, apart;
        std::vector<MatmulOut> outs;
        auto x = test::random_matrix(m, k, 31);
        for (size_t i = 0; i < types.size(); ++i) {
          auto w = test::random_matrix(rows[i], k, 40 + (uint32_t)i);
          bufs.emplace_back(q_layout(types[i], rows[i], k).bytes);
          quantize(types[i], w.data(), rows[i], k, bufs.back().data());
          together.emplace_back(m * rows[i], NAN);
          apart.emplace_back(m * rows[i], NAN);
        }
        for (size_t i = 0; i < types.size(); ++i) {
          const QMatrix qm{types[i], rows[i], k, bufs[i].data()};
          outs.push_back({qm, together[i].data()});
          matmul(qm, x.data(), m, apart[i].data(), {isa, &pool});
        }
        matmul_many(outs.data(), (int)outs.size(), x.data(), m, {isa, &pool});
        for (size_t i = 0; i < types.size(); ++i)
          for (int64_t e = 0; e < m * rows[i]; ++e)
            ASSERT_EQ(together[i][e], apart[i][e]) << type_name(types[i]) << " m " << m << " " << isa_name(isa) << " at " << e;
      }
}

// Batched decoding runs N sequences' rows as one matmul and promises each the tokens it gets
// alone, so on the int8 path (and for float weights) a row's result may depend only on that row:
// bit for bit the same as the row multiplied alone (M = 1, the decode kernels), wherever it sits
// in a tile of the M > 1 kernels. Activations are quantized per row and 32-block, so the int8
// inputs are identical; the kernels must then also sum in the same order at every M. Shapes: K
// whole steps of the decode kernel (256, 4096), a half step (384), 18 blocks (576: SmolLM2's
// hidden size; at 4 and 8 bits 2 blocks past the last quad), not a whole group (172), and
// over one K slice of the float tiles (1100); M = 4 and 5 (on x86 one panel of
// matmul_lanes_x86.h, its codes read from the packed rows; in 256-bit registers 4 rows leave the
// second sub-panel out),
// 11 (two 4-row tiles and a remainder; on x86 one 8-row panel and 3 rows of tiles), 12 and 13 (a
// panel and one of 4 or 5 rows: the codes unpacked first) and 80 (a whole group of kPanelActs =
// 64 rows, then a second group).
TEST(MatmulIsa, RowResultsIndependentOfM) {
  const int64_t n = 37;
  ThreadPool pool(2);
  std::vector<QType> types = test::all_quant_types();
  for (const QType& t : test::float_types()) types.push_back(t);
  for (const QType& t : types)
    for (int64_t k : {172, 256, 384, 576, 1100, 4096}) {
      const auto w = test::matmul_test_weights(n, k);
      AlignedBytes buf(q_layout(t, n, k).bytes);
      quantize(t, w.data(), n, k, buf.data());
      const QMatrix qm{t, n, k, buf.data()};
      for (Isa isa : available_isas())
        for (int64_t m : {4, 5, 11, 12, 13, 80}) {
        // The scalar kernel runs one loop per (row, output) whatever M is, so it has no tiles to
        // get wrong; one odd shape keeps it in the test (its whole sweep was most of this test's
        // time, under qemu most of all).
        if (isa == Isa::scalar && (k != 172 || m != 13)) continue;
        const auto x = test::random_matrix(m, k, 90 + (uint32_t)k);
        std::vector<float> all(m * n), one(n);
        matmul(qm, x.data(), m, all.data(), {isa, &pool, true});
        int64_t differ = 0;
        for (int64_t r = 0; r < m; ++r) {
          matmul(qm, &x[r * k], 1, one.data(), {isa, &pool, true});
          for (int64_t j = 0; j < n; ++j) differ += all[r * n + j] != one[j];
        }
        EXPECT_EQ(differ, 0) << type_name(t) << " k " << k << " m " << m << " " << isa_name(isa) << ": elements that differ";
      }
    }
}

// 2-bit decode with VNNI rotates the activations into a stack buffer up to K = 16384 and into a
// per-thread heap buffer past it: a row past that (16960: also a padded last chunk at groups of
// 32 and 64) still sums as the M > 1 kernels do, at every 2-bit type and ISA.
TEST(MatmulIsa, LongTwoBitRowsIndependentOfM) {
  const int64_t n = 9, k = 16960, m = 3;
  ThreadPool pool(2);
  const auto w = test::matmul_test_weights(n, k);
  const auto x = test::random_matrix(m, k, 7);
  for (Isa isa : available_isas())
    for (const QType& t : test::all_quant_types()) {
      if (t.bits != 2) continue;
      AlignedBytes buf(q_layout(t, n, k).bytes);
      quantize(t, w.data(), n, k, buf.data());
      const QMatrix qm{t, n, k, buf.data()};
      std::vector<float> all(m * n), one(n);
      matmul(qm, x.data(), m, all.data(), {isa, &pool, true});
      EXPECT_TRUE(test::matches_reference(qm, x.data(), m, all, k / 32.0 + 8)) << type_name(t) << " " << isa_name(isa);
      int64_t differ = 0;
      for (int64_t r = 0; r < m; ++r) {
        matmul(qm, &x[r * k], 1, one.data(), {isa, &pool, true});
        for (int64_t j = 0; j < n; ++j) differ += all[r * n + j] != one[j];
      }
      EXPECT_EQ(differ, 0) << type_name(t) << " " << isa_name(isa) << ": elements that differ";
    }
}

TEST(MatmulMany, RejectsDifferentK) {
  AlignedBytes a(q_layout({Base::f32, 32}, 4, 64).bytes), b(q_layout({Base::f32, 32}, 4, 32).bytes);
  std::vector<float> x(64), y1(4), y2(4);
  const MatmulOut outs[2] = {{{{Base::f32, 32}, 4, 64, a.data()}, y1.data()}, {{{Base::f32, 32}, 4, 32, b.data()}, y2.data()}};
  EXPECT_THROW(matmul_many(outs, 2, x.data(), 1), Error);
}

// Every ISA's activation quantizer gives the reference's bytes, scales and block sums: the
// kernels' agreement above rests on it. Rows include a partial last block, an all-zero block,
// values whose scaled product lands on .5 (round half to even decides), and large magnitudes.
TEST(MatmulIsa, ActivationQuantizationIdentical) {
  for (int64_t k : {32, 172, 4096}) {
    const int64_t m = 3;
    auto x = test::random_matrix(m, k, 77 + (uint32_t)k);
    for (int64_t i = 0; i < std::min<int64_t>(32, k); ++i) x[k + i] = 0.0f;  // row 1, block 0
    // Row 2, block 0: absmax 127 makes the multiplier exactly 1, so 2.5 and -0.5 are ties.
    x[2 * k] = 127.0f, x[2 * k + 1] = 2.5f, x[2 * k + 2] = -0.5f, x[2 * k + 3] = 3.5f;
    for (int64_t i = 32; i < k; ++i) x[2 * k + i] *= 1e30f;
    QuantizedActs ref;
    quantize_acts(x.data(), m, k, ref);
    for (Isa isa : available_isas()) {
      QuantizedActs got;
      quantize_acts(x.data(), m, k, got, kernels_for(isa));
      EXPECT_EQ(got.q, ref.q) << isa_name(isa) << " k " << k;
      EXPECT_EQ(got.scale, ref.scale) << isa_name(isa) << " k " << k;
      EXPECT_EQ(got.bsum, ref.bsum) << isa_name(isa) << " k " << k;
    }
  }
  QuantizedActs tie;
  const float x[32] = {127.0f, 2.5f, -0.5f, 3.5f};
  quantize_acts(x, 1, 32, tie);
  EXPECT_EQ(tie.q[1], 2);   // 2.5 -> 2, not 3
  EXPECT_EQ(tie.q[2], 0);   // -0.5 -> -0
  EXPECT_EQ(tie.q[3], 4);   // 3.5 -> 4
}

TEST(MatmulIsa, ForcedIsaNames) {
  EXPECT_EQ(resolve_isa(Isa::scalar), Isa::scalar);
  EXPECT_THROW(parse_isa("sse9"), Error);
  EXPECT_EQ(parse_isa("auto"), Isa::automatic);
  for (Isa i : kIsas) EXPECT_EQ(parse_isa(isa_name(i)), i);
  for (Isa i : available_isas()) EXPECT_TRUE(isa_supported(i));
}

// The default takes 512-bit registers only where they run at full rate, which the vendor and
// family in /proc/cpuinfo say independently of CPUID's reading in isa.cc.
TEST(MatmulIsa, ZmmOnlyWhereFullRate) {
#if !defined(__x86_64__)
  EXPECT_FALSE(zmm_full_rate());  // (under qemu /proc/cpuinfo is the x86 host's: not this CPU)
  GTEST_SKIP() << "not an x86-64 build";
#endif
  std::ifstream in("/proc/cpuinfo");
  std::string line, vendor;
  int family = -1;
  while (std::getline(in, line) && (vendor.empty() || family < 0)) {
    const auto value = [&] { return line.substr(line.find(':') + 2); };
    if (line.rfind("vendor_id", 0) == 0) vendor = value();
    if (line.rfind("cpu family", 0) == 0) family = std::stoi(value());
  }
  if (vendor.empty() || family < 0) GTEST_SKIP() << "no x86 vendor and family in /proc/cpuinfo";
  EXPECT_EQ(zmm_full_rate(), vendor == "GenuineIntel" || (vendor == "AuthenticAMD" && family >= 0x1a))
      << vendor << " family " << family;
  const char* forced = std::getenv("LOWBIT_ISA");
  if (isa_supported(Isa::avx512zmm) && !(forced && *forced))
    EXPECT_EQ(default_isa(), zmm_full_rate() ? Isa::avx512zmm : Isa::avx512);
}

// The ISA tests above check every ISA this host runs; CI hosts differ, so the output says which
// ran here and which compiled ones this CPU could not run (their kernels went untested).
TEST(MatmulIsa, SaysWhichIsasRan) {
  std::string ran, not_here;
  for (Isa i : kIsas) {
    if (isa_supported(i)) ran += std::string(ran.empty() ? "" : " ") + isa_name(i);
    else if (isa_compiled(i)) not_here += std::string(not_here.empty() ? "" : " ") + isa_name(i);
  }
  std::printf("[ ISAs     ] tested on this host: %s; compiled but not run (this CPU lacks them): %s\n", ran.c_str(),
              not_here.empty() ? "none" : not_here.c_str());
  RecordProperty("isas_tested", ran);
  RecordProperty("isas_not_run", not_here);
  EXPECT_FALSE(ran.empty());
}

}  // namespace
}  // namespace lowbit
