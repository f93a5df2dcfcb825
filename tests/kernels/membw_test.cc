// The benchmarks' median and the DRAM probe's contract (not its speed: that is a measurement).
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/error.h"
#include "kernels/membw.h"
#include "kernels/thread_pool.h"

namespace lowbit {
namespace {

TEST(Median, MiddleValueUpperOfAnEvenCount) {
  EXPECT_EQ(median({3.0, 1.0, 2.0}), 2.0);
  EXPECT_EQ(median({4.0, 1.0, 3.0, 2.0}), 3.0);
  EXPECT_EQ(median({5.0}), 5.0);
  EXPECT_THROW(median({}), Error);
}

// A pass reads the whole buffer and reports a finite, positive rate, on any pool size; a buffer
// asked smaller than the 8 MiB floor still works (it is raised to the floor).
TEST(DramProbe, PassesReportFiniteRates) {
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    DramProbe probe(pool, 1 << 10);
    for (int i = 0; i < 3; ++i) {
      const double g = probe.pass();
      EXPECT_TRUE(std::isfinite(g) && g > 0) << g;
    }
    const double m = probe.median(3);
    EXPECT_TRUE(std::isfinite(m) && m > 0) << m;
  }
}

// The FMA probe's contract, like the DRAM probe's: finite, positive rates on any pool size, for
// passes of any length.
TEST(FmaProbe, PassesReportFiniteRates) {
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    FmaProbe probe(pool);
    for (double seconds : {0.0, 0.01, 0.02}) {
      const double g = probe.pass(seconds);
      EXPECT_TRUE(std::isfinite(g) && g > 0) << g;
    }
    const double m = probe.median(3);
    EXPECT_TRUE(std::isfinite(m) && m > 0) << m;
  }
}

}  // namespace
}  // namespace lowbit
