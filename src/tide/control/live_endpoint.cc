#include "tide/control/live_endpoint.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace tide::control {

std::string_view outcome_label(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kQueueFull:
      return "429";
    case Outcome::kBadGateway:
      return "502";
    case Outcome::kUnavailable:
      return "503";
    case Outcome::kTimeout:
      return "504";
    case Outcome::kClientGone:
      return "client_gone";
  }
  return "unknown";
}

uint64_t GroupStats::requests() const {
  uint64_t n = 0;
  for (uint64_t c : outcomes) n += c;
  return n;
}

LiveEndpoint::LiveEndpoint(const config::EndpointSpec& spec, Provisioner& provisioner,
                           const Clock& clock, Log log)
    : versions_{spec},
      current_(&versions_.front()),
      clock_(clock),
      log_(std::move(log)),
      endpoint_(spec, provisioner, *this, this, clock.now()),
      stats_(spec.groups.size()) {
  // Replica events arrive on the provisioner's thread: through this object, under the lock.
  endpoint_.set_replica_events(this);
}

std::string LiveEndpoint::reconfigure(const config::EndpointSpec& next) {
  std::lock_guard lock(mu_);
  std::string why = endpoint_.reconfigure(next, clock_.now());
  if (!why.empty()) return why;
  versions_.push_back(next);
  current_.store(&versions_.back(), std::memory_order_release);
  stats_.resize(next.groups.size());
  if (log_) log_(fmt::format("endpoint {}: configuration changed", next.name));
  return "";
}

LiveEndpoint::~LiveEndpoint() = default;

Dispatch LiveEndpoint::submit(dispatch::RequestId request, int group, Waiter* waiter) {
  std::lock_guard lock(mu_);
  return submit_locked(request, group, waiter, clock_.now());
}

Dispatch LiveEndpoint::submit_routed(dispatch::RequestId request, uint64_t sticky, Waiter* waiter) {
  std::lock_guard lock(mu_);
  const Time now = clock_.now();
  return submit_locked(request, endpoint_.route(sticky, now), waiter, now);
}

Dispatch LiveEndpoint::submit_locked(dispatch::RequestId request, int group, Waiter* waiter,
                                     Time now) {
  ++requests_;
  Dispatch d;
  d.group = group;
  d.submitted_at = now;
  if (shut_down_) {
    d.kind = Dispatch::Kind::kShutdown;
    count_locked(group, Outcome::kUnavailable);
    return d;
  }
  submitting_ = request;
  submitting_started_ = false;
  const dispatch::Admit admit = endpoint_.submit(request, group, now);
  submitting_ = 0;
  settle(now);
  switch (admit) {
    case dispatch::Admit::kStarted:
      submitting_result_.submitted_at = now;
      stats_[static_cast<size_t>(group)].queue_wait.record(0.0);
      return submitting_result_;
    case dispatch::Admit::kQueued:
      held_.emplace(request, Held{waiter, group, now});
      d.kind = Dispatch::Kind::kQueued;
      return d;
    case dispatch::Admit::kRejectedQueueFull:
      ++rejected_queue_full_;
      count_locked(group, Outcome::kQueueFull);
      d.kind = Dispatch::Kind::kQueueFull;
      return d;
    case dispatch::Admit::kRejectedNoReplica:
      ++rejected_no_replica_;
      count_locked(group,
                   spec().groups[static_cast<size_t>(group)].scaling.admission.reject_status == 502
                       ? Outcome::kBadGateway
                       : Outcome::kUnavailable);
      d.kind = Dispatch::Kind::kNoReplica;
      return d;
  }
  return d;
}

bool LiveEndpoint::cancel(dispatch::RequestId request, Outcome why) {
  std::lock_guard lock(mu_);
  auto it = held_.find(request);
  if (it == held_.end()) return false;
  count_locked(it->second.group, why);
  held_.erase(it);
  // Not in the hold queue means waiting at a replica (passthrough): it will be started there
  // by the dispatcher, and is then completed at once.
  if (!endpoint_.cancel(request, clock_.now())) abandoned_.insert(request);
  return true;
}

void LiveEndpoint::finish(const Dispatch& started, Outcome outcome, const StreamTimes* stream) {
  std::lock_guard lock(mu_);
  const Time now = clock_.now();
  GroupStats& stats = stats_[static_cast<size_t>(started.group)];
  ++stats.outcomes[static_cast<size_t>(outcome)];
  if (outcome == Outcome::kOk) stats.latency.record(to_seconds(now - started.submitted_at));
  if (outcome == Outcome::kOk && stream != nullptr) {
    stats.ttft.record(to_seconds(stream->ttft));
    if (stream->tpot) stats.tpot.record(to_seconds(*stream->tpot));
    endpoint_.observe_prefill(stream->ttft - (started.started_at - started.submitted_at));
  }
  const Replica* r = endpoint_.replica_at(started.slot);
  // The replica may have failed (and its slot been reused) while the request ran.
  if (r == nullptr || r->id != started.replica_id) return;
  if (outcome == Outcome::kOk) endpoint_.connected(started.replica_id);
  endpoint_.complete(started.slot, now, now - started.started_at);
  settle(now);
}

Duration LiveEndpoint::wait_budget() {
  std::lock_guard lock(mu_);
  return endpoint_.wait_budget();
}

void LiveEndpoint::unreachable(const Dispatch& started, std::string error) {
  std::lock_guard lock(mu_);
  const Time now = clock_.now();
  const Replica* r = endpoint_.replica_at(started.slot);
  if (r == nullptr || r->id != started.replica_id) return;
  const std::string name = r->name;
  const int in_a_row = r->connect_failures + 1;
  endpoint_.complete(started.slot, now, Duration{0});  // it never reached the replica
  const bool failed = endpoint_.connect_failed(started.replica_id, now, error);
  if (log_)
    log_(failed ? fmt::format("replica {} failed: {} connections in a row failed, the last: {}",
                              name, in_a_row, error)
                : fmt::format("replica {}: connection failed ({} of {} in a row fail it): {}", name,
                              in_a_row, Endpoint::kConnectFailuresToFail, error));
  settle(now);
}

void LiveEndpoint::count(int group, Outcome outcome) {
  std::lock_guard lock(mu_);
  count_locked(group, outcome);
}

void LiveEndpoint::shut_down() {
  std::lock_guard lock(mu_);
  shut_down_ = true;
  const Time now = clock_.now();
  std::vector<dispatch::RequestId> ids;
  ids.reserve(held_.size());
  for (const auto& [id, h] : held_) ids.push_back(id);
  for (dispatch::RequestId id : ids) {
    endpoint_.cancel(id, now);
    Dispatch d;
    d.kind = Dispatch::Kind::kShutdown;
    wake(id, d);
  }
}

void LiveEndpoint::tick(int group) {
  std::lock_guard lock(mu_);
  endpoint_.tick(group, clock_.now());
  settle(clock_.now());
}

int LiveEndpoint::live_replicas() {
  std::lock_guard lock(mu_);
  int n = 0;
  for (int g = 0; g < endpoint_.group_count(); ++g)
    n += static_cast<int>(endpoint_.replicas(g).size());
  return n;
}

int LiveEndpoint::retry_after_s(int group) {
  std::lock_guard lock(mu_);
  if (endpoint_.status(group).ready > 0) return 1;
  const double cold = to_seconds(endpoint_.last_cold_start(group));
  return std::max(1, static_cast<int>(std::ceil(cold)));
}

DirectRoute LiveEndpoint::route_direct(double work, uint64_t sticky, Duration linger) {
  std::lock_guard lock(mu_);
  const Time now = clock_.now();
  DirectRoute out;
  if (shut_down_) {
    out.kind = DirectRoute::Kind::kShutdown;
    return out;
  }
  // The endpoint's routing among the groups with agents (the only ones a client can be sent to).
  const int group = endpoint_.route(sticky, now, Endpoint::Via::kDirect);
  if (group < 0) {
    out.kind = DirectRoute::Kind::kNoAgent;
    return out;
  }
  out.group = group;
  out.group_name = spec().groups[static_cast<size_t>(group)].name;
  if (const Replica* r = endpoint_.route_direct(group, work, now)) {
    out.kind = DirectRoute::Kind::kRouted;
    out.replica_id = r->id;
    out.replica_name = r->name;
    out.address = r->address;
    return out;
  }
  // When the first replica on its way should be ready; a full cold start if none is coming.
  const Duration cold = endpoint_.last_cold_start(group);
  Duration wait = cold;
  for (const Replica* r : endpoint_.replicas(group)) {
    if (r->state == ReplicaState::kRequested || r->state == ReplicaState::kStarting)
      wait = std::min(wait, r->requested_at + cold - now);
  }
  out.kind = DirectRoute::Kind::kNoReplica;
  out.retry_after_s = std::max(1, static_cast<int>(std::ceil(to_seconds(wait))));
  endpoint_.wait_for_route(group, now, now + std::chrono::seconds(out.retry_after_s) + linger);
  out.status = endpoint_.status(group);
  return out;
}

LiveEndpoint::ReportResult LiveEndpoint::agent_report(uint64_t replica_id,
                                                      const ReplicaReport& report, AgentState state,
                                                      const std::string& address,
                                                      const std::string& detail) {
  std::lock_guard lock(mu_);
  const Time now = clock_.now();
  const Replica* r = endpoint_.replica(replica_id);
  if (r == nullptr) return ReportResult::kUnknownReplica;
  if (!spec().groups[static_cast<size_t>(r->group)].agent.enabled) return ReportResult::kNoAgent;
  const bool cold = r->state == ReplicaState::kRequested || r->state == ReplicaState::kStarting;
  if (state == AgentState::kReady && cold && !address.empty()) {
    if (log_)
      log_(fmt::format("replica {} ready at {} after {} (pushed by its agent)", r->name, address,
                       format_duration(now - r->requested_at)));
    endpoint_.on_replica_ready(replica_id, now, address);
    settle(now);
  } else if (state == AgentState::kUnhealthy && !cold) {
    const std::string error = "its agent reports the model server unhealthy: " + detail;
    if (log_) log_(fmt::format("replica {} failed: {}", r->name, error));
    endpoint_.fail_replica(replica_id, now, error);
    settle(now);
    return ReportResult::kAccepted;
  }
  endpoint_.on_report(replica_id, report, now);
  return ReportResult::kAccepted;
}

EndpointView LiveEndpoint::view(size_t max_decisions) {
  std::lock_guard lock(mu_);
  const Time now = clock_.now();
  EndpointView v;
  v.name = spec().name;
  v.queued = endpoint_.dispatcher().total_held();
  for (int g = 0; g < endpoint_.group_count(); ++g) {
    GroupView gv;
    gv.name = spec().groups[static_cast<size_t>(g)].name;
    gv.status = endpoint_.status(g);
    gv.replica_seconds = endpoint_.replica_seconds(g, now);
    for (const Replica* r : endpoint_.replicas(g)) {
      ReplicaView rv;
      rv.id = r->id;
      rv.name = r->name;
      rv.state = std::string(state_name(r->state));
      rv.generation = r->generation;
      rv.address = r->address;
      if (r->slot != dispatch::kNoSlot) rv.in_flight = endpoint_.dispatcher().outstanding(r->slot);
      rv.age_s = to_seconds(now - r->requested_at);
      if (r->state == ReplicaState::kReady || r->state == ReplicaState::kDraining)
        rv.ready_after_s = to_seconds(r->ready_at - r->requested_at);
      rv.error = r->error;
      rv.routes = r->routes;
      if (r->report) {
        rv.report = *r->report;
        rv.report_age_s = to_seconds(now - r->reported_at);
      }
      if (r->engine) {
        rv.engine = *r->engine;
        rv.engine_age_s = to_seconds(now - r->engine_at);
      }
      gv.replicas.push_back(std::move(rv));
    }
    gv.stats = stats_[static_cast<size_t>(g)];
    v.groups.push_back(std::move(gv));
  }
  const size_t skip = decisions_.size() > max_decisions ? decisions_.size() - max_decisions : 0;
  v.decisions.assign(decisions_.begin() + static_cast<std::ptrdiff_t>(skip), decisions_.end());
  v.decisions_total = decisions_total_;
  v.requests = requests_;
  v.rejected_queue_full = rejected_queue_full_;
  v.rejected_no_replica = rejected_no_replica_;
  v.timed_out = timed_out_;
  return v;
}

void LiveEndpoint::on_replica_starting(uint64_t replica_id, Time now) {
  std::lock_guard lock(mu_);
  endpoint_.on_replica_starting(replica_id, now);
}

void LiveEndpoint::on_replica_ready(uint64_t replica_id, Time now, std::string address) {
  std::lock_guard lock(mu_);
  if (const Replica* r = endpoint_.replica(replica_id);
      r != nullptr &&
      (r->state == ReplicaState::kRequested || r->state == ReplicaState::kStarting)) {
    if (log_)
      log_(fmt::format("replica {} ready at {} after {}", r->name, address,
                       format_duration(now - r->requested_at)));
    // An adopted replica's launch was in an earlier run: its launch-to-ready says nothing.
    if (!r->adopted)
      stats_[static_cast<size_t>(r->group)].cold_start.record(to_seconds(now - r->requested_at));
  }
  endpoint_.on_replica_ready(replica_id, now, std::move(address));
  settle(now);
}

void LiveEndpoint::on_replica_failed(uint64_t replica_id, Time now, std::string error) {
  std::lock_guard lock(mu_);
  if (log_) log_(fmt::format("replica {}/{} failed: {}", spec().name, replica_id, error));
  const Replica* r = endpoint_.replica(replica_id);
  const int group = r != nullptr ? r->group : -1;
  endpoint_.on_replica_failed(replica_id, now, std::move(error));
  if (group >= 0) fail_held_if_crash_looping(group, now);
}

// Held requests would otherwise wait out queue.timeout for replicas that never get ready; they
// learn why at once instead. New requests are still held: each gives the next launch (after the
// crash-loop backoff) its chance, and the control loop keeps the demand that launches it.
void LiveEndpoint::fail_held_if_crash_looping(int group, Time now) {
  const GroupStatus s = endpoint_.status(group);
  if (s.consecutive_failures < kCrashLoopFailures) return;
  for (int g = 0; g < endpoint_.group_count(); ++g)
    if (endpoint_.status(g).ready > 0) return;
  std::vector<dispatch::RequestId> ids;
  for (const auto& [id, h] : held_)
    if (h.group == group) ids.push_back(id);
  for (dispatch::RequestId id : ids) {
    if (!endpoint_.cancel(id, now)) abandoned_.insert(id);
    Dispatch d;
    d.kind = Dispatch::Kind::kFailing;
    d.error = fmt::format("{} replicas in a row failed before getting ready; the last: {}",
                          s.consecutive_failures, s.last_error);
    wake(id, std::move(d));
  }
}

void LiveEndpoint::on_start(dispatch::RequestId request, dispatch::ReplicaSlot slot, Time now) {
  const Replica* r = endpoint_.replica_at(slot);
  Dispatch d;
  d.kind = Dispatch::Kind::kStarted;
  d.slot = slot;
  d.started_at = now;
  if (r != nullptr) {
    d.replica_id = r->id;
    d.address = r->address;
    d.group = r->group;
    if (agent_secret_ && spec().groups[static_cast<size_t>(r->group)].agent.enabled)
      d.upstream_secret = agent_secret_(r->id);
  }
  if (abandoned_.erase(request) > 0) {
    to_complete_.push_back(slot);
    return;
  }
  if (request == submitting_ && submitting_ != 0) {
    submitting_started_ = true;
    submitting_result_ = std::move(d);
    return;
  }
  wake(request, std::move(d));
}

void LiveEndpoint::on_timeout(dispatch::RequestId request, Time) {
  ++timed_out_;
  Dispatch d;
  d.kind = Dispatch::Kind::kTimedOut;
  wake(request, d);
}

void LiveEndpoint::on_replica_lost(dispatch::ReplicaSlot,
                                   const std::vector<dispatch::RequestId>& waiting, Time) {
  for (dispatch::RequestId id : waiting) {
    Dispatch d;
    d.kind = Dispatch::Kind::kLost;
    wake(id, d);
  }
}

void LiveEndpoint::replica_changed(const Replica& replica) {
  if (journal_.replica) journal_.replica(replica);
}

void LiveEndpoint::on_replica_handle(uint64_t replica_id, std::string handle) {
  std::lock_guard lock(mu_);
  endpoint_.on_replica_handle(replica_id, std::move(handle));
}

void LiveEndpoint::on_replica_engine(uint64_t replica_id, Time now,
                                     const metrics::EngineSignals& signals) {
  std::lock_guard lock(mu_);
  endpoint_.on_replica_engine(replica_id, now, signals);
}

void LiveEndpoint::reserve_ids(uint64_t next) {
  std::lock_guard lock(mu_);
  endpoint_.reserve_ids(next);
}

bool LiveEndpoint::adopt(const std::string& group, uint64_t id, const std::string& handle,
                         Time requested_at, Time ready_at, const std::string& template_id) {
  std::lock_guard lock(mu_);
  for (int g = 0; g < endpoint_.group_count(); ++g) {
    if (spec().groups[static_cast<size_t>(g)].name != group) continue;
    const bool ok = endpoint_.adopt(g, id, handle, requested_at, ready_at, template_id);
    if (log_)
      log_(ok ? fmt::format("adopting replica {}/{}/{} ({})", spec().name, group, id, handle)
              : fmt::format("cannot adopt replica {}/{}/{} ({})", spec().name, group, id, handle));
    return ok;
  }
  return false;
}

void LiveEndpoint::record(const DecisionRecord& decision) {
  if (journal_.decision) journal_.decision(decision);
  if (log_)
    log_(fmt::format("{}/{}: {} -> {} replicas: {}", decision.endpoint, decision.group,
                     decision.from, decision.to, decision.reason));
  for (size_t g = 0; g < spec().groups.size(); ++g) {
    if (spec().groups[g].name != decision.group) continue;
    ++(decision.to > decision.from ? stats_[g].scale_ups : stats_[g].scale_downs);
  }
  ++decisions_total_;
  decisions_.push_back(decision);
  while (decisions_.size() > 1000) decisions_.pop_front();
}

void LiveEndpoint::settle(Time now) {
  while (!to_complete_.empty()) {
    const dispatch::ReplicaSlot slot = to_complete_.back();
    to_complete_.pop_back();
    endpoint_.complete(slot, now, Duration{0});
  }
}

void LiveEndpoint::wake(dispatch::RequestId request, Dispatch outcome) {
  auto it = held_.find(request);
  if (it == held_.end()) return;  // cancelled meanwhile
  outcome.group = it->second.group;
  outcome.submitted_at = it->second.submitted_at;
  GroupStats& stats = stats_[static_cast<size_t>(outcome.group)];
  if (outcome.kind == Dispatch::Kind::kStarted) {
    stats.queue_wait.record(to_seconds(outcome.started_at - outcome.submitted_at));
  } else if (outcome.kind == Dispatch::Kind::kTimedOut ||
             outcome.kind == Dispatch::Kind::kShutdown ||
             outcome.kind == Dispatch::Kind::kFailing) {
    ++stats.outcomes[static_cast<size_t>(Outcome::kUnavailable)];
  }
  Waiter* waiter = it->second.waiter;
  held_.erase(it);
  waiter->wake(outcome);
}

}  // namespace tide::control
