// The static provisioner against in-process demo model servers on 127.0.0.1.
#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include "tide/demo_model/demo_model.h"
#include "tide/provision/provision.h"
#include "tide/provision/test_util.h"

namespace tide::provision::testing {
namespace {

using Kind = Event::Kind;

// A demo model server on its own thread.
class Server {
 public:
  explicit Server(Duration load_time = 0s, uint16_t port = 0) {
    demo_model::DemoModelOptions o;
    o.port = port;
    o.load_time = load_time;
    server_ = std::make_unique<demo_model::DemoModelServer>(o);
    thread_ = std::thread([this] { server_->run(); });
  }
  ~Server() { stop(); }
  void stop() {
    if (!thread_.joinable()) return;
    server_->stop();
    thread_.join();
  }
  uint16_t port() const { return server_->port(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()); }

 private:
  std::unique_ptr<demo_model::DemoModelServer> server_;
  std::thread thread_;
};

class StaticProvisionerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.liveness_interval = 50ms;
    group_.name = "g";
    group_.provisioner.kind = "static";
    group_.provisioner.ready.interval = 20ms;
    group_.provisioner.ready.timeout = 1s;
    provisioner_ = std::make_unique<LiveProvisioner>(io_, clock_, options_);
  }
  void TearDown() override {
    bool done = false;
    provisioner_->shutdown([&] { done = true; });
    EXPECT_TRUE(run_until(io_, [&] { return done; }));
  }
  void launch(uint64_t id) {
    events_.in_call = true;
    provisioner_->launch(replica(id), group_, events_);
    events_.in_call = false;
  }
  void stop(uint64_t id) {
    events_.in_call = true;
    provisioner_->stop(replica(id));
    events_.in_call = false;
  }
  bool settled(uint64_t id) const {
    return events_.has(id, Kind::kReady) || events_.has(id, Kind::kFailed);
  }

  boost::asio::io_context io_;
  SteadyClock clock_;
  Recorder events_;
  ProvisionOptions options_;
  config::GroupSpec group_;
  std::unique_ptr<LiveProvisioner> provisioner_;
};

TEST_F(StaticProvisionerTest, EachReplicaTakesTheNextFreeUrlUntilNoneIsLeft) {
  Server a(200ms), b(200ms);
  group_.provisioner.urls = {a.url(), b.url()};
  launch(1);
  launch(2);
  launch(3);
  EXPECT_TRUE(events_.events.empty()) << "launch() must only post";
  ASSERT_TRUE(run_until(io_, [&] { return settled(1) && settled(2) && settled(3); }))
      << describe(events_.events);
  EXPECT_EQ(events_.kinds(1), (std::vector<Kind>{Kind::kStarting, Kind::kReady}));
  EXPECT_EQ(events_.find(1, Kind::kReady)->text, "127.0.0.1:" + std::to_string(a.port()));
  EXPECT_GE(events_.find(1, Kind::kReady)->time - events_.find(1, Kind::kStarting)->time, 150ms)
      << "ready while the server still answered 503";
  EXPECT_EQ(events_.find(2, Kind::kReady)->text, "127.0.0.1:" + std::to_string(b.port()));
  EXPECT_EQ(events_.kinds(3), std::vector<Kind>{Kind::kFailed});
  EXPECT_EQ(events_.find(3, Kind::kFailed)->text,
            "no free url: all 2 urls of provisioner.urls are in use");

  stop(1);
  launch(4);
  ASSERT_TRUE(run_until(io_, [&] { return settled(4); }));
  EXPECT_EQ(events_.find(4, Kind::kReady)->text, "127.0.0.1:" + std::to_string(a.port()));
  EXPECT_EQ(events_.kinds(1), (std::vector<Kind>{Kind::kStarting, Kind::kReady}));
}

TEST_F(StaticProvisionerTest, ServerThatStopsAnsweringFailsAfterThreeProbesAndFreesItsUrl) {
  Server a;
  group_.provisioner.urls = {a.url()};
  launch(1);
  ASSERT_TRUE(run_until(io_, [&] { return settled(1); }));
  ASSERT_TRUE(events_.has(1, Kind::kReady)) << describe(events_.events);
  a.stop();
  const Time stopped_at = clock_.now();
  ASSERT_TRUE(run_until(io_, [&] { return events_.has(1, Kind::kFailed); }));
  EXPECT_EQ(events_.find(1, Kind::kFailed)->text,
            a.url() + ": health check failed 3 times: Connection refused");
  EXPECT_GE(clock_.now() - stopped_at, 2 * options_.liveness_interval);
  launch(2);  // the URL is free again
  ASSERT_TRUE(run_until(io_, [&] { return events_.has(2, Kind::kStarting); }));
  stop(2);
}

TEST_F(StaticProvisionerTest, StopWhileStartingNeverReportsReady) {
  const uint16_t port = unused_port();
  group_.provisioner.urls = {"http://127.0.0.1:" + std::to_string(port) + "/ignored/path"};
  launch(1);
  ASSERT_TRUE(run_until(io_, [&] { return events_.has(1, Kind::kStarting); }));
  EXPECT_FALSE(run_until(
      io_, [&] { return settled(1); }, 100ms))
      << "nothing listens there";
  stop(1);
  Server late(0s, port);
  EXPECT_FALSE(run_until(
      io_, [&] { return events_.events.size() > 1; }, 200ms))
      << describe(events_.events);
}

TEST_F(StaticProvisionerTest, UnusableUrlOrKindFailsTheLaunch) {
  group_.provisioner.urls = {"https://127.0.0.1:9443"};
  launch(1);
  group_.provisioner.kind = "simulated";
  launch(2);
  ASSERT_TRUE(run_until(io_, [&] { return settled(1) && settled(2); }));
  EXPECT_EQ(events_.find(1, Kind::kFailed)->text,
            "https://127.0.0.1:9443: only http:// URLs can be probed");
  EXPECT_EQ(events_.find(2, Kind::kFailed)->text,
            "provisioner kind \"simulated\" cannot run live replicas (use local, static, slurm or "
            "kubernetes)");
  EXPECT_TRUE(LiveProvisioner::supports("local"));
  EXPECT_FALSE(LiveProvisioner::supports("simulated"));
}

}  // namespace
}  // namespace tide::provision::testing
