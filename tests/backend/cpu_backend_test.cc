// The CPU backend's operations against plain double-precision references written here:
// attention of several sequences in one call (GQA, sliding window, rows in the pool and inline),
// RoPE at each sequence's positions, and the per-row ops.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <utility>
#include <vector>

#include "backend/cpu_backend.h"
#include "kernels/error.h"

namespace lowbit {
namespace {

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// One sequence's host-side mirror of its cache: what positions 0 .. n-1 hold, per layer.
struct Mirror {
  std::vector<float> k, v;  // (positions, kv_dim)
};

// Attention of one query row at position p over [first, p] in double, with the bound of fp32
// arithmetic on it: each score q.k*scale has error <= hd * 2^-24 * scale * sum|q_i k_i|
// (gamma_hd); a score error d moves each softmax weight by a relative <= 2 d_max, and the fp32
// weighted sum adds (n + 8) * 2^-23 * sum a_j |v_j| (exp, the normalization and n adds).
void reference(const float* q, const Mirror& m, int64_t kvh, int64_t hd, int64_t kv_dim, int64_t first, int64_t p,
               float scale, std::vector<double>& out, std::vector<double>& tol) {
  const int64_t n = p - first + 1;
  std::vector<double> s(n);
  double dmax = 0, mx = -1e300;
  for (int64_t j = 0; j < n; ++j) {
    const float* k = &m.k[(first + j) * kv_dim + kvh * hd];
    double dot = 0, mag = 0;
    for (int64_t i = 0; i < hd; ++i) dot += (double)q[i] * k[i], mag += std::fabs((double)q[i] * k[i]);
    s[j] = dot * scale;
    dmax = std::max(dmax, hd * std::ldexp(1.0, -24) * scale * mag);
    mx = std::max(mx, s[j]);
  }
  double sum = 0;
  for (double& x : s) sum += (x = std::exp(x - mx));
  out.assign(hd, 0.0);
  tol.assign(hd, 0.0);
  for (int64_t j = 0; j < n; ++j) {
    const float* v = &m.v[(first + j) * kv_dim + kvh * hd];
    for (int64_t i = 0; i < hd; ++i) {
      out[i] += s[j] / sum * v[i];
      tol[i] += s[j] / sum * std::fabs(v[i]) * (2 * dmax + (n + 8) * std::ldexp(1.0, -23));
    }
  }
}

TEST(CpuBackend, AttentionOfSeveralSequencesInOneCall) {
  // Query heads per KV head: 4 (a power of two) and 3 (as SmolLM2-135M: a decode row's heads
  // are cut into parts that divide the group).
  for (const auto& [n_heads, window] : {std::pair<int64_t, int64_t>{8, 0}, {8, 3}, {6, 0}, {6, 3}}) {
    CpuBackend b({.threads = 2});
    const int64_t n_kv = 2, hd = 16, q_dim = n_heads * hd, kv_dim = n_kv * hd, layer = 1;
    const AttentionShape shape{n_heads, n_kv, hd, window, 1.0f / std::sqrt((float)hd)};
    // Three calls, three sequences: a 30-row prompt (enough work for the pool), a short one; in
    // the second call one decode row and a 3-row chunk at later positions (the pool too); in the
    // third one decode row at position 5 (little enough work to run inline).
    std::vector<std::unique_ptr<KvCache>> caches;
    for (int64_t cap : {40, 16, 8}) caches.push_back(b.new_kv_cache(2, cap, kv_dim));
    std::vector<Mirror> mirror(3);
    const std::vector<std::vector<SeqRows>> calls = {
        {{caches[0].get(), 0, 30, 0}, {caches[1].get(), 30, 2, 0}, {caches[2].get(), 32, 5, 0}},
        {{caches[1].get(), 0, 1, 2}, {caches[0].get(), 1, 3, 30}},
        {{caches[2].get(), 0, 1, 5}}};
    uint32_t seed = 1;
    for (const auto& seqs : calls) {
      int64_t n = 0;
      for (const SeqRows& s : seqs) n += s.rows;
      const auto qh = random_values(n * q_dim, seed++), kh = random_values(n * kv_dim, seed++),
                 vh = random_values(n * kv_dim, seed++);
      BufferPtr qb, kb, vb, ob;
      const Tensor q = b.new_tensor(qb, n, q_dim), k = b.new_tensor(kb, n, kv_dim), v = b.new_tensor(vb, n, kv_dim),
                   out = b.new_tensor(ob, n, q_dim);
      b.write(q, qh.data()), b.write(k, kh.data()), b.write(v, vh.data());
      b.attention(layer, q, k, v, seqs, shape, out);
      std::vector<float> got(n * q_dim);
      b.read(out, got.data());
      for (const SeqRows& s : seqs) {
        Mirror& m = mirror[s.cache == caches[0].get() ? 0 : s.cache == caches[1].get() ? 1 : 2];
        m.k.resize((s.pos + s.rows) * kv_dim), m.v.resize((s.pos + s.rows) * kv_dim);
        std::copy_n(&kh[s.row0 * kv_dim], s.rows * kv_dim, &m.k[s.pos * kv_dim]);
        std::copy_n(&vh[s.row0 * kv_dim], s.rows * kv_dim, &m.v[s.pos * kv_dim]);
        for (int64_t t = 0; t < s.rows; ++t) {
          const int64_t p = s.pos + t, first = window ? std::max<int64_t>(0, p + 1 - window) : 0;
          for (int64_t h = 0; h < n_heads; ++h) {
            std::vector<double> want, tol;
            reference(&qh[(s.row0 + t) * q_dim + h * hd], m, h / (n_heads / n_kv), hd, kv_dim, first, p, shape.scale,
                      want, tol);
            for (int64_t i = 0; i < hd; ++i)
              ASSERT_NEAR(got[(s.row0 + t) * q_dim + h * hd + i], want[i], tol[i] + 1e-30)
                  << n_heads << " heads, window " << window << " position " << p << " head " << h;
          }
        }
      }
    }
  }
}

TEST(CpuBackend, RopeAtEachSequencesPositions) {
  CpuBackend b({.threads = 1});
  const int64_t heads = 2, hd = 8;
  const std::vector<float> inv = {1.0f, 0.1f, 0.01f, 0.001f};
  // All of each head at scale 1, and Phi-4-mini's kind: the first half rotated (a table of
  // hd / 4), the rest passed through, cos and sin times LongRoPE's attention factor.
  for (const auto& [rot, scale] : {std::pair<int64_t, float>{hd, 1.0f}, {hd / 2, 1.19f}}) {
    const Tensor f = b.upload_vector(inv.data(), rot / 2);
    const auto xh = random_values(3 * heads * hd, 9);
    BufferPtr xb;
    const Tensor x = b.new_tensor(xb, 3, heads * hd);
    b.write(x, xh.data());
    KvCache a, c;  // positions only: rope reads no cache
    const std::vector<SeqRows> seqs = {{&a, 0, 1, 7}, {&c, 1, 2, 100}};
    b.rope(x, heads, hd, f, scale, seqs);
    std::vector<float> got(xh.size());
    b.read(x, got.data());
    const int64_t pos[3] = {7, 100, 101};
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t h = 0; h < heads; ++h) {
        const float* v = &xh[(r * heads + h) * hd];
        const float* g = &got[(r * heads + h) * hd];
        for (int64_t i = 0; i < rot / 2; ++i) {
          const double th = pos[r] * (double)inv[i], cs = scale * std::cos(th), sn = scale * std::sin(th);
          // Three fp32 roundings (cos/sin, two products and a sum) of values below 6: < 1e-5.
          EXPECT_NEAR(g[i], v[i] * cs - v[i + rot / 2] * sn, 1e-5) << rot;
          EXPECT_NEAR(g[i + rot / 2], v[i + rot / 2] * cs + v[i] * sn, 1e-5) << rot;
        }
        for (int64_t i = rot; i < hd; ++i) EXPECT_EQ(g[i], v[i]) << "passed through";
      }
  }
  const Tensor too_long = b.upload_vector(inv.data(), 4);
  BufferPtr xb;
  const Tensor x = b.new_tensor(xb, 1, 6);
  EXPECT_THROW(b.rope(x, 1, 6, too_long, 1.0f, {}), Error);  // 8 rotated values in a head of 6
}

TEST(CpuBackend, AddRowsWeighted) {
  CpuBackend b({.threads = 1});
  const std::vector<float> dh = {1, 2, 3, 4, 5, 6}, sh = {10, 20, 30, 40};  // dst 3 x 2, src 2 x 2
  BufferPtr db, sb;
  const Tensor d = b.new_tensor(db, 3, 2), s = b.new_tensor(sb, 2, 2);
  b.write(d, dh.data());
  b.write(s, sh.data());
  const std::vector<int64_t> rows = {2, 0};
  const std::vector<float> w = {0.5f, 0.25f};
  b.add_rows(s, rows, w, d);
  std::vector<float> got(6);
  b.read(d, got.data());
  // Row 2 += 0.5 * (10, 20), row 0 += 0.25 * (30, 40), row 1 untouched: exact in fp32.
  EXPECT_EQ(got, (std::vector<float>{8.5f, 12, 3, 4, 10, 16}));
  const std::vector<int64_t> out_of_range = {3, 0};
  EXPECT_THROW(b.add_rows(s, out_of_range, w, d), Error);
  EXPECT_THROW(b.add_rows(s, rows, std::vector<float>{1.0f}, d), Error);
}

TEST(CpuBackend, RowOpsAndChecks) {
  CpuBackend b({.threads = 1});
  const std::vector<float> xh = {1, 2, 3, 4, 5, 6}, bias = {10, 20}, w = {1, 0.5f};
  BufferPtr xb, yb, gb;
  const Tensor x = b.new_tensor(xb, 3, 2), y = b.new_tensor(yb, 2, 2);
  b.write(x, xh.data());
  const Tensor bt = b.upload_vector(bias.data(), 2), wt = b.upload_vector(w.data(), 2);
  b.add_row(x, bt);
  const int64_t rows[2] = {2, 0};
  b.gather_rows(x, rows, y);
  std::vector<float> got(4);
  b.read(y, got.data());
  EXPECT_EQ(got, (std::vector<float>{15, 26, 11, 22}));
  b.rmsnorm(y, wt, 0.0f, y);
  b.read(y, got.data());
  const double rms = std::sqrt((15.0 * 15 + 26.0 * 26) / 2);
  EXPECT_NEAR(got[0], 15 / rms, 1e-6);
  EXPECT_NEAR(got[1], 26 / rms * 0.5, 1e-6);
  EXPECT_THROW(b.add(x, y), Error);  // shapes differ
  EXPECT_EQ(b.isa(), resolve_isa(Isa::automatic));
}

}  // namespace
}  // namespace lowbit
