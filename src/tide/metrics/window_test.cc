#include "tide/metrics/window.h"

#include <gtest/gtest.h>

namespace tide::metrics {
namespace {

using namespace std::chrono_literals;

Time at(double seconds) { return time_at_seconds(seconds); }

TEST(AverageWindow, TimeWeighted) {
  AverageWindow w(10s);
  w.add(at(1), 1s, 10.0);
  w.add(at(4), 3s, 2.0);
  EXPECT_TRUE(w.has_data(at(4)));
  EXPECT_DOUBLE_EQ(w.average(at(4)), (10.0 + 6.0) / 4.0);
}

TEST(AverageWindow, SamplesEndingAtOrBeforeTheWindowStartDropOut) {
  AverageWindow w(10s);
  w.add(at(1), 1s, 100.0);
  w.add(at(2), 1s, 1.0);
  EXPECT_DOUBLE_EQ(w.average(at(10.5)), 50.5);
  EXPECT_DOUBLE_EQ(w.average(at(11)), 1.0);  // the sample ending at 1 is out
  EXPECT_FALSE(w.has_data(at(12)));
  EXPECT_DOUBLE_EQ(w.average(at(12)), 0.0);
}

TEST(AverageWindow, IgnoresEmptyIntervals) {
  AverageWindow w(10s);
  w.add(at(1), 0s, 5.0);
  EXPECT_FALSE(w.has_data(at(1)));
}

TEST(AverageWindow, NoDriftAfterEmptying) {
  AverageWindow w(1s);
  for (int i = 1; i <= 1000; ++i) w.add(at(i * 0.1), 100ms, 0.1 * i);
  EXPECT_FALSE(w.has_data(at(1000)));
  w.add(at(1001), 1s, 3.0);
  EXPECT_DOUBLE_EQ(w.average(at(1001)), 3.0);
}

TEST(MaxWindow, MaxOverWindow) {
  MaxWindow w(10s);
  w.add(at(1), 5);
  w.add(at(2), 3);
  w.add(at(3), 4);
  EXPECT_EQ(w.max(at(3)), 5);
  EXPECT_EQ(w.max(at(11)), 4);     // 5 (t=1) is out; 4 outlived 3
  EXPECT_EQ(w.max(at(13)), 0);     // empty: the default fallback
  EXPECT_EQ(w.max(at(13), 7), 7);  // fallback when empty
}

TEST(MaxWindow, EqualValuesKeepTheLatest) {
  MaxWindow w(10s);
  w.add(at(1), 4);
  w.add(at(5), 4);
  EXPECT_EQ(w.max(at(12)), 4);  // the t=5 sample still counts
}

}  // namespace
}  // namespace tide::metrics
