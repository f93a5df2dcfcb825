// Row quantizers and dequantizers for every type of the traits table.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
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

// Per-weight importance in the error the search minimizes: Unit (every weight counts alike, the
// plain squared error) or a calibration's per-input-channel activation energy (Weighted, see
// quantize.h). Multiplying by Unit's 1.0f is exact, so the unweighted path is bit-identical to
// the code before importance existed.
struct Unit {
  float operator[](int) const { return 1.0f; }
};
struct Weighted {
  const float* w;
  float operator[](int i) const { return w[i]; }
};

// Codes for fixed (d, m) in the asymmetric decode w = d*q + m, and their (weighted) squared error.
template <class W>
float asym_assign(const float* v, int n, float d, float m, int levels, uint8_t* q, W wt) {
  float err = 0;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  for (int i = 0; i < n; ++i) {
    const int c = std::clamp((int)std::nearbyint((v[i] - m) * id), 0, levels - 1);
    q[i] = (uint8_t)c;
    const float e = v[i] - (d * c + m);
    err += wt[i] * (e * e);
  }
  return err;
}

// Symmetric decode w = d*(q - z): codes for fixed d and their (weighted) squared error.
template <class W>
float sym_assign(const float* v, int n, float d, int z, int levels, uint8_t* q, W wt) {
  float err = 0;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  for (int i = 0; i < n; ++i) {
    const int c = std::clamp((int)std::nearbyint(v[i] * id) + z, 0, levels - 1);
    q[i] = (uint8_t)c;
    const float e = v[i] - d * (c - z);
    err += wt[i] * (e * e);
  }
  return err;
}

struct GroupResult {
  float d = 0, m = 0;
};

// Symmetric, b >= 2. RTN maps the largest-magnitude weight to level -z (ggml's q4_0 choice,
// which spends the extra negative level on it). Search tries a grid of scales around that,
// both orientations, and refits d by least squares for the chosen codes.
template <class W>
GroupResult quant_sym(const float* v, int n, int bits, Quantizer qz, uint8_t* q, W wt) {
  const int z = sym_offset(bits), levels = 1 << bits;
  float amax = 0, vmax = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(v[i]) > amax) amax = std::fabs(v[i]), vmax = v[i];
  if (amax == 0) {
    std::fill(q, q + n, (uint8_t)z);
    return {};
  }
  float best_d = round_f16(vmax / -z);
  float best_err = sym_assign(v, n, best_d, z, levels, q, wt);
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
        sym_assign(v, n, dr, z, levels, trial, wt);
        double num = 0, den = 0;
        for (int i = 0; i < n; ++i) {
          const int l = trial[i] - z;
          num += (double)wt[i] * ((double)v[i] * l), den += (double)wt[i] * ((double)l * l);
        }
        if (den == 0) break;
        d = (float)(num / den);
      }
      const float dr = round_f16(d);
      const float err = sym_assign(v, n, dr, z, levels, trial, wt);
      if (err < best_err) best_err = err, best_d = dr, std::memcpy(q, trial, n);
    }
  }
  return {best_d};
}

// Symmetric 1-bit: level = +-1 by sign; the scale minimizing squared error is mean |w|
// (weighted: sum imp |w| / sum imp).
template <class W>
GroupResult quant_sign(const float* v, int n, uint8_t* q, W wt) {
  double s = 0, sw = 0;
  for (int i = 0; i < n; ++i) s += (double)wt[i] * std::fabs(v[i]), sw += wt[i], q[i] = v[i] >= 0 ? 1 : 0;
  return {round_f16((float)(s / sw))};
}

// Asymmetric: RTN spans [min, max]. Search shrinks the range from either end over a grid and
// alternates code assignment with a least-squares refit of (d, m) (Lloyd-style), keeping the
// best squared error; the RTN result is a candidate, so search never does worse.
template <class W>
GroupResult quant_asym(const float* v, int n, int bits, Quantizer qz, uint8_t* q, W wt) {
  const int levels = 1 << bits;
  float mn = v[0], mx = v[0];
  for (int i = 1; i < n; ++i) mn = std::min(mn, v[i]), mx = std::max(mx, v[i]);
  GroupResult best{round_f16((mx - mn) / (levels - 1)), round_f16(mn)};
  if (mx == mn) {
    std::fill(q, q + n, 0);
    return {0.0f, best.m};
  }
  float best_err = asym_assign(v, n, best.d, best.m, levels, q, wt);
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
        asym_assign(v, n, round_f16(d), round_f16(m), levels, trial, wt);
        // Weighted least squares of v ~ d*q + m (with Unit weights sw = n exactly).
        double sw = 0, sq = 0, sqq = 0, sv = 0, sqv = 0;
        for (int i = 0; i < n; ++i) {
          const double wi = wt[i];
          sw += wi;
          sq += wi * trial[i], sqq += wi * ((double)trial[i] * trial[i]);
          sv += wi * v[i], sqv += wi * ((double)trial[i] * v[i]);
        }
        const double det = sw * sqq - sq * sq;
        if (det <= 0) break;
        d = (float)((sw * sqv - sq * sv) / det);
        m = (float)((sv - d * sq) / sw);
        if (!(d > 0)) break;
      }
      if (!(d > 0)) continue;
      const float dr = round_f16(d), mr = round_f16(m);
      const float err = asym_assign(v, n, dr, mr, levels, trial, wt);
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

template <class W>
GroupResult quant_group(const QType& t, const float* v, int n, Quantizer qz, uint8_t* q, W wt) {
  if (t.scheme == Scheme::asym) return quant_asym(v, n, t.bits, qz, q, wt);
  if (t.bits == 1) return quant_sign(v, n, q, wt);
  return quant_sym(v, n, t.bits, qz, q, wt);
}

void quantize_row_q(const QType& t, const float* w, int64_t k, uint8_t* codes, uint16_t* scales,
                    uint16_t* mins, Quantizer qz, const float* importance) {
  check_finite(w, k);
  const int64_t gs = group_size(t, k), ng = groups_per_row(t, k);
  std::memset(codes, 0, code_row_bytes(t.bits, k));
  std::vector<uint8_t> q(gs);
  for (int64_t g = 0; g < ng; ++g) {
    const int64_t begin = g * gs, n = std::min(gs, k - begin);
    const float* v = w + begin;
    // A group whose inputs were never active (all importance 0) has no error to weigh: it falls
    // back to the plain squared error rather than to an arbitrary scale.
    double wsum = 0;
    if (importance && qz == Quantizer::search)
      for (int64_t i = 0; i < n; ++i) wsum += importance[begin + i];
    const GroupResult r = wsum > 0 ? quant_group(t, v, (int)n, qz, q.data(), Weighted{importance + begin})
                                   : quant_group(t, v, (int)n, qz, q.data(), Unit{});
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
                        uint16_t*, Quantizer, const float*) {
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

// One group's (d, m) codes for fixed row factors: the codes nearest each centre (d, m), and with
// search the 5 x 7 codes around them, the weights' codes reassigned for each; returns the pair of
// least (weighted) squared error and leaves its weight codes in q.
template <class W>
std::pair<int, int> code_group(const float* v, int n, int levels, uint16_t fd, uint16_t fm,
                               const std::pair<float, float>* centres, int ncentres, Quantizer qz, uint8_t* q,
                               uint8_t* trial, W wt) {
  const float D = bf16_to_f32(fd), M = bf16_to_f32(fm);
  const int dr = qz == Quantizer::search ? 2 : 0, mr = qz == Quantizer::search ? 3 : 0;
  std::pair<int, int> best{0, 0};
  float best_err = INFINITY;
  for (int c = 0; c < ncentres; ++c) {
    const int dc0 = D > 0 ? std::clamp((int)std::nearbyint(centres[c].first / D), 0, kMaxScaleCode) : 0;
    const int mc0 = M > 0 ? std::clamp((int)std::nearbyint(centres[c].second / M), -kMaxMinCode, kMaxMinCode) : 0;
    for (int dc = std::max(0, dc0 - dr); dc <= std::min(kMaxScaleCode, dc0 + dr); ++dc) {
      for (int mc = std::max(-kMaxMinCode, mc0 - mr); mc <= std::min(kMaxMinCode, mc0 + mr); ++mc) {
        const float dv = f16_to_f32(decode_scale(fd, dc)), mv = f16_to_f32(decode_scale(fm, mc));
        if (!std::isfinite(dv) || !std::isfinite(mv))
          throw Error("quantizer: coded group scale overflows fp16 (weights too large for an fp16 scale)");
        const float err = asym_assign(v, n, dv, mv, levels, trial, wt);
        if (err < best_err) best_err = err, best = {dc, mc}, std::memcpy(q, trial, n);
      }
    }
  }
  return best;
}

}  // namespace

void scale_factors(const uint16_t* scales, const uint16_t* mins, int64_t groups, uint16_t* factors) {
  // Factors from the (searched) fp16 values: on SmolLM2 at g32, factors from the groups' min-max
  // ranges instead gave a larger KL (docs/ACCURACY.md).
  float dmax = 0, mmax = 0;
  for (int64_t g = 0; g < groups; ++g)
    dmax = std::max(dmax, f16_to_f32(scales[g])), mmax = std::max(mmax, std::fabs(f16_to_f32(mins[g])));
  factors[0] = f32_to_bf16(dmax / kMaxScaleCode);
  factors[1] = f32_to_bf16(mmax / kMaxMinCode);
}

void code_row_scales(const QType& t, const float* w, int64_t k, uint8_t* codes, const uint16_t* scales,
                     const uint16_t* mins, uint8_t* scale_codes, uint8_t* min_codes, uint16_t* factors,
                     Quantizer qz, const float* importance) {
  scale_factors(scales, mins, groups_per_row(t, k), factors);
  code_scales(t, w, k, codes, scales, mins, scale_codes, min_codes, factors, qz, importance);
}

void code_scales(const QType& t, const float* w, int64_t k, uint8_t* codes, const uint16_t* scales,
                 const uint16_t* mins, uint8_t* scale_codes, uint8_t* min_codes, const uint16_t* factors,
                 Quantizer qz, const float* importance) {
  const int64_t gs = group_size(t, k), ng = groups_per_row(t, k);
  const int levels = 1 << t.bits;
  std::vector<uint8_t> q(gs), trial(gs);
  for (int64_t g = 0; g < ng; ++g) {
    const int64_t begin = g * gs, n = std::min(gs, k - begin);
    float mn = w[begin], mx = w[begin];
    for (int64_t i = 1; i < n; ++i) mn = std::min(mn, w[begin + i]), mx = std::max(mx, w[begin + i]);
    const std::pair<float, float> centres[2] = {{f16_to_f32(scales[g]), f16_to_f32(mins[g])},
                                                {(mx - mn) / (levels - 1), mn}};
    const int nc = qz == Quantizer::search ? 2 : 1;
    double wsum = 0;  // as quantize_row_q: groups of zero importance use the plain error
    if (importance && qz == Quantizer::search)
      for (int64_t i = 0; i < n; ++i) wsum += importance[begin + i];
    const auto [dc, mc] =
        wsum > 0 ? code_group(w + begin, (int)n, levels, factors[0], factors[1], centres, nc, qz, q.data(), trial.data(),
                              Weighted{importance + begin})
                 : code_group(w + begin, (int)n, levels, factors[0], factors[1], centres, nc, qz, q.data(), trial.data(), Unit{});
    put_scale_code(scale_codes, g, (unsigned)dc);
    put_scale_code(min_codes, g, (unsigned)(mc + 32));
    for (int64_t i = 0; i < n; ++i) put_code(codes, t.bits, begin + i, q[i]);
  }
}

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
