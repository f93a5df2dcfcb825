// AVX2 kernels for float weights (f32, f16, bf16) x fp32 activations: FMA into 8-lane fp32
// accumulators, f16 widened by F16C (vcvtph2ps), bf16 by a 16-bit shift into the top half.
//
// M == 1 (decode) runs 4 weight rows per pass sharing each activation load; it is a stream of
// weight bytes, summed over the same K slices as M > 1 so a row's result is the same at every M. M > 1 runs tiles of 3 weight rows x 4 activation rows (12 accumulators): every
// widened weight vector feeds 4 FMAs and every activation vector 3. K is cut into slices and M
// into panels so a tile's weights stay in L1 and the panel's activations in L2.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "kernels/matmul_avx2.h"

namespace lowbit::avx2 {
namespace {

constexpr int64_t kGemvRows = 4;
constexpr int64_t kGemmRows = 3;
constexpr int64_t kGemmActs = 4;
constexpr int64_t kPanelActs = 64;   // activation rows per panel
constexpr int64_t kSlice = 1024;     // K elements per slice: 64 x 4 KiB of activations in L2

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// 8 weights from element i of a row, as fp32.
template <Base B>
inline __m256 load8(const uint8_t* row, int64_t i) {
  if constexpr (B == Base::f32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i));
    if constexpr (B == Base::f16) return _mm256_cvtph_ps(h);
    else return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

// The last n (< 8) weights from element i, zero-filled; never reads past the row.
template <Base B>
inline __m256 load_tail(const uint8_t* row, int64_t i, int n) {
  alignas(32) uint8_t tmp[32] = {};
  std::memcpy(tmp, row + i * float_bytes(B), (size_t)n * float_bytes(B));
  return load8<B>(tmp, 0);
}

// Rows n..n+R-1 of W x activation rows m0..m0+C-1 over K elements [k0, k1); adds into y
// unless first, where it stores.
template <Base B, int R, int C>
void tile(const QMatrix& w, const float* x, float* y, int64_t n, int64_t m0, int64_t k0, int64_t k1,
          bool first) {
  const int64_t k = w.k, row_bytes = k * float_bytes(B);
  const uint8_t* row[R];
  for (int r = 0; r < R; ++r) row[r] = w.data + (n + r) * row_bytes;
  const float* xr[C];
  for (int c = 0; c < C; ++c) xr[c] = x + (m0 + c) * k;
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  int64_t i = k0;
  for (; i + 8 <= k1; i += 8) {
    __m256 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = load8<B>(row[r], i);
    for (int c = 0; c < C; ++c) {
      const __m256 xv = _mm256_loadu_ps(xr[c] + i);
      for (int r = 0; r < R; ++r) acc[r][c] = _mm256_fmadd_ps(wv[r], xv, acc[r][c]);
    }
  }
  if (i < k1) {
    const int rest = (int)(k1 - i);
    const __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(rest), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = load_tail<B>(row[r], i, rest);
    for (int c = 0; c < C; ++c) {
      const __m256 xv = _mm256_maskload_ps(xr[c] + i, lanes);
      for (int r = 0; r < R; ++r) acc[r][c] = _mm256_fmadd_ps(wv[r], xv, acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      float& out = y[(m0 + c) * w.n + n + r];
      out = first ? hsum(acc[r][c]) : out + hsum(acc[r][c]);
    }
}

template <Base B, int R>
void act_tiles(const QMatrix& w, const float* x, float* y, int64_t n, int64_t p0, int64_t p1,
               int64_t k0, int64_t k1, bool first) {
  int64_t m = p0;
  for (; m + kGemmActs <= p1; m += kGemmActs) tile<B, R, kGemmActs>(w, x, y, n, m, k0, k1, first);
  switch (p1 - m) {
    case 3: tile<B, R, 3>(w, x, y, n, m, k0, k1, first); break;
    case 2: tile<B, R, 2>(w, x, y, n, m, k0, k1, first); break;
    case 1: tile<B, R, 1>(w, x, y, n, m, k0, k1, first); break;
    default: break;
  }
}

template <Base B>
void gemm_base(const QMatrix& w, const float* x, int64_t m, float* y, int64_t n0, int64_t n1) {
  if (m == 1) {
    // K in the same slices as M > 1, each row's slices in turn: the same sums in the same order,
    // so a row's result does not depend on M (batched decoding relies on it), and a tile's rows
    // still stream through memory front to back.
    auto slices = [&](auto rows, int64_t n) {
      for (int64_t k0 = 0; k0 < w.k; k0 += kSlice) tile<B, rows(), 1>(w, x, y, n, 0, k0, std::min(w.k, k0 + kSlice), k0 == 0);
    };
    int64_t n = n0;
    for (; n + kGemvRows <= n1; n += kGemvRows) slices(std::integral_constant<int, kGemvRows>{}, n);
    for (; n < n1; ++n) slices(std::integral_constant<int, 1>{}, n);
    return;
  }
  for (int64_t p0 = 0; p0 < m; p0 += kPanelActs) {
    const int64_t p1 = std::min(m, p0 + kPanelActs);
    for (int64_t k0 = 0; k0 < w.k; k0 += kSlice) {
      const int64_t k1 = std::min(w.k, k0 + kSlice);
      int64_t n = n0;
      for (; n + kGemmRows <= n1; n += kGemmRows) act_tiles<B, kGemmRows>(w, x, y, n, p0, p1, k0, k1, k0 == 0);
      for (; n < n1; ++n) act_tiles<B, 1>(w, x, y, n, p0, p1, k0, k1, k0 == 0);
    }
  }
}

}  // namespace

void gemm_f(const QMatrix& w, const float* x, int64_t m, float* y, int64_t n0, int64_t n1) {
  switch (w.type.base) {
    case Base::f32: return gemm_base<Base::f32>(w, x, m, y, n0, n1);
    case Base::f16: return gemm_base<Base::f16>(w, x, m, y, n0, n1);
    default: return gemm_base<Base::bf16>(w, x, m, y, n0, n1);
  }
}

}  // namespace lowbit::avx2
