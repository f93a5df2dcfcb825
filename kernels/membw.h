// A DRAM read-bandwidth probe: the limit a decode (M = 1) matmul is measured against, taken in
// the same process and moment as the measurement it judges, since the machines here are shared
// and their bandwidth drifts by +-15% between runs (and by far more while a neighbour streams
// memory). Benchmarks interleave probe passes with the work they judge and compare each pass
// with the work timed right after it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace lowbit {

class ThreadPool;

class DramProbe {
 public:
  // A `bytes` buffer (at least 8 MiB; use far more than the last-level cache), allocated and
  // first touched in parallel on `pool` here. Throws Error when it cannot be allocated.
  DramProbe(ThreadPool& pool, size_t bytes = size_t(1) << 30);
  ~DramProbe();
  DramProbe(const DramProbe&) = delete;
  DramProbe& operator=(const DramProbe&) = delete;

  // One pass of plain sequential reads over the whole buffer, split over the pool's threads,
  // in GB/s (1e9 bytes). The loads are the widest the CPU has (256-bit with AVX2), so the probe
  // is not held back by its own instruction rate: the figure is the memory system's.
  double pass();
  // The median of `passes` passes.
  double median(int passes);

 private:
  ThreadPool& pool_;
  size_t words_ = 0;
  std::unique_ptr<uint64_t, void (*)(void*)> buf_;
  uint64_t sink_ = 0;
};

// The fp32 multiply-add rate of every thread of a pool together, in GFLOP/s (a fused
// multiply-add counts 2): the compute limit a prefill (M > 1) matmul is set against, taken in the
// same run for the same reason as DramProbe. Chains of FMAs on registers only, enough of them
// to cover the FMA latency on both FMA pipes, in the widest registers the host has (512-bit
// with AVX-512, 256-bit with AVX2 + FMA; otherwise whatever the compiler makes of a float loop
// for the baseline ISA).
class FmaProbe {
 public:
  explicit FmaProbe(ThreadPool& pool) : pool_(pool) {}
  // One pass of about `seconds` (at least one chain step per task), in GFLOP/s.
  double pass(double seconds = 0.05);
  double median(int passes);

 private:
  ThreadPool& pool_;
  double steps_per_s_ = 0;  // of one thread: calibrated by the first pass
  float sink_ = 0;
};

// The upper median of v (the middle value; of an even count, the higher of the two middle
// ones): what the benchmarks report of repeated timings. Throws Error when v is empty.
double median(std::vector<double> v);

}  // namespace lowbit
