#include "tide/cli/format.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

namespace tide::cli {
namespace {

// GET /v1/endpoints/chat of a server with two groups, as serve.cc writes it (fields trimmed).
const char* kChat = R"({
  "name": "chat", "url_prefix": "/chat/", "queued": 2,
  "routing": {"mode": "split", "weights": {"local": 3.0, "cloud": 1.0}},
  "queue": {"max_length": 1000, "timeout_s": 30.0}, "slo": {"max_wait_s": 2.0},
  "requests": 48, "rejected_queue_full": 3, "rejected_no_replica": 0, "timed_out": 1,
  "groups": [
    {"name": "local", "provisioner": "local", "min_replicas": 0, "max_replicas": 4,
     "concurrency": 4, "desired": 3, "starting": 1, "ready": 2, "draining": 0, "queued": 2,
     "in_flight": 5, "launches": 3, "failures": 0, "last_reason": "queued 7 > 2 x 2 ready: 2 -> 3",
     "stats": {"latency_s": {"count": 40, "p50": 0.512, "p95": 1.25}},
     "replicas": [
       {"id": 1, "name": "chat/local/1", "state": "ready", "address": "127.0.0.1:40001",
        "in_flight": 3, "age_s": 62.4, "cold_start_s": 0.31},
       {"id": 2, "name": "chat/local/2", "state": "ready", "address": "127.0.0.1:40002",
        "in_flight": 2, "age_s": 3725.0, "cold_start_s": 0.29},
       {"id": 3, "name": "chat/local/3", "state": "starting", "address": "127.0.0.1:40003",
        "in_flight": 0, "age_s": 1.2}]},
    {"name": "cloud", "provisioner": "static", "min_replicas": 1, "max_replicas": 12,
     "concurrency": 8, "desired": 1, "starting": 0, "ready": 0, "draining": 0, "queued": 0,
     "in_flight": 0, "launches": 4, "failures": 4, "last_error": "exited with status 1",
     "backoff_s": 3.2, "last_reason": "min_replicas 1",
     "stats": {"latency_s": {"count": 0, "p50": 0, "p95": 0}},
     "replicas": []}],
  "decisions": []
})";

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The line that starts (after the indent) with `start`, or "".
std::string line_starting(const std::string& text, const std::string& start) {
  for (const auto& l : lines_of(text)) {
    if (l.find_first_not_of(' ') != std::string::npos &&
        l.substr(l.find_first_not_of(' ')).starts_with(start))
      return l;
  }
  return "";
}

TEST(FormatStatus, ShowsTheEndpointItsGroupsAndReplicas) {
  const std::string out = format_status({json::parse(kChat)}, {});
  EXPECT_EQ(lines_of(out).front(),
            "chat  routing split cloud 1, local 3  queued 2 of 1000  requests 48  rejected 4 "
            "(queue full 3, timed out 1)");
  EXPECT_EQ(
      line_starting(out, "GROUP"),
      "  GROUP  DESIRED  READY  STARTING  DRAINING  MIN/MAX  QUEUED  IN FLIGHT    P50    P95");
  EXPECT_EQ(
      line_starting(out, "local "),
      "  local        3      2         1         0      0/4       2          5  512ms  1.25s");
  EXPECT_EQ(
      line_starting(out, "cloud "),
      "  cloud        1      0         0         0     1/12       0          0      -      -");
  EXPECT_EQ(line_starting(out, "local:"), "  local: queued 7 > 2 x 2 ready: 2 -> 3");
  EXPECT_EQ(line_starting(out, "cloud: 4"),
            "  cloud: 4 of 4 launches failed; last: exited with status 1; next launch in 4s");
  EXPECT_EQ(line_starting(out, "REPLICA"),
            "  REPLICA       STATE     ADDRESS            AGE  IN FLIGHT  COLD START");
  EXPECT_EQ(line_starting(out, "chat/local/1"),
            "  chat/local/1  ready     127.0.0.1:40001  1m02s          3       310ms");
  EXPECT_EQ(line_starting(out, "chat/local/2"),
            "  chat/local/2  ready     127.0.0.1:40002  1h02m          2       290ms");
  EXPECT_EQ(line_starting(out, "chat/local/3"),
            "  chat/local/3  starting  127.0.0.1:40003     1s          0           -");
  EXPECT_EQ(out.find('\x1b'), std::string::npos) << "no colour unless asked";
  for (const auto& l : lines_of(out)) EXPECT_FALSE(l.ends_with(" ")) << "[" << l << "]";
}

TEST(FormatStatus, StreamedAnswersShowTtftAndTpotOnAGroupLine) {
  json chat = json::parse(kChat);
  chat["groups"][0]["stats"]["ttft_s"] = {{"count", 12}, {"p50", 0.51}, {"p99", 1.9}};
  chat["groups"][0]["stats"]["tpot_s"] = {{"count", 12}, {"p50", 0.02}, {"p99", 0.041}};
  chat["groups"][1]["stats"]["ttft_s"] = {{"count", 0}, {"p50", 0}, {"p99", 0}};
  const std::string out = format_status({chat}, {});
  EXPECT_NE(out.find("  local: ttft p50 510ms p99 1.90s, tpot p50 20ms p99 41ms (12 streamed)\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("cloud: ttft"), std::string::npos) << out;  // none streamed
  // Without the figures (an older server), no line.
  EXPECT_EQ(format_status({json::parse(kChat)}, {}).find("ttft"), std::string::npos);
}

TEST(FormatStatus, ColoursStatesOnlyWhenAsked) {
  FormatOptions o;
  o.color = true;
  const std::string out = format_status({json::parse(kChat)}, o);
  EXPECT_NE(out.find("\x1b[32mready\x1b[0m"), std::string::npos) << out;
  EXPECT_NE(out.find("\x1b[33mstarting\x1b[0m"), std::string::npos) << out;
  // Colour codes do not count toward the width: the columns after stay where they were.
  const std::string plain = format_status({json::parse(kChat)}, {});
  std::string stripped;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '\x1b') {
      i = out.find('m', i);
      continue;
    }
    stripped += out[i];
  }
  EXPECT_EQ(stripped, plain);
}

TEST(FormatStatus, ARolloutShowsOldAndNewReplicasAndWhyItStopped) {
  json ep = json::parse(kChat);
  json& local = ep["groups"][0];
  local["rollout"] = {{"generation", 2},   {"state", "rolling"}, {"old_replicas", 2},
                      {"new_replicas", 1}, {"max_surge", 1},     {"max_unavailable", 0}};
  local["replicas"][0]["generation"] = 1;
  local["replicas"][1]["generation"] = 1;
  local["replicas"][2]["generation"] = 2;
  std::string out = format_status({ep}, {});
  EXPECT_EQ(line_starting(out, "local: rollout"),
            "  local: rollout to template generation 2 rolling: 2 old, 1 new replicas");
  EXPECT_NE(line_starting(out, "REPLICA").find("TEMPLATE"), std::string::npos) << out;
  EXPECT_TRUE(line_starting(out, "chat/local/1").ends_with("gen 1 (old)")) << out;
  EXPECT_TRUE(line_starting(out, "chat/local/3").ends_with("gen 2")) << out;

  local["rollout"]["state"] = "stopped";
  local["rollout"]["reason"] = "3 replicas of template generation 2 failed";
  out = format_status({ep}, {});
  EXPECT_TRUE(line_starting(out, "local: rollout")
                  .ends_with("; 3 replicas of template generation 2 failed"))
      << out;
  local["rollout"]["state"] = "none";
  EXPECT_EQ(line_starting(format_status({ep}, {}), "REPLICA").find("TEMPLATE"), std::string::npos);
}

TEST(FormatStatus, AGroupWithEngineMetricsSaysWhatItsModelServersSaid) {
  json ep = json::parse(kChat);
  ep["groups"][0]["engine"] = {
      {"reporting", 2}, {"waiting", 3}, {"running", 4.5}, {"kv_cache", 0.625}};
  EXPECT_EQ(line_starting(format_status({ep}, {}), "local: engine"),
            "  local: engine: 3 waiting, 4.5 running, KV cache 62% (2 replicas read)");
  ep["groups"][0]["engine"].erase("kv_cache");  // TGI exports none
  EXPECT_EQ(line_starting(format_status({ep}, {}), "local: engine"),
            "  local: engine: 3 waiting, 4.5 running (2 replicas read)");
}

TEST(FormatStatus, ReplicaErrorsGetAColumnAndNoReplicasIsSaid) {
  json ep = json::parse(kChat);
  ep["groups"][0]["replicas"][2]["state"] = "failed";
  ep["groups"][0]["replicas"][2]["error"] = "exited with status 1";
  const std::string out = format_status({ep}, {});
  EXPECT_NE(line_starting(out, "REPLICA").find("ERROR"), std::string::npos) << out;
  EXPECT_TRUE(line_starting(out, "chat/local/3").ends_with("exited with status 1")) << out;

  for (auto& g : ep["groups"]) g["replicas"] = json::array();
  EXPECT_NE(format_status({ep}, {}).find("\n  no replicas\n"), std::string::npos);
  EXPECT_EQ(format_status({}, {}), "no endpoints\n");
}

TEST(FormatStatus, AnswersOfAnotherShapePrintDashesInsteadOfThrowing) {
  const std::vector<json> odd = {json::object(), json::parse(R"({"name": "x", "groups": [{"name": 5,
                                   "desired": "three", "replicas": [{"id": "a"}, 7]}]})"),
                                 json::array(), json(3)};
  std::string out;
  EXPECT_NO_THROW(out = format_status(odd, {}));
  EXPECT_NE(out.find("x  queued -"), std::string::npos) << out;
  EXPECT_NE(out.find("\n  x/5/a "), std::string::npos) << out;
  EXPECT_NE(out.find("\n-  queued -"), std::string::npos) << out;
}

TEST(FormatStatus, OverflowRoutingListsTheOrder) {
  json ep = json::parse(kChat);
  ep["routing"] = {{"mode", "overflow"}, {"order", {"local", "cloud"}}};
  EXPECT_TRUE(lines_of(format_status({ep}, {}))
                  .front()
                  .starts_with("chat  routing overflow local > cloud  "));
}

TEST(FormatNumbers, LatenciesAgesAndClocks) {
  EXPECT_EQ(format_seconds(0.000250), "250us");
  EXPECT_EQ(format_seconds(0.0123), "12ms");
  EXPECT_EQ(format_seconds(1.234), "1.23s");
  EXPECT_EQ(format_seconds(12.34), "12.3s");
  EXPECT_EQ(format_seconds(123.4), "2m03s");
  EXPECT_EQ(format_seconds(-1), "-");
  EXPECT_EQ(format_age(42.9), "42s");
  EXPECT_EQ(format_age(192), "3m12s");
  EXPECT_EQ(format_age(7500), "2h05m");
  EXPECT_EQ(format_age(3 * 86400 + 4 * 3600 + 5), "3d04h");
  EXPECT_EQ(format_clock(1700000000.7, false, true), "22:13:20");
  EXPECT_EQ(format_clock(1700000000.7, true, true), "11-14 22:13");
}

json point(double t, int desired, int ready, int starting) {
  return {{"t", t},
          {"step_s", 1.0},
          {"desired", desired},
          {"ready", ready},
          {"starting", starting},
          {"draining", 0},
          {"queued", 0},
          {"in_flight", ready},
          {"requests", 2 * ready},
          {"latency_p50_s", ready > 0 ? json(0.5) : json(nullptr)},
          {"latency_p95_s", ready > 0 ? json(0.9) : json(nullptr)}};
}

const double kT0 = 1700000000;  // 22:13:20 UTC

json scale_up_points() {
  return json::array({point(kT0, 0, 0, 0), point(kT0 + 1, 2, 0, 2), point(kT0 + 2, 2, 1, 1),
                      point(kT0 + 3, 2, 2, 0), point(kT0 + 4, 3, 2, 0), point(kT0 + 5, 3, 3, 0),
                      point(kT0 + 6, 1, 1, 0)});
}

TEST(ReplicaChart, ShowsReadyStartingAndDesiredPerStep) {
  FormatOptions o;
  o.utc = true;
  EXPECT_EQ(replica_chart(scale_up_points(), 1.0, 60, o),
            "  3 |    .#\n"
            "  2 | ++###\n"
            "  1 | +#####\n"
            "  0 +-------\n"
            "     22:13:20\n");
}

TEST(ReplicaChart, SeveralPointsToAColumnTakeTheMaximumAndTheAxisNamesBothEnds) {
  json points = json::array();
  for (int i = 0; i < 120; ++i) points.push_back(point(kT0 + i, i < 60 ? 1 : 2, i < 60 ? 1 : 2, 0));
  points[30]["ready"] = 2;  // a one-second peak still shows
  FormatOptions o;
  o.utc = true;
  const std::string chart = replica_chart(points, 1.0, 40, o);
  const auto lines = lines_of(chart);
  ASSERT_EQ(lines.size(), 4u) << chart;
  EXPECT_EQ(lines[0], "  2 |          #" + std::string(9, ' ') + std::string(20, '#'));
  EXPECT_EQ(lines[1], "  1 |" + std::string(40, '#'));
  EXPECT_EQ(lines[2], "  0 +" + std::string(40, '-'));
  EXPECT_EQ(lines[3], "     22:13:20" + std::string(40 - 16, ' ') + "22:15:19");
}

TEST(ReplicaChart, TallCountsAreScaledToTenRows) {
  json points = json::array();
  for (int i = 0; i < 10; ++i) points.push_back(point(kT0 + i, 50, 5 * i, 0));
  const auto lines = lines_of(replica_chart(points, 1.0, 60, {}));
  ASSERT_EQ(lines.size(), 12u);
  EXPECT_TRUE(lines[0].starts_with("  50 |")) << lines[0];
  EXPECT_TRUE(lines[9].starts_with("   5 |")) << lines[9];
  // The last column: ready 45 of desired 50.
  EXPECT_EQ(lines[0].back(), '.');
  EXPECT_EQ(lines[1].back(), '#');
}

TEST(FormatHistory, AChartAndATablePerGroupThenTheDecisions) {
  const json history = {{"endpoint", "chat"},
                        {"from", kT0},
                        {"to", kT0 + 7},
                        {"step_s", 1.0},
                        {"groups", {{{"name", "local"}, {"points", scale_up_points()}}}}};
  const json decisions = json::parse(R"({"decisions": [
      {"time": 1700000001.2, "group": "local", "from": 0, "to": 2, "reason": "queued 4: 0 -> 2",
       "queued": 4, "in_flight": 0, "ready": 0, "starting": 0},
      {"time": 1700000006.0, "group": "local", "from": 3, "to": 1, "reason": "idle 5s: 3 -> 1",
       "queued": 0, "in_flight": 0, "ready": 3, "starting": 0}]})");
  FormatOptions o;
  o.utc = true;
  const std::string out = format_history(history, decisions, 10, o);
  EXPECT_TRUE(
      out.starts_with("chat/local  22:13:20 to 22:13:27, step 1s\n"
                      "  replicas (# ready, + starting, . desired but not there)\n"
                      "  3 |    .#\n"))
      << out;
  EXPECT_EQ(line_starting(out, "TIME  "),
            "  TIME      DESIRED  READY  STARTING  DRAINING  QUEUED  IN FLIGHT  REQUESTS    P50    "
            "P95");
  EXPECT_EQ(
      line_starting(out, "22:13:20 "),
      "  22:13:20        0      0         0         0       0          0         0      -      "
      "-");
  EXPECT_EQ(line_starting(out, "22:13:25 "),
            "  22:13:25        3      3         0         0       0          3         6  500ms  "
            "900ms");
  EXPECT_NE(out.find("\n2 scaling decisions from 22:13:20 to 22:13:27\n"), std::string::npos)
      << out;
  EXPECT_NE(out.find("\n  TIME      GROUP  CHANGE  REASON\n"
                     "  22:13:21  local  0 -> 2  queued 4: 0 -> 2\n"
                     "  22:13:26  local  3 -> 1  idle 5s: 3 -> 1\n"),
            std::string::npos)
      << out;
  EXPECT_NE(format_history(history, decisions, 2, o).find("\nthe last 2 scaling decisions\n"),
            std::string::npos);
}

TEST(FormatHistory, NoSamplesAndNoDecisionsAreSaid) {
  const json history = {{"endpoint", "chat"},
                        {"from", kT0},
                        {"to", kT0 + 3600},
                        {"step_s", 60.0},
                        {"groups", json::array()}};
  FormatOptions o;
  o.utc = true;
  const std::string out = format_history(history, json::parse(R"({"decisions": []})"), 10, o);
  EXPECT_NE(out.find("no history for chat from 22:13:20 to 23:13:20"), std::string::npos) << out;
  EXPECT_NE(out.find("no scaling decisions from 22:13:20 to 23:13:20"), std::string::npos) << out;
  EXPECT_EQ(format_history(history, json(), 10, o).find("decisions"), std::string::npos);
}

TEST(FormatHistory, SpansLongerThanADayShowTheDate) {
  json points = json::array({point(kT0, 1, 1, 0), point(kT0 + 86400, 1, 1, 0)});
  points[1]["step_s"] = 3600.0;
  const json history = {{"endpoint", "chat"},
                        {"from", kT0},
                        {"to", kT0 + 2 * 86400},
                        {"step_s", 3600.0},
                        {"groups", {{{"name", "local"}, {"points", points}}}}};
  FormatOptions o;
  o.utc = true;
  const std::string out = format_history(history, json(), 0, o);
  EXPECT_NE(out.find("11-14 22:13 to 11-16 22:13, step 1h"), std::string::npos) << out;
  EXPECT_NE(out.find("\n  11-15 22:13 "), std::string::npos) << out;
}

}  // namespace
}  // namespace tide::cli
