// The CUDA backend (backend/cuda_backend.h) against the CPU backend, op by op, with tolerances
// from the maths of the two; then the whole model on the GPU against the CPU: stories260K at
// fp32 gives the CPU's greedy tokens with every layer on the GPU, split at several N, and after
// a real out-of-memory (the device's memory reserved first). Without a GPU every test skips
// with one line saying why. The matmuls themselves are tested in tests/kernels/cuda_test.cc.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

#include "backend/cpu_backend.h"
#include "backend/cuda_backend.h"
#include "kernels/error.h"
#include "runtime/model.h"
#include "tests/runtime/converted_models.h"

namespace lowbit {
namespace {

const CudaBackend* plugin(std::string* why) {
#ifdef LOWBIT_BINARY_DIR
  setenv("LOWBIT_CUDA_LIB", LOWBIT_BINARY_DIR "/" LOWBIT_CUDA_LIBRARY, 0);
#endif
  return cuda_backend(why);
}

#define SKIP_WITHOUT_GPU()                                            \
  std::string why_;                                                   \
  if (!plugin(&why_)) GTEST_SKIP() << "no CUDA device: " << why_;

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

constexpr double kU = 1.0 / (1 << 24);  // fp32 unit roundoff

struct Pair {
  CpuBackend cpu{BackendParams{.threads = 2}};
  GpuBackend gpu{*plugin(nullptr), 0};
  std::vector<BufferPtr> keep;
  // The same host values as a tensor of each backend.
  std::pair<Tensor, Tensor> both(const std::vector<float>& host, int64_t rows, int64_t cols) {
    keep.emplace_back();
    const Tensor c = cpu.new_tensor(keep.back(), rows, cols);
    keep.emplace_back();
    const Tensor g = gpu.new_tensor(keep.back(), rows, cols);
    cpu.write(c, host.data());
    gpu.write(g, host.data());
    return {c, g};
  }
  std::vector<float> get(Backend& b, const Tensor& t) {
    std::vector<float> v((size_t)t.size());
    b.read(t, v.data());
    return v;
  }
};

TEST(CudaBackend, RmsNorm) {
  SKIP_WITHOUT_GPU();
  Pair p;
  for (int64_t cols : {64, 1000, 4096}) {
    const int64_t rows = 5;
    const auto xh = randn(rows * cols, 1), wh = randn(cols, 2);
    auto [xc, xg] = p.both(xh, rows, cols);
    auto [wc, wg] = p.both(wh, 1, cols);
    p.cpu.rmsnorm(xc, wc, 1e-5f, xc);
    p.gpu.rmsnorm(xg, wg, 1e-5f, xg);
    const auto c = p.get(p.cpu, xc), g = p.get(p.gpu, xg);
    // Both sum the squares in double (differently ordered: ~1e-16 relative), so the fp32 scale
    // may differ by its last bit; the two products then add a rounding each: 4u |x inv w|.
    for (size_t i = 0; i < c.size(); ++i) ASSERT_NEAR(g[i], c[i], 4 * kU * std::fabs(c[i]) + 1e-30) << cols << " " << i;
  }
}

TEST(CudaBackend, ElementWise) {
  SKIP_WITHOUT_GPU();
  Pair p;
  const int64_t rows = 7, cols = 300;
  const auto ah = randn(rows * cols, 3, 4.0f), bh = randn(rows * cols, 4), biash = randn(cols, 5);
  {
    auto [ac, ag] = p.both(ah, rows, cols);
    auto [bc, bg] = p.both(bh, rows, cols);
    auto [biasc, biasg] = p.both(biash, 1, cols);
    p.cpu.add(ac, bc), p.gpu.add(ag, bg);
    p.cpu.add_row(ac, biasc), p.gpu.add_row(ag, biasg);
    EXPECT_EQ(p.get(p.cpu, ac), p.get(p.gpu, ag));  // the same fp32 additions: exact
  }
  {
    auto [gc, gg] = p.both(ah, rows, cols);
    auto [uc, ug] = p.both(bh, rows, cols);
    p.cpu.swiglu(gc, uc), p.gpu.swiglu(gg, ug);
    const auto c = p.get(p.cpu, gc), g = p.get(p.gpu, gg);
    // CUDA's expf is within 2 ulp, the CPU's exp within 1: the exponential differs by <= 3u
    // relative, 1 + e by as much, and the quotient and product add a rounding on each side:
    // <= (3 + 4) u relative.
    for (size_t i = 0; i < c.size(); ++i) ASSERT_NEAR(g[i], c[i], 7 * kU * std::fabs(c[i]) + 1e-30) << i;
  }
  {
    auto [gc, gg] = p.both(ah, rows, cols);
    auto [uc, ug] = p.both(bh, rows, cols);
    p.cpu.geglu(gc, uc), p.gpu.geglu(gg, ug);
    p.cpu.scale(gc, 33.94f), p.gpu.scale(gg, 33.94f);
    const auto c = p.get(p.cpu, gc), g = p.get(p.gpu, gg);
    // tanhf within 2 ulp on CUDA and 1 on the CPU, so 1 + tanh differs by <= 3u of 1 (absolute:
    // near x -> -inf it is nearly 0 and the relative error grows), times x * up / 2 * 33.94; the
    // polynomial, the products and the scale add a rounding each on both sides.
    for (size_t i = 0; i < c.size(); ++i) {
      const float xu = ah[i] * bh[i] * 33.94f;
      ASSERT_NEAR(g[i], c[i], 8 * kU * (std::fabs(c[i]) + std::fabs(xu)) + 1e-30) << i;
    }
  }
  {
    auto [sc, sg] = p.both(ah, rows, cols);
    const std::vector<int64_t> pick = {6, 0, 3, 3};
    BufferPtr dc, dg;
    const Tensor outc = p.cpu.new_tensor(dc, 4, cols), outg = p.gpu.new_tensor(dg, 4, cols);
    p.cpu.gather_rows(sc, pick, outc), p.gpu.gather_rows(sg, pick, outg);
    EXPECT_EQ(p.get(p.cpu, outc), p.get(p.gpu, outg));
  }
}

TEST(CudaBackend, AddRowsWeighted) {
  SKIP_WITHOUT_GPU();
  Pair p;
  const int64_t rows = 7, cols = 300;  // more than one block of threads
  const auto sh = randn(3 * cols, 9);
  auto [dc, dg] = p.both(randn(rows * cols, 8), rows, cols);
  auto [sc, sg] = p.both(sh, 3, cols);
  const std::vector<int64_t> to = {6, 0, 3};
  const std::vector<float> w = {0.5f, -1.25f, 2.0f};
  p.cpu.add_rows(sc, to, w, dc), p.gpu.add_rows(sg, to, w, dg);
  // d + w s: rounded twice, or once where a compiler fuses it (FMA); the two differ by at most a
  // rounding of w s and one of the result.
  const auto c = p.get(p.cpu, dc), g = p.get(p.gpu, dg);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      const size_t at = (size_t)(to[(size_t)i] * cols + j);
      const double tol = kU * (std::fabs(w[(size_t)i] * sh[(size_t)(i * cols + j)]) + std::fabs(c[at]));
      ASSERT_NEAR(g[at], c[at], tol) << i << " " << j;
    }
}

TEST(CudaBackend, Rope) {
  SKIP_WITHOUT_GPU();
  Pair p;
  const int64_t heads = 4, hd = 64, rows = 6;
  // Every value of each head at scale 1, and three quarters of it with cos and sin scaled
  // (Phi-4-mini's partial rotary under LongRoPE), the rest passed through.
  for (const auto& [rot, scale] : {std::pair<int64_t, float>{hd, 1.0f}, {hd * 3 / 4, 1.19f}}) {
    std::vector<float> inv(rot / 2);
    for (int64_t i = 0; i < rot / 2; ++i) inv[i] = (float)std::pow(10000.0, -2.0 * i / rot);
    const auto xh = randn(rows * heads * hd, 6);
    auto [xc, xg] = p.both(xh, rows, heads * hd);
    auto [fc, fg] = p.both(inv, 1, rot / 2);
    // Two sequences: rows 0-3 at positions 5..8, rows 4-5 at 70000..70001 (long-context angles).
    const SeqRows seqs[] = {{nullptr, 0, 4, 5}, {nullptr, 4, 2, 70000}};
    p.cpu.rope(xc, heads, hd, fc, scale, seqs), p.gpu.rope(xg, heads, hd, fg, scale, seqs);
    const auto c = p.get(p.cpu, xc), g = p.get(p.gpu, xg);
    // The angle is the same double; CUDA's and glibc's cos/sin agree to a few double ulps, so the
    // fp32 cos and sin may differ by their last bit (and so after the scale); a*c - b*s then
    // differs by <= 2u scale (|a| + |b|) plus a rounding of each side's result.
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < hd; ++i) {
          const size_t at = (size_t)((r * heads + h) * hd + i);
          if (i >= rot) {
            ASSERT_EQ(g[at], c[at]) << "passed through: " << r << " " << h << " " << i;
            continue;
          }
          const size_t a = (size_t)((r * heads + h) * hd + i % (rot / 2)), b = a + rot / 2;
          const double tol = 2 * kU * scale * (std::fabs(xh[a]) + std::fabs(xh[b])) + 2 * kU * std::fabs(c[at]);
          ASSERT_NEAR(g[at], c[at], tol) << r << " " << h << " " << i;
        }
  }
}

TEST(CudaBackend, AttentionWithGqaAndSlidingWindow) {
  SKIP_WITHOUT_GPU();
  // Windows, and Gemma 2's soft-capping of the scores (a cap of 1.5 bends these).
  for (auto [window, cap] : {std::pair<int64_t, float>{0, 0}, {3, 0}, {3, 1.5f}}) {
    Pair p;
    const int64_t n_heads = 8, n_kv = 2, hd = 16, q_dim = n_heads * hd, kv_dim = n_kv * hd;
    const AttentionShape shape{n_heads, n_kv, hd, window, 1.0f / std::sqrt((float)hd), cap};
    auto cc = p.cpu.new_kv_cache(2, 40, kv_dim), cg = p.gpu.new_kv_cache(2, 40, kv_dim);
    auto cc2 = p.cpu.new_kv_cache(2, 16, kv_dim), cg2 = p.gpu.new_kv_cache(2, 16, kv_dim);
    // A 30-row prompt and a 2-row one, then one decode row and a 3-row chunk.
    const std::vector<std::vector<std::tuple<int, int64_t, int64_t, int64_t>>> calls = {
        {{0, 0, 30, 0}, {1, 30, 2, 0}}, {{1, 0, 1, 2}, {0, 1, 3, 30}}};
    uint32_t seed = 10;
    for (const auto& call : calls) {
      int64_t n = 0;
      std::vector<SeqRows> sc, sg;
      for (auto [which, row0, rows, pos] : call) {
        sc.push_back({which ? cc2.get() : cc.get(), row0, rows, pos});
        sg.push_back({which ? cg2.get() : cg.get(), row0, rows, pos});
        n += rows;
      }
      const auto qh = randn(n * q_dim, seed++), kh = randn(n * kv_dim, seed++), vh = randn(n * kv_dim, seed++);
      auto [qc, qg] = p.both(qh, n, q_dim);
      auto [kc, kg] = p.both(kh, n, kv_dim);
      auto [vc, vg] = p.both(vh, n, kv_dim);
      BufferPtr oc, og;
      const Tensor outc = p.cpu.new_tensor(oc, n, q_dim), outg = p.gpu.new_tensor(og, n, q_dim);
      p.cpu.attention(1, qc, kc, vc, sc, shape, outc);
      p.gpu.attention(1, qg, kg, vg, sg, shape, outg);
      const auto c = p.get(p.cpu, outc), g = p.get(p.gpu, outg);
      // The caches' layer 1 as the CPU holds them (positions in order), to bound the error.
      auto layer = [&](const KvCache& kc) {
        std::pair<std::vector<float>, std::vector<float>> kv;
        kv.first.resize((size_t)(kc.capacity * kv_dim));
        kv.second.resize(kv.first.size());
        p.cpu.read({kc.k.get(), kc.capacity * kv_dim, kc.capacity, kv_dim}, kv.first.data());
        p.cpu.read({kc.v.get(), kc.capacity * kv_dim, kc.capacity, kv_dim}, kv.second.data());
        return kv;
      };
      const auto mirror0 = layer(*cc), mirror1 = layer(*cc2);
      for (auto [which, row0, rows, pos] : call)
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t h = 0; h < n_heads; ++h) {
            // Each result is within B of the exact attention (tests/backend/cpu_backend_test.cc's
            // bound: scores off by <= dmax = hd u scale sum|q k|, weights by 2 dmax relative, the
            // weighted sum by (span + 8) 2u); CUDA's expf adds 2u relative to each weight and to
            // their sum: the two differ by <= 2 B + 4u sum a |v|.
            const auto& [km, vm] = which ? mirror1 : mirror0;
            const int64_t t = row0 + i, end = pos + i + 1, kvh = h / (n_heads / n_kv);
            const int64_t first = window > 0 ? std::max<int64_t>(0, end - window) : 0;
            const float* qr = &qh[(size_t)(t * q_dim + h * hd)];
            std::vector<double> sc;
            double dmax = 0, mx = -1e300, sum = 0;
            for (int64_t j = first; j < end; ++j) {
              double dot = 0, mag = 0;
              for (int64_t d = 0; d < hd; ++d) {
                const double prod = (double)qr[d] * km[(size_t)(j * kv_dim + kvh * hd + d)];
                dot += prod, mag += std::fabs(prod);
              }
              // The cap is 1-Lipschitz, so it passes on a score's error and adds tanh's own: 1u
              // (the CPU's) and 2u (CUDA's tanhf) of the cap, and a rounding on each side.
              sc.push_back(cap > 0 ? cap * std::tanh(dot * shape.scale / cap) : dot * shape.scale);
              dmax = std::max(dmax, hd * kU * shape.scale * mag + (cap > 0 ? 5 * kU * cap : 0.0));
              mx = std::max(mx, sc.back());
            }
            for (double& x : sc) sum += (x = std::exp(x - mx));
            const double span = (double)(end - first);
            for (int64_t d = 0; d < hd; ++d) {
              double mass = 0;
              for (int64_t j = first; j < end; ++j)
                mass += sc[(size_t)(j - first)] / sum * std::fabs(vm[(size_t)(j * kv_dim + kvh * hd + d)]);
              const double tol = mass * (2 * (2 * dmax + (span + 8) * 2 * kU) + 4 * kU) + 1e-30;
              const size_t at = (size_t)(t * q_dim + h * hd + d);
              ASSERT_NEAR(g[at], c[at], tol) << "window " << window << " cap " << cap << " row " << t << " head " << h
                                             << " " << d;
            }
          }
    }
  }
}

// ---- the whole model -----------------------------------------------------------------------------

std::vector<int32_t> greedy_tokens(const Model& m, int steps) {
  Session s(m);
  const int64_t vocab = m.config().vocab_size;
  std::vector<int32_t> ids = m.tokenizer().encode("Once upon a time", true);
  std::vector<float> l(vocab);
  s.eval(ids.data(), (int64_t)ids.size(), l.data());
  std::vector<int32_t> out;
  for (int i = 0; i < steps; ++i) {
    int32_t best = 0;
    for (int64_t t = 1; t < vocab; ++t)
      if (l[t] > l[best]) best = (int32_t)t;
    out.push_back(best);
    s.eval(&best, 1, l.data());
  }
  return out;
}

LoadParams params(int64_t gpu_layers) {
  LoadParams lp;
  lp.threads = 2;
  lp.ctx = 256;
  lp.gpu_layers = gpu_layers;
  return lp;
}

TEST(CudaModel, GreedyTextEqualsTheCpuAtFp32) {
  SKIP_WITHOUT_GPU();
  const std::string dir = test::converted("stories260K", 32);
  const std::vector<int32_t> want = greedy_tokens(*Model::load(dir, params(0)), 200);
  for (int64_t n : {kGpuLayersAll, int64_t(1), int64_t(3), kGpuLayersAuto}) {
    auto m = Model::load(dir, params(n));
    if (n != kGpuLayersAuto) EXPECT_EQ(m->device_layers(), n == kGpuLayersAll ? 5 : n) << m->placement();
    EXPECT_EQ(greedy_tokens(*m, 200), want) << gpu_layers_name(n) << ": " << m->placement() << "; " << m->plan();
  }
}

TEST(CudaModel, RealOutOfMemoryFallsBackToTheCpu) {
  SKIP_WITHOUT_GPU();
  const CudaBackend& be = *plugin(nullptr);
  const std::string dir = test::converted("stories260K", 32);
  const std::vector<int32_t> want = greedy_tokens(*Model::load(dir, params(0)), 64);
  ASSERT_EQ(be.set_device(0), 0);
  LowbitCudaDeviceInfo info{};
  ASSERT_EQ(be.device_info(0, &info), 0);
  // Reserve all but 256 KiB: less than the model's fp32 weights (~1 MiB).
  void* reserved = nullptr;
  const uint64_t keep = 256 << 10;
  ASSERT_GT(info.free_bytes, keep);
  ASSERT_EQ(be.device_alloc(info.free_bytes - keep, &reserved), 0) << be.last_error();
  std::vector<std::string> warnings;
  LoadParams lp = params(kGpuLayersAll);
  lp.warn = [&](const std::string& w) { warnings.push_back(w); };
  std::vector<int32_t> got;
  int64_t left = -1;
  {
    auto m = Model::load(dir, lp);
    got = greedy_tokens(*m, 64);
    left = m->device_layers();
  }
  be.device_free(reserved);
  EXPECT_EQ(got, want);
  EXPECT_EQ(warnings.size(), 1u);
  EXPECT_LT(left, 5);
}

}  // namespace
}  // namespace lowbit
