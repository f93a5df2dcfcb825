// Row quantizers and dequantizers for every type of the traits table.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/qtype.h"

namespace lowbit {
namespace {

// fp16 storage of a scale or minimum; a value past fp16's range is an error, not an inf.
uint16_t to_f16_checked(float v, const char* what) {
  const uint16_t h = f32_to_f16(v);
  if ((h & 0x7c00u) == 0x7c00u)
    throw Error(std::string("quantizer: group ") + what + " " + std::to_string(v) +
                " overflows fp16 (weights too large for an fp16 scale)");
  return h;
}

float round_f16(float v) { return f16_to_f32(f32_to_f16(v)); }

// Codes for fixed (d, m) in the asymmetric decode w = d*q + m, and their squared error.
float asym_assign(const float* v, int n, float d, float m, int levels, uint8_t* q) {
  float err = 0;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  for (int i = 0; i < n; ++i) {
    const int c = std::clamp((int)std::nearbyint((v[i] - m) * id), 0, levels - 1);
    q[i] = (uint8_t)c;
    const float e = v[i] - (d * c + m);
    err += e * e;
  }
  return err;
}

// Symmetric decode w = d*(q - z): codes for fixed d and their squared error.
float sym_assign(const float* v, int n, float d, int z, int levels, uint8_t* q) {
  float err = 0;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  for (int i = 0; i < n; ++i) {
    const int c = std::clamp((int)std::nearbyint(v[i] * id) + z, 0, levels - 1);
    q[i] = (uint8_t)c;
    const float e = v[i] - d * (c - z);
    err += e * e;
  }
  return err;
}

struct GroupResult {
  float d = 0, m = 0;
};

// Symmetric, b >= 2. RTN maps the largest-magnitude weight to level -z (ggml's q4_0 choice,
// which spends the extra negative level on it). Search tries a grid of scales around that,
// both orientations, and refits d by least squares for the chosen codes.
GroupResult quant_sym(const float* v, int n, int bits, Quantizer qz, uint8_t* q) {
  const int z = sym_offset(bits), levels = 1 << bits;
  float amax = 0, vmax = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(v[i]) > amax) amax = std::fabs(v[i]), vmax = v[i];
  if (amax == 0) {
    std::fill(q, q + n, (uint8_t)z);
    return {};
  }
  float best_d = round_f16(vmax / -z);
  float best_err = sym_assign(v, n, best_d, z, levels, q);
  if (qz == Quantizer::rtn) return {best_d};
  std::vector<uint8_t> buf(n);
  uint8_t* trial = buf.data();
  for (int orient = 0; orient < 2; ++orient) {
    const float target = orient == 0 ? -(float)z : (float)(z - 1);
    if (target == 0) continue;
    // At 8 bits the rounding error is already 1/256 of the range and the grid buys little
    // (docs/ACCURACY.md: KL 0.00110 -> 0.00098), which would cost most of a conversion's time.
    // So at 8 bits only the least-squares refit of the RTN scale is tried, in both orientations.
    const int steps = bits >= 8 ? 0 : 24;
    for (int step = 0; step <= steps; ++step) {
      float d = vmax / (target * (bits >= 8 ? 1.0f : 0.75f + 0.0125f * step));
      for (int iter = 0; iter < 2; ++iter) {
        const float dr = round_f16(d);
        sym_assign(v, n, dr, z, levels, trial);
        double num = 0, den = 0;
        for (int i = 0; i < n; ++i) {
          const int l = trial[i] - z;
          num += (double)v[i] * l, den += (double)l * l;
        }
        if (den == 0) break;
        d = (float)(num / den);
      }
      const float dr = round_f16(d);
      const float err = sym_assign(v, n, dr, z, levels, trial);
      if (err < best_err) best_err = err, best_d = dr, std::memcpy(q, trial, n);
    }
  }
  return {best_d};
}

// Symmetric 1-bit: level = +-1 by sign; the scale minimizing squared error is mean |w|.
GroupResult quant_sign(const float* v, int n, uint8_t* q) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += std::fabs(v[i]), q[i] = v[i] >= 0 ? 1 : 0;
  return {round_f16((float)(s / n))};
}

// Asymmetric: RTN spans [min, max]. Search shrinks the range from either end over a grid and
// alternates code assignment with a least-squares refit of (d, m) (Lloyd-style), keeping the
// best squared error; the RTN result is a candidate, so search never does worse.
GroupResult quant_asym(const float* v, int n, int bits, Quantizer qz, uint8_t* q) {
  const int levels = 1 << bits;
  float mn = v[0], mx = v[0];
  for (int i = 1; i < n; ++i) mn = std::min(mn, v[i]), mx = std::max(mx, v[i]);
  GroupResult best{round_f16((mx - mn) / (levels - 1)), round_f16(mn)};
  if (mx == mn) {
    std::fill(q, q + n, 0);
    return {0.0f, best.m};
  }
  float best_err = asym_assign(v, n, best.d, best.m, levels, q);
  if (qz == Quantizer::rtn) return best;
  static const float kShrink[] = {0.0f, 0.02f, 0.05f, 0.1f, 0.15f, 0.2f, 0.3f};
  std::vector<uint8_t> buf(n);
  uint8_t* trial = buf.data();
  const float range = mx - mn;
  for (float a : kShrink) {
    for (float b : kShrink) {
      float lo = mn + a * range, hi = mx - b * range;
      if (hi <= lo) continue;
      float d = (hi - lo) / (levels - 1), m = lo;
      for (int iter = 0; iter < 3; ++iter) {
        asym_assign(v, n, round_f16(d), round_f16(m), levels, trial);
        double sq = 0, sqq = 0, sv = 0, sqv = 0;
        for (int i = 0; i < n; ++i) {
          sq += trial[i], sqq += (double)trial[i] * trial[i];
          sv += v[i], sqv += (double)trial[i] * v[i];
        }
        const double det = n * sqq - sq * sq;
        if (det <= 0) break;
        d = (float)((n * sqv - sq * sv) / det);
        m = (float)((sv - d * sq) / n);
        if (!(d > 0)) break;
      }
      if (!(d > 0)) continue;
      const float dr = round_f16(d), mr = round_f16(m);
      const float err = asym_assign(v, n, dr, mr, levels, trial);
      if (err < best_err) best_err = err, best = {dr, mr}, std::memcpy(q, trial, n);
    }
  }
  return best;
}

void check_finite(const float* w, int64_t k) {
  for (int64_t i = 0; i < k; ++i)
    if (!std::isfinite(w[i]))
      throw Error("quantizer: non-finite weight " + std::to_string(w[i]) + " at column " +
                  std::to_string(i));
}

void quantize_row_q(const QType& t, const float* w, int64_t k, uint8_t* codes, uint16_t* scales,
                    uint16_t* mins, Quantizer qz) {
  check_finite(w, k);
  const int64_t gs = group_size(t, k), ng = groups_per_row(t, k);
  std::memset(codes, 0, code_row_bytes(t.bits, k));
  std::vector<uint8_t> q(gs);
  for (int64_t g = 0; g < ng; ++g) {
    const int64_t begin = g * gs, n = std::min(gs, k - begin);
    const float* v = w + begin;
    GroupResult r;
    if (t.scheme == Scheme::asym) {
      r = quant_asym(v, (int)n, t.bits, qz, q.data());
    } else if (t.bits == 1) {
      r = quant_sign(v, (int)n, q.data());
    } else {
      r = quant_sym(v, (int)n, t.bits, qz, q.data());
    }
    scales[g] = to_f16_checked(r.d, "scale");
    if (mins) mins[g] = to_f16_checked(r.m, "minimum");
    for (int64_t i = 0; i < n; ++i) put_code(codes, t.bits, begin + i, q[i]);
  }
}

void dequantize_row_q(const QType& t, const uint8_t* codes, const uint16_t* scales,
                      const uint16_t* mins, int64_t k, float* out) {
  const int64_t gs = group_size(t, k);
  for (int64_t g = 0, i = 0; i < k; ++g) {
    const GroupCoeffs c = group_coeffs(t, scales[g], mins ? mins[g] : 0);
    for (const int64_t end = std::min(k, i + gs); i < end; ++i)
      out[i] = c.de * get_code(codes, t.bits, i) + c.ce;
  }
}

void quantize_row_float(const QType& t, const float* w, int64_t k, uint8_t* codes, uint16_t*,
                        uint16_t*, Quantizer) {
  check_finite(w, k);
  if (t.base == Base::f32) {
    std::memcpy(codes, w, k * sizeof(float));
    return;
  }
  auto* out = reinterpret_cast<uint16_t*>(codes);
  for (int64_t i = 0; i < k; ++i) {
    out[i] = t.base == Base::f16 ? f32_to_f16(w[i]) : f32_to_bf16(w[i]);
    if ((out[i] & (t.base == Base::f16 ? 0x7c00u : 0x7f80u)) == (t.base == Base::f16 ? 0x7c00u : 0x7f80u))
      throw Error("quantizer: weight " + std::to_string(w[i]) + " at column " + std::to_string(i) +
                  " overflows " + (t.base == Base::f16 ? "fp16" : "bf16"));
  }
}

void dequantize_row_float(const QType& t, const uint8_t* codes, const uint16_t*, const uint16_t*,
                          int64_t k, float* out) {
  if (t.base == Base::f32) {
    std::memcpy(out, codes, k * sizeof(float));
    return;
  }
  const auto* in = reinterpret_cast<const uint16_t*>(codes);
  for (int64_t i = 0; i < k; ++i) out[i] = t.base == Base::f16 ? f16_to_f32(in[i]) : bf16_to_f32(in[i]);
}

}  // namespace

const std::vector<TypeTraits>& type_table() {
  static const std::vector<TypeTraits> table = {
      {"f32", Base::f32, 32, Scheme::sym, quantize_row_float, dequantize_row_float},
      {"f16", Base::f16, 16, Scheme::sym, quantize_row_float, dequantize_row_float},
      {"bf16", Base::bf16, 16, Scheme::sym, quantize_row_float, dequantize_row_float},
      {"q8_sym", Base::q, 8, Scheme::sym, quantize_row_q, dequantize_row_q},
      {"q8_asym", Base::q, 8, Scheme::asym, quantize_row_q, dequantize_row_q},
      {"q4_sym", Base::q, 4, Scheme::sym, quantize_row_q, dequantize_row_q},
      {"q4_asym", Base::q, 4, Scheme::asym, quantize_row_q, dequantize_row_q},
      {"q2_sym", Base::q, 2, Scheme::sym, quantize_row_q, dequantize_row_q},
      {"q2_asym", Base::q, 2, Scheme::asym, quantize_row_q, dequantize_row_q},
      {"q1_sym", Base::q, 1, Scheme::sym, quantize_row_q, dequantize_row_q},
      {"q1_asym", Base::q, 1, Scheme::asym, quantize_row_q, dequantize_row_q},
  };
  return table;
}

}  // namespace lowbit
