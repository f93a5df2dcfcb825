// attend() against the same attention in double, for one query head and for a group sharing a
// KV head. The bound comes from fp32 rounding: each score
// q . k_p * scale is off by at most d_p = (head_dim + 8) 2^-24 sum_i |q_i k_pi| scale (a sum of
// head_dim products, in any order, plus the scaling); a softmax weight w_p = e^s_p / sum e^s
// moves by at most (2 max d + (n + 8) 2^-24) w_p, which carries over to out_i with the |v_pi|
// it multiplies, plus the fp32 sum of n weighted values: (n + 8) 2^-24 sum_p w_p |v_pi|.
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

}  // namespace
}  // namespace lowbit
