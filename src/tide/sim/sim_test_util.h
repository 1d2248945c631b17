// Test helpers for the simulator's tests: one-group configs, traces of given arrival times.
#pragma once

#include <initializer_list>

#include "tide/config/config.h"
#include "tide/sim/engine.h"

namespace tide::sim {

using namespace std::chrono_literals;

inline config::Config one_group(config::ScalingSpec scaling, int max_replicas, int concurrency,
                                Duration cold_start, Duration service) {
  config::Config c;
  config::EndpointSpec ep;
  ep.name = "chat";
  ep.slo.max_wait = 2s;
  config::GroupSpec g;
  g.name = "gpu";
  g.min_replicas = 0;
  g.max_replicas = max_replicas;
  g.concurrency = concurrency;
  g.cold_start.value = cold_start;
  g.service_time.kind = config::ServiceTimeModel::Kind::kFixed;
  g.service_time.value = service;
  g.scaling = std::move(scaling);
  ep.groups.push_back(g);
  c.endpoints.push_back(ep);
  return c;
}

inline config::ScalingSpec queue_policy(int queue_size) {
  config::ScalingSpec s;
  s.policy = config::PolicyKind::kQueue;
  s.queue.queue_size = queue_size;
  s.queue.idle_timeout = 30s;
  return s;
}

inline Trace arrivals(std::initializer_list<double> seconds) {
  Trace t;
  t.streams = {"test"};
  for (double s : seconds) t.requests.push_back({.arrival = time_at_seconds(s)});
  t.span = t.requests.empty() ? Duration{0} : t.requests.back().arrival.time_since_epoch();
  return t;
}

inline SimResult run(const config::Config& c, const Trace& t, uint64_t seed = 1) {
  TraceSource source(t);
  SimOptions o;
  o.seed = seed;
  return simulate(c, source, o);
}

}  // namespace tide::sim
