// GPTQ (quantize.h): its factor against the definition, the quantizer against quantize() where
// there is no error to spread, against an independent formulation of the same algorithm in
// double precision, and against plain quantization on the error it minimizes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/error.h"
#include "kernels/quantize.h"
#include "tests/kernels/test_util.h"

namespace lowbit {
namespace {

using test::AlignedBytes;

// H = X^T X of m correlated inputs: X = Z C + noise, Z (m x r) and C (r x k) Gaussian, r < k,
// so H is close to rank r and a column's error can be made up by its neighbours (what GPTQ
// exploits). Column `dead` is never active (its row and column of H are 0).
std::vector<float> correlated_h(int64_t k, int64_t m, uint32_t seed, int64_t dead = -1) {
  const int64_t r = k / 2;
  auto z = test::random_matrix(m, r, seed), c = test::random_matrix(r, k, seed + 1), e = test::random_matrix(m, k, seed + 2, 0.1f);
  std::vector<double> x((size_t)(m * k));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) {
      double s = e[i * k + j];
      for (int64_t p = 0; p < r; ++p) s += (double)z[i * r + p] * c[p * k + j];
      x[i * k + j] = j == dead ? 0.0 : s;
    }
  std::vector<float> h((size_t)(k * k));
  for (int64_t a = 0; a < k; ++a)
    for (int64_t b = 0; b < k; ++b) {
      double s = 0;
      for (int64_t i = 0; i < m; ++i) s += x[i * k + a] * x[i * k + b];
      h[a * k + b] = (float)s;
    }
  return h;
}

// H + lambda I with the zero-diagonal fix, in double: what gptq_factor factors.
std::vector<double> damped(const std::vector<float>& h, int64_t k, double damp) {
  double mean = 0;
  for (int64_t j = 0; j < k; ++j) mean += h[j * k + j];
  mean /= (double)k;
  std::vector<double> a(h.begin(), h.end());
  for (int64_t j = 0; j < k; ++j) a[j * k + j] = (a[j * k + j] == 0 ? 1.0 : a[j * k + j]) + damp * mean;
  return a;
}

// Gauss-Jordan inverse with partial pivoting.
std::vector<double> inverse(std::vector<double> a, int64_t k) {
  std::vector<double> inv((size_t)(k * k), 0.0);
  for (int64_t i = 0; i < k; ++i) inv[i * k + i] = 1.0;
  for (int64_t c = 0; c < k; ++c) {
    int64_t p = c;
    for (int64_t i = c + 1; i < k; ++i)
      if (std::fabs(a[i * k + c]) > std::fabs(a[p * k + c])) p = i;
    for (int64_t j = 0; j < k; ++j) std::swap(a[c * k + j], a[p * k + j]), std::swap(inv[c * k + j], inv[p * k + j]);
    const double d = a[c * k + c];
    for (int64_t j = 0; j < k; ++j) a[c * k + j] /= d, inv[c * k + j] /= d;
    for (int64_t i = 0; i < k; ++i) {
      if (i == c) continue;
      const double f = a[i * k + c];
      for (int64_t j = 0; j < k; ++j) a[i * k + j] -= f * a[c * k + j], inv[i * k + j] -= f * inv[c * k + j];
    }
  }
  return inv;
}

// sum over rows of (w - q)^T H (w - q): the output error over the inputs H was made from.
double h_error(const QType& t, const std::vector<float>& w, int64_t n, int64_t k, const uint8_t* data,
               const std::vector<float>& h) {
  std::vector<float> back((size_t)(n * k));
  dequantize(t, data, n, k, back.data());
  double total = 0;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t a = 0; a < k; ++a) {
      const double ea = (double)w[r * k + a] - back[r * k + a];
      for (int64_t b = 0; b < k; ++b) total += ea * h[a * k + b] * ((double)w[r * k + b] - back[r * k + b]);
    }
  return total;
}

std::vector<float> diag_importance(const std::vector<float>& h, int64_t k) {
  std::vector<float> imp(k);
  for (int64_t j = 0; j < k; ++j) imp[j] = h[j * k + j];
  return imp;
}

TEST(Gptq, FactorIsTheUpperCholeskyFactorOfTheDampedInverse) {
  const int64_t k = 37;
  const double damp = 0.01;
  const auto h = correlated_h(k, 60, 3, /*dead=*/5);
  const std::vector<float> u = gptq_factor(h.data(), k, damp);
  const std::vector<double> hinv = inverse(damped(h, k, damp), k);
  double scale = 0;
  for (double v : hinv) scale = std::max(scale, std::fabs(v));
  for (int64_t i = 0; i < k; ++i) {
    EXPECT_GT(u[i * k + i], 0.0f) << i;
    for (int64_t j = 0; j < i; ++j) EXPECT_EQ(u[i * k + j], 0.0f) << i << "," << j;
    for (int64_t j = 0; j < k; ++j) {
      double s = 0;  // (U^T U)_ij
      for (int64_t p = 0; p < k; ++p) s += (double)u[p * k + i] * u[p * k + j];
      // The factor is stored in fp32: each product carries 2^-24 relative, k of them.
      EXPECT_NEAR(s, hinv[i * k + j], 4.0 * k * std::ldexp(1.0, -24) * scale) << i << "," << j;
    }
  }
}

TEST(Gptq, NotPositiveDefiniteIsAnError) {
  const int64_t k = 4;
  std::vector<float> h(k * k, 0.0f);
  for (int64_t j = 0; j < k; ++j) h[j * k + j] = 1.0f;
  h[2 * k + 2] = -50.0f;  // a negative variance
  try {
    gptq_factor(h.data(), k);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not positive definite at column 2"), std::string::npos) << e.what();
  }
}

// With U = I no error is spread, so every type's result is quantize()'s, byte for byte.
TEST(Gptq, IdentityFactorIsPlainQuantization) {
  const int64_t n = 20, k = 100;  // k: a partial last group at every group size
  auto w = test::random_matrix(n, k, 11);
  std::vector<float> u((size_t)(k * k), 0.0f), imp(k);
  for (int64_t j = 0; j < k; ++j) u[j * k + j] = 1.0f, imp[j] = 0.5f + (float)(j % 7);
  for (const QType& t : test::all_quant_types()) {
    for (const float* importance : {(const float*)nullptr, (const float*)imp.data()}) {
      const size_t bytes = q_layout(t, n, k).bytes;
      AlignedBytes a(bytes), b(bytes);
      quantize(t, w.data(), n, k, a.data(), Quantizer::search, nullptr, importance);
      quantize_gptq(t, w.data(), n, k, b.data(), u.data(), Quantizer::search, nullptr, importance);
      EXPECT_EQ(std::memcmp(a.data(), b.data(), bytes), 0) << type_name(t) << (importance ? " weighted" : "");
    }
  }
}

// The same algorithm in its first form (Optimal Brain Quantization, as the GPTQ paper derives it):
// one row at a time in double, with the explicit inverse of H downdated as each column is fixed,
// instead of the Cholesky factor of the inverse. Group parameters come from quantize() on the
// group as the row stands when the group is reached.
std::vector<float> obq_reference(const QType& t, const std::vector<float>& w, int64_t n, int64_t k,
                                 const std::vector<float>& h, double damp, const float* importance) {
  const std::vector<double> hinv0 = inverse(damped(h, k, damp), k);
  const int64_t gs = group_size(t, k);
  std::vector<float> out((size_t)(n * k));
  for (int64_t r = 0; r < n; ++r) {
    std::vector<double> hinv = hinv0, v(w.begin() + r * k, w.begin() + (r + 1) * k);
    double de = 0, ce = 0;
    for (int64_t j = 0; j < k; ++j) {
      if (j % gs == 0) {
        const int64_t len = std::min(gs, k - j);
        std::vector<float> g(v.begin() + j, v.begin() + j + len);
        AlignedBytes buf(q_layout(t, 1, len).bytes);
        quantize(t, g.data(), 1, len, buf.data(), Quantizer::search, nullptr, importance ? importance + j : nullptr);
        const QSections<const uint8_t> sec = q_sections(t, 1, len, (const uint8_t*)buf.data());
        const GroupCoeffs c = group_coeffs(t, sec.scale_at(0, 0), sec.min_at(0, 0));
        de = c.de, ce = c.ce;
      }
      // The nearest level (a tie goes either way; the kernel's choice is quantize()'s).
      const int levels = 1 << t.bits;
      const int c = de != 0 ? std::clamp((int)std::lround((v[j] - ce) / de), 0, levels - 1)
                           : (t.scheme == Scheme::asym ? 0 : sym_offset(t.bits));
      const double q = de * c + ce;
      out[r * k + j] = (float)q;
      const double e = (v[j] - q) / hinv[j * k + j];
      for (int64_t i = j + 1; i < k; ++i) v[i] -= e * hinv[j * k + i];
      const double p = hinv[j * k + j];
      for (int64_t a = j + 1; a < k; ++a)
        for (int64_t b = j + 1; b < k; ++b) hinv[a * k + b] -= hinv[a * k + j] * hinv[j * k + b] / p;
    }
  }
  return out;
}

TEST(Gptq, AgreesWithTheExplicitInverseFormulation) {
  const int64_t n = 12, k = 96;
  const double damp = 0.01;
  const auto h = correlated_h(k, 200, 17);
  const auto w = test::random_matrix(n, k, 19);
  const std::vector<float> imp = diag_importance(h, k);
  const std::vector<float> u = gptq_factor(h.data(), k, damp);
  for (const char* name : {"q4_g32_asym", "q2_g32_asym", "q4_g32_sym", "q8_g32_sym", "q2_g64_sym"}) {
    const QType t = parse_type(name);
    AlignedBytes buf(q_layout(t, n, k).bytes);
    quantize_gptq(t, w.data(), n, k, buf.data(), u.data(), Quantizer::search, nullptr, imp.data());
    std::vector<float> got((size_t)(n * k));
    dequantize(t, buf.data(), n, k, got.data());
    const std::vector<float> ref = obq_reference(t, w, n, k, h, damp, imp.data());
    int64_t same = 0;
    for (int64_t i = 0; i < n * k; ++i) same += got[i] == ref[i];
    // fp32 against fp64 arithmetic moves a weight across a rounding boundary only when it lies
    // within ~1e-6 of one; after such a flip the rest of the row carries a different error.
    EXPECT_GE(same, n * k * 98 / 100) << name;
  }
}

// GPTQ minimizes the output error greedily; on inputs this correlated it must beat the best
// per-group search weighted by the inputs' energy (the diagonal of H) by a wide margin.
TEST(Gptq, LowersTheOutputError) {
  const int64_t n = 16, k = 128;
  const auto h = correlated_h(k, 256, 23);
  const auto w = test::random_matrix(n, k, 29);
  const std::vector<float> imp = diag_importance(h, k);
  const std::vector<float> u = gptq_factor(h.data(), k);
  for (const char* name : {"q4_g32_asym", "q2_g32_asym", "q2_g32_asym_s6", "q4_g32_asym_s6", "q4_g128_sym", "q1_g32_sym",
                           "q8_g32_sym"}) {
    const QType t = parse_type(name);
    const size_t bytes = q_layout(t, n, k).bytes;
    AlignedBytes plain(bytes), gptq(bytes);
    quantize(t, w.data(), n, k, plain.data(), Quantizer::search, nullptr, imp.data());
    quantize_gptq(t, w.data(), n, k, gptq.data(), u.data(), Quantizer::search, nullptr, imp.data());
    const double ep = h_error(t, w, n, k, plain.data(), h), eg = h_error(t, w, n, k, gptq.data(), h);
    EXPECT_LT(eg, 0.8 * ep) << name << ": gptq " << eg << ", plain " << ep;
  }
}

}  // namespace
}  // namespace lowbit
