// AVX2 twin of attend() (kernels/ops.cc) for several rows of one sequence: the same arithmetic,
// element by element, in a cheaper order.
// - Scores: attend()'s dot keeps 8 partial sums (lane j sums the products of dims j, j + 8, ...
//   in dim order, one FMA each) and adds them as ((0 + 4) + (1 + 5)) + ((2 + 6) + (3 + 7)). Here
//   each key's 8 partial sums are the same FMA chain, and 8 keys' sums are reduced together: the
//   128-bit halves added (the "+ 4" pairs), then two rounds of horizontal adds, which give the
//   same pairs in the same order with the 8 keys' results in one vector. attend() spent most of
//   its time in one horizontal sum per key.
// - Weighted sum of V: attend() adds a * v_p to the output in memory, position by position;
//   here each head's output stays in registers over a block of positions (the same FMAs in the
//   same order), and a block's K and V rows serve every row and head of the call from L1.
// - Softmax: the same function on the same scores.
#include <immintrin.h>

#include "kernels/attend_rows_impl.h"

namespace lowbit::avx2 {
namespace {

struct Lanes {
  static constexpr int64_t kKeys = 8;

  // Scores of 8 keys from k (rows kv_stride apart), `valid` of them real (the rest give 0). Keys j
  // and j + 4 are summed side by side and their halves added at once, so 4 vectors stay live; with
  // HD known the query stays in registers over the 8 keys (one load per FMA, not two).
  template <int HD>
  static void scores(const float* q, const float* k, int64_t kv_stride, int64_t valid, int64_t hd, float scale,
                     float* out) {
    constexpr int kRegs = HD > 0 && HD <= 64 ? HD / 8 : 1;
    __m256 qr[kRegs];
    if constexpr (HD > 0 && HD <= 64)
      for (int i = 0; i < kRegs; ++i) qr[i] = _mm256_loadu_ps(q + 8 * i);
    auto chain = [&](int j) {
      __m256 acc = _mm256_setzero_ps();
      if (j < valid) {
        const float* kj = k + j * kv_stride;
        if constexpr (HD > 0 && HD <= 64) {
          for (int i = 0; i < kRegs; ++i) acc = _mm256_fmadd_ps(qr[i], _mm256_loadu_ps(kj + 8 * i), acc);
        } else {
          for (int64_t i = 0; i < (HD > 0 ? HD : hd); i += 8)
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(kj + i), acc);
        }
      }
      return acc;
    };
    // x[j] holds key j's 4 half sums (lanes 0-3) and key j + 4's (lanes 4-7).
    __m256 x[4];
    for (int j = 0; j < 4; ++j) {
      const __m256 lo = chain(j), hi = chain(j + 4);
      x[j] = _mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31));
    }
    const __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(x[0], x[1]), _mm256_hadd_ps(x[2], x[3]));
    _mm256_storeu_ps(out, _mm256_mul_ps(s, _mm256_set1_ps(scale)));
  }

  // o += w[p] * v_p for p in [p0, p1), in position order, the HD-wide output in registers.
  template <int HD>
  static void weighted_sum(const float* w, const float* v, int64_t kv_stride, int64_t p0, int64_t p1, float* o) {
    __m256 acc[HD / 8];
    for (int i = 0; i < HD / 8; ++i) acc[i] = _mm256_loadu_ps(o + 8 * i);
    for (int64_t p = p0; p < p1; ++p) {
      const __m256 a = _mm256_broadcast_ss(w + p);
      const float* vp = v + p * kv_stride;
      for (int i = 0; i < HD / 8; ++i) acc[i] = _mm256_fmadd_ps(a, _mm256_loadu_ps(vp + 8 * i), acc[i]);
    }
    for (int i = 0; i < HD / 8; ++i) _mm256_storeu_ps(o + 8 * i, acc[i]);
  }
};

}  // namespace

bool attend_rows(const AttendRows& a) { return attend_impl::attend_rows<Lanes>(a); }

}  // namespace lowbit::avx2
