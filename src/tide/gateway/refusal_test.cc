#include "tide/gateway/refusal.h"

#include <gtest/gtest.h>

namespace tide::gateway {
namespace {

using namespace std::chrono_literals;
using Kind = control::Dispatch::Kind;

config::EndpointSpec endpoint(int reject_status = 503) {
  config::EndpointSpec ep;
  ep.name = "chat";
  ep.queue.max_length = 100;
  ep.queue.timeout = 30s;
  config::GroupSpec g;
  g.name = "gpu";
  g.scaling.admission.reject_status = reject_status;
  ep.groups.push_back(g);
  return ep;
}

// The refusal for a dispatch of `kind`, counting how often Retry-After was asked.
std::optional<Refusal> refusal(Kind kind, const config::EndpointSpec& ep, int& asked) {
  control::Dispatch d;
  d.kind = kind;
  d.error = "exit status 1";
  return refusal_for(d, ep, [&] {
    ++asked;
    return 7;
  });
}

TEST(Refusal, StartedAndLostAreNotRefusals) {
  int asked = 0;
  EXPECT_FALSE(refusal(Kind::kStarted, endpoint(), asked));
  EXPECT_FALSE(refusal(Kind::kLost, endpoint(), asked));
  EXPECT_EQ(asked, 0);
}

TEST(Refusal, AFullQueueIs429WithRetryAfterOne) {
  int asked = 0;
  const auto r = refusal(Kind::kQueueFull, endpoint(), asked);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429u);
  EXPECT_EQ(r->counted_as, 429u);
  EXPECT_EQ(r->type, "queue_full");
  EXPECT_EQ(r->message, "endpoint chat holds 100 requests already (queue.max_length)");
  EXPECT_EQ(r->retry_after_s, 1);
  EXPECT_TRUE(r->keep);
  EXPECT_EQ(asked, 0);
}

TEST(Refusal, NoReplicaAnswersTheGroupsRejectStatus) {
  for (const auto& [configured, counted] : {std::pair{503u, 503u}, {502u, 502u}, {429u, 503u}}) {
    int asked = 0;
    const auto r = refusal(Kind::kNoReplica, endpoint(static_cast<int>(configured)), asked);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, configured);
    EXPECT_EQ(r->counted_as, counted);
    EXPECT_EQ(r->type, "no_replica");
    EXPECT_EQ(r->retry_after_s, 7);
    EXPECT_EQ(asked, 1);
  }
}

TEST(Refusal, TimedOutAndFailingAre503WithTheEndpointsRetryAfter) {
  int asked = 0;
  auto r = refusal(Kind::kTimedOut, endpoint(), asked);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503u);
  EXPECT_EQ(r->type, "queue_timeout");
  EXPECT_EQ(r->message,
            "no replica of endpoint chat could take the request within 30s (queue.timeout)");
  EXPECT_EQ(r->retry_after_s, 7);
  r = refusal(Kind::kFailing, endpoint(), asked);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503u);
  EXPECT_EQ(r->type, "replica_failing");
  EXPECT_EQ(r->message, "endpoint chat: exit status 1");
  EXPECT_EQ(asked, 2);
}

TEST(Refusal, ShutdownClosesTheConnection) {
  for (Kind kind : {Kind::kShutdown, Kind::kQueued}) {
    int asked = 0;
    const auto r = refusal(kind, endpoint(), asked);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503u);
    EXPECT_EQ(r->type, "shutting_down");
    EXPECT_EQ(r->retry_after_s, 1);
    EXPECT_FALSE(r->keep);
    EXPECT_EQ(asked, 0);
  }
}

}  // namespace
}  // namespace tide::gateway
