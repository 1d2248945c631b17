#include "tide/sim/engine.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <vector>

#include "tide/common/random.h"

#include "tide/sim/arrivals.h"
#include "tide/sim/report.h"
#include "tide/sim/sim_test_util.h"

namespace tide::sim {
namespace {

using namespace std::chrono_literals;

TEST(Simulator, ViewComfyExampleOneStartsFourReplicasAtOnce) {
  // Seed 004, example 1: queue size 1, max 4, 10 requests at once, from zero.
  const auto c = one_group(queue_policy(1), 4, 1, 20s, 10s);
  const Trace t = arrivals({0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  const SimResult r = run(c, t);
  EXPECT_EQ(r.launches, 4u);
  EXPECT_EQ(r.peak_replicas, 4);
  EXPECT_EQ(r.outcomes.ok, 10u);
  ASSERT_FALSE(r.decisions.empty());
  EXPECT_EQ(r.decisions.front().from, 0);
  EXPECT_EQ(r.decisions.front().to, 4);
  // All four come up together; each then works through the queue, then all stop after idling.
  EXPECT_EQ(r.decisions.back().to, 0);
}

TEST(Simulator, ViewComfyExampleTwoStartsASecondReplicaOnlyForTheSecondPair) {
  // Seed 004, example 2: queue size 2. Two requests start one GPU; two more arriving before the
  // first finishes make the queue 3 and start a second one.
  const auto c = one_group(queue_policy(2), 4, 1, 10s, 30s);
  const SimResult r = run(c, arrivals({0, 0, 15, 15}));
  ASSERT_GE(r.decisions.size(), 2u);
  EXPECT_EQ(r.decisions[0].from, 0);
  EXPECT_EQ(r.decisions[0].to, 1);
  EXPECT_EQ(r.decisions[1].from, 1);
  EXPECT_EQ(r.decisions[1].to, 2);
  EXPECT_EQ(r.launches, 2u);
  EXPECT_EQ(r.outcomes.ok, 4u);
}

TEST(Simulator, ViewComfyExampleOneBillsTheSeedsReplicaSeconds) {
  // Seed 004, example 1 with 60 s jobs and an instant start: four GPUs take the ten jobs; two
  // run three (0-180 s), two run two (0-120 s); each turns off after 30 s idle. 210 + 210 + 150
  // + 150 = 720 replica-seconds (billing stopped at the last completion gave 660).
  const auto c = one_group(queue_policy(1), 4, 1, 0s, 60s);
  const SimResult r = run(c, arrivals({0, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(r.outcomes.ok, 10u);
  EXPECT_EQ(r.launches, 4u);
  EXPECT_DOUBLE_EQ(r.replica_seconds, 720.0);
}

TEST(Simulator, ViewComfyExampleTwoBillsTheSeedsReplicaSeconds) {
  // Seed 004, example 2 (queue size 2) with 60 s jobs: two at 0 start one GPU (busy 0-120 s),
  // two more at 30 s make the queue 3 and start a second (busy 30-150 s); each turns off after
  // 30 s idle: 150 + 150 = 300 replica-seconds.
  auto spec = queue_policy(2);
  const auto c = one_group(spec, 4, 1, 0s, 60s);
  const SimResult r = run(c, arrivals({0, 0, 30, 30}));
  EXPECT_EQ(r.outcomes.ok, 4u);
  EXPECT_EQ(r.launches, 2u);
  EXPECT_DOUBLE_EQ(r.replica_seconds, 300.0);
}

TEST(Simulator, AReplicaIsBilledUntilItStopsAfterTheLastRequest) {
  // One 10 s request; the replica idles 120 s before it stops, well past the workload's end
  // (the last arrival rounded up to a minute).
  auto spec = queue_policy(1);
  spec.queue.idle_timeout = 120s;
  const SimResult r = run(one_group(spec, 1, 1, 0s, 10s), arrivals({0}));
  EXPECT_DOUBLE_EQ(r.replica_seconds, 130.0);
  // Launched at the first tick (1 s), idle from 11 s, stopped at 131 s: 71 s past the end at 60 s.
  EXPECT_DOUBLE_EQ(r.after_end_replica_seconds, 71.0);
  ASSERT_EQ(r.groups.size(), 1u);
  EXPECT_DOUBLE_EQ(r.groups[0].after_end_replica_seconds, 71.0);
  // A replica that never stops (the group's minimum) is billed to the end of the workload.
  auto kept = one_group(spec, 1, 1, 0s, 10s);
  kept.endpoints[0].groups[0].min_replicas = 1;
  const SimResult k = run(kept, arrivals({0}));
  EXPECT_DOUBLE_EQ(k.replica_seconds, 60.0);
  EXPECT_DOUBLE_EQ(k.after_end_replica_seconds, 0.0);
  // One above the minimum that idles longer than the run waits for it (an hour past the end) is
  // billed until the run gave up: never releasing must not cost less than releasing late.
  auto idles_long = spec;
  idles_long.queue.idle_timeout = 3h;
  const SimResult h = run(one_group(idles_long, 1, 1, 0s, 10s), arrivals({0}));
  EXPECT_GE(h.after_end_replica_seconds, 3600.0);
  EXPECT_LE(h.after_end_replica_seconds, 3602.0);
}

TEST(Simulator, TideStopsSoonAfterBatchesAtRandomEnd) {
  // Batches of 100 within a second at exponential gaps of 5 s for two hours: some batch falls at
  // the same point of some period in each of the last cycles by chance. That is no recurring
  // rise to pre-warm for: once the batches stop, the group stops within minutes, not after
  // a pre-warm has held its whole fleet for a quarter of an hour.
  config::ScalingSpec tide;
  tide.policy = config::PolicyKind::kTide;
  auto c = one_group(tide, 40, 16, 10s, 5s);
  c.endpoints[0].slo.max_wait = 200ms;
  c.endpoints[0].queue.max_length = 100000;
  BatchSource batches({100, 1s, 5s, true}, 2h, 7);
  const SimResult r = run(c, collect(batches));
  EXPECT_EQ(r.outcomes.ok, r.outcomes.total);
  const double fleet = r.replica_seconds / to_seconds(2h);
  EXPECT_LT(r.after_end_replica_seconds, fleet * 300) << "more than 5 minutes of the fleet";
}

TEST(Simulator, HfPresetFailsRequestsWhileScalingFromZero) {
  // Seed 001: no queue, 502 while the replica initializes.
  auto spec = config::preset_spec("hf");
  ASSERT_TRUE(spec.has_value());
  const auto c = one_group(*spec, 4, 8, 60s, 1s);
  const SimResult r = run(c, arrivals({0, 1, 2, 30, 59, 120, 121}));
  EXPECT_EQ(r.outcomes.rejected, 5u);  // everything before the replica is ready at ~60 s
  EXPECT_EQ(r.outcomes.ok, 2u);
  EXPECT_EQ(r.launches, 1u);
}

TEST(Simulator, TideHoldsRequestsThroughAColdStartInsteadOfFailingThem) {
  auto spec = config::preset_spec("tide");
  ASSERT_TRUE(spec.has_value());
  const auto c = one_group(*spec, 4, 8, 60s, 1s);
  const SimResult r = run(c, arrivals({0, 1, 2, 30, 59, 120, 121}));
  EXPECT_EQ(r.outcomes.rejected, 0u);
  EXPECT_EQ(r.outcomes.timed_out, 0u);
  EXPECT_EQ(r.outcomes.ok, 7u);
  EXPECT_NEAR(r.outcomes.wait_s.max(), 60.0, 1.01);  // the first request waited the cold start
}

TEST(Simulator, ClusterPendingTimeDelaysTheReplicaButIsNotBilled) {
  // 20 s queued in the cluster + 40 s boot: requests wait as for a 60 s cold start, but only the
  // 40 s of boot and what follows are billed.
  auto plain = one_group(queue_policy(1), 1, 1, 60s, 10s);
  auto cluster = one_group(queue_policy(1), 1, 1, 40s, 10s);
  cluster.endpoints[0].groups[0].pending.value = 20s;
  const Trace t = arrivals({0});
  const SimResult a = run(plain, t);
  const SimResult b = run(cluster, t);
  EXPECT_EQ(b.outcomes.ok, 1u);
  EXPECT_DOUBLE_EQ(b.outcomes.wait_s.max(), a.outcomes.wait_s.max());
  EXPECT_NEAR(b.outcomes.wait_s.max(), 60.0, 1.01);        // + up to one tick before the launch
  EXPECT_NEAR(b.groups[0].cold_start_mean_s, 60.0, 1e-9);  // launch to ready, as observed
  EXPECT_NEAR(a.replica_seconds - b.replica_seconds, 20.0, 1e-6);
}

TEST(Simulator, SlurmJobPendingPastItsTimeoutFailsAndOverflowServesMeanwhile) {
  // The cluster has no room for an hour; after 2 min a job gives up ("no capacity") and is
  // retried after a backoff. Overflow sends the requests to the second group meanwhile.
  auto c = one_group(queue_policy(1), 2, 1, 10s, 5s);
  config::GroupSpec& slurm = c.endpoints[0].groups[0];
  slurm.name = "slurm";
  slurm.provisioner.kind = "slurm";
  slurm.provisioner.pending_timeout = 2min;
  slurm.pending.value = 1h;
  config::GroupSpec cloud = slurm;
  cloud.name = "cloud";
  cloud.provisioner.kind = "local";
  cloud.pending.value = 0s;
  c.endpoints[0].groups.push_back(cloud);
  c.endpoints[0].routing.mode = config::RoutingSpec::Mode::kOverflow;
  std::vector<double> times;
  for (int i = 0; i < 60; ++i) times.push_back(i * 10.0);  // one every 10 s for 10 min
  Trace t;
  t.streams = {"test"};
  for (double x : times) t.requests.push_back({.arrival = time_at_seconds(x)});
  t.span = t.requests.back().arrival.time_since_epoch();
  const SimResult r = run(c, t);
  ASSERT_EQ(r.groups.size(), 2u);
  EXPECT_EQ(r.outcomes.ok, 60u);
  EXPECT_EQ(r.outcomes.timed_out, 0u);
  EXPECT_GE(r.groups[0].launches, 2u);                 // gave up and tried again
  EXPECT_DOUBLE_EQ(r.groups[0].replica_seconds, 0.0);  // never got a node, never billed
  EXPECT_EQ(r.groups[0].outcomes.ok, 0u);
  EXPECT_GT(r.groups[1].outcomes.ok, 50u);
}

TEST(Simulator, QueueFullRejectsAndHeldTooLongTimesOut) {
  auto c = one_group(queue_policy(1), 1, 1, 100s, 1s);
  c.endpoints[0].queue.max_length = 2;
  c.endpoints[0].queue.timeout = 10s;
  const SimResult r = run(c, arrivals({0, 0, 0, 0, 0}));
  EXPECT_EQ(r.outcomes.rejected, 3u);
  EXPECT_EQ(r.outcomes.timed_out, 2u);
  EXPECT_EQ(r.outcomes.ok, 0u);
  int late = 0;  // the timeline counts the two held past their timeout as late, at 10 s
  for (const TimelineRow& row : r.timeline) {
    if (row.late > 0) {
      EXPECT_NEAR(row.t_s, 10, 1.01);
    }
    late += row.late;
  }
  EXPECT_EQ(late, 2);
}

TEST(Simulator, OneLongRequestReadsAsFullUtilizationWithSevenFreeSlots) {
  // Seed 000: a single 8 s request every 10 s pegs nvidia-smi while 7 of 8 slots are idle.
  config::ScalingSpec s = queue_policy(1);
  auto c = one_group(s, 4, 8, 0s, 8s);
  c.endpoints[0].groups[0].min_replicas = 1;
  std::initializer_list<double> times = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90};
  const SimResult r = run(c, arrivals(times));
  double util_sum = 0, in_service_max = 0;
  int n = 0;
  for (const TimelineRow& row : r.timeline) {
    if (row.t_s < 1 || row.t_s > 100) continue;
    util_sum += row.gpu_util;
    in_service_max = std::max<double>(in_service_max, row.in_service);
    ++n;
  }
  EXPECT_NEAR(util_sum / n, 0.8, 0.05);
  EXPECT_EQ(in_service_max, 1);
}

TEST(Simulator, TheTimelineCountsTheRequestsThatStartedBeyondTheSlo) {
  // One slot, 10 s jobs, three at once, SLO wait 2 s: the second starts at 10 s and the third
  // at 20 s, both late; the timeline says when.
  auto c = one_group(queue_policy(1), 1, 1, 0s, 10s);
  c.endpoints[0].groups[0].min_replicas = 1;
  const SimResult r = run(c, arrivals({0, 0, 0}));
  ASSERT_EQ(r.outcomes.total - r.outcomes.slo_met, 2u);
  std::vector<double> late_at;
  for (const TimelineRow& row : r.timeline) {
    for (int i = 0; i < row.late; ++i) late_at.push_back(row.t_s);
  }
  ASSERT_EQ(late_at.size(), 2u);
  EXPECT_NEAR(late_at[0], 10, 1.01);
  EXPECT_NEAR(late_at[1], 20, 1.01);
}

TEST(Simulator, TheSeedsCaseUtilizationAddsReplicasLoadHoldsOne) {
  // Seed 003: 8 s requests one at a time every 10 s on a 4-slot replica, HPA target 0.7.
  auto scaling = [](config::Metric metric) {
    config::ScalingSpec s;
    s.policy = config::PolicyKind::kTarget;
    s.target.metric = metric;
    s.target.target = 0.7;
    return s;
  };
  SyntheticSource every_10s(SyntheticSource::Shape::kPeriodic, 0.1, 1h, 0s, 1);
  auto simulate_with = [&](config::Metric metric) {
    auto c = one_group(scaling(metric), 4, 4, 60s, 8s);
    c.endpoints[0].groups[0].min_replicas = 1;
    every_10s.rewind();
    return simulate(c, every_10s, SimOptions{});
  };
  const SimResult util = simulate_with(config::Metric::kUtilization);
  const SimResult load = simulate_with(config::Metric::kLoad);
  EXPECT_EQ(util.outcomes.total, 359u);
  EXPECT_GE(util.peak_replicas, 2);  // replicas it does not need
  EXPECT_GT(util.replica_seconds, 1.5 * 3600);
  EXPECT_EQ(load.peak_replicas, 1);  // one replica, no wait
  EXPECT_NEAR(load.replica_seconds, 3600, 20);
  EXPECT_EQ(load.outcomes.wait_s.max(), 0.0);
  double load_sum = 0;
  int n = 0;
  for (const TimelineRow& row : load.timeline) {
    if (row.t_s < 600) continue;
    load_sum += row.load;
    ++n;
  }
  EXPECT_NEAR(load_sum / n, 0.25, 0.05);  // the signal itself: a quarter of the capacity
}

TEST(Simulator, LowerBoundsOfReplicaSeconds) {
  const auto c = one_group(queue_policy(1), 4, 1, 0s, 10s);
  // [0,10) and [5,15) on one slot each: ideal replicas 1, 2, 1 over 5 s pieces.
  const SimResult r = run(c, arrivals({0, 5}));
  EXPECT_NEAR(r.zero_wait_replica_seconds, 20.0, 1e-6);
  EXPECT_NEAR(r.work_bound_replica_seconds, 20.0, 1e-6);
}

TEST(Simulator, SameSeedSameResultBitForBit) {
  auto spec = config::preset_spec("tide");
  ASSERT_TRUE(spec.has_value());
  config::Config c = one_group(*spec, 8, 4, 30s, 1s);
  c.endpoints[0].groups[0].service_time.kind = config::ServiceTimeModel::Kind::kLognormal;
  c.endpoints[0].groups[0].service_time.median = 2s;
  c.endpoints[0].groups[0].service_time.sigma = 0.7;
  auto summary = [&](uint64_t seed) {
    SyntheticSource source(SyntheticSource::Shape::kBursts, 5, 30min, 10min, seed);
    SimOptions o;
    o.seed = seed;
    SimResult r = simulate(c, source, o);
    r.wall_s = r.requests_per_s = 0;
    return summary_json(r);
  };
  const std::string a = summary(7);
  EXPECT_EQ(a, summary(7));
  EXPECT_NE(a, summary(8));
}

TEST(Simulator, TokensModelWithoutTokenColumnsIsAClearError) {
  auto c = one_group(queue_policy(1), 1, 1, 0s, 1s);
  c.endpoints[0].groups[0].service_time.kind = config::ServiceTimeModel::Kind::kTokens;
  SyntheticSource source(SyntheticSource::Shape::kPoisson, 1, 1min, 0s, 1);
  try {
    simulate(c, source, {});
    FAIL() << "expected SimError";
  } catch (const SimError& e) {
    EXPECT_NE(std::string(e.what()).find("endpoint chat group gpu: service_time model tokens"),
              std::string::npos)
        << e.what();
  }
}

TEST(Simulator, SyntheticFlagsBeyondTheBoundsAreRefused) {
  auto message = [](double rate, Duration duration) -> std::string {
    try {
      check_synthetic(rate, duration);
    } catch (const SimError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(message(5, 1h), "");
  EXPECT_EQ(message(0, 1h), "--rate: expected requests per second > 0, got 0");
  EXPECT_EQ(message(-1, 1h), "--rate: expected requests per second > 0, got -1");
  EXPECT_EQ(message(std::numeric_limits<double>::infinity(), 1h),
            "--rate: expected requests per second > 0, got inf");
  EXPECT_EQ(message(std::numeric_limits<double>::quiet_NaN(), 1h),
            "--rate: expected requests per second > 0, got nan");
  EXPECT_EQ(message(5, std::chrono::seconds(1'000'000'000)),
            "--duration: expected more than 0 and at most 31 days, got 1e+09s");
  EXPECT_EQ(message(5, 0s), "--duration: expected more than 0 and at most 31 days, got 0s");
  EXPECT_EQ(message(1e15, 1s),
            "--rate 1e+15 for --duration 1s is 1e+15 requests, more than the 1000000000 a "
            "workload may hold");
  EXPECT_EQ(message(100, 24h * 31), "");
}

// A service time beyond a day (1e15 s overflowed the nanosecond clock: ok=3, p99 7 s) stops the
// run with the group named instead of a wrong result.
TEST(Simulator, AServiceTimeBeyondADayIsAnErrorNotAWrongResult) {
  auto c = one_group(queue_policy(1), 1, 1, 0s, 1s);
  auto& model = c.endpoints[0].groups[0].service_time;
  model.kind = config::ServiceTimeModel::Kind::kTrace;
  Trace t = arrivals({0, 1, 2});
  t.has_duration = true;
  t.requests[1].duration_s = 1e15;
  try {
    run(c, t);
    FAIL() << "expected SimError";
  } catch (const SimError& e) {
    EXPECT_EQ(std::string(e.what()),
              "endpoint \"chat\" group \"gpu\": service_time gave a request arriving at "
              "1.000 s a service time of 1e+15 s; at most 86400 s is allowed");
  }
}

TEST(Simulator, SyntheticShapesHaveTheirRates) {
  SyntheticSource poisson(SyntheticSource::Shape::kPoisson, 10, 1h, 0s, 3);
  SyntheticSource bursts(SyntheticSource::Shape::kBursts, 10, 1h, 20min, 3);
  TraceRequest r;
  int n = 0, m = 0, off_period = 0;
  while (poisson.next(r)) ++n;
  while (bursts.next(r)) {
    ++m;
    if (std::fmod(to_seconds(r.arrival), 1200.0) >= 300.0) ++off_period;
  }
  EXPECT_NEAR(n, 36000, 600);
  EXPECT_NEAR(m, 9000, 300);
  EXPECT_EQ(off_period, 0);
}

// A workload with token counts: requests at `at` (seconds), each `input` prompt tokens and
// `output` answer tokens.
Trace token_arrivals(const std::vector<double>& at, int input, int output) {
  Trace t;
  t.streams = {"test"};
  t.has_tokens = true;
  for (double s : at)
    t.requests.push_back(
        {.arrival = time_at_seconds(s), .input_tokens = input, .output_tokens = output});
  t.span = t.requests.back().arrival.time_since_epoch();
  return t;
}

// One always-ready replica of one slot serving 1 ms per prompt token and 10 ms per answer token,
// under `slo`.
config::Config one_token_replica(config::SloSpec slo) {
  auto c = one_group(queue_policy(1), 1, 1, 0s, 1s);
  c.endpoints[0].slo = slo;
  config::GroupSpec& g = c.endpoints[0].groups[0];
  g.min_replicas = 1;
  g.service_time = {
      .kind = config::ServiceTimeModel::Kind::kTokens, .prefill_s = 0.001, .decode_s = 0.01};
  return c;
}

config::SloSpec max_wait(Duration d) {
  config::SloSpec slo;
  slo.max_wait = d;
  return slo;
}
config::SloSpec ttft(Duration d) {
  config::SloSpec slo;
  slo.ttft = d;
  return slo;
}

TEST(SimulatorTtft, TtftIsTheWaitPlusThePrefillAndTheSloCountsIt) {
  // 1500 prompt tokens: 1.5 s of prefill, then 50 tokens of 10 ms: 2 s in service. The second
  // request waits 1.5 s for the first: ttft 3 s.
  const Trace t = token_arrivals({0, 0.5}, 1500, 50);
  const SimResult by_wait = run(one_token_replica(max_wait(2s)), t);
  ASSERT_EQ(by_wait.outcomes.ok, 2u);
  EXPECT_DOUBLE_EQ(by_wait.attainment(), 1.0);  // both started within 2 s
  EXPECT_DOUBLE_EQ(by_wait.ttft_s, 0.0);        // no ttft SLO
  const SimResult by_ttft = run(one_token_replica(ttft(2s)), t);
  ASSERT_EQ(by_ttft.outcomes.ok, 2u);
  EXPECT_DOUBLE_EQ(by_ttft.ttft_s, 2.0);
  EXPECT_DOUBLE_EQ(by_ttft.attainment(), 0.5);  // 1.5 s met, 3 s not
  EXPECT_NEAR(by_ttft.outcomes.ttft_s.quantile(0.5), 1.5, 1.5 / 64);
  EXPECT_NEAR(by_ttft.outcomes.ttft_s.max(), 3.0, 1e-9);
  EXPECT_NEAR(by_ttft.outcomes.wait_s.max(), 1.5, 1e-9);
  // The table and the summary show ttft p99 and the SLO it is judged by.
  const std::string table = format_table({by_ttft});
  EXPECT_NE(table.find("ttft p99"), std::string::npos) << table;
  EXPECT_NE(table.find("SLO: ttft (wait + prefill) <= 2.00s"), std::string::npos) << table;
  EXPECT_EQ(format_table({by_wait}).find("ttft p99"), std::string::npos);
  const std::string json = summary_json(by_ttft);
  EXPECT_NE(json.find("\"ttft_s\": 2.0"), std::string::npos) << json;
  EXPECT_NE(json.find("\"ttft_p99\""), std::string::npos) << json;
}

TEST(SimulatorTtft, ALongPrefillPassesMaxWaitButFailsTtft) {
  // Never a wait, but 2.5 s of prefill: max_wait 1 s is met by all, ttft 2 s by none.
  const Trace t = token_arrivals({0, 10, 20, 30}, 2500, 10);
  EXPECT_DOUBLE_EQ(run(one_token_replica(max_wait(1s)), t).attainment(), 1.0);
  const SimResult r = run(one_token_replica(ttft(2s)), t);
  EXPECT_DOUBLE_EQ(r.attainment(), 0.0);
  EXPECT_NEAR(r.outcomes.ttft_s.quantile(0.99), 2.5, 2.5 / 64);
}

TEST(SimulatorTtft, TheTidePolicySizesForTheWaitTtftLeavesAfterThePrefill) {
  // Poisson arrivals at 2/s of 2 s requests (1.5 s prefill): about 4 slots busy. slo.max_wait 3 s
  // lets requests wait 3 s, so their ttft reaches 4.5 s; slo.ttft 3 s leaves 1.5 s to wait, so
  // the policy keeps more replicas and more requests see their first token within 3 s.
  Random rng(7);
  std::vector<double> at;
  for (double s = 0; s < 3600; s += rng.exponential(0.5)) at.push_back(s);
  const Trace t = token_arrivals(at, 1500, 50);
  auto setup = [](config::SloSpec slo) {
    config::Config c = one_token_replica(slo);
    config::GroupSpec& g = c.endpoints[0].groups[0];
    g.scaling = config::ScalingSpec{};  // the tide policy
    g.min_replicas = 0;
    g.max_replicas = 20;
    g.cold_start.value = 30s;
    return c;
  };
  const SimResult by_wait = run(setup(max_wait(3s)), t);
  const SimResult by_ttft = run(setup(ttft(3s)), t);
  const auto within = [](const SimResult& r, double s) {
    return static_cast<double>(r.outcomes.ttft_s.count_at_or_below(s)) /
           static_cast<double>(r.outcomes.total);
  };
  EXPECT_GE(by_ttft.attainment(), within(by_ttft, 3.0));  // within(): buckets wholly below 3 s
  EXPECT_GT(by_ttft.replica_seconds, by_wait.replica_seconds);
  EXPECT_GT(within(by_ttft, 3.0), within(by_wait, 3.0));
  std::printf("ttft <= 3 s: max_wait 3 s %.4f (%.2f replica-h), ttft 3 s %.4f (%.2f replica-h)\n",
              within(by_wait, 3.0), by_wait.replica_seconds / 3600, within(by_ttft, 3.0),
              by_ttft.replica_seconds / 3600);
}

}  // namespace
}  // namespace tide::sim
