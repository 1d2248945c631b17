// The modifiers every policy shares, applied after the inner policy in this order: bounds, idle
// scale to zero, hysteresis, up/down intervals, up/down delays. Each one that changes or holds the
// inner decision appends why to the reason.
#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "tide/policy/policies.h"

namespace tide::policy {
namespace {

std::string held_text(const char* what, Duration elapsed, Duration limit) {
  return fmt::format("; held by {} ({} of {})", what, format_duration(elapsed),
                     format_duration(limit));
}

class ModifiedDecider final : public Decider {
 public:
  ModifiedDecider(std::unique_ptr<Decider> inner, const config::Modifiers& modifiers, bool min_one)
      : inner_(std::move(inner)), m_(modifiers), min_one_(min_one) {}

  Decision decide(const Observation& obs) override {
    if (!first_seen_) first_seen_ = obs.now;
    Decision d = inner_->decide(obs);
    const int cur = obs.current;
    const int lo = std::max(obs.min_replicas, min_one_ ? 1 : 0);
    const int hi = std::max(lo, obs.max_replicas);

    // Bounds.
    int desired = d.desired;
    if (desired > hi) {
      desired = hi;
      d.reason += fmt::format("; capped at max {}", hi);
    } else if (desired < lo) {
      desired = lo;
      d.reason += fmt::format("; raised to min {}", lo);
    }

    // Idle scale to zero: nothing arrived, ran or waited for idle_timeout.
    if (m_.idle_timeout && lo == 0 && desired > 0 && obs.in_flight == 0 && obs.queued == 0 &&
        obs.arrivals == 0) {
      const Time since = obs.last_activity.value_or(*first_seen_);
      if (obs.now - since >= *m_.idle_timeout) {
        d.reason +=
            fmt::format("; group idle {} >= idle_timeout {}: {} -> 0",
                        format_duration(obs.now - since), format_duration(*m_.idle_timeout), cur);
        desired = 0;
      }
    }

    // Hysteresis: small scale-downs are ignored.
    if (desired < cur && m_.hysteresis > 0 && !(desired < cur * (1 - m_.hysteresis))) {
      d.reason += fmt::format("; held by hysteresis ({} >= {} x {:g} = {:g})", desired, cur,
                              1 - m_.hysteresis, cur * (1 - m_.hysteresis));
      desired = cur;
    }

    // The direction the policy recommends now, and since when without a break.
    const int direction = desired > cur ? 1 : desired < cur ? -1 : 0;
    if (direction > 0) {
      if (!up_since_) up_since_ = obs.now;
      down_since_.reset();
    } else if (direction < 0) {
      if (!down_since_) down_since_ = obs.now;
      up_since_.reset();
    } else {
      up_since_.reset();
      down_since_.reset();
    }

    bool held = false;
    if (direction != 0) {
      const bool up = direction > 0;
      const std::optional<Time>& last = up ? last_up_ : last_down_;
      const Duration interval = up ? m_.up_interval : m_.down_interval;
      const std::optional<Time>& since = up ? up_since_ : down_since_;
      const Duration delay = up ? m_.up_delay : m_.down_delay;
      if (interval > Duration{0} && last && obs.now - *last < interval) {
        d.reason += held_text(up ? "up_interval" : "down_interval", obs.now - *last, interval);
        held = true;
      } else if (delay > Duration{0} && obs.now - *since < delay) {
        d.reason += held_text(up ? "up_delay" : "down_delay", obs.now - *since, delay);
        held = true;
      }
      if (held) {
        desired = cur;
      } else {
        // A new change in this direction needs a new uninterrupted recommendation.
        (up ? last_up_ : last_down_) = obs.now;
        (up ? up_since_ : down_since_).reset();
      }
    }
    // Holds keep the current count, which may itself lie outside changed bounds.
    desired = std::clamp(desired, lo, hi);
    d.desired = desired;
    return d;
  }

 private:
  std::unique_ptr<Decider> inner_;
  config::Modifiers m_;
  bool min_one_;
  std::optional<Time> first_seen_;
  std::optional<Time> up_since_;
  std::optional<Time> down_since_;
  std::optional<Time> last_up_;
  std::optional<Time> last_down_;
};

}  // namespace

std::unique_ptr<Decider> wrap_with_modifiers(std::unique_ptr<Decider> inner,
                                             const config::Modifiers& modifiers, bool min_one) {
  return std::make_unique<ModifiedDecider>(std::move(inner), modifiers, min_one);
}

}  // namespace tide::policy
