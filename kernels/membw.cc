#include "kernels/membw.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <utility>
#include <vector>

#ifdef LOWBIT_HAVE_AVX2
#include <immintrin.h>
#endif

#include "kernels/error.h"
#include "kernels/isa.h"
#include "kernels/thread_pool.h"

namespace lowbit {
namespace {

// Four independent accumulators so the adds do not serialize the loads; the compiler
// vectorizes this to the baseline ISA's width (NEON's 128 bits on aarch64, SSE2 on x86).
uint64_t sum_words(const uint64_t* p, size_t n) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  for (; i < n; ++i) s0 += p[i];
  return s0 + s1 + s2 + s3;
}

#ifdef LOWBIT_HAVE_AVX2
// 256-bit loads, four in flight: on Zen 3 the SSE2 loop above reads 5-10% less than this from
// DRAM on one core, which would flatter every ratio measured against it.
__attribute__((target("avx2"))) uint64_t sum_words_avx2(const uint64_t* p, size_t n) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i* q = reinterpret_cast<const __m256i*>(p + i);
    a = _mm256_add_epi64(a, _mm256_loadu_si256(q));
    b = _mm256_add_epi64(b, _mm256_loadu_si256(q + 1));
    c = _mm256_add_epi64(c, _mm256_loadu_si256(q + 2));
    d = _mm256_add_epi64(d, _mm256_loadu_si256(q + 3));
  }
  a = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
  return (uint64_t)_mm256_extract_epi64(a, 0) + (uint64_t)_mm256_extract_epi64(a, 1) +
         (uint64_t)_mm256_extract_epi64(a, 2) + (uint64_t)_mm256_extract_epi64(a, 3) +
         sum_words(p + i, n - i);
}
#endif

// kChains x 8 lanes (16 with AVX-512) of independent multiply-adds per step: 12 chains cover a 4-cycle FMA
// latency on 2 FMA pipes with room to spare (Zen 3, Haswell onwards). x -> x * a + b with
// a just under 1 keeps every value bounded and normal.
constexpr int kChains = 12;
constexpr int64_t kFlopsPerStep = kChains * 8 * 2;

float fma_chains(int64_t steps) {
  float acc[kChains][8];
  for (int c = 0; c < kChains; ++c)
    for (int l = 0; l < 8; ++l) acc[c][l] = (float)(c + l);
  for (int64_t s = 0; s < steps; ++s)
    for (int c = 0; c < kChains; ++c)
      for (int l = 0; l < 8; ++l) acc[c][l] = acc[c][l] * 0.99999f + 0.5f;
  float t = 0;
  for (int c = 0; c < kChains; ++c)
    for (int l = 0; l < 8; ++l) t += acc[c][l];
  return t;
}
#ifdef LOWBIT_HAVE_AVX2
// Twelve named chains, not an array: GCC 12 kept an array of them in memory across the loop
// (a store and a reload per FMA, which measured half the rate).
__attribute__((target("avx2,fma"))) float fma_chains_avx2(int64_t steps) {
  static_assert(kChains == 12, "one variable per chain");
  __m256 c0 = _mm256_set1_ps(0), c1 = _mm256_set1_ps(1), c2 = _mm256_set1_ps(2), c3 = _mm256_set1_ps(3);
  __m256 c4 = _mm256_set1_ps(4), c5 = _mm256_set1_ps(5), c6 = _mm256_set1_ps(6), c7 = _mm256_set1_ps(7);
  __m256 c8 = _mm256_set1_ps(8), c9 = _mm256_set1_ps(9), c10 = _mm256_set1_ps(10), c11 = _mm256_set1_ps(11);
  const __m256 a = _mm256_set1_ps(0.99999f), b = _mm256_set1_ps(0.5f);
  for (int64_t s = 0; s < steps; ++s) {
    c0 = _mm256_fmadd_ps(c0, a, b);
    c1 = _mm256_fmadd_ps(c1, a, b);
    c2 = _mm256_fmadd_ps(c2, a, b);
    c3 = _mm256_fmadd_ps(c3, a, b);
    c4 = _mm256_fmadd_ps(c4, a, b);
    c5 = _mm256_fmadd_ps(c5, a, b);
    c6 = _mm256_fmadd_ps(c6, a, b);
    c7 = _mm256_fmadd_ps(c7, a, b);
    c8 = _mm256_fmadd_ps(c8, a, b);
    c9 = _mm256_fmadd_ps(c9, a, b);
    c10 = _mm256_fmadd_ps(c10, a, b);
    c11 = _mm256_fmadd_ps(c11, a, b);
  }
  const __m256 t = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                                 _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
  const __m256 u = _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11));
  return _mm256_cvtss_f32(_mm256_add_ps(t, u));
}
#endif

#ifdef LOWBIT_HAVE_AVX512
// The same chains 16 lanes wide: the widest FMA of an AVX-512 host (at the 256-bit instruction
// rate on Intel, twice the flops; at half that rate on Zen 4, the same flops).
__attribute__((target("avx512f"))) float fma_chains_avx512(int64_t steps) {
  static_assert(kChains == 12, "one variable per chain");
  __m512 c0 = _mm512_set1_ps(0), c1 = _mm512_set1_ps(1), c2 = _mm512_set1_ps(2), c3 = _mm512_set1_ps(3);
  __m512 c4 = _mm512_set1_ps(4), c5 = _mm512_set1_ps(5), c6 = _mm512_set1_ps(6), c7 = _mm512_set1_ps(7);
  __m512 c8 = _mm512_set1_ps(8), c9 = _mm512_set1_ps(9), c10 = _mm512_set1_ps(10), c11 = _mm512_set1_ps(11);
  const __m512 a = _mm512_set1_ps(0.99999f), b = _mm512_set1_ps(0.5f);
  for (int64_t s = 0; s < steps; ++s) {
    c0 = _mm512_fmadd_ps(c0, a, b);
    c1 = _mm512_fmadd_ps(c1, a, b);
    c2 = _mm512_fmadd_ps(c2, a, b);
    c3 = _mm512_fmadd_ps(c3, a, b);
    c4 = _mm512_fmadd_ps(c4, a, b);
    c5 = _mm512_fmadd_ps(c5, a, b);
    c6 = _mm512_fmadd_ps(c6, a, b);
    c7 = _mm512_fmadd_ps(c7, a, b);
    c8 = _mm512_fmadd_ps(c8, a, b);
    c9 = _mm512_fmadd_ps(c9, a, b);
    c10 = _mm512_fmadd_ps(c10, a, b);
    c11 = _mm512_fmadd_ps(c11, a, b);
  }
  const __m512 t = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                                 _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
  const __m512 u = _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11));
  return _mm512_cvtss_f32(_mm512_add_ps(t, u));
}
#endif

// The widest FMA chains the host runs, and the flops of one step of them.
struct FmaChains {
  float (*run)(int64_t steps);
  int64_t flops_per_step;
};
const FmaChains& widest_fma() {
  static const FmaChains f = [] {
#ifdef LOWBIT_HAVE_AVX512
    if (isa_supported(Isa::avx512)) return FmaChains{fma_chains_avx512, kFlopsPerStep * 2};
#endif
#ifdef LOWBIT_HAVE_AVX2
    if (isa_supported(Isa::avx2)) return FmaChains{fma_chains_avx2, kFlopsPerStep};
#endif
    return FmaChains{fma_chains, kFlopsPerStep};
  }();
  return f;
}

uint64_t sum_any(const uint64_t* p, size_t n) {
#ifdef LOWBIT_HAVE_AVX2
  static const bool avx2 = isa_supported(Isa::avx2);
  if (avx2) return sum_words_avx2(p, n);
#endif
  return sum_words(p, n);
}

// Many slices per thread so the pool balances a core that another process slows down.
int64_t probe_tasks(const ThreadPool& pool) { return (int64_t)pool.size() * 16; }

}  // namespace

DramProbe::DramProbe(ThreadPool& pool, size_t bytes) : pool_(pool), buf_(nullptr, &std::free) {
  words_ = std::max<size_t>(bytes / 8, size_t(1) << 20);
  buf_.reset(static_cast<uint64_t*>(std::aligned_alloc(64, words_ * 8)));
  if (!buf_) throw Error("DramProbe: cannot allocate the " + std::to_string(words_ * 8) + "-byte probe buffer");
  uint64_t* data = buf_.get();
  const int64_t tasks = probe_tasks(pool_);
  const size_t per = (words_ + tasks - 1) / tasks, words = words_;
  pool_.run(tasks, [&](int64_t t, int) {
    const size_t b = std::min(words, t * per), e = std::min(words, b + per);
    for (size_t i = b; i < e; ++i) data[i] = i * 0x9e3779b97f4a7c15ull;
  });
}

DramProbe::~DramProbe() {
  // Keep the sums observable so the reads cannot be optimized away.
  volatile uint64_t sink = sink_;
  (void)sink;
}

double DramProbe::pass() {
  const int64_t tasks = probe_tasks(pool_);
  const size_t per = (words_ + tasks - 1) / tasks, words = words_;
  const uint64_t* data = buf_.get();
  std::vector<uint64_t> sums(tasks);
  const auto t0 = std::chrono::steady_clock::now();
  pool_.run(tasks, [&](int64_t t, int) {
    const size_t b = std::min(words, t * per), e = std::min(words, b + per);
    sums[t] = sum_any(data + b, e - b);
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (uint64_t v : sums) sink_ += v;
  return (double)words * 8 / s / 1e9;
}

double DramProbe::median(int passes) {
  std::vector<double> gbps;
  for (int p = 0; p < std::max(passes, 1); ++p) gbps.push_back(pass());
  return lowbit::median(std::move(gbps));
}

double FmaProbe::pass(double seconds) {
  if (steps_per_s_ == 0) {  // calibrate once: double one thread's steps until they take 5 ms
    int64_t steps = 1 << 12;
    for (;;) {
      const auto t0 = std::chrono::steady_clock::now();
      sink_ += widest_fma().run(steps);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (s > 0.005) {
        steps_per_s_ = (double)steps / s;
        break;
      }
      steps *= 2;
    }
  }
  // As many slices per thread as the DRAM probe, for the same reason; each thread runs about
  // `seconds` of steps.
  const int64_t tasks = probe_tasks(pool_);
  const int64_t steps = std::max<int64_t>(1, (int64_t)(steps_per_s_ * seconds * pool_.size() / (double)tasks));
  std::vector<float> sums(tasks);
  const auto t0 = std::chrono::steady_clock::now();
  pool_.run(tasks, [&](int64_t t, int) { sums[t] = widest_fma().run(steps); });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (float v : sums) sink_ += v;
  volatile float keep = sink_;  // the chains' results stay observable
  (void)keep;
  return (double)tasks * (double)steps * (double)widest_fma().flops_per_step / s / 1e9;
}

double FmaProbe::median(int passes) {
  std::vector<double> g;
  for (int p = 0; p < std::max(passes, 1); ++p) g.push_back(pass());
  return lowbit::median(std::move(g));
}

double median(std::vector<double> v) {
  if (v.empty()) throw Error("median of no values");
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace lowbit
