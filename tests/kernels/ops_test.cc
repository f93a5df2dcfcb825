// attend() against the same attention in double, for one query head and for a group sharing a
// KV head. The bound comes from fp32 rounding: each score
// q . k_p * scale is off by at most d_p = (head_dim + 8) 2^-24 sum_i |q_i k_pi| scale (a sum of
// head_dim products, in any order, plus the scaling); a softmax weight w_p = e^s_p / sum e^s
// moves by at most (2 max d + (n + 8) 2^-24) w_p, which carries over to out_i with the |v_pi|
// it multiplies, plus the fp32 sum of n weighted values: (n + 8) 2^-24 sum_p w_p |v_pi|. (The
// 8 covers exp_f32's 2 ulp, <= 4 2^-24 of each e^s_p, in the weight and in the sum.)
//
// exp_f32 against std::exp in double: within 2 ulp (its own bound, ops.h), and softmax() built on
// it: each output e^(x_i - max) / sum is off by the exp's 4 2^-24, the sum's (the same, in
// double), 1/sum's rounding and the product's, so 10 2^-24 of itself, plus what the fp32
// x_i - max rounds away, <= |x_i - max| 2^-24 in the exponent, for x_i and within the sum.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/ops.h"
#include "tests/kernels/test_util.h"

namespace lowbit {
namespace {

TEST(Ops, AttendMatchesDoublePrecision) {
  // head_dim: a multiple of 8, one with a tail, one below 8; first > 0 is a sliding window;
  // group > 1 is grouped-query attention.
  struct Shape {
    int64_t head_dim, n_pos, first, stride, group;
  };
  for (const Shape& s : {Shape{64, 300, 0, 256, 1}, Shape{64, 300, 0, 256, 4}, Shape{100, 37, 5, 100, 3},
                         Shape{7, 9, 0, 21, 1}}) {
    SCOPED_TRACE(testing::Message() << "head_dim " << s.head_dim << " group " << s.group);
    const auto q = test::random_matrix(s.group, s.head_dim, 3, 2.0f);
    const auto k = test::random_matrix(s.n_pos, s.stride, 4);
    const auto v = test::random_matrix(s.n_pos, s.stride, 5);
    const float scale = 1.0f / std::sqrt((float)s.head_dim);
    const int64_t n = s.n_pos - s.first;
    std::vector<float> scratch(s.group * n), out(s.group * s.head_dim, NAN);
    attend(q.data(), s.group, k.data(), v.data(), s.stride, s.n_pos, s.first, s.head_dim, scale, scratch.data(),
           out.data());

    for (int64_t g = 0; g < s.group; ++g) {
      const float* qg = &q[g * s.head_dim];
      std::vector<double> score(n), w(n);
      double max_d = 0, mx = -1e300, sum = 0;
      for (int64_t p = 0; p < n; ++p) {
        const float* kp = &k[(s.first + p) * s.stride];
        double dot = 0, mag = 0;
        for (int64_t i = 0; i < s.head_dim; ++i) dot += (double)qg[i] * kp[i], mag += std::fabs((double)qg[i] * kp[i]);
        score[p] = dot * scale;
        max_d = std::max(max_d, (s.head_dim + 8) * std::ldexp(1.0, -24) * mag * scale);
        mx = std::max(mx, score[p]);
      }
      for (int64_t p = 0; p < n; ++p) sum += w[p] = std::exp(score[p] - mx);
      const double rel = 2 * max_d + 2 * (n + 8) * std::ldexp(1.0, -24);
      for (int64_t i = 0; i < s.head_dim; ++i) {
        double ref = 0, mag = 0;
        for (int64_t p = 0; p < n; ++p) {
          const double vp = v[(s.first + p) * s.stride + i];
          ref += w[p] / sum * vp;
          mag += w[p] / sum * std::fabs(vp);
        }
        EXPECT_NEAR(out[g * s.head_dim + i], ref, rel * mag * 1.01 + 1e-30) << "head " << g << " element " << i;
      }
    }
  }
}

// attend_rows() is attend() row by row, bit for bit (its contract, ops.h), whichever path runs:
// head sizes the AVX2 twin takes (64, 128, 192) and one it leaves to attend() (40); tiles of 1 to
// 8 rows; contexts not a multiple of the 8-key groups or the 64-position blocks; a sliding
// window (rows' first positions differ); grouped-query heads; soft-capped scores (Gemma 2's, a
// cap of 2 that bends these). attend() itself is held against double precision above.
TEST(Ops, AttendRowsIsAttendRowByRow) {
  struct Shape {
    int64_t head_dim, group, rows, n_pos, window;
    float cap = 0;
  };
  for (const Shape& s : {Shape{64, 3, 8, 1, 0}, Shape{64, 8, 8, 130, 0}, Shape{64, 1, 1, 77, 0},
                         Shape{128, 4, 5, 200, 0}, Shape{64, 3, 7, 300, 50}, Shape{192, 2, 3, 65, 0},
                         Shape{40, 2, 4, 33, 0}, Shape{128, 1, 8, 513, 100}, Shape{64, 2, 2, 5, 3},
                         Shape{64, 3, 7, 300, 50, 2.0f}, Shape{40, 2, 4, 33, 0, 2.0f}}) {
    SCOPED_TRACE(testing::Message() << "head_dim " << s.head_dim << " group " << s.group << " rows " << s.rows
                                    << " n_pos " << s.n_pos << " window " << s.window << " cap " << s.cap);
    const int64_t stride = s.head_dim * 2 + 8, q_stride = s.group * s.head_dim + 16, positions = s.n_pos + s.rows - 1;
    const auto q = test::random_matrix(s.rows, q_stride, 6, 2.0f);
    const auto k = test::random_matrix(positions, stride, 7, 1.5f);
    const auto v = test::random_matrix(positions, stride, 8);
    const float scale = 1.0f / std::sqrt((float)s.head_dim);
    AttendRows a;
    a.q = q.data() + 3;
    a.q_stride = a.out_stride = q_stride;
    a.rows = s.rows;
    a.group = s.group;
    a.head_dim = s.head_dim;
    a.k_cache = k.data() + 5;  // a KV head at an offset within the row, as the cache's second one
    a.v_cache = v.data() + 5;
    a.kv_stride = stride;
    a.n_pos = s.n_pos;
    a.window = s.window;
    a.scale = scale;
    a.softcap = s.cap;
    std::vector<float> scratch(attend_rows_scratch(s.rows, s.group, s.n_pos, s.window), NAN);
    std::vector<float> out(s.rows * q_stride, -7.0f);
    a.scratch = scratch.data();
    a.out = out.data();
    attend_rows(a);
    for (int64_t r = 0; r < s.rows; ++r) {
      const int64_t end = s.n_pos + r, first = attend_first(end, s.window);
      ASSERT_EQ(first, s.window > 0 ? std::max<int64_t>(0, end - s.window) : 0);
      std::vector<float> sc(s.group * (end - first)), ref(s.group * s.head_dim);
      attend(a.q + r * q_stride, s.group, a.k_cache, a.v_cache, stride, end, first, s.head_dim, scale, sc.data(), ref.data(),
             s.cap);
      for (int64_t i = 0; i < s.group * s.head_dim; ++i)
        ASSERT_EQ(out[r * q_stride + i], ref[i]) << "row " << r << " element " << i;
      for (int64_t i = s.group * s.head_dim; i < q_stride; ++i) ASSERT_EQ(out[r * q_stride + i], -7.0f) << "written past the heads";
    }
  }
}

TEST(Ops, ExpF32WithinTwoUlp) {
  constexpr int kSteps = 1 << 21;
  double worst = 0;
  for (int s = 0; s <= kSteps; ++s) {
    const float x = -87.0f + 175.0f * (float)s / kSteps;
    const double ref = std::exp((double)x);
    if (ref < std::ldexp(1.0, -126)) continue;  // below the normal floats
    int e;
    std::frexp(ref, &e);  // ref in [2^(e-1), 2^e): its ulp as a float is 2^(e-24)
    worst = std::max(worst, std::fabs(exp_f32(x) - ref) / std::ldexp(1.0, e - 24));
  }
  EXPECT_LE(worst, 2.0);
  EXPECT_EQ(exp_f32(0.0f), 1.0f);
  EXPECT_EQ(exp_f32(-100.0f), 0.0f);
  EXPECT_EQ(exp_f32(-INFINITY), 0.0f);
  EXPECT_TRUE(std::isnan(exp_f32(NAN)));
}

TEST(Ops, SoftmaxMatchesDoublePrecision) {
  for (int64_t n : {1, 7, 8, 9, 300, 4097}) {
    SCOPED_TRACE(testing::Message() << "n " << n);
    auto x = test::random_matrix(1, n, 6, 30.0f);  // spreads of ~60: some weights below e^-87
    std::vector<double> ref(n);
    double mx = -1e300, sum = 0;
    for (float v : x) mx = std::max(mx, (double)v);
    for (int64_t i = 0; i < n; ++i) sum += ref[i] = x[i] - mx < -87 ? 0.0 : std::exp(x[i] - mx);
    double spread = 0;
    for (float v : x) spread = std::max(spread, mx - v);
    softmax(x.data(), n);
    for (int64_t i = 0; i < n; ++i)
      EXPECT_NEAR(x[i], ref[i] / sum, (10 + 2 * spread) * std::ldexp(ref[i] / sum, -24) + 1e-45) << i;
  }
}

}  // namespace
}  // namespace lowbit
