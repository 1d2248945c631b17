// concurrency: the Knative pod autoscaler (knative/serving pkg/autoscaler/scaling/autoscaler.go,
// with scale to zero as pkg/reconciler/autoscaling/kpa/scaler.go gates it).
//
// Observed concurrency (in service + waiting, the whole group) is averaged over a stable window
// and a panic window. Every `tick`: desired pods = ceil(observed / target), clamped to the scale
// rates. When the panic-window count reaches threshold x ready pods the autoscaler panics: it uses
// the larger of the two counts and never scales down until the stable window passes without
// crossing again. A scale-down delay keeps the max recommendation over that delay. Zero replicas
// only after no traffic for the stable window plus the scale-to-zero grace.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "tide/metrics/window.h"
#include "tide/policy/policies.h"

namespace tide::policy {
namespace {

// Panic window length; Knative's default is 10% of the stable window.
Duration panic_window(const config::ConcurrencyPolicy& p) {
  return std::max(Duration{1},
                  from_seconds(to_seconds(p.stable_window) * p.panic_window_percentage / 100.0));
}

class ConcurrencyDecider final : public Decider {
 public:
  explicit ConcurrencyDecider(const config::ConcurrencyPolicy& params)
      : params_(params),
        stable_(params.stable_window),
        panic_(panic_window(params)),
        delay_(params.scale_down_delay) {}

  Decision decide(const Observation& obs) override {
    if (!first_seen_) first_seen_ = obs.now;
    if (obs.interval > Duration{0}) {
      const double observed = obs.avg_in_flight + obs.avg_queued;
      stable_.add(obs.now, obs.interval, observed);
      panic_.add(obs.now, obs.interval, observed);
    }
    const bool traffic = obs.in_flight + obs.queued > 0 || obs.arrivals > 0 ||
                         obs.avg_in_flight > 0 || obs.avg_queued > 0;
    if (traffic) last_traffic_ = obs.now;
    // A request for a group at zero is evaluated at once, as Knative's activator pokes the
    // autoscaler instead of waiting for its tick.
    const bool poke = obs.current == 0 && traffic;
    if (!poke && last_eval_ && obs.now - *last_eval_ < params_.tick) {
      return {last_desired_, fmt::format("waiting for knative tick ({} of {}): keep {}",
                                         format_duration(obs.now - *last_eval_),
                                         format_duration(params_.tick), last_desired_)};
    }
    Decision d = evaluate(obs);
    last_eval_ = obs.now;
    last_desired_ = d.desired;
    return d;
  }

 private:
  // Pods wanted by the stable and panic windows, each clamped to the scale rates.
  struct Recommendation {
    double target = 0;
    double stable = 0;  // observed concurrency, averaged over each window
    double panic = 0;
    double ready = 0;
    double dspc = 0;  // desired pods, stable and panic, before the rates
    double dppc = 0;
    int desired_stable = 0;
    int desired_panic = 0;
    double threshold = 0;
    bool over = false;  // the panic window's pods reach the threshold
  };

  Recommendation recommend(const Observation& obs) {
    Recommendation r;
    r.target = params_.target > 0 ? params_.target : 0.7 * std::max(1, obs.concurrency);
    r.stable = stable_.average(obs.now);
    r.panic = panic_.has_data(obs.now) ? panic_.average(obs.now) : r.stable;
    r.ready = std::max(1, obs.ready);
    const double max_up = std::ceil(params_.max_scale_up_rate * r.ready);
    const double max_down = std::floor(r.ready / params_.max_scale_down_rate);
    r.dspc = std::ceil(r.stable / r.target - 1e-9);
    r.dppc = std::ceil(r.panic / r.target - 1e-9);
    r.desired_stable = static_cast<int>(std::min(std::max(r.dspc, max_down), max_up));
    r.desired_panic = static_cast<int>(std::min(std::max(r.dppc, max_down), max_up));
    r.threshold = params_.panic_threshold_percentage / 100.0;
    r.over = r.dppc / r.ready >= r.threshold;
    return r;
  }

  // Enters or extends the panic while over the threshold, leaves it a stable window after.
  struct PanicChange {
    bool entered = false;
    bool left = false;
  };
  PanicChange update_panic(bool over, Time now) {
    PanicChange change;
    if (over) {
      change.entered = !panic_time_;
      panic_time_ = now;  // extends the panic while over the threshold
    } else if (panic_time_ && *panic_time_ + params_.stable_window < now) {
      panic_time_.reset();
      max_panic_pods_ = 0;
      change.left = true;
    }
    return change;
  }

  static std::string pods_text(double observed, Duration window, double target, double raw,
                               int clamped) {
    std::string s = fmt::format("observed {:.1f} over {} window / target {:.2f} = {:g} pods",
                                observed, format_duration(window), target, raw);
    if (clamped != raw) s += fmt::format(" (rate-limited to {})", clamped);
    return s;
  }

  // The pods the windows call for, and why.
  int windows_desired(const Recommendation& r, PanicChange change, std::string& reason) {
    const double t = r.target;
    if (!panic_time_) {
      reason = fmt::format("knative stable{}: {}", change.left ? " (panic over)" : "",
                           pods_text(r.stable, params_.stable_window, t, r.dspc, r.desired_stable));
      return r.desired_stable;
    }
    const int desired = std::max(r.desired_stable, r.desired_panic);
    reason =
        fmt::format("knative panic{}: {} {} {:g} x {:g} ready", change.entered ? " entered" : "",
                    pods_text(r.panic, panic_window(params_), t, r.dppc, r.desired_panic),
                    r.over ? ">=" : "<", r.threshold, r.ready);
    if (r.desired_stable > r.desired_panic) {
      reason +=
          "; stable " + pods_text(r.stable, params_.stable_window, t, r.dspc, r.desired_stable);
    }
    // Never scale down while panicking.
    if (desired < max_panic_pods_) {
      reason += fmt::format("; no scale-down while panicking, keep {}", max_panic_pods_);
    }
    max_panic_pods_ = std::max(max_panic_pods_, desired);
    return max_panic_pods_;
  }

  // A scale-down delay keeps the largest recommendation over the delay.
  int delay_scale_down(Time now, int desired, std::string& reason) {
    if (params_.scale_down_delay <= Duration{0}) return desired;
    delay_.add(now, desired);
    const int delayed = static_cast<int>(delay_.max(now, desired));
    if (delayed == desired) return desired;
    reason += fmt::format("; scale_down_delay {} keeps {}",
                          format_duration(params_.scale_down_delay), delayed);
    return delayed;
  }

  // Zero only after no traffic for the stable window plus the grace: until then, one.
  int hold_before_zero(const Observation& obs, int desired, std::string& reason) const {
    if (desired != 0 || obs.current <= 0) return desired;
    const Time since = last_traffic_.value_or(*first_seen_);
    const Duration wait = params_.stable_window + params_.scale_to_zero_grace;
    if (obs.now - since >= wait) return desired;
    reason += fmt::format("; no traffic for {} of {} + {} grace, keep 1",
                          format_duration(obs.now - since), format_duration(params_.stable_window),
                          format_duration(params_.scale_to_zero_grace));
    return 1;
  }

  Decision evaluate(const Observation& obs) {
    const int cur = obs.current;
    // Knative starts panicking when it (re)starts over more than one pod: it has no history yet
    // and must not scale down on that.
    if (!last_eval_ && obs.ready > 1) {
      panic_time_ = obs.now;
      max_panic_pods_ = obs.ready;
    }
    if (!stable_.has_data(obs.now)) {
      return {cur, "no change: knative has no concurrency data yet"};
    }
    const Recommendation r = recommend(obs);
    const PanicChange change = update_panic(r.over, obs.now);
    std::string reason;
    int desired = windows_desired(r, change, reason);
    desired = delay_scale_down(obs.now, desired, reason);
    desired = hold_before_zero(obs, desired, reason);
    if (desired == cur) return {desired, "no change: " + reason};
    return {desired, fmt::format("{}: {} -> {}", reason, cur, desired)};
  }

  config::ConcurrencyPolicy params_;
  metrics::AverageWindow stable_;
  metrics::AverageWindow panic_;
  metrics::MaxWindow delay_;
  std::optional<Time> panic_time_;
  int max_panic_pods_ = 0;
  std::optional<Time> last_eval_;
  int last_desired_ = 0;
  std::optional<Time> first_seen_;
  std::optional<Time> last_traffic_;
};

}  // namespace

std::unique_ptr<Decider> make_concurrency_policy(const config::ConcurrencyPolicy& params) {
  return std::make_unique<ConcurrencyDecider>(params);
}

}  // namespace tide::policy
