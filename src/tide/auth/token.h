// Route tokens: what `POST /v1/route` hands a client so that one replica's agent serves one
// request, without the payload ever passing through the control plane.
//
// Text form (URL- and header-safe):
//   t1.<base64url(payload)>.<base64url(Ed25519 signature of "t1.<base64url(payload)>")>
// payload (JSON): {"k": key id, "e": endpoint, "r": replica id, "x": expiry (Unix ms),
//                  "n": request number (16 hex digits, random), "w": work estimate (optional)}
//
// Times are wall-clock instants (SystemClock: nanoseconds since the Unix epoch), since the
// control plane and the agents run on different machines. Verification takes `now` as an
// argument. Plain values and single-owner objects: not thread-safe, one verifier per agent
// thread or behind the caller's lock.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tide/common/time.h"

namespace tide::auth {

// What a token grants: one request to one replica of one endpoint, until it expires.
struct Claims {
  std::string key_id;  // which key signed it (set by KeyRing::issue)
  std::string endpoint;
  uint64_t replica_id = 0;
  Time expires_at{};           // wall time, millisecond precision in the token
  uint64_t request = 0;        // unique request number: a token is good for one request
  std::optional<double> work;  // the client's work estimate, if it gave one
};

// A public key a verifier trusts.
struct PublicKey {
  std::string id;     // base64url of the first 9 bytes of BLAKE2b(public key)
  std::string bytes;  // the 32-byte Ed25519 public key
  // When it stops being trusted (a rotated-out key: its last tokens' expiry); none = current.
  std::optional<Time> valid_until;
};

// Encodes and signs `claims` with a 64-byte libsodium Ed25519 secret key.
std::string sign_token(const Claims& claims, std::string_view secret_key);

// Why a token was refused. Each maps to an HTTP status: 401 when the token does not prove
// anything (absent, malformed, unknown key, bad signature, expired), 403 when it is genuine but
// not for this request (another endpoint or replica, already used).
enum class Rejection {
  kMissing,
  kMalformed,
  kUnknownKey,
  kBadSignature,
  kExpired,
  kTooLong,  // expires further ahead than any token the control plane issues
  kWrongEndpoint,
  kWrongReplica,
  kReplayed,
  kReplayCacheFull,
};
std::string_view rejection_name(Rejection r);  // "bad_signature", "replayed", ...
int rejection_status(Rejection r);             // 401, 403 (503 for a full replay cache)

struct Verdict {
  bool ok = false;
  Rejection reason = Rejection::kMissing;
  std::string message;  // for the client: what was wrong
  Claims claims;        // when ok
};

// Parses a token's payload without checking anything (for tools and tests).
std::optional<Claims> peek_token(std::string_view token);

// Request numbers already used, each kept until its token expires. Bounded: when full (and
// nothing has expired), new tokens are refused rather than letting an old one be replayed.
class ReplayCache {
 public:
  explicit ReplayCache(size_t capacity = 100000) : capacity_(capacity) {}
  enum class Result { kFresh, kReplayed, kFull };
  // Records `request` until `expires_at` unless already recorded; drops expired entries first.
  Result use(uint64_t request, Time expires_at, Time now);
  size_t size() const { return expiry_.size(); }

 private:
  void evict(Time now);
  size_t capacity_;
  std::unordered_map<uint64_t, Time> expiry_;
  std::vector<std::pair<Time, uint64_t>> heap_;  // min-heap by expiry
};

// Checks tokens for one replica of one endpoint.
class TokenVerifier {
 public:
  struct Options {
    Duration leeway = std::chrono::seconds(5);    // clock skew allowed between machines
    Duration max_ttl = std::chrono::minutes(10);  // expiry further ahead than this: refused
    size_t replay_capacity = 100000;
  };
  TokenVerifier(std::string endpoint, uint64_t replica_id, Options options);
  TokenVerifier(std::string endpoint, uint64_t replica_id)
      : TokenVerifier(std::move(endpoint), replica_id, Options{}) {}

  // Replaces the trusted keys.
  void set_keys(std::vector<PublicKey> keys);
  const std::vector<PublicKey>& keys() const { return keys_; }
  // Whether the token names a key this verifier does not know (worth fetching the keys again).
  bool unknown_key(std::string_view token) const;

  // Checks signature, expiry, endpoint, replica and replay, in that order; a token that passes
  // is recorded as used.
  Verdict verify(std::string_view token, Time now);

 private:
  const PublicKey* find_key(std::string_view id) const;
  std::string endpoint_;
  uint64_t replica_id_;
  Options options_;
  std::vector<PublicKey> keys_;
  ReplayCache replay_;
};

// base64url without padding (RFC 4648 §5).
std::string base64url(std::string_view bytes);
std::optional<std::string> from_base64url(std::string_view text);

}  // namespace tide::auth
