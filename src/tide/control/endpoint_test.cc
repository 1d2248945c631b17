#include "tide/control/endpoint.h"

#include "tide/common/random.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "tide/testing/fake_provisioner.h"

namespace tide::control {
namespace {

using namespace std::chrono_literals;
using dispatch::Admit;
using dispatch::ReplicaSlot;
using dispatch::RequestId;
using ::testing::ElementsAre;
using ::testing::Pair;

Time at(double s) { return time_at_seconds(s); }

using test::FakeProvisioner;

struct Sink : RequestSink {
  std::map<RequestId, ReplicaSlot> started;
  std::vector<RequestId> timed_out;
  void on_start(RequestId r, ReplicaSlot s, Time) override { started[r] = s; }
  void on_timeout(RequestId r, Time) override { timed_out.push_back(r); }
  void on_replica_lost(ReplicaSlot, const std::vector<RequestId>&, Time) override {}
};

struct Decisions : DecisionSink {
  std::vector<DecisionRecord> records;
  std::vector<std::string> changes;  // "id state handle"
  void record(const DecisionRecord& d) override { records.push_back(d); }
  void replica_changed(const Replica& r) override {
    changes.push_back(fmt::format("{} {} {}", r.id, state_name(r.state), r.handle));
  }
};

config::EndpointSpec queue_endpoint(int queue_size, int max, int concurrency = 1) {
  config::EndpointSpec ep;
  ep.name = "chat";
  config::GroupSpec g;
  g.name = "gpu";
  g.min_replicas = 0;
  g.max_replicas = max;
  g.concurrency = concurrency;
  g.scaling.policy = config::PolicyKind::kQueue;
  g.scaling.queue.queue_size = queue_size;
  g.scaling.queue.idle_timeout = 30s;
  ep.groups.push_back(g);
  return ep;
}

TEST(Endpoint, TenQueuedRequestsLaunchFourReplicasAtOnceAndAllStartWhenReady) {
  // ViewComfy example 1 end to end through dispatcher, decider and reconciler.
  FakeProvisioner prov;
  Sink sink;
  Decisions decisions;
  Endpoint ep(queue_endpoint(1, 4), prov, sink, &decisions, at(0));
  for (RequestId r = 0; r < 10; ++r) ASSERT_EQ(ep.submit(r, 0, at(0)), Admit::kQueued);
  ep.tick(0, at(1));
  ASSERT_EQ(prov.launched.size(), 4u);
  ASSERT_EQ(decisions.records.size(), 1u);
  EXPECT_EQ(decisions.records[0].from, 0);
  EXPECT_EQ(decisions.records[0].to, 4);
  EXPECT_FALSE(decisions.records[0].reason.empty());
  for (uint64_t id : prov.launched) prov.events->on_replica_ready(id, at(60), "");
  EXPECT_EQ(sink.started.size(), 4u);  // one slot each
  EXPECT_EQ(ep.status(0).ready, 4);
  EXPECT_EQ(ep.status(0).queued, 6);
}

TEST(Endpoint, ScaleDownDrainsWithoutCuttingInFlightRequests) {
  FakeProvisioner prov;
  Sink sink;
  Endpoint ep(queue_endpoint(1, 2), prov, sink, nullptr, at(0));
  ep.submit(1, 0, at(0));
  ep.submit(2, 0, at(0));
  ep.tick(0, at(0));
  ASSERT_EQ(prov.launched.size(), 2u);
  for (uint64_t id : prov.launched) prov.events->on_replica_ready(id, at(1), "");
  ASSERT_EQ(sink.started.size(), 2u);
  // Request 1 finishes; its replica idles past the timeout while request 2 keeps running.
  ep.complete(sink.started[1], at(2), 1s);
  ep.tick(0, at(40));
  EXPECT_EQ(prov.stopped.size(), 1u);
  EXPECT_EQ(ep.status(0).ready, 1);
  EXPECT_EQ(ep.dispatcher().in_flight(0), 1);  // request 2 untouched
  ep.complete(sink.started[2], at(50), 49s);
  ep.tick(0, at(81));
  EXPECT_EQ(prov.stopped.size(), 2u);
  EXPECT_EQ(ep.status(0).ready + ep.status(0).starting + ep.status(0).draining, 0);
}

TEST(Endpoint, ObservationCarriesTheIntervalsServiceTimeMoments) {
  FakeProvisioner prov;
  Sink sink;
  Endpoint ep(queue_endpoint(1, 2), prov, sink, nullptr, at(0));
  ep.submit(1, 0, at(0));
  ep.submit(2, 0, at(0));
  ep.tick(0, at(0));
  for (uint64_t id : prov.launched) prov.events->on_replica_ready(id, at(1), "");
  ASSERT_EQ(sink.started.size(), 2u);
  ep.tick(0, at(1));
  ep.complete(sink.started[1], at(2), 1s);
  ep.complete(sink.started[2], at(4), 3s);
  const policy::Observation& o = ep.tick(0, at(5));
  EXPECT_EQ(o.completions, 2u);
  EXPECT_DOUBLE_EQ(o.service_sum_s, 4.0);
  EXPECT_DOUBLE_EQ(o.service_sq_sum_s2, 10.0);
}

TEST(Endpoint, ATtftSloBecomesAWaitBudgetOfTtftLessTheObservedPrefill) {
  FakeProvisioner prov;
  Sink sink;
  config::EndpointSpec spec = queue_endpoint(1, 1);
  spec.slo.ttft = 2s;
  Endpoint ep(spec, prov, sink, nullptr, at(0));
  EXPECT_EQ(ep.wait_budget(), 2s);  // no prefill seen yet
  ep.observe_prefill(500ms);
  EXPECT_EQ(ep.wait_budget(), 1500ms);
  ep.submit(1, 0, at(0));
  EXPECT_EQ(ep.tick(0, at(0)).max_wait, 1500ms);
  // Started after 1.7 s: within ttft, but late for the wait budget that leaves room to prefill.
  prov.events->on_replica_ready(prov.launched.at(0), at(1.7), "");
  ASSERT_EQ(sink.started.size(), 1u);
  EXPECT_EQ(ep.tick(0, at(2)).late, 1u);
  // A running mean: one longer prefill moves it by 1/32 of the difference.
  ep.observe_prefill(1500ms);
  EXPECT_EQ(ep.wait_budget(), 2s - 531250us);
  // Prefill alone beyond ttft: start at once.
  for (int i = 0; i < 200; ++i) ep.observe_prefill(3s);
  EXPECT_EQ(ep.wait_budget(), 0s);
}

TEST(Endpoint, WithMaxWaitTheObservedPrefillChangesNothing) {
  FakeProvisioner prov;
  Sink sink;
  config::EndpointSpec spec = queue_endpoint(1, 1);
  spec.slo.max_wait = 3s;
  Endpoint ep(spec, prov, sink, nullptr, at(0));
  ep.observe_prefill(1s);
  EXPECT_EQ(ep.wait_budget(), 3s);
  EXPECT_EQ(ep.tick(0, at(0)).max_wait, 3s);
}

TEST(Endpoint, ReplicasStillStartingAreStoppedBeforeReadyOnes) {
  FakeProvisioner prov;
  Sink sink;
  config::EndpointSpec spec = queue_endpoint(1, 4);
  Endpoint ep(spec, prov, sink, nullptr, at(0));
  for (RequestId r = 0; r < 3; ++r) ep.submit(r, 0, at(0));
  ep.tick(0, at(0));
  ASSERT_EQ(prov.launched.size(), 3u);
  prov.events->on_replica_ready(prov.launched[0], at(5), "");
  // Everything the queue held is cancelled by the clients; the queue empties.
  ep.cancel(1, at(6));
  ep.cancel(2, at(6));
  ep.complete(sink.started[0], at(6), 1s);
  // The policy gives up one replica (the idle one expired). The reconciler stops the newest
  // replica still starting instead: it serves nobody yet, and the warm one stays available.
  ep.tick(0, at(37));
  ASSERT_EQ(prov.stopped.size(), 1u);
  EXPECT_EQ(prov.stopped[0], prov.launched[2]);
  EXPECT_EQ(ep.status(0).ready, 1);
  EXPECT_EQ(ep.status(0).starting, 1);
}

TEST(Endpoint, BillingRunsFromRequestToStop) {
  FakeProvisioner prov;
  Sink sink;
  Endpoint ep(queue_endpoint(1, 1), prov, sink, nullptr, at(0));
  ep.submit(1, 0, at(0));
  ep.tick(0, at(0));
  prov.events->on_replica_ready(prov.launched[0], at(10), "");
  ep.complete(sink.started[1], at(20), 10s);
  EXPECT_DOUBLE_EQ(ep.replica_seconds(0, at(25)), 25.0);
  ep.tick(0, at(50));  // idle 30 s: stopped at 50
  EXPECT_DOUBLE_EQ(ep.replica_seconds(0, at(100)), 50.0);
  ASSERT_EQ(ep.cold_starts(0).size(), 1u);
  EXPECT_DOUBLE_EQ(ep.cold_starts(0)[0], 10.0);
}

TEST(Endpoint, FailedReplicaIsReplacedOnTheNextTick) {
  FakeProvisioner prov;
  Sink sink;
  Endpoint ep(queue_endpoint(1, 1), prov, sink, nullptr, at(0));
  ep.submit(1, 0, at(0));
  ep.tick(0, at(0));
  ASSERT_EQ(prov.launched.size(), 1u);
  prov.events->on_replica_failed(prov.launched[0], at(3), "exit code 1");
  EXPECT_EQ(ep.status(0).failures, 1u);
  ep.tick(0, at(4));
  ASSERT_EQ(prov.launched.size(), 2u);
  prov.events->on_replica_ready(prov.launched[1], at(10), "");
  EXPECT_EQ(sink.started.count(1), 1u);  // the held request was never lost
}

TEST(Endpoint, CrashLoopBacksOffDoublingAndResetsWhenAReplicaBecomesReady) {
  FakeProvisioner prov;
  Sink sink;
  Endpoint ep(queue_endpoint(1, 1), prov, sink, nullptr, at(0));
  ep.submit(1, 0, at(0));
  ep.tick(0, at(0));
  ASSERT_EQ(prov.launched.size(), 1u);
  prov.events->on_replica_failed(prov.launched[0], at(10), "exited with status 1");
  EXPECT_EQ(ep.status(0).last_error, "chat/gpu/1: exited with status 1");
  ep.tick(0, at(10.5));  // within 1 s of the first failure: no launch
  EXPECT_EQ(prov.launched.size(), 1u);
  ep.tick(0, at(11));
  ASSERT_EQ(prov.launched.size(), 2u);
  prov.events->on_replica_failed(prov.launched[1], at(12), "exited with status 1");
  ep.tick(0, at(13.5));  // second failure in a row: 2 s
  EXPECT_EQ(prov.launched.size(), 2u);
  EXPECT_EQ(ep.status(0).consecutive_failures, 2);
  ep.tick(0, at(14));
  ASSERT_EQ(prov.launched.size(), 3u);
  prov.events->on_replica_ready(prov.launched[2], at(20), "127.0.0.1:1");
  EXPECT_EQ(ep.status(0).consecutive_failures, 0);
  EXPECT_FALSE(ep.status(0).backoff_until.has_value());
  EXPECT_EQ(sink.started.count(1), 1u);
}

TEST(Endpoint, AReplicaThatWasReadyAndServingDoesNotCountAsAFailedLaunch) {
  FakeProvisioner prov;
  Sink sink;
  config::EndpointSpec spec = queue_endpoint(1, 1);
  spec.groups[0].min_replicas = 1;
  Endpoint ep(spec, prov, sink, nullptr, at(0));
  ep.tick(0, at(0));
  ASSERT_EQ(prov.launched.size(), 1u);
  prov.events->on_replica_ready(prov.launched[0], at(1), "127.0.0.1:1");
  // Killed while serving: replaced at the next tick, with no crash-loop backoff.
  prov.events->on_replica_failed(prov.launched[0], at(2), "killed by signal 9");
  EXPECT_EQ(ep.status(0).failures, 1u);
  EXPECT_EQ(ep.status(0).consecutive_failures, 0);
  EXPECT_FALSE(ep.status(0).backoff_until.has_value());
  ep.tick(0, at(2.1));
  ASSERT_EQ(prov.launched.size(), 2u);
  // Killed again and again: still no backoff, whereas a launch that never got ready counts.
  prov.events->on_replica_ready(prov.launched[1], at(3), "127.0.0.1:2");
  prov.events->on_replica_failed(prov.launched[1], at(4), "killed by signal 9");
  ep.tick(0, at(4.1));
  ASSERT_EQ(prov.launched.size(), 3u);
  prov.events->on_replica_failed(prov.launched[2], at(5), "exited with status 1");
  EXPECT_EQ(ep.status(0).consecutive_failures, 1);
  ep.tick(0, at(5.5));
  EXPECT_EQ(prov.launched.size(), 3u);
}

TEST(Endpoint, OnlyRepeatedConnectFailuresAcrossRequestsFailAReplica) {
  FakeProvisioner prov;
  Sink sink;
  Endpoint ep(queue_endpoint(1, 1), prov, sink, nullptr, at(0));
  ep.submit(1, 0, at(0));
  ep.tick(0, at(0));
  prov.events->on_replica_ready(prov.launched[0], at(1), "127.0.0.1:1");
  const uint64_t id = prov.launched[0];
  EXPECT_FALSE(ep.connect_failed(id, at(2), "connection refused"));
  EXPECT_FALSE(ep.connect_failed(id, at(2), "connection refused"));
  ep.connected(id);  // a connection opened: the run starts over
  EXPECT_FALSE(ep.connect_failed(id, at(3), "connection refused"));
  EXPECT_FALSE(ep.connect_failed(id, at(3), "connection refused"));
  EXPECT_EQ(ep.status(0).ready, 1);
  EXPECT_TRUE(ep.connect_failed(id, at(3), "connection refused"));
  EXPECT_EQ(ep.status(0).ready, 0);
  EXPECT_EQ(prov.stopped, std::vector<uint64_t>{id});
  EXPECT_EQ(ep.status(0).last_error,
            "chat/gpu/1: 3 connections in a row failed, the last: connection refused");
}

TEST(Endpoint, FailedReplicaIsAlsoStoppedSoNothingOfItLingers) {
  FakeProvisioner prov;
  Sink sink;
  Endpoint ep(queue_endpoint(1, 1), prov, sink, nullptr, at(0));
  ep.submit(1, 0, at(0));
  ep.tick(0, at(0));
  prov.events->on_replica_ready(prov.launched[0], at(1), "127.0.0.1:1");
  ep.fail_replica(prov.launched[0], at(2), "connection refused");
  EXPECT_EQ(prov.stopped, std::vector<uint64_t>{prov.launched[0]});
  EXPECT_EQ(ep.status(0).ready, 0);
  EXPECT_EQ(ep.status(0).failures, 1u);
}

config::EndpointSpec two_groups(config::RoutingSpec routing) {
  config::EndpointSpec ep = queue_endpoint(1, 2);
  ep.slo.max_wait = 2s;
  ep.groups[0].name = "a";
  config::GroupSpec b = ep.groups[0];
  b.name = "b";
  ep.groups.push_back(b);
  ep.routing = std::move(routing);
  return ep;
}

TEST(Endpoint, EveryReplicaChangeIsReportedForTheStateFile) {
  FakeProvisioner prov;
  Sink sink;
  Decisions d;
  Endpoint ep(queue_endpoint(1, 1), prov, sink, &d, at(0));
  ep.submit(1, 0, at(0));
  ep.tick(0, at(0));
  ASSERT_EQ(prov.launched.size(), 1u);
  prov.events->on_replica_starting(1, at(0));
  prov.events->on_replica_handle(1, "local pid=42");
  prov.events->on_replica_ready(1, at(5), "127.0.0.1:1");
  ep.complete(sink.started[1], at(6), 1s);
  ep.tick(0, at(40));  // idle past 30 s: drained, and empty, so stopped at once
  EXPECT_THAT(d.changes, ElementsAre("1 requested ", "1 starting ", "1 starting local pid=42",
                                     "1 ready local pid=42", "1 draining local pid=42",
                                     "1 stopped local pid=42"));
}

TEST(Endpoint, AdoptedReplicasCountTowardTheGroupSoNoDuplicateIsLaunched) {
  FakeProvisioner prov;
  Sink sink;
  Decisions d;
  config::EndpointSpec spec = queue_endpoint(1, 4);
  spec.groups[0].min_replicas = 2;
  Endpoint ep(spec, prov, sink, &d, at(1000));
  ep.reserve_ids(8);
  ASSERT_TRUE(ep.adopt(0, 3, "local pid=3", at(100)));
  ASSERT_TRUE(ep.adopt(0, 5, "local pid=5", at(200)));
  EXPECT_THAT(prov.adopted, ElementsAre(Pair(3u, "local pid=3"), Pair(5u, "local pid=5")));
  ep.tick(0, at(1000));
  EXPECT_TRUE(prov.launched.empty());  // min 2 is met by the two being adopted
  EXPECT_EQ(ep.status(0).starting, 2);
  prov.events->on_replica_ready(3, at(1001), "127.0.0.1:3");
  prov.events->on_replica_failed(5, at(1001), "gone while tide was away");
  EXPECT_EQ(ep.status(0).ready, 1);
  EXPECT_TRUE(ep.cold_starts(0).empty());  // an adopted replica's start says nothing new
  ep.tick(0, at(1001));
  ep.tick(0, at(1003));  // after the 1 s backoff of the failure
  ASSERT_EQ(prov.launched.size(), 1u);
  EXPECT_EQ(prov.launched[0], 8u);  // ids of the previous run are never reused
  // Billing continues from the first launch.
  EXPECT_NEAR(ep.replica_seconds(0, at(1003)), (1003 - 100) + (1001 - 200) + 0, 1e-6);
}

TEST(Endpoint, AReplicaTheProvisionerCannotAdoptIsForgotten) {
  FakeProvisioner prov;
  prov.adoptable = false;
  Sink sink;
  Endpoint ep(queue_endpoint(1, 4), prov, sink, nullptr, at(0));
  EXPECT_FALSE(ep.adopt(0, 3, "x", at(0)));
  EXPECT_EQ(ep.status(0).starting, 0);
  EXPECT_EQ(ep.replica(3), nullptr);
}

TEST(Endpoint, ReconfigureChangesWeightsLimitsAndAddsGroupsWithoutDroppingAnything) {
  FakeProvisioner prov;
  Sink sink;
  config::EndpointSpec spec = queue_endpoint(1, 2);
  spec.groups.push_back(spec.groups[0]);
  spec.groups[1].name = "b";
  spec.routing.weights = {1, 1};
  Endpoint ep(spec, prov, sink, nullptr, at(0));
  for (RequestId r = 0; r < 4; ++r) ep.submit(r, ep.route(0, at(0)), at(0));
  ep.tick(0, at(0));
  ep.tick(1, at(0));
  ASSERT_EQ(prov.launched.size(), 4u);
  for (uint64_t id : prov.launched) prov.events->on_replica_ready(id, at(1), "");
  ASSERT_EQ(sink.started.size(), 4u);

  config::EndpointSpec next = spec;
  next.routing.weights = {0, 1};  // everything to b
  next.groups[0].max_replicas = 1;
  next.groups.push_back(spec.groups[0]);
  next.groups[2].name = "c";
  next.routing.weights.push_back(0);
  next.queue.max_length = 3;
  ASSERT_EQ(ep.reconfigure(next, at(2)), "");
  EXPECT_EQ(ep.group_count(), 3);
  EXPECT_EQ(ep.spec().groups[0].max_replicas, 1);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(ep.route(0, at(2)), 1);
  // Requests in flight on group a finish normally; a shrinks to its new max.
  for (RequestId r = 0; r < 4; ++r) ep.complete(sink.started[r], at(3), 1s);
  ep.tick(0, at(3));
  EXPECT_EQ(ep.status(0).desired, 1);
  EXPECT_EQ(ep.status(0).ready + ep.status(0).draining, 1);
  // The new queue bound holds.
  EXPECT_EQ(ep.submit(10, 2, at(3)), Admit::kQueued);
  EXPECT_EQ(ep.submit(11, 2, at(3)), Admit::kQueued);
  EXPECT_EQ(ep.submit(12, 2, at(3)), Admit::kQueued);
  EXPECT_EQ(ep.submit(13, 2, at(3)), Admit::kRejectedQueueFull);
  ep.tick(2, at(3));
  EXPECT_EQ(prov.launched.size(), 6u) << "the new group scales on its own demand, up to its max 2";
}

TEST(Endpoint, ReconfigureRefusesWhatWouldStrandReplicasAndChangesNothing) {
  FakeProvisioner prov;
  Sink sink;
  config::EndpointSpec spec = queue_endpoint(1, 2, 4);
  spec.groups.push_back(spec.groups[0]);
  spec.groups[1].name = "b";
  Endpoint ep(spec, prov, sink, nullptr, at(0));
  config::EndpointSpec fewer = spec;
  fewer.groups.pop_back();
  EXPECT_THAT(ep.reconfigure(fewer, at(1)), ::testing::HasSubstr("groups: all 2 current groups"));
  config::EndpointSpec swapped = spec;
  std::swap(swapped.groups[0], swapped.groups[1]);
  EXPECT_THAT(ep.reconfigure(swapped, at(1)), ::testing::HasSubstr("groups[0].name: is gpu"));
  config::EndpointSpec wider = spec;
  wider.groups[1].concurrency = 8;
  EXPECT_THAT(ep.reconfigure(wider, at(1)),
              ::testing::HasSubstr("groups[1].concurrency: its replicas were started for 4"));
  EXPECT_EQ(ep.group_count(), 2);
  EXPECT_EQ(ep.spec().groups[1].concurrency, 4);
  // An agent cannot be added to replicas already running without one; with none running it can.
  config::EndpointSpec agents = spec;
  agents.groups[0].agent.enabled = true;
  ep.submit(1, 0, at(1));
  ep.tick(0, at(1));
  ASSERT_EQ(prov.launched.size(), 1u);
  EXPECT_THAT(ep.reconfigure(agents, at(2)),
              ::testing::HasSubstr("groups[0].agent.enabled: its 1 replicas were started "
                                   "without an agent; scale the group to 0 first"));
  config::EndpointSpec agents_b = spec;
  agents_b.groups[1].agent.enabled = true;
  EXPECT_EQ(ep.reconfigure(agents_b, at(2)), "");
}

TEST(EndpointRouting, SplitGivesEachGroupItsWeightEvenlyInterleaved) {
  FakeProvisioner prov;
  Sink sink;
  config::RoutingSpec r;
  r.weights = {90, 10};
  Endpoint ep(two_groups(r), prov, sink, nullptr, at(0));
  int to_b = 0;
  int longest_run_a = 0;
  int run = 0;
  for (int i = 0; i < 10000; ++i) {
    const int g = ep.route(0, at(0));
    to_b += g;
    run = g == 0 ? run + 1 : 0;
    longest_run_a = std::max(longest_run_a, run);
  }
  EXPECT_EQ(to_b, 1000);
  EXPECT_LE(longest_run_a, 9);  // interleaved, not 9000 then 1000
  EXPECT_EQ(ep.status(1).routed, 1000u);
}

TEST(EndpointRouting, StickyKeyAlwaysLandsOnTheSameGroupAndKeysSplitByWeight) {
  FakeProvisioner prov;
  Sink sink;
  config::RoutingSpec r;
  r.weights = {70, 30};
  Endpoint ep(two_groups(r), prov, sink, nullptr, at(0));
  int to_b = 0;
  Random rng(7);
  for (int key = 0; key < 10000; ++key) {
    const uint64_t hash = rng.next_u64() | 1;
    const int first = ep.route(hash, at(0));
    for (int again = 0; again < 3; ++again) ASSERT_EQ(ep.route(hash, at(0)), first);
    to_b += first;
  }
  // Binomial(10000, 0.3): sd 46; 4 sd either way.
  EXPECT_NEAR(to_b, 3000, 184);
}

TEST(EndpointRouting, SplitRoutesAroundAGroupWhoseLaunchesKeepFailing) {
  FakeProvisioner prov;
  Sink sink;
  config::RoutingSpec r;
  r.weights = {50, 50};
  Endpoint ep(two_groups(r), prov, sink, nullptr, at(0));
  ep.submit(1, 1, at(0));
  ep.tick(1, at(0));
  ASSERT_EQ(prov.launched.size(), 1u);
  prov.events->on_replica_failed(prov.launched[0], at(1), "exited with status 1");
  for (int i = 0; i < 10; ++i) EXPECT_EQ(ep.route(0, at(2)), 0);
  EXPECT_EQ(ep.status(1).rerouted, 5u);
}

TEST(EndpointRouting, OverflowSpillsOnlyWhileThePrimaryCannotServeInTimeAndCountsItAsItsDemand) {
  FakeProvisioner prov;
  Sink sink;
  config::RoutingSpec r;
  r.mode = config::RoutingSpec::Mode::kOverflow;
  r.order = {0, 1};
  config::EndpointSpec spec = two_groups(r);
  spec.groups[0].cold_start.value = 60s;  // the primary is slow to start
  spec.groups[1].min_replicas = 1;
  Endpoint ep(spec, prov, sink, nullptr, at(0));
  ep.tick(1, at(0));  // the secondary's warm replica
  ASSERT_EQ(prov.launched.size(), 1u);
  prov.events->on_replica_ready(prov.launched[0], at(0), "b:1");
  // The primary has nothing ready and a minute of cold start ahead: spill.
  EXPECT_EQ(ep.route(0, at(1)), 1);
  EXPECT_EQ(ep.status(0).spilled, 1u);
  EXPECT_EQ(ep.status(1).overflow_in, 1u);
  // The spilled request counts as the primary's queue: it scales up.
  ep.tick(0, at(1));
  ASSERT_EQ(prov.launched.size(), 2u);
  EXPECT_EQ(ep.status(0).starting, 1);
  // Once the primary is ready with a free slot, requests stay with it.
  prov.events->on_replica_ready(prov.launched[1], at(61), "a:1");
  EXPECT_EQ(ep.route(0, at(62)), 0);
  ASSERT_EQ(ep.submit(10, 0, at(62)), dispatch::Admit::kStarted);
  // Full (concurrency 1), no service time known yet: no promise of a start in time; spill.
  EXPECT_EQ(ep.route(0, at(62)), 1);
  ep.complete(sink.started[10], at(63), 1s);  // mean service now 1 s
  ASSERT_EQ(ep.submit(11, 0, at(63)), dispatch::Admit::kStarted);
  // One ahead at 1 s per request on one slot: (0 + 1) x 1 s <= 2 s max_wait: stays.
  EXPECT_EQ(ep.route(0, at(63)), 0);
  EXPECT_EQ(ep.status(0).spilled, 2u);
}

// ---- agent reports and two-step routing ---------------------------------------------------------

config::EndpointSpec load_endpoint(int min, int max, int concurrency) {
  config::EndpointSpec ep = queue_endpoint(1, max, concurrency);
  config::GroupSpec& g = ep.groups[0];
  g.min_replicas = min;
  g.agent.enabled = true;
  g.scaling.policy = config::PolicyKind::kTarget;
  g.scaling.target.metric = config::Metric::kLoad;
  g.scaling.target.target = 0.5;
  g.scaling.target.sync_period = 1s;
  g.scaling.target.metric_window = 1s;
  g.scaling.target.scale_down.stabilization = 0s;
  return ep;
}

ReplicaReport report(int in_service, double load, int queued = 0) {
  ReplicaReport r;
  r.interval = 1s;
  r.in_service = in_service;
  r.queued = queued;
  r.avg_in_service = in_service;
  r.avg_queued = queued;
  r.busy = in_service > 0 ? 1 : 0;
  r.load.load = load;
  r.load.learned = true;
  return r;
}

// Ticks group 0 at `t` (its min_replicas, or `demand` clients waiting for a route, launch `n`
// replicas) and makes them ready with addresses a1, a2, ...
void bring_up(Endpoint& ep, FakeProvisioner& prov, int n, Time t, int demand = 0) {
  for (int i = 0; i < demand; ++i) ep.wait_for_route(0, t, t + 10s);
  ep.tick(0, t);
  ASSERT_EQ(prov.launched.size(), static_cast<size_t>(n));
  for (uint64_t id : prov.launched) prov.events->on_replica_ready(id, t, "a" + std::to_string(id));
}

TEST(EndpointAgents, AFloodOfRouteCallsAtZeroStartsOneReplicaNotTheGroupsMax) {
  FakeProvisioner prov;
  Sink sink;
  config::EndpointSpec spec = queue_endpoint(1, 4);  // one queued request per replica
  spec.groups[0].agent.enabled = true;
  Endpoint ep(spec, prov, sink, nullptr, at(0));
  for (int i = 0; i < 300; ++i) ep.wait_for_route(0, at(0), at(30));
  EXPECT_EQ(ep.tick(0, at(0)).queued, 1);
  EXPECT_EQ(prov.launched.size(), 1u);
  ep.tick(0, at(1));
  ep.tick(0, at(2));
  EXPECT_EQ(prov.launched.size(), 1u);  // still one while it starts
  EXPECT_EQ(ep.status(0).waiting_clients, 300);
}

TEST(EndpointAgents, ReportedLoadIsTheSignalAndDrivesTheTargetPolicy) {
  FakeProvisioner prov;
  Sink sink;
  Decisions decisions;
  Endpoint ep(load_endpoint(1, 4, 4), prov, sink, &decisions, at(0));
  bring_up(ep, prov, 1, at(0));
  const uint64_t id = prov.launched[0];
  // Nothing went through the dispatcher: without reports the group looks idle.
  EXPECT_DOUBLE_EQ(ep.tick(0, at(1)).load, 0.0);
  ASSERT_TRUE(ep.on_report(id, report(4, 1.5, 2), at(1.5)));
  const policy::Observation& o = ep.tick(0, at(2));
  EXPECT_EQ(o.reporting, 1);
  EXPECT_DOUBLE_EQ(o.load, 1.5);
  EXPECT_EQ(o.in_flight, 4);
  EXPECT_EQ(o.queued, 2);
  EXPECT_DOUBLE_EQ(o.utilization(), 1.0);
  // ceil(1 x 1.5 / 0.5) = 3
  EXPECT_EQ(ep.status(0).desired, 3);
  ASSERT_FALSE(decisions.records.empty());
  EXPECT_NE(decisions.records.back().reason.find("load 1.50"), std::string::npos)
      << decisions.records.back().reason;
  // A report older than three intervals no longer counts.
  EXPECT_EQ(ep.tick(0, at(6)).reporting, 0);
  EXPECT_FALSE(ep.on_report(999, report(0, 0), at(6)));
}

TEST(EndpointEngines, ProbedEngineFiguresDriveATargetOnEngineWaitingAndGoStale) {
  FakeProvisioner prov;
  Sink sink;
  Decisions decisions;
  config::EndpointSpec spec = load_endpoint(2, 8, 8);
  config::GroupSpec& g = spec.groups[0];
  g.engine_metrics.enabled = true;
  g.engine_metrics.interval = 1s;
  g.scaling.target.metric = config::Metric::kEngineWaiting;
  g.scaling.target.target = 2;
  Endpoint ep(spec, prov, sink, &decisions, at(0));
  bring_up(ep, prov, 2, at(0));
  const uint64_t a = prov.launched[0], b = prov.launched[1];
  prov.events->on_replica_engine(a, at(1), {.running = 8, .waiting = 10, .kv_cache = 0.9});
  prov.events->on_replica_engine(b, at(1), {.running = 8, .waiting = 2, .kv_cache = 0.5});
  const policy::Observation& o = ep.tick(0, at(1.5));
  EXPECT_EQ(o.engine_reporting, 2);
  EXPECT_DOUBLE_EQ(o.engine_waiting, 12.0);
  EXPECT_DOUBLE_EQ(o.engine_running, 16.0);
  EXPECT_DOUBLE_EQ(o.engine_kv_cache, 0.7);
  // 6 waiting per engine, target 2: ceil(2 x 3) = 6.
  EXPECT_EQ(ep.status(0).desired, 6);
  ASSERT_FALSE(decisions.records.empty());
  EXPECT_NE(decisions.records.back().reason.find("engine_waiting 6.00"), std::string::npos)
      << decisions.records.back().reason;
  // Three intervals (3 s at least) without a reading: the figures drop out.
  EXPECT_EQ(ep.tick(0, at(4.5)).engine_reporting, 0);
  // An agent's report carries them too.
  ReplicaReport r = report(1, 0.1);
  r.engine = metrics::EngineSignals{.running = 1, .waiting = 0, .kv_cache = std::nullopt};
  ASSERT_TRUE(ep.on_report(a, r, at(5)));
  const policy::Observation& o2 = ep.tick(0, at(5.5));
  EXPECT_EQ(o2.engine_reporting, 1);
  EXPECT_EQ(o2.engine_kv_reporting, 0);
  EXPECT_DOUBLE_EQ(o2.engine_running, 1.0);
}

TEST(EndpointAgents, RouteDirectPicksTheLeastLoadedReplicaCountingWhatItHandedOut) {
  FakeProvisioner prov;
  Sink sink;
  Endpoint ep(load_endpoint(2, 4, 2), prov, sink, nullptr, at(0));
  bring_up(ep, prov, 2, at(0));
  const uint64_t busy = prov.launched[0];
  const uint64_t idle = prov.launched[1];
  ep.on_report(busy, report(2, 1.0), at(1));
  ep.on_report(idle, report(0, 0.0), at(1));
  // idle: 0 then 0.5 of its 2 slots; busy: 1.0. Then both at 1.0: fewer routes wins.
  EXPECT_EQ(ep.route_direct(0, 0, at(1))->id, idle);
  EXPECT_EQ(ep.route_direct(0, 0, at(1))->id, idle);
  EXPECT_EQ(ep.route_direct(0, 0, at(1))->id, busy);
  EXPECT_EQ(ep.status(0).direct_routes, 3u);
  // A new report replaces the guesses.
  ep.on_report(busy, report(0, 0.0), at(2));
  EXPECT_EQ(ep.route_direct(0, 0, at(2))->id, busy);
  // Routed requests are arrivals of the group.
  EXPECT_EQ(ep.tick(0, at(3)).arrivals, 4u);
}

TEST(EndpointAgents, ARouteWithNoReplicaCountsAsQueuedDemandUntilTheClientComesBack) {
  FakeProvisioner prov;
  Sink sink;
  Endpoint ep(queue_endpoint(1, 2), prov, sink, nullptr, at(0));
  EXPECT_EQ(ep.route_direct(0, 0, at(0)), nullptr);
  ep.wait_for_route(0, at(0), at(20));
  EXPECT_EQ(ep.status(0).direct_waits, 1u);
  EXPECT_EQ(ep.status(0).waiting_clients, 1);
  // The next tick sees a queued request and starts a replica from zero.
  EXPECT_EQ(ep.tick(0, at(1)).queued, 1);
  ASSERT_EQ(prov.launched.size(), 1u);
  prov.events->on_replica_ready(prov.launched[0], at(5), "a1");
  // The client comes back and is routed: it no longer counts as waiting.
  ASSERT_NE(ep.route_direct(0, 0, at(6)), nullptr);
  EXPECT_EQ(ep.status(0).waiting_clients, 0);
  // One that never comes back stops counting when its time is up.
  ep.wait_for_route(0, at(7), at(9));
  EXPECT_EQ(ep.tick(0, at(8)).queued, 1);
  EXPECT_EQ(ep.tick(0, at(10)).queued, 0);
}

TEST(EndpointAgents, AReplicaBusyWithDirectRequestsIsNotIdleAndNotStoppedUntilItsAgentSaysSo) {
  FakeProvisioner prov;
  Sink sink;
  Endpoint ep(queue_endpoint(1, 1), prov, sink, nullptr, at(0));  // idle_timeout 30 s
  bring_up(ep, prov, 1, at(0), 1);
  const uint64_t id = prov.launched[0];
  // Requests sent straight to it for 40 s: the dispatcher never saw any.
  for (int t = 1; t <= 40; ++t) {
    ep.on_report(id, report(1, 0.5), at(t));
    ep.tick(0, at(t + 0.5));
  }
  EXPECT_TRUE(prov.stopped.empty());
  EXPECT_EQ(ep.status(0).ready, 1);
  // Then idle: stopped 30 s after the last report that showed work.
  for (int t = 41; t <= 69; ++t) {
    ep.on_report(id, report(0, 0), at(t));
    ep.tick(0, at(t + 0.5));
  }
  EXPECT_TRUE(prov.stopped.empty());
  ep.on_report(id, report(0, 0), at(71));
  ep.tick(0, at(71.5));
  EXPECT_EQ(prov.stopped.size(), 1u);
}

TEST(EndpointAgents, ADrainedReplicaWaitsForItsDirectRequestsToFinish) {
  FakeProvisioner prov;
  Sink sink;
  Endpoint ep(load_endpoint(1, 2, 4), prov, sink, nullptr, at(0));
  bring_up(ep, prov, 1, at(0));
  ep.on_report(prov.launched[0], report(1, 1.0), at(0.9));
  ep.tick(0, at(1));  // load 1.0 vs 0.5: a second replica
  ASSERT_EQ(prov.launched.size(), 2u);
  prov.events->on_replica_ready(prov.launched[1], at(1.2), "a2");
  // Both serve one direct request; the load is low: the policy goes down to one replica.
  for (uint64_t id : prov.launched) ep.on_report(id, report(1, 0.1), at(2));
  ep.tick(0, at(2.5));
  EXPECT_EQ(ep.status(0).desired, 1);
  EXPECT_EQ(ep.status(0).draining, 1);
  EXPECT_TRUE(prov.stopped.empty());  // its request is still in flight
  // No route goes to it any more.
  for (int i = 0; i < 3; ++i) {
    const Replica* r = ep.route_direct(0, 0, at(2.6));
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->state, ReplicaState::kReady);
  }
  // Its agent reports it idle: now it stops.
  for (uint64_t id : prov.launched) {
    const Replica* r = ep.replica(id);
    if (r != nullptr && r->state == ReplicaState::kDraining) ep.on_report(id, report(0, 0), at(3));
  }
  EXPECT_EQ(prov.stopped.size(), 1u);
  EXPECT_EQ(ep.status(0).draining, 0);
}

// Two groups with agents (a and b), min_replicas 1 each, one slot per replica, max 1.
config::EndpointSpec two_agent_groups(config::RoutingSpec routing) {
  config::EndpointSpec ep = two_groups(std::move(routing));
  for (auto& g : ep.groups) {
    g.agent.enabled = true;
    g.min_replicas = 1;
    g.max_replicas = 1;
  }
  return ep;
}

// Ticks both groups at `t` and makes their replicas ready; returns their ids (a's, b's).
std::pair<uint64_t, uint64_t> bring_up_both(Endpoint& ep, FakeProvisioner& prov, Time t) {
  ep.tick(0, t);
  ep.tick(1, t);
  EXPECT_EQ(prov.launched.size(), 2u);
  for (uint64_t id : prov.launched) prov.events->on_replica_ready(id, t, "a" + std::to_string(id));
  return {prov.launched.at(0), prov.launched.at(1)};
}

TEST(EndpointDirectRouting, SplitHoldsTheWeightsAmongGroupsWithAgentsAndAKeyStaysOnItsGroup) {
  FakeProvisioner prov;
  Sink sink;
  config::RoutingSpec r;
  r.weights = {90, 10};
  Endpoint ep(two_agent_groups(r), prov, sink, nullptr, at(0));
  int to_b = 0;
  for (int i = 0; i < 1000; ++i) to_b += ep.route(0, at(0), Endpoint::Via::kDirect);
  EXPECT_EQ(to_b, 100);
  // The gateway's own round robin is not disturbed by the direct one.
  int gateway_to_b = 0;
  for (int i = 0; i < 10; ++i) gateway_to_b += ep.route(0, at(0));
  EXPECT_EQ(gateway_to_b, 1);
  // A key: the same group every time, and the same one the gateway picks for that key.
  int keyed_to_b = 0;
  for (int key = 0; key < 2000; ++key) {
    const uint64_t k = sticky_key("user-" + std::to_string(key));
    const int g = ep.route(k, at(0), Endpoint::Via::kDirect);
    ASSERT_EQ(ep.route(k, at(0), Endpoint::Via::kDirect), g);
    ASSERT_EQ(ep.route(k, at(0)), g);
    keyed_to_b += g;
  }
  // Binomial(2000, 0.1): sd 13.4; 4 sd either way.
  EXPECT_NEAR(keyed_to_b, 200, 54);
}

TEST(EndpointDirectRouting, OnlyGroupsWithAgentsAreChosenAndNoneMeansNoRoute) {
  FakeProvisioner prov;
  Sink sink;
  config::RoutingSpec r;
  r.weights = {50, 50};
  config::EndpointSpec spec = two_groups(r);
  spec.groups[1].agent.enabled = true;
  Endpoint ep(spec, prov, sink, nullptr, at(0));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(ep.route(0, at(0), Endpoint::Via::kDirect), 1);
  int gateway_to_b = 0;
  for (int i = 0; i < 20; ++i) gateway_to_b += ep.route(0, at(0));
  EXPECT_EQ(gateway_to_b, 10);

  Endpoint none(two_groups(r), prov, sink, nullptr, at(0));
  EXPECT_EQ(none.route(0, at(0), Endpoint::Via::kDirect), -1);
}

TEST(EndpointDirectRouting, OverflowSpillsOnlyWhileThePrimaryIsFullByItsReportsAndComesBack) {
  FakeProvisioner prov;
  Sink sink;
  config::RoutingSpec r;
  r.mode = config::RoutingSpec::Mode::kOverflow;
  Endpoint ep(two_agent_groups(r), prov, sink, nullptr, at(0));
  const auto [a, b] = bring_up_both(ep, prov, at(0));
  ep.on_report(a, report(0, 0.0), at(1));
  ep.on_report(b, report(0, 0.0), at(1));
  // a has a free slot: it takes the request.
  EXPECT_EQ(ep.route(0, at(1), Endpoint::Via::kDirect), 0);
  ASSERT_NE(ep.route_direct(0, 0, at(1)), nullptr);
  // Now a's one slot is taken (routed since its report) and it is at its max with no service
  // time to promise a start by: the next request spills to b.
  EXPECT_EQ(ep.route(0, at(1), Endpoint::Via::kDirect), 1);
  EXPECT_EQ(ep.status(0).spilled, 1u);
  // a reports it is busy; still full.
  ep.on_report(a, report(1, 1.0), at(2));
  EXPECT_EQ(ep.route(0, at(2), Endpoint::Via::kDirect), 1);
  // a reports it is free again: no more spills.
  ep.on_report(a, report(0, 0.0), at(3));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(ep.route(0, at(3), Endpoint::Via::kDirect), 0);
  EXPECT_EQ(ep.status(0).spilled, 2u);
  EXPECT_EQ(ep.status(1).overflow_in, 2u);
}

}  // namespace
}  // namespace tide::control
