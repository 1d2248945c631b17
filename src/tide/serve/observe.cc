#include "tide/serve/observe.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <span>

#include "tide/common/prometheus.h"

namespace tide::serve {

using json = nlohmann::json;
using control::Outcome;
using Label = PrometheusText::Label;

namespace {

// `le` bounds: request latency and queue wait from 5 ms to 5 min, cold starts 0.5 s to 30 min.
constexpr std::array<double, 15> kLatencyBounds{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                2.5,   5,    10,    30,   60,  120,  300};
// Time to first token 10 ms to 60 s; time per output token (SSE events) falls in the low part.
constexpr std::array<double, 14> kTokenBounds{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                              2.5,  5,     10,   15,  20,   30,  60};
constexpr std::array<double, 11> kColdStartBounds{0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800};

constexpr std::array<Outcome, control::kOutcomeCount> kOutcomes{
    Outcome::kOk,          Outcome::kQueueFull, Outcome::kBadGateway,
    Outcome::kUnavailable, Outcome::kTimeout,   Outcome::kClientGone};

// A per-group family: one sample per group of every endpoint, from `value`.
template <class Value>
void per_group(PrometheusText& p, const MetricsInput& in, std::string_view name,
               std::string_view type, std::string_view help, Value value) {
  p.family(name, type, help);
  for (const auto& e : in.endpoints) {
    for (size_t g = 0; g < e.view.groups.size(); ++g) {
      const std::array<Label, 2> labels{
          {{"endpoint", e.view.name}, {"group", e.view.groups[g].name}}};
      value(labels, e.view.groups[g], e.spec->groups[g]);
    }
  }
}

// A per-group family of one sample per group: get(group view, group spec) -> uint64_t or double.
template <class Get>
void per_group_value(PrometheusText& p, const MetricsInput& in, std::string_view name,
                     std::string_view type, std::string_view help, Get get) {
  per_group(p, in, name, type, help,
            [&](const std::array<Label, 2>& labels, const control::GroupView& g,
                const config::GroupSpec& spec) { p.sample(name, labels, get(g, spec)); });
}

// A per-group histogram family: get(group view) -> the cumulative histogram.
template <class Get>
void per_group_histogram(PrometheusText& p, const MetricsInput& in, std::string_view name,
                         std::string_view help, std::span<const double> bounds, Get get) {
  per_group(p, in, name, "histogram", help,
            [&](const std::array<Label, 2>& labels, const control::GroupView& g,
                const config::GroupSpec&) { p.histogram(name, labels, get(g), bounds); });
}

// A family of one sample per GPU that a replica's agent last reported: get(reading) -> double
// or uint64_t.
template <class Get>
void per_replica_gpu(PrometheusText& p, const MetricsInput& in, std::string_view name,
                     std::string_view help, Get get) {
  p.family(name, "gauge", help);
  for (const auto& e : in.endpoints) {
    for (const control::GroupView& g : e.view.groups) {
      for (const control::ReplicaView& r : g.replicas) {
        if (!r.report) continue;
        const std::string id = std::to_string(r.id);
        for (const control::GpuReading& gpu : r.report->gpus) {
          const std::string index = std::to_string(gpu.index);
          const std::array<Label, 4> labels{
              {{"endpoint", e.view.name}, {"group", g.name}, {"replica", id}, {"gpu", index}}};
          p.sample(name, labels, get(gpu));
        }
      }
    }
  }
}

// The GPUs each replica's agent last reported (groups with agents, where NVML is present).
void replica_gpu_metrics(PrometheusText& p, const MetricsInput& in) {
  using Gpu = control::GpuReading;
  per_replica_gpu(p, in, "tide_replica_gpu_utilization_ratio",
                  "GPU utilization (0..1, as nvidia-smi shows it) at the replica agent's last "
                  "report.",
                  [](const Gpu& g) { return g.utilization; });
  per_replica_gpu(p, in, "tide_replica_gpu_memory_used_bytes",
                  "GPU memory in use at the replica agent's last report.",
                  [](const Gpu& g) { return g.memory_used_bytes; });
  per_replica_gpu(p, in, "tide_replica_gpu_memory_total_bytes",
                  "GPU memory in all, as the replica's agent reported it.",
                  [](const Gpu& g) { return g.memory_total_bytes; });
}

// What each replica's model server last said of itself (groups with engine_metrics). The
// families appear once a replica's engine has been read.
void replica_engine_metrics(PrometheusText& p, const MetricsInput& in) {
  struct Sample {
    std::string endpoint, group, replica;
    metrics::EngineSignals engine;
  };
  std::vector<Sample> samples;
  for (const auto& e : in.endpoints)
    for (const control::GroupView& g : e.view.groups)
      for (const control::ReplicaView& r : g.replicas)
        if (r.engine) samples.push_back({e.view.name, g.name, std::to_string(r.id), *r.engine});
  if (samples.empty()) return;
  constexpr std::string_view kRequests = "tide_replica_engine_requests";
  p.family(kRequests, "gauge",
           "Requests in the replica's model server as its metrics page last said: running (in "
           "its batch) or waiting (in its queue).");
  for (const Sample& s : samples) {
    for (const auto& [state, v] :
         {std::pair{"running", s.engine.running}, std::pair{"waiting", s.engine.waiting}}) {
      const std::array<Label, 4> labels{
          {{"endpoint", s.endpoint}, {"group", s.group}, {"replica", s.replica}, {"state", state}}};
      if (v) p.sample(kRequests, labels, *v);
    }
  }
  constexpr std::string_view kKv = "tide_replica_engine_kv_cache_ratio";
  p.family(kKv, "gauge",
           "Share of the KV cache in use (0..1) as the replica's model server last said.");
  for (const Sample& s : samples) {
    const std::array<Label, 3> labels{
        {{"endpoint", s.endpoint}, {"group", s.group}, {"replica", s.replica}}};
    if (s.engine.kv_cache) p.sample(kKv, labels, *s.engine.kv_cache);
  }
}

template <size_t N>
std::array<Label, N + 1> with(const std::array<Label, N>& labels, Label extra) {
  std::array<Label, N + 1> out;
  for (size_t i = 0; i < N; ++i) out[i] = labels[i];
  out[N] = extra;
  return out;
}

// Per group: replicas by state, requests queued, in flight and ended, and their latencies.
void request_metrics(PrometheusText& p, const MetricsInput& in) {
  using L = std::array<Label, 2>;
  using G = control::GroupView;
  using S = config::GroupSpec;
  per_group_value(p, in, "tide_desired_replicas", "gauge", "Replicas the group's policy asks for.",
                  [](const G& g, const S&) { return static_cast<double>(g.status.desired); });
  per_group(
      p, in, "tide_replicas", "gauge",
      "Replicas by state: starting (launched, not yet ready), ready, draining.",
      [&](const L& l, const G& g, const S&) {
        p.sample("tide_replicas", with(l, {"state", "starting"}),
                 static_cast<double>(g.status.starting));
        p.sample("tide_replicas", with(l, {"state", "ready"}), static_cast<double>(g.status.ready));
        p.sample("tide_replicas", with(l, {"state", "draining"}),
                 static_cast<double>(g.status.draining));
      });
  per_group_value(p, in, "tide_queued_requests", "gauge", "Requests held in the gateway's queue.",
                  [](const G& g, const S&) { return static_cast<double>(g.status.queued); });
  per_group_value(p, in, "tide_in_flight_requests", "gauge", "Requests in service at replicas.",
                  [](const G& g, const S&) { return static_cast<double>(g.status.in_flight); });
  per_group(p, in, "tide_requests_total", "counter",
            "Requests ended, by outcome: ok (answered by a replica), 429, 502, 503, 504, "
            "client_gone.",
            [&](const L& l, const G& g, const S&) {
              for (Outcome o : kOutcomes)
                p.sample("tide_requests_total", with(l, {"outcome", control::outcome_label(o)}),
                         g.stats.count(o));
            });
  per_group_histogram(p, in, "tide_request_duration_seconds",
                      "Answered requests, from arrival at the gateway to the end of the answer.",
                      kLatencyBounds,
                      [](const G& g) -> const LogLinearHistogram& { return g.stats.latency; });
  per_group_histogram(p, in, "tide_queue_wait_seconds",
                      "Started requests, from arrival at the gateway to the start at a replica.",
                      kLatencyBounds,
                      [](const G& g) -> const LogLinearHistogram& { return g.stats.queue_wait; });
  per_group_histogram(p, in, "tide_gateway_ttft_seconds",
                      "Streamed answers, from arrival at the gateway (hold queue included) to the "
                      "first byte of the body: time to first token.",
                      kTokenBounds,
                      [](const G& g) -> const LogLinearHistogram& { return g.stats.ttft; });
  per_group_histogram(p, in, "tide_gateway_tpot_seconds",
                      "Streamed server-sent-event answers of two events or more: the mean time "
                      "between events after the first (time per output token).",
                      kTokenBounds,
                      [](const G& g) -> const LogLinearHistogram& { return g.stats.tpot; });
  per_group_histogram(p, in, "tide_cold_start_seconds",
                      "Replica cold starts, from launch requested to ready.", kColdStartBounds,
                      [](const G& g) -> const LogLinearHistogram& { return g.stats.cold_start; });
}

// Per group: scaling decisions, launches, failures, billed time and cost, routing counters.
void replica_metrics(PrometheusText& p, const MetricsInput& in) {
  using L = std::array<Label, 2>;
  using G = control::GroupView;
  using S = config::GroupSpec;
  per_group(
      p, in, "tide_scaling_decisions_total", "counter",
      "Changes of the desired replica count, by direction.", [&](const L& l, const G& g, const S&) {
        p.sample("tide_scaling_decisions_total", with(l, {"direction", "up"}), g.stats.scale_ups);
        p.sample("tide_scaling_decisions_total", with(l, {"direction", "down"}),
                 g.stats.scale_downs);
      });
  per_group_value(p, in, "tide_replica_launches_total", "counter", "Replicas launched.",
                  [](const G& g, const S&) { return g.status.launches; });
  per_group_value(p, in, "tide_replica_failures_total", "counter",
                  "Replicas failed (exited, failed probes, unreachable), each a handled error.",
                  [](const G& g, const S&) { return g.status.failures; });
  per_group_value(p, in, "tide_replica_seconds_total", "counter",
                  "Billed replica time: launch to stop, cold starts included.",
                  [](const G& g, const S&) { return g.replica_seconds; });
  p.family("tide_cost_dollars_total", "counter",
           "Replica-hours times the group's price per replica-hour (groups with a price only).");
  for (const auto& e : in.endpoints) {
    for (size_t g = 0; g < e.view.groups.size(); ++g) {
      if (!e.spec->groups[g].price) continue;
      const L l{{{"endpoint", e.view.name}, {"group", e.view.groups[g].name}}};
      p.sample("tide_cost_dollars_total", l,
               e.view.groups[g].replica_seconds / 3600.0 * *e.spec->groups[g].price);
    }
  }
  per_group_value(p, in, "tide_routed_requests_total", "counter",
                  "Requests the endpoint's routing gave the group.",
                  [](const G& g, const S&) { return g.status.routed; });
  per_group_value(
      p, in, "tide_spilled_requests_total", "counter",
      "Overflow: requests the group could not start in time and sent to the next group.",
      [](const G& g, const S&) { return g.status.spilled; });
  per_group_value(p, in, "tide_overflow_requests_total", "counter",
                  "Overflow: requests the group took for an earlier group.",
                  [](const G& g, const S&) { return g.status.overflow_in; });
  per_group_value(p, in, "tide_rerouted_requests_total", "counter",
                  "Split: requests sent elsewhere as the group had no capacity coming.",
                  [](const G& g, const S&) { return g.status.rerouted; });
}

// Per client key name: its requests, and those its limits refused (429).
void client_key_metrics(PrometheusText& p, const MetricsInput& in) {
  if (in.client_keys.empty()) return;
  p.family("tide_client_key_requests_total", "counter",
           "Gateway requests that carried a valid client API key, by the key's name.");
  for (const auto& k : in.client_keys) {
    const std::array<Label, 1> l{{{"key", k.name}}};
    p.sample("tide_client_key_requests_total", l, k.requests);
  }
  p.family("tide_client_key_limited_total", "counter",
           "Of those, the requests the key's rate or concurrency limit refused (429).");
  for (const auto& k : in.client_keys) {
    const std::array<Label, 1> l{{{"key", k.name}}};
    p.sample("tide_client_key_limited_total", l, k.limited);
  }
}

// The gateway's own counters, start time, build and the process's figures.
void gateway_and_process_metrics(PrometheusText& p, const MetricsInput& in) {
  const gateway::GatewayCounters& c = in.gateway;
  p.family("tide_gateway_requests_total", "counter", "Requests the gateway received.");
  p.sample("tide_gateway_requests_total", {}, c.requests);
  p.family("tide_gateway_active_requests", "gauge",
           "Requests between their first byte and their last, held ones included.");
  p.sample("tide_gateway_active_requests", {}, static_cast<double>(in.active_requests));
  p.family("tide_gateway_open_connections", "gauge",
           "Open client connections, by listener (server.max_connections, "
           "server.api_max_connections).");
  const std::array<Label, 1> gateway{{{"listener", "gateway"}}}, api{{{"listener", "api"}}};
  p.sample("tide_gateway_open_connections", gateway, static_cast<double>(c.open_connections));
  p.sample("tide_gateway_open_connections", api, static_cast<double>(c.open_api_connections));
  p.family("tide_gateway_body_memory_bytes", "gauge",
           "Bytes of request bodies held in memory now (server.max_body_memory).");
  p.sample("tide_gateway_body_memory_bytes", {}, static_cast<double>(c.body_memory_bytes));
  p.family("tide_gateway_retries_total", "counter",
           "Requests sent again after the replica given them failed before answering.");
  p.sample("tide_gateway_retries_total", {}, c.retries);
  p.family("tide_gateway_errors_total", "counter",
           "Errors the gateway handled, by kind (refusals of requests routed to a group are in "
           "tide_requests_total).");
  const std::array<std::pair<std::string_view, uint64_t>, 10> errors{{
      {"bad_request", c.bad_requests},
      {"unknown_endpoint", c.not_found_404},
      {"client_disconnect", c.client_disconnects},
      {"upstream", c.upstream_errors},
      {"connection_limit", c.connections_refused},
      {"body_memory", c.body_memory_refused},
      {"fd_exhausted", c.fd_exhausted},
      {"internal", c.internal_errors},
      {"unauthorized", c.unauthorized},
      {"key_limit", c.key_limited},
  }};
  for (const auto& [kind, n] : errors) {
    const std::array<Label, 1> l{{{"kind", kind}}};
    p.sample("tide_gateway_errors_total", l, n);
  }
  client_key_metrics(p, in);
  p.family("tide_start_time_seconds", "gauge", "When tide serve started, in Unix seconds.");
  p.sample("tide_start_time_seconds", {}, in.start_time_s);
  p.family("tide_build_info", "gauge", "Always 1; the labels say what this tide was built from.");
  const std::array<Label, 2> build{{{"version", in.version}, {"commit", in.commit}}};
  p.sample("tide_build_info", build, 1.0);
  if (in.process) {
    p.family("process_cpu_seconds_total", "counter", "User and system CPU time, in seconds.");
    p.sample("process_cpu_seconds_total", {}, in.process->cpu_seconds);
    p.family("process_resident_memory_bytes", "gauge", "Resident memory size, in bytes.");
    p.sample("process_resident_memory_bytes", {}, in.process->resident_bytes);
    p.family("process_open_fds", "gauge", "Open file descriptors.");
    p.sample("process_open_fds", {}, static_cast<double>(in.process->open_fds));
  }
}

}  // namespace

std::string metrics_text(const MetricsInput& in) {
  PrometheusText p;
  request_metrics(p, in);
  replica_metrics(p, in);
  replica_gpu_metrics(p, in);
  replica_engine_metrics(p, in);
  gateway_and_process_metrics(p, in);
  return p.text();
}

json percentiles_json(const LogLinearHistogram& h) {
  return {{"count", h.count()},      {"mean", h.mean()},        {"p50", h.quantile(0.5)},
          {"p95", h.quantile(0.95)}, {"p99", h.quantile(0.99)}, {"max", h.max()}};
}

json group_stats_json(const control::GroupView& group, const config::GroupSpec& spec) {
  const control::GroupStats& s = group.stats;
  json outcomes = json::object();
  for (Outcome o : kOutcomes) outcomes[std::string(control::outcome_label(o))] = s.count(o);
  const uint64_t ok = s.count(Outcome::kOk);
  const double replica_hours = group.replica_seconds / 3600.0;
  json out = {
      {"requests", s.requests()},
      {"outcomes", std::move(outcomes)},
      {"latency_s", percentiles_json(s.latency)},
      {"queue_wait_s", percentiles_json(s.queue_wait)},
      {"cold_start_s", percentiles_json(s.cold_start)},
      {"ttft_s", percentiles_json(s.ttft)},
      {"tpot_s", percentiles_json(s.tpot)},
      {"replica_seconds", group.replica_seconds},
      // Answered requests per replica-hour: the throughput a replica of this group delivered.
      {"requests_per_replica_hour",
       replica_hours > 0 ? static_cast<double>(ok) / replica_hours : 0.0},
      {"scale_ups", s.scale_ups},
      {"scale_downs", s.scale_downs},
  };
  if (spec.price) {
    out["price_per_hour"] = *spec.price;
    out["cost"] = replica_hours * *spec.price;
    out["cost_per_1k_requests"] =
        ok > 0 ? replica_hours * *spec.price * 1000.0 / static_cast<double>(ok) : 0.0;
  }
  return out;
}

std::string sse_event(std::string_view name, std::string_view data) {
  return fmt::format("event: {}\ndata: {}\n\n", name, data);
}

json LiveWindow::recent(Time now, const control::EndpointView& view) {
  json groups = json::array();
  for (const control::GroupView& g : view.groups) {
    auto& samples = samples_[{view.name, g.name}];
    // Arrived: ended, or still here (held or in service). Its increase counts arrivals, so a
    // burst reads as requests per second while it is held or served, not only once it ends.
    const uint64_t arrived = g.stats.requests() +
                             static_cast<uint64_t>(std::max(0, g.status.queued)) +
                             static_cast<uint64_t>(std::max(0, g.status.in_flight));
    samples.push_back({now, g.stats.latency, g.stats.requests(), arrived});
    // Keep the newest sample at or before now - span as the base of the window.
    while (samples.size() > 1 && samples[1].at <= now - span_) samples.pop_front();
    const Sample& base = samples.front();
    LogLinearHistogram interval = g.stats.latency;
    interval.subtract(base.latency);
    const double window = to_seconds(now - base.at);
    const uint64_t requests = g.stats.requests() - base.requests;
    const uint64_t arrivals = arrived > base.arrived ? arrived - base.arrived : 0;
    auto q = [&](double quantile) -> json {
      if (interval.count() == 0) return nullptr;
      return interval.quantile(quantile);
    };
    groups.push_back({{"name", g.name},
                      {"window_s", window},
                      {"requests", requests},
                      {"arrivals", arrivals},
                      {"rps", window > 0 ? static_cast<double>(arrivals) / window : 0.0},
                      {"latency_p50_s", q(0.5)},
                      {"latency_p95_s", q(0.95)},
                      {"latency_p99_s", q(0.99)}});
  }
  return groups;
}

std::vector<DecisionRecord> LiveWindow::new_decisions(const control::EndpointView& view) {
  uint64_t& seen = decisions_seen_[view.name];
  const uint64_t fresh = view.decisions_total > seen ? view.decisions_total - seen : 0;
  seen = view.decisions_total;
  const size_t n = std::min<size_t>(static_cast<size_t>(fresh), view.decisions.size());
  return {view.decisions.end() - static_cast<std::ptrdiff_t>(n), view.decisions.end()};
}

}  // namespace tide::serve
