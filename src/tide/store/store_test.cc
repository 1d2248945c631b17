#include "tide/store/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace tide::store {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tide-store-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string file() const { return (dir_ / "state.db").string(); }

  std::filesystem::path dir_;
};

ReplicaRow replica(uint64_t id, std::string state) {
  ReplicaRow r;
  r.endpoint = "chat";
  r.id = id;
  r.group = "h100";
  r.name = "chat/h100/" + std::to_string(id);
  r.state = std::move(state);
  r.handle = "local pid=" + std::to_string(1000 + id);
  r.address = "127.0.0.1:" + std::to_string(40000 + id);
  r.requested_at = 100.0 + static_cast<double>(id);
  return r;
}

SampleRow sample(double t, int ready, uint64_t requests, double p99) {
  SampleRow s;
  s.time = t;
  s.endpoint = "chat";
  s.group = "h100";
  s.step_s = 5;
  s.desired = ready;
  s.ready = ready;
  s.requests = requests;
  s.latency_p99_s = p99;
  return s;
}

TEST_F(StoreTest, ReplicasSurviveReopeningAndTheLatestStateWins) {
  {
    auto store = Store::open(file());
    store->put_replica(replica(1, "starting"));
    store->put_replica(replica(2, "ready"));
    ReplicaRow gone = replica(3, "stopped");
    gone.stopped_at = 200;
    store->put_replica(gone);
    ReplicaRow updated = replica(1, "ready");
    updated.ready_at = 160;
    updated.template_id = "00c0ffee00c0ffee";
    store->put_replica(updated);
  }  // closing commits what was queued
  auto store = Store::open(file());
  const auto live = store->live_replicas();
  ASSERT_EQ(live.size(), 2u);
  EXPECT_EQ(live[0].id, 1u);
  EXPECT_EQ(live[0].state, "ready");
  EXPECT_EQ(live[0].ready_at, 160);
  EXPECT_EQ(live[0].handle, "local pid=1001");
  EXPECT_EQ(live[0].template_id, "00c0ffee00c0ffee");
  EXPECT_EQ(live[1].id, 2u);
  EXPECT_EQ(store->max_replica_id("chat"), 3u);
  EXPECT_EQ(store->max_replica_id("other"), 0u);
  EXPECT_EQ(store->replicas("chat").size(), 3u);
}

TEST_F(StoreTest, TheFileIsOwnerOnly) {
  auto store = Store::open(file());
  store->set_meta("api_token", "secret");
  store->flush();
  struct stat st {};
  ASSERT_EQ(::stat(file().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(store->meta("api_token"), "secret");
  EXPECT_EQ(store->meta("missing"), std::nullopt);
}

TEST_F(StoreTest, DecisionsInARangeNewestKeptByTheLimitAndReturnedInOrder) {
  auto store = Store::open(file());
  for (int i = 0; i < 10; ++i) {
    DecisionRecord d;
    d.time = time_at_unix_seconds(1000 + i);
    d.endpoint = i % 2 == 0 ? "chat" : "other";
    d.group = "h100";
    d.from = i;
    d.to = i + 1;
    d.reason = "reason " + std::to_string(i);
    store->add_decision(d);
  }
  store->flush();
  auto all = store->decisions("chat", 0, 1e12, 100);
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all.front().reason, "reason 0");
  EXPECT_EQ(all.back().reason, "reason 8");
  auto limited = store->decisions("chat", 0, 1e12, 2);
  ASSERT_EQ(limited.size(), 2u);
  EXPECT_EQ(unix_seconds(limited[0].time), 1006);
  EXPECT_EQ(unix_seconds(limited[1].time), 1008);
  auto range = store->decisions("chat", 1002, 1006, 100);  // to is exclusive
  ASSERT_EQ(range.size(), 2u);
  EXPECT_EQ(range[0].from, 2);
  EXPECT_EQ(range[1].from, 4);
}

TEST_F(StoreTest, EveryInputOfADecisionComesBack) {
  DecisionRecord d{.time = Time{Duration{1'733'390'000'123'456'789}},
                   .endpoint = "chat",
                   .group = "h100",
                   .from = 2,
                   .to = 5,
                   .reason = "queue 12 > 2 x 4",
                   .queued = 12,
                   .in_flight = 8,
                   .ready = 2,
                   .starting = 1,
                   .utilization = 0.8125};
  {
    auto store = Store::open(file());
    store->add_decision(d);
  }
  auto store = Store::open(file());
  const auto back = store->decisions("chat", 0, 1e12, 10);
  ASSERT_EQ(back.size(), 1u);
  const DecisionRecord& b = back[0];
  EXPECT_EQ(unix_seconds(b.time), unix_seconds(d.time));
  EXPECT_EQ(b.endpoint, d.endpoint);
  EXPECT_EQ(b.group, d.group);
  EXPECT_EQ(b.from, d.from);
  EXPECT_EQ(b.to, d.to);
  EXPECT_EQ(b.reason, d.reason);
  EXPECT_EQ(b.queued, d.queued);
  EXPECT_EQ(b.in_flight, d.in_flight);
  EXPECT_EQ(b.ready, d.ready);
  EXPECT_EQ(b.starting, d.starting);
  EXPECT_EQ(b.utilization, d.utilization);
}

// A state file as tide wrote it before decisions kept their utilization (schema version 1).
void write_version_one_file(const std::string& path) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const char* sql = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES('schema_version', '1');
INSERT INTO meta VALUES('api_token', 'kept');
CREATE TABLE decisions(
  time REAL NOT NULL, endpoint TEXT NOT NULL, grp TEXT NOT NULL, from_n INTEGER NOT NULL,
  to_n INTEGER NOT NULL, reason TEXT NOT NULL, queued INTEGER NOT NULL,
  in_flight INTEGER NOT NULL, ready INTEGER NOT NULL, starting INTEGER NOT NULL);
CREATE INDEX decisions_by_time ON decisions(endpoint, time);
INSERT INTO decisions VALUES(1000.5, 'chat', 'h100', 0, 2, 'min_replicas', 3, 1, 0, 0);
)sql";
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  const std::string why = err != nullptr ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << why;
}

TEST_F(StoreTest, AFileOfSchemaVersionOneOpensWithItsDecisionsAndTakesNewOnes) {
  write_version_one_file(file());
  {
    auto store = Store::open(file());
    EXPECT_EQ(store->meta("schema_version"), "3");
    EXPECT_EQ(store->meta("api_token"), "kept");
    const auto old = store->decisions("chat", 0, 1e12, 10);
    ASSERT_EQ(old.size(), 1u);
    EXPECT_EQ(unix_seconds(old[0].time), 1000.5);
    EXPECT_EQ(old[0].to, 2);
    EXPECT_EQ(old[0].queued, 3);
    EXPECT_EQ(old[0].utilization, 0);
    DecisionRecord fresh;
    fresh.time = time_at_unix_seconds(1001);
    fresh.endpoint = "chat";
    fresh.utilization = 0.5;
    store->add_decision(fresh);
  }
  auto store = Store::open(file());  // opens again, now at version 3
  const auto both = store->decisions("chat", 0, 1e12, 10);
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[1].utilization, 0.5);
}

TEST_F(StoreTest, AFileOfSchemaVersionTwoKeepsItsReplicasWithAnUnknownTemplate) {
  {
    auto store = Store::open(file());
    store->put_replica(replica(1, "ready"));
  }
  {  // as tide wrote it before replicas kept their launch template's fingerprint
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file().c_str(), &db), SQLITE_OK);
    const int rc = sqlite3_exec(db,
                                "ALTER TABLE replicas DROP COLUMN template; UPDATE meta SET value "
                                "= '2' WHERE key = 'schema_version'",
                                nullptr, nullptr, nullptr);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK);
  }
  {
    auto store = Store::open(file());
    EXPECT_EQ(store->meta("schema_version"), "3");
    const auto live = store->live_replicas();
    ASSERT_EQ(live.size(), 1u);
    EXPECT_EQ(live[0].handle, "local pid=1001");
    EXPECT_EQ(live[0].template_id, "");
    ReplicaRow row = live[0];
    row.template_id = "0123456789abcdef";
    store->put_replica(row);
  }
  EXPECT_EQ(Store::open(file())->live_replicas().at(0).template_id, "0123456789abcdef");
}

TEST_F(StoreTest, AFileOfANewerSchemaIsRefused) {
  {
    auto store = Store::open(file());
    store->set_meta("schema_version", "4");
  }
  try {
    Store::open(file());
    FAIL() << "expected StoreError";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("schema version 4"), std::string::npos) << e.what();
  }
}

TEST_F(StoreTest, HistoryMergesSpansTakingTheMaximumOfCountsAndTheSumOfRequests) {
  auto store = Store::open(file());
  store->add_samples({sample(600, 1, 10, 0.5), sample(605, 3, 20, 2.0), sample(610, 2, 5, 1.0),
                      sample(660, 4, 1, 0.1)});
  store->flush();
  const auto raw = store->history("chat", 600, 700, 5);
  ASSERT_EQ(raw.size(), 4u);
  EXPECT_EQ(raw[1].ready, 3);
  EXPECT_EQ(raw[1].step_s, 5);
  const auto minute = store->history("chat", 0, 1e12, 60);
  ASSERT_EQ(minute.size(), 2u);
  EXPECT_EQ(minute[0].time, 600);
  EXPECT_EQ(minute[0].ready, 3);
  EXPECT_EQ(minute[0].requests, 35u);
  EXPECT_DOUBLE_EQ(minute[0].latency_p99_s, 2.0);
  EXPECT_EQ(minute[1].time, 660);
  EXPECT_EQ(minute[1].ready, 4);
  EXPECT_TRUE(store->history("other", 0, 1e12, 60).empty());
  EXPECT_THROW(store->history("chat", 0, 1, 0), StoreError);
}

TEST_F(StoreTest, CompactDownsamplesOldSamplesAndDeletesWhatIsPastRetention) {
  auto store = Store::open(file());
  std::vector<SampleRow> rows;
  for (int i = 0; i < 36; ++i) rows.push_back(sample(1200 + 5 * i, i % 4, 1, 0.1 * i));
  rows.push_back(sample(100, 9, 1, 0));  // past retention
  store->add_samples(rows);
  DecisionRecord old;
  old.time = time_at_unix_seconds(50);
  old.endpoint = "chat";
  store->add_decision(old);
  Retention retention;
  retention.downsample_after_s = 60;
  retention.downsample_step_s = 60;
  retention.keep_s = 1000;
  // now = 1320: samples before 1260 become one-minute rows; before 320 are deleted.
  store->compact(1320, retention);
  store->flush();
  const auto rows_after = store->history("chat", 0, 1e12, 1);
  ASSERT_EQ(rows_after.size(), 1u + 24u);
  EXPECT_EQ(rows_after[0].time, 1200);
  EXPECT_EQ(rows_after[0].step_s, 60);
  EXPECT_EQ(rows_after[0].ready, 3);
  EXPECT_EQ(rows_after[0].requests, 12u);
  EXPECT_EQ(rows_after[1].time, 1260);
  EXPECT_EQ(rows_after[1].step_s, 5);
  EXPECT_TRUE(store->decisions("chat", 0, 1e12, 10).empty());
  // Compacting again changes nothing already merged.
  store->compact(1320, retention);
  store->flush();
  EXPECT_EQ(store->history("chat", 0, 1e12, 1).size(), 25u);
}

TEST_F(StoreTest, OnlyOneTideAtATimeUsesAFile) {
  auto first = Store::open(file());
  try {
    Store::open(file());
    FAIL() << "expected StoreError";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("in use by another tide"), std::string::npos) << e.what();
  }
  first.reset();
  EXPECT_NO_THROW(Store::open(file()));
}

TEST_F(StoreTest, InMemoryStoresAreSeparateFromEachOther) {
  auto a = Store::open("");
  auto b = Store::open("");
  a->put_replica(replica(1, "ready"));
  a->flush();
  EXPECT_EQ(a->live_replicas().size(), 1u);
  EXPECT_TRUE(b->live_replicas().empty());
}

TEST_F(StoreTest, AnUnusableFileIsAClearError) {
  std::filesystem::create_directories(dir_ / "adir");
  try {
    Store::open((dir_ / "adir").string());
    FAIL() << "expected StoreError";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("adir"), std::string::npos) << e.what();
  }
  {
    std::ofstream junk(file());
    junk << "this is not a database, just text that is long enough to be looked at by sqlite";
  }
  EXPECT_THROW(Store::open(file()), StoreError);
}

TEST_F(StoreTest, ClientKeysAreCommittedAtOnceAndSurviveAReopen) {
  {
    auto store = Store::open(file());
    store->put_client_key({"alice", std::string(64, 'a'), {}, 10});
    store->put_client_key({"bob", std::string(64, 'b'), {"chat", "code"}, 11, 2.5, 3});
    const auto keys = store->client_keys();
    ASSERT_EQ(keys.size(), 2u);
    EXPECT_EQ(keys[1].name, "bob");
    EXPECT_EQ(keys[1].endpoints, (std::vector<std::string>{"chat", "code"}));
    EXPECT_TRUE(keys[0].endpoints.empty());
    EXPECT_TRUE(store->delete_client_key("alice"));
    EXPECT_FALSE(store->delete_client_key("alice"));
  }
  auto store = Store::open(file());
  const auto keys = store->client_keys();
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].name, "bob");
  EXPECT_EQ(keys[0].digest, std::string(64, 'b'));
  EXPECT_EQ(keys[0].created, 11);
  EXPECT_EQ(keys[0].rate, 2.5);
  EXPECT_EQ(keys[0].concurrency, 3);
}

}  // namespace
}  // namespace tide::store
