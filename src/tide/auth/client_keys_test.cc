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
  a->requests->fetch_add(3);
  ring.set({{"bob", client_key_digest(bob), {"code"}}});
  EXPECT_FALSE(ring.find("Bearer " + alice));
  EXPECT_EQ(a->name, "alice");
  // Counts stay by name, revoked keys' too.
  b->requests->fetch_add(1);
  const auto counts = ring.request_counts();
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[0], (std::pair<std::string, uint64_t>{"alice", 3}));
  EXPECT_EQ(counts[1], (std::pair<std::string, uint64_t>{"bob", 1}));
}

TEST(ClientKeys, ADigestThatIsNotOneMatchesNothing) {
  ClientKeyRing ring;
  ring.set({{"broken", "not hex", {}}, {"empty", "", {}}});
  EXPECT_FALSE(ring.find("Bearer not hex"));
  EXPECT_FALSE(ring.find("Bearer "));
}

}  // namespace
}  // namespace tide::auth
