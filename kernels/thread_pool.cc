#include "kernels/thread_pool.h"

#include <cstdlib>
#include <stdexcept>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace lowbit {

namespace {
inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}
// About 50-100 microseconds of spinning: long enough to cover the gap between two matmuls of
// one decode step, short enough not to burn a core when idle.
constexpr int kSpinIterations = 20000;
}  // namespace

int hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : (int)n;
}

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = hardware_threads();
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool([] {
    const char* env = std::getenv("LOWBIT_THREADS");
    return env ? std::atoi(env) : 0;
  }());
  return pool;
}

void ThreadPool::work(int thread) {
  uint64_t v = work_.load(std::memory_order_acquire);
  for (;;) {
    const uint64_t next = v & 0xffffffffu, n = v >> 32;
    if (next >= n) return;
    if (!work_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    try {
      fn_((int64_t)next, thread);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
    done_.fetch_add(1, std::memory_order_acq_rel);
    v = work_.load(std::memory_order_acquire);
  }
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < kSpinIterations; ++spin) {
      cpu_relax();
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_) return;
    work(index);
  }
}

void ThreadPool::run_tasks(int64_t n_tasks, Task fn) {
  if (n_tasks <= 0) return;
  std::lock_guard<std::mutex> run_lock(run_mutex_);
  if (workers_.empty() || n_tasks == 1) {
    for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
    return;
  }
  if (n_tasks >= (int64_t(1) << 32)) throw std::length_error("ThreadPool::run: too many tasks");
  fn_ = fn;
  error_ = nullptr;
  done_.store(0, std::memory_order_relaxed);
  work_.store((uint64_t)n_tasks << 32, std::memory_order_release);
  {
    // Publishing under the mutex pairs with the condition-variable wait of sleeping workers.
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  work(0);
  // Only tasks a worker is still running are waited for; yield now and then so that worker can
  // run when the machine has more threads than cores.
  for (int spin = 0; done_.load(std::memory_order_acquire) != n_tasks; ++spin) {
    if (spin % 64 == 63) std::this_thread::yield();
    else cpu_relax();
  }
  fn_ = {nullptr, nullptr};
  if (error_) std::rethrow_exception(error_);
}

}  // namespace lowbit
