#include "tide/control/endpoint.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace tide::control {
namespace {

using namespace std::chrono_literals;
using dispatch::Admit;
using dispatch::ReplicaSlot;
using dispatch::RequestId;

Time at(double s) { return time_at_seconds(s); }

// Launches nothing by itself: the test says when each replica is ready.
struct FakeProvisioner : Provisioner {
  std::vector<uint64_t> launched;
  std::vector<uint64_t> stopped;
  ReplicaEvents* events = nullptr;
  void launch(const Replica& r, const config::GroupSpec&, ReplicaEvents& e) override {
    launched.push_back(r.id);
    events = &e;
  }
  void stop(const Replica& r) override { stopped.push_back(r.id); }
};

struct Sink : RequestSink {
  std::map<RequestId, ReplicaSlot> started;
  std::vector<RequestId> timed_out;
  void on_start(RequestId r, ReplicaSlot s, Time) override { started[r] = s; }
  void on_timeout(RequestId r, Time) override { timed_out.push_back(r); }
  void on_replica_lost(ReplicaSlot, const std::vector<RequestId>&, Time) override {}
};

struct Decisions : DecisionSink {
  std::vector<DecisionRecord> records;
  void record(const DecisionRecord& d) override { records.push_back(d); }
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

}  // namespace
}  // namespace tide::control
