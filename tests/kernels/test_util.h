// Shared helpers of the kernel tests: random matrices and the types x groups sweep.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <cmath>

#include <gtest/gtest.h>

#include "kernels/matmul_impl.h"
#include "kernels/qtype.h"
#include "kernels/quantize.h"

namespace lowbit::test {

inline std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(rows * cols);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Every quantized type lowbit implements: bits x scheme x group (0 = per row), and the
// asymmetric ones with groups again with 6-bit scale codes.
inline std::vector<QType> all_quant_types() {
  std::vector<QType> out;
  for (const auto& tr : type_table()) {
    if (tr.base != Base::q) continue;
    for (uint32_t g : {32u, 64u, 128u, 256u, 0u}) out.push_back({Base::q, tr.bits, tr.scheme, g});
    if (tr.scheme == Scheme::asym)
      for (uint32_t g : {32u, 64u, 128u, 256u}) out.push_back({Base::q, tr.bits, tr.scheme, g, ScaleCode::c6});
  }
  return out;
}

inline std::vector<QType> float_types() {
  return {{Base::f32, 32}, {Base::f16, 16}, {Base::bf16, 16}};
}

// Matrix storage with the 64-byte alignment weights.bin guarantees.
struct AlignedBytes {
  explicit AlignedBytes(size_t n)
      : size(n), ptr(static_cast<uint8_t*>(std::aligned_alloc(64, ((n + 63) / 64) * 64 + 64)), &std::free) {}
  size_t size;
  std::unique_ptr<uint8_t, decltype(&std::free)> ptr;
  uint8_t* data() { return ptr.get(); }
};

// The largest error a kernel may make on y[r][j] against matmul_reference, from the arithmetic:
//  - float weights: fp32 accumulation of K products, K * 2^-24 * sum|w x| (Higham's gamma_K).
//  - quantized weights: x is replaced by x^ = s*q with |x - x^| <= s/2 per 32-block, so
//    sum_i |w_i| s_b(i) / 2, plus fp32 rounding of the block and group sums:
//    fp32_sums * 2^-23 * sum_i |w_i x^_i|, where fp32_sums counts the sums a kernel chains
//    (K/32 + 8 for the CPU kernels).
// w_row: the dequantized row j; x_row: activation row r; acts: quantize_acts of all of x.
inline double matmul_tolerance(const QType& t, const float* w_row, const float* x_row,
                               const QuantizedActs& acts, int64_t r, int64_t k, double fp32_sums) {
  if (t.base != Base::q) {
    double mag = 0;
    for (int64_t i = 0; i < k; ++i) mag += std::fabs(w_row[i] * x_row[i]);
    return k * std::ldexp(1.0, -24) * mag + 1e-30;
  }
  double step = 0, mag = 0;
  for (int64_t i = 0; i < k; ++i) {
    const float s = acts.scale[r * acts.blocks + i / kActBlock];
    step += std::fabs(w_row[i]) * s / 2;
    mag += std::fabs(w_row[i]) * s * std::abs(acts.q[r * acts.kp + i]);
  }
  return step * 1.0001 + fp32_sums * std::ldexp(1.0, -23) * mag + 1e-30;
}

// The weights of the matmul tests: random, with row 5 all zeros and row 6 constant (rows a
// quantizer must handle exactly), n x k.
inline std::vector<float> matmul_test_weights(int64_t n, int64_t k) {
  auto w = random_matrix(n, k, 11 + (uint32_t)k);
  for (int64_t i = 0; i < k && n > 6; ++i) w[5 * k + i] = 0.0f, w[6 * k + i] = -0.5f;
  return w;
}

// The same for quantized weights that a kernel dequantizes to fp32 and multiplies by x as it is
// (runs_q_in_f32): fp32 accumulation of K products as for float weights, plus the kernel's own
// rounding of w = de * code + ce (one FMA, or a product and a sum) against the reference's,
// each at most one rounding of de * code and one of the sum: 2^-24 (|de code| + |w|) per weight,
// with |de code| <= |w| + |ce|.
inline double matmul_tolerance_f32_acts(const QMatrix& w, const float* w_row, const float* x_row, int64_t row) {
  const QSections<const uint8_t> l = q_sections(w.type, w.n, w.k, w.data);
  const int64_t gs = group_size(w.type, w.k);
  double mag = 0, dq = 0;
  for (int64_t i = 0; i < w.k; ++i) {
    const double ce = std::fabs(group_coeffs(w.type, l.scale_at(row, i / gs), l.min_at(row, i / gs)).ce);
    mag += std::fabs(w_row[i] * x_row[i]);
    dq += (2 * std::fabs(w_row[i]) + ce) * std::fabs(x_row[i]);
  }
  return std::ldexp(1.0, -24) * (w.k * mag + dq) * 1.0001 + 1e-30;
}

// got (m x w.n, from some backend) against matmul_reference on the dequantized weights, every
// element within matmul_tolerance (fp32_sums: the chain of fp32 sums the backend makes), or
// matmul_tolerance_f32_acts when the backend ran quantized weights with fp32 activations.
inline testing::AssertionResult matches_reference(const QMatrix& w, const float* x, int64_t m,
                                                  const std::vector<float>& got, double fp32_sums,
                                                  bool f32_acts = false) {
  const int64_t n = w.n, k = w.k;
  std::vector<float> ref(m * n), wd(n * k);
  matmul_reference(w, x, m, ref.data());
  dequantize(w.type, w.data, n, k, wd.data());
  QuantizedActs acts;
  quantize_acts(x, m, k, acts);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < n; ++j) {
      const double tol = f32_acts ? matmul_tolerance_f32_acts(w, &wd[j * k], &x[r * k], j)
                                  : matmul_tolerance(w.type, &wd[j * k], &x[r * k], acts, r, k, fp32_sums);
      const double err = std::fabs(got[r * n + j] - ref[r * n + j]);
      if (!(err <= tol))
        return testing::AssertionFailure() << "row " << r << " col " << j << " got " << got[r * n + j] << " ref "
                                           << ref[r * n + j] << " (tolerance " << tol << ")";
    }
  return testing::AssertionSuccess();
}

}  // namespace lowbit::test
