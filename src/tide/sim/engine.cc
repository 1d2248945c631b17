#include "tide/sim/engine.h"

#include <fmt/format.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <queue>
#include <unordered_map>

namespace tide::sim {
namespace {

using dispatch::Admit;
using dispatch::ReplicaSlot;
using dispatch::RequestId;

// ---------------------------------------------------------------------------------------------
// Sources

}  // namespace

TraceSource::TraceSource(const Trace& trace) : trace_(trace) {
  // The window ends at the last arrival rounded up to a whole minute (traces are minute-grained).
  const int64_t minute = 60'000'000'000;
  const int64_t span = trace.span.count();
  horizon_ = Duration{(span / minute + 1) * minute};
}

bool TraceSource::next(TraceRequest& out) {
  if (pos_ >= trace_.requests.size()) return false;
  out = trace_.requests[pos_++];
  return true;
}

SyntheticSource::SyntheticSource(Shape shape, double rate, Duration duration, Duration period,
                                 uint64_t seed)
    : shape_(shape),
      rate_(rate),
      duration_(duration),
      period_(period.count() > 0 ? period : std::chrono::minutes(20)),
      seed_(seed),
      poisson_(rate, duration, seed),
      thin_(seed ^ 0x5bd1e995ULL) {}

void SyntheticSource::rewind() {
  periodic_count_ = 0;
  poisson_ = PoissonSource(rate_, duration_, seed_);
  thin_ = Random(seed_ ^ 0x5bd1e995ULL);
}

std::optional<SyntheticSource::Shape> SyntheticSource::parse_shape(std::string_view name) {
  if (name == "poisson") return Shape::kPoisson;
  if (name == "bursts") return Shape::kBursts;
  if (name == "diurnal") return Shape::kDiurnal;
  if (name == "periodic") return Shape::kPeriodic;
  return std::nullopt;
}

double SyntheticSource::rate_at(Time t) const {
  const double phase = std::fmod(to_seconds(t), to_seconds(period_)) / to_seconds(period_);
  switch (shape_) {
    case Shape::kPoisson:
      return rate_;
    case Shape::kBursts:
      return phase < 0.25 ? rate_ : 0.0;
    case Shape::kDiurnal:
      return rate_ * (0.55 - 0.45 * std::cos(6.283185307179586 * phase));
    case Shape::kPeriodic:
      return rate_;
  }
  return rate_;
}

bool SyntheticSource::next(TraceRequest& out) {
  if (shape_ == Shape::kPeriodic) {
    const Time t = time_at_seconds(static_cast<double>(periodic_count_ + 1) / rate_);
    if (!(rate_ > 0) || t >= Time{duration_}) return false;
    ++periodic_count_;
    out = TraceRequest{};
    out.arrival = t;
    return true;
  }
  while (poisson_.next(out)) {
    if (shape_ == Shape::kPoisson || thin_.uniform() * rate_ < rate_at(out.arrival)) return true;
  }
  return false;
}

void check_synthetic(double rate, Duration duration) {
  if (!(rate > 0) || !std::isfinite(rate)) {
    throw SimError(fmt::format("--rate: expected requests per second > 0, got {}", rate));
  }
  if (duration <= Duration{0} || duration > kMaxSpan) {
    throw SimError(fmt::format("--duration: expected more than 0 and at most {} days, got {}",
                               kMaxSpan / std::chrono::hours(24), format_duration(duration)));
  }
  const double expected = rate * to_seconds(duration);
  if (expected > static_cast<double>(kMaxRequests)) {
    throw SimError(fmt::format(
        "--rate {:g} for --duration {} is {:.3g} requests, more than the {} a workload may hold",
        rate, format_duration(duration), expected, kMaxRequests));
  }
}

namespace {

// ---------------------------------------------------------------------------------------------
// The event loop

enum class Kind : uint8_t { kArrival, kComplete, kTick, kReady, kNoCapacity };

struct Event {
  int64_t t;
  uint64_t seq;
  Kind kind;
  uint32_t a;
  uint64_t b;
};
struct Later {
  bool operator()(const Event& x, const Event& y) const {
    return x.t != y.t ? x.t > y.t : x.seq > y.seq;
  }
};

struct Request {
  int64_t arrival;
  int64_t start;
  double service_s;
  double prefill_s;  // of service_s, before the first token
  uint32_t endpoint;
  uint32_t group;
  ReplicaSlot slot;
};

// Everything about one group that the simulator measures beside the control plane.
struct GroupStats {
  Outcomes outcomes;
  // Replicas needed if every request started on arrival: the integral of ceil(in service / c).
  std::priority_queue<int64_t, std::vector<int64_t>, std::greater<>> ideal_ends;
  int64_t ideal_last = 0;
  double ideal_integral = 0;
  double service_total_s = 0;
  int peak = 0;
  int reversals = 0;
  int last_direction = 0;
  Time last_change{};
  // Waits of requests started since the last tick.
  double tick_wait_sum = 0;
  double tick_wait_max = 0;
  uint64_t tick_wait_count = 0;
  int tick_late = 0;
  // When the run stopped ticking the group while it still held more than its minimum (an hour
  // past the end): its replicas still running are billed until then.
  Time gave_up{};
};

class Simulation;

// Receives one endpoint's request outcomes.
class EndpointSink final : public control::RequestSink {
 public:
  EndpointSink(Simulation& sim, uint32_t endpoint) : sim_(sim), endpoint_(endpoint) {}
  void on_start(RequestId request, ReplicaSlot slot, Time now) override;
  void on_timeout(RequestId request, Time deadline) override;
  void on_replica_lost(ReplicaSlot, const std::vector<RequestId>&, Time) override {}

 private:
  Simulation& sim_;
  uint32_t endpoint_;
};

class Simulation final : public control::Provisioner, public control::DecisionSink {
 public:
  Simulation(const config::Config& config, RequestSource& source, const SimOptions& options)
      : config_(config),
        source_(source),
        options_(options),
        service_rng_(service_random(options.seed)),
        cold_rng_(options.seed * 0x9e3779b97f4a7c15ULL + 3) {}

  SimResult run();

  // Provisioner: a replica waits for the cluster (pending), then boots, both drawn from the
  // group's distributions. Billing starts when it leaves the queue (a cluster charges for the
  // allocation, not the wait). A Slurm job pending past its pending_timeout fails for lack of
  // capacity, as `tide serve` reports it, and the endpoint backs off and retries or overflows.
  void launch(const control::Replica& replica, const config::GroupSpec& group,
              control::ReplicaEvents& events) override {
    events.on_replica_starting(replica.id, now_);
    Duration pending = group.pending.sample(cold_rng_);
    Duration boot = group.cold_start.sample(cold_rng_);
    if (options_.warm_start && now_ == kTimeZero) pending = boot = Duration{0};
    ready_targets_.push_back({&events, replica.id});
    const uint32_t e = endpoint_of(events);
    const size_t stats = stats_index(e, static_cast<uint32_t>(replica.group));
    const Duration timeout = config::queues_in_cluster(group.provisioner.kind)
                                 ? group.provisioner.pending_timeout
                                 : Duration{0};
    if (timeout > Duration{0} && pending > timeout) {
      billing_.push_back({stats, kTimeMax, kTimeMax, now_});  // never billed
      push(now_ + timeout, Kind::kNoCapacity, 0, ready_targets_.size() - 1);
      return;
    }
    billing_index_[replica.name] = billing_.size();
    billing_.push_back({stats, now_ + pending, kTimeMax, now_});
    push(now_ + pending + boot, Kind::kReady, 0, ready_targets_.size() - 1);
  }
  // Stopping is instant; a pending ready event finds the replica gone and does nothing.
  void stop(const control::Replica& replica) override {
    auto it = billing_index_.find(replica.name);  // "endpoint/group/id": unique in a run
    if (it != billing_index_.end()) billing_[it->second].stopped = now_;
  }

  void record(const DecisionRecord& d) override {
    GroupStats& gs = stats_[current_stats_];
    const int direction = d.to > d.from ? 1 : -1;
    if (d.time >= warmup_ && gs.last_direction != 0 && direction != gs.last_direction &&
        d.time - gs.last_change <= std::chrono::minutes(10)) {
      ++gs.reversals;
    }
    gs.last_direction = direction;
    gs.last_change = d.time;
    if (options_.record_timeline) result_.decisions.push_back(d);
  }

  void started(uint32_t endpoint, RequestId id, ReplicaSlot slot, Time now) {
    Request& r = requests_[id];
    r.start = now.time_since_epoch().count();
    r.slot = slot;
    const double wait = static_cast<double>(r.start - r.arrival) * 1e-9;
    GroupStats& gs = stats_[stats_index(endpoint, r.group)];
    gs.tick_wait_sum += wait;
    gs.tick_wait_max = std::max(gs.tick_wait_max, wait);
    ++gs.tick_wait_count;
    if (!meets_slo(config_.endpoints[endpoint].slo, wait, r.prefill_s)) ++gs.tick_late;
    endpoints_[endpoint]->observe_prefill(from_seconds(r.prefill_s));
    push(now + from_seconds(r.service_s), Kind::kComplete, endpoint, id);
  }

  void timed_out(uint32_t endpoint, RequestId id) {
    const Request& r = requests_[id];
    GroupStats& gs = stats_[stats_index(endpoint, r.group)];
    if (measured(r.arrival)) ++gs.outcomes.timed_out;
    ++gs.tick_late;
    --in_system_;
    release(id);
  }

 private:
  uint32_t endpoint_of(const control::ReplicaEvents& events) const {
    for (uint32_t e = 0; e < endpoints_.size(); ++e)
      if (static_cast<const control::ReplicaEvents*>(endpoints_[e].get()) == &events) return e;
    return 0;
  }
  size_t stats_index(uint32_t endpoint, uint32_t group) const {
    return group_base_[endpoint] + group;
  }
  void push(Time t, Kind kind, uint32_t a, uint64_t b) {
    events_.push({t.time_since_epoch().count(), seq_++, kind, a, b});
  }
  RequestId allocate() {
    if (!free_.empty()) {
      const RequestId id = free_.back();
      free_.pop_back();
      return id;
    }
    requests_.emplace_back();
    return requests_.size() - 1;
  }
  void release(RequestId id) { free_.push_back(id); }

  void validate();
  bool measured(int64_t arrival_ns) const {
    return arrival_ns >= warmup_.time_since_epoch().count();
  }
  // Seconds of [from, to) that fall after the warm-up.
  double measured_span(int64_t from, int64_t to) const {
    from = std::max(from, warmup_.time_since_epoch().count());
    return to > from ? static_cast<double>(to - from) * 1e-9 : 0.0;
  }
  // The steps of run(): endpoints, first ticks and arrival; the event loop; a group's figures.
  void set_up();
  void run_events();
  void handle(const Event& ev);
  GroupResult group_result(uint32_t endpoint, uint32_t group, Time end);
  void schedule_next_arrival();
  void on_arrival();
  void on_complete(uint32_t endpoint, RequestId id);
  void on_tick(uint32_t endpoint, uint32_t group);
  void ideal_advance(GroupStats& gs, int concurrency, int64_t t);
  uint32_t route(uint32_t endpoint);

  const config::Config& config_;
  RequestSource& source_;
  const SimOptions& options_;
  Random service_rng_;
  Random cold_rng_;

  std::priority_queue<Event, std::vector<Event>, Later> events_;
  uint64_t seq_ = 0;
  Time now_{};
  Time horizon_{};
  std::vector<Request> requests_;
  std::vector<RequestId> free_;
  std::vector<std::unique_ptr<EndpointSink>> sinks_;
  std::vector<std::unique_ptr<control::Endpoint>> endpoints_;
  std::vector<uint32_t> stream_to_endpoint_;
  std::vector<size_t> group_base_;
  std::vector<GroupStats> stats_;
  std::vector<std::pair<control::ReplicaEvents*, uint64_t>> ready_targets_;
  size_t current_stats_ = 0;
  TraceRequest next_{};
  bool has_next_ = false;
  uint64_t in_system_ = 0;  // requests arrived and not yet finished
  Time last_completion_{};
  Time warmup_{};  // statistics start here
  // Billing intervals of every replica, clipped to the measured window at the end.
  struct Billing {
    size_t stats;
    Time requested;  // billed from here: out of the cluster's queue
    Time stopped;
    Time launched;
  };
  std::vector<Billing> billing_;
  std::unordered_map<std::string, size_t> billing_index_;
  SimResult result_;
};

void EndpointSink::on_start(RequestId request, ReplicaSlot slot, Time now) {
  sim_.started(endpoint_, request, slot, now);
}
void EndpointSink::on_timeout(RequestId request, Time) { sim_.timed_out(endpoint_, request); }

void Simulation::validate() { stream_to_endpoint_ = check_workload(config_, source_); }

uint32_t Simulation::route(uint32_t endpoint) {
  // The endpoint's own routing (split / overflow), as in production.
  return static_cast<uint32_t>(endpoints_[endpoint]->route(0, now_));
}

void Simulation::schedule_next_arrival() {
  has_next_ = source_.next(next_);
  if (has_next_) push(next_.arrival, Kind::kArrival, 0, 0);
}

void Simulation::ideal_advance(GroupStats& gs, int concurrency, int64_t t) {
  auto replicas = [concurrency](size_t n) {
    return static_cast<double>((n + static_cast<size_t>(concurrency) - 1) /
                               static_cast<size_t>(concurrency));
  };
  while (!gs.ideal_ends.empty() && gs.ideal_ends.top() <= t) {
    const int64_t end = gs.ideal_ends.top();
    gs.ideal_integral += replicas(gs.ideal_ends.size()) * measured_span(gs.ideal_last, end);
    gs.ideal_last = end;
    gs.ideal_ends.pop();
  }
  gs.ideal_integral += replicas(gs.ideal_ends.size()) * measured_span(gs.ideal_last, t);
  gs.ideal_last = t;
}

void Simulation::on_arrival() {
  const TraceRequest req = next_;
  const uint32_t endpoint =
      req.stream < stream_to_endpoint_.size() ? stream_to_endpoint_[req.stream] : 0;
  const uint32_t group = route(endpoint);
  const config::GroupSpec& spec = config_.endpoints[endpoint].groups[group];
  const RequestId id = allocate();
  Request& r = requests_[id];
  r.arrival = now_.time_since_epoch().count();
  r.start = -1;
  r.service_s = draw_service_time(spec, req, service_rng_);
  if (!(r.service_s >= 0 && r.service_s <= kMaxServiceSeconds)) {
    throw SimError(fmt::format(
        "endpoint \"{}\" group \"{}\": service_time gave a request arriving at {:.3f} s a "
        "service time of {:g} s; at most {:g} s is allowed",
        config_.endpoints[endpoint].name, spec.name, to_seconds(now_), r.service_s,
        kMaxServiceSeconds));
  }
  r.prefill_s = std::min(prefill_time(spec, req), r.service_s);
  r.endpoint = endpoint;
  r.group = group;
  r.slot = dispatch::kNoSlot;
  GroupStats& gs = stats_[stats_index(endpoint, group)];
  const bool counted = measured(r.arrival);
  if (counted) {
    ++gs.outcomes.total;
    gs.service_total_s += r.service_s;
  }
  ideal_advance(gs, spec.concurrency, r.arrival);
  gs.ideal_ends.push(r.arrival + from_seconds(r.service_s).count());
  ++in_system_;
  const Admit admit = endpoints_[endpoint]->submit(id, static_cast<int>(group), now_);
  if (admit == Admit::kRejectedQueueFull || admit == Admit::kRejectedNoReplica) {
    if (counted) ++gs.outcomes.rejected;
    --in_system_;
    release(id);
  }
  schedule_next_arrival();
}

void Simulation::on_complete(uint32_t endpoint, RequestId id) {
  const Request r = requests_[id];
  const config::EndpointSpec& ep = config_.endpoints[endpoint];
  GroupStats& gs = stats_[stats_index(endpoint, r.group)];
  const double wait = static_cast<double>(r.start - r.arrival) * 1e-9;
  const double e2e = static_cast<double>(now_.time_since_epoch().count() - r.arrival) * 1e-9;
  if (measured(r.arrival)) {
    ++gs.outcomes.ok;
    if (meets_slo(ep.slo, wait, r.prefill_s)) ++gs.outcomes.slo_met;
    gs.outcomes.wait_s.record(wait);
    gs.outcomes.ttft_s.record(wait + r.prefill_s);
    gs.outcomes.e2e_s.record(e2e);
  }
  --in_system_;
  last_completion_ = now_;
  release(id);
  endpoints_[endpoint]->complete(r.slot, now_, from_seconds(r.service_s));
}

void Simulation::on_tick(uint32_t endpoint, uint32_t group) {
  control::Endpoint& ep = *endpoints_[endpoint];
  current_stats_ = stats_index(endpoint, group);
  GroupStats& gs = stats_[current_stats_];
  const policy::Observation& o = ep.tick(static_cast<int>(group), now_);
  const control::GroupStatus st = ep.status(static_cast<int>(group));
  if (now_ >= warmup_) gs.peak = std::max(gs.peak, st.starting + st.ready + st.draining);
  if (options_.record_timeline) {
    result_.timeline.push_back(
        {.t_s = to_seconds(now_),
         .endpoint = static_cast<uint16_t>(endpoint),
         .group = static_cast<uint16_t>(group),
         .desired = st.desired,
         .starting = st.starting,
         .ready = st.ready,
         .draining = st.draining,
         .queued = st.queued,
         .in_service = st.in_flight,
         .gpu_util = o.utilization(),
         .wait_mean_s = gs.tick_wait_count == 0
                            ? 0.0
                            : gs.tick_wait_sum / static_cast<double>(gs.tick_wait_count),
         .wait_max_s = gs.tick_wait_max,
         .load = o.load,
         .late = gs.tick_late});
  }
  gs.tick_wait_sum = gs.tick_wait_max = 0;
  gs.tick_wait_count = 0;
  gs.tick_late = 0;
  // Keep ticking while the workload runs or work remains; then the run ends.
  const Duration tick = config_.endpoints[endpoint].groups[group].scaling.tick;
  // After the workload, keep ticking until the group has scaled back to its minimum (so the
  // decisions show the whole story), for at most an hour past the end.
  const bool above_min =
      st.starting + st.ready + st.draining > config_.endpoints[endpoint].groups[group].min_replicas;
  if (now_ < horizon_ || in_system_ > 0 || has_next_ ||
      (above_min && now_ < horizon_ + std::chrono::hours(1))) {
    push(now_ + tick, Kind::kTick, endpoint, group);
  } else if (above_min) {
    gs.gave_up = now_;
  }
}

void Simulation::set_up() {
  horizon_ = Time{source_.horizon()};
  warmup_ = Time{options_.warmup};
  if (warmup_ >= horizon_) throw SimError("the warm-up is as long as the whole workload");
  for (uint32_t e = 0; e < config_.endpoints.size(); ++e) {
    sinks_.push_back(std::make_unique<EndpointSink>(*this, e));
    group_base_.push_back(stats_.size());
    stats_.resize(stats_.size() + config_.endpoints[e].groups.size());
  }
  for (uint32_t e = 0; e < config_.endpoints.size(); ++e) {
    endpoints_.push_back(
        std::make_unique<control::Endpoint>(config_.endpoints[e], *this, *sinks_[e], this, now_));
  }
  // First ticks at time zero (min replicas come up warm), then the workload.
  for (uint32_t e = 0; e < config_.endpoints.size(); ++e)
    for (uint32_t g = 0; g < config_.endpoints[e].groups.size(); ++g) push(now_, Kind::kTick, e, g);
  schedule_next_arrival();
}

void Simulation::handle(const Event& ev) {
  switch (ev.kind) {
    case Kind::kArrival:
      on_arrival();
      break;
    case Kind::kComplete:
      on_complete(ev.a, ev.b);
      break;
    case Kind::kTick:
      on_tick(ev.a, static_cast<uint32_t>(ev.b));
      break;
    case Kind::kReady: {
      auto [events, id] = ready_targets_[ev.b];
      events->on_replica_ready(id, now_, "");
      break;
    }
    case Kind::kNoCapacity: {
      auto [events, id] = ready_targets_[ev.b];
      events->on_replica_failed(id, now_, "no capacity: still pending after pending_timeout");
      break;
    }
  }
}

void Simulation::run_events() {
  uint64_t handled = 0;
  const double horizon_s = std::max(1e-9, to_seconds(horizon_));
  while (!events_.empty()) {
    const Event ev = events_.top();
    events_.pop();
    now_ = Time{Duration{ev.t}};
    handle(ev);
    if (options_.progress && (++handled & 0xFFFFF) == 0)
      options_.progress(std::min(1.0, to_seconds(now_) / horizon_s));
  }
  if (options_.progress) options_.progress(1.0);
}

GroupResult Simulation::group_result(uint32_t e, uint32_t g, Time end) {
  const config::EndpointSpec& ep = config_.endpoints[e];
  const config::GroupSpec& spec = ep.groups[g];
  GroupStats& gs = stats_[stats_index(e, g)];
  ideal_advance(gs, spec.concurrency, end.time_since_epoch().count());
  GroupResult gr;
  gr.endpoint = ep.name;
  gr.group = spec.name;
  gr.outcomes = gs.outcomes;
  for (const Billing& b : billing_) {
    if (b.stats != stats_index(e, g)) continue;
    const Time from = std::max(b.requested, warmup_);
    const Time to = b.stopped == kTimeMax ? std::max(end, gs.gave_up) : b.stopped;
    if (to > from) gr.replica_seconds += to_seconds(to - from);
    if (to > end) gr.after_end_replica_seconds += to_seconds(to - std::max(from, end));
    if (b.launched >= warmup_) ++gr.launches;
  }
  gr.zero_wait_replica_seconds = gs.ideal_integral;
  gr.service_s = gs.service_total_s;
  gr.price(spec);
  gr.peak_replicas = gs.peak;
  gr.scale_reversals = gs.reversals;
  const auto& cs = endpoints_[e]->cold_starts(static_cast<int>(g));
  double sum = 0;
  for (double c : cs) sum += c;
  gr.cold_start_mean_s = cs.empty() ? 0.0 : sum / static_cast<double>(cs.size());
  return gr;
}

SimResult Simulation::run() {
  validate();
  const auto wall_start = std::chrono::steady_clock::now();
  set_up();
  run_events();
  // Each replica is billed until it stops, also after the last request; one still running when
  // the loop ends until the end of the workload or of its last request where its group was at its
  // minimum, and until the loop gave up on it (an hour past the end) where it was above it: a
  // policy that never releases must not cost less than one that releases late.
  const Time end = std::max(last_completion_, horizon_);
  SimResult& res = result_;
  res.span_s = to_seconds(end);
  res.warmup_s = to_seconds(warmup_);
  for (uint32_t e = 0; e < config_.endpoints.size(); ++e) {
    for (uint32_t g = 0; g < config_.endpoints[e].groups.size(); ++g)
      res.add_group(group_result(e, g, end));
  }
  res.max_wait_s = to_seconds(config_.endpoints.front().slo.max_wait);
  res.ttft_s = to_seconds(config_.endpoints.front().slo.ttft.value_or(Duration{0}));
  res.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  res.requests_per_s = res.wall_s > 0 ? static_cast<double>(res.outcomes.total) / res.wall_s : 0.0;
  return std::move(res);
}

}  // namespace

std::vector<uint32_t> check_workload(const config::Config& config, const RequestSource& source) {
  const auto& streams = source.streams();
  const auto& eps = config.endpoints;
  std::vector<uint32_t> stream_to_endpoint;
  // Streams go to the endpoint of the same name; with one endpoint, everything goes there.
  for (size_t s = 0; s < streams.size(); ++s) {
    auto it = std::find_if(eps.begin(), eps.end(),
                           [&](const config::EndpointSpec& e) { return e.name == streams[s]; });
    if (it != eps.end()) {
      stream_to_endpoint.push_back(static_cast<uint32_t>(it - eps.begin()));
    } else if (eps.size() == 1) {
      stream_to_endpoint.push_back(0);
    } else {
      throw SimError(fmt::format(
          "trace stream \"{}\" matches no endpoint; name endpoints after the trace's streams or "
          "use a config with one endpoint",
          streams[s]));
    }
  }
  for (const auto& ep : eps) {
    for (const auto& g : ep.groups) {
      const auto& m = g.service_time;
      const std::string where = fmt::format("endpoint {} group {}", ep.name, g.name);
      if (m.kind == config::ServiceTimeModel::Kind::kTrace && !source.has_duration()) {
        throw SimError(where +
                       ": service_time takes durations from the trace, but this workload has "
                       "none; set service_time (fixed, lognormal or tokens) or --duration-col");
      }
      if (m.kind == config::ServiceTimeModel::Kind::kTokens && !source.has_tokens()) {
        throw SimError(where +
                       ": service_time model tokens needs token counts, but this workload has "
                       "none; pass --input-tokens-col / --output-tokens-col");
      }
    }
  }
  return stream_to_endpoint;
}

Random service_random(uint64_t seed) { return Random(seed * 0x9e3779b97f4a7c15ULL + 1); }

double draw_service_time(const config::GroupSpec& group, const TraceRequest& req, Random& rng) {
  const auto& m = group.service_time;
  switch (m.kind) {
    case config::ServiceTimeModel::Kind::kFixed:
      return to_seconds(m.value);
    case config::ServiceTimeModel::Kind::kLognormal:
      return rng.lognormal(to_seconds(m.median), m.sigma);
    case config::ServiceTimeModel::Kind::kTokens:
      return to_seconds(m.base) + m.prefill_s * std::max(0, req.input_tokens) +
             m.decode_s * std::max(0, req.output_tokens);
    case config::ServiceTimeModel::Kind::kTrace:
      return std::isnan(req.duration_s) ? 0.0 : req.duration_s;
  }
  return 0.0;
}

double prefill_time(const config::GroupSpec& group, const TraceRequest& req) {
  const auto& m = group.service_time;
  if (m.kind != config::ServiceTimeModel::Kind::kTokens) return 0.0;
  return to_seconds(m.base) + m.prefill_s * std::max(0, req.input_tokens);
}

bool meets_slo(const config::SloSpec& slo, double wait_s, double prefill_s) {
  if (slo.ttft) return wait_s + prefill_s <= to_seconds(*slo.ttft);
  return wait_s <= to_seconds(slo.max_wait);
}

void Outcomes::merge(const Outcomes& o) {
  total += o.total;
  ok += o.ok;
  rejected += o.rejected;
  timed_out += o.timed_out;
  slo_met += o.slo_met;
  wait_s.merge(o.wait_s);
  e2e_s.merge(o.e2e_s);
  ttft_s.merge(o.ttft_s);
}

void GroupResult::price(const config::GroupSpec& spec) {
  work_bound_replica_seconds = service_s / spec.concurrency;
  priced = spec.price.has_value();
  cost = replica_seconds / 3600.0 * spec.price.value_or(0.0);
}

void SimResult::add_group(GroupResult g) {
  outcomes.merge(g.outcomes);
  replica_seconds += g.replica_seconds;
  after_end_replica_seconds += g.after_end_replica_seconds;
  zero_wait_replica_seconds += g.zero_wait_replica_seconds;
  work_bound_replica_seconds += g.work_bound_replica_seconds;
  cost += g.cost;
  priced = priced || g.priced;
  launches += g.launches;
  peak_replicas += g.peak_replicas;
  scale_reversals += g.scale_reversals;
  groups.push_back(std::move(g));
}

SimResult simulate(const config::Config& config, RequestSource& source, const SimOptions& options) {
  Simulation sim(config, source, options);
  return sim.run();
}

}  // namespace tide::sim
