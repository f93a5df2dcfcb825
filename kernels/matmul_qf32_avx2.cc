// Prefill of quantized weights through fp32: W is dequantized a panel at a time into fp32 and
// multiplied by the fp32 activations in a register-blocked FMA kernel, the way BLAS sgemm runs.
//
// Why a second path: the int8 tile (matmul_quant_avx2.cc) pays, per 32 weights and activation
// row, a vpmaddubsw and a share of the block reduction, and at 8 bits also vpsignb and a
// vpmaddwd (its levels do not fit vpmaddubsw's unsigned operand): at M = 512 that holds 8 bits
// with groups to ~0.7-0.8 of the fp32 FMA peak where the other widths reach ~1.0 (see
// q_in_f32). Here the dequantization is paid once per weight and panel of
// activation rows (~1 vector op per weight, against kPanelRows / 8 FMAs), and the kernel is
// FMAs fed from L1: 6 activation rows x 16 weight rows in 12 accumulators, each step one
// 16-wide row of dequantized weights (2 loads) and 6 broadcast activations for 12 FMAs.
// The activations stay fp32, so the only error is fp32 rounding, as with float weights.
//
// Loops of one task (weight rows [n0, n1)):
//   panels of kPanelRows activation rows
//     slices of kSlice columns of K (whole chunks at every bit width)
//       panels of 16 weight rows: dequantize the slice, transposed to Wp[k][16] (16 KiB, in L1)
//         6 activation rows at a time: the micro-kernel, adding into Y (storing at slice 0)
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/codes_x86.h"
#include "kernels/matmul_avx2.h"

namespace lowbit::avx2 {
namespace {

using namespace x86;  // codes_x86.h

constexpr int kMicroRows = 6;      // activation rows of the micro-kernel
constexpr int kMicroCols = 16;     // weight rows (output columns) of the micro-kernel
constexpr int64_t kSlice = 256;    // K columns per slice: a multiple of every chunk (256 / bits)
// Activation rows per panel: the panel's slice of X (288 x 1 KiB) stays in L2 (512 KiB on Zen 3)
// while every weight panel of the task passes; W is dequantized once per panel. 2 threads, M =
// 512, 2 runs, fraction of the FMA peak at 96 / 192 / 288 rows: q8_g32 0.79 / 0.78-0.82 /
// 0.80-0.82, q4_g32 0.80-0.81 / 0.84-0.89 / 0.87-0.88; TinyLlama-shape q4 prompt (bench
// model --prompt-len 512) 86-87 / 92 / 92 tokens/s.
constexpr int64_t kPanelRows = 288;
static_assert(kSlice % kMaxChunkWeights == 0, "slices are whole chunks");

// Which prefill shapes take this path: 8 bits with groups (not per row) from 128 activation
// rows. `lowbit bench matmul --n 14336 --k 4096 --threads 2`, weights from DRAM, fraction of the
// fp32 FMA peak measured in the same run, int8 tile -> this path (2 runs each, Zen 5 cores):
//   q8_g32_sym   M = 64: 0.67-0.73 -> 0.70, 128: 0.74-0.76 -> 0.75-0.77, 256: 0.74-0.75 -> 0.79-0.81,
//                512: 0.71-0.74 -> 0.80-0.86
//   q8_g128_sym  M = 128: 0.74-0.80 -> 0.78-0.81, 512: 0.78-0.80 -> 0.80-0.91
//   q8_row_sym   M = 128: 0.89-0.91 -> 0.78-0.83, 512: 0.89 -> 0.83-0.85 (no multiplier table)
//   q4_g32_asym  M = 32: 0.87-0.99 -> 0.58-0.59, 512: 0.96-1.03 -> 0.83-0.85
//   q1_g32_asym  M = 32: 1.06-1.07 -> 0.61-0.64, 512: 1.08-1.10 -> 0.88
// (Below 8 bits vpmaddubsw does 32 multiply-adds where an FMA does 8, and the int8 tile stays.)
// -DLOWBIT_AVX2_F32_MIN_ROWS=M moves the row count for A/B builds.
#ifndef LOWBIT_AVX2_F32_MIN_ROWS
#define LOWBIT_AVX2_F32_MIN_ROWS 128
#endif
constexpr int64_t kF32MinRows = LOWBIT_AVX2_F32_MIN_ROWS;

inline __m256i lane_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Where one matrix's codes, scales and minima are.
struct QView {
  QType type;
  QSections<const uint8_t> sec;
  const uint8_t* codes;
  int64_t row_bytes;
  int64_t groups, group_size, k;
};

// Row n's weights [k0, k0 + kc) as fp32 into out[0, round_up(kc, 8)), zeros past kc. k0 is a
// multiple of kSlice, so the slice starts on a chunk. Each block's 32 codes come out of the
// chunk as plane<> gives them (1 and 2 bits: times 2^plane_shift, undone in de) and go through
// w = de * code + ce (quant_format.h) in one FMA.
template <int BITS>
void dequantize_slice(const QView& v, int64_t n, int64_t k0, int64_t kc, float* out) {
  constexpr int CB = 8 / BITS;  // blocks per chunk
  constexpr int64_t CW = chunk_weights(BITS);
  const uint8_t* row = v.codes + n * v.row_bytes;
  for (int64_t c = k0 / CW; c * CW < k0 + kc; ++c) {
    const __m256i raw = load32(row + c * kChunkBytes);
    unroll<CB>([&](auto p) {
      const int64_t kb = c * CW + p * kActBlock;  // first weight of the block
      if (kb >= k0 + kc) return;
      const int64_t g = kb / v.group_size;
      const GroupCoeffs gc = group_coeffs(v.type, v.sec.scale_at(n, g), v.sec.min_at(n, g));
      const __m256 de = _mm256_set1_ps(gc.de / (float)(1 << plane_shift<BITS, p>()));
      const __m256 ce = _mm256_set1_ps(gc.ce);
      const __m256i q = BITS == 8 ? raw : plane<BITS, p>(raw);  // unsigned codes, one per byte
      const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
      const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
      float* o = out + (kb - k0);
      for (int j = 0; j < 4; ++j)
        _mm256_storeu_ps(o + 8 * j, _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[j])), de, ce));
    });
  }
  for (int64_t i = kc; i < round_up(kc, 8); ++i) out[i] = 0.0f;  // past K: padding codes
}

// The codes, scales and minima pack_panel will read for the next panel, prefetched while this
// one is multiplied: from DRAM its 16 rows are 16 separate streams, which the hardware
// prefetcher follows too late (8 bits, M = 32, 2 threads: 0.46 of the FMA peak without this).
// Always inlined: as a function of its own GCC 12 finds it has no side effects and drops the
// call, prefetches and all.
template <int BITS>
[[gnu::always_inline]] inline void prefetch_panel(const QView& v, int64_t n, int cols, int64_t k0, int64_t kc) {
  constexpr int64_t CW = chunk_weights(BITS);
  const int64_t b0 = k0 / CW * kChunkBytes, b1 = ceil_div(k0 + kc, CW) * kChunkBytes;
  const int64_t g0 = k0 / v.group_size;  // a slice spans <= 8 groups: 16 bytes, one line or two
  for (int r = 0; r < cols; ++r) {
    const uint8_t* row = v.codes + (n + r) * v.row_bytes;
    for (int64_t b = b0; b < b1; b += 64) __builtin_prefetch(row + b, 0, 3);
    const int64_t g = (n + r) * v.groups + g0;
    if (v.sec.coded()) {
      __builtin_prefetch(v.sec.row_scale_codes(n + r), 0, 3);
      __builtin_prefetch(v.sec.row_min_codes(n + r), 0, 3);
      __builtin_prefetch(v.sec.factors + 2 * (n + r), 0, 3);
    } else {
      __builtin_prefetch(v.sec.scales + g, 0, 3);
      if (v.sec.mins) __builtin_prefetch(v.sec.mins + g, 0, 3);
    }
  }
}

// Transposes the 8 x 8 block of rows r[0..7] (8 floats each) into 8 vectors of one column each.
inline void transpose8(__m256 (&r)[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x20);
    r[4 + i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x31);
  }
}

// Weight rows [n, n + cols) (cols <= 16; the rest zero), columns [k0, k0 + kc) of K, into
// wp[k][16]. rows: scratch of 16 x (kSlice + 32) floats.
template <int BITS>
void pack_panel(const QView& v, int64_t n, int cols, int64_t k0, int64_t kc, float* rows, float* wp) {
  constexpr int64_t ld = kSlice + kActBlock;
  const int64_t k8 = round_up(kc, 8);
  for (int r = 0; r < kMicroCols; ++r) {
    if (r < cols) dequantize_slice<BITS>(v, n + r, k0, kc, rows + r * ld);
    else std::memset(rows + r * ld, 0, sizeof(float) * k8);
  }
  for (int half = 0; half < 2; ++half)
    for (int64_t i = 0; i < k8; i += 8) {
      __m256 blk[8];
      for (int r = 0; r < 8; ++r) blk[r] = _mm256_loadu_ps(rows + (8 * half + r) * ld + i);
      transpose8(blk);
      for (int j = 0; j < 8; ++j) _mm256_store_ps(wp + (i + j) * kMicroCols + 8 * half, blk[j]);
    }
}

// One activation times one 16-wide row of weights, into one row of accumulators.
[[gnu::always_inline]] inline void fma_row(float a, __m256 b0, __m256 b1, __m256& lo, __m256& hi) {
  const __m256 av = _mm256_set1_ps(a);
  lo = _mm256_fmadd_ps(av, b0, lo);
  hi = _mm256_fmadd_ps(av, b1, hi);
}

// y[rows x cols] (+)= x[rows x kc] * wp[kc x 16], for rows <= 6 activation rows (stride ldx)
// and cols <= 16 output columns (stride ldy); stores when first, else adds. Always computes 6
// rows (the missing ones repeat the last row and are not stored): the 12 accumulators are
// named variables because GCC 12 kept an array of them in memory, storing all 12 after every
// FMA (half the speed), however the loops over it were written.
void micro(int rows, const float* x, int64_t ldx, const float* wp, int64_t kc, float* y, int64_t ldy, int cols,
           bool first) {
  const float* x0 = x;
  const float* x1 = x + std::min(1, rows - 1) * ldx;
  const float* x2 = x + std::min(2, rows - 1) * ldx;
  const float* x3 = x + std::min(3, rows - 1) * ldx;
  const float* x4 = x + std::min(4, rows - 1) * ldx;
  const float* x5 = x + std::min(5, rows - 1) * ldx;
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(wp + k * kMicroCols), b1 = _mm256_load_ps(wp + k * kMicroCols + 8);
    fma_row(x0[k], b0, b1, c00, c01);
    fma_row(x1[k], b0, b1, c10, c11);
    fma_row(x2[k], b0, b1, c20, c21);
    fma_row(x3[k], b0, b1, c30, c31);
    fma_row(x4[k], b0, b1, c40, c41);
    fma_row(x5[k], b0, b1, c50, c51);
  }
  const __m256 tile[kMicroRows][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int i = 0; i < rows; ++i)
    for (int h = 0; h < 2; ++h) {
      float* p = y + i * ldy + 8 * h;
      const int lanes = cols - 8 * h;
      if (lanes >= 8) {
        _mm256_storeu_ps(p, first ? tile[i][h] : _mm256_add_ps(tile[i][h], _mm256_loadu_ps(p)));
      } else if (lanes > 0) {
        const __m256i mask = lane_mask(lanes);
        _mm256_maskstore_ps(p, mask, first ? tile[i][h] : _mm256_add_ps(tile[i][h], _mm256_maskload_ps(p, mask)));
      }
    }
}

template <int BITS>
void gemm_bits(const QView& v, const float* x, int64_t m, float* y, int64_t ldy, int64_t n0, int64_t n1) {
  // Per thread, reused: the transposed panel (32-byte aligned for its loads) and the
  // dequantized rows it is made from.
  struct alignas(32) Eight {
    float v[8];
  };
  thread_local std::vector<Eight> wp_store(kSlice * kMicroCols / 8);
  thread_local std::vector<float> rows_store(kMicroCols * (kSlice + kActBlock));
  float* wp = reinterpret_cast<float*>(wp_store.data());
  const int64_t k = v.k;
  for (int64_t p0 = 0; p0 < m; p0 += kPanelRows) {
    const int64_t p1 = std::min(m, p0 + kPanelRows);
    for (int64_t k0 = 0; k0 < k; k0 += kSlice) {
      const int64_t kc = std::min(kSlice, k - k0);
      for (int64_t n = n0; n < n1; n += kMicroCols) {
        const int cols = (int)std::min<int64_t>(kMicroCols, n1 - n);
        if (n + kMicroCols < n1)
          prefetch_panel<BITS>(v, n + kMicroCols, (int)std::min<int64_t>(kMicroCols, n1 - n - kMicroCols), k0, kc);
        pack_panel<BITS>(v, n, cols, k0, kc, rows_store.data(), wp);
        for (int64_t r = p0; r < p1; r += kMicroRows)
          micro((int)std::min<int64_t>(kMicroRows, p1 - r), x + r * k + k0, k, wp, kc, y + r * ldy + n, ldy, cols,
                     k0 == 0);
      }
    }
  }
}

}  // namespace

bool q_in_f32(const QType& t, int64_t m) {
  return t.base == Base::q && t.bits == 8 && t.group != 0 && m >= kF32MinRows;
}

void gemm_q_f32(const QMatrix& w, const float* x, int64_t m, float* y, int64_t n0, int64_t n1) {
  const QSections<const uint8_t> sec = q_sections(w.type, w.n, w.k, w.data);
  const QView v{w.type,
                sec,
                sec.codes,
                sec.row_bytes,
                sec.groups,
                group_size(w.type, w.k),
                w.k};
  switch (w.type.bits) {
    case 1: return gemm_bits<1>(v, x, m, y, w.n, n0, n1);
    case 2: return gemm_bits<2>(v, x, m, y, w.n, n0, n1);
    case 4: return gemm_bits<4>(v, x, m, y, w.n, n0, n1);
    default: return gemm_bits<8>(v, x, m, y, w.n, n0, n1);
  }
}

}  // namespace lowbit::avx2
