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

double median(std::vector<double> v) {
  if (v.empty()) throw Error("median of no values");
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace lowbit
