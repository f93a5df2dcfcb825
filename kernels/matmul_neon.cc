// NEON kernels (aarch64). The quantized path does the scalar kernel's arithmetic
// (matmul_scalar.cc): per 32-block an exact integer dot Q_b of codes and int8 activations, then
// y = sum_g [de_g * sum_{b in g} s_b * Q_b + ce_g * gsum_g]; only the order of the fp32 sums
// differs (four lanes instead of one). The integer dot uses SDOT when the CPU has it, else
// widening multiplies; the choice is made once, when the kernels are first asked for.
//
// This file is compiled with -march=armv8.2-a+dotprod+fp16 so that vdotq_s32 is available, but
// only the functions instantiated with kSdot = true contain it, and those are reached only when
// cpu_has_dotprod() said yes.
#include <arm_neon.h>

#include <algorithm>

#include "kernels/matmul_impl.h"

namespace lowbit {
namespace {

// Activation rows sharing one unpacked weight block (quantized) or one loaded weight vector
// (float): enough to amortize the unpack, few enough that every accumulator stays in a register.
constexpr int kRowTile = 4;

// ---- quantized weights, int8 activations --------------------------------------------------

// The integer dot of one 32-block: 32 codes (w0, w1) times 32 int8 activations at q, left in
// four int32 lanes whose sum is Q_b (the lanes are summed later, in fp32, after scaling, so no
// horizontal add sits in the inner loop).
template <bool kSdot>
inline int32x4_t block_dot(int8x16_t w0, int8x16_t w1, const int8_t* q) {
  const int8x16_t q0 = vld1q_s8(q);
  const int8x16_t q1 = vld1q_s8(q + 16);
  if constexpr (kSdot) {
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, q0), w1, q1);
  } else {
    // Without SDOT: products widen to int16, and two of them share a lane before widening to
    // int32. That is safe: |code| <= 128 (8-bit after the 0x80 flip) and |q| <= 127 (activations
    // are rounded from absmax/127), so a pair is at most 2 * 128 * 127 = 32512 < 2^15.
    int16x8_t p0 = vmull_s8(vget_low_s8(w0), vget_low_s8(q0));
    p0 = vmlal_high_s8(p0, w0, q0);
    int16x8_t p1 = vmull_s8(vget_low_s8(w1), vget_low_s8(q1));
    p1 = vmlal_high_s8(p1, w1, q1);
    return vpadalq_s16(vpaddlq_s16(p0), p1);
  }
}

// How one row's codes turn into int8 lanes. Plane p of a 32-byte chunk is block p of the chunk
// (quant_format.h), so a block is one shift and one AND of the chunk, never a shuffle. 8-bit
// codes (0..255) do not fit int8: they are flipped to code - 128 with an XOR, and the lost
// 128 * de per weight comes back through the group's activation sum (ce' = ce + 128 de). Codes
// of 1, 2 and 4 bits are small non-negative ints and go to SDOT as they are.
struct Unpacker {
  explicit Unpacker(int bits)
      : mask(vdupq_n_u8((uint8_t)((1u << bits) - 1u))),
        flip(vdupq_n_u8(bits == 8 ? 0x80 : 0x00)),
        bits(bits),
        plane_shift(bits == 1 ? 3 : bits == 2 ? 2 : bits == 4 ? 1 : 0),
        fold(bits == 8 ? 128.0f : 0.0f) {}

  // Block b of the row (weights 32b .. 32b+31) as two int8x16.
  inline void block(const uint8_t* codes, int64_t b, int8x16_t& w0, int8x16_t& w1) const {
    const uint8_t* chunk = codes + (b >> plane_shift) * kChunkBytes;
    // USHL by a negative count shifts right: the plane's bit offset is a run-time value.
    const int8x16_t shift = vdupq_n_s8((int8_t)(-(int)(b & ((1 << plane_shift) - 1)) * bits));
    w0 = vreinterpretq_s8_u8(veorq_u8(vandq_u8(vshlq_u8(vld1q_u8(chunk), shift), mask), flip));
    w1 = vreinterpretq_s8_u8(veorq_u8(vandq_u8(vshlq_u8(vld1q_u8(chunk + 16), shift), mask), flip));
  }

  uint8x16_t mask;
  uint8x16_t flip;
  int bits;
  int plane_shift;  // log2(blocks per chunk)
  float fold;       // added to ce as fold * de
};

// Weight row n against activation rows [r0, r0 + R): one unpack per block serves all R rows.
template <bool kSdot, int R>
void q_row(const QMatrix& w, const QSections<const uint8_t>& l, const Unpacker& u, const QuantizedActs& a,
           int64_t r0, int64_t n, float* y) {
  const uint8_t* codes = l.row_codes(n);  // (row_bytes)
  const int64_t kb = ceil_div(w.k, kActBlock);  // blocks holding real weights
  const int8_t* q[R];     // per row: (kp) int8 activations
  const float* s[R];      // per row: (blocks) activation scales
  const float* gsum[R];   // per row: (groups) sum of scale * bsum per weight group
  for (int r = 0; r < R; ++r) {
    q[r] = a.q.data() + (r0 + r) * a.kp;
    s[r] = a.scale.data() + (r0 + r) * a.blocks;
    gsum[r] = a.gsum.data() + (r0 + r) * a.groups;
  }

  float32x4_t acc[R];  // de_g * sum_b s_b * Q_b, still in lanes
  float cacc[R];       // sum_g ce'_g * gsum_g
  for (int r = 0; r < R; ++r) {
    acc[r] = vdupq_n_f32(0.0f);
    cacc[r] = 0.0f;
  }
  for (int64_t g = 0; g < l.groups; ++g) {
    const GroupCoeffs c = group_coeffs(w.type, l.scale_at(n, g), l.min_at(n, g));
    const float ce = c.ce + u.fold * c.de;
    float32x4_t sq[R];  // sum_{b in g} s_b * Q_b, in lanes
    for (int r = 0; r < R; ++r) sq[r] = vdupq_n_f32(0.0f);
    const int64_t b_end = std::min(kb, (g + 1) * a.group_blocks);
    for (int64_t b = g * a.group_blocks; b < b_end; ++b) {
      int8x16_t w0, w1;
      u.block(codes, b, w0, w1);
      for (int r = 0; r < R; ++r) {
        // |Q_b| < 2^24, so the conversion to fp32 is exact, lane by lane.
        const float32x4_t dot = vcvtq_f32_s32(block_dot<kSdot>(w0, w1, q[r] + b * kActBlock));
        sq[r] = vfmaq_n_f32(sq[r], dot, s[r][b]);
      }
    }
    for (int r = 0; r < R; ++r) {
      acc[r] = vfmaq_n_f32(acc[r], sq[r], c.de);
      cacc[r] += ce * gsum[r][g];
    }
  }
  for (int r = 0; r < R; ++r) y[(r0 + r) * w.n + n] = vaddvq_f32(acc[r]) + cacc[r];
}

template <bool kSdot>
void gemm_q_neon(const QMatrix& w, const QuantizedActs& a, float* y, int64_t n0, int64_t n1) {
  const QSections<const uint8_t> l = q_sections(w.type, w.n, w.k, w.data);
  const Unpacker u(w.type.bits);
  // Weight row outermost: its codes (at most a few KiB) stay in L1 while every tile of
  // activation rows passes over them.
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t r0 = 0; r0 < a.m; r0 += kRowTile) {
      switch (std::min<int64_t>(kRowTile, a.m - r0)) {
        case 1: q_row<kSdot, 1>(w, l, u, a, r0, n, y); break;
        case 2: q_row<kSdot, 2>(w, l, u, a, r0, n, y); break;
        case 3: q_row<kSdot, 3>(w, l, u, a, r0, n, y); break;
        default: q_row<kSdot, 4>(w, l, u, a, r0, n, y); break;
      }
    }
  }
  static_assert(kRowTile == 4, "the switch above covers tiles of 1..4 rows");
}

// ---- float weights, fp32 activations ------------------------------------------------------

// Four weights i .. i+3 of a row as fp32. Rows are read as bytes (the matrix is only 32-byte
// aligned as a whole, and bytes alias anything).
template <Base B>
inline float32x4_t load4(const uint8_t* row, int64_t i) {
  if constexpr (B == Base::f32) {
    return vreinterpretq_f32_u8(vld1q_u8(row + 4 * i));
  } else if constexpr (B == Base::f16) {
    return vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(row + 2 * i)));
  } else {
    // bf16 is the top half of an fp32: widen each lane by a 16-bit left shift.
    return vreinterpretq_f32_u32(vshll_n_u16(vreinterpret_u16_u8(vld1_u8(row + 2 * i)), 16));
  }
}

template <Base B>
inline float load1(const uint8_t* row, int64_t i) {
  if constexpr (B == Base::f32) {
    return f32_from_bits((uint32_t)row[4 * i] | (uint32_t)row[4 * i + 1] << 8 |
                         (uint32_t)row[4 * i + 2] << 16 | (uint32_t)row[4 * i + 3] << 24);
  } else {
    const uint16_t h = (uint16_t)(row[2 * i] | row[2 * i + 1] << 8);
    return B == Base::f16 ? f16_to_f32(h) : bf16_to_f32(h);
  }
}

// Weight row n against activation rows [r0, r0 + R). Four independent accumulators per row hide
// the FMA latency at R = 1, and every R uses the same four, so a row's sums come out in the same
// order at every M (batched decoding relies on it); R = 4 holds 16 accumulators and 4 weight
// vectors, within the 32 vector registers.
template <Base B, int R>
void f_row(const QMatrix& w, const float* x, int64_t r0, int64_t n, float* y) {
  constexpr int U = 4;  // 4-lane vectors per step
  const int64_t k = w.k;
  const uint8_t* row = w.data + n * k * float_bytes(B);  // (k) weights
  const float* xr[R];                                    // per row: (k) activations
  for (int r = 0; r < R; ++r) xr[r] = x + (r0 + r) * k;

  float32x4_t acc[R][U];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < U; ++v) acc[r][v] = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 4 * U <= k; i += 4 * U) {
    float32x4_t wv[U];
    for (int v = 0; v < U; ++v) wv[v] = load4<B>(row, i + 4 * v);
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < U; ++v) acc[r][v] = vfmaq_f32(acc[r][v], wv[v], vld1q_f32(xr[r] + i + 4 * v));
  }
  for (; i + 4 <= k; i += 4) {
    const float32x4_t wv = load4<B>(row, i);
    for (int r = 0; r < R; ++r) acc[r][0] = vfmaq_f32(acc[r][0], wv, vld1q_f32(xr[r] + i));
  }
  for (int r = 0; r < R; ++r) {
    float32x4_t sum = acc[r][0];
    for (int v = 1; v < U; ++v) sum = vaddq_f32(sum, acc[r][v]);
    float out = vaddvq_f32(sum);
    for (int64_t j = i; j < k; ++j) out += load1<B>(row, j) * xr[r][j];
    y[(r0 + r) * w.n + n] = out;
  }
}

template <Base B>
void gemm_f_base(const QMatrix& w, const float* x, int64_t m, float* y, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t r0 = 0; r0 < m; r0 += kRowTile) {
      switch (std::min<int64_t>(kRowTile, m - r0)) {
        case 1: f_row<B, 1>(w, x, r0, n, y); break;
        case 2: f_row<B, 2>(w, x, r0, n, y); break;
        case 3: f_row<B, 3>(w, x, r0, n, y); break;
        default: f_row<B, 4>(w, x, r0, n, y); break;
      }
    }
  }
}

void gemm_f_neon(const QMatrix& w, const float* x, int64_t m, float* y, int64_t n0, int64_t n1) {
  switch (w.type.base) {
    case Base::f32: return gemm_f_base<Base::f32>(w, x, m, y, n0, n1);
    case Base::f16: return gemm_f_base<Base::f16>(w, x, m, y, n0, n1);
    default: return gemm_f_base<Base::bf16>(w, x, m, y, n0, n1);
  }
}

}  // namespace

const CpuKernels& neon_kernels() {
  static const CpuKernels with_dot{"neon+dotprod", gemm_q_neon<true>, gemm_f_neon, 4, quantize_act_row_scalar,
                                   nullptr, nullptr};
  static const CpuKernels without_dot{"neon", gemm_q_neon<false>, gemm_f_neon, 4, quantize_act_row_scalar,
                                      nullptr, nullptr};
  static const CpuKernels& chosen = cpu_has_dotprod() ? with_dot : without_dot;
  return chosen;
}

}  // namespace lowbit
