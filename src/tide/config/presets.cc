// Presets: ScalingSpecs that reproduce the documented autoscaling of other serving platforms, so
// that `tide sim --compare all` can replay one trace under each of them. Each spec encodes what
// the platform documents (cited per preset); where a document is silent the choice is written
// beside the field.
#include <algorithm>

#include "tide/config/config.h"

namespace tide::config {
namespace {

// HPA-style rules with neither stabilization nor rate limits: the platform moves straight to
// the recommendation, and its own intervals/delays (modifiers) do the damping.
ScalingRules unlimited() { return ScalingRules{0s, {}, ScalingRules::Select::kMax}; }

// A target policy on `metric` that moves straight to its recommendation: no tolerance and no
// rate limits (unlimited()), recomputed every `sync_period` over `metric_window`.
ScalingSpec direct_target(Metric metric, double target, Duration sync_period,
                          Duration metric_window) {
  ScalingSpec s;
  s.policy = PolicyKind::kTarget;
  s.target.metric = metric;
  s.target.target = target;
  s.target.tolerance = 0;
  s.target.sync_period = sync_period;
  s.target.metric_window = metric_window;
  s.target.scale_up = unlimited();
  s.target.scale_down = unlimited();
  return s;
}

// tide: the default policy (docs/policies.md); requests wait in the hold queue.
ScalingSpec tide_preset() {
  ScalingSpec s;
  s.policy = PolicyKind::kTide;
  s.admission.hold = true;
  return s;
}

// Hugging Face Inference Endpoints (seeds 000, 001): scaled on accelerator utilization, "the
// threshold is around 70-80% over a window of 1-3 minutes"; "scaling up takes place every 3
// minutes, while the scaling down process takes 5 minutes"; scale to zero "when an endpoint
// remains idle without receiving any requests for over 15 minutes"; "the HTTP server will
// respond with a status code 502 Bad Gateway while the new replica is initializing" and "there
// is currently no queueing system".
ScalingSpec hf_preset() {
  // A window of 2 min: the middle of "1-3 minutes".
  ScalingSpec s = direct_target(Metric::kUtilization, 0.8, 1min, 2min);
  s.modifiers.up_interval = 3min;
  s.modifiers.down_interval = 5min;
  s.modifiers.idle_timeout = 15min;
  s.admission.hold = false;
  s.admission.reject_status = 502;
  return s;
}

// Kubernetes HorizontalPodAutoscaler autoscaling/v2 defaults (seed 002's example: "keeping CPU
// utilization below 70%"): 15 s sync period, 10% tolerance, metrics-server's 1 min window, and the
// default behavior (up: no stabilization, max(4 pods, 100%) per 15 s; down: 300 s stabilization,
// 100% per 15 s), which TargetPolicy's defaults already hold. minReplicas is at least 1, and
// without a queue in front a request finding no ready pod fails with 503.
ScalingSpec hpa_preset() {
  ScalingSpec s;
  s.policy = PolicyKind::kTarget;
  s.target = TargetPolicy{};
  s.target.metric = Metric::kUtilization;
  s.target.target = 0.7;
  s.target.tolerance = 0.1;
  s.target.sync_period = 15s;
  s.target.metric_window = 1min;
  s.min_one = true;
  s.admission.hold = false;
  s.admission.reject_status = 503;
  return s;
}

// Knative Serving's pod autoscaler (KPA) with the config-autoscaler defaults: target 70% of
// containerConcurrency, 60 s stable window, 10% panic window, 200% panic threshold, max scale up
// rate 1000, max scale down rate 2, 30 s scale-to-zero grace, evaluated every 2 s. The activator
// buffers requests while the revision scales from zero.
ScalingSpec knative_preset() {
  ScalingSpec s;
  s.policy = PolicyKind::kConcurrency;
  s.concurrency = ConcurrencyPolicy{};
  s.admission.hold = true;
  return s;
}

// Ray Serve autoscaling_config defaults: target_ongoing_requests 2 per replica, metrics every
// 10 s (metrics_interval_s) averaged over look_back_period_s 30 s, upscale_delay_s 30,
// downscale_delay_s 600. The proxy queues requests until a replica can take them.
ScalingSpec ray_serve_preset() {
  // Ongoing requests: running + queued at the replica.
  ScalingSpec s = direct_target(Metric::kConcurrency, 2, 10s, 30s);
  s.modifiers.up_delay = 30s;
  s.modifiers.down_delay = 600s;
  s.admission.hold = true;
  return s;
}

// SkyPilot SkyServe request-rate autoscaler: target_qps_per_replica over a 60 s QPS window,
// decided every 20 s, upscale_delay_seconds 300, downscale_delay_seconds 1200. Target 0 = derive
// the per-replica QPS from the group's capacity at decide time (SkyServe needs it set by hand).
// Its load balancer does not queue: no ready replica means 503.
ScalingSpec skyserve_preset() {
  ScalingSpec s = direct_target(Metric::kRps, 0, 20s, 60s);
  s.modifiers.up_delay = 300s;
  s.modifiers.down_delay = 1200s;
  s.admission.hold = false;
  s.admission.reject_status = 503;
  return s;
}

// RunPod serverless, "request count" scaler type: workers = ceil((queued + in progress) /
// scaler value), scaler value 4 by default, re-evaluated continuously on the latest value;
// workers stop after the 5 s idle timeout. Requests wait in the endpoint's queue.
ScalingSpec runpod_preset() {
  ScalingSpec s = direct_target(Metric::kConcurrency, 4, 1s, 1s);
  s.modifiers.down_delay = 5s;
  s.modifiers.idle_timeout = 5s;  // the last worker stops too (no active workers by default)
  s.admission.hold = true;
  return s;
}

// ViewComfy serverless (seed 004): "new GPUs will turn on automatically when the number of
// queued requests exceeds the target queue size" (default 1); a GPU turns off after 30 s idle
// (default); requests beyond max GPUs are queued.
ScalingSpec viewcomfy_preset() {
  ScalingSpec s;
  s.policy = PolicyKind::kQueue;
  s.queue.queue_size = 1;
  s.queue.idle_timeout = 30s;
  s.admission.hold = true;
  return s;
}

struct Preset {
  std::string_view name;
  ScalingSpec (*make)();
};
constexpr Preset kPresets[] = {
    {"tide", tide_preset},
    {"hf", hf_preset},
    {"hpa", hpa_preset},
    {"knative", knative_preset},
    {"ray-serve", ray_serve_preset},
    {"skyserve", skyserve_preset},
    {"runpod", runpod_preset},
    {"viewcomfy", viewcomfy_preset},
};

}  // namespace

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const Preset& p : kPresets) out.emplace_back(p.name);
    return out;
  }();
  return names;
}

std::optional<ScalingSpec> preset_spec(std::string_view name) {
  const auto* it = std::find_if(std::begin(kPresets), std::end(kPresets),
                                [&](const Preset& p) { return p.name == name; });
  if (it == std::end(kPresets)) return std::nullopt;
  ScalingSpec spec = it->make();
  spec.preset = std::string(name);
  spec.tick = 1s;
  return spec;
}

}  // namespace tide::config
