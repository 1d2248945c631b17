// Client API keys of the gateway (`server.client_auth: keys`): a client sends
// `Authorization: Bearer <key>`; tide keeps only each key's SHA-256, its name and the endpoints
// it may use (none listed: every one). Keys are made here (`new_client_key`), kept in the state
// file by `tide serve`, and checked by the gateway against the ring below.
//
// Threads: ClientKeyRing::find and count run on every gateway thread at once; set replaces the
// whole ring from any thread (the admin API's), and a request checked after set returns sees the
// new ring, so a revoked key stops working as soon as its DELETE is answered.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tide::auth {

// A new key: "sk-tide-" and 64 hex digits (256 random bits).
std::string new_client_key();
// The lower-case hex SHA-256 of `key`: what the state file keeps.
std::string client_key_digest(std::string_view key);

struct ClientKey {
  std::string name;
  std::string digest;                  // client_key_digest of the key
  std::vector<std::string> endpoints;  // empty: every endpoint
};

class ClientKeyRing {
 public:
  struct Entry {
    std::string name;
    std::string digest;  // 32 bytes
    std::vector<std::string> endpoints;
    std::atomic<uint64_t>* requests = nullptr;  // this name's count (kept after a revoke)
    bool allows(std::string_view endpoint) const;
  };

  ClientKeyRing();
  // Replaces every key (names are unique; the digests as client_key_digest gives them).
  void set(const std::vector<ClientKey>& keys);
  // The key an Authorization value ("Bearer <key>") carries, or null when it carries none the
  // ring holds. Every key's digest is compared in constant time (crypto_verify_32).
  std::shared_ptr<const Entry> find(std::string_view authorization) const;
  // Requests per key name since start, by name (a revoked key keeps its count), for /metrics.
  std::vector<std::pair<std::string, uint64_t>> request_counts() const;

 private:
  using Table = std::vector<Entry>;
  std::atomic<std::shared_ptr<const Table>> table_;
  mutable std::mutex counts_mu_;  // guards counts_ (its values are atomics, counted unlocked)
  std::map<std::string, std::unique_ptr<std::atomic<uint64_t>>> counts_;
};

}  // namespace tide::auth
