#include <gtest/gtest.h>

#include "tide/policy/decider.h"
#include "tide/policy/policies.h"
#include "tide/policy/policy_test_util.h"

namespace tide::policy {
namespace {

using namespace std::chrono_literals;
using testing::Driver;
using testing::GroupState;

config::GroupSpec queue_group(int queue_size, int max_replicas) {
  config::GroupSpec g;
  g.name = "gpu";
  g.min_replicas = 0;
  g.max_replicas = max_replicas;
  g.concurrency = 1;
  g.scaling.policy = config::PolicyKind::kQueue;
  g.scaling.queue.queue_size = queue_size;
  g.scaling.queue.idle_timeout = 30s;
  return g;
}

// ViewComfy example 1: queue size 1, max 4, min 0; 10 requests at once with no GPU running:
// 4 GPUs are turned on right away.
TEST(QueuePolicy, ViewComfyExample1TenRequestsStartFourAtOnce) {
  auto decider = make_decider(queue_group(1, 4));
  Driver drive(*decider);
  const Decision d = drive.first({.queued = 10, .min_replicas = 0, .max_replicas = 4});
  EXPECT_EQ(d.desired, 4);
  EXPECT_NE(d.reason.find("queued 10 > queue_size 1 x 0 replicas: 0 -> 10"), std::string::npos)
      << d.reason;
  EXPECT_NE(d.reason.find("capped at max 4"), std::string::npos) << d.reason;
}

// ...then each GPU finishes and, once idle for 30 s, turns off, until none are left.
TEST(QueuePolicy, ViewComfyExample1AllTurnOffAfterIdle) {
  auto decider = make_decider(queue_group(1, 4));
  Driver drive(*decider);
  GroupState g{.ready = 4, .max_replicas = 4};
  g.idle_for = {29s, 29s, 10s, 1s};
  EXPECT_EQ(drive.first(g).desired, 4);
  g.idle_for = {30s, 30s, 11s, 2s};
  const Decision d = drive.tick(g);
  EXPECT_EQ(d.desired, 2);
  EXPECT_EQ(d.reason, "2 replicas idle >= 30s: 4 -> 2");
  g = {.ready = 2, .max_replicas = 4};
  g.idle_for = {30s, 30s};
  EXPECT_EQ(drive.tick(g).desired, 0);
}

// ViewComfy example 2: queue size 2. Two requests with no GPU: one GPU. Two more arrive while
// the first request runs and the second waits: the queue grows to 3 and a second GPU starts.
TEST(QueuePolicy, ViewComfyExample2SecondGpuWhenQueueExceedsSize) {
  auto decider = make_decider(queue_group(2, 4));
  Driver drive(*decider);
  Decision d = drive.first({.queued = 2, .max_replicas = 4});
  EXPECT_EQ(d.desired, 1);
  EXPECT_EQ(d.reason, "queued 2 > queue_size 2 x 0 replicas: 0 -> 1");
  // The GPU is starting; both requests still wait. 2 is not above 2 x 1.
  EXPECT_EQ(drive.tick({.starting = 1, .queued = 2, .max_replicas = 4}).desired, 1);
  // Ready: one request in service, one queued.
  EXPECT_EQ(drive.tick({.ready = 1, .queued = 1, .in_flight = 1, .max_replicas = 4}).desired, 1);
  // Two more arrive: queued 3 > 2 x 1.
  d = drive.tick({.ready = 1, .queued = 3, .in_flight = 1, .max_replicas = 4});
  EXPECT_EQ(d.desired, 2);
  EXPECT_EQ(d.reason, "queued 3 > queue_size 2 x 1 replicas: 1 -> 2");
}

TEST(QueuePolicy, IdleReplicasNeverGoBelowWhatTheQueueNeeds) {
  auto decider = make_queue_policy({.queue_size = 2, .idle_timeout = 30s});
  Driver drive(*decider);
  GroupState g{.ready = 4, .queued = 3};
  g.idle_for = {40s, 35s, 31s};  // (a replica frees up between dispatches)
  const Decision d = drive.first(g);
  EXPECT_EQ(d.desired, 2);  // 4 - 3 = 1, but ceil(3 / 2) = 2
}

TEST(QueuePolicy, NoChangeSaysWhy) {
  auto decider = make_queue_policy({.queue_size = 2, .idle_timeout = 30s});
  Driver drive(*decider);
  GroupState g{.ready = 2, .queued = 4, .in_flight = 2};
  g.idle_for = {};
  const Decision d = drive.first(g);
  EXPECT_EQ(d.desired, 2);
  EXPECT_EQ(d.reason, "no change: queued 4 <= queue_size 2 x 2 replicas, none idle >= 30s");
}

TEST(QueuePolicy, RespectsMinReplicasThroughMakeDecider) {
  config::GroupSpec spec = queue_group(1, 4);
  spec.min_replicas = 1;
  auto decider = make_decider(spec);
  Driver drive(*decider);
  GroupState g{.ready = 2, .min_replicas = 1, .max_replicas = 4};
  g.idle_for = {60s, 60s};
  const Decision d = drive.first(g);
  EXPECT_EQ(d.desired, 1);
  EXPECT_NE(d.reason.find("raised to min 1"), std::string::npos) << d.reason;
}

}  // namespace
}  // namespace tide::policy
