// Deciders on hostile and unlucky readings (policy/decider.h): every preset's policy (the
// default `tide` among them), wrapped as a group gets it, is driven through up to 96 control
// ticks of readings chosen by the input: intervals from a millisecond to a day, counts from 0 to
// a trillion, service times from a microsecond to months, service moments that contradict each
// other, agents' load figures out of range. Each answer must lie within the group's min and max
// and say why; the sanitizers catch an int overflowed on the way; libFuzzer's time and memory
// limits catch a tick that counts or keeps without bound.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "tide/config/config.h"
#include "tide/policy/decider.h"

namespace {

using namespace std::chrono_literals;
using tide::Duration;
using tide::fuzz::Input;

// A count on a rough log scale: 0, then 2^(b/4) up to about 2^63 for b up to 255.
double log_scale(uint8_t b) { return b == 0 ? 0.0 : std::exp2(static_cast<double>(b) / 4); }

int as_int(double v) { return static_cast<int>(std::min(v, 2e9)); }

Duration pick(Input& in, std::initializer_list<Duration> choices) {
  return *(choices.begin() + in.byte() % choices.size());
}

tide::config::GroupSpec group_of(Input& in) {
  tide::config::GroupSpec g;
  const auto& names = tide::config::preset_names();
  g.scaling = *tide::config::preset_spec(names[in.byte() % names.size()]);
  g.concurrency = 1 + in.byte() % 64;
  if (in.byte() % 8 == 0) g.concurrency = tide::config::kMaxConcurrency;
  g.max_replicas = 1 + in.byte() % 32;
  if (in.byte() % 8 == 0) g.max_replicas = tide::config::kMaxReplicas;
  g.min_replicas = in.byte() % (g.max_replicas + 1) % 4;
  return g;
}

// One tick's readings, as the controller would build them from the gateway and the agents.
struct Tick {
  tide::policy::Observation o;
  std::vector<tide::Time> idle;
};

void read_tick(Input& in, const tide::config::GroupSpec& g, int current, Tick& t) {
  tide::policy::Observation& o = t.o;
  o.interval = pick(in, {1ms, 1s, 1s, 5s, 60s, 1h, 24h});
  o.now += o.interval;
  o.current = std::clamp(current, 0, g.max_replicas);
  o.ready = o.current == 0 ? 0 : in.byte() % (o.current + 1);
  o.starting = o.current - o.ready;
  o.queued = as_int(log_scale(in.byte()));
  o.in_flight = as_int(std::min(log_scale(in.byte()), double(o.ready) * o.concurrency));
  o.arrivals = static_cast<uint64_t>(std::min(log_scale(in.byte()), 1e12));
  o.completions = static_cast<uint64_t>(std::min(log_scale(in.byte()), 1e12));
  o.started = o.completions;
  o.late = o.started / (1 + in.byte());
  const double mean = 1e-6 * log_scale(in.byte());  // up to months
  const double scv = std::array{1.0, 0.0, 0.25, 4.0, 100.0, -0.5}[in.byte() % 6];
  const auto n = static_cast<double>(o.completions);
  o.service_sum_s = n * mean;
  o.service_sq_sum_s2 = n * mean * mean * (1 + scv);  // scv < 0: moments that contradict
  if (o.completions > 0) o.mean_service_s = mean;
  o.avg_in_flight = o.in_flight;
  o.avg_queued = o.queued;
  o.avg_ready = o.ready;
  o.avg_busy_replicas = std::min<double>(o.ready, o.in_flight);
  o.peak_demand = static_cast<double>(o.in_flight) + o.queued;
  o.load = std::array{0.0, 0.5, 1.0, 3.0, 1e9}[in.byte() % 5];
  o.reporting = o.ready;
  o.engine_reporting = in.byte() % 2 == 0 ? 0 : o.ready;
  o.engine_waiting = 1e-3 * log_scale(in.byte());
  o.engine_running = o.in_flight;
  o.engine_kv_reporting = o.engine_reporting;
  o.engine_kv_cache = static_cast<double>(in.byte()) / 255;
  if (o.arrivals > 0 || o.completions > 0) o.last_activity = o.now;
  t.idle.clear();
  if (o.in_flight == 0)
    for (int i = 0; i < std::min(o.ready, 64); ++i) t.idle.push_back(*o.last_activity);
  o.idle_since = t.idle;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  tide::config::GroupSpec g = group_of(in);
  const Duration cold = pick(in, {1s, 10s, 60s, 300s, 1h});
  const Duration wait = pick(in, {100ms, 1s, 2s, 30s, 600s, 24h});
  auto decider = tide::policy::make_decider(g);
  Tick t;
  t.o.now = tide::kTimeZero + 1h;
  t.o.concurrency = g.concurrency;
  t.o.min_replicas = g.min_replicas;
  t.o.max_replicas = g.max_replicas;
  t.o.cold_start = cold;
  t.o.max_wait = wait;
  t.o.last_activity = t.o.now;
  int current = g.min_replicas;
  for (int i = 0; i < 96 && !in.rest().empty(); ++i) {
    read_tick(in, g, current, t);
    const tide::policy::Decision d = decider->decide(t.o);
    if (d.desired < g.min_replicas || d.desired > g.max_replicas) __builtin_trap();
    if (d.reason.empty()) __builtin_trap();
    current = d.desired;
  }
  return 0;
}
