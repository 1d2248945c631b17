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

}  // namespace
}  // namespace tide
