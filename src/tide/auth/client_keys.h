// Client API keys of the gateway (`server.client_auth: keys`): a client sends
// `Authorization: Bearer <key>`; tide keeps only each key's SHA-256, its name and the endpoints
// it may use (none listed: every one). Keys are made here (`new_client_key`), kept in the state
// file by `tide serve`, and checked by the gateway against the ring below. A key may carry limits:
// requests per second (a burst of one second's worth, at least 1) and requests in flight; the
// ring enforces them (`admit`), time given by the caller.
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
  double rate = 0;                     // requests per second; 0: no limit
  int concurrency = 0;                 // requests in flight at once; 0: no limit
};

// What one key's requests did since start, by name (kept when the key is revoked).
struct ClientKeyUsage {
  std::atomic<uint64_t> requests{0};  // carried the key
  std::atomic<uint64_t> limited{0};   // refused by its rate or concurrency limit
  std::atomic<int> in_flight{0};      // admitted and not released
  std::atomic<int64_t> next_ns{0};    // the rate limit's theoretical arrival time (GCRA)
};

// Whether a key's limits let a request in now; when not, in how many seconds to try again.
struct Admission {
  bool ok = true;
  int retry_after_s = 0;
  const char* limit = "";  // "rate" or "concurrency" when refused
};

class ClientKeyRing {
 public:
  struct Entry {
    std::string name;
    std::string digest;  // 32 bytes
    std::vector<std::string> endpoints;
    double rate = 0;
    int concurrency = 0;
    ClientKeyUsage* usage = nullptr;  // this name's (kept after a revoke)
    bool allows(std::string_view endpoint) const;
    // Counts the request and applies the limits at `now_ns` (any steady clock, in ns). An
    // admitted request holds a place in flight until release() (which only admitted ones call).
    Admission admit(int64_t now_ns) const;
    void release() const;
  };

  ClientKeyRing();
  // Replaces every key (names are unique; the digests as client_key_digest gives them).
  void set(const std::vector<ClientKey>& keys);
  // The key an Authorization value ("Bearer <key>") carries, or null when it carries none the
  // ring holds. Every key's digest is compared in constant time (crypto_verify_32).
  std::shared_ptr<const Entry> find(std::string_view authorization) const;
  // Per key name since start, by name (a revoked key keeps its counts), for /metrics.
  struct Counts {
    std::string name;
    uint64_t requests = 0;
    uint64_t limited = 0;
  };
  std::vector<Counts> request_counts() const;

 private:
  using Table = std::vector<Entry>;
  std::atomic<std::shared_ptr<const Table>> table_;
  mutable std::mutex usage_mu_;  // guards usage_ (its values are atomics, counted unlocked)
  std::map<std::string, std::unique_ptr<ClientKeyUsage>> usage_;
};

}  // namespace tide::auth
