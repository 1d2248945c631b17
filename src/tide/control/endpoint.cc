#include "tide/control/endpoint.h"

#include <fmt/format.h>
#include <algorithm>
#include <cassert>
#include <utility>

namespace tide::control {

std::string_view state_name(ReplicaState s) {
  switch (s) {
    case ReplicaState::kRequested:
      return "requested";
    case ReplicaState::kStarting:
      return "starting";
    case ReplicaState::kReady:
      return "ready";
    case ReplicaState::kDraining:
      return "draining";
    case ReplicaState::kStopped:
      return "stopped";
    case ReplicaState::kFailed:
      return "failed";
  }
  return "unknown";
}

Endpoint::Endpoint(const config::EndpointSpec& spec, Provisioner& provisioner,
                   RequestSink& requests, DecisionSink* decisions, Time now)
    : spec_(spec),
      provisioner_(provisioner),
      requests_(requests),
      decisions_(decisions),
      dispatcher_({.max_queue = spec.queue.max_length,
                   .queue_timeout = spec.queue.timeout,
                   .late_after = config::wait_budget(spec.slo, Duration{0})},
                  *this) {
  late_after_ = config::wait_budget(spec_.slo, Duration{0});
  groups_.resize(spec_.groups.size());
  for (size_t i = 0; i < spec_.groups.size(); ++i) {
    const config::GroupSpec& g = spec_.groups[i];
    groups_[i].spec = &g;
    groups_[i].template_id = config::launch_template_fingerprint(g);
    groups_[i].decider = policy::make_decider(g);
    dispatcher_.add_group(g.concurrency, g.scaling.admission.hold, now);
  }
  apply_routing();
}

void Endpoint::apply_routing() {
  for (size_t i = 0; i < groups_.size(); ++i) {
    groups_[i].weight = spec_.routing.weights.empty() ? 1.0 : spec_.routing.weights[i];
    groups_[i].swrr_current = 0;
  }
  order_.clear();
  if (spec_.routing.order.empty()) {
    for (size_t i = 0; i < groups_.size(); ++i) order_.push_back(static_cast<int>(i));
  } else {
    order_ = spec_.routing.order;
  }
}

std::string Endpoint::reconfigure(const config::EndpointSpec& next, Time now) {
  if (next.name != spec_.name)
    return fmt::format("name: is {}, cannot become {}", spec_.name, next.name);
  if (next.groups.size() < spec_.groups.size()) {
    return fmt::format(
        "groups: all {} current groups must stay (to retire one, set its max_replicas and its "
        "routing weight to 0; removing it from the list takes a restart)",
        spec_.groups.size());
  }
  for (size_t i = 0; i < spec_.groups.size(); ++i) {
    const config::GroupSpec& was = spec_.groups[i];
    const config::GroupSpec& is = next.groups[i];
    const std::string at = fmt::format("groups[{}]", i);
    if (is.name != was.name)
      return fmt::format("{}.name: is {} (current groups come first, in their order), got {}", at,
                         was.name, is.name);
    if (is.concurrency != was.concurrency)
      return fmt::format(
          "{}.concurrency: its replicas were started for {}; cannot become {} at "
          "run time",
          at, was.concurrency, is.concurrency);
    if (is.scaling.admission.hold != was.scaling.admission.hold)
      return fmt::format(
          "{}.scaling: cannot switch between holding requests and passing them "
          "through at run time",
          at);
    if (is.provisioner.kind != was.provisioner.kind)
      return fmt::format("{}.provisioner.kind: is {}, cannot become {} at run time", at,
                         was.provisioner.kind, is.provisioner.kind);
    if (is.agent.enabled != was.agent.enabled && !groups_[i].live.empty())
      return fmt::format(
          "{}.agent.enabled: its {} replicas were started {} an agent; scale the group to 0 "
          "first",
          at, groups_[i].live.size(), was.agent.enabled ? "with" : "without");
  }
  const size_t old_groups = spec_.groups.size();
  std::vector<bool> new_decider(next.groups.size(), true);
  std::vector<bool> new_template(next.groups.size(), false);
  for (size_t i = 0; i < old_groups; ++i) {
    new_decider[i] = !(next.groups[i].scaling == spec_.groups[i].scaling);
    new_template[i] = !config::same_launch_template(next.groups[i], spec_.groups[i]);
  }
  spec_ = next;
  groups_.resize(spec_.groups.size());
  for (size_t i = 0; i < spec_.groups.size(); ++i) {
    Group& g = groups_[i];
    g.spec = &spec_.groups[i];
    g.template_id = config::launch_template_fingerprint(*g.spec);
    if (new_decider[i]) {
      g.decider = policy::make_decider(*g.spec);
      g.decided = false;
    }
    if (i >= old_groups)
      dispatcher_.add_group(g.spec->concurrency, g.spec->scaling.admission.hold, now);
    if (new_template[i]) start_rollout(static_cast<int>(i));
  }
  dispatch::Dispatcher::Options options;
  options.max_queue = spec_.queue.max_length;
  options.queue_timeout = spec_.queue.timeout;
  late_after_ = options.late_after = wait_budget();
  dispatcher_.set_options(options);
  apply_routing();
  return "";
}

bool Endpoint::unavailable(int group) const {
  const Group& g = groups_[static_cast<size_t>(group)];
  return g.live.empty() && g.consecutive_failures > 0;
}

Duration Endpoint::expected_start_delay(int group, Time now, Via via) const {
  const Group& g = groups_[static_cast<size_t>(group)];
  const int c = g.spec->concurrency;
  if (via == Via::kGateway && dispatcher_.can_start_now(group)) return Duration{0};
  int queued = dispatcher_.queued(group);
  if (via == Via::kDirect) {
    for (uint64_t id : g.live) {
      const Replica& r = replicas_.at(id);
      if (r.state == ReplicaState::kReady && !r.address.empty() && direct_load(r, now) < c)
        return Duration{0};
    }
    queued += static_cast<int>(g.route_waits.size());
  }
  int ready = 0;
  int starting = 0;
  Time soonest = kTimeMax;
  const Duration cold = last_cold_start(group);
  for (uint64_t id : g.live) {
    const Replica& r = replicas_.at(id);
    if (r.state == ReplicaState::kReady) {
      ++ready;
    } else if (r.state == ReplicaState::kRequested || r.state == ReplicaState::kStarting) {
      ++starting;
      soonest = std::min(soonest, r.requested_at + cold);
    }
  }
  Duration best = Duration::max();
  // Behind the queue, served by every ready slot: (queued + 1) x s / (ready x c). With no
  // completion yet there is no basis for a promise.
  const double s = dispatcher_.mean_service_s(group);
  if (ready > 0 && s > 0) best = from_seconds(static_cast<double>(queued + 1) * s / (ready * c));
  // A replica on its way, with a slot left for this request.
  if (starting > 0 && queued < starting * c)
    best = std::min(best, std::max(Duration{0}, soonest - now));
  // Room to grow: a replica launched for it.
  if (may_grow(group, now)) best = std::min(best, cold);
  return best;
}

double Endpoint::direct_load(const Replica& r, Time now) const {
  double busy = dispatcher_.outstanding(r.slot);
  if (fresh_report(r, now))
    busy = std::max(busy, static_cast<double>(r.report->in_service + r.report->queued));
  return busy + r.routed_since_report;
}

bool Endpoint::may_grow(int group, Time now) const {
  const Group& g = groups_[static_cast<size_t>(group)];
  return active_count(g) < g.spec->max_replicas && !(now < g.backoff_until);
}

int Endpoint::active_count(const Group& g) const {
  int active = 0;
  for (uint64_t id : g.live) active += replicas_.at(id).active() ? 1 : 0;
  return active;
}

Duration Endpoint::last_cold_start(int group) const {
  const Group& g = groups_[static_cast<size_t>(group)];
  return g.cold_starts.empty() ? g.spec->mean_cold_start() : from_seconds(g.cold_starts.back());
}

const Replica* Endpoint::replica(uint64_t id) const {
  auto it = replicas_.find(id);
  return it == replicas_.end() ? nullptr : &it->second;
}

bool Endpoint::takes_part(int group, Via via) const {
  return via == Via::kGateway || groups_[static_cast<size_t>(group)].spec->agent.enabled;
}

int Endpoint::route(uint64_t sticky, Time now, Via via) {
  const int n = static_cast<int>(groups_.size());
  int first = -1;  // the first group in the routing's order that takes part
  for (int g : order_) {
    if (first < 0 && takes_part(g, via)) first = g;
  }
  if (first < 0) return -1;
  int parts = 0;
  for (int i = 0; i < n; ++i) parts += takes_part(i, via) ? 1 : 0;
  int chosen = first;
  if (parts > 1) {
    chosen = spec_.routing.mode == config::RoutingSpec::Mode::kOverflow
                 ? route_overflow(first, now, via)
                 : route_split(first, sticky, via);
  }
  ++groups_[static_cast<size_t>(chosen)].routed;
  return chosen;
}

// The first group expected to start it within max_wait. When none can, it overflows to the last
// group that may still grow (it scales on what it is given); when none may, the group expected
// to start it soonest.
int Endpoint::route_overflow(int first, Time now, Via via) {
  int chosen = -1;
  int last_growing = -1;
  int fastest = first;
  Duration fastest_delay = Duration::max();
  for (int g : order_) {
    if (!takes_part(g, via)) continue;
    const Duration delay = expected_start_delay(g, now, via);
    if (delay <= wait_budget()) {
      chosen = g;
      break;
    }
    if (may_grow(g, now)) last_growing = g;
    if (delay < fastest_delay) {
      fastest = g;
      fastest_delay = delay;
    }
  }
  if (chosen < 0) chosen = last_growing >= 0 ? last_growing : fastest;
  if (chosen != first) {
    Group& primary = groups_[static_cast<size_t>(first)];
    ++primary.spilled;
    ++primary.spilled_in_interval;
    ++groups_[static_cast<size_t>(chosen)].overflow_in;
  }
  return chosen;
}

int Endpoint::route_split(int first, uint64_t sticky, Via via) {
  const int n = static_cast<int>(groups_.size());
  double total = 0;
  for (int i = 0; i < n; ++i)
    total += takes_part(i, via) ? groups_[static_cast<size_t>(i)].weight : 0;
  int chosen = first;
  if (sticky != 0) {
    // The same key, the same group (while the weights stay the same).
    const double point =
        static_cast<double>(sticky % 1000003) / 1000003.0 * total;  // 10^6+3 is prime
    double acc = 0;
    for (int i = 0; i < n; ++i) {
      if (!takes_part(i, via)) continue;
      chosen = i;
      acc += groups_[static_cast<size_t>(i)].weight;
      if (point < acc) break;
    }
  } else {
    chosen = route_round_robin(first, total, via);
  }
  return unavailable(chosen) ? reroute(chosen, via) : chosen;
}

// Smooth weighted round robin (as nginx): exact shares, evenly interleaved.
int Endpoint::route_round_robin(int first, double total, Via via) {
  int chosen = first;
  double best = -1e300;
  for (int i = 0; i < static_cast<int>(groups_.size()); ++i) {
    if (!takes_part(i, via)) continue;
    Group& g = groups_[static_cast<size_t>(i)];
    double& current = via == Via::kGateway ? g.swrr_current : g.swrr_direct;
    current += g.weight;
    if (g.weight > 0 && current > best) {
      best = current;
      chosen = i;
    }
  }
  Group& g = groups_[static_cast<size_t>(chosen)];
  (via == Via::kGateway ? g.swrr_current : g.swrr_direct) -= total;
  return chosen;
}

// Launches keep failing at `chosen`: the heaviest group that can take it instead, if any.
int Endpoint::reroute(int chosen, Via via) {
  int alternative = -1;
  for (int i = 0; i < static_cast<int>(groups_.size()); ++i) {
    const Group& g = groups_[static_cast<size_t>(i)];
    if (i == chosen || !takes_part(i, via) || g.weight <= 0 || unavailable(i)) continue;
    if (alternative < 0 || g.weight > groups_[static_cast<size_t>(alternative)].weight)
      alternative = i;
  }
  if (alternative < 0) return chosen;
  ++groups_[static_cast<size_t>(chosen)].rerouted;
  return alternative;
}

Endpoint::~Endpoint() = default;

Replica* Endpoint::find(uint64_t id) {
  return const_cast<Replica*>(std::as_const(*this).replica(id));
}

const Replica* Endpoint::replica_at(dispatch::ReplicaSlot slot) const {
  return slot < slot_owner_.size() ? replica(slot_owner_[slot]) : nullptr;
}

std::vector<const Replica*> Endpoint::replicas(int group) const {
  std::vector<const Replica*> out;
  for (uint64_t id : groups_[group].live) out.push_back(&replicas_.at(id));
  return out;
}

// The weight of each new prefill in the running mean: the last ~32 requests count most.
constexpr double kPrefillWeight = 1.0 / 32;

void Endpoint::observe_prefill(Duration prefill) {
  prefill = std::max(prefill, Duration{0});
  if (!prefill_observed_) {
    expected_prefill_ = prefill;
    prefill_observed_ = true;
    return;
  }
  expected_prefill_ +=
      std::chrono::duration_cast<Duration>((prefill - expected_prefill_) * kPrefillWeight);
}

// A ttft SLO's budget moves with the observed prefill: the dispatcher's late_after follows it.
void Endpoint::follow_wait_budget(Duration max_wait) {
  if (max_wait == late_after_) return;
  late_after_ = max_wait;
  dispatcher_.set_options({.max_queue = spec_.queue.max_length,
                           .queue_timeout = spec_.queue.timeout,
                           .late_after = late_after_});
}

// The group's replicas starting and ready, and since when the ready ones have been idle.
void Endpoint::count_replicas(Group& g, policy::Observation& o, Time now) {
  g.idle_buffer.clear();
  for (uint64_t id : g.live) {
    const Replica& r = replicas_.at(id);
    switch (r.state) {
      case ReplicaState::kRequested:
      case ReplicaState::kStarting:
        ++o.starting;
        break;
      case ReplicaState::kReady:
        ++o.ready;
        if (auto idle = idle_since(r, now)) g.idle_buffer.push_back(*idle);
        break;
      default:
        break;
    }
  }
  std::sort(g.idle_buffer.begin(), g.idle_buffer.end());
  o.idle_since = g.idle_buffer;
  // A rollout's surge is not the policy's doing: it sees the group at most at its desired size
  // (else a policy that keeps the current size would keep the surge, and surge again).
  if (g.rollout.state == RolloutStatus::State::kRolling && g.decided) {
    const int surplus = std::max(0, o.ready + o.starting - g.desired);
    const int from_starting = std::min(surplus, o.starting);
    o.starting -= from_starting;
    o.ready -= surplus - from_starting;
  }
  o.current = o.ready + o.starting;
}

// The dispatcher's figures for the interval, with the requests that spilled to a later group.
void Endpoint::apply_load(Group& g, const dispatch::GroupLoad& load, policy::Observation& o) {
  // Requests that spilled to a later group count as this group's queue: it would have served
  // them, so it keeps growing toward its max.
  o.queued = load.queued + static_cast<int>(g.spilled_in_interval);
  o.spilled = g.spilled_in_interval;
  g.spilled_in_interval = 0;
  o.in_flight = load.in_flight;
  o.avg_in_flight = load.avg_in_flight;
  o.avg_queued = load.avg_queued;
  o.avg_ready = load.avg_ready;
  o.avg_busy_replicas = load.avg_busy_replicas;
  o.peak_demand = load.peak_demand + static_cast<double>(o.spilled);
  o.arrivals = load.arrivals + o.spilled;
  o.completions = load.completions;
  o.started = load.started;
  o.late = load.late;
  o.service_sum_s = load.service_sum_s;
  o.service_sq_sum_s2 = load.service_sq_sum_s2;
  o.mean_service_s = load.mean_service_s;
  o.last_activity = load.last_activity;
  // The load signal as the dispatcher measured it (the gateway's traffic, the simulator's):
  // every completion is one unit of work.
  const double replicas = std::max(1.0, load.interval > Duration{0} ? load.avg_ready : o.ready);
  o.load = g.gateway_load
               .update({.seconds = to_seconds(load.interval),
                        .slots = g.spec->concurrency * replicas,
                        .avg_in_service = load.avg_in_flight,
                        .avg_queued = load.avg_queued,
                        .arrivals = load.arrivals,
                        .completions = load.completions,
                        .work = static_cast<double>(load.completions),
                        .service_s = load.service_sum_s})
               .load;
}

// Two-step routing: clients sent straight to replicas, and those told to come back. Route calls
// need no credential: while no replica is ready, those waiting count as one queued request at
// most, so that a flood of them starts one replica, not the group's max. Once one is ready,
// route calls are routed, and a wait means every ready replica is full by its agent's report:
// real load.
void Endpoint::apply_direct(Group& g, policy::Observation& o, Time now) {
  std::erase_if(g.route_waits, [now](Time until) { return until <= now; });
  const bool any_ready = std::any_of(g.live.begin(), g.live.end(), [&](uint64_t id) {
    return replicas_.at(id).state == ReplicaState::kReady;
  });
  const int waiting = any_ready ? static_cast<int>(g.route_waits.size())
                                : std::min<int>(static_cast<int>(g.route_waits.size()), 1);
  o.queued += waiting;
  o.peak_demand += waiting;
  o.arrivals += g.direct_in_interval;
  g.direct_in_interval = 0;
  if (g.last_direct && (!o.last_activity || *o.last_activity < *g.last_direct))
    o.last_activity = g.last_direct;
}

// Recent cold starts say more than the configured guess.
Duration Endpoint::recent_cold_start(const Group& g) {
  if (g.cold_starts.empty()) return g.spec->mean_cold_start();
  const size_t n = std::min<size_t>(g.cold_starts.size(), 20);
  double sum = 0;
  for (size_t i = g.cold_starts.size() - n; i < g.cold_starts.size(); ++i) sum += g.cold_starts[i];
  return from_seconds(sum / static_cast<double>(n));
}

policy::Observation Endpoint::observe(int group, Time now) {
  Group& g = groups_[group];
  const config::GroupSpec& spec = *g.spec;
  const dispatch::GroupLoad load = dispatcher_.take_interval(group, now);
  policy::Observation o;
  o.now = now;
  o.interval = load.interval;
  o.concurrency = spec.concurrency;
  o.min_replicas = spec.min_replicas;
  o.max_replicas = spec.max_replicas;
  o.max_wait = wait_budget();
  follow_wait_budget(o.max_wait);
  count_replicas(g, o, now);
  apply_load(g, load, o);
  apply_direct(g, o, now);
  o.reporting = apply_reports(g, o, now);
  apply_engines(g, o, now);
  o.cold_start = recent_cold_start(g);
  return o;
}

bool Endpoint::fresh_report(const Replica& r, Time now) {
  return r.report &&
         now - r.reported_at <= std::max<Duration>(3 * r.report->interval, std::chrono::seconds(3));
}

std::optional<Time> Endpoint::idle_since(const Replica& r, Time now) const {
  if (r.slot == dispatch::kNoSlot) return std::nullopt;
  std::optional<Time> idle = dispatcher_.idle_since(r.slot);
  if (!idle) return idle;
  // Requests sent straight to it (two-step routing) are known from its agent only.
  if (fresh_report(r, now) && r.report->in_service + r.report->queued > 0) return std::nullopt;
  return std::max(*idle, r.last_busy);
}

int Endpoint::apply_reports(Group& g, policy::Observation& o, Time now) {
  int n = 0;
  double in_service = 0, queued = 0, avg_in_service = 0, avg_queued = 0, busy = 0, load = 0;
  Time last_busy = kTimeMin;
  for (uint64_t id : g.live) {
    const Replica& r = replicas_.at(id);
    if (r.state != ReplicaState::kReady || !fresh_report(r, now)) continue;
    const ReplicaReport& rep = *r.report;
    ++n;
    in_service += rep.in_service;
    queued += rep.queued;
    avg_in_service += rep.avg_in_service;
    avg_queued += rep.avg_queued;
    busy += rep.busy;
    load += rep.load.load;
    last_busy = std::max(last_busy, r.last_busy);
  }
  if (n == 0) return 0;
  // An agent sees everything its replica serves: what the gateway sent (the dispatcher counts
  // that too, so take the larger) and what clients sent straight to it; what waits at a replica
  // never waited in the gateway's queue, so add that.
  o.in_flight = std::max(o.in_flight, static_cast<int>(in_service));
  o.queued += static_cast<int>(queued);
  o.avg_in_flight = std::max(o.avg_in_flight, avg_in_service);
  o.avg_queued += avg_queued;
  o.avg_busy_replicas = std::max(o.avg_busy_replicas, busy);
  o.peak_demand = std::max(o.peak_demand, static_cast<double>(o.in_flight + o.queued));
  o.load = load / n;
  if (last_busy > kTimeMin && (!o.last_activity || *o.last_activity < last_busy))
    o.last_activity = last_busy;
  return n;
}

void Endpoint::apply_engines(const Group& g, policy::Observation& o, Time now) const {
  // A reading is recent for three intervals of reading (at least 3 s): one failed read keeps
  // the last, a replica that stopped answering drops out.
  const Duration fresh =
      std::max<Duration>(3 * g.spec->engine_metrics.interval, std::chrono::seconds(3));
  for (uint64_t id : g.live) {
    const Replica& r = replicas_.at(id);
    if (r.state != ReplicaState::kReady || !r.engine || now - r.engine_at > fresh) continue;
    ++o.engine_reporting;
    o.engine_waiting += r.engine->waiting.value_or(0);
    o.engine_running += r.engine->running.value_or(0);
    if (r.engine->kv_cache) {
      ++o.engine_kv_reporting;
      o.engine_kv_cache += *r.engine->kv_cache;
    }
  }
  if (o.engine_kv_reporting > 0) o.engine_kv_cache /= o.engine_kv_reporting;
}

void Endpoint::on_replica_engine(uint64_t replica_id, Time now,
                                 const metrics::EngineSignals& signals) {
  Replica* r = find(replica_id);
  if (r == nullptr || r->state != ReplicaState::kReady) return;
  r->engine = signals;
  r->engine_at = now;
}

bool Endpoint::on_report(uint64_t replica_id, const ReplicaReport& report, Time now) {
  Replica* r = find(replica_id);
  if (r == nullptr) return false;
  r->report = report;
  r->reported_at = now;
  if (report.engine) {
    r->engine = report.engine;
    r->engine_at = now;
  }
  r->routed_since_report = 0;
  const bool working = report.in_service + report.queued > 0;
  if (working || report.completions > 0) r->last_busy = now;
  if (r->awaiting_idle_report && !working) retire(*r, now, ReplicaState::kStopped);
  return true;
}

const Replica* Endpoint::route_direct(int group, double work, Time now) {
  Group& g = groups_[static_cast<size_t>(group)];
  const double c = g.spec->concurrency;
  ++g.direct_in_interval;
  g.last_direct = now;
  Replica* best = nullptr;
  double best_score = 0;
  for (uint64_t id : g.live) {
    Replica& r = replicas_.at(id);
    if (r.state != ReplicaState::kReady || r.address.empty()) continue;
    const double score = direct_load(r, now) / c;
    if (best == nullptr || score < best_score || (score == best_score && r.routes < best->routes)) {
      best = &r;
      best_score = score;
    }
  }
  if (best == nullptr) return nullptr;
  const double per_request = best->report ? best->report->work_per_request : 1.0;
  best->routed_since_report += work > 0 && per_request > 0 ? work / per_request : 1.0;
  ++best->routes;
  ++g.direct_routes;
  if (!g.route_waits.empty()) g.route_waits.pop_front();  // a client that was told to come back
  return best;
}

void Endpoint::wait_for_route(int group, Time, Time until) {
  Group& g = groups_[static_cast<size_t>(group)];
  ++g.direct_waits;
  if (static_cast<int>(g.route_waits.size()) < std::max(1, spec_.queue.max_length))
    g.route_waits.push_back(until);
}

const policy::Observation& Endpoint::tick(int group, Time now) {
  dispatcher_.expire(now);
  Group& g = groups_[group];
  // Replicas drained at the gateway but busy with direct requests stop once their agent reports
  // them idle, or once it stops reporting.
  std::vector<uint64_t> leaving;
  for (uint64_t id : g.live) {
    const Replica& r = replicas_.at(id);
    if (r.awaiting_idle_report && !fresh_report(r, now)) leaving.push_back(id);
  }
  for (uint64_t id : leaving) retire(replicas_.at(id), now, ReplicaState::kStopped);
  g.last_observation = observe(group, now);
  const policy::Observation& o = g.last_observation;
  policy::Decision d = g.decider->decide(o);
  const int from = g.decided ? g.desired : o.current;
  const int to = d.desired;
  g.desired = to;
  g.decided = true;
  g.last_reason = d.reason;
  if (to != from && decisions_ != nullptr) {
    decisions_->record({.time = now,
                        .endpoint = spec_.name,
                        .group = g.spec->name,
                        .from = from,
                        .to = to,
                        .reason = std::move(d.reason),
                        .queued = o.queued,
                        .in_flight = o.in_flight,
                        .ready = o.ready,
                        .starting = o.starting,
                        .utilization = o.utilization()});
  }
  reconcile(group, now);
  return g.last_observation;
}

void Endpoint::launch(int group, Time now) {
  Group& g = groups_[group];
  const uint64_t id = next_id_++;
  auto [it, inserted] =
      replicas_.emplace(id, new_replica(group, id, ReplicaState::kRequested, now));
  assert(inserted);
  g.live.push_back(id);
  ++g.launches;
  changed(it->second);
  provisioner_.launch(it->second, *g.spec, *replica_events_);
}

Replica Endpoint::new_replica(int group, uint64_t id, ReplicaState state, Time requested_at) const {
  Replica r;
  r.id = id;
  r.name = fmt::format("{}/{}/{}", spec_.name, groups_[group].spec->name, id);
  r.group = group;
  r.generation = groups_[static_cast<size_t>(group)].rollout.generation;
  r.template_id = groups_[static_cast<size_t>(group)].template_id;
  r.state = state;
  r.requested_at = requested_at;
  return r;
}

bool Endpoint::adopt(int group, uint64_t id, const std::string& handle, Time requested_at,
                     Time ready_at, const std::string& template_id) {
  Group& g = groups_[group];
  reserve_ids(id + 1);
  Replica r = new_replica(group, id, ReplicaState::kStarting, requested_at);
  r.handle = handle;
  r.adopted = true;
  r.ready_at = ready_at;  // kept when it is found ready again: its cold start was then
  if (!template_id.empty()) r.template_id = template_id;
  auto [it, inserted] = replicas_.emplace(id, std::move(r));
  if (!inserted) return false;
  g.live.push_back(id);
  if (it->second.template_id != g.template_id) adopt_earlier_template(group, it->second);
  changed(it->second);
  if (provisioner_.adopt(it->second, *g.spec, handle, *replica_events_)) return true;
  std::erase(g.live, id);
  replicas_.erase(it);
  return false;
}

void Endpoint::adopt_earlier_template(int group, Replica& r) {
  Group& g = groups_[static_cast<size_t>(group)];
  if (g.rollout.state != RolloutStatus::State::kRolling) {
    start_rollout(group);  // a new generation; those adopted before `r` run the current template
    for (uint64_t id : g.live) {
      Replica& other = replicas_.at(id);
      if (other.template_id == g.template_id) other.generation = g.rollout.generation;
    }
  }
  r.generation = g.rollout.generation - 1;
}

void Endpoint::start_rollout(int group) {
  Group& g = groups_[static_cast<size_t>(group)];
  ++g.rollout.generation;
  g.rollout.failures = 0;
  g.rollout.reason.clear();
  if (g.live.empty()) return;  // nothing runs the old template: nothing to replace
  g.rollout.state = RolloutStatus::State::kRolling;
}

RolloutCounts Endpoint::count_generations(const Group& g) const {
  RolloutCounts c;
  c.desired = g.desired;
  for (uint64_t id : g.live) {
    const Replica& r = replicas_.at(id);
    const bool is_new = r.generation == g.rollout.generation;
    if (r.state == ReplicaState::kReady) {
      ++(is_new ? c.new_ready : c.old_ready);
    } else if (r.active()) {
      ++(is_new ? c.new_starting : c.old_starting);
    }
  }
  return c;
}

bool Endpoint::step_rollout(int group, Time now) {
  Group& g = groups_[static_cast<size_t>(group)];
  // Adopted replicas that served before a restart are found ready again first: stopped as "old,
  // still starting" they would take serving capacity away. The group scales meanwhile.
  if (refinding_adopted(g)) return false;
  const RolloutCounts c = count_generations(g);
  if (c.old_ready + c.old_starting == 0) {
    g.rollout.state = RolloutStatus::State::kComplete;
    return false;
  }
  const RolloutStep step = plan_rollout_step(c, g.spec->rollout);
  std::vector<uint64_t> old_starting;
  std::vector<Replica*> old_ready;
  for (uint64_t id : g.live) {
    Replica& r = replicas_.at(id);
    if (r.generation == g.rollout.generation) continue;
    if (r.state == ReplicaState::kReady) {
      old_ready.push_back(&r);
    } else if (r.active()) {
      old_starting.push_back(id);
    }
  }
  for (int i = 0; i < step.stop_old_starting; ++i)
    retire(replicas_.at(old_starting[static_cast<size_t>(i)]), now, ReplicaState::kStopped);
  if (!(now < g.backoff_until)) {
    for (int i = 0; i < step.launch_new; ++i) launch(group, now);
  }
  sort_for_drain(old_ready, now);
  for (int i = 0; i < step.drain_old_ready; ++i) drain(*old_ready[static_cast<size_t>(i)], now);
  return true;
}

bool Endpoint::refinding_adopted(const Group& g) const {
  return std::any_of(g.live.begin(), g.live.end(), [this](uint64_t id) {
    const Replica& r = replicas_.at(id);
    return r.adopted && r.ready_at != Time{} && r.state == ReplicaState::kStarting;
  });
}

void Endpoint::rollout_launch_failed(Group& g, const std::string& error) {
  if (g.rollout.state != RolloutStatus::State::kRolling) return;
  if (++g.rollout.failures < kRolloutFailuresToStop) return;
  g.rollout.state = RolloutStatus::State::kStopped;
  g.rollout.reason = fmt::format(
      "{} replicas of template generation {} failed before they were ready, in a row; the "
      "last: {}; the old replicas keep serving (a new change of the template starts again)",
      g.rollout.failures, g.rollout.generation, error);
}

void Endpoint::sort_for_drain(std::vector<Replica*>& ready, Time now) const {
  std::stable_sort(ready.begin(), ready.end(), [this, now](const Replica* a, const Replica* b) {
    const auto ia = idle_since(*a, now);
    const auto ib = idle_since(*b, now);
    if (ia.has_value() != ib.has_value()) return ia.has_value();
    if (ia && ib) return *ia < *ib;
    return dispatcher_.outstanding(a->slot) < dispatcher_.outstanding(b->slot);
  });
}

void Endpoint::drain(Replica& r, Time now) {
  r.state = ReplicaState::kDraining;
  r.drain_at = now;
  changed(r);
  dispatcher_.drain(r.slot, now);  // may call on_drained (and retire) right away
}

void Endpoint::reconcile(int group, Time now) {
  Group& g = groups_[group];
  if (g.rollout.state == RolloutStatus::State::kRolling && step_rollout(group, now)) return;
  int active = active_count(g);

  if (g.desired > active) {
    // Take back draining replicas first: they are warm and already paid for.
    for (uint64_t id : g.live) {
      if (active >= g.desired) break;
      Replica& r = replicas_.at(id);
      if (r.state != ReplicaState::kDraining || r.slot == dispatch::kNoSlot) continue;
      r.state = ReplicaState::kReady;
      changed(r);
      dispatcher_.undrain(r.slot, now);
      ++active;
    }
    if (now < g.backoff_until) return;  // crash-loop backoff: the decision stands, launch later
    while (active < g.desired) {
      launch(group, now);
      ++active;
    }
    return;
  }
  if (g.desired >= active) return;

  int excess = active - g.desired;
  // Replicas not yet serving go first, newest first: they cost money and serve nobody.
  std::vector<uint64_t> cold;
  for (auto it = g.live.rbegin(); it != g.live.rend() && excess > 0; ++it) {
    const Replica& r = replicas_.at(*it);
    if (r.state == ReplicaState::kRequested || r.state == ReplicaState::kStarting) {
      cold.push_back(*it);
      --excess;
    }
  }
  for (uint64_t id : cold) retire(replicas_.at(id), now, ReplicaState::kStopped);
  if (excess == 0) return;
  // Then ready replicas: idle ones (longest idle first), then the least loaded. Draining never
  // cuts a request short: the replica stops when its last request is done.
  std::vector<Replica*> ready;
  for (uint64_t id : g.live) {
    Replica& r = replicas_.at(id);
    if (r.state == ReplicaState::kReady) ready.push_back(&r);
  }
  sort_for_drain(ready, now);
  for (Replica* r : ready) {
    if (excess == 0) break;
    --excess;
    drain(*r, now);
  }
}

void Endpoint::retire(Replica& replica, Time now, ReplicaState final_state) {
  Group& g = groups_[replica.group];
  replica.state = final_state;
  replica.stopped_at = now;
  g.closed_replica_seconds += to_seconds(now - replica.requested_at);
  if (final_state == ReplicaState::kFailed) ++g.failures;
  changed(replica);
  // Also for a failed replica: whatever is left of it (a hung process, a cluster job) must go.
  provisioner_.stop(replica);
  const uint64_t id = replica.id;
  std::erase(g.live, id);
  replicas_.erase(id);
}

void Endpoint::on_replica_starting(uint64_t replica_id, Time) {
  Replica* r = find(replica_id);
  if (r != nullptr && r->state == ReplicaState::kRequested) {
    r->state = ReplicaState::kStarting;
    changed(*r);
  }
}

void Endpoint::on_replica_handle(uint64_t replica_id, std::string handle) {
  Replica* r = find(replica_id);
  if (r == nullptr) return;
  r->handle = std::move(handle);
  changed(*r);
}

void Endpoint::on_replica_ready(uint64_t replica_id, Time now, std::string address) {
  Replica* r = find(replica_id);
  if (r == nullptr || (r->state != ReplicaState::kRequested && r->state != ReplicaState::kStarting))
    return;  // stopped meanwhile: the provisioner was already told
  Group& g = groups_[r->group];
  r->state = ReplicaState::kReady;
  if (!r->adopted || r->ready_at == Time{}) r->ready_at = now;
  g.consecutive_failures = 0;
  g.backoff_until = kTimeMin;
  if (r->generation == g.rollout.generation) g.rollout.failures = 0;
  r->address = std::move(address);
  // An adopted replica's cold start happened in an earlier run: its launch-to-ready says nothing.
  if (!r->adopted) g.cold_starts.push_back(to_seconds(now - r->requested_at));
  changed(*r);
  // Map the slot first: held requests start on it inside add_replica, and their sink may ask
  // whose slot it is.
  r->slot = dispatcher_.next_slot();
  if (r->slot >= slot_owner_.size()) slot_owner_.resize(r->slot + 1, 0);
  slot_owner_[r->slot] = r->id;
  [[maybe_unused]] const dispatch::ReplicaSlot got = dispatcher_.add_replica(r->group, now);
  assert(got == r->slot);
}

void Endpoint::on_replica_failed(uint64_t replica_id, Time now, std::string error) {
  Replica* r = find(replica_id);
  if (r == nullptr) return;
  Group& g = groups_[r->group];
  // Crash-loop backoff: 1 s after the first failed launch in a row, doubling up to 1 min. Only
  // launches that never became ready count: a replica that was ready and serving launched fine.
  if (r->state == ReplicaState::kRequested || r->state == ReplicaState::kStarting) {
    g.consecutive_failures = std::min(g.consecutive_failures + 1, 30);
    const Duration backoff = std::min<Duration>(
        std::chrono::seconds(1) * (int64_t{1} << std::min(g.consecutive_failures - 1, 6)),
        std::chrono::minutes(1));
    g.backoff_until = now + backoff;
    if (r->generation == g.rollout.generation) rollout_launch_failed(g, error);
  }
  g.last_error = fmt::format("{}: {}", r->name, error);
  r->error = std::move(error);
  if (r->slot != dispatch::kNoSlot) {
    const dispatch::ReplicaSlot slot = r->slot;
    const std::vector<dispatch::RequestId> waiting = dispatcher_.remove(slot, now);
    requests_.on_replica_lost(slot, waiting, now);
  }
  retire(*r, now, ReplicaState::kFailed);
}

bool Endpoint::connect_failed(uint64_t replica_id, Time now, std::string error) {
  Replica* r = find(replica_id);
  if (r == nullptr) return false;
  if (++r->connect_failures < kConnectFailuresToFail) return false;
  on_replica_failed(
      replica_id, now,
      fmt::format("{} connections in a row failed, the last: {}", r->connect_failures, error));
  return true;
}

void Endpoint::connected(uint64_t replica_id) {
  if (Replica* r = find(replica_id)) r->connect_failures = 0;
}

void Endpoint::on_start(dispatch::RequestId request, dispatch::ReplicaSlot slot, Time now) {
  requests_.on_start(request, slot, now);
}

void Endpoint::on_timeout(dispatch::RequestId request, Time deadline) {
  requests_.on_timeout(request, deadline);
}

void Endpoint::on_drained(dispatch::ReplicaSlot slot, Time now) {
  Replica* r = find(slot_owner_[slot]);
  if (r == nullptr) return;
  r->slot = dispatch::kNoSlot;
  if (fresh_report(*r, now) && r->report->in_service + r->report->queued > 0) {
    // Never stop a replica with a request in flight, including requests sent straight to it.
    r->awaiting_idle_report = true;
    return;
  }
  retire(*r, now, ReplicaState::kStopped);
}

GroupStatus Endpoint::status(int group) const {
  const Group& g = groups_[group];
  GroupStatus s;
  s.desired = g.desired;
  for (uint64_t id : g.live) {
    switch (replicas_.at(id).state) {
      case ReplicaState::kRequested:
      case ReplicaState::kStarting:
        ++s.starting;
        break;
      case ReplicaState::kReady:
        ++s.ready;
        break;
      case ReplicaState::kDraining:
        ++s.draining;
        break;
      default:
        break;
    }
  }
  s.queued = dispatcher_.queued(group);
  s.in_flight = dispatcher_.in_flight(group);
  s.launches = g.launches;
  s.failures = g.failures;
  s.last_reason = g.last_reason;
  s.last_error = g.last_error;
  s.routed = g.routed;
  s.spilled = g.spilled;
  s.overflow_in = g.overflow_in;
  s.rerouted = g.rerouted;
  s.consecutive_failures = g.consecutive_failures;
  s.direct_routes = g.direct_routes;
  s.direct_waits = g.direct_waits;
  s.waiting_clients = static_cast<int>(g.route_waits.size());
  s.reporting = g.last_observation.reporting;
  s.load = g.last_observation.load;
  const policy::Observation& o = g.last_observation;
  s.engine_reporting = o.engine_reporting;
  s.engine_waiting = o.engine_waiting;
  s.engine_running = o.engine_running;
  if (o.engine_kv_reporting > 0) s.engine_kv_cache = o.engine_kv_cache;
  if (g.backoff_until != kTimeMin) s.backoff_until = g.backoff_until;
  s.rollout = g.rollout;
  for (uint64_t id : g.live)
    ++(replicas_.at(id).generation == g.rollout.generation ? s.rollout.new_replicas
                                                           : s.rollout.old_replicas);
  return s;
}

double Endpoint::replica_seconds(int group, Time now) const {
  const Group& g = groups_[group];
  double total = g.closed_replica_seconds;
  for (uint64_t id : g.live) total += to_seconds(now - replicas_.at(id).requested_at);
  return total;
}

}  // namespace tide::control
