#include "tide/common/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "tide/common/random.h"

namespace tide {
namespace {

TEST(LogLinearHistogram, QuantilesAreWithinTwoPercentOfExact) {
  LogLinearHistogram h;
  Random rng(7);
  std::vector<double> values;
  for (int i = 0; i < 100000; ++i) {
    const double v = rng.lognormal(0.5, 1.2);
    values.push_back(v);
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const double exact = values[static_cast<size_t>(q * static_cast<double>(values.size())) - 1];
    EXPECT_NEAR(h.quantile(q) / exact, 1.0, 0.02) << q;
    EXPECT_GE(h.quantile(q), exact * 0.999) << "never understates";
  }
  EXPECT_EQ(h.count(), 100000u);
  EXPECT_DOUBLE_EQ(h.max(), values.back());
}

TEST(LogLinearHistogram, ZeroWaitsReadAsZero) {
  LogLinearHistogram h;
  for (int i = 0; i < 99; ++i) h.record(0.0);
  h.record(3.0);
  EXPECT_EQ(h.quantile(0.5), 0.0);
  EXPECT_EQ(h.quantile(0.99), 0.0);
  EXPECT_NEAR(h.quantile(1.0), 3.0, 1e-9);
}

TEST(LogLinearHistogram, MergeAddsCounts) {
  LogLinearHistogram a, b;
  a.record(1.0);
  b.record(2.0);
  b.record(4.0);
  a.merge(b);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_DOUBLE_EQ(a.sum(), 7.0);
  EXPECT_NEAR(a.quantile(1.0), 4.0, 1e-9);
}

TEST(LogLinearHistogram, EmptyAndHugeValuesAreSafe) {
  LogLinearHistogram h;
  EXPECT_EQ(h.quantile(0.99), 0.0);
  h.record(1e30);
  h.record(-5);  // clamped to 0
  EXPECT_EQ(h.count(), 2u);
  EXPECT_GT(h.quantile(1.0), 0.0);
}

TEST(LogLinearHistogram, SubtractLeavesWhatWasRecordedInBetween) {
  LogLinearHistogram h;
  for (int i = 0; i < 100; ++i) h.record(10.0);  // an old interval of slow requests
  const LogLinearHistogram earlier = h;
  for (int i = 0; i < 50; ++i) h.record(0.1);
  h.record(0.2);
  LogLinearHistogram interval = h;
  interval.subtract(earlier);
  EXPECT_EQ(interval.count(), 51u);
  EXPECT_NEAR(interval.sum(), 5.2, 1e-9);
  EXPECT_NEAR(interval.quantile(0.5), 0.1, 0.1 / 64);
  // The old 10 s values are gone: the top is the 0.2 s bucket, not the cumulative max.
  EXPECT_GE(interval.quantile(1.0), 0.2);
  EXPECT_LT(interval.quantile(1.0), 0.21);
  LogLinearHistogram none = h;
  none.subtract(h);
  EXPECT_EQ(none.count(), 0u);
  EXPECT_EQ(none.quantile(0.99), 0.0);
}

TEST(LogLinearHistogram, CountAtOrBelowNeverOverstates) {
  LogLinearHistogram h(1e-4, 26);
  for (double v : {0.003, 0.02, 0.02, 0.7, 1.2, 40.0}) h.record(v);
  EXPECT_EQ(h.count_at_or_below(0.001), 0u);
  EXPECT_EQ(h.count_at_or_below(0.005), 1u);
  EXPECT_EQ(h.count_at_or_below(0.025), 3u);
  EXPECT_EQ(h.count_at_or_below(1.0), 4u);
  EXPECT_EQ(h.count_at_or_below(2.5), 5u);
  EXPECT_EQ(h.count_at_or_below(1e9), 6u);
  // 0.999 shares a bucket with values above 1: counted at the next bound, not at 1.
  LogLinearHistogram edge(1e-4, 26);
  edge.record(0.999);
  EXPECT_EQ(edge.count_at_or_below(1.0), 0u);
  EXPECT_EQ(edge.count_at_or_below(1.05), 1u);
}

}  // namespace
}  // namespace tide
