// What `tide serve` remembers across its own restarts, in one SQLite file (WAL mode):
//   - the configuration of each endpoint as it was loaded or changed through the API;
//   - every replica it launched: group, name, where it runs (the provisioner's handle), state and
//     timestamps, so that a restarted tide re-adopts the ones still running;
//   - every scaling decision with its inputs and reason;
//   - the replica-count and load history per group, sampled at a fixed interval and downsampled
//     after a while (see Retention).
//
// Writes never block the caller on the disk: they are queued to a writer thread that commits
// them in batches (one transaction per batch). Reads use their own connection and may run on
// any thread while writes go on (WAL). Times are wall-clock seconds since the Unix epoch, as
// users read them (a decision's Time: nanoseconds since the epoch, stored as those seconds by
// unix_seconds); the store itself never reads a clock. No SQLite types leak out of store.cc.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "tide/common/decision.h"

namespace tide::store {

struct StoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ReplicaRow {
  std::string endpoint;
  uint64_t id = 0;  // unique within the endpoint
  std::string group;
  std::string name;
  std::string state;   // requested, starting, ready, draining, stopped, failed
  std::string handle;  // the provisioner's, to find it again (empty until known)
  std::string address;
  std::string error;
  // The config::launch_template_fingerprint it was started from ("": unknown, a file of schema
  // version 2 or older).
  std::string template_id;
  double requested_at = 0;
  double ready_at = 0;    // 0: not (yet) ready
  double stopped_at = 0;  // 0: still running
};

// One group's state at an instant (or, once downsampled, over `step_s` seconds from `time`:
// counts are the maximum over the span, requests the sum, latencies the maximum).
struct SampleRow {
  double time = 0;
  std::string endpoint;
  std::string group;
  double step_s = 0;  // the span it covers: the sample interval, or the downsampling step
  int desired = 0;
  int ready = 0;
  int starting = 0;
  int draining = 0;
  int queued = 0;
  int in_flight = 0;
  uint64_t requests = 0;  // requests started in the span
  // Of the requests answered in the span; -1 when none was (MAX then keeps any real value).
  double latency_p50_s = 0;
  double latency_p95_s = 0;
  double latency_p99_s = 0;
};

struct ConfigRow {
  double time = 0;
  std::string endpoint;
  std::string source;  // "file" (loaded at start) or "api" (PUT /v1/endpoints/{name})
  std::string text;    // the endpoint's YAML (or JSON) as given
};

// A client API key of the gateway as the state file keeps it: never the key, only its SHA-256.
struct ClientKeyRow {
  std::string name;
  std::string digest;                  // lower-case hex SHA-256 of the key
  std::vector<std::string> endpoints;  // empty: every endpoint
  double created = 0;
  double rate = 0;      // requests per second; 0: no limit
  int concurrency = 0;  // requests in flight; 0: no limit
};

struct Retention {
  double downsample_after_s = 6 * 3600.0;  // samples older than this are merged ...
  double downsample_step_s = 60;           // ... into one row per group per this span
  double keep_s = 30 * 86400.0;            // samples and decisions older than this are deleted
};

class Store {
 public:
  // Opens (creating if needed) the state file. An empty path keeps everything in memory, for
  // this process only. Throws StoreError naming the file and the reason.
  static std::unique_ptr<Store> open(const std::string& path);
  // Commits what is queued, then closes.
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const;

  // Writes (queued; thread-safe). Failures are counted and passed to the error sink.
  void put_replica(ReplicaRow row);            // inserts or replaces by (endpoint, id)
  void add_decision(DecisionRecord decision);  // its time on the wall clock
  void add_samples(std::vector<SampleRow> rows);
  void add_config(ConfigRow row);
  void set_meta(std::string key, std::string value);
  // Client keys are committed before these return (a key is kept before anyone is shown it, and
  // a revoked one is gone from the file when its DELETE is answered). Inserts or replaces by
  // name; delete_client_key says whether there was such a key.
  void put_client_key(ClientKeyRow row);
  bool delete_client_key(const std::string& name);
  // Downsamples and deletes by `retention`, relative to `now`.
  void compact(double now, Retention retention);
  // Waits until every write queued before the call is committed.
  void flush();
  // Where write errors go (default: nowhere; they are still counted).
  void on_error(std::function<void(const std::string&)> sink);
  uint64_t write_errors() const;

  // Reads (synchronous, on the caller's thread; they see every committed write).
  std::optional<std::string> meta(const std::string& key);
  // Replicas neither stopped nor failed, oldest first.
  std::vector<ReplicaRow> live_replicas();
  std::vector<ReplicaRow> replicas(const std::string& endpoint);
  // The highest replica id ever used by the endpoint (0: none).
  uint64_t max_replica_id(const std::string& endpoint);
  // Every client key, by name.
  std::vector<ClientKeyRow> client_keys();
  // The endpoint's configuration changes, oldest first.
  std::vector<ConfigRow> configs(const std::string& endpoint);
  // Decisions with from <= time < to, newest last; at most `limit` (the newest ones).
  std::vector<DecisionRecord> decisions(const std::string& endpoint, double from, double to,
                                        int limit);
  // Samples with from <= time < to, merged into spans of `step_s` (aligned to multiples of
  // step_s since the epoch) per group, as SampleRow describes; ordered by group, then time.
  std::vector<SampleRow> history(const std::string& endpoint, double from, double to,
                                 double step_s);

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  // Calls `queue` (which queues writes), waits for their commit; StoreError when one failed.
  void write_now(const char* what, const std::function<void()>& queue);
  std::unique_ptr<Impl> impl_;
};

// One value of the meta table of the state file at `path`, read without the lock a running tide
// holds (SQLite's WAL lets a reader in beside the writer): `tide token show` while tide serves.
// nullopt when the key is absent. Throws StoreError when the file cannot be read as a state file.
std::optional<std::string> read_meta(const std::string& path, const std::string& key);

}  // namespace tide::store
