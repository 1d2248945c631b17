// Sliding windows over time-stamped samples: the building blocks of scaling signals.
//
// Time is passed in; nothing here reads a clock or does I/O. Not thread-safe: each decider owns
// its windows.
#pragma once

#include <cstddef>
#include <deque>

#include "tide/common/time.h"

namespace tide::metrics {

// Time-weighted average of a piecewise-constant signal over the last `window`.
// add(end, dt, value) says the signal had `value` during (end - dt, end]. Samples that end at or
// before now - window drop out whole (windows are much longer than one sample).
class AverageWindow {
 public:
  explicit AverageWindow(Duration window) : window_(window) {}

  void add(Time end, Duration dt, double value);
  // Average over samples ending within (now - window, now]; nullopt-like: `has_data` false if none.
  double average(Time now);
  bool has_data(Time now);
  Duration window() const { return window_; }
  void set_window(Duration w) { window_ = w; }

 private:
  struct Sample {
    Time end;
    double weighted;  // value x seconds
    double seconds;
  };
  void evict(Time now);

  Duration window_;
  std::deque<Sample> samples_;
  double weighted_sum_ = 0;
  double seconds_sum_ = 0;
};

// Maximum of samples over the last `window` (monotonic deque: O(1) amortized).
class MaxWindow {
 public:
  explicit MaxWindow(Duration window) : window_(window) {}
  void add(Time t, double value);
  // Max of samples with t > now - window; `fallback` if none.
  double max(Time now, double fallback = 0);
  void clear() { samples_.clear(); }

 private:
  struct Sample {
    Time t;
    double value;
  };
  Duration window_;
  std::deque<Sample> samples_;
};

}  // namespace tide::metrics
