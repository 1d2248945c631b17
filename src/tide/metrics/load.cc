#include "tide/metrics/load.h"

#include <algorithm>
#include <cmath>

namespace tide::metrics {

LoadEstimator::LoadEstimator(Duration half_life)
    : half_life_s_(std::max(1e-3, to_seconds(half_life))) {}

double LoadEstimator::slot_rate() const { return service_s_ > 1e-9 ? work_ / service_s_ : 0.0; }

double LoadEstimator::work_per_request() const {
  return completions_ > 1e-9 ? work_ / completions_ : 1.0;
}

double LoadEstimator::arrival_rate() const { return span_s_ > 1e-9 ? arrivals_ / span_s_ : 0.0; }

LoadSample LoadEstimator::update(const LoadInterval& in) {
  if (!(in.seconds > 0)) return last_;
  const double keep = std::exp2(-in.seconds / half_life_s_);
  work_ = work_ * keep + std::max(0.0, in.work);
  service_s_ = service_s_ * keep + std::max(0.0, in.service_s);
  completions_ = completions_ * keep + static_cast<double>(in.completions);
  arrivals_ = arrivals_ * keep + static_cast<double>(in.arrivals);
  span_s_ = span_s_ * keep + in.seconds;

  LoadSample s;
  const double slots = std::max(in.slots, 1e-9);
  const double occupied = std::max(0.0, in.avg_in_service) + std::max(0.0, in.avg_queued);
  s.throughput = std::max(0.0, in.work) / in.seconds;
  const double r = slot_rate();
  if (r > 0 && work_ > 0) {
    s.learned = true;
    s.capacity = r * slots;
    s.demand = std::max(arrival_rate() * work_per_request(), occupied * r);
    s.load = s.demand / s.capacity;
  } else {
    s.load = occupied / slots;
  }
  last_ = s;
  return s;
}

}  // namespace tide::metrics
