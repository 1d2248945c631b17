// What `tide serve` shows of itself, apart from any I/O: the Prometheus text of GET /metrics,
// the per-group comparison figures of the API and the dashboard, and the pieces of the live
// event stream (GET /v1/events). No Asio: tests feed these views built by hand.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tide/auth/client_keys.h"
#include "tide/common/histogram.h"
#include "tide/common/process_stats.h"
#include "tide/common/time.h"
#include "tide/config/config.h"
#include "tide/control/live_endpoint.h"
#include "tide/gateway/gateway.h"

namespace tide::serve {

struct MetricsInput {
  struct Endpoint {
    const config::EndpointSpec* spec = nullptr;
    control::EndpointView view;
  };
  std::vector<Endpoint> endpoints;
  gateway::GatewayCounters gateway;
  std::vector<auth::ClientKeyRing::Counts> client_keys;  // per client key name
  int active_requests = 0;
  double start_time_s = 0;              // Unix seconds
  std::optional<ProcessStats> process;  // process_* metrics; none where /proc is not there
  std::string version;                  // tide_build_info's labels
  std::string commit;
};

// Every metric of docs/metrics.md, in the Prometheus text format.
std::string metrics_text(const MetricsInput& in);

// A group's figures since start, to compare groups ("which hardware serves this model best per
// dollar"): requests by outcome, latency and queue-wait percentiles, throughput per replica,
// replica-seconds, cost (with a price), cold starts, scaling decisions.
nlohmann::json group_stats_json(const control::GroupView& group, const config::GroupSpec& spec);

// Percentiles of a histogram as {"count", "mean", "p50", "p95", "p99", "max"} (seconds).
nlohmann::json percentiles_json(const LogLinearHistogram& h);

// One server-sent event: "event: NAME\ndata: DATA\n\n". `data` must be one line (compact JSON).
std::string sse_event(std::string_view name, std::string_view data);

// What one subscriber of the event stream has seen: recent latency per group from the
// cumulative histograms it is shown every tick, and which decisions it was sent. Not
// thread-safe: one per stream, used from the stream's thread.
class LiveWindow {
 public:
  explicit LiveWindow(Duration span = std::chrono::seconds(10)) : span_(span) {}

  // Per group of `view`, over the last `span` (or since the first call, if shorter):
  // {"name", "window_s", "requests" (ended), "arrivals", "rps" (arrivals a second),
  // "latency_p50_s", "latency_p95_s", "latency_p99_s"}, the percentiles null when no request
  // was answered. Arrivals are the increase of ended + held + in service, so requests held
  // through a cold start or still in service count from when they came.
  nlohmann::json recent(Time now, const control::EndpointView& view);
  // The decisions of `view` not returned before (on the first call, all that it holds).
  std::vector<DecisionRecord> new_decisions(const control::EndpointView& view);

 private:
  struct Sample {
    Time at;
    LogLinearHistogram latency;
    uint64_t requests = 0;
    uint64_t arrived = 0;  // ended + held + in service
  };
  Duration span_;
  std::map<std::pair<std::string, std::string>, std::deque<Sample>> samples_;  // endpoint, group
  std::map<std::string, uint64_t> decisions_seen_;                             // per endpoint
};

}  // namespace tide::serve
