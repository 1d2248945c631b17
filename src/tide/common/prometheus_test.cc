#include "tide/common/prometheus.h"

#include <gtest/gtest.h>

#include <array>
#include <limits>

namespace tide {
namespace {

TEST(PrometheusText, FamiliesSamplesAndEscapedLabels) {
  PrometheusText p;
  p.family("tide_x_total", "counter", "What \"x\" counts\\per line\nsecond line");
  const std::array<PrometheusText::Label, 2> labels{
      {{"endpoint", "chat"}, {"group", "a\"b\\c\nd"}}};
  p.sample("tide_x_total", labels, uint64_t{18446744073709551615u});
  p.sample("tide_y", {}, 0.25);
  p.sample("tide_y", {}, std::numeric_limits<double>::infinity());
  p.sample("tide_y", {}, std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(p.text(),
            "# HELP tide_x_total What \"x\" counts\\\\per line\\nsecond line\n"
            "# TYPE tide_x_total counter\n"
            "tide_x_total{endpoint=\"chat\",group=\"a\\\"b\\\\c\\nd\"} 18446744073709551615\n"
            "tide_y 0.25\n"
            "tide_y +Inf\n"
            "tide_y NaN\n");
}

TEST(PrometheusText, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  LogLinearHistogram h(1e-4, 26);
  for (double v : {0.02, 0.3, 0.3, 7.0}) h.record(v);
  PrometheusText p;
  const std::array<PrometheusText::Label, 1> labels{{{"group", "g"}}};
  const std::array<double, 3> bounds{0.1, 1, 5};
  p.histogram("lat_seconds", labels, h, bounds);
  EXPECT_EQ(p.text(),
            "lat_seconds_bucket{group=\"g\",le=\"0.1\"} 1\n"
            "lat_seconds_bucket{group=\"g\",le=\"1\"} 3\n"
            "lat_seconds_bucket{group=\"g\",le=\"5\"} 3\n"
            "lat_seconds_bucket{group=\"g\",le=\"+Inf\"} 4\n"
            "lat_seconds_sum{group=\"g\"} 7.62\n"
            "lat_seconds_count{group=\"g\"} 4\n");
}

}  // namespace
}  // namespace tide
