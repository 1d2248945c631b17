// Simulator speed: a one-hour Poisson workload at 2,000 requests/s (7.2 M requests) with 1 s
// control ticks, through the full control plane (dispatcher, tide policy, reconciler).
//
// Baseline, same run: the bare event loop for the same arrivals and service times (a binary heap
// of arrivals and completions, nothing else), i.e. the cost floor of any discrete-event replay.
// Target: >= 1,000,000 simulated requests per second on one core.
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <queue>
#include <vector>

#include "tide/sim/engine.h"

namespace {

using namespace tide;
using namespace std::chrono_literals;

config::Config bench_config() {
  config::Config c;
  config::EndpointSpec ep;
  ep.name = "chat";
  ep.slo.max_wait = 2s;
  ep.queue.max_length = 1'000'000;
  config::GroupSpec g;
  g.name = "gpu";
  g.min_replicas = 0;
  g.max_replicas = 2000;
  g.concurrency = 8;
  g.cold_start.kind = config::DurationDistribution::Kind::kFixed;
  g.cold_start.value = 60s;
  g.service_time.kind = config::ServiceTimeModel::Kind::kLognormal;
  g.service_time.median = 1s;
  g.service_time.sigma = 0.5;
  g.scaling.policy = config::PolicyKind::kTide;
  ep.groups.push_back(g);
  c.endpoints.push_back(ep);
  return c;
}

double baseline_requests_per_s(double rate, Duration duration, uint64_t seed) {
  // The same arrivals and the same lognormal draws, replayed through a bare event heap.
  sim::PoissonSource source(rate, duration, seed);
  Random service(seed * 0x9e3779b97f4a7c15ULL + 1);
  std::priority_queue<int64_t, std::vector<int64_t>, std::greater<>> completions;
  const auto start = std::chrono::steady_clock::now();
  sim::TraceRequest r;
  uint64_t n = 0;
  int64_t busy = 0;
  while (source.next(r)) {
    const int64_t now = r.arrival.time_since_epoch().count();
    while (!completions.empty() && completions.top() <= now) {
      completions.pop();
      --busy;
    }
    completions.push(now + from_seconds(service.lognormal(1.0, 0.5)).count());
    ++busy;
    ++n;
  }
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (busy < 0) std::abort();
  return static_cast<double>(n) / wall;
}

}  // namespace

int main(int argc, char** argv) {
  const double rate = argc > 1 ? std::atof(argv[1]) : 2000.0;
  const Duration duration = argc > 2 ? from_seconds(std::atof(argv[2])) : Duration{1h};
  const uint64_t seed = 1;
  const config::Config cfg = bench_config();
  sim::SyntheticSource source(sim::SyntheticSource::Shape::kPoisson, rate, duration, Duration{0},
                              seed);
  sim::SimOptions options;
  options.seed = seed;
  options.record_timeline = false;
  const sim::SimResult r = sim::simulate(cfg, source, options);
  const double baseline = baseline_requests_per_s(rate, duration, seed);
  fmt::print("simulator speed: Poisson {:.0f}/s for {}, 1 s ticks\n", rate,
             format_duration(duration));
  fmt::print("  {:<34} {:>14} {:>10}\n", "", "requests/s", "wall s");
  fmt::print("  {:<34} {:>14.0f} {:>10.2f}\n", "tide sim (full control plane)", r.requests_per_s,
             r.wall_s);
  fmt::print("  {:<34} {:>14.0f} {:>10}\n", "baseline (bare event heap)", baseline, "");
  fmt::print("  {:<34} {:>14.0f} {:>10}\n", "target", 1e6, "");
  fmt::print("  requests {} (ok {}), peak replicas {}, replica-hours {:.1f}, SLO met {:.2f}%\n",
             r.outcomes.total, r.outcomes.ok, r.peak_replicas, r.replica_seconds / 3600,
             100 * r.attainment());
  return r.requests_per_s >= 1e6 ? 0 : 1;
}
