// step: EC2 Auto Scaling / SageMaker step scaling. The per-replica metric, averaged over
// `window`, falls in one band (lower inclusive, upper exclusive); the band's adjustment gives the
// desired count. After a scale in one direction, that direction is blocked for its cooldown.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "tide/metrics/window.h"
#include "tide/policy/policies.h"

namespace tide::policy {
namespace {

using Adjustment = config::StepPolicy::Adjustment;

std::string bound_text(const std::optional<double>& b, const char* infinity) {
  return b ? fmt::format("{:g}", *b) : std::string(infinity);
}

class StepDecider final : public Decider {
 public:
  explicit StepDecider(const config::StepPolicy& params)
      : params_(params), metric_(params.window) {}

  Decision decide(const Observation& obs) override {
    if (obs.interval > Duration{0}) {
      metric_.add(obs.now, obs.interval, obs.per_replica(params_.metric));
    }
    const int cur = obs.current;
    const std::string name(config::metric_name(params_.metric));
    const double value =
        metric_.has_data(obs.now) ? metric_.average(obs.now) : obs.per_replica(params_.metric);
    const auto band = std::find_if(params_.steps.begin(), params_.steps.end(), [&](const auto& s) {
      return (!s.lower || value >= *s.lower) && (!s.upper || value < *s.upper);
    });
    if (band == params_.steps.end()) {
      return {cur, fmt::format("no change: {} {:.2f} over {} in no band", name, value,
                               format_duration(params_.window))};
    }
    const auto [desired_raw, how] = adjust(cur, band->change);
    const int desired = std::max(0, desired_raw);
    std::string reason = fmt::format(
        "{} {:.2f} over {} in [{}, {}): {}", name, value, format_duration(params_.window),
        bound_text(band->lower, "-inf"), bound_text(band->upper, "+inf"), how);
    if (desired == cur) return {cur, "no change: " + reason};

    const bool up = desired > cur;
    const std::optional<Time>& last = up ? last_up_ : last_down_;
    const Duration cooldown = up ? params_.cooldown_up : params_.cooldown_down;
    if (last && obs.now - *last < cooldown) {
      return {cur, fmt::format("no change: {}; held by {} ({} of {})", reason,
                               up ? "cooldown_up" : "cooldown_down",
                               format_duration(obs.now - *last), format_duration(cooldown))};
    }
    (up ? last_up_ : last_down_) = obs.now;
    return {desired, fmt::format("{}: {} -> {}", reason, cur, desired)};
  }

 private:
  std::pair<int, std::string> adjust(int cur, double change) const {
    switch (params_.adjustment) {
      case Adjustment::kChange: {
        const int delta = static_cast<int>(std::lround(change));
        return {cur + delta, fmt::format("change {:+d}", delta)};
      }
      case Adjustment::kPercent: {
        // Rounded away from zero, and at least one replica when the percent is not zero.
        const double exact = cur * change / 100.0;
        int delta =
            static_cast<int>(exact > 0 ? std::ceil(exact - 1e-9) : std::floor(exact + 1e-9));
        if (change > 0) delta = std::max(delta, 1);
        if (change < 0) delta = std::min(delta, -1);
        return {cur + delta, fmt::format("{:+g}% of {} = {:+d}", change, cur, delta)};
      }
      case Adjustment::kExact: {
        const int n = static_cast<int>(std::lround(change));
        return {n, fmt::format("exact {}", n)};
      }
    }
    return {cur, "?"};
  }

  config::StepPolicy params_;
  metrics::AverageWindow metric_;
  std::optional<Time> last_up_;
  std::optional<Time> last_down_;
};

}  // namespace

std::unique_ptr<Decider> make_step_policy(const config::StepPolicy& params) {
  return std::make_unique<StepDecider>(params);
}

}  // namespace tide::policy
