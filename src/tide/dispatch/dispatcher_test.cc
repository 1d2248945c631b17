#include "tide/dispatch/dispatcher.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace tide::dispatch {
namespace {

using namespace std::chrono_literals;

Time at(double s) { return time_at_seconds(s); }

struct Recorder : DispatchListener {
  std::vector<std::pair<RequestId, ReplicaSlot>> started;
  std::vector<std::pair<RequestId, Time>> timed_out;
  std::vector<ReplicaSlot> drained;
  void on_start(RequestId r, ReplicaSlot s, Time) override { started.emplace_back(r, s); }
  void on_timeout(RequestId r, Time t) override { timed_out.emplace_back(r, t); }
  void on_drained(ReplicaSlot s, Time) override { drained.push_back(s); }
};

TEST(Dispatcher, HoldsRequestsUntilAReplicaIsReadyThenStartsThemInOrder) {
  Recorder rec;
  Dispatcher d({.max_queue = 10, .queue_timeout = 30s}, rec);
  const int g = d.add_group(2, /*hold=*/true, at(0));
  EXPECT_EQ(d.submit(1, g, at(0)), Admit::kQueued);
  EXPECT_EQ(d.submit(2, g, at(0)), Admit::kQueued);
  EXPECT_EQ(d.submit(3, g, at(0)), Admit::kQueued);
  EXPECT_EQ(d.queued(g), 3);
  const ReplicaSlot s = d.add_replica(g, at(5));
  ASSERT_EQ(rec.started.size(), 2u);  // concurrency 2
  EXPECT_EQ(rec.started[0].first, 1u);
  EXPECT_EQ(rec.started[1].first, 2u);
  EXPECT_EQ(d.queued(g), 1);
  d.complete(s, at(6), 1s);
  ASSERT_EQ(rec.started.size(), 3u);
  EXPECT_EQ(rec.started[2].first, 3u);
  EXPECT_EQ(d.queued(g), 0);
}

TEST(Dispatcher, PicksTheReplicaWithFewestOutstanding) {
  Recorder rec;
  Dispatcher d({}, rec);
  const int g = d.add_group(4, true, at(0));
  const ReplicaSlot a = d.add_replica(g, at(0));
  const ReplicaSlot b = d.add_replica(g, at(0));
  for (RequestId r = 0; r < 4; ++r) ASSERT_EQ(d.submit(r, g, at(1)), Admit::kStarted);
  EXPECT_EQ(d.outstanding(a), 2);
  EXPECT_EQ(d.outstanding(b), 2);
  d.complete(a, at(2), 1s);
  d.complete(a, at(2), 1s);
  ASSERT_EQ(d.submit(9, g, at(3)), Admit::kStarted);
  EXPECT_EQ(rec.started.back().second, a);
}

TEST(Dispatcher, FullQueueRejectsAndDeadlineTimesOut) {
  Recorder rec;
  Dispatcher d({.max_queue = 2, .queue_timeout = 10s}, rec);
  const int g = d.add_group(1, true, at(0));
  EXPECT_EQ(d.submit(1, g, at(0)), Admit::kQueued);
  EXPECT_EQ(d.submit(2, g, at(1)), Admit::kQueued);
  EXPECT_EQ(d.submit(3, g, at(2)), Admit::kRejectedQueueFull);
  d.expire(at(9.9));
  EXPECT_TRUE(rec.timed_out.empty());
  d.expire(at(10));
  ASSERT_EQ(rec.timed_out.size(), 1u);
  EXPECT_EQ(rec.timed_out[0].first, 1u);
  EXPECT_EQ(rec.timed_out[0].second, at(10));
  // A replica ready after the second deadline must not start the expired request.
  d.add_replica(g, at(12));
  EXPECT_TRUE(rec.started.empty());
  EXPECT_EQ(rec.timed_out.size(), 2u);
}

TEST(Dispatcher, DrainWaitsForInFlightWorkAndTakesNoNewWork) {
  Recorder rec;
  Dispatcher d({}, rec);
  const int g = d.add_group(2, true, at(0));
  const ReplicaSlot a = d.add_replica(g, at(0));
  ASSERT_EQ(d.submit(1, g, at(0)), Admit::kStarted);
  d.drain(a, at(1));
  EXPECT_TRUE(rec.drained.empty());
  EXPECT_EQ(d.submit(2, g, at(1)), Admit::kQueued);  // not given to the draining replica
  d.complete(a, at(2), 2s);
  ASSERT_EQ(rec.drained.size(), 1u);
  EXPECT_EQ(rec.drained[0], a);
  EXPECT_EQ(d.queued(g), 1);
}

TEST(Dispatcher, UndrainTakesHeldWorkAgain) {
  Recorder rec;
  Dispatcher d({}, rec);
  const int g = d.add_group(1, true, at(0));
  const ReplicaSlot a = d.add_replica(g, at(0));
  ASSERT_EQ(d.submit(1, g, at(0)), Admit::kStarted);
  d.drain(a, at(1));
  EXPECT_EQ(d.submit(2, g, at(1)), Admit::kQueued);
  d.undrain(a, at(1));
  d.complete(a, at(2), 2s);
  EXPECT_TRUE(rec.drained.empty());
  ASSERT_EQ(rec.started.size(), 2u);
  EXPECT_EQ(rec.started[1].first, 2u);
}

TEST(Dispatcher, PassthroughRejectsWithoutReadyReplicaAndQueuesAtTheReplica) {
  Recorder rec;
  Dispatcher d({}, rec);
  const int g = d.add_group(1, /*hold=*/false, at(0));
  EXPECT_EQ(d.submit(1, g, at(0)), Admit::kRejectedNoReplica);
  const ReplicaSlot a = d.add_replica(g, at(1));
  EXPECT_EQ(d.submit(2, g, at(1)), Admit::kStarted);
  EXPECT_EQ(d.submit(3, g, at(1)), Admit::kQueued);  // waits in the replica's own queue
  EXPECT_EQ(d.outstanding(a), 2);
  EXPECT_EQ(d.queued(g), 1);
  d.complete(a, at(2), 1s);
  ASSERT_EQ(rec.started.size(), 2u);
  EXPECT_EQ(rec.started[1].first, 3u);
}

TEST(Dispatcher, IntegratesLoadAndUtilizationOverAnInterval) {
  Recorder rec;
  Dispatcher d({}, rec);
  const int g = d.add_group(8, true, at(0));
  d.add_replica(g, at(0));
  d.add_replica(g, at(0));
  ASSERT_EQ(d.submit(1, g, at(0)), Admit::kStarted);  // one long request on one replica
  d.take_interval(g, at(0));
  d.complete(rec.started[0].second, at(5), 5s);
  const GroupLoad load = d.take_interval(g, at(10));
  EXPECT_DOUBLE_EQ(load.avg_in_flight, 0.5);
  EXPECT_DOUBLE_EQ(load.avg_ready, 2.0);
  EXPECT_DOUBLE_EQ(load.avg_busy_replicas, 0.5);  // nvidia-smi: 25% per replica on average
  EXPECT_EQ(load.completions, 1u);
  EXPECT_DOUBLE_EQ(load.mean_service_s, 5.0);
  EXPECT_DOUBLE_EQ(load.peak_demand, 1.0);
}

TEST(Dispatcher, ReportsTheFirstTwoMomentsOfEachIntervalsServiceTimes) {
  Recorder rec;
  Dispatcher d({}, rec);
  const int g = d.add_group(8, true, at(0));
  const ReplicaSlot a = d.add_replica(g, at(0));
  for (RequestId r = 1; r <= 3; ++r) ASSERT_EQ(d.submit(r, g, at(0)), Admit::kStarted);
  d.take_interval(g, at(0));
  d.complete(a, at(1), 1s);
  d.complete(a, at(3), 3s);
  GroupLoad load = d.take_interval(g, at(4));
  EXPECT_EQ(load.completions, 2u);
  EXPECT_DOUBLE_EQ(load.service_sum_s, 4.0);       // 1 + 3
  EXPECT_DOUBLE_EQ(load.service_sq_sum_s2, 10.0);  // 1 + 9
  // Each interval reports only its own completions; the running mean covers all of them.
  d.complete(a, at(6), 6s);
  load = d.take_interval(g, at(8));
  EXPECT_DOUBLE_EQ(load.service_sum_s, 6.0);
  EXPECT_DOUBLE_EQ(load.service_sq_sum_s2, 36.0);
  EXPECT_DOUBLE_EQ(load.mean_service_s, 10.0 / 3.0);
  load = d.take_interval(g, at(9));
  EXPECT_EQ(load.completions, 0u);
  EXPECT_DOUBLE_EQ(load.service_sum_s, 0.0);
  EXPECT_DOUBLE_EQ(load.service_sq_sum_s2, 0.0);
}

TEST(Dispatcher, OneRequestReadsAsFullUtilizationWithFreeSlots) {
  // The seed's complaint: a single 8 s request pegs nvidia-smi while 7 of 8 slots are free.
  Recorder rec;
  Dispatcher d({}, rec);
  const int g = d.add_group(8, true, at(0));
  d.add_replica(g, at(0));
  d.take_interval(g, at(0));
  ASSERT_EQ(d.submit(1, g, at(0)), Admit::kStarted);
  const GroupLoad load = d.take_interval(g, at(8));
  EXPECT_DOUBLE_EQ(load.avg_busy_replicas / load.avg_ready, 1.0);
  EXPECT_DOUBLE_EQ(load.avg_in_flight / 8.0, 0.125);
}

TEST(Dispatcher, CountsStartsThatWaitedLongerThanTheSlo) {
  Recorder rec;
  Dispatcher d({.max_queue = 10, .queue_timeout = 30s, .late_after = 2s}, rec);
  const int g = d.add_group(1, true, at(0));
  d.submit(1, g, at(0));
  d.submit(2, g, at(0));
  d.submit(3, g, at(0));
  const ReplicaSlot s = d.add_replica(g, at(1));  // request 1 waited 1 s: on time
  d.complete(s, at(5), 4s);                       // request 2 waited 5 s: late
  d.expire(at(40));                               // request 3 timed out: late
  const GroupLoad load = d.take_interval(g, at(40));
  EXPECT_EQ(load.started, 3u);
  EXPECT_EQ(load.late, 2u);
  d.complete(s, at(41), 36s);
  EXPECT_EQ(d.submit(4, g, at(41)), Admit::kStarted);
  EXPECT_EQ(d.take_interval(g, at(42)).started, 1u);
}

TEST(Dispatcher, CancelRemovesAHeldRequest) {
  Recorder rec;
  Dispatcher d({}, rec);
  const int g = d.add_group(1, true, at(0));
  d.submit(1, g, at(0));
  d.submit(2, g, at(0));
  EXPECT_TRUE(d.cancel(1, at(1)));
  EXPECT_FALSE(d.cancel(1, at(1)));
  d.add_replica(g, at(2));
  ASSERT_EQ(rec.started.size(), 1u);
  EXPECT_EQ(rec.started[0].first, 2u);
}

TEST(Dispatcher, RemovedReplicaReturnsItsLocalQueueAndSlotIsReused) {
  Recorder rec;
  Dispatcher d({}, rec);
  const int g = d.add_group(1, false, at(0));
  const ReplicaSlot a = d.add_replica(g, at(0));
  d.submit(1, g, at(0));
  d.submit(2, g, at(0));
  const auto orphans = d.remove(a, at(1));
  ASSERT_EQ(orphans.size(), 1u);
  EXPECT_EQ(orphans[0], 2u);
  EXPECT_EQ(d.in_flight(g), 0);
  EXPECT_EQ(d.queued(g), 0);
  EXPECT_EQ(d.add_replica(g, at(2)), a);
}

TEST(Dispatcher, SpreadsLoadEvenlyOverManyReplicas) {
  Recorder rec;
  Dispatcher d({}, rec);
  const int g = d.add_group(8, true, at(0));
  std::vector<ReplicaSlot> slots;
  for (int i = 0; i < 100; ++i) slots.push_back(d.add_replica(g, at(0)));
  for (RequestId r = 0; r < 400; ++r) ASSERT_EQ(d.submit(r, g, at(1)), Admit::kStarted);
  for (ReplicaSlot s : slots) EXPECT_EQ(d.outstanding(s), 4);
}

}  // namespace
}  // namespace tide::dispatch
