// The control plane's signing keys and the per-replica secrets derived from them.
//
// KeyRing holds the current Ed25519 signing key, the keys rotated out whose last tokens have not
// expired yet (still listed by GET /v1/pubkey, never used to sign), and a 32-byte master secret
// from which each replica's secret is derived (keyed BLAKE2b of the replica's name), so nothing
// per replica needs storing and a replica's secret survives a restart of tide.
//
// On disk: one JSON file, created with mode 0600 and refused when group or others may read it.
// Written whole to a temporary file and renamed, so a crash never leaves half a key.
//
// Times are wall-clock instants (SystemClock). Not thread-safe: the owner serializes calls.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tide/auth/token.h"
#include "tide/common/time.h"

namespace tide::auth {

class KeyRing {
 public:
  // Loads the ring from `path`, or creates the file with a new key when it does not exist.
  // Throws std::runtime_error naming the file and the problem (unreadable, readable by others,
  // malformed).
  static KeyRing open(const std::string& path, Time now);
  // A ring kept in memory only (a new key on every start).
  static KeyRing ephemeral(Time now);

  // Signs `claims` with the current key (setting claims.key_id); returns the token text.
  std::string issue(Claims claims) const;
  // The keys a verifier should trust at `now`: the current one first, then rotated-out ones
  // until their valid_until.
  std::vector<PublicKey> public_keys(Time now) const;
  const std::string& current_key_id() const;
  Time current_created_at() const;

  // A new signing key; the current one stays trusted until now + `token_ttl` (when its last
  // tokens expire). Saves the file (when there is one); throws std::runtime_error if it cannot.
  void rotate(Time now, Duration token_ttl);

  // The secret of the replica named `replica_name` ("endpoint/group/id"): 43 base64url chars.
  std::string replica_secret(std::string_view replica_name) const;

  const std::string& path() const { return path_; }

 private:
  struct Key {
    std::string id;
    std::string secret;  // 64 bytes (seed + public key)
    std::string public_key;
    Time created{};
    std::optional<Time> valid_until;  // set once rotated out
  };
  static Key generate(Time now);
  void save() const;
  void prune(Time now);

  std::string path_;       // empty: memory only
  std::vector<Key> keys_;  // current last
  std::string master_;     // 32 bytes
};

// Constant-time comparison of two secrets (false when the lengths differ).
bool secrets_equal(std::string_view a, std::string_view b);

// A random 64-bit number from libsodium's CSPRNG (for request numbers).
uint64_t random_u64();

}  // namespace tide::auth
