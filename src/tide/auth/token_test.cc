#include "tide/auth/token.h"

#include <gtest/gtest.h>

#include "tide/auth/keys.h"

namespace tide::auth {
namespace {

using namespace std::chrono_literals;

// Wall time: some instant in 2024.
const Time kNow = Time{std::chrono::seconds(1'717'000'000)};

class Tokens : public ::testing::Test {
 protected:
  Tokens() : ring_(KeyRing::ephemeral(kNow)), verifier_("chat", 3) {
    verifier_.set_keys(ring_.public_keys(kNow));
  }
  std::string issue(std::string endpoint = "chat", uint64_t replica = 3, Duration ttl = 30s) {
    Claims c;
    c.endpoint = std::move(endpoint);
    c.replica_id = replica;
    c.expires_at = kNow + ttl;
    c.request = random_u64();
    return ring_.issue(c);
  }
  KeyRing ring_;
  TokenVerifier verifier_;
};

TEST_F(Tokens, AValidTokenWorksOnceThenIsReplayed) {
  const std::string token = issue();
  const Verdict first = verifier_.verify(token, kNow + 1s);
  ASSERT_TRUE(first.ok) << first.message;
  EXPECT_EQ(first.claims.endpoint, "chat");
  EXPECT_EQ(first.claims.replica_id, 3u);
  EXPECT_EQ(first.claims.key_id, ring_.current_key_id());
  const Verdict again = verifier_.verify(token, kNow + 2s);
  EXPECT_FALSE(again.ok);
  EXPECT_EQ(again.reason, Rejection::kReplayed);
  EXPECT_EQ(rejection_status(again.reason), 403);
  EXPECT_NE(again.message.find("already used"), std::string::npos);
}

TEST_F(Tokens, ATokenSignedByAnotherKeyIsForged) {
  // Our key id in the payload, someone else's key for the signature.
  Claims c = *peek_token(issue());
  c.request = random_u64();
  const Verdict v = verifier_.verify(sign_token(c, std::string(64, 'x')), kNow);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.reason, Rejection::kBadSignature);
  EXPECT_EQ(rejection_status(v.reason), 401);
  // A key of its own is simply unknown.
  const std::string other = KeyRing::ephemeral(kNow).issue(c);
  EXPECT_TRUE(verifier_.unknown_key(other));
  EXPECT_EQ(verifier_.verify(other, kNow).reason, Rejection::kUnknownKey);
}

TEST_F(Tokens, AlteringThePayloadBreaksTheSignature) {
  const std::string token = issue("chat", 4);  // for replica 4
  // Swap in the payload of a token for replica 3, keeping replica 4's signature.
  const std::string other = issue("chat", 3);
  const size_t a = token.rfind('.');
  const size_t b = other.rfind('.');
  const std::string spliced = other.substr(0, b) + token.substr(a);
  const Verdict v = verifier_.verify(spliced, kNow);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.reason, Rejection::kBadSignature);
}

TEST_F(Tokens, AnExpiredTokenIsRefusedAfterTheLeeway) {
  const std::string token = issue("chat", 3, 10s);
  EXPECT_TRUE(verifier_.verify(issue("chat", 3, 10s), kNow + 14s).ok);  // within 5 s leeway
  const Verdict v = verifier_.verify(token, kNow + 16s);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.reason, Rejection::kExpired);
  EXPECT_EQ(rejection_status(v.reason), 401);
  EXPECT_NE(v.message.find("expired 6s ago"), std::string::npos) << v.message;
}

TEST_F(Tokens, ATokenForAnotherReplicaOrEndpointIsForbidden) {
  const Verdict replica = verifier_.verify(issue("chat", 7), kNow);
  EXPECT_EQ(replica.reason, Rejection::kWrongReplica);
  EXPECT_EQ(rejection_status(replica.reason), 403);
  EXPECT_NE(replica.message.find("token for replica 7, this is replica 3"), std::string::npos);
  const Verdict endpoint = verifier_.verify(issue("embed", 3), kNow);
  EXPECT_EQ(endpoint.reason, Rejection::kWrongEndpoint);
  EXPECT_EQ(rejection_status(endpoint.reason), 403);
}

TEST_F(Tokens, MissingAndMalformedTokensAreRefusedWithAReason) {
  EXPECT_EQ(verifier_.verify("", kNow).reason, Rejection::kMissing);
  for (const char* bad : {"hello", "t1.", "t1.abc", "t1.!!!.xyz", "t1.e30.AAAA"}) {
    const Verdict v = verifier_.verify(bad, kNow);
    EXPECT_FALSE(v.ok) << bad;
    EXPECT_EQ(v.reason, Rejection::kMalformed) << bad << ": " << v.message;
    EXPECT_FALSE(v.message.empty());
  }
  EXPECT_EQ(verifier_.verify(std::string(5000, 'a'), kNow).reason, Rejection::kMalformed);
}

TEST_F(Tokens, AnExpiryFarAheadIsRefused) {
  const Verdict v = verifier_.verify(issue("chat", 3, 1h), kNow);
  EXPECT_EQ(v.reason, Rejection::kTooLong);
}

TEST_F(Tokens, ARotatedKeyStaysTrustedUntilItsTokensExpire) {
  const std::string old_token = issue();
  const std::string long_token = issue("chat", 3, 5min);
  const std::string old_id = ring_.current_key_id();
  ring_.rotate(kNow + 1s, 30s);  // the old key's tokens all expire by kNow + 31 s
  EXPECT_NE(ring_.current_key_id(), old_id);
  verifier_.set_keys(ring_.public_keys(kNow + 1s));
  ASSERT_EQ(verifier_.keys().size(), 2u);
  EXPECT_EQ(verifier_.keys()[0].id, ring_.current_key_id());
  EXPECT_TRUE(verifier_.verify(old_token, kNow + 2s).ok);
  EXPECT_TRUE(verifier_.verify(issue(), kNow + 2s).ok);
  // Past kNow + 31 s (+ 5 s leeway) the old key is no longer trusted, whatever a token claims.
  const Verdict v = verifier_.verify(long_token, kNow + 37s);
  EXPECT_EQ(v.reason, Rejection::kUnknownKey);
  EXPECT_NE(v.message.find("rotated out"), std::string::npos) << v.message;
  EXPECT_EQ(ring_.public_keys(kNow + 40s).size(), 1u);
}

TEST(ReplayCache, IsBoundedAndForgetsExpiredEntries) {
  ReplayCache cache(2);
  EXPECT_EQ(cache.use(1, kNow + 10s, kNow), ReplayCache::Result::kFresh);
  EXPECT_EQ(cache.use(2, kNow + 20s, kNow), ReplayCache::Result::kFresh);
  EXPECT_EQ(cache.use(1, kNow + 10s, kNow), ReplayCache::Result::kReplayed);
  EXPECT_EQ(cache.use(3, kNow + 10s, kNow), ReplayCache::Result::kFull);
  // Request 1 expired: its room is free again, and it is forgotten.
  EXPECT_EQ(cache.use(3, kNow + 30s, kNow + 11s), ReplayCache::Result::kFresh);
  EXPECT_EQ(cache.size(), 2u);
}

TEST(Base64url, RoundTripsAndRejectsOtherAlphabets) {
  const std::string bytes("\x00\xff\xfe\x10 tide", 9);
  EXPECT_EQ(from_base64url(base64url(bytes)), bytes);
  EXPECT_FALSE(from_base64url("ab+/").has_value());
  EXPECT_FALSE(from_base64url("abc=").has_value());
}

}  // namespace
}  // namespace tide::auth
