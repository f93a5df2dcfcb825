// The small fp32 operations of a transformer layer besides matmul. They touch O(dim) or
// O(context) values per token, far less than the weights, so they are plain C++ that the
// compiler vectorizes, shared by every ISA.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace lowbit {

// out[i] = x[i] / rms(x) * w[i], rms = sqrt(mean(x^2) + eps). out may alias x.
void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* out);

// Rotary embedding in the HF "rotate half" convention over the first rot_dim values of each
// head of head_dim (all of them but in Phi-4-mini's partial rotary, which passes the rest
// through): element i < rot_dim/2 pairs with i + rot_dim/2, rotated by pos * inv_freq[i], both
// cos and sin times scale (LongRoPE's attention factor; 1 elsewhere). inv_freq has rot_dim/2
// entries (see rope_inv_freq in runtime/).
void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t rot_dim, int64_t pos, const float* inv_freq,
          float scale = 1.0f);

// e^x in fp32 for every x, within 2 ulp of the true value where that is a normal float:
// x = n ln2 + r with n = round(x log2 e) and |r| <= ln2 / 2 + 2^-9 (ln 2 in two parts, the first
// with few enough bits that n * its first part and x minus it are exact; r's one rounding moves
// e^r by <= 1/4 ulp), e^r by its Taylor series to r^7 in Horner's form (what it leaves out is
// r^8 / 8! < 6e-9 of e^r; its roundings stay near 1 ulp, as the terms shrink), times 2^n built
// in the exponent bits (exact; the product's rounding 1/2 ulp). x is clamped to [-87, 88], so
// 2^n stays a normal float: above 88 the result is e^88 = 1.7e38, not inf; below -87 it is 0
// (e^-87 = 1.6e-38 is where fp32 turns subnormal); NaN stays NaN. Plain arithmetic, bit casts
// and selects, so the loops calling it vectorize where FP operations are not taken to trap
// (kernels/ops.cc is built with -fno-trapping-math), where libm's expf is a call per value
// (bench/README.md: softmax and SwiGLU in a prompt).
inline float exp_f32(float x) {
  const float lo = x > -87.0f ? x : -87.0f, xc = lo < 88.0f ? lo : 88.0f;  // NaN -> -87
  const float t = xc * 1.44269504088896341f + 12582912.0f;  // + 1.5 * 2^23: n in t's low bits
  const float n = t - 12582912.0f;                          // round(x log2 e)
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
  float e = 1.0f / 5040;
  e = e * r + 1.0f / 720;
  e = e * r + 1.0f / 120;
  e = e * r + 1.0f / 24;
  e = e * r + 1.0f / 6;
  e = e * r + 0.5f;
  e = e * r + 1.0f;
  e = e * r + 1.0f;
  uint32_t tb;
  std::memcpy(&tb, &t, sizeof tb);
  const uint32_t bits = (tb - 0x4B400000u + 127u) << 23;  // (n + 127) << 23: 2^n
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return x == x ? (x < -87.0f ? 0.0f : e * two_n) : x;  // NaN stays NaN
}

// In-place softmax over n values.
void softmax(float* x, int64_t n);

// gate[i] = silu(gate[i]) * up[i]  (SwiGLU)
void swiglu(float* gate, const float* up, int64_t n);

// gate[i] = gelu(gate[i]) * up[i] with GELU's tanh approximation (Gemma's gelu_pytorch_tanh):
// gelu(x) = x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))
void geglu(float* gate, const float* up, int64_t n);

// x[i] *= s
void scale_inplace(float* x, int64_t n, float s);

// x[i] = cap * tanh(x[i] / cap): Gemma 2's soft-capping of attention scores and logits.
void softcap(float* x, int64_t n, float cap);

// out[i] += x[i]
void add_inplace(float* out, const float* x, int64_t n);

// The `group` query heads that share one KV head (grouped-query attention; group = 1 is plain
// multi-head), each head_dim values, consecutive in q, against positions [first_pos, n_pos) of
// a KV cache laid out (pos, kv_dim): out[g] = sum_p softmax(q[g] . k_p * scale)_p v_p, laid out
// like q. Each k_p and v_p is read once for the whole group. scratch holds
// group * (n_pos - first_pos) floats. cap > 0: the scores are soft-capped (softcap) before the
// softmax.
void attend(const float* q, int64_t group, const float* k_cache, const float* v_cache, int64_t kv_stride,
            int64_t n_pos, int64_t first_pos, int64_t head_dim, float scale, float* scratch, float* out,
            float cap = 0);

// attend() for `rows` consecutive positions of one sequence at once (a prompt's rows, or one
// decode row): row r's `group` query heads start at q + r * q_stride, it attends positions
// [first_r, n_pos + r) with first_r = max(0, n_pos + r - window) (window 0: first_r = 0), and
// its output goes to out + r * out_stride. Every row's result is bit for bit attend()'s for that
// row (tested), whichever path runs: the AVX2 and NEON twins (kernels/attend_avx2.cc,
// attend_neon.cc; head sizes that are multiples of 64) score 8 or 4 keys per vector and keep each
// head's output sum in registers over a block of positions, with a block of keys and values read
// once for all the rows' heads; elsewhere, attend() row by row.
struct AttendRows {
  const float* q = nullptr;
  int64_t q_stride = 0;
  float* out = nullptr;
  int64_t out_stride = 0;
  int64_t rows = 1, group = 1, head_dim = 0;
  const float* k_cache = nullptr;  // (pos, kv_stride), this KV head's first value at column 0
  const float* v_cache = nullptr;
  int64_t kv_stride = 0;
  int64_t n_pos = 0;   // row 0 attends up to (not including) n_pos
  int64_t window = 0;  // 0: every earlier position
  float scale = 1;
  float softcap = 0;   // > 0: scores soft-capped before the softmax (Gemma 2)
  float* scratch = nullptr;  // attend_rows_scratch(rows, group, n_pos, window) floats
};
void attend_rows(const AttendRows& a);
int64_t attend_rows_scratch(int64_t rows, int64_t group, int64_t n_pos, int64_t window);
// The first position row `end - 1` attends (end = n_pos + r).
inline int64_t attend_first(int64_t end, int64_t window) { return window > 0 && end > window ? end - window : 0; }
// Scores kept per head by the SIMD twins: from the first row's first position to the last row's
// end, in whole 8s (the widest twin scores 8 keys at a time).
inline int64_t attend_rows_width(int64_t rows, int64_t n_pos, int64_t window) {
  return (n_pos + rows - 1 - attend_first(n_pos, window) + 7) / 8 * 8;
}

}  // namespace lowbit
