// AVX2 twin of quantize_act_row_scalar (matmul.cc): the same float products x * (127 / absmax)
// and the same round-half-even conversion (vcvtps2dq under the default MXCSR, as nearbyint), so
// its bytes are identical to the reference's. A partial last block goes to the scalar code.
#include <immintrin.h>

#include "kernels/matmul_avx2.h"

namespace lowbit::avx2 {

void quantize_act_row(const float* x, int64_t k, int8_t* q, float* scale, int32_t* bsum) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  // packs interleave the 128-bit lanes: this puts the 32 bytes back in order.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const int64_t whole = k / kActBlock;
  for (int64_t b = 0; b < whole; ++b) {
    const float* xb = x + b * kActBlock;
    __m256 v[4];
    for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(xb + 8 * i);
    __m256 mx = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v[0], abs_mask), _mm256_and_ps(v[1], abs_mask)),
                              _mm256_max_ps(_mm256_and_ps(v[2], abs_mask), _mm256_and_ps(v[3], abs_mask)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    const __m256 iv = _mm256_set1_ps(inv);
    __m256i n[4];
    for (int i = 0; i < 4; ++i) n[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], iv));
    const __m256i s = _mm256_add_epi32(_mm256_add_epi32(n[0], n[1]), _mm256_add_epi32(n[2], n[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(n[0], n[1]), _mm256_packs_epi32(n[2], n[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * kActBlock), _mm256_permutevar8x32_epi32(bytes, order));
    scale[b] = amax / 127.0f;
    bsum[b] = _mm_cvtsi128_si32(s4);
  }
  if (whole * kActBlock < k)
    quantize_act_row_scalar(x + whole * kActBlock, k - whole * kActBlock, q + whole * kActBlock, scale + whole, bsum + whole);
}

}  // namespace lowbit::avx2
