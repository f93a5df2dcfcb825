#include "kernels/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "kernels/error.h"
#include "kernels/thread_pool.h"

namespace lowbit {
namespace {

void for_rows(int64_t n, ThreadPool* pool, const std::function<void(int64_t, int64_t)>& fn) {
  constexpr int64_t kRowsPerTask = 16;
  const int64_t tasks = ceil_div(n, kRowsPerTask);
  auto task = [&](int64_t t, int) { fn(t * kRowsPerTask, std::min(n, (t + 1) * kRowsPerTask)); };
  if (pool) {
    pool->run(tasks, task);
  } else {
    for (int64_t t = 0; t < tasks; ++t) task(t, 0);
  }
}

void check_importance(const float* importance, int64_t k) {
  if (importance)
    for (int64_t j = 0; j < k; ++j)
      if (!(importance[j] >= 0) || !std::isfinite(importance[j]))
        throw Error("quantizer: importance " + std::to_string(importance[j]) + " of column " + std::to_string(j) +
                    " is not a finite value >= 0");
}

// The code quantize_row_q gives weight v for a group's (d, m): the same expressions, so that GPTQ
// with no error to spread reproduces quantize() bit for bit.
int assign_code(const QType& t, float v, float d, float m) {
  const int levels = 1 << t.bits;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  if (t.scheme == Scheme::asym) return std::clamp((int)std::nearbyint((v - m) * id), 0, levels - 1);
  if (t.bits == 1) return v >= 0 ? 1 : 0;
  return std::clamp((int)std::nearbyint(v * id) + sym_offset(t.bits), 0, levels - 1);
}

// Dot product in four chains (the factorization's inner loop; double keeps it exact enough for
// the ill-conditioned H of real activations).
double dot(const double* a, const double* b, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) s0 += a[i] * b[i], s1 += a[i + 1] * b[i + 1], s2 += a[i + 2] * b[i + 2], s3 += a[i + 3] * b[i + 3];
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

}  // namespace

std::vector<float> gptq_factor(const float* h, int64_t k, double damp) {
  if (k <= 0) throw Error("GPTQ: empty statistic");
  // The upper factor of (H + lambda I)^-1 is J L^-1 J, where L L^T = J (H + lambda I) J and J
  // reverses the order of rows and columns: (J L^-1 J)^T (J L^-1 J) = J L^-T L^-1 J = (H + lambda I)^-1,
  // and reversing both orders turns the lower triangle of L^-1 into an upper one. So one
  // Cholesky factorization and one triangular inverse, both on the reversed matrix A.
  std::vector<double> a((size_t)(k * k));
  double mean_diag = 0;
  for (int64_t j = 0; j < k; ++j) mean_diag += h[j * k + j];
  mean_diag /= (double)k;
  const double lambda = damp * (mean_diag > 0 ? mean_diag : 1.0);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j) {
      double v = h[(k - 1 - i) * k + (k - 1 - j)];
      if (!std::isfinite(v)) throw Error("GPTQ: statistic (" + std::to_string(k - 1 - i) + ", " + std::to_string(k - 1 - j) + ") is not finite");
      if (i == j) v = (v == 0 ? 1.0 : v) + lambda;
      a[i * k + j] = v;
    }
  // Cholesky in place, lower triangle by rows: L_ij = (A_ij - L_i. L_j.) / L_jj.
  for (int64_t i = 0; i < k; ++i) {
    double* li = &a[i * k];
    for (int64_t j = 0; j < i; ++j) li[j] = (li[j] - dot(li, &a[j * k], j)) / a[j * k + j];
    const double d = li[i] - dot(li, li, i);
    if (!(d > 0))
      throw Error("GPTQ: the statistic is not positive definite at column " + std::to_string(k - 1 - i) +
                  " (damping " + std::to_string(damp) + ")");
    li[i] = std::sqrt(d);
  }
  // X = L^-1 by rows: X_i. = (e_i - sum_{p<i} L_ip X_p.) / L_ii, an axpy over rows already done.
  std::vector<double> x((size_t)(k * k), 0.0);
  for (int64_t i = 0; i < k; ++i) {
    double* xi = &x[i * k];
    xi[i] = 1.0;
    for (int64_t p = 0; p < i; ++p) {
      const double l = a[i * k + p];
      const double* xp = &x[p * k];
      for (int64_t c = 0; c <= p; ++c) xi[c] -= l * xp[c];
    }
    const double inv = 1.0 / a[i * k + i];
    for (int64_t c = 0; c <= i; ++c) xi[c] *= inv;
  }
  std::vector<float> u((size_t)(k * k), 0.0f);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = i; j < k; ++j) u[i * k + j] = (float)x[(k - 1 - i) * k + (k - 1 - j)];
  return u;
}

void quantize_gptq(const QType& t, const float* w, int64_t n, int64_t k, uint8_t* out, const float* u,
                   Quantizer qz, ThreadPool* pool, const float* importance) {
  check_type(t);
  if (!is_quantized(t)) throw Error("GPTQ: " + type_name(t) + " is not a quantized type");
  check_importance(importance, k);
  const TypeTraits& tr = traits(t);
  std::memset(out, 0, q_layout(t, n, k).bytes);
  const QSections<uint8_t> sec = q_sections(t, n, k, out);
  QType t16 = t;
  t16.scales = ScaleCode::f16;
  const bool asym = t.scheme == Scheme::asym;
  const int64_t gs = group_size(t, k), ng = sec.groups;
  for_rows(n, pool, [&](int64_t r0, int64_t r1) {
    const int64_t rows = r1 - r0;
    std::vector<float> cur(w + r0 * k, w + r1 * k);  // the rows as the errors spread so far leave them
    std::vector<uint8_t> codes(code_row_bytes(t.bits, std::max(k, gs))), sc(coded_row_bytes(1)), mc(coded_row_bytes(1));
    std::vector<uint16_t> d16(ng), m16(ng);
    std::vector<float> d(rows), m(rows), de(rows), ce(rows);
    try {
      if (sec.coded())
        for (int64_t r = 0; r < rows; ++r) {
          tr.quantize_row(t16, &cur[r * k], k, codes.data(), d16.data(), m16.data(), qz, importance);
          scale_factors(d16.data(), m16.data(), ng, sec.factors + 2 * (r0 + r));
        }
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t begin = g * gs, len = std::min(gs, k - begin);
        const float* imp = importance ? importance + begin : nullptr;
        for (int64_t r = 0; r < rows; ++r) {
          float* v = &cur[r * k + begin];
          uint16_t s = 0, mn = 0;
          tr.quantize_row(t16, v, len, codes.data(), &s, asym ? &mn : nullptr, qz, imp);
          if (sec.coded()) {
            const uint16_t* f = sec.factors + 2 * (r0 + r);
            code_scales(t, v, len, codes.data(), &s, &mn, sc.data(), mc.data(), f, qz, imp);
            const unsigned dc = get_scale_code(sc.data(), 0), mcode = get_scale_code(mc.data(), 0);
            put_scale_code(sec.row_scale_codes(r0 + r), g, dc);
            put_scale_code(sec.row_min_codes(r0 + r), g, mcode);
            s = decode_scale(f[0], (int)dc), mn = decode_scale(f[1], (int)mcode - 32);
          } else {
            sec.row_scales(r0 + r)[g] = s;
            if (asym) sec.row_mins(r0 + r)[g] = mn;
          }
          d[r] = f16_to_f32(s), m[r] = f16_to_f32(mn);
          const GroupCoeffs c = group_coeffs(t16, s, mn);
          de[r] = c.de, ce[r] = c.ce;
        }
        for (int64_t j = begin; j < begin + len; ++j) {
          const float* uj = u + j * k;
          const float inv = 1.0f / uj[j];
          for (int64_t r = 0; r < rows; ++r) {
            float* cr = &cur[r * k];
            const int c = assign_code(t, cr[j], d[r], m[r]);
            put_code(sec.row_codes(r0 + r), t.bits, j, (unsigned)c);
            const float e = (cr[j] - (de[r] * c + ce[r])) * inv;
            for (int64_t i = j + 1; i < k; ++i) cr[i] -= e * uj[i];
          }
        }
      }
    } catch (const Error& e) {
      throw Error(e.code(), std::string(e.what()) + " (rows " + std::to_string(r0) + "-" + std::to_string(r1 - 1) + ")");
    }
  });
}

void quantize(const QType& t, const float* w, int64_t n, int64_t k, uint8_t* out, Quantizer qz,
              ThreadPool* pool, const float* importance) {
  check_type(t);
  check_importance(importance, k);
  const TypeTraits& tr = traits(t);
  std::memset(out, 0, q_layout(t, n, k).bytes);  // padding between sections is zero, so files are reproducible
  const QSections<uint8_t> sec = q_sections(t, n, k, out);
  QType t16 = t;  // 6-bit scale codes start from the fp16 type's row, then code its scales
  t16.scales = ScaleCode::f16;
  const int64_t groups = sec.groups;
  for_rows(n, pool, [&](int64_t r0, int64_t r1) {
    std::vector<uint16_t> d16(sec.coded() ? groups : 0), m16(sec.coded() ? groups : 0);
    for (int64_t r = r0; r < r1; ++r) {
      try {
        if (sec.coded()) {
          tr.quantize_row(t16, w + r * k, k, sec.row_codes(r), d16.data(), m16.data(), qz, importance);
          code_row_scales(t, w + r * k, k, sec.row_codes(r), d16.data(), m16.data(), sec.row_scale_codes(r),
                          sec.row_min_codes(r), sec.factors + 2 * r, qz, importance);
        } else {
          tr.quantize_row(t, w + r * k, k, sec.row_codes(r), sec.row_scales(r), sec.row_mins(r), qz, importance);
        }
      } catch (const Error& e) {
        throw Error(e.code(), std::string(e.what()) + " (row " + std::to_string(r) + ")");
      }
    }
  });
}

void dequantize_row(const QType& t, const uint8_t* data, int64_t n, int64_t k, int64_t row,
                    float* out) {
  const QSections<const uint8_t> sec = q_sections(t, n, k, data);
  if (!sec.coded()) {
    traits(t).dequantize_row(t, sec.row_codes(row), sec.row_scales(row), sec.row_mins(row), k, out);
    return;
  }
  std::vector<uint16_t> d16(sec.groups), m16(sec.groups);
  for (int64_t g = 0; g < sec.groups; ++g) d16[g] = sec.scale_at(row, g), m16[g] = sec.min_at(row, g);
  QType t16 = t;
  t16.scales = ScaleCode::f16;
  traits(t).dequantize_row(t16, sec.row_codes(row), d16.data(), m16.data(), k, out);
}

void dequantize(const QType& t, const uint8_t* data, int64_t n, int64_t k, float* out,
                ThreadPool* pool) {
  for_rows(n, pool, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) dequantize_row(t, data, n, k, r, out + r * k);
  });
}

}  // namespace lowbit
