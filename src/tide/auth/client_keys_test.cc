#include "tide/auth/client_keys.h"

#include <gtest/gtest.h>

#include <string>

namespace tide::auth {
namespace {

TEST(ClientKeys, NewKeysAreRandomAndTheirDigestIsSha256) {
  const std::string a = new_client_key();
  const std::string b = new_client_key();
  EXPECT_NE(a, b);
  EXPECT_TRUE(a.starts_with("sk-tide-"));
  EXPECT_EQ(a.size(), 8u + 64u);
  // SHA-256("abc"), FIPS 180-2.
  EXPECT_EQ(client_key_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(client_key_digest(a).find(a), std::string::npos);
}

TEST(ClientKeys, TheRingFindsABearerKeyByItsDigestAndForgetsRevokedOnes) {
  ClientKeyRing ring;
  const std::string alice = new_client_key();
  const std::string bob = new_client_key();
  ring.set({{"alice", client_key_digest(alice), {}}, {"bob", client_key_digest(bob), {"code"}}});
  const auto a = ring.find("Bearer " + alice);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->name, "alice");
  EXPECT_TRUE(a->allows("chat"));
  const auto b = ring.find("Bearer " + bob);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->name, "bob");
  EXPECT_TRUE(b->allows("code"));
  EXPECT_FALSE(b->allows("chat"));
  EXPECT_FALSE(ring.find(alice));  // not a bearer value
  EXPECT_FALSE(ring.find("Bearer " + alice + "x"));
  EXPECT_FALSE(ring.find("Bearer "));
  EXPECT_FALSE(ring.find(""));
  // Revoked: gone from the next find on; an entry found before stays valid.
  for (int i = 0; i < 3; ++i) a->admit(0);
  ring.set({{"bob", client_key_digest(bob), {"code"}}});
  EXPECT_FALSE(ring.find("Bearer " + alice));
  EXPECT_EQ(a->name, "alice");
  // Counts stay by name, revoked keys' too.
  b->admit(0);
  const auto counts = ring.request_counts();
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[0].name, "alice");
  EXPECT_EQ(counts[0].requests, 3u);
  EXPECT_EQ(counts[1].name, "bob");
  EXPECT_EQ(counts[1].requests, 1u);
}

TEST(ClientKeys, ADigestThatIsNotOneMatchesNothing) {
  ClientKeyRing ring;
  ring.set({{"broken", "not hex", {}}, {"empty", "", {}}});
  EXPECT_FALSE(ring.find("Bearer not hex"));
  EXPECT_FALSE(ring.find("Bearer "));
}

constexpr int64_t kSecond = 1'000'000'000;

TEST(ClientKeys, ARateLimitLetsABurstOfOneSecondThroughThenOneRequestPerInterval) {
  ClientKeyRing ring;
  const std::string key = new_client_key();
  ring.set({{"k", client_key_digest(key), {}, 2.0, 0}});
  const auto e = ring.find("Bearer " + key);
  ASSERT_TRUE(e);
  const int64_t t0 = 100 * kSecond;
  EXPECT_TRUE(e->admit(t0).ok);
  EXPECT_TRUE(e->admit(t0).ok);  // the burst: one second's worth, 2
  const Admission third = e->admit(t0);
  EXPECT_FALSE(third.ok);
  EXPECT_STREQ(third.limit, "rate");
  EXPECT_EQ(third.retry_after_s, 1);
  EXPECT_TRUE(e->admit(t0 + kSecond / 2).ok);  // one interval later
  EXPECT_FALSE(e->admit(t0 + kSecond / 2).ok);
  EXPECT_EQ(ring.request_counts()[0].limited, 2u);
  // A slow rate: the wait is rounded up to whole seconds.
  ring.set({{"slow", client_key_digest(key), {}, 0.1, 0}});
  const auto slow = ring.find("Bearer " + key);
  EXPECT_TRUE(slow->admit(t0).ok);
  const Admission again = slow->admit(t0 + kSecond);
  EXPECT_FALSE(again.ok);
  EXPECT_EQ(again.retry_after_s, 9);
}

TEST(ClientKeys, AConcurrencyLimitHoldsPlacesUntilReleased) {
  ClientKeyRing ring;
  const std::string key = new_client_key();
  ring.set({{"k", client_key_digest(key), {}, 0, 2}});
  const auto e = ring.find("Bearer " + key);
  EXPECT_TRUE(e->admit(0).ok);
  EXPECT_TRUE(e->admit(0).ok);
  const Admission full = e->admit(0);
  EXPECT_FALSE(full.ok);
  EXPECT_STREQ(full.limit, "concurrency");
  EXPECT_EQ(full.retry_after_s, 1);
  e->release();
  EXPECT_TRUE(e->admit(0).ok);
  // Without limits everything is admitted.
  ring.set({{"free", client_key_digest(key), {}}});
  const auto free = ring.find("Bearer " + key);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(free->admit(0).ok);
}

}  // namespace
}  // namespace tide::auth
