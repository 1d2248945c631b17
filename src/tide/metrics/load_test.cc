#include "tide/metrics/load.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace tide::metrics {
namespace {

using namespace std::chrono_literals;

// Feeds one replica with `slots` slots, requests of `service_s` seconds arriving every `every_s`
// seconds (never overlapping more than the slots allow), in 1 s intervals, for `seconds`.
// Returns the load of each interval.
std::vector<LoadSample> periodic(double slots, double service_s, double every_s, double seconds,
                                 double work_per_request) {
  LoadEstimator e;
  std::vector<LoadSample> out;
  for (int t = 0; t < static_cast<int>(seconds); ++t) {
    LoadInterval in;
    in.seconds = 1;
    in.slots = slots;
    const double phase = std::fmod(static_cast<double>(t), every_s);
    in.arrivals = phase == 0 ? 1 : 0;
    in.avg_in_service = phase < service_s ? 1 : 0;
    const bool completes = t >= static_cast<int>(service_s) &&
                           std::fmod(static_cast<double>(t) - service_s, every_s) == 0;
    in.completions = completes ? 1 : 0;
    in.work = completes ? work_per_request : 0;
    in.service_s = completes ? service_s : 0;
    out.push_back(e.update(in));
  }
  return out;
}

TEST(LoadEstimator, BeforeAnyCompletionLoadIsSlotOccupancy) {
  LoadEstimator e;
  const LoadSample s = e.update({.seconds = 1,
                                 .slots = 4,
                                 .avg_in_service = 2,
                                 .avg_queued = 1,
                                 .arrivals = 3,
                                 .completions = 0,
                                 .work = 0,
                                 .service_s = 0});
  EXPECT_FALSE(s.learned);
  EXPECT_DOUBLE_EQ(s.load, 0.75);
  EXPECT_DOUBLE_EQ(s.capacity, 0.0);
}

TEST(LoadEstimator, OneLongRequestAtATimeOnABatchingReplicaIsLightLoad) {
  // The seed's case: 8 s requests, one every 10 s, on a replica with 4 slots. nvidia-smi would
  // read 80% busy; the replica could serve four such streams.
  const auto samples = periodic(4, 8, 10, 600, 1);
  for (size_t i = 60; i < samples.size(); ++i) {
    ASSERT_TRUE(samples[i].learned);
    EXPECT_LT(samples[i].load, 0.35) << "at " << i;
    EXPECT_GT(samples[i].load, 0.15) << "at " << i;
    EXPECT_NEAR(samples[i].capacity, 4.0 / 8.0, 1e-9);  // 4 slots x 1 request per 8 s
  }
}

TEST(LoadEstimator, TheWorkUnitCancelsOut) {
  const auto requests = periodic(2, 3, 4, 120, 1);
  const auto tokens = periodic(2, 3, 4, 120, 250);
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_NEAR(requests[i].load, tokens[i].load, 1e-9) << "at " << i;
    EXPECT_NEAR(tokens[i].capacity, 250 * requests[i].capacity, 1e-6) << "at " << i;
  }
}

TEST(LoadEstimator, ASaturatedReplicaWithAQueueReadsAboveOne) {
  LoadEstimator e;
  LoadSample s;
  // 2 slots always busy with 1 s requests, 2 more waiting, 2 arriving and completing per second.
  for (int t = 0; t < 30; ++t) {
    s = e.update({.seconds = 1,
                  .slots = 2,
                  .avg_in_service = 2,
                  .avg_queued = 2,
                  .arrivals = 2,
                  .completions = 2,
                  .work = 2,
                  .service_s = 2});
  }
  EXPECT_TRUE(s.learned);
  EXPECT_NEAR(s.capacity, 2.0, 1e-9);
  EXPECT_NEAR(s.demand, 4.0, 1e-9);  // what is in service and waiting
  EXPECT_NEAR(s.load, 2.0, 1e-9);
  EXPECT_NEAR(s.throughput, 2.0, 1e-9);
}

TEST(LoadEstimator, AnEmptyIntervalChangesNothing) {
  LoadEstimator e;
  const LoadSample a = e.update({.seconds = 1,
                                 .slots = 1,
                                 .avg_in_service = 1,
                                 .avg_queued = 0,
                                 .arrivals = 1,
                                 .completions = 1,
                                 .work = 1,
                                 .service_s = 1});
  const LoadSample b = e.update({});
  EXPECT_DOUBLE_EQ(a.load, b.load);
  EXPECT_DOUBLE_EQ(e.slot_rate(), 1.0);
}

}  // namespace
}  // namespace tide::metrics
