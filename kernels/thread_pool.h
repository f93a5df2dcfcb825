// A persistent pool of worker threads for the CPU kernels. Decode calls a matmul a few hundred
// times per token, so waking workers must cost microseconds: workers spin briefly on a
// generation counter before sleeping on a condition variable.
// Thread-safety: one run() at a time per pool (run() serializes callers with a mutex).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace lowbit {

class ThreadPool {
 public:
  // threads: total workers including the calling thread; <= 0 means all hardware threads.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return (int)workers_.size() + 1; }

  // Calls fn(task, thread) for every task in [0, n_tasks), spread over the pool; the caller
  // takes part and returns when all tasks are done. An exception in a task is rethrown here.
  // fn is any callable; it is referred to, not copied (a std::function made from a lambda with
  // more than two captures would allocate, and decode calls this hundreds of times per token).
  template <class Fn>
  void run(int64_t n_tasks, const Fn& fn) {
    run_tasks(n_tasks, Task{&fn, [](const void* f, int64_t task, int thread) { (*static_cast<const Fn*>(f))(task, thread); }});
  }

  // The process-wide pool: LOWBIT_THREADS if set, else all hardware threads.
  static ThreadPool& global();

 private:
  struct Task {  // a callable by reference: fn(obj, task, thread)
    const void* obj;
    void (*fn)(const void* obj, int64_t task, int thread);
    void operator()(int64_t task, int thread) const { fn(obj, task, thread); }
  };
  void run_tasks(int64_t n_tasks, Task task);
  void worker_loop(int index);
  void work(int thread);

  std::vector<std::thread> workers_;
  std::mutex run_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};  // bumped per run: wakes the workers
  // The run's task counter, packed so one atomic read gives both: (n_tasks << 32) | next_task.
  // A task is claimed by a compare-and-swap, so a worker that wakes late simply finds nothing
  // left, and the caller never waits for workers that had no task.
  std::atomic<uint64_t> work_{0};
  std::atomic<int64_t> done_{0};  // tasks finished in the current run
  Task fn_{nullptr, nullptr};
  std::exception_ptr error_;
  std::mutex error_mutex_;
  bool stop_ = false;
};

int hardware_threads();

}  // namespace lowbit
