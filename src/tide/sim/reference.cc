#include "tide/sim/reference.h"

#include <fmt/format.h>
#include <algorithm>
#include <map>

#include "tide/sim/parallel.h"

namespace tide::sim {

bool meets_slo(const SimResult& run, double target) {
  return run.outcomes.rejected == 0 && run.outcomes.timed_out == 0 && run.attainment() >= target;
}

config::Config fixed_fleet_config(const config::Config& config, int replicas) {
  config::Config c = config;
  config::ScalingSpec fixed;
  fixed.policy = config::PolicyKind::kQueue;  // the simplest decider; the bounds hold it at N
  fixed.admission.hold = true;
  for (auto& ep : c.endpoints) {
    for (auto& g : ep.groups) {
      g.min_replicas = g.max_replicas = std::min(replicas, g.max_replicas);
      g.scaling = fixed;
    }
  }
  return c;
}

FixedFleet fixed_hindsight(const config::Config& config, RequestSource& source,
                           const SimOptions& options, double target) {
  int most = 1;
  for (const auto& ep : config.endpoints)
    for (const auto& g : ep.groups) most = std::max(most, g.max_replicas);
  SimOptions probe = options;
  probe.warm_start = true;
  probe.record_timeline = false;
  probe.progress = nullptr;
  std::map<int, SimResult> runs;
  auto run = [&](int n) -> const SimResult& {
    auto it = runs.find(n);
    if (it != runs.end()) return it->second;
    source.rewind();
    return runs.emplace(n, simulate(fixed_fleet_config(config, n), source, probe)).first->second;
  };
  FixedFleet out;
  if (!meets_slo(run(most), target)) {
    out.replicas = most;
  } else {
    int lo = 1, hi = most;  // hi meets the target
    while (lo < hi) {
      const int mid = lo + (hi - lo) / 2;
      if (meets_slo(run(mid), target)) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    // Confirm that one fewer fails: a non-monotone case steps down until it does.
    while (hi > 1 && meets_slo(run(hi - 1), target)) --hi;
    out.replicas = hi;
    out.met = true;
  }
  if (options.record_timeline) {
    source.rewind();
    SimOptions full = options;
    full.warm_start = true;
    full.progress = nullptr;
    out.result = simulate(fixed_fleet_config(config, out.replicas), source, full);
  } else {
    out.result = run(out.replicas);
  }
  out.result.policy = kFixedLabel;
  out.result.note =
      out.met ? fmt::format(
                    "{}: {} replicas, the smallest fixed fleet with {:.4g}% within the "
                    "SLO and nothing lost",
                    kFixedLabel, out.replicas, target * 100)
              : fmt::format(
                    "{}: no fixed fleet up to max_replicas ({}) has {:.4g}% within the SLO "
                    "and nothing lost; the row shows {}",
                    kFixedLabel, most, target * 100, out.replicas);
  return out;
}

namespace {

// One group's share of the requests: (time, +1 at arrival / -1 at its end) in nanoseconds.
struct GroupSweep {
  std::vector<std::pair<int64_t, int>> events;
  Outcomes outcomes;
  double service_s = 0;
};

// The group of an endpoint that serves every request in the clairvoyant schedule.
int first_group(const config::EndpointSpec& ep) {
  if (ep.routing.mode == config::RoutingSpec::Mode::kOverflow && !ep.routing.order.empty())
    return ep.routing.order.front();
  return 0;
}

// The bill of one group's levels (see reference.h), clipped to after `warmup` when there is one.
struct LevelBill {
  double billed_s = 0;
  double busy_s = 0;  // the integral of the level: zero_wait_replica_seconds
  uint64_t launches = 0;
  int peak = 0;
  int64_t last_end = 0;
};

LevelBill bill_levels(std::vector<std::pair<int64_t, int>>& events, int concurrency,
                      int64_t cold_start, int64_t warmup) {
  // Ends before arrivals at the same instant: a slot freed at t serves a request arriving at t.
  std::sort(events.begin(), events.end());
  auto span = [warmup](int64_t from, int64_t to) {
    if (warmup > 0) from = std::max(from, warmup);
    return to > from ? static_cast<double>(to - from) * 1e-9 : 0.0;
  };
  struct Level {
    int64_t opened = 0;
    int64_t closed = 0;
    bool ever = false;
  };
  std::vector<Level> levels;
  LevelBill bill;
  int64_t in_service = 0;
  int current = 0;
  for (const auto& [t, delta] : events) {
    in_service += delta;
    const int level = static_cast<int>((in_service + concurrency - 1) / concurrency);
    for (; current < level; ++current) {  // open level current + 1
      if (levels.size() <= static_cast<size_t>(current)) levels.emplace_back();
      Level& l = levels[static_cast<size_t>(current)];
      if (l.ever && t - l.closed <= cold_start) {
        bill.billed_s += span(l.closed, t);  // kept through the gap
      } else {
        bill.billed_s += span(t - cold_start, t);
        if (t >= warmup) ++bill.launches;
      }
      l.opened = t;
      l.ever = true;
    }
    for (; current > level; --current) {  // close level current
      Level& l = levels[static_cast<size_t>(current - 1)];
      bill.billed_s += span(l.opened, t);
      bill.busy_s += span(l.opened, t);
      l.closed = t;
      bill.last_end = t;
    }
    if (t >= warmup) bill.peak = std::max(bill.peak, current);
  }
  return bill;
}

}  // namespace

SimResult clairvoyant(const config::Config& config, RequestSource& source,
                      const SimOptions& options) {
  const std::vector<uint32_t> stream_to_endpoint = check_workload(config, source);
  std::vector<GroupSweep> sweeps(config.endpoints.size());
  Random rng = service_random(options.seed);
  const int64_t warmup = options.warmup.count();
  source.rewind();
  TraceRequest req;
  while (source.next(req)) {
    const uint32_t e = req.stream < stream_to_endpoint.size() ? stream_to_endpoint[req.stream] : 0;
    const config::EndpointSpec& ep = config.endpoints[e];
    const config::GroupSpec& spec = ep.groups[static_cast<size_t>(first_group(ep))];
    const double service = draw_service_time(spec, req, rng);
    const int64_t arrival = req.arrival.time_since_epoch().count();
    GroupSweep& g = sweeps[e];
    g.events.emplace_back(arrival, 1);
    g.events.emplace_back(arrival + from_seconds(service).count(), -1);
    if (arrival < warmup) continue;
    ++g.outcomes.total;
    ++g.outcomes.ok;
    const double prefill = std::min(prefill_time(spec, req), service);
    if (meets_slo(ep.slo, 0.0, prefill)) ++g.outcomes.slo_met;
    g.outcomes.wait_s.record(0.0);
    g.outcomes.ttft_s.record(prefill);
    g.outcomes.e2e_s.record(service);
    g.service_s += service;
  }
  source.rewind();

  SimResult res;
  res.policy = kClairvoyantLabel;
  res.warmup_s = to_seconds(options.warmup);
  res.max_wait_s = to_seconds(config.endpoints.front().slo.max_wait);
  res.ttft_s = to_seconds(config.endpoints.front().slo.ttft.value_or(Duration{0}));
  for (size_t e = 0; e < config.endpoints.size(); ++e) {
    const config::EndpointSpec& ep = config.endpoints[e];
    const config::GroupSpec& spec = ep.groups[static_cast<size_t>(first_group(ep))];
    GroupSweep& g = sweeps[e];
    const LevelBill bill =
        bill_levels(g.events, spec.concurrency, spec.cold_start.mean().count(), warmup);
    GroupResult gr;
    gr.endpoint = ep.name;
    gr.group = spec.name;
    gr.outcomes = g.outcomes;
    gr.replica_seconds = bill.billed_s;
    gr.zero_wait_replica_seconds = bill.busy_s;
    gr.service_s = g.service_s;
    gr.price(spec);
    gr.launches = bill.launches;
    gr.peak_replicas = bill.peak;
    gr.cold_start_mean_s = to_seconds(spec.mean_cold_start());
    res.span_s = std::max(
        {res.span_s, to_seconds(source.horizon()), static_cast<double>(bill.last_end) * 1e-9});
    res.add_group(std::move(gr));
  }
  res.note = fmt::format(
      "{}: every request started on arrival, each replica billed from its launch including a "
      "cold start; the least any policy pays without making requests wait",
      kClairvoyantLabel);
  return res;
}

std::vector<SimResult> reference_rows(const config::Config& config,
                                      const SourceFactory& make_source, const SimOptions& options,
                                      double target) {
  std::vector<SimResult> rows(2);
  parallel_for(2, 2, [&](size_t i) {
    auto source = make_source();
    rows[i] = i == 0 ? fixed_hindsight(config, *source, options, target).result
                     : clairvoyant(config, *source, options);
  });
  return rows;
}

}  // namespace tide::sim
