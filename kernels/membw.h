// A DRAM read-bandwidth probe: the limit a decode (M = 1) matmul is measured against, taken in
// the same process and moment as the measurement it judges, since the machines here are shared
// and their bandwidth drifts by +-15% between runs.
#pragma once

#include <cstddef>

namespace lowbit {

class ThreadPool;

// Reads a `bytes` buffer (default 1 GiB, far past any L3) with plain sequential loads summed,
// split over `threads` threads (<= 0: the pool's size), and returns the median over `passes`
// passes in GB/s (1e9 bytes). pool: the threads to read with when its size is `threads`;
// otherwise (or null) a pool of `threads` is made for the call. The buffer is allocated and
// first touched (in parallel) inside the call, and freed before it returns.
double dram_read_gbps(int threads, ThreadPool* pool, size_t bytes = size_t(1) << 30, int passes = 7);

}  // namespace lowbit
