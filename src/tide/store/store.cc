#include "tide/store/store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <iterator>
#include <mutex>
#include <thread>
#include <utility>

namespace tide::store {

namespace {

// 2: decisions.utilization; 3: replicas.template (the launch template fingerprint). Older files
// are migrated when opened (kMigrations).
constexpr int kSchemaVersion = 3;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS configs(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, endpoint TEXT NOT NULL,
  source TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS replicas(
  endpoint TEXT NOT NULL, id INTEGER NOT NULL, grp TEXT NOT NULL, name TEXT NOT NULL,
  state TEXT NOT NULL, handle TEXT NOT NULL, address TEXT NOT NULL, error TEXT NOT NULL,
  requested_at REAL NOT NULL, ready_at REAL NOT NULL, stopped_at REAL NOT NULL,
  template TEXT NOT NULL DEFAULT '', PRIMARY KEY(endpoint, id));
CREATE TABLE IF NOT EXISTS decisions(
  time REAL NOT NULL, endpoint TEXT NOT NULL, grp TEXT NOT NULL, from_n INTEGER NOT NULL,
  to_n INTEGER NOT NULL, reason TEXT NOT NULL, queued INTEGER NOT NULL,
  in_flight INTEGER NOT NULL, ready INTEGER NOT NULL, starting INTEGER NOT NULL,
  utilization REAL NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS decisions_by_time ON decisions(endpoint, time);
CREATE TABLE IF NOT EXISTS samples(
  time REAL NOT NULL, endpoint TEXT NOT NULL, grp TEXT NOT NULL, step_s REAL NOT NULL,
  desired INTEGER NOT NULL, ready INTEGER NOT NULL, starting INTEGER NOT NULL,
  draining INTEGER NOT NULL, queued INTEGER NOT NULL, in_flight INTEGER NOT NULL,
  requests INTEGER NOT NULL, p50 REAL NOT NULL, p95 REAL NOT NULL, p99 REAL NOT NULL);
CREATE INDEX IF NOT EXISTS samples_by_time ON samples(endpoint, time);
CREATE TABLE IF NOT EXISTS client_keys(
  name TEXT PRIMARY KEY, digest TEXT NOT NULL, endpoints TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS client_key_limits(
  name TEXT PRIMARY KEY, rate REAL NOT NULL, concurrency INTEGER NOT NULL);
)sql";

// kMigrations[v - 1] takes a file of schema version v to v + 1 by adding a column (the tables
// exist: kSchema made those missing, at the newest version, with the column already).
struct AddColumn {
  const char* table;
  const char* column;
  const char* definition;
};
constexpr AddColumn kMigrations[] = {
    {"decisions", "utilization", "REAL NOT NULL DEFAULT 0"},
    {"replicas", "template", "TEXT NOT NULL DEFAULT ''"},
};
static_assert(std::size(kMigrations) == kSchemaVersion - 1);

// The columns of a merged span of samples, for history() and compact().
constexpr const char* kMergedColumns =
    "MAX(desired), MAX(ready), MAX(starting), MAX(draining), MAX(queued), MAX(in_flight), "
    "SUM(requests), MAX(p50), MAX(p95), MAX(p99)";

class Db {
 public:
  Db(const std::string& uri, bool memory) {
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                      (memory ? SQLITE_OPEN_URI : 0);
    if (sqlite3_open_v2(uri.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw StoreError(why);
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  ~Db() { sqlite3_close(db_); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  sqlite3* get() const { return db_; }

  void exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string why = err ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      throw StoreError(why);
    }
  }

 private:
  sqlite3* db_ = nullptr;
};

// A prepared statement with positional binding (1-based, in call order) and typed columns.
class Stmt {
 public:
  Stmt(const Db& db, const char* sql) : db_(db.get()) {
    if (sqlite3_prepare_v2(db_, sql, -1, &s_, nullptr) != SQLITE_OK)
      throw StoreError(fmt::format("{} (in {})", sqlite3_errmsg(db_), sql));
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(const std::string& v) {
    check(sqlite3_bind_text(s_, ++n_, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& bind(double v) {
    check(sqlite3_bind_double(s_, ++n_, v));
    return *this;
  }
  Stmt& bind(int64_t v) {
    check(sqlite3_bind_int64(s_, ++n_, v));
    return *this;
  }
  Stmt& bind(int v) { return bind(static_cast<int64_t>(v)); }
  Stmt& bind(uint64_t v) { return bind(static_cast<int64_t>(v)); }

  // True while there is a row.
  bool step() {
    const int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw StoreError(sqlite3_errmsg(db_));
  }
  void run() {
    while (step()) {
    }
  }
  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s_, col))) : std::string();
  }
  double real(int col) const { return sqlite3_column_double(s_, col); }
  int64_t integer(int col) const { return sqlite3_column_int64(s_, col); }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) throw StoreError(sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
  int n_ = 0;
};

ReplicaRow read_replica(const Stmt& s) {
  ReplicaRow r;
  r.endpoint = s.text(0);
  r.id = static_cast<uint64_t>(s.integer(1));
  r.group = s.text(2);
  r.name = s.text(3);
  r.state = s.text(4);
  r.handle = s.text(5);
  r.address = s.text(6);
  r.error = s.text(7);
  r.requested_at = s.real(8);
  r.ready_at = s.real(9);
  r.stopped_at = s.real(10);
  r.template_id = s.text(11);
  return r;
}

// The file's schema version; nullopt for a file just made.
std::optional<std::string> schema_version(const Db& db) {
  Stmt s(db, "SELECT value FROM meta WHERE key = 'schema_version'");
  if (!s.step()) return std::nullopt;
  return s.text(0);
}

bool has_column(const Db& db, const char* table, const char* column) {
  Stmt s(db, fmt::format("PRAGMA table_info({})", table).c_str());
  while (s.step()) {
    if (s.text(1) == column) return true;
  }
  return false;
}

void migrate(Db& db, const AddColumn& m) {
  if (has_column(db, m.table, m.column)) return;
  db.exec(fmt::format("ALTER TABLE {} ADD COLUMN {} {}", m.table, m.column, m.definition).c_str());
}

// Brings the file to kSchemaVersion: a new one is marked so, an older one migrated in one
// transaction; a newer one (or a version unknown) is refused.
void use_current_schema(Db& db) {
  const std::optional<std::string> v = schema_version(db);
  if (!v) {
    Stmt ins(db, "INSERT INTO meta(key, value) VALUES('schema_version', ?)");
    ins.bind(std::to_string(kSchemaVersion)).run();
    return;
  }
  int version = 0;
  const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), version);
  if (ec != std::errc() || end != v->data() + v->size() || version < 1 || version > kSchemaVersion)
    throw StoreError(
        fmt::format("schema version {} is not the {} this tide reads (written by another version)",
                    *v, kSchemaVersion));
  if (version == kSchemaVersion) return;
  db.exec("BEGIN");
  try {
    for (; version < kSchemaVersion; ++version) migrate(db, kMigrations[version - 1]);
    Stmt set(db, "UPDATE meta SET value = ? WHERE key = 'schema_version'");
    set.bind(std::to_string(kSchemaVersion)).run();
    db.exec("COMMIT");
  } catch (const StoreError&) {
    db.exec("ROLLBACK");
    throw;
  }
}

DecisionRecord read_decision(const Stmt& s) {
  DecisionRecord d;
  d.time = time_at_unix_seconds(s.real(0));
  d.endpoint = s.text(1);
  d.group = s.text(2);
  d.from = static_cast<int>(s.integer(3));
  d.to = static_cast<int>(s.integer(4));
  d.reason = s.text(5);
  d.queued = static_cast<int>(s.integer(6));
  d.in_flight = static_cast<int>(s.integer(7));
  d.ready = static_cast<int>(s.integer(8));
  d.starting = static_cast<int>(s.integer(9));
  d.utilization = s.real(10);
  return d;
}

constexpr const char* kReplicaColumns =
    "endpoint, id, grp, name, state, handle, address, error, requested_at, ready_at, stopped_at, "
    "template";

}  // namespace

struct Store::Impl {
  ~Impl() {
    if (lock_fd >= 0) ::close(lock_fd);
  }
  int lock_fd = -1;  // holds the flock
  std::string path;
  std::string uri;
  bool memory = false;
  // The writer's connection is used only by the writer thread; reads take `read_mu`.
  std::unique_ptr<Db> writer_db;
  std::unique_ptr<Db> reader_db;
  std::mutex read_mu;

  std::mutex mu;
  std::condition_variable cv;       // work queued, or stopping
  std::condition_variable done_cv;  // a batch committed
  std::deque<std::function<void(Db&)>> queue;
  uint64_t queued_seq = 0;     // writes queued so far
  uint64_t committed_seq = 0;  // writes committed (or failed) so far
  bool stopping = false;
  std::function<void(const std::string&)> error_sink;
  std::atomic<uint64_t> errors{0};
  std::thread writer;

  void push(std::function<void(Db&)> op) {
    {
      std::lock_guard lock(mu);
      queue.push_back(std::move(op));
      ++queued_seq;
    }
    cv.notify_one();
  }

  void fail(const std::string& what) {
    errors.fetch_add(1, std::memory_order_relaxed);
    std::function<void(const std::string&)> sink;
    {
      std::lock_guard lock(mu);
      sink = error_sink;
    }
    if (sink) sink(fmt::format("state file {}: {}", path.empty() ? "(memory)" : path, what));
  }

  void run_writer() {
    for (;;) {
      std::deque<std::function<void(Db&)>> batch;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;  // stopping with nothing left
        batch.swap(queue);
      }
      try {
        writer_db->exec("BEGIN");
        for (auto& op : batch) {
          try {
            op(*writer_db);
          } catch (const StoreError& e) {
            fail(e.what());
          }
        }
        writer_db->exec("COMMIT");
      } catch (const StoreError& e) {
        fail(e.what());
        try {
          writer_db->exec("ROLLBACK");
        } catch (const StoreError&) {
        }
      }
      {
        std::lock_guard lock(mu);
        committed_seq += batch.size();
      }
      done_cv.notify_all();
    }
  }
};

std::unique_ptr<Store> Store::open(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->memory = path.empty();
  if (impl->memory) {
    // A private shared-cache database: both connections see it, nothing else does.
    static std::atomic<uint64_t> counter{0};
    impl->uri = fmt::format("file:tide-state-{}-{}?mode=memory&cache=shared",
                            static_cast<const void*>(impl.get()), counter.fetch_add(1));
  } else {
    impl->uri = path;
  }
  try {
    if (!impl->memory) {
      // The file holds the API token and replica handles: owner-only from its creation. One
      // tide at a time: two would adopt each other's replicas.
      impl->lock_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      if (impl->lock_fd < 0) throw StoreError(std::strerror(errno));
      if (::flock(impl->lock_fd, LOCK_EX | LOCK_NB) != 0)
        throw StoreError(errno == EWOULDBLOCK ? "in use by another tide" : std::strerror(errno));
    }
    impl->writer_db = std::make_unique<Db>(impl->uri, impl->memory);
    Db& db = *impl->writer_db;
    if (!impl->memory) {
      db.exec("PRAGMA journal_mode=WAL");
      db.exec("PRAGMA synchronous=NORMAL");
    }
    db.exec(kSchema);
    use_current_schema(db);
    impl->reader_db = std::make_unique<Db>(impl->uri, impl->memory);
  } catch (const StoreError& e) {
    throw StoreError(fmt::format("state file {}: {}", path.empty() ? "(memory)" : path, e.what()));
  }
  Impl* raw = impl.get();
  impl->writer = std::thread([raw] { raw->run_writer(); });
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Store::~Store() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_one();
  impl_->writer.join();
  impl_->reader_db.reset();
  impl_->writer_db.reset();
}

const std::string& Store::path() const { return impl_->path; }

void Store::put_replica(ReplicaRow row) {
  impl_->push([row = std::move(row)](Db& db) {
    Stmt s(db,
           "INSERT OR REPLACE INTO replicas(endpoint, id, grp, name, state, handle, address, "
           "error, requested_at, ready_at, stopped_at, template) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)");
    s.bind(row.endpoint)
        .bind(row.id)
        .bind(row.group)
        .bind(row.name)
        .bind(row.state)
        .bind(row.handle)
        .bind(row.address)
        .bind(row.error)
        .bind(row.requested_at)
        .bind(row.ready_at)
        .bind(row.stopped_at)
        .bind(row.template_id)
        .run();
  });
}

void Store::add_decision(DecisionRecord decision) {
  impl_->push([row = std::move(decision)](Db& db) {
    Stmt s(db,
           "INSERT INTO decisions(time, endpoint, grp, from_n, to_n, reason, queued, in_flight, "
           "ready, starting, utilization) VALUES(?,?,?,?,?,?,?,?,?,?,?)");
    s.bind(unix_seconds(row.time))
        .bind(row.endpoint)
        .bind(row.group)
        .bind(row.from)
        .bind(row.to)
        .bind(row.reason)
        .bind(row.queued)
        .bind(row.in_flight)
        .bind(row.ready)
        .bind(row.starting)
        .bind(row.utilization)
        .run();
  });
}

void Store::add_samples(std::vector<SampleRow> rows) {
  impl_->push([rows = std::move(rows)](Db& db) {
    for (const auto& r : rows) {
      Stmt s(db,
             "INSERT INTO samples(time, endpoint, grp, step_s, desired, ready, starting, "
             "draining, queued, in_flight, requests, p50, p95, p99) "
             "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
      s.bind(r.time)
          .bind(r.endpoint)
          .bind(r.group)
          .bind(r.step_s)
          .bind(r.desired)
          .bind(r.ready)
          .bind(r.starting)
          .bind(r.draining)
          .bind(r.queued)
          .bind(r.in_flight)
          .bind(r.requests)
          .bind(r.latency_p50_s)
          .bind(r.latency_p95_s)
          .bind(r.latency_p99_s)
          .run();
    }
  });
}

void Store::add_config(ConfigRow row) {
  impl_->push([row = std::move(row)](Db& db) {
    Stmt s(db, "INSERT INTO configs(time, endpoint, source, text) VALUES(?,?,?,?)");
    s.bind(row.time).bind(row.endpoint).bind(row.source).bind(row.text).run();
  });
}

void Store::set_meta(std::string key, std::string value) {
  impl_->push([key = std::move(key), value = std::move(value)](Db& db) {
    Stmt s(db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)");
    s.bind(key).bind(value).run();
  });
}

namespace {

// A client key's endpoints as one column: names joined by commas (names have none).
std::string join_endpoints(const std::vector<std::string>& endpoints) {
  std::string out;
  for (const auto& e : endpoints) out += (out.empty() ? "" : ",") + e;
  return out;
}

std::vector<std::string> split_endpoints(const std::string& text) {
  std::vector<std::string> out;
  for (size_t at = 0; at < text.size();) {
    const size_t comma = std::min(text.find(',', at), text.size());
    out.push_back(text.substr(at, comma - at));
    at = comma + 1;
  }
  return out;
}

}  // namespace

void Store::write_now(const char* what, const std::function<void()>& queue) {
  const uint64_t errors = write_errors();
  queue();
  flush();
  if (write_errors() != errors)
    throw StoreError(fmt::format("state file {}: could not {}", impl_->path, what));
}

void Store::put_client_key(ClientKeyRow row) {
  write_now("store the client key", [&] {
    impl_->push([row = std::move(row)](Db& db) {
      Stmt s(db,
             "INSERT OR REPLACE INTO client_keys(name, digest, endpoints, created) "
             "VALUES(?,?,?,?)");
      s.bind(row.name).bind(row.digest).bind(join_endpoints(row.endpoints)).bind(row.created).run();
      Stmt limits(db,
                  "INSERT OR REPLACE INTO client_key_limits(name, rate, concurrency) "
                  "VALUES(?,?,?)");
      limits.bind(row.name).bind(row.rate).bind(row.concurrency).run();
    });
  });
}

bool Store::delete_client_key(const std::string& name) {
  {
    std::lock_guard lock(impl_->read_mu);
    Stmt s(*impl_->reader_db, "SELECT 1 FROM client_keys WHERE name = ?");
    s.bind(name);
    if (!s.step()) return false;
  }
  write_now("delete the client key", [&] {
    impl_->push([name](Db& db) {
      Stmt s(db, "DELETE FROM client_keys WHERE name = ?");
      s.bind(name).run();
      Stmt limits(db, "DELETE FROM client_key_limits WHERE name = ?");
      limits.bind(name).run();
    });
  });
  return true;
}

std::vector<ClientKeyRow> Store::client_keys() {
  std::lock_guard lock(impl_->read_mu);
  Stmt s(*impl_->reader_db,
         "SELECT k.name, k.digest, k.endpoints, k.created, IFNULL(l.rate, 0), "
         "IFNULL(l.concurrency, 0) FROM client_keys k LEFT JOIN client_key_limits l "
         "ON l.name = k.name ORDER BY k.name");
  std::vector<ClientKeyRow> out;
  while (s.step()) {
    out.push_back({s.text(0), s.text(1), split_endpoints(s.text(2)), s.real(3), s.real(4),
                   static_cast<int>(s.integer(5))});
  }
  return out;
}

void Store::compact(double now, Retention retention) {
  impl_->push([now, retention](Db& db) {
    const double step = retention.downsample_step_s;
    if (step > 0) {
      // Whole spans only: the cut is aligned down to a multiple of the step.
      const double cutoff = std::floor((now - retention.downsample_after_s) / step) * step;
      const std::string merge = fmt::format(
          "INSERT INTO samples(time, endpoint, grp, step_s, desired, ready, starting, "
          "draining, queued, in_flight, requests, p50, p95, p99) "
          "SELECT CAST(time / ?1 AS INTEGER) * ?1, endpoint, grp, ?1, {} FROM samples "
          "WHERE time < ?2 AND step_s < ?1 GROUP BY endpoint, grp, CAST(time / ?1 AS INTEGER)",
          kMergedColumns);
      Stmt ins(db, merge.c_str());
      ins.bind(step).bind(cutoff).run();
      Stmt del(db, "DELETE FROM samples WHERE time < ?2 AND step_s < ?1");
      del.bind(step).bind(cutoff).run();
    }
    const double keep_from = now - retention.keep_s;
    Stmt s1(db, "DELETE FROM samples WHERE time < ?");
    s1.bind(keep_from).run();
    Stmt s2(db, "DELETE FROM decisions WHERE time < ?");
    s2.bind(keep_from).run();
    Stmt s3(db, "DELETE FROM replicas WHERE stopped_at > 0 AND stopped_at < ?");
    s3.bind(keep_from).run();
  });
}

void Store::flush() {
  std::unique_lock lock(impl_->mu);
  const uint64_t target = impl_->queued_seq;
  impl_->done_cv.wait(lock, [&] { return impl_->committed_seq >= target; });
}

void Store::on_error(std::function<void(const std::string&)> sink) {
  std::lock_guard lock(impl_->mu);
  impl_->error_sink = std::move(sink);
}

uint64_t Store::write_errors() const { return impl_->errors.load(std::memory_order_relaxed); }

std::optional<std::string> Store::meta(const std::string& key) {
  std::lock_guard lock(impl_->read_mu);
  Stmt s(*impl_->reader_db, "SELECT value FROM meta WHERE key = ?");
  s.bind(key);
  if (!s.step()) return std::nullopt;
  return s.text(0);
}

std::vector<ReplicaRow> Store::live_replicas() {
  std::lock_guard lock(impl_->read_mu);
  const std::string sql = fmt::format(
      "SELECT {} FROM replicas WHERE state NOT IN ('stopped', 'failed') "
      "ORDER BY requested_at, endpoint, id",
      kReplicaColumns);
  Stmt s(*impl_->reader_db, sql.c_str());
  std::vector<ReplicaRow> out;
  while (s.step()) out.push_back(read_replica(s));
  return out;
}

std::vector<ReplicaRow> Store::replicas(const std::string& endpoint) {
  std::lock_guard lock(impl_->read_mu);
  const std::string sql =
      fmt::format("SELECT {} FROM replicas WHERE endpoint = ? ORDER BY id", kReplicaColumns);
  Stmt s(*impl_->reader_db, sql.c_str());
  s.bind(endpoint);
  std::vector<ReplicaRow> out;
  while (s.step()) out.push_back(read_replica(s));
  return out;
}

uint64_t Store::max_replica_id(const std::string& endpoint) {
  std::lock_guard lock(impl_->read_mu);
  Stmt s(*impl_->reader_db, "SELECT COALESCE(MAX(id), 0) FROM replicas WHERE endpoint = ?");
  s.bind(endpoint);
  return s.step() ? static_cast<uint64_t>(s.integer(0)) : 0;
}

std::vector<ConfigRow> Store::configs(const std::string& endpoint) {
  std::lock_guard lock(impl_->read_mu);
  Stmt s(*impl_->reader_db,
         "SELECT time, endpoint, source, text FROM configs WHERE endpoint = ? ORDER BY seq");
  s.bind(endpoint);
  std::vector<ConfigRow> out;
  while (s.step()) out.push_back({s.real(0), s.text(1), s.text(2), s.text(3)});
  return out;
}

std::vector<DecisionRecord> Store::decisions(const std::string& endpoint, double from, double to,
                                             int limit) {
  std::lock_guard lock(impl_->read_mu);
  Stmt s(*impl_->reader_db,
         "SELECT time, endpoint, grp, from_n, to_n, reason, queued, in_flight, ready, starting, "
         "utilization FROM decisions WHERE endpoint = ? AND time >= ? AND time < ? "
         "ORDER BY time DESC, rowid DESC LIMIT ?");
  s.bind(endpoint).bind(from).bind(to).bind(limit);
  std::vector<DecisionRecord> out;
  while (s.step()) out.push_back(read_decision(s));
  return {out.rbegin(), out.rend()};
}

std::vector<SampleRow> Store::history(const std::string& endpoint, double from, double to,
                                      double step_s) {
  if (!(step_s > 0)) throw StoreError("history step must be > 0");
  std::lock_guard lock(impl_->read_mu);
  const std::string sql = fmt::format(
      "SELECT grp, CAST(time / ?1 AS INTEGER) * ?1 AS span, MAX(step_s), {} FROM samples "
      "WHERE endpoint = ?2 AND time >= ?3 AND time < ?4 GROUP BY grp, span ORDER BY grp, span",
      kMergedColumns);
  Stmt s(*impl_->reader_db, sql.c_str());
  s.bind(step_s).bind(endpoint).bind(from).bind(to);
  std::vector<SampleRow> out;
  while (s.step()) {
    SampleRow r;
    r.endpoint = endpoint;
    r.group = s.text(0);
    r.time = s.real(1);
    r.step_s = std::max(step_s, s.real(2));
    r.desired = static_cast<int>(s.integer(3));
    r.ready = static_cast<int>(s.integer(4));
    r.starting = static_cast<int>(s.integer(5));
    r.draining = static_cast<int>(s.integer(6));
    r.queued = static_cast<int>(s.integer(7));
    r.in_flight = static_cast<int>(s.integer(8));
    r.requests = static_cast<uint64_t>(s.integer(9));
    r.latency_p50_s = s.real(10);
    r.latency_p95_s = s.real(11);
    r.latency_p99_s = s.real(12);
    out.push_back(std::move(r));
  }
  return out;
}

std::optional<std::string> read_meta(const std::string& path, const std::string& key) {
  sqlite3* db = nullptr;
  const int opened = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> owner(db, sqlite3_close);
  sqlite3_stmt* stmt = nullptr;
  if (opened != SQLITE_OK || sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?", -1,
                                                &stmt, nullptr) != SQLITE_OK)
    throw StoreError(db != nullptr ? sqlite3_errmsg(db) : "out of memory");
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> finalize(stmt, sqlite3_finalize);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_bind_text(stmt, 1, key.c_str(), -1, SQLITE_TRANSIENT);
  const int step = sqlite3_step(stmt);
  if (step == SQLITE_DONE) return std::nullopt;
  if (step != SQLITE_ROW) throw StoreError(sqlite3_errmsg(db));
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  return std::string(text != nullptr ? text : "");
}

}  // namespace tide::store
