// The discrete-event simulator: replays a workload against the real control plane
// (control::Endpoint with its dispatcher and deciders) on a virtual clock.
//
// Same seed, same result, bit for bit: all randomness comes from tide::Random streams split by
// purpose (service times and routing follow arrivals, so every policy compared on one workload
// sees the very same requests). Single-threaded; one Simulator per run.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tide/common/histogram.h"
#include "tide/config/config.h"
#include "tide/control/endpoint.h"
#include "tide/sim/trace.h"

namespace tide::sim {

// A workload: requests in arrival order.
class RequestSource {
 public:
  virtual ~RequestSource() = default;
  virtual bool next(TraceRequest& out) = 0;
  // End of the workload: the simulated window for replica-seconds (at least the last arrival).
  virtual Duration horizon() const = 0;
  virtual const std::vector<std::string>& streams() const = 0;
  virtual bool has_duration() const { return false; }
  virtual bool has_tokens() const { return false; }
  // Starts over from the first request (for --compare runs).
  virtual void rewind() = 0;
};

// Replays a loaded trace.
class TraceSource final : public RequestSource {
 public:
  explicit TraceSource(const Trace& trace);
  bool next(TraceRequest& out) override;
  Duration horizon() const override { return horizon_; }
  const std::vector<std::string>& streams() const override { return trace_.streams; }
  bool has_duration() const override { return trace_.has_duration; }
  bool has_tokens() const override { return trace_.has_tokens; }
  void rewind() override { pos_ = 0; }

 private:
  const Trace& trace_;
  size_t pos_ = 0;
  Duration horizon_;
};

// Synthetic arrivals: Poisson with a rate that may vary over time (by thinning).
//  poisson: constant `rate`;
//  bursts:  `rate` for the first quarter of every `period`, nothing the rest (scale from zero);
//  diurnal: a sine between 10% and 100% of `rate` with the given `period`;
//  periodic: exactly one request every 1/rate seconds, the first at 1/rate (no randomness).
class SyntheticSource final : public RequestSource {
 public:
  enum class Shape { kPoisson, kBursts, kDiurnal, kPeriodic };
  SyntheticSource(Shape shape, double rate, Duration duration, Duration period, uint64_t seed);
  bool next(TraceRequest& out) override;
  Duration horizon() const override { return duration_; }
  const std::vector<std::string>& streams() const override { return streams_; }
  void rewind() override;
  static std::optional<Shape> parse_shape(std::string_view name);

 private:
  double rate_at(Time t) const;
  Shape shape_;
  double rate_;
  Duration duration_;
  Duration period_;
  uint64_t seed_;
  PoissonSource poisson_;
  Random thin_;
  int64_t periodic_count_ = 0;
  std::vector<std::string> streams_{"synthetic"};
};

// Makes a fresh source of the same workload: one per run when runs go in parallel.
using SourceFactory = std::function<std::unique_ptr<RequestSource>()>;

// The first part of a workload: the requests of `inner` arriving before `end`, with `end` as the
// horizon (for `tide tune`'s fitted part; the same source with a warm-up of `end` measures the
// rest).
class PrefixSource final : public RequestSource {
 public:
  PrefixSource(std::unique_ptr<RequestSource> inner, Duration end)
      : inner_(std::move(inner)), end_(end) {}
  bool next(TraceRequest& out) override { return inner_->next(out) && out.arrival < Time{end_}; }
  Duration horizon() const override { return end_; }
  const std::vector<std::string>& streams() const override { return inner_->streams(); }
  bool has_duration() const override { return inner_->has_duration(); }
  bool has_tokens() const override { return inner_->has_tokens(); }
  void rewind() override { inner_->rewind(); }

 private:
  std::unique_ptr<RequestSource> inner_;
  Duration end_;
};

struct SimOptions {
  uint64_t seed = 1;
  bool warm_start = true;  // min_replicas are ready at time 0
  bool record_timeline = true;
  // Simulated but not measured: requests arriving before it and replica time spent before it are
  // left out of every figure, so a trace cut from a running service starts in steady state.
  Duration warmup{0};
  // Called now and then with the fraction of the horizon simulated (for a progress bar).
  std::function<void(double)> progress;
};

// One control tick of one group, for timeline.csv and the report.
struct TimelineRow {
  double t_s;
  uint16_t endpoint;
  uint16_t group;
  int desired;
  int starting;
  int ready;
  int draining;
  int queued;
  int in_service;
  double gpu_util;
  double wait_mean_s;  // of requests that started since the previous tick
  double wait_max_s;
  double load;  // the work-based load signal (metrics/load.h) per replica
  int late;     // requests that started since the previous tick beyond the SLO, or timed out
};

struct Outcomes {
  uint64_t total = 0;
  uint64_t ok = 0;
  uint64_t rejected = 0;   // refused at once: queue full (429), or no replica (peers' 502/503)
  uint64_t timed_out = 0;  // held past queue.timeout (503)
  uint64_t slo_met = 0;    // answered within the SLO (meets_slo)
  LogLinearHistogram wait_s;
  LogLinearHistogram e2e_s;
  LogLinearHistogram ttft_s;  // time to first token: wait + prefill (prefill_time)
  void merge(const Outcomes& o);
  // Share of requests answered within the SLO (1 when there were none).
  double attainment() const {
    return total == 0 ? 1.0 : static_cast<double>(slo_met) / static_cast<double>(total);
  }
};

struct GroupResult {
  std::string endpoint;
  std::string group;
  Outcomes outcomes;
  double replica_seconds = 0;
  // Of replica_seconds, those billed after the workload's end (and its last completion): replicas
  // kept idle past it until they stopped. A replica still running when the run ends is billed to
  // the end only where its group was at its minimum; above it, until the run stopped waiting for
  // the group to scale down (an hour past the end).
  double after_end_replica_seconds = 0;
  double zero_wait_replica_seconds = 0;
  double work_bound_replica_seconds = 0;
  double cost = 0;  // replica_seconds x price
  bool priced = false;
  uint64_t launches = 0;
  int peak_replicas = 0;
  int scale_reversals = 0;
  double cold_start_mean_s = 0;
  double service_s = 0;  // total service time
  // Sets the figures that follow from service_s and replica_seconds: the work bound and the cost.
  void price(const config::GroupSpec& spec);
};

struct SimResult {
  std::string policy;  // preset / policy label of this run
  Outcomes outcomes;
  // SLO of the first endpoint (the common case: one endpoint): max_wait_s, or ttft_s when it has
  // a ttft SLO (else 0).
  double max_wait_s = 0;
  double ttft_s = 0;
  double replica_seconds = 0;
  double after_end_replica_seconds = 0;  // as in GroupResult
  double zero_wait_replica_seconds = 0;
  double work_bound_replica_seconds = 0;
  double cost = 0;
  bool priced = false;
  uint64_t launches = 0;
  int peak_replicas = 0;
  int scale_reversals = 0;
  double span_s = 0;  // simulated time
  double warmup_s = 0;
  double wall_s = 0;
  double requests_per_s = 0;  // simulated requests per wall second
  std::vector<GroupResult> groups;
  std::vector<TimelineRow> timeline;
  std::vector<DecisionRecord> decisions;
  std::string note;  // a line printed under the table (reference rows: what the row means)
  double attainment() const { return outcomes.attainment(); }
  // Adds one group's figures to the run's totals and keeps it in `groups`.
  void add_group(GroupResult g);
};

class SimError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The endpoint of each of the workload's streams (by name; everything to a lone endpoint).
// Throws SimError when a stream matches no endpoint or a service-time model needs columns the
// workload lacks.
std::vector<uint32_t> check_workload(const config::Config& config, const RequestSource& source);

// The service-time generator of a run with this seed, and one request's service time drawn from
// it as the simulator draws it (in arrival order, one draw per request of a random model).
Random service_random(uint64_t seed);
double draw_service_time(const config::GroupSpec& group, const TraceRequest& req, Random& rng);
// The part of a request's service time before its first token: with service_time model tokens,
// base + prefill x input tokens; 0 with the other models (their time to first token is the wait).
double prefill_time(const config::GroupSpec& group, const TraceRequest& req);
// Whether a request that waited `wait_s` and prefilled for `prefill_s` met the SLO: wait <=
// max_wait, or with a ttft SLO, wait + prefill <= ttft.
bool meets_slo(const config::SloSpec& slo, double wait_s, double prefill_s);

// Checks tide sim's --rate and --duration for a synthetic workload against the bounds of
// trace.h: a finite rate > 0, a duration within kMaxSpan, at most kMaxRequests requests expected.
// Throws SimError naming the flag.
void check_synthetic(double rate, Duration duration);

// Runs the workload to its end and every request to its outcome. Throws SimError when the
// configuration cannot run on this workload (e.g. a service-time model needing columns the trace
// lacks, or giving a request more than kMaxServiceSeconds).
SimResult simulate(const config::Config& config, RequestSource& source, const SimOptions& options);

}  // namespace tide::sim
