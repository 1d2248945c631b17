#include "tide/agent/report.h"

#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

namespace tide::agent {
namespace {

using json = nlohmann::json;

AgentReport sample() {
  AgentReport r;
  r.endpoint = "chat";
  r.replica_id = 3;
  r.state = control::AgentState::kReady;
  r.address = "127.0.0.1:41000";
  r.seq = 7;
  r.slots = 4;
  r.interval_s = 1;
  r.in_service = 2;
  r.queued = 1;
  r.avg_in_service = 1.5;
  r.avg_queued = 0.5;
  r.busy = 0.9;
  r.arrivals = 3;
  r.completed = 2;
  r.work = 120;
  r.work_unit = "tokens";
  r.tokens_in = 20;
  r.tokens_out = 100;
  r.latency_mean_s = 1.25;
  r.latency_max_s = 2;
  r.load = {.demand = 90, .capacity = 240, .throughput = 120, .load = 0.375, .learned = true};
  r.work_per_request = 60;
  r.total_requests = 40;
  r.total_completed = 37;
  r.total_rejected = 2;
  r.total_work = 2200;
  r.gpus.push_back({0, 0.93, 1000, 2000});
  r.engine = metrics::EngineSignals{.running = 2, .waiting = 5, .kv_cache = 0.25};
  return r;
}

// The problem parse_report finds once `change` is applied to a valid report.
std::string problem(const std::function<void(json&)>& change) {
  json j = json::parse(encode_report(sample()));
  change(j);
  const ParsedReport p = parse_report(j.dump());
  EXPECT_FALSE(p.report.has_value()) << j.dump();
  return p.error;
}

TEST(Report, RoundTrips) {
  const ParsedReport p = parse_report(encode_report(sample()));
  ASSERT_TRUE(p.report) << p.error;
  const AgentReport& r = *p.report;
  EXPECT_EQ(r.endpoint, "chat");
  EXPECT_EQ(r.replica_id, 3u);
  EXPECT_EQ(r.state, control::AgentState::kReady);
  EXPECT_EQ(r.address, "127.0.0.1:41000");
  EXPECT_EQ(r.in_service, 2);
  EXPECT_DOUBLE_EQ(r.load.load, 0.375);
  EXPECT_TRUE(r.load.learned);
  EXPECT_EQ(r.latency_mean_s, 1.25);
  EXPECT_EQ(r.total_completed, 37u);
  ASSERT_EQ(r.gpus.size(), 1u);
  EXPECT_DOUBLE_EQ(r.gpus[0].utilization, 0.93);
  const control::ReplicaReport rr = to_replica_report(r);
  EXPECT_EQ(rr.interval, std::chrono::seconds(1));
  EXPECT_EQ(rr.queued, 1);
  EXPECT_DOUBLE_EQ(rr.work_per_request, 60);
  // The control plane keeps the GPU readings (the API and /metrics show them).
  ASSERT_EQ(rr.gpus.size(), 1u);
  EXPECT_DOUBLE_EQ(rr.gpus[0].utilization, 0.93);
  EXPECT_EQ(rr.gpus[0].memory_used_bytes, 1000u);
  EXPECT_EQ(rr.gpus[0].memory_total_bytes, 2000u);
  // And the model server's own figures.
  ASSERT_TRUE(rr.engine);
  EXPECT_EQ(*rr.engine, (metrics::EngineSignals{.running = 2, .waiting = 5, .kv_cache = 0.25}));
}

TEST(Report, EngineFiguresAreOptionalAndPartial) {
  AgentReport r = sample();
  r.engine.reset();
  EXPECT_FALSE(json::parse(encode_report(r)).contains("engine"));
  r.engine = metrics::EngineSignals{.running = 3, .waiting = 0, .kv_cache = std::nullopt};  // TGI
  const ParsedReport p = parse_report(encode_report(r));
  ASSERT_TRUE(p.report) << p.error;
  EXPECT_EQ(p.report->engine, r.engine);
}

TEST(Report, NoGpuMeansNoGpuField) {
  AgentReport r = sample();
  r.gpus.clear();
  EXPECT_FALSE(json::parse(encode_report(r)).contains("gpus"));
}

TEST(Report, UnknownFieldsAreIgnored) {
  json j = json::parse(encode_report(sample()));
  j["from_the_future"] = {1, 2, 3};
  EXPECT_TRUE(parse_report(j.dump()).report.has_value());
}

TEST(Report, EveryBadFieldIsNamedWithItsProblem) {
  EXPECT_EQ(parse_report("{not json").error, "body: not valid JSON");
  EXPECT_EQ(parse_report("[1]").error, "body: must be a JSON object");
  EXPECT_EQ(problem([](json& j) { j.erase("replica_id"); }), "replica_id: required");
  EXPECT_EQ(problem([](json& j) { j["replica_id"] = "3"; }),
            "replica_id: must be an integer, got \"3\"");
  EXPECT_EQ(problem([](json& j) { j["state"] = "busy"; }),
            "state: must be starting, ready or unhealthy, got \"busy\"");
  EXPECT_EQ(problem([](json& j) { j.erase("address"); }), "address: required");
  EXPECT_EQ(problem([](json& j) { j["address"] = "http://x/"; }),
            "address: must be host:port, got \"http://x/\"");
  EXPECT_EQ(problem([](json& j) { j["in_service"] = -1; }),
            "in_service: must be from 0 to 1000000000, got -1");
  EXPECT_EQ(problem([](json& j) { j["in_service"] = 5; }),
            "in_service: must be <= slots (4), got 5");
  EXPECT_EQ(problem([](json& j) { j["busy"] = 1.5; }), "busy: must be from 0 to 1, got 1.5");
  EXPECT_EQ(problem([](json& j) { j["interval_s"] = 0; }), "interval_s: must be > 0");
  EXPECT_EQ(problem([](json& j) { j["load"] = "high"; }), "load: must be a number, got \"high\"");
  EXPECT_EQ(problem([](json& j) { j["work_unit"] = "bytes"; }),
            "work_unit: must be tokens or requests, got \"bytes\"");
  EXPECT_EQ(problem([](json& j) { j["latency_s"]["mean"] = -1; }),
            "latency_s.mean: must be from 0 to 10000000, got -1");
  EXPECT_EQ(problem([](json& j) { j["gpus"][0]["utilization"] = 93; }),
            "gpus[0].utilization: must be from 0 to 1, got 93");
  EXPECT_EQ(problem([](json& j) { j["totals"]["completed"] = 1.5; }),
            "totals.completed: must be an integer, got 1.5");
  EXPECT_EQ(problem([](json& j) { j["endpoint"] = ""; }), "endpoint: must not be empty");
  EXPECT_EQ(problem([](json& j) { j["engine"]["kv_cache"] = 1.5; }),
            "engine.kv_cache: must be from 0 to 1, got 1.5");
  EXPECT_EQ(problem([](json& j) { j["engine"]["waiting"] = -2; }),
            "engine.waiting: must be from 0 to 1000000000, got -2");
  EXPECT_EQ(problem([](json& j) { j["engine"] = json::object(); }),
            "engine.running: required (or waiting)");
  EXPECT_EQ(problem([](json& j) { j["engine"] = 3; }),
            "engine: must be an object like {\"waiting\": 2}");
}

}  // namespace
}  // namespace tide::agent
