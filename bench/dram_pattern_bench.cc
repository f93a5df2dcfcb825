// DRAM read bandwidth of the access pattern of gemv() (kernels/matmul_quant_x86.h) against one
// sequential stream: R weight rows read in step, a 64-byte line of each in turn, and the three
// ways to prefetch the rows ahead. Each iteration times a sequential pass and then the pattern
// on the same buffer, so `ratio` (pattern / sequential) is taken in the same moment of a shared
// machine. What chose address-order prefetches for every width (bench/README.md, ninth session):
// retune on a new host by reading `ratio` here before timing whole models.
//
//   ./build/bench/dram_pattern_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "kernels/thread_pool.h"

namespace lowbit {
namespace {

constexpr size_t kBytes = size_t(1) << 30;  // far above any last-level cache here
constexpr size_t kLine = 64;

enum class Prefetch { none, row_by_row, address_order };

struct Buffer {
  std::unique_ptr<uint64_t, void (*)(void*)> data{nullptr, std::free};
  Buffer() {
    data.reset(static_cast<uint64_t*>(std::aligned_alloc(kLine, kBytes)));
    if (!data) throw std::bad_alloc();
    ThreadPool::global().run((int64_t)(kBytes >> 20), [&](int64_t mib, int) {  // first touch in parallel
      for (size_t w = 0; w < (size_t(1) << 17); ++w) data.get()[(size_t)mib * (size_t(1) << 17) + w] = w;
    });
  }
  static const uint8_t* get() {
    static Buffer b;
    return reinterpret_cast<const uint8_t*>(b.data.get());
  }
};

inline uint64_t read_line(const uint8_t* p) {
  const uint64_t* w = reinterpret_cast<const uint64_t*>(p);
  return w[0] ^ w[1] ^ w[2] ^ w[3] ^ w[4] ^ w[5] ^ w[6] ^ w[7];
}

// One pass over the buffer in GB/s: `rows` = 0 is one sequential stream per thread; otherwise
// tiles of `rows` rows of `row_bytes`, each thread a contiguous range of tiles (as gemv's tasks),
// address-order prefetches `ahead` bytes ahead (0: one tile).
double pass(int rows, size_t row_bytes, Prefetch pf, size_t ahead) {
  ThreadPool& pool = ThreadPool::global();
  const uint8_t* buf = Buffer::get();
  const int64_t parts = pool.size();
  uint64_t sinks[64] = {};
  const auto t0 = std::chrono::steady_clock::now();
  pool.run(parts, [&](int64_t part, int) {
    uint64_t s = 0;
    if (rows == 0) {
      const size_t n = kBytes / parts, begin = (size_t)part * n;
      for (size_t o = begin; o < begin + n; o += kLine) s ^= read_line(buf + o);
    } else {
      const size_t tile = rows * row_bytes, tiles = kBytes / tile;
      const size_t t0 = (size_t)part * tiles / parts, t1 = (size_t)(part + 1) * tiles / parts;
      const uint8_t* seq = buf + t0 * tile + (ahead ? ahead : tile);  // address-order prefetches
      for (size_t t = t0; t < t1; ++t) {
        const uint8_t* base = buf + t * tile;
        for (size_t o = 0; o < row_bytes; o += kLine)
          for (int r = 0; r < rows; ++r) {
            if (pf == Prefetch::row_by_row && t + 1 < t1) __builtin_prefetch(base + tile + r * row_bytes + o, 0, 3);
            if (pf == Prefetch::address_order) __builtin_prefetch(seq, 0, 3), seq += kLine;
            s ^= read_line(base + r * row_bytes + o);
          }
      }
    }
    sinks[part % 64] = s;
  });
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  benchmark::DoNotOptimize(sinks);
  return kBytes / sec * 1e-9;
}

void BM_Pattern(benchmark::State& state, int rows, Prefetch pf) {
  const size_t row_bytes = (size_t)state.range(0), ahead = (size_t)state.range(1);
  double seq = 0, pat = 0;
  int64_t n = 0;
  for (auto _ : state) {
    seq += pass(0, 0, Prefetch::none, 0);
    pat += pass(rows, row_bytes, pf, ahead);
    ++n;
  }
  state.counters["seq_gbps"] = seq / n;
  state.counters["gbps"] = pat / n;
  state.counters["ratio"] = pat / seq;
}

void args(benchmark::internal::Benchmark* b, bool with_ahead) {
  // ahead 0: one tile, gemv's distance (kPrefetch = 1 tile of R rows).
  const std::vector<int64_t> aheads = with_ahead ? std::vector<int64_t>{0, 4096, 16384} : std::vector<int64_t>{0};
  for (int64_t row : {1024, 2048, 5632})
    for (int64_t ahead : aheads) b->Args({row, ahead});
  b->ArgNames({"row_bytes", "ahead"})->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK_CAPTURE(BM_Pattern, one_row, 1, Prefetch::none)->Apply([](auto* b) { args(b, false); });
BENCHMARK_CAPTURE(BM_Pattern, four_rows, 4, Prefetch::none)->Apply([](auto* b) { args(b, false); });
BENCHMARK_CAPTURE(BM_Pattern, four_rows_next_tile_row_by_row, 4, Prefetch::row_by_row)->Apply([](auto* b) { args(b, false); });
BENCHMARK_CAPTURE(BM_Pattern, four_rows_address_order, 4, Prefetch::address_order)->Apply([](auto* b) { args(b, true); });

}  // namespace
}  // namespace lowbit

BENCHMARK_MAIN();
