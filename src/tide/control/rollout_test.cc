#include "tide/control/rollout.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <vector>

#include "tide/control/endpoint.h"
#include "tide/testing/fake_provisioner.h"

namespace tide::control {
namespace {

using namespace std::chrono_literals;
using dispatch::ReplicaSlot;
using dispatch::RequestId;
using test::FakeProvisioner;
using ::testing::HasSubstr;

Time at(double s) { return time_at_seconds(s); }

TEST(RolloutPlan, SurgesOneThenDrainsOneOldOnlyOnceTheNewIsReady) {
  const config::RolloutSpec limits;  // max_surge 1, max_unavailable 0
  RolloutStep s = plan_rollout_step({.desired = 2, .old_ready = 2}, limits);
  EXPECT_EQ(s.launch_new, 1);
  EXPECT_EQ(s.drain_old_ready, 0);
  s = plan_rollout_step({.desired = 2, .old_ready = 2, .new_starting = 1}, limits);
  EXPECT_EQ(s.launch_new, 0);  // waits for it to be ready
  EXPECT_EQ(s.drain_old_ready, 0);
  s = plan_rollout_step({.desired = 2, .old_ready = 2, .new_ready = 1}, limits);
  EXPECT_EQ(s.launch_new, 0);
  EXPECT_EQ(s.drain_old_ready, 1);
  s = plan_rollout_step({.desired = 2, .old_ready = 1, .new_ready = 1}, limits);
  EXPECT_EQ(s.launch_new, 1);
  EXPECT_EQ(s.drain_old_ready, 0);
}

TEST(RolloutPlan, MaxUnavailableDrainsBeforeTheNewAreReadyAndOldStartingOnesStop) {
  const config::RolloutSpec limits{.max_surge = 0, .max_unavailable = 1};
  const RolloutStep s =
      plan_rollout_step({.desired = 3, .old_ready = 3, .old_starting = 1}, limits);
  EXPECT_EQ(s.launch_new, 0);
  EXPECT_EQ(s.drain_old_ready, 1);
  EXPECT_EQ(s.stop_old_starting, 1);
  const RolloutStep wide = plan_rollout_step({.desired = 3, .old_ready = 3}, {3, 0});
  EXPECT_EQ(wide.launch_new, 3);
}

TEST(RolloutPlan, FollowsTheDesiredCountWhileRolling) {
  const config::RolloutSpec limits;
  RolloutStep s = plan_rollout_step({.desired = 0, .old_ready = 2}, limits);
  EXPECT_EQ(s.launch_new, 0);
  EXPECT_EQ(s.drain_old_ready, 2);
  s = plan_rollout_step({.desired = 4, .old_ready = 2}, limits);
  EXPECT_EQ(s.launch_new, 3);
}

struct Sink : RequestSink {
  std::map<RequestId, ReplicaSlot> started;
  void on_start(RequestId r, ReplicaSlot s, Time) override { started[r] = s; }
  void on_timeout(RequestId, Time) override {}
  void on_replica_lost(ReplicaSlot, const std::vector<RequestId>&, Time) override {}
};

config::EndpointSpec two_replicas(const std::string& command) {
  config::EndpointSpec ep;
  ep.name = "chat";
  config::GroupSpec g;
  g.name = "gpu";
  g.min_replicas = 2;
  g.max_replicas = 4;
  g.provisioner.command = {command};
  g.scaling.policy = config::PolicyKind::kQueue;
  g.scaling.queue.queue_size = 1;
  g.scaling.queue.idle_timeout = 30s;
  ep.groups.push_back(g);
  return ep;
}

// An endpoint at two ready replicas of template generation 1, on an injected clock.
struct Rollout : ::testing::Test {
  FakeProvisioner prov;
  Sink sink;
  Endpoint ep{two_replicas("v1"), prov, sink, nullptr, at(0)};
  void SetUp() override {
    ep.tick(0, at(0));
    ASSERT_EQ(prov.launched.size(), 2u);
    for (uint64_t id : prov.launched) prov.events->on_replica_ready(id, at(1), "");
    ASSERT_EQ(ep.status(0).ready, 2);
  }
  int generation_of(uint64_t id) const { return ep.replica(id)->generation; }
};

TEST_F(Rollout, ReplacesOneAtATimeWithoutCuttingARequestShort) {
  ASSERT_EQ(ep.reconfigure(two_replicas("v2"), at(2)), "");
  EXPECT_EQ(ep.status(0).rollout.state, RolloutStatus::State::kRolling);
  EXPECT_EQ(ep.status(0).rollout.generation, 2);
  // A request in flight on one old replica (the busy one drains last).
  ASSERT_EQ(ep.submit(1, 0, at(2)), dispatch::Admit::kStarted);

  ep.tick(0, at(3));  // surge one
  ASSERT_EQ(prov.launched.size(), 3u);
  const uint64_t first_new = prov.launched[2];
  EXPECT_EQ(generation_of(first_new), 2);
  ep.tick(0, at(4));  // not ready yet: nothing more, nothing drained
  EXPECT_EQ(prov.launched.size(), 3u);
  EXPECT_TRUE(prov.stopped.empty());
  EXPECT_EQ(ep.status(0).ready, 2);

  prov.events->on_replica_ready(first_new, at(5), "");
  ep.tick(0, at(6));  // drains the idle old replica: it stops at once
  ASSERT_EQ(prov.stopped.size(), 1u);
  EXPECT_EQ(ep.status(0).ready, 2);
  ep.tick(0, at(7));  // the second surge
  ASSERT_EQ(prov.launched.size(), 4u);
  prov.events->on_replica_ready(prov.launched[3], at(8), "");
  ep.tick(0, at(9));  // the busy old replica drains: it keeps its request
  EXPECT_EQ(prov.stopped.size(), 1u);
  EXPECT_EQ(ep.status(0).draining, 1);
  ep.complete(sink.started[1], at(10), 8s);
  EXPECT_EQ(prov.stopped.size(), 2u);

  ep.tick(0, at(11));
  const GroupStatus s = ep.status(0);
  EXPECT_EQ(s.rollout.state, RolloutStatus::State::kComplete);
  EXPECT_EQ(s.rollout.old_replicas, 0);
  EXPECT_EQ(s.rollout.new_replicas, 2);
  EXPECT_EQ(s.ready, 2);
  EXPECT_EQ(prov.launched.size(), 4u);
}

TEST_F(Rollout, AFailingTemplateStopsTheRolloutAndKeepsTheOldReplicas) {
  ASSERT_EQ(ep.reconfigure(two_replicas("broken"), at(2)), "");
  double t = 3;
  for (int i = 0; i < kRolloutFailuresToStop; ++i) {
    const size_t before = prov.launched.size();
    // Ticks until the crash-loop backoff lets it launch again.
    while (prov.launched.size() == before && t < 300) ep.tick(0, at(t += 0.5));
    ASSERT_EQ(prov.launched.size(), before + 1) << "launch " << i;
    EXPECT_EQ(ep.status(0).rollout.state, RolloutStatus::State::kRolling);
    prov.events->on_replica_failed(prov.launched.back(), at(t), "exited with status 1");
  }
  const GroupStatus s = ep.status(0);
  EXPECT_EQ(s.rollout.state, RolloutStatus::State::kStopped);
  EXPECT_THAT(s.rollout.reason, HasSubstr("exited with status 1"));
  EXPECT_EQ(s.rollout.old_replicas, 2);
  EXPECT_EQ(s.ready, 2);
  const size_t launched = prov.launched.size();
  for (int i = 0; i < 200; ++i) ep.tick(0, at(t += 1));
  EXPECT_EQ(prov.launched.size(), launched);  // no more surges
  EXPECT_EQ(ep.status(0).ready, 2);

  // Fixing the template starts the rollout again.
  ASSERT_EQ(ep.reconfigure(two_replicas("v3"), at(t)), "");
  EXPECT_EQ(ep.status(0).rollout.state, RolloutStatus::State::kRolling);
  EXPECT_EQ(ep.status(0).rollout.generation, 3);
  EXPECT_TRUE(ep.status(0).rollout.reason.empty());
}

TEST_F(Rollout, OtherChangesStartNoRollout) {
  config::EndpointSpec next = two_replicas("v1");
  next.groups[0].max_replicas = 3;
  next.groups[0].provisioner.ready.path = "/ready";
  ASSERT_EQ(ep.reconfigure(next, at(2)), "");
  EXPECT_EQ(ep.status(0).rollout.state, RolloutStatus::State::kNone);
  EXPECT_EQ(ep.status(0).rollout.generation, 1);
  ep.tick(0, at(3));
  EXPECT_EQ(prov.launched.size(), 2u);
}

// After a restart with a changed file: the replicas the previous run left are adopted, those of
// the old template (by the fingerprint the state file kept) are replaced as after a PUT, and
// none is stopped before it is found ready again.
TEST(RolloutAfterRestart, AdoptedReplicasOfAnotherTemplateAreReplacedOnceFoundReady) {
  FakeProvisioner prov;
  Sink sink;
  Endpoint ep(two_replicas("v2"), prov, sink, nullptr, at(100));
  const std::string v1 = config::launch_template_fingerprint(two_replicas("v1").groups[0]);
  const std::string v2 = config::launch_template_fingerprint(two_replicas("v2").groups[0]);
  ASSERT_NE(v1, v2);
  ASSERT_TRUE(ep.adopt(0, 1, "local pid=1", at(0), at(1), v2));  // already the new one
  ASSERT_TRUE(ep.adopt(0, 2, "local pid=2", at(0), at(1), v1));
  ASSERT_TRUE(ep.adopt(0, 3, "local pid=3", at(0), at(1), v1));
  EXPECT_EQ(ep.status(0).rollout.state, RolloutStatus::State::kRolling);
  EXPECT_EQ(ep.status(0).rollout.generation, 2);
  EXPECT_EQ(ep.replica(1)->generation, 2);
  EXPECT_EQ(ep.replica(2)->generation, 1);
  EXPECT_EQ(ep.replica(3)->template_id, v1);

  ep.tick(0, at(100));  // still being found: nothing stopped, nothing surged
  EXPECT_TRUE(prov.stopped.empty());
  for (uint64_t id : {1, 2, 3}) prov.events->on_replica_ready(id, at(101), "");
  for (double t = 102; t < 140 && ep.status(0).rollout.state == RolloutStatus::State::kRolling;
       t += 1) {
    ep.tick(0, at(t));
    EXPECT_GE(ep.status(0).ready, 2) << "at " << t << " s: never fewer ready than before";
    for (uint64_t id : prov.launched) {
      const Replica* r = ep.replica(id);
      if (r != nullptr && r->active() && r->state != ReplicaState::kReady)
        prov.events->on_replica_ready(id, at(t + 0.5), "");
    }
  }
  const GroupStatus s = ep.status(0);
  EXPECT_EQ(s.rollout.state, RolloutStatus::State::kComplete);
  EXPECT_EQ(s.rollout.old_replicas, 0);
  EXPECT_EQ(s.rollout.new_replicas, s.ready);
  std::vector<uint64_t> stopped = prov.stopped;
  std::sort(stopped.begin(), stopped.end());
  EXPECT_EQ(stopped, (std::vector<uint64_t>{2, 3}));
  for (uint64_t id : prov.launched) EXPECT_EQ(ep.replica(id)->template_id, v2);
}

TEST(RolloutAfterRestart, ReplicasOfAnUnknownTemplateCountAsTheCurrentOne) {
  FakeProvisioner prov;
  Sink sink;
  Endpoint ep(two_replicas("v2"), prov, sink, nullptr, at(100));
  ASSERT_TRUE(ep.adopt(0, 1, "local pid=1", at(0), at(1), ""));  // a state file of schema 2
  EXPECT_EQ(ep.status(0).rollout.state, RolloutStatus::State::kNone);
  EXPECT_EQ(ep.replica(1)->template_id,
            config::launch_template_fingerprint(two_replicas("v2").groups[0]));
}

}  // namespace
}  // namespace tide::control
