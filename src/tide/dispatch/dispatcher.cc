#include "tide/dispatch/dispatcher.h"

#include <algorithm>
#include <cassert>

namespace tide::dispatch {

Dispatcher::Dispatcher(Options options, DispatchListener& listener)
    : options_(options), listener_(listener) {}

int Dispatcher::add_group(int concurrency, bool hold, Time now) {
  Group g;
  g.concurrency = std::max(1, concurrency);
  g.hold = hold;
  g.bucket_head.assign(static_cast<size_t>(g.concurrency), kNoSlot);
  g.last_change = g.interval_start = now;
  groups_.push_back(std::move(g));
  return static_cast<int>(groups_.size()) - 1;
}

void Dispatcher::advance(Group& g, Time now) {
  if (now <= g.last_change) return;
  const double dt = to_seconds(now - g.last_change);
  g.in_flight_integral += dt * g.in_flight;
  g.queued_integral += dt * group_queued(g);
  g.ready_integral += dt * static_cast<double>(g.members.size());
  g.busy_integral += dt * g.busy;
  g.last_change = now;
}

void Dispatcher::note_peak(Group& g) {
  g.peak_demand = std::max(g.peak_demand, static_cast<double>(g.in_flight + group_queued(g)));
}

void Dispatcher::bucket_insert(Group& g, ReplicaSlot slot) {
  Replica& r = replicas_[slot];
  if (r.draining || r.outstanding >= g.concurrency) return;
  const auto k = static_cast<size_t>(r.outstanding);
  r.prev = kNoSlot;
  r.next = g.bucket_head[k];
  if (r.next != kNoSlot) replicas_[r.next].prev = slot;
  g.bucket_head[k] = slot;
  g.lowest_hint = std::min(g.lowest_hint, k);
}

void Dispatcher::bucket_remove(Group& g, ReplicaSlot slot) {
  Replica& r = replicas_[slot];
  if (r.draining || r.outstanding >= g.concurrency) return;
  const auto k = static_cast<size_t>(r.outstanding);
  if (r.prev != kNoSlot) {
    replicas_[r.prev].next = r.next;
  } else {
    g.bucket_head[k] = r.next;
  }
  if (r.next != kNoSlot) replicas_[r.next].prev = r.prev;
  r.prev = r.next = kNoSlot;
}

ReplicaSlot Dispatcher::pick(Group& g) {
  for (size_t k = g.lowest_hint; k < g.bucket_head.size(); ++k) {
    if (g.bucket_head[k] != kNoSlot) {
      g.lowest_hint = k;
      return g.bucket_head[k];
    }
  }
  g.lowest_hint = g.bucket_head.size();
  return kNoSlot;
}

ReplicaSlot Dispatcher::pick_any_least_loaded(const Group& g) const {
  ReplicaSlot best = kNoSlot;
  for (ReplicaSlot s : g.members) {
    const Replica& r = replicas_[s];
    if (r.draining) continue;
    if (best == kNoSlot || r.outstanding < replicas_[best].outstanding) best = s;
  }
  return best;
}

void Dispatcher::start_on(Group& g, ReplicaSlot slot, RequestId request, Time now) {
  Replica& r = replicas_[slot];
  bucket_remove(g, slot);
  ++r.outstanding;
  if (r.in_service == 0) ++g.busy;
  ++r.in_service;
  ++g.in_flight;
  bucket_insert(g, slot);
  listener_.on_start(request, slot, now);
}

ReplicaSlot Dispatcher::add_replica(int group, Time now) {
  Group& g = groups_[static_cast<size_t>(group)];
  advance(g, now);
  ReplicaSlot slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<ReplicaSlot>(replicas_.size());
    replicas_.emplace_back();
  }
  Replica& r = replicas_[slot];
  r = Replica{};
  r.group = group;
  r.live = true;
  r.idle_since = now;
  g.members.push_back(slot);
  ++g.accepting;
  bucket_insert(g, slot);
  feed_from_queue(g, slot, now);
  note_peak(g);
  return slot;
}

void Dispatcher::feed_from_queue(Group& g, ReplicaSlot slot, Time now) {
  // Expired entries leave first so that a freed slot never serves a request already past due.
  time_out_overdue(g, now);
  while (!g.held.empty() && !replicas_[slot].draining &&
         replicas_[slot].outstanding < g.concurrency) {
    const RequestId request = g.held.front().request;
    // Arrival = deadline - timeout; a wait beyond late_after is a miss of the SLO.
    const Duration waited = now - (g.held.front().deadline - options_.queue_timeout);
    ++g.started;
    if (waited > options_.late_after) ++g.late;
    g.held.pop_front();
    --total_held_;
    start_on(g, slot, request, now);
  }
}

void Dispatcher::drain(ReplicaSlot slot, Time now) {
  Replica& r = replicas_[slot];
  if (!r.live || r.draining) return;
  Group& g = groups_[static_cast<size_t>(r.group)];
  advance(g, now);
  bucket_remove(g, slot);
  r.draining = true;
  --g.accepting;
  check_drained(slot, now);
}

void Dispatcher::undrain(ReplicaSlot slot, Time now) {
  Replica& r = replicas_[slot];
  if (!r.live || !r.draining) return;
  Group& g = groups_[static_cast<size_t>(r.group)];
  advance(g, now);
  r.draining = false;
  ++g.accepting;
  bucket_insert(g, slot);
  feed_from_queue(g, slot, now);
  note_peak(g);
}

void Dispatcher::check_drained(ReplicaSlot slot, Time now) {
  const Replica& r = replicas_[slot];
  if (r.live && r.draining && r.outstanding == 0) {
    listener_.on_drained(slot, now);
    release(slot);
  }
}

void Dispatcher::release(ReplicaSlot slot) {
  Replica& r = replicas_[slot];
  Group& g = groups_[static_cast<size_t>(r.group)];
  bucket_remove(g, slot);
  if (!r.draining) --g.accepting;
  if (r.in_service > 0) --g.busy;
  g.in_flight -= r.in_service;
  g.local_waiting -= static_cast<int>(r.local.size());
  std::erase(g.members, slot);
  r = Replica{};
  free_slots_.push_back(slot);
}

std::vector<RequestId> Dispatcher::remove(ReplicaSlot slot, Time now) {
  Replica& r = replicas_[slot];
  if (!r.live) return {};
  Group& g = groups_[static_cast<size_t>(r.group)];
  advance(g, now);
  // Requests in service are not tracked by id here; the caller knows them from on_start. Only
  // the local queue is returned.
  std::vector<RequestId> orphans(r.local.begin(), r.local.end());
  release(slot);
  return orphans;
}

Admit Dispatcher::submit(RequestId request, int group, Time now) {
  Group& g = groups_[static_cast<size_t>(group)];
  advance(g, now);
  ++g.arrivals;
  g.last_activity = now;
  if (g.hold) {
    if (g.held.empty()) {
      const ReplicaSlot slot = pick(g);
      if (slot != kNoSlot) {
        ++g.started;
        start_on(g, slot, request, now);
        note_peak(g);
        return Admit::kStarted;
      }
    }
    if (total_held_ >= options_.max_queue) return Admit::kRejectedQueueFull;
    g.held.push_back({request, now + options_.queue_timeout});
    ++total_held_;
    note_peak(g);
    return Admit::kQueued;
  }
  ReplicaSlot slot = pick(g);
  if (slot != kNoSlot) {
    start_on(g, slot, request, now);
    note_peak(g);
    return Admit::kStarted;
  }
  slot = pick_any_least_loaded(g);
  if (slot == kNoSlot) return Admit::kRejectedNoReplica;
  Replica& r = replicas_[slot];
  ++r.outstanding;
  r.local.push_back(request);
  ++g.local_waiting;
  note_peak(g);
  return Admit::kQueued;
}

void Dispatcher::complete(ReplicaSlot slot, Time now, Duration service) {
  Replica& r = replicas_[slot];
  assert(r.live && r.in_service > 0);
  Group& g = groups_[static_cast<size_t>(r.group)];
  advance(g, now);
  ++g.completions;
  ++g.completions_total;
  const double service_s = to_seconds(service);
  g.service_total_s += service_s;
  g.service_sum_s += service_s;
  g.service_sq_sum_s2 += service_s * service_s;
  g.last_activity = now;
  bucket_remove(g, slot);
  --r.outstanding;
  --r.in_service;
  --g.in_flight;
  if (!r.local.empty()) {
    // The replica's own queue: it starts the next waiting request itself.
    const RequestId next = r.local.front();
    r.local.pop_front();
    --g.local_waiting;
    ++r.in_service;
    ++g.in_flight;
    bucket_insert(g, slot);
    listener_.on_start(next, slot, now);
    return;
  }
  if (r.in_service == 0) {
    --g.busy;
    r.idle_since = now;
  }
  bucket_insert(g, slot);
  if (r.draining) {
    check_drained(slot, now);
    return;
  }
  feed_from_queue(g, slot, now);
}

bool Dispatcher::cancel(RequestId request, Time now) {
  for (Group& g : groups_) {
    auto it = std::find_if(g.held.begin(), g.held.end(),
                           [request](const Held& h) { return h.request == request; });
    if (it != g.held.end()) {
      advance(g, now);
      g.held.erase(it);
      --total_held_;
      return true;
    }
  }
  return false;
}

void Dispatcher::expire(Time now) {
  for (Group& g : groups_) {
    if (g.held.empty() || g.held.front().deadline > now) continue;
    advance(g, now);
    time_out_overdue(g, now);
  }
}

void Dispatcher::time_out_overdue(Group& g, Time now) {
  while (!g.held.empty() && g.held.front().deadline <= now) {
    Held h = g.held.front();
    g.held.pop_front();
    --total_held_;
    ++g.started;
    ++g.late;
    listener_.on_timeout(h.request, h.deadline);
  }
}

GroupLoad Dispatcher::take_interval(int group, Time now) {
  Group& g = groups_[static_cast<size_t>(group)];
  advance(g, now);
  GroupLoad load;
  load.interval = now - g.interval_start;
  load.queued = group_queued(g);
  load.in_flight = g.in_flight;
  load.ready = g.accepting;
  const double s = to_seconds(load.interval);
  if (s > 0) {
    load.avg_in_flight = g.in_flight_integral / s;
    load.avg_queued = g.queued_integral / s;
    load.avg_ready = g.ready_integral / s;
    load.avg_busy_replicas = g.busy_integral / s;
  } else {
    load.avg_in_flight = g.in_flight;
    load.avg_queued = load.queued;
    load.avg_ready = static_cast<double>(g.members.size());
    load.avg_busy_replicas = g.busy;
  }
  load.peak_demand = std::max(g.peak_demand, static_cast<double>(g.in_flight + load.queued));
  load.arrivals = g.arrivals;
  load.completions = g.completions;
  load.started = g.started;
  load.late = g.late;
  load.service_sum_s = g.service_sum_s;
  load.service_sq_sum_s2 = g.service_sq_sum_s2;
  load.mean_service_s =
      g.completions_total == 0 ? 0.0 : g.service_total_s / static_cast<double>(g.completions_total);
  load.last_activity = g.last_activity;
  if (g.in_flight > 0 || load.queued > 0) load.last_activity = now;  // still busy counts as active
  g.in_flight_integral = g.queued_integral = g.ready_integral = g.busy_integral = 0;
  g.peak_demand = g.in_flight + load.queued;
  g.arrivals = g.completions = g.started = g.late = 0;
  g.service_sum_s = g.service_sq_sum_s2 = 0;
  g.interval_start = now;
  return load;
}

std::optional<Time> Dispatcher::idle_since(ReplicaSlot slot) const {
  const Replica& r = replicas_[slot];
  if (!r.live || r.outstanding > 0) return std::nullopt;
  return r.idle_since;
}

bool Dispatcher::can_start_now(int group) const {
  const Group& g = groups_[static_cast<size_t>(group)];
  if (!g.hold) return g.accepting > 0;
  if (!g.held.empty()) return false;
  for (size_t k = g.lowest_hint; k < g.bucket_head.size(); ++k) {
    if (g.bucket_head[k] != kNoSlot) return true;
  }
  return false;
}

double Dispatcher::mean_service_s(int group) const {
  const Group& g = groups_[static_cast<size_t>(group)];
  return g.completions_total == 0 ? 0.0
                                  : g.service_total_s / static_cast<double>(g.completions_total);
}

int Dispatcher::queued(int group) const {
  return group_queued(groups_[static_cast<size_t>(group)]);
}

}  // namespace tide::dispatch
