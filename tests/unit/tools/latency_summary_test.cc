#include "tools/ringserve-bench/latency_summary.h"

#include "gtest/gtest.h"

namespace ringserve::tools::bench {
namespace {

TEST(LatencySummaryTest, EmptyIsAllZero) {
  const LatencySummary s = Summarize({});
  EXPECT_EQ(s.count, 0);
  EXPECT_EQ(s.mean, 0);
  EXPECT_EQ(s.p99, 0);
}

TEST(LatencySummaryTest, OneSampleIsEveryPercentile) {
  const LatencySummary s = Summarize({7.5});
  EXPECT_EQ(s.count, 1);
  EXPECT_DOUBLE_EQ(s.mean, 7.5);
  EXPECT_DOUBLE_EQ(s.p50, 7.5);
  EXPECT_DOUBLE_EQ(s.p99, 7.5);
}

// The values numpy.percentile gives for 1..100 (linear interpolation between ranks).
TEST(LatencySummaryTest, MatchesNumpyOnOneToHundred) {
  std::vector<double> samples;
  for (int i = 100; i >= 1; --i) samples.push_back(i);  // unsorted on purpose
  const LatencySummary s = Summarize(samples);
  EXPECT_EQ(s.count, 100);
  EXPECT_DOUBLE_EQ(s.mean, 50.5);
  EXPECT_DOUBLE_EQ(s.p50, 50.5);
  EXPECT_NEAR(s.p95, 95.05, 1e-9);
  EXPECT_NEAR(s.p99, 99.01, 1e-9);
}

TEST(LatencySummaryTest, InterpolatesBetweenRanks) {
  const std::vector<double> sorted = {10, 20, 30, 40};
  EXPECT_DOUBLE_EQ(Percentile(sorted, 0), 10);
  EXPECT_DOUBLE_EQ(Percentile(sorted, 50), 25);
  EXPECT_DOUBLE_EQ(Percentile(sorted, 100), 40);
  EXPECT_DOUBLE_EQ(Percentile(sorted, 90), 37);
  // Out-of-range q is clamped rather than reading past the ends.
  EXPECT_DOUBLE_EQ(Percentile(sorted, 150), 40);
  EXPECT_DOUBLE_EQ(Percentile(sorted, -5), 10);
}

}  // namespace
}  // namespace ringserve::tools::bench
