#include "tide/metrics/window.h"

namespace tide::metrics {

void AverageWindow::add(Time end, Duration dt, double value) {
  const double s = to_seconds(dt);
  if (s <= 0) return;
  samples_.push_back({end, value * s, s});
  weighted_sum_ += value * s;
  seconds_sum_ += s;
}

void AverageWindow::evict(Time now) {
  while (!samples_.empty() && samples_.front().end <= now - window_) {
    weighted_sum_ -= samples_.front().weighted;
    seconds_sum_ -= samples_.front().seconds;
    samples_.pop_front();
  }
  if (samples_.empty()) weighted_sum_ = seconds_sum_ = 0;  // no drift from float subtraction
}

double AverageWindow::average(Time now) {
  evict(now);
  return seconds_sum_ > 0 ? weighted_sum_ / seconds_sum_ : 0.0;
}

bool AverageWindow::has_data(Time now) {
  evict(now);
  return !samples_.empty();
}

void MaxWindow::add(Time t, double value) {
  while (!samples_.empty() && samples_.back().value <= value) samples_.pop_back();
  samples_.push_back({t, value});
}

double MaxWindow::max(Time now, double fallback) {
  while (!samples_.empty() && samples_.front().t <= now - window_) samples_.pop_front();
  return samples_.empty() ? fallback : samples_.front().value;
}

}  // namespace tide::metrics
