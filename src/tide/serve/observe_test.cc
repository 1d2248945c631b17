#include "tide/serve/observe.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace tide::serve {
namespace {

using control::Outcome;
using json = nlohmann::json;
using namespace std::chrono_literals;

config::EndpointSpec two_groups() {
  config::EndpointSpec spec;
  spec.name = "chat";
  config::GroupSpec a;
  a.name = "a100";
  a.price = 2.5;
  config::GroupSpec b;
  b.name = "l4 \"small\"";  // a label value that needs escaping
  spec.groups = {a, b};
  return spec;
}

control::EndpointView fixed_view() {
  control::EndpointView v;
  v.name = "chat";
  control::GroupView a;
  a.name = "a100";
  a.status.desired = 3;
  a.status.starting = 1;
  a.status.ready = 2;
  a.status.queued = 4;
  a.status.in_flight = 7;
  a.status.launches = 3;
  a.status.failures = 1;
  a.status.routed = 120;
  a.status.spilled = 5;
  a.replica_seconds = 5400;
  a.stats.outcomes = {100, 2, 1, 3, 1, 4};
  for (int i = 0; i < 100; ++i) a.stats.latency.record(i < 90 ? 0.25 : 4.0);
  for (int i = 0; i < 100; ++i) a.stats.queue_wait.record(i < 80 ? 0.0 : 1.5);
  a.stats.cold_start.record(42.0);
  a.stats.cold_start.record(47.0);
  // 20 streamed answers: first tokens at 300 ms (15) and 2 s (5), events 20 ms apart.
  for (int i = 0; i < 20; ++i) a.stats.ttft.record(i < 15 ? 0.3 : 2.0);
  for (int i = 0; i < 20; ++i) a.stats.tpot.record(0.02);
  a.stats.scale_ups = 2;
  a.stats.scale_downs = 1;
  // Replica 4's agent reads two GPUs; replica 5 reports without NVML; replica 6 has not reported.
  control::ReplicaView r4;
  r4.id = 4;
  r4.report = control::ReplicaReport{};
  r4.report->gpus = {{0, 0.93, 60ull << 30, 80ull << 30}, {1, 0.4, 20ull << 30, 80ull << 30}};
  control::ReplicaView r5;
  r5.id = 5;
  r5.report = control::ReplicaReport{};
  control::ReplicaView r6;
  r6.id = 6;
  a.replicas = {r4, r5, r6};
  control::GroupView b;
  b.name = "l4 \"small\"";
  b.status.overflow_in = 5;
  v.groups = {a, b};
  return v;
}

TEST(Metrics, TextMatchesTheGoldenFile) {
  const config::EndpointSpec spec = two_groups();
  MetricsInput in;
  in.endpoints.push_back({&spec, fixed_view()});
  in.gateway.requests = 130;
  in.gateway.bad_requests = 2;
  in.gateway.not_found_404 = 1;
  in.gateway.client_disconnects = 4;
  in.gateway.upstream_errors = 3;
  in.gateway.retries = 2;
  in.gateway.unauthorized = 6;
  in.gateway.key_limited = 3;
  in.client_keys = {{"alice", 40, 3}, {"ci-bot", 9, 0}};
  in.gateway.open_connections = 12;
  in.gateway.open_api_connections = 1;
  in.gateway.body_memory_bytes = 4096;
  in.active_requests = 11;
  in.start_time_s = 1700000000.5;
  in.process = ProcessStats{12.5, 3.5e7, 17};
  in.version = "1.2.3";
  in.commit = "0123456789ab";
  const std::string text = metrics_text(in);

  const std::string golden = std::string(TIDE_GOLDEN_DIR) + "/metrics.txt";
  if (std::getenv("TIDE_UPDATE_GOLDEN") != nullptr) std::ofstream(golden) << text;
  std::ifstream f(golden);
  std::stringstream want;
  want << f.rdbuf();
  EXPECT_EQ(text, want.str()) << "regenerate with TIDE_UPDATE_GOLDEN=1 if the change is meant";
}

TEST(Metrics, EveryFamilyHasHelpAndTypeAndEverySampleBelongsToOne) {
  const config::EndpointSpec spec = two_groups();
  MetricsInput in;
  in.endpoints.push_back({&spec, fixed_view()});
  std::istringstream lines(metrics_text(in));
  std::string line, family, type;
  int samples = 0;
  while (std::getline(lines, line)) {
    if (line.starts_with("# HELP ")) {
      family = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(family.starts_with("tide_")) << line;
      continue;
    }
    if (line.starts_with("# TYPE ")) {
      EXPECT_EQ(line.substr(7, family.size()), family) << line;
      type = line.substr(8 + family.size());
      EXPECT_TRUE(type == "counter" || type == "gauge" || type == "histogram") << line;
      if (type == "counter") {
        EXPECT_TRUE(family.ends_with("_total")) << family;
      }
      if (type == "histogram") {
        EXPECT_TRUE(family.ends_with("_seconds")) << family;
      }
      continue;
    }
    ++samples;
    EXPECT_TRUE(line.starts_with(family)) << line << " outside its family " << family;
  }
  EXPECT_GT(samples, 50);
}

TEST(Metrics, EngineFiguresOfReplicasAppearOnceAnEngineWasRead) {
  const config::EndpointSpec spec = two_groups();
  MetricsInput in;
  in.endpoints.push_back({&spec, fixed_view()});
  EXPECT_EQ(metrics_text(in).find("tide_replica_engine"), std::string::npos);
  control::ReplicaView& r4 = in.endpoints[0].view.groups[0].replicas[0];
  r4.engine = metrics::EngineSignals{.running = 6, .waiting = 2, .kv_cache = 0.5};
  control::ReplicaView& r5 = in.endpoints[0].view.groups[0].replicas[1];
  r5.engine = metrics::EngineSignals{.running = 1, .waiting = 0, .kv_cache = std::nullopt};
  const std::string text = metrics_text(in);
  const std::string r4_labels = R"({endpoint="chat",group="a100",replica="4")";
  EXPECT_NE(text.find("tide_replica_engine_requests" + r4_labels + R"(,state="running"} 6)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("tide_replica_engine_requests" + r4_labels + R"(,state="waiting"} 2)"),
            std::string::npos);
  EXPECT_NE(text.find("tide_replica_engine_kv_cache_ratio" + r4_labels + "} 0.5"),
            std::string::npos);
  // Replica 5's engine exports no KV-cache gauge (TGI): no sample of it.
  EXPECT_EQ(
      text.find(R"(tide_replica_engine_kv_cache_ratio{endpoint="chat",group="a100",replica="5")"),
      std::string::npos);
}

TEST(GroupStats, ComparisonFiguresIncludeCostOnlyWithAPrice) {
  const config::EndpointSpec spec = two_groups();
  const control::EndpointView v = fixed_view();
  const json a = group_stats_json(v.groups[0], spec.groups[0]);
  EXPECT_EQ(a["requests"], 111);
  EXPECT_EQ(a["outcomes"]["ok"], 100);
  EXPECT_EQ(a["outcomes"]["client_gone"], 4);
  EXPECT_NEAR(a["latency_s"]["p50"].get<double>(), 0.25, 0.25 / 64);
  EXPECT_NEAR(a["latency_s"]["p99"].get<double>(), 4.0, 4.0 / 64);
  EXPECT_NEAR(a["queue_wait_s"]["p95"].get<double>(), 1.5, 1.5 / 64);
  EXPECT_EQ(a["cold_start_s"]["count"], 2);
  EXPECT_NEAR(a["cold_start_s"]["mean"].get<double>(), 44.5, 1e-9);
  EXPECT_EQ(a["ttft_s"]["count"], 20);
  EXPECT_NEAR(a["ttft_s"]["p50"].get<double>(), 0.3, 0.3 / 64);
  EXPECT_NEAR(a["ttft_s"]["p99"].get<double>(), 2.0, 2.0 / 64);
  EXPECT_EQ(a["tpot_s"]["count"], 20);
  EXPECT_NEAR(a["tpot_s"]["p50"].get<double>(), 0.02, 0.02 / 64);
  // 100 answered in 1.5 replica-hours at 2.5 an hour.
  EXPECT_NEAR(a["requests_per_replica_hour"].get<double>(), 100 / 1.5, 1e-9);
  EXPECT_NEAR(a["cost"].get<double>(), 3.75, 1e-9);
  EXPECT_NEAR(a["cost_per_1k_requests"].get<double>(), 37.5, 1e-9);
  const json b = group_stats_json(v.groups[1], spec.groups[1]);
  EXPECT_FALSE(b.contains("cost"));
  EXPECT_EQ(b["requests_per_replica_hour"], 0.0);
  EXPECT_EQ(b["latency_s"]["p99"], 0.0);
}

TEST(LiveWindow, RecentLatencyCoversOnlyTheLastSpan) {
  LiveWindow w(10s);
  control::EndpointView v = fixed_view();  // 90 at 0.25 s, 10 at 4 s before the stream began
  json first = w.recent(time_at_seconds(100), v);
  EXPECT_EQ(first[0]["requests"], 0);
  EXPECT_TRUE(first[0]["latency_p50_s"].is_null());
  for (int s = 1; s <= 20; ++s) {  // then one 2 s answer per second
    v.groups[0].stats.latency.record(2.0);
    ++v.groups[0].stats.outcomes[0];
    const json r = w.recent(time_at_seconds(100 + s), v);
    if (s == 20) {
      EXPECT_EQ(r[0]["requests"], 10);
      EXPECT_NEAR(r[0]["window_s"].get<double>(), 10.0, 1e-9);
      EXPECT_NEAR(r[0]["rps"].get<double>(), 1.0, 1e-9);
      EXPECT_NEAR(r[0]["latency_p50_s"].get<double>(), 2.0, 2.0 / 64);
      EXPECT_NEAR(r[0]["latency_p99_s"].get<double>(), 2.0, 2.0 / 64);
    }
  }
}

// A burst held through a cold start or still in service reads as arrivals a second, not 0.0
// until its answers end.
TEST(LiveWindow, RequestsPerSecondCountsArrivalsStillHeldOrInService) {
  LiveWindow w(10s);
  control::EndpointView v = fixed_view();
  v.groups[0].status.in_flight = 0;
  v.groups[0].status.queued = 0;
  w.recent(time_at_seconds(100), v);
  v.groups[0].status.queued = 3;  // held while a replica starts
  v.groups[0].status.in_flight = 2;
  json r = w.recent(time_at_seconds(101), v);
  EXPECT_EQ(r[0]["requests"], 0);
  EXPECT_EQ(r[0]["arrivals"], 5);
  EXPECT_NEAR(r[0]["rps"].get<double>(), 5.0, 1e-9);
  // Two of them start and one ends: nothing new arrived.
  v.groups[0].status.queued = 1;
  v.groups[0].status.in_flight = 3;
  ++v.groups[0].stats.outcomes[0];
  v.groups[0].stats.latency.record(0.7);
  r = w.recent(time_at_seconds(102), v);
  EXPECT_EQ(r[0]["requests"], 1);
  EXPECT_EQ(r[0]["arrivals"], 5);
  EXPECT_NEAR(r[0]["rps"].get<double>(), 2.5, 1e-9);
}

TEST(LiveWindow, EachDecisionIsSentOnce) {
  LiveWindow w;
  control::EndpointView v;
  v.name = "chat";
  for (int i = 0; i < 3; ++i)
    v.decisions.push_back({time_at_seconds(i), "chat", "g", i, i + 1, "r", 0, 0, 0, 0, 0});
  v.decisions_total = 70;  // more were made than the view holds
  EXPECT_EQ(w.new_decisions(v).size(), 3u);
  EXPECT_EQ(w.new_decisions(v).size(), 0u);
  v.decisions.push_back({time_at_seconds(9), "chat", "g", 3, 2, "idle", 0, 0, 0, 0, 0});
  v.decisions_total = 71;
  const auto fresh = w.new_decisions(v);
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_EQ(fresh[0].reason, "idle");
}

TEST(Sse, EventFraming) {
  EXPECT_EQ(sse_event("endpoint", R"({"a":1})"), "event: endpoint\ndata: {\"a\":1}\n\n");
}

}  // namespace
}  // namespace tide::serve
