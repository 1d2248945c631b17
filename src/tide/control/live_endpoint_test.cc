#include "tide/control/live_endpoint.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <optional>
#include <vector>

#include "tide/testing/fake_provisioner.h"

namespace tide::control {
namespace {

using namespace std::chrono_literals;
using Kind = Dispatch::Kind;

using test::FakeProvisioner;

struct RecordingWaiter : Waiter {
  std::optional<Dispatch> outcome;
  int wakes = 0;
  void wake(const Dispatch& d) override {
    outcome = d;
    ++wakes;
  }
};

config::EndpointSpec endpoint_spec(bool hold = true, int max_queue = 100) {
  config::EndpointSpec ep;
  ep.name = "chat";
  ep.queue.max_length = max_queue;
  ep.queue.timeout = 30s;
  config::GroupSpec g;
  g.name = "local";
  g.max_replicas = 2;
  g.concurrency = 1;
  g.cold_start.value = 5s;
  g.scaling.policy = config::PolicyKind::kQueue;
  g.scaling.queue.queue_size = 1;
  g.scaling.queue.idle_timeout = 10s;
  g.scaling.admission.hold = hold;
  ep.groups.push_back(g);
  return ep;
}

struct Fixture {
  ManualClock clock;
  FakeProvisioner prov;
  LiveEndpoint live;
  explicit Fixture(config::EndpointSpec spec = endpoint_spec()) : live(spec, prov, clock) {}
};

TEST(LiveEndpoint, HeldRequestIsWokenWithTheReplicaAddressTheMomentItIsReady) {
  Fixture f;
  RecordingWaiter w;
  EXPECT_EQ(f.live.submit(1, 0, &w).kind, Kind::kQueued);
  f.live.tick(0);
  ASSERT_EQ(f.prov.launched.size(), 1u);
  f.clock.advance(5s);
  f.live.on_replica_ready(f.prov.launched[0], f.clock.now(), "127.0.0.1:9001");
  ASSERT_TRUE(w.outcome.has_value());
  EXPECT_EQ(w.outcome->kind, Kind::kStarted);
  EXPECT_EQ(w.outcome->address, "127.0.0.1:9001");
  EXPECT_EQ(w.outcome->replica_id, f.prov.launched[0]);
  EXPECT_EQ(w.outcome->submitted_at, kTimeZero);
  // The next request starts at once once the first has finished.
  f.live.finish(*w.outcome);
  const Dispatch d = f.live.submit(2, 0, nullptr);
  EXPECT_EQ(d.kind, Kind::kStarted);
  EXPECT_EQ(d.address, "127.0.0.1:9001");
  EXPECT_EQ(f.live.view().groups[0].replicas[0].in_flight, 1);
  f.live.finish(d);
  EXPECT_EQ(f.live.view().groups[0].replicas[0].in_flight, 0);
}

TEST(LiveEndpoint, CancelledHeldRequestIsNeverWoken) {
  Fixture f;
  RecordingWaiter w;
  f.live.submit(1, 0, &w);
  f.live.tick(0);
  EXPECT_TRUE(f.live.cancel(1));
  EXPECT_FALSE(f.live.cancel(1));
  f.live.on_replica_ready(f.prov.launched[0], f.clock.now(), "127.0.0.1:9001");
  EXPECT_EQ(w.wakes, 0);
  EXPECT_EQ(f.live.view().groups[0].replicas[0].in_flight, 0);
}

TEST(LiveEndpoint, QueueFullAndTimeoutAreReported) {
  Fixture f(endpoint_spec(true, 1));
  RecordingWaiter w1;
  EXPECT_EQ(f.live.submit(1, 0, &w1).kind, Kind::kQueued);
  EXPECT_EQ(f.live.submit(2, 0, nullptr).kind, Kind::kQueueFull);
  f.clock.advance(31s);
  f.live.tick(0);
  ASSERT_TRUE(w1.outcome.has_value());
  EXPECT_EQ(w1.outcome->kind, Kind::kTimedOut);
  const EndpointView v = f.live.view();
  EXPECT_EQ(v.rejected_queue_full, 1u);
  EXPECT_EQ(v.timed_out, 1u);
}

TEST(LiveEndpoint, FinishAfterTheReplicaFailedDoesNotTouchItsReusedSlot) {
  Fixture f;
  f.live.tick(0);  // min 0: nothing
  RecordingWaiter w;
  f.live.submit(1, 0, &w);
  f.live.tick(0);
  f.live.on_replica_ready(f.prov.launched[0], f.clock.now(), "127.0.0.1:9001");
  const Dispatch first = *w.outcome;
  f.live.on_replica_failed(first.replica_id, f.clock.now(), "connection refused");
  EXPECT_EQ(f.prov.stopped.size(), 1u);
  f.live.finish(first);  // no effect: the replica is gone
  f.clock.advance(2s);
  RecordingWaiter w2;
  EXPECT_EQ(f.live.submit(2, 0, &w2).kind, Kind::kQueued);
  f.live.tick(0);
  ASSERT_EQ(f.prov.launched.size(), 2u);
  f.live.on_replica_ready(f.prov.launched[1], f.clock.now(), "127.0.0.1:9002");
  ASSERT_TRUE(w2.outcome.has_value());
  EXPECT_EQ(w2.outcome->slot, first.slot);  // reused slot, new replica
  f.live.finish(first);                     // stale: must not complete request 2
  EXPECT_EQ(f.live.view().groups[0].replicas[0].in_flight, 1);
  EXPECT_EQ(f.live.view().groups[0].status.last_error, "chat/local/1: connection refused");
}

TEST(LiveEndpoint, AConnectFailureFreesTheSlotAndFailsTheReplicaOnlyWhenItRepeats) {
  Fixture f;
  RecordingWaiter w;
  f.live.submit(1, 0, &w);
  f.live.tick(0);
  f.live.on_replica_ready(f.prov.launched[0], f.clock.now(), "127.0.0.1:9001");
  ASSERT_TRUE(w.outcome.has_value());
  f.live.unreachable(*w.outcome, "connection refused");
  EXPECT_TRUE(f.prov.stopped.empty());
  EXPECT_EQ(f.live.view().groups[0].status.ready, 1);
  EXPECT_EQ(f.live.view().groups[0].replicas[0].in_flight, 0);  // its slot is free again
  for (dispatch::RequestId id = 2; id <= 3; ++id) {
    const Dispatch d = f.live.submit(id, 0, nullptr);
    ASSERT_EQ(d.kind, Kind::kStarted);
    f.live.unreachable(d, "connection refused");
  }
  EXPECT_EQ(f.prov.stopped.size(), 1u);  // the third in a row
  EXPECT_EQ(f.live.view().groups[0].status.ready, 0);
}

TEST(LiveEndpoint, AnAdoptedReplicaKeepsTheColdStartOfTheRunThatLaunchedIt) {
  Fixture f;
  f.clock.advance(100s);
  const Time launched = f.clock.now() - 60s;
  ASSERT_TRUE(f.live.adopt("local", 3, "local pid=3", launched, launched + 1100ms));
  ASSERT_TRUE(f.live.adopt("local", 4, "local pid=4", launched));  // was not ready yet
  f.live.on_replica_ready(3, f.clock.now(), "127.0.0.1:9003");
  f.live.on_replica_ready(4, f.clock.now(), "127.0.0.1:9004");
  const EndpointView v = f.live.view();
  ASSERT_EQ(v.groups[0].replicas.size(), 2u);
  EXPECT_NEAR(v.groups[0].replicas[0].ready_after_s, 1.1, 1e-9);
  EXPECT_NEAR(v.groups[0].replicas[1].ready_after_s, 60, 1e-9);
}

TEST(LiveEndpoint, ShutdownWakesHeldRequestsAndRefusesNewOnes) {
  Fixture f;
  RecordingWaiter w;
  f.live.submit(1, 0, &w);
  f.live.shut_down();
  ASSERT_TRUE(w.outcome.has_value());
  EXPECT_EQ(w.outcome->kind, Kind::kShutdown);
  EXPECT_EQ(f.live.submit(2, 0, nullptr).kind, Kind::kShutdown);
}

TEST(LiveEndpoint, PassthroughRequestAbandonedAtABusyReplicaFreesItsSlotWhenItWouldStart) {
  config::EndpointSpec spec = endpoint_spec(/*hold=*/false);
  spec.groups[0].min_replicas = 1;
  Fixture f(spec);
  EXPECT_EQ(f.live.submit(1, 0, nullptr).kind, Kind::kNoReplica);
  f.live.tick(0);
  ASSERT_EQ(f.prov.launched.size(), 1u);
  f.live.on_replica_ready(f.prov.launched[0], f.clock.now(), "127.0.0.1:9001");
  const Dispatch a = f.live.submit(2, 0, nullptr);
  ASSERT_EQ(a.kind, Kind::kStarted);
  RecordingWaiter w;
  EXPECT_EQ(f.live.submit(3, 0, &w).kind, Kind::kQueued);  // waits at the busy replica
  EXPECT_TRUE(f.live.cancel(3));                           // its client went away
  f.live.finish(a);                                        // 3 starts and is completed at once
  EXPECT_EQ(w.wakes, 0);
  EXPECT_EQ(f.live.view().groups[0].replicas[0].in_flight, 0);
  EXPECT_EQ(f.live.submit(4, 0, nullptr).kind, Kind::kStarted);
}

TEST(LiveEndpoint, StatsCountEveryOutcomeWithLatencyQueueWaitAndColdStart) {
  Fixture f(endpoint_spec(true, 2));
  RecordingWaiter w1, w2;
  EXPECT_EQ(f.live.submit(1, 0, &w1).kind, Kind::kQueued);
  EXPECT_EQ(f.live.submit(2, 0, &w2).kind, Kind::kQueued);
  EXPECT_EQ(f.live.submit(3, 0, nullptr).kind, Kind::kQueueFull);
  f.live.tick(0);  // 2 held, queue_size 1: scales up
  ASSERT_EQ(f.prov.launched.size(), 2u);
  f.clock.advance(4s);
  f.live.on_replica_ready(f.prov.launched[0], f.clock.now(), "127.0.0.1:9001");
  ASSERT_TRUE(w1.outcome.has_value());
  EXPECT_TRUE(f.live.cancel(2, Outcome::kUnavailable));  // its deadline passed in the gateway
  f.clock.advance(1500ms);
  f.live.finish(*w1.outcome);
  const Dispatch d = f.live.submit(4, 0, nullptr);  // starts at once
  ASSERT_EQ(d.kind, Kind::kStarted);
  f.live.finish(d, Outcome::kTimeout);
  f.live.count(0, Outcome::kBadGateway);

  const GroupStats s = f.live.view().groups[0].stats;
  EXPECT_EQ(s.count(Outcome::kOk), 1u);
  EXPECT_EQ(s.count(Outcome::kQueueFull), 1u);
  EXPECT_EQ(s.count(Outcome::kUnavailable), 1u);
  EXPECT_EQ(s.count(Outcome::kTimeout), 1u);
  EXPECT_EQ(s.count(Outcome::kBadGateway), 1u);
  EXPECT_EQ(s.requests(), 5u);
  // Latency only of the answered one: 4 s held + 1.5 s in service.
  EXPECT_EQ(s.latency.count(), 1u);
  EXPECT_NEAR(s.latency.sum(), 5.5, 1e-9);
  // Queue waits of both started ones: 4 s, then 0.
  EXPECT_EQ(s.queue_wait.count(), 2u);
  EXPECT_NEAR(s.queue_wait.sum(), 4.0, 1e-9);
  EXPECT_EQ(s.cold_start.count(), 1u);
  EXPECT_NEAR(s.cold_start.sum(), 4.0, 1e-9);
  EXPECT_EQ(s.scale_ups, 1u);
  EXPECT_EQ(s.scale_downs, 0u);
  EXPECT_EQ(f.live.view().decisions_total, 1u);
}

TEST(LiveEndpoint, StreamedAnswersCountTtftAndTpotAndTeachATtftSloThePrefill) {
  config::EndpointSpec spec = endpoint_spec();
  spec.slo.ttft = 3s;
  Fixture f(spec);
  EXPECT_EQ(f.live.wait_budget(), 3s);
  RecordingWaiter w;
  EXPECT_EQ(f.live.submit(1, 0, &w).kind, Kind::kQueued);
  f.live.tick(0);
  ASSERT_EQ(f.prov.launched.size(), 1u);
  f.clock.advance(4s);
  f.live.on_replica_ready(f.prov.launched[0], f.clock.now(), "127.0.0.1:9001");
  ASSERT_TRUE(w.outcome.has_value());
  f.clock.advance(2s);
  // Held 4 s, first byte 0.8 s after it started, then an event every 50 ms.
  const StreamTimes times{.ttft = 4800ms, .tpot = 50ms};
  f.live.finish(*w.outcome, Outcome::kOk, &times);
  // An answer cut short counts no figures.
  const Dispatch d = f.live.submit(2, 0, nullptr);
  ASSERT_EQ(d.kind, Kind::kStarted);
  f.live.finish(d, Outcome::kClientGone, &times);

  const GroupStats s = f.live.view().groups[0].stats;
  EXPECT_EQ(s.ttft.count(), 1u);
  EXPECT_NEAR(s.ttft.sum(), 4.8, 1e-9);
  EXPECT_EQ(s.tpot.count(), 1u);
  EXPECT_NEAR(s.tpot.sum(), 0.05, 1e-9);
  // ttft 3 s less the 0.8 s prefill observed.
  EXPECT_EQ(f.live.wait_budget(), 2200ms);
}

TEST(LiveEndpoint, StatsCountTimeoutsShutdownAndPassthroughRefusals) {
  Fixture f(endpoint_spec(true, 10));
  RecordingWaiter w1, w2;
  f.live.submit(1, 0, &w1);
  f.clock.advance(31s);
  f.live.tick(0);  // w1 held past queue.timeout: 503
  f.live.submit(2, 0, &w2);
  f.live.shut_down();                                             // w2: 503
  EXPECT_EQ(f.live.submit(3, 0, nullptr).kind, Kind::kShutdown);  // 503
  EXPECT_EQ(f.live.view().groups[0].stats.count(Outcome::kUnavailable), 3u);

  config::EndpointSpec hf = endpoint_spec(/*hold=*/false);
  hf.groups[0].scaling.admission.reject_status = 502;
  Fixture p(hf);
  EXPECT_EQ(p.live.submit(1, 0, nullptr).kind, Kind::kNoReplica);
  EXPECT_EQ(p.live.view().groups[0].stats.count(Outcome::kBadGateway), 1u);
  EXPECT_EQ(outcome_label(Outcome::kClientGone), "client_gone");
}

TEST(LiveEndpoint, ProvisionerReportsReplicasThroughTheLockedWrapper) {
  // Regression: the provisioner was handed the inner Endpoint, so its events (on the control
  // thread) changed the dispatcher without the lock the gateway threads hold.
  Fixture f;
  RecordingWaiter w;
  f.live.submit(1, 0, &w);
  f.live.tick(0);
  ASSERT_NE(f.prov.events, nullptr);
  EXPECT_EQ(f.prov.events, static_cast<ReplicaEvents*>(&f.live));
  f.clock.advance(3s);
  f.prov.events->on_replica_ready(f.prov.launched[0], f.clock.now(), "127.0.0.1:9001");
  ASSERT_TRUE(w.outcome.has_value());
  EXPECT_EQ(f.live.view().groups[0].stats.cold_start.count(), 1u);
}

TEST(LiveEndpoint, CrashLoopingGroupAnswersHeldRequestsAtOnceWithTheLastError) {
  Fixture f;
  RecordingWaiter w;
  EXPECT_EQ(f.live.submit(1, 0, &w).kind, Kind::kQueued);
  f.live.tick(0);
  for (int failure = 1; failure <= kCrashLoopFailures; ++failure) {
    ASSERT_EQ(f.prov.launched.size(), static_cast<size_t>(failure));
    EXPECT_FALSE(w.outcome.has_value()) << "woken after " << failure - 1 << " failures";
    f.clock.advance(100ms);
    f.live.on_replica_failed(f.prov.launched.back(), f.clock.now(),
                             fmt::format("exited with status 2: bad port {{prot}} #{}", failure));
    f.clock.advance(5s);  // past the crash-loop backoff (1 s, 2 s): the next tick launches
    f.live.tick(0);
  }
  // Well before queue.timeout (30 s after submission): the request learns why.
  ASSERT_TRUE(w.outcome.has_value());
  EXPECT_EQ(w.outcome->kind, Kind::kFailing);
  EXPECT_EQ(w.outcome->error,
            "3 replicas in a row failed before getting ready; the last: chat/local/3: exited "
            "with status 2: bad port {prot} #3");
  EXPECT_EQ(f.live.view().groups[0].stats.count(Outcome::kUnavailable), 1u);
  // A new request is still held, for the next launch's chance; a replica that gets ready
  // serves it.
  RecordingWaiter w2;
  EXPECT_EQ(f.live.submit(2, 0, &w2).kind, Kind::kQueued);
  f.clock.advance(5s);  // past the backoff after 3 failures (4 s)
  f.live.tick(0);
  ASSERT_EQ(f.prov.launched.size(), 4u);
  f.live.on_replica_ready(f.prov.launched.back(), f.clock.now(), "127.0.0.1:9004");
  ASSERT_TRUE(w2.outcome.has_value());
  EXPECT_EQ(w2.outcome->kind, Kind::kStarted);
}

TEST(LiveEndpoint, FewerFailuresThanACrashLoopKeepRequestsHeld) {
  Fixture f;
  RecordingWaiter w;
  f.live.submit(1, 0, &w);
  f.live.tick(0);
  for (int failure = 1; failure < kCrashLoopFailures; ++failure) {
    f.live.on_replica_failed(f.prov.launched.back(), f.clock.now(), "killed by OOM");
    f.clock.advance(5s);
    f.live.tick(0);
  }
  EXPECT_FALSE(w.outcome.has_value());
  f.live.on_replica_ready(f.prov.launched.back(), f.clock.now(), "127.0.0.1:9003");
  ASSERT_TRUE(w.outcome.has_value());
  EXPECT_EQ(w.outcome->kind, Kind::kStarted);
}

}  // namespace
}  // namespace tide::control
