// NEON twin of attend() (kernels/ops.cc) for several rows of one sequence, as the AVX2 one
// (attend_avx2.cc, whose comment says why this order is cheaper): the same arithmetic element
// by element. attend()'s dot keeps 8 partial sums, two 4-lane vectors here (dims 8i..8i+3 and
// 8i+4..8i+7, one fused multiply-add each), added as ((0 + 4) + (1 + 5)) + ((2 + 6) + (3 + 7)):
// one vector add gives the "+ 4" pairs, and two rounds of pairwise adds over 4 keys give the
// rest in the same order, the 4 keys' results in one vector.
#include <arm_neon.h>

#include "kernels/attend_rows_impl.h"

namespace lowbit::neon {
namespace {

struct Lanes {
  static constexpr int64_t kKeys = 4;

  // Scores of 4 keys from k (rows kv_stride apart), `valid` of them real (the rest give 0); with
  // HD up to 64 the query stays in registers over the 4 keys.
  template <int HD>
  static void scores(const float* q, const float* k, int64_t kv_stride, int64_t valid, int64_t hd, float scale,
                     float* out) {
    constexpr int kRegs = HD > 0 && HD <= 64 ? HD / 4 : 1;
    float32x4_t qr[kRegs];
    if constexpr (HD > 0 && HD <= 64)
      for (int i = 0; i < kRegs; ++i) qr[i] = vld1q_f32(q + 4 * i);
    float32x4_t h[4];  // per key: its 8 partial sums with the "+ 4" pairs added
    for (int j = 0; j < 4; ++j) {
      float32x4_t a0 = vdupq_n_f32(0), a1 = vdupq_n_f32(0);
      if (j < valid) {
        const float* kj = k + j * kv_stride;
        if constexpr (HD > 0 && HD <= 64) {
          for (int i = 0; i < kRegs; i += 2) {
            a0 = vfmaq_f32(a0, qr[i], vld1q_f32(kj + 4 * i));
            a1 = vfmaq_f32(a1, qr[i + 1], vld1q_f32(kj + 4 * i + 4));
          }
        } else {
          for (int64_t i = 0; i < (HD > 0 ? HD : hd); i += 8) {
            a0 = vfmaq_f32(a0, vld1q_f32(q + i), vld1q_f32(kj + i));
            a1 = vfmaq_f32(a1, vld1q_f32(q + i + 4), vld1q_f32(kj + i + 4));
          }
        }
      }
      h[j] = vaddq_f32(a0, a1);
    }
    const float32x4_t s = vpaddq_f32(vpaddq_f32(h[0], h[1]), vpaddq_f32(h[2], h[3]));
    vst1q_f32(out, vmulq_n_f32(s, scale));
  }

  // o += w[p] * v_p for p in [p0, p1), in position order, the HD-wide output in registers.
  template <int HD>
  static void weighted_sum(const float* w, const float* v, int64_t kv_stride, int64_t p0, int64_t p1, float* o) {
    float32x4_t acc[HD / 4];
    for (int i = 0; i < HD / 4; ++i) acc[i] = vld1q_f32(o + 4 * i);
    for (int64_t p = p0; p < p1; ++p) {
      const float32x4_t a = vdupq_n_f32(w[p]);
      const float* vp = v + p * kv_stride;
      for (int i = 0; i < HD / 4; ++i) acc[i] = vfmaq_f32(acc[i], a, vld1q_f32(vp + 4 * i));
    }
    for (int i = 0; i < HD / 4; ++i) vst1q_f32(o + 4 * i, acc[i]);
  }
};

}  // namespace

bool attend_rows(const AttendRows& a) { return attend_impl::attend_rows<Lanes>(a); }

}  // namespace lowbit::neon
