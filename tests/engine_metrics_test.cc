// End to end: a group that scales on what its model servers say of themselves (engine_metrics,
// metric: engine_waiting). The replicas are real `tide demo-model` processes exporting vLLM's
// gauges on /metrics from their own state; tide serve's probe (or the agent) reads them. The
// gateway lets 8 requests through to each replica, a replica serves 2 at once: the rest wait
// inside the "engine", where only its /metrics page shows them.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>

#include "serve_harness.h"

namespace tide::test {
namespace {

// Replicas with 2 slots each behind a group that allows 8 per replica, scaling on engine_waiting.
Options engine_options(const std::string& name, const std::string& extra) {
  Options o;
  o.min_replicas = 1;
  o.max_replicas = 3;
  o.concurrency = 8;
  const std::string marker = "e2e-" + std::to_string(getpid()) + "-" + name;
  o.provisioner =
      "{kind: local, command: [\"{tide}\", demo-model, --port, \"{port}\", --concurrency, \"2\", "
      "--service, \"fixed:1s\", --model, " +
      marker + "], ready: {path: /health, interval: 50ms}}";
  o.group_extra = "engine_metrics: {path: /metrics, kind: vllm, interval: 200ms}" + extra;
  o.scaling =
      "{policy: target, metric: engine_waiting, target: 1, sync_period: 1s, metric_window: 1s, "
      "tick: 200ms}";
  return o;
}

// Whether a decision scaled to 2 or more on engine_waiting above the target of 1.
bool scaled_on_engine_waiting(const json& endpoint) {
  for (const json& d : endpoint["decisions"]) {
    const std::string reason = d["reason"].get<std::string>();
    if (d["to"].get<int>() >= 2 && reason.starts_with("engine_waiting ") &&
        std::stod(reason.substr(15)) > 1)
      return true;
  }
  return false;
}

void scales_on_engine_waiting(Serve& s) {
  ASSERT_TRUE(eventually([&] { return s.count("ready") == 1; }, 10)) << s.endpoint().dump(2);
  SteadyLoad load(s.port(), 8);
  const bool scaled = eventually([&] { return s.count("ready") >= 2; }, 20);
  // Read while the load is on: the replicas' engines are busy.
  const json busy = s.endpoint();
  const std::map<int, int> statuses = load.stop();
  ASSERT_TRUE(scaled) << busy.dump(2);
  EXPECT_EQ(statuses.size(), 1u);  // every answer a 200
  EXPECT_TRUE(statuses.contains(200));
  // The gateway held nothing (8 slots a replica): the decision came from the engines' figures.
  EXPECT_TRUE(scaled_on_engine_waiting(busy)) << busy["decisions"].dump(2);
  const json& group = busy["groups"][0];
  ASSERT_TRUE(group.contains("engine")) << group.dump(2);
  EXPECT_GE(group["engine"]["reporting"].get<int>(), 1);
  bool replica_engine = false;
  for (const json& r : group["replicas"])
    replica_engine = replica_engine || (r.contains("engine") && r["engine"].contains("kv_cache"));
  EXPECT_TRUE(replica_engine) << group["replicas"].dump(2);
  // /metrics has them per replica.
  const std::string text = s.api("GET", "/metrics").body;
  EXPECT_NE(text.find("tide_replica_engine_requests{endpoint=\"chat\",group=\"local\",replica="),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("tide_replica_engine_kv_cache_ratio{"), std::string::npos);
  // tide status shows them.
  const CliRun status = tide_cli("status --api http://127.0.0.1:" + std::to_string(s.api_port()) +
                                 " --token " + Serve::kToken);
  EXPECT_NE(status.out.find("local: engine: "), std::string::npos) << status.out;
  EXPECT_EQ(s.terminate(), 0);
}

TEST(EngineMetrics, TheProbeReadsVllmGaugesAndTheGroupScalesOnEngineWaiting) {
  Serve s("engine-probe", engine_options("engine-probe", ""));
  scales_on_engine_waiting(s);
}

TEST(EngineMetrics, TheAgentReadsVllmGaugesAndReportsThemForScaling) {
  Serve s(
      "engine-agent",
      engine_options("engine-agent", "\n        agent: {enabled: true, report_interval: 200ms}"));
  scales_on_engine_waiting(s);
}

}  // namespace
}  // namespace tide::test
