// The pool runs every task exactly once per run, across many back-to-back runs (where a late
// worker of one run must not touch the next), and rethrows a task's exception in the caller.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "kernels/thread_pool.h"

namespace lowbit {
namespace {

TEST(ThreadPool, EveryTaskOnceAcrossManyRuns) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int run = 0; run < 2000; ++run) {
      const int64_t n = 1 + run % 37;
      std::vector<std::atomic<int>> hits(n);
      pool.run(n, [&](int64_t t, int thread) {
        ASSERT_GE(thread, 0);
        ASSERT_LT(thread, threads);
        hits[t].fetch_add(1);
      });
      for (int64_t t = 0; t < n; ++t) ASSERT_EQ(hits[t].load(), 1) << "run " << run << " task " << t;
    }
  }
}

TEST(ThreadPool, ExceptionReachesTheCaller) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.run(16, [](int64_t t, int) {
    if (t == 11) throw std::runtime_error("task 11");
  }), std::runtime_error);
  std::atomic<int> after{0};
  pool.run(8, [&](int64_t, int) { after.fetch_add(1); });
  EXPECT_EQ(after.load(), 8);
}

}  // namespace
}  // namespace lowbit
