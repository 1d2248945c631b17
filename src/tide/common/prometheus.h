// The Prometheus text exposition format (0.0.4), written by hand: metric families with their
// # HELP and # TYPE lines, samples with escaped label values, and histograms taken from a
// LogLinearHistogram collapsed to a fixed set of `le` bounds. Builds a string; no I/O.
// Not thread-safe: one writer per scrape.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "tide/common/histogram.h"

namespace tide {

class PrometheusText {
 public:
  struct Label {
    std::string_view name;
    std::string_view value;
  };
  using Labels = std::span<const Label>;

  // Starts a family: `type` is counter, gauge or histogram. Its samples follow.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, Labels labels, double value);
  void sample(std::string_view name, Labels labels, uint64_t value);
  // name_bucket{...,le="b"} for each bound and +Inf, then name_sum and name_count.
  void histogram(std::string_view name, Labels labels, const LogLinearHistogram& h,
                 std::span<const double> bounds);

  const std::string& text() const { return out_; }

 private:
  void series(std::string_view name, std::string_view suffix, Labels labels,
              std::string_view le = {});
  std::string out_;
};

}  // namespace tide
