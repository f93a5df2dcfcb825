// Plain C++ on purpose: NEON builds compile it too, and the compiler's own vectorization of a
// sum of 64-bit words issues loads as wide as the target allows, which is all a bandwidth probe
// needs (one core cannot saturate DRAM with scalar loads, either way it is far from compute
// bound).
#include "kernels/membw.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "kernels/error.h"
#include "kernels/thread_pool.h"

namespace lowbit {
namespace {

// Four independent accumulators so the adds do not serialize the loads.
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

}  // namespace

double dram_read_gbps(int threads, ThreadPool* pool, size_t bytes, int passes) {
  if (threads <= 0) threads = pool ? pool->size() : hardware_threads();
  if (passes < 1) passes = 1;
  std::unique_ptr<ThreadPool> own;
  if (!pool || pool->size() != threads) {
    own = std::make_unique<ThreadPool>(threads);
    pool = own.get();
  }
  const size_t words = std::max<size_t>(bytes / 8, 1 << 20);
  std::unique_ptr<uint64_t, decltype(&std::free)> buf(
      static_cast<uint64_t*>(std::aligned_alloc(64, words * 8)), &std::free);
  if (!buf) throw Error("dram_read_gbps: cannot allocate the probe buffer");
  uint64_t* data = buf.get();

  // Many slices per thread so the pool balances a core that another process slows down.
  const int64_t tasks = (int64_t)threads * 16;
  const size_t per = (words + tasks - 1) / tasks;
  pool->run(tasks, [&](int64_t t, int) {
    const size_t b = std::min(words, t * per), e = std::min(words, b + per);
    for (size_t i = b; i < e; ++i) data[i] = i * 0x9e3779b97f4a7c15ull;
  });

  std::vector<uint64_t> sums(tasks);
  std::vector<double> gbps;
  for (int p = 0; p < passes; ++p) {
    const auto t0 = std::chrono::steady_clock::now();
    pool->run(tasks, [&](int64_t t, int) {
      const size_t b = std::min(words, t * per), e = std::min(words, b + per);
      sums[t] += sum_words(data + b, e - b);
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    gbps.push_back((double)words * 8 / s / 1e9);
  }
  // Keep the sums observable so the reads cannot be optimized away.
  volatile uint64_t sink = 0;
  for (uint64_t v : sums) sink = sink + v;
  (void)sink;
  std::sort(gbps.begin(), gbps.end());
  return gbps[gbps.size() / 2];
}

}  // namespace lowbit
