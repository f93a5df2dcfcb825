// Matmul throughput for every weight type of the traits table, at the decode (M = 1) and prefill
// (M = 32, 512) shapes of a 7B-class FFN projection: N = 14336 x K = 4096 (LOWBIT_BENCH_N /
// LOWBIT_BENCH_K override). Decode cycles through at least 512 MiB of distinct copies of the
// matrix so every weight comes from DRAM, and reports the DRAM read bandwidth probed just before
// it (dram_read_gbps, from a DramProbe) with the ratio of the two, so a run is judged against
// this machine's limit at that moment. Counters: weight_gbps, weights_per_s, gflops (2 M N K per matmul).
//
//   ./build/bench/matmul_bench --benchmark_filter='q4_g32.*/m:1/' --benchmark_repetitions=5 \
//       --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kernels/matmul.h"
#include "kernels/matmul_impl.h"
#include "kernels/membw.h"
#include "kernels/quantize.h"
#include "kernels/thread_pool.h"

namespace lowbit {
namespace {

constexpr size_t kCycleBytes = size_t(512) << 20;

int64_t env_or(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoll(v) : fallback;
}

const int64_t kN = env_or("LOWBIT_BENCH_N", 14336);
const int64_t kK = env_or("LOWBIT_BENCH_K", 4096);
// Rows of the core/ benchmarks' matrix: 128 stays in L2; 4 (one decode row tile, 10 KiB at 4 bits)
// stays in L1, which tells compute limits from cache misses.
const int64_t kCoreN = env_or("LOWBIT_BENCH_CORE_N", 128);

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};

// Copies of one matrix of the type last asked for; benchmarks are registered grouped by type,
// so each set is built once and the previous one freed first.
struct WeightSet {
  std::string key;
  QType type;
  int64_t bytes = 0;
  std::vector<std::unique_ptr<uint8_t, FreeDeleter>> copies;

  static WeightSet& get(const QType& t) {
    static WeightSet set;
    const std::string key = type_name(t);
    if (set.key != key) {
      set.copies.clear();
      set.key = key;
      set.type = t;
      set.bytes = q_layout(t, kN, kK).bytes;
      const int64_t count = std::max<int64_t>(2, ceil_div((int64_t)kCycleBytes, set.bytes));
      std::vector<float> w(kN * kK);
      uint64_t s = 0x9e3779b97f4a7c15ull;
      for (auto& v : w) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        v = 0.05f * ((float)(s >> 40) * (1.0f / 8388608.0f) - 1.0f);
      }
      for (int64_t c = 0; c < count; ++c) {
        auto* p = static_cast<uint8_t*>(std::aligned_alloc(64, round_up(set.bytes, 64)));
        if (c == 0) quantize(t, w.data(), kN, kK, p, Quantizer::rtn, &ThreadPool::global());
        else std::memcpy(p, set.copies[0].get(), set.bytes);
        set.copies.emplace_back(p);
      }
    }
    return set;
  }
};

void BM_Matmul(benchmark::State& state, QType t, int64_t m, Isa isa) {
  ThreadPool& pool = ThreadPool::global();
  WeightSet& ws = WeightSet::get(t);
  std::vector<float> x(m * kK), y(m * kN);
  for (int64_t i = 0; i < m * kK; ++i) x[i] = (float)((i * 7919) % 2001 - 1000) * 1e-3f;
  const MatmulOptions opt{isa, &pool};
  const int64_t count = (int64_t)ws.copies.size();
  // Warm-up over every copy: page faults and thread wake-up stay out of the timing.
  for (int64_t c = 0; c < count; ++c) matmul({t, kN, kK, ws.copies[c].get()}, x.data(), m, y.data(), opt);
  // The limit, probed in the same process just before (decode only: prefill is compute-bound).
  const double dram = m == 1 ? DramProbe(pool, size_t(1) << 30).median(5) : 0.0;

  int64_t i = 0;
  for (auto _ : state) {
    matmul({t, kN, kK, ws.copies[i++ % count].get()}, x.data(), m, y.data(), opt);
    benchmark::DoNotOptimize(y.data());
  }
  const double iters = (double)state.iterations();
  const double weights = (double)kN * (double)kK;
  using benchmark::Counter;
  state.counters["weight_gbps"] = Counter(iters * ws.bytes / 1e9, Counter::kIsRate);
  state.counters["weights_per_s"] = Counter(iters * weights, Counter::kIsRate);
  state.counters["gflops"] = Counter(iters * 2.0 * m * weights / 1e9, Counter::kIsRate);
  state.counters["bits_per_weight"] = bits_per_weight(t, kN, kK);
  if (m == 1) state.counters["dram_read_gbps"] = dram;
  state.SetLabel(std::string(isa_name(resolve_isa(isa))) + " threads=" + std::to_string(pool.size()));
}

// The kernel alone (activations quantized once, outside the timing), single-threaded, on a
// matrix small enough to stay in L2 (kCoreN rows), timed by CPU time: the compute rate of one
// core, with DRAM and the time other processes on this shared machine take out of the picture.
// f32_acts: quantized weights through the ISA's fp32 path (gemm_q_f32) instead of int8.
void BM_KernelCore(benchmark::State& state, QType t, int64_t m, bool f32_acts) {
  const int64_t n = kCoreN;
  std::vector<float> w(n * kK), x(m * kK), y(m * n);
  for (int64_t i = 0; i < n * kK; ++i) w[i] = (float)((i * 7919) % 2001 - 1000) * 5e-5f;
  for (int64_t i = 0; i < m * kK; ++i) x[i] = (float)((i * 104729) % 2001 - 1000) * 1e-3f;
  std::unique_ptr<uint8_t, FreeDeleter> buf(static_cast<uint8_t*>(std::aligned_alloc(64, round_up(q_layout(t, n, kK).bytes, 64))));
  quantize(t, w.data(), n, kK, buf.get());
  const QMatrix qm{t, n, kK, buf.get()};
  const CpuKernels& kern = kernels_for(default_isa());
  QuantizedActs acts;
  quantize_acts(x.data(), m, kK, acts);
  group_sums(t, acts);
  for (auto _ : state) {
    if (f32_acts) kern.gemm_q_f32(qm, x.data(), m, y.data(), 0, n);
    else if (t.base == Base::q) kern.gemm_q(qm, acts, y.data(), 0, n);
    else kern.gemm_f(qm, x.data(), m, y.data(), 0, n);
    benchmark::DoNotOptimize(y.data());
  }
  using benchmark::Counter;
  const double iters = (double)state.iterations(), weights = (double)n * (double)kK;
  state.counters["weights_per_s"] = Counter(iters * weights, Counter::kIsRate);
  state.counters["gflops"] = Counter(iters * 2.0 * m * weights / 1e9, Counter::kIsRate);
  state.SetLabel(std::string(isa_name(default_isa())) + " 1 thread, cpu time");
}

// Quantized types at the groups a model uses (32, 128, per row; 256 too at <= 2 bits, the
// group of llama.cpp's ternary formats; asym at 32 and 128 with 6-bit scale codes too), float
// types as they are. The scalar kernel is timed at
// M = 1 and group 32 only: elsewhere it is too slow to be worth the wait.
void register_all() {
  const bool have_simd = available_isas().size() > 1;
  for (const TypeTraits& tr : type_table()) {
    std::vector<QType> types;
    if (tr.base != Base::q) {
      types.push_back({tr.base, tr.bits});
    } else {
      std::vector<uint32_t> groups = {32, 128, 0};
      if (tr.bits <= 2) groups.insert(groups.begin() + 2, 256);
      for (uint32_t g : groups) types.push_back({Base::q, tr.bits, tr.scheme, g});
      if (tr.scheme == Scheme::asym)  // 6-bit scale codes (the kernels expand them per slice of rows)
        for (uint32_t g : {32u, 128u}) types.push_back({Base::q, tr.bits, tr.scheme, g, ScaleCode::c6});
    }
    for (const QType& t : types) {
      const std::string core = "core/" + type_name(t) + "/m:";
      const std::string shape = "/n:" + std::to_string(kCoreN) + "/k:" + std::to_string(kK);
      for (int64_t m : {1, 32}) {
        const std::string name = core + std::to_string(m) + shape;
        benchmark::RegisterBenchmark(name.c_str(), BM_KernelCore, t, m, false)->Unit(benchmark::kMicrosecond);
      }
      // Prefill of quantized weights in int8 and, where the ISA has it, in fp32: the two paths
      // runs_q_in_f32 chooses between, around the crossover and well past it.
      if (t.base == Base::q && kernels_for(default_isa()).gemm_q_f32)
        for (int64_t pm : {16, 32, 128})
          for (bool f32 : {false, true}) {
            const std::string name = core + std::to_string(pm) + shape + (f32 ? "/f32_acts" : "/int8_acts");
            benchmark::RegisterBenchmark(name.c_str(), BM_KernelCore, t, pm, f32)->Unit(benchmark::kMicrosecond);
          }
      for (int64_t m : {1, 32, 512}) {
        std::vector<Isa> isas = {Isa::automatic};
        if (have_simd && m == 1 && (t.group == 32 || t.base != Base::q)) isas.push_back(Isa::scalar);
        for (Isa isa : isas) {
          const std::string name = "matmul/" + type_name(t) + "/" + isa_name(isa == Isa::automatic ? default_isa() : isa) +
                                   "/m:" + std::to_string(m) + "/n:" + std::to_string(kN) + "/k:" + std::to_string(kK);
          benchmark::RegisterBenchmark(name.c_str(), BM_Matmul, t, m, isa)
              ->UseRealTime()
              ->Unit(benchmark::kMillisecond)
              ->MinTime(m == 512 ? 2.0 : 1.0);
        }
      }
    }
  }
}

}  // namespace
}  // namespace lowbit

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  lowbit::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
