#include "tide/config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace tide::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr const char* kExample = R"(endpoints:
  - name: chat
    slo: {max_wait: 2s}
    queue: {max_length: 10000, timeout: 300s}
    groups:
      - name: h100
        min_replicas: 0
        max_replicas: 4
        concurrency: 8
        cold_start: 60s
        price: 4.50
        service_time: {model: tokens, prefill: 0.0002, decode: 0.02}
        scaling: {policy: queue, queue_size: 1, idle_timeout: 30s}
)";

// The problems parse_config reports for `yaml` (a test failure if it parses).
std::vector<std::string> problems(std::string_view yaml) {
  try {
    parse_config(yaml, "test.yaml");
  } catch (const ConfigError& e) {
    return e.problems();
  }
  ADD_FAILURE() << "parsed without error:\n" << yaml;
  return {};
}

// A config with one endpoint "chat" and one group "g" with the given (block) fields.
std::string group_yaml(std::string_view fields) {
  std::string out = "endpoints:\n  - name: chat\n    groups:\n      - name: g\n";
  std::istringstream lines{std::string(fields)};
  for (std::string line; std::getline(lines, line);) out += "        " + line + "\n";
  return out;
}

GroupSpec group(std::string_view fields) {
  return parse_config(group_yaml(fields)).endpoints.at(0).groups.at(0);
}

std::vector<std::string> group_problems(std::string_view fields) {
  return problems(group_yaml(fields));
}

constexpr const char* kG = "endpoints[0].groups[0].";

std::string g(std::string_view rest) { return kG + std::string(rest); }

std::vector<std::string> scaling_problems(std::string_view yaml, int concurrency = 8) {
  GroupSpec spec;
  spec.concurrency = concurrency;
  try {
    parse_scaling(yaml, spec);
  } catch (const ConfigError& e) {
    return e.problems();
  }
  ADD_FAILURE() << "parsed without error: " << yaml;
  return {};
}

ScalingSpec scaling(std::string_view yaml) {
  GroupSpec spec;
  spec.concurrency = 8;
  return parse_scaling(yaml, spec);
}

// ---- the example and defaults ----------------------------------------------------------------

TEST(ParseConfig, ExampleHasTheWrittenValues) {
  const Config c = parse_config(kExample, "example.yaml");
  ASSERT_EQ(c.endpoints.size(), 1u);
  const EndpointSpec& e = c.endpoints[0];
  EXPECT_EQ(e.name, "chat");
  EXPECT_EQ(e.slo.max_wait, 2s);
  EXPECT_EQ(e.queue.max_length, 10000);
  EXPECT_EQ(e.queue.timeout, 300s);
  ASSERT_EQ(e.groups.size(), 1u);
  const GroupSpec& gs = e.groups[0];
  EXPECT_EQ(gs.name, "h100");
  EXPECT_EQ(gs.provisioner.kind, "local");
  EXPECT_EQ(gs.min_replicas, 0);
  EXPECT_EQ(gs.max_replicas, 4);
  EXPECT_EQ(gs.concurrency, 8);
  EXPECT_EQ(gs.cold_start.kind, DurationDistribution::Kind::kFixed);
  EXPECT_EQ(gs.cold_start.value, 60s);
  ASSERT_TRUE(gs.price.has_value());
  EXPECT_DOUBLE_EQ(*gs.price, 4.5);
  EXPECT_EQ(gs.service_time.kind, ServiceTimeModel::Kind::kTokens);
  EXPECT_DOUBLE_EQ(gs.service_time.prefill_s, 0.0002);
  EXPECT_DOUBLE_EQ(gs.service_time.decode_s, 0.02);
  EXPECT_EQ(gs.service_time.base, 0s);
  EXPECT_EQ(gs.scaling.policy, PolicyKind::kQueue);
  EXPECT_EQ(gs.scaling.preset, "");
  EXPECT_EQ(gs.scaling.queue.queue_size, 1);
  EXPECT_EQ(gs.scaling.queue.idle_timeout, 30s);
  EXPECT_FALSE(gs.scaling.modifiers.idle_timeout.has_value());
  EXPECT_TRUE(gs.scaling.admission.hold);
  EXPECT_EQ(gs.scaling.tick, 1s);
  EXPECT_EQ(c.server.listen, "127.0.0.1:8080");
  EXPECT_EQ(c.server.api, "127.0.0.1:8081");
}

TEST(ParseConfig, DefaultsFillEverythingNotWritten) {
  const Config c = parse_config("endpoints: [{name: chat, groups: [{name: g}]}]");
  const EndpointSpec& e = c.endpoints.at(0);
  EXPECT_EQ(e.slo.max_wait, 2s);
  EXPECT_EQ(e.queue.max_length, 10000);
  EXPECT_EQ(e.queue.timeout, 300s);
  const GroupSpec& gs = e.groups.at(0);
  EXPECT_EQ(gs.min_replicas, 0);
  EXPECT_EQ(gs.max_replicas, 1);
  EXPECT_EQ(gs.concurrency, 1);
  EXPECT_EQ(gs.cold_start.value, 0s);
  EXPECT_FALSE(gs.price.has_value());
  EXPECT_EQ(gs.service_time.kind, ServiceTimeModel::Kind::kTrace);
  EXPECT_EQ(gs.provisioner.kind, "local");
  EXPECT_TRUE(gs.provisioner.command.empty());
  // No scaling block: the tide preset.
  EXPECT_EQ(gs.scaling.preset, "tide");
  EXPECT_EQ(gs.scaling.policy, PolicyKind::kTide);
  EXPECT_TRUE(gs.scaling.admission.hold);
}

TEST(ParseConfig, FullConfigWithServerAndProvisioners) {
  const Config c = parse_config(R"(
server: {listen: 0.0.0.0:9000, api: "127.0.0.1:9001"}
endpoints:
  - name: chat
    groups:
      - name: local-gpu
        provisioner:
          kind: local
          command: [python, serve.py, --port, "{port}"]
          ready: {path: /ready, interval: 250ms, timeout: 2s}
          gpus: [0, 1, 2, 3]
          gpus_per_replica: 2
      - name: fixed_pool
        provisioner: {kind: static, urls: ["http://10.0.0.1:8000", "https://b:443"]}
  - name: embed
    groups:
      - name: sim
        provisioner: {kind: simulated}
)");
  EXPECT_EQ(c.server.listen, "0.0.0.0:9000");
  EXPECT_EQ(c.server.api, "127.0.0.1:9001");
  ASSERT_EQ(c.endpoints.size(), 2u);
  const ProvisionerSpec& local = c.endpoints[0].groups[0].provisioner;
  EXPECT_EQ(local.kind, "local");
  EXPECT_THAT(local.command, ElementsAre("python", "serve.py", "--port", "{port}"));
  EXPECT_EQ(local.ready.path, "/ready");
  EXPECT_EQ(local.ready.interval, 250ms);
  EXPECT_EQ(local.ready.timeout, 2s);
  EXPECT_THAT(local.gpus, ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(local.gpus_per_replica, 2);
  const ProvisionerSpec& fixed = c.endpoints[0].groups[1].provisioner;
  EXPECT_EQ(fixed.kind, "static");
  EXPECT_THAT(fixed.urls, ElementsAre("http://10.0.0.1:8000", "https://b:443"));
  EXPECT_EQ(c.endpoints[1].groups[0].provisioner.kind, "simulated");
}

// ---- structure and types ---------------------------------------------------------------------

TEST(ParseConfigErrors, MaxBelowMin) {
  EXPECT_THAT(group_problems("min_replicas: 2\nmax_replicas: 1"),
              ElementsAre(g("max_replicas: must be >= min_replicas (2), got 1")));
  EXPECT_THAT(group_problems("min_replicas: 2"),
              ElementsAre(g("max_replicas: must be >= min_replicas (2), got 1 (the default)")));
}

TEST(ParseConfigErrors, RangesOfGroupFields) {
  EXPECT_THAT(group_problems("min_replicas: -1"),
              ElementsAre(g("min_replicas: must be >= 0, got -1")));
  EXPECT_THAT(group_problems("max_replicas: 0"),
              ElementsAre(g("max_replicas: must be >= 1 and <= 100000, got 0")));
  EXPECT_THAT(group_problems("concurrency: 0"),
              ElementsAre(g("concurrency: must be >= 1 and <= 100000, got 0")));
  // The gateway keeps a list per busy count: two billion slots would cost it gigabytes.
  EXPECT_THAT(group_problems("concurrency: 2000000000"),
              ElementsAre(g("concurrency: must be >= 1 and <= 100000, got 2000000000")));
  EXPECT_THAT(group_problems("price: -0.5"), ElementsAre(g("price: must be >= 0, got -0.5")));
  // The simulator's fixed-fleet search runs the largest fleet allowed: billions would exhaust it.
  EXPECT_THAT(group_problems("max_replicas: 2000000000"),
              ElementsAre(g("max_replicas: must be >= 1 and <= 100000, got 2000000000")));
  EXPECT_THAT(group_problems("max_replicas: 99999999999"),
              ElementsAre(g("max_replicas: must be <= 2147483647, got 99999999999")));
}

TEST(ParseConfig, RolloutLimitsDefaultToOneSurgeAndNoneUnavailable) {
  EXPECT_EQ(group("max_replicas: 2").rollout, (RolloutSpec{.max_surge = 1, .max_unavailable = 0}));
  EXPECT_EQ(group("rollout: {max_surge: 0, max_unavailable: 2}").rollout,
            (RolloutSpec{.max_surge = 0, .max_unavailable = 2}));
}

TEST(ParseConfigErrors, RolloutLimits) {
  EXPECT_THAT(group_problems("rollout: {max_surge: -1}"),
              ElementsAre(g("rollout.max_surge: must be >= 0, got -1")));
  EXPECT_THAT(group_problems("rollout: {max_surge: 0}"),
              ElementsAre(g("rollout.max_surge: max_surge and max_unavailable cannot both be 0 (a "
                            "rollout could never replace a replica)")));
  EXPECT_THAT(group_problems("rollout: {max_surge: 0, max_unavailable: 0}"),
              ElementsAre(HasSubstr(g("rollout.max_unavailable: max_surge and max_unavailable"))));
  EXPECT_THAT(group_problems("rollout: {max_unavailable: one}"),
              ElementsAre(g("rollout.max_unavailable: expected an integer, got \"one\"")));
  EXPECT_THAT(group_problems("rollout: {surge: 1}"),
              ElementsAre(HasSubstr(g("rollout.surge: unknown key"))));
  EXPECT_THAT(group_problems("rollout: 1"), ElementsAre(HasSubstr(g("rollout: expected a map"))));
}

TEST(SameLaunchTemplate, CommandAndAgentCountTheProbeDoesNot) {
  const GroupSpec a = group("provisioner: {kind: local, command: [server, \"{port}\"]}");
  GroupSpec b = a;
  b.provisioner.ready.path = "/ready";
  b.provisioner.pending_timeout = std::chrono::seconds(1);
  b.max_replicas = 9;
  EXPECT_TRUE(same_launch_template(a, b));
  b.provisioner.command.push_back("--fast");
  EXPECT_FALSE(same_launch_template(a, b));
  b = a;
  b.agent.report_interval = std::chrono::seconds(2);
  EXPECT_FALSE(same_launch_template(a, b));
  // The engine's page is read by the probe without an agent: tide's own, as the ready probe.
  b = a;
  b.engine_metrics.enabled = true;
  EXPECT_TRUE(same_launch_template(a, b));
  // With an agent, it is on the agent's command line.
  GroupSpec with_agent = a;
  with_agent.agent.enabled = true;
  b = with_agent;
  b.engine_metrics.enabled = true;
  EXPECT_FALSE(same_launch_template(with_agent, b));
}

TEST(LaunchTemplateFingerprint, NamesTheTemplateAndOnlyWhatDiffersFromTheDefaults) {
  const GroupSpec a = group("provisioner: {kind: local, command: [server, \"{port}\"]}");
  GroupSpec b = a;
  b.provisioner.ready.path = "/ready";  // tide's probe, not the template
  EXPECT_EQ(launch_template_fingerprint(a), launch_template_fingerprint(b));
  EXPECT_EQ(launch_template_fingerprint(a).size(), 16u);
  // Defaults are left out, so a field added with its default keeps older fingerprints.
  EXPECT_EQ(launch_template_text(a), "command=[2]6:server6:{port}\n");
  b.provisioner.slurm.mem = "32G";
  EXPECT_NE(launch_template_fingerprint(a), launch_template_fingerprint(b));
  // Length-prefixed: moving text between arguments is a different command.
  GroupSpec c = a, d = a;
  c.provisioner.command = {"a b", "c"};
  d.provisioner.command = {"a", "b c"};
  EXPECT_NE(launch_template_fingerprint(c), launch_template_fingerprint(d));
}

TEST(ParseConfigErrors, WrongTypes) {
  EXPECT_THAT(group_problems("concurrency: eight"),
              ElementsAre(g("concurrency: expected an integer, got \"eight\"")));
  EXPECT_THAT(group_problems("concurrency: 2.5"),
              ElementsAre(g("concurrency: expected an integer, got 2.5")));
  EXPECT_THAT(group_problems("concurrency: [1]"),
              ElementsAre(g("concurrency: expected an integer, got a list")));
  EXPECT_THAT(group_problems("concurrency:"),
              ElementsAre(g("concurrency: expected an integer, got nothing")));
  EXPECT_THAT(group_problems("price: cheap"),
              ElementsAre(g("price: expected a number, got \"cheap\"")));
  EXPECT_THAT(group_problems("provisioner: {ready: {path: {a: 1}}}"),
              ElementsAre(g("provisioner.ready.path: expected a string, got a map")));
  EXPECT_THAT(group_problems("scaling: {admission: {hold: maybe}}"),
              ElementsAre(g("scaling.admission.hold: expected true or false, got \"maybe\"")));
  EXPECT_THAT(problems("endpoints: [{name: chat, slo: 2s, groups: [{name: g}]}]"),
              ElementsAre("endpoints[0].slo: expected a map like {max_wait: 2s} or {ttft: 1s}, got "
                          "\"2s\""));
  EXPECT_THAT(problems("endpoints: {name: chat}"),
              ElementsAre("endpoints: expected a list, got a map"));
}

TEST(ParseConfigErrors, UnknownKeysSuggestTheClosest) {
  EXPECT_THAT(group_problems("max_replica: 2"),
              ElementsAre(g("max_replica: unknown key (did you mean max_replicas?)")));
  EXPECT_THAT(group_problems("scaling: {policy: queue, queue_sise: 2}"),
              ElementsAre(g("scaling.queue_sise: unknown key (did you mean queue_size?)")));
  EXPECT_THAT(problems("endpoint: []"),
              ElementsAre("endpoint: unknown key (did you mean endpoints?)",
                          "endpoints: required (at least one endpoint)"));
  EXPECT_THAT(problems("endpoints: [{name: chat, slo: {wait: 1s}, groups: [{name: g}]}]"),
              ElementsAre("endpoints[0].slo.wait: unknown key (did you mean max_wait?)"));
  EXPECT_THAT(
      problems("endpoints: [{name: chat, zzz: 1, groups: [{name: g}]}]"),
      ElementsAre(
          "endpoints[0].zzz: unknown key (known keys: name, models, slo, queue, routing, groups)"));
}

TEST(ParseConfigErrors, DuplicateKeys) {
  EXPECT_THAT(group_problems("concurrency: 2\nconcurrency: 3"),
              ElementsAre(g("concurrency: duplicate key")));
}

TEST(ParseConfigErrors, DurationsNeedAUnit) {
  EXPECT_THAT(group_problems("cold_start: 60"),
              ElementsAre(g("cold_start: a duration needs a unit, e.g. 60s or 60ms, got 60")));
  EXPECT_THAT(group_problems("cold_start: \"60\""),
              ElementsAre(g("cold_start: a duration needs a unit, e.g. 60s or 60ms, got 60")));
  EXPECT_THAT(
      group_problems("cold_start: soon"),
      ElementsAre(g("cold_start: expected a duration like 500ms, 30s, 3m or 2h30m, got \"soon\"")));
  EXPECT_THAT(group_problems("cold_start: -5s"),
              ElementsAre(g("cold_start: must be >= 0, got -5s")));
  // "0" needs no unit.
  EXPECT_EQ(group("cold_start: 0").cold_start.value, 0s);
  EXPECT_EQ(group("cold_start: 2h30m").cold_start.value, 150min);
  EXPECT_EQ(group("cold_start: 500ms").cold_start.value, 500ms);
}

TEST(ParseConfigErrors, EndpointFields) {
  EXPECT_THAT(
      problems(
          "endpoints: [{name: chat, queue: {max_length: -1, timeout: 0s}, groups: [{name: g}]}]"),
      ElementsAre("endpoints[0].queue.max_length: must be >= 0, got -1",
                  "endpoints[0].queue.timeout: must be > 0, got 0s"));
  // max_length 0 is "no holding", valid.
  EXPECT_EQ(parse_config("endpoints: [{name: chat, queue: {max_length: 0}, groups: [{name: g}]}]")
                .endpoints[0]
                .queue.max_length,
            0);
  EXPECT_THAT(problems("endpoints: [{name: chat}]"),
              ElementsAre("endpoints[0].groups: required (at least one worker group)"));
  EXPECT_THAT(problems("endpoints: [{name: chat, groups: []}]"),
              ElementsAre("endpoints[0].groups: must have at least one worker group"));
  EXPECT_THAT(problems("endpoints: [{groups: [{name: g}]}]"),
              ElementsAre("endpoints[0].name: required"));
}

TEST(ParseConfig, SloTtftSetsTheWaitBudgetLessTheExpectedPrefill) {
  const EndpointSpec e =
      parse_config("endpoints: [{name: chat, slo: {ttft: 1500ms}, groups: [{name: g}]}]")
          .endpoints[0];
  ASSERT_TRUE(e.slo.ttft.has_value());
  EXPECT_EQ(*e.slo.ttft, 1500ms);
  EXPECT_EQ(wait_budget(e.slo, 0s), 1500ms);
  EXPECT_EQ(wait_budget(e.slo, 400ms), 1100ms);
  EXPECT_EQ(wait_budget(e.slo, 2s), 0s);  // prefill alone overruns: start at once
  // Without ttft the budget is max_wait, whatever the prefill.
  const EndpointSpec w =
      parse_config("endpoints: [{name: chat, slo: {max_wait: 3s}, groups: [{name: g}]}]")
          .endpoints[0];
  EXPECT_FALSE(w.slo.ttft.has_value());
  EXPECT_EQ(wait_budget(w.slo, 400ms), 3s);
  // The emitted source reads back as the same SLO.
  const EndpointSpec again = parse_endpoint(e.source);
  ASSERT_TRUE(again.slo.ttft.has_value());
  EXPECT_EQ(*again.slo.ttft, 1500ms);
}

TEST(ParseConfigErrors, SloTtftIsPositiveBoundedAndAloneWithoutMaxWait) {
  EXPECT_THAT(problems("endpoints: [{name: chat, slo: {ttft: 0s}, groups: [{name: g}]}]"),
              ElementsAre("endpoints[0].slo.ttft: must be > 0 and <= 3600, got 0s"));
  EXPECT_THAT(problems("endpoints: [{name: chat, slo: {ttft: 2h}, groups: [{name: g}]}]"),
              ElementsAre("endpoints[0].slo.ttft: must be > 0 and <= 3600, got 2h"));
  EXPECT_THAT(problems("endpoints: [{name: chat, slo: {ttft: fast}, groups: [{name: g}]}]"),
              ElementsAre(testing::StartsWith("endpoints[0].slo.ttft: ")));
  EXPECT_THAT(
      problems("endpoints: [{name: chat, slo: {ttft: 1s, max_wait: 1s}, groups: [{name: g}]}]"),
      ElementsAre("endpoints[0].slo.ttft: give max_wait or ttft, not both (a ttft SLO sets the "
                  "wait budget)"));
}

TEST(ParseConfigErrors, TopLevel) {
  EXPECT_THAT(problems(""), ElementsAre("endpoints: required (at least one endpoint)"));
  EXPECT_THAT(problems("endpoints: []"), ElementsAre("endpoints: must have at least one endpoint"));
  EXPECT_THAT(problems("- a\n- b\n"),
              ElementsAre("expected a map with server and endpoints at the top level, got a list"));
  EXPECT_THAT(problems("a: 1\n---\nb: 2\n"),
              ElementsAre("expected one YAML document, got 2 or more"));
  // yaml-cpp's LoadAll never returned on a lone "," (found by fuzz/config_fuzz.cc).
  EXPECT_FALSE(problems(",").empty());
  EXPECT_FALSE(problems("    , \"{port}\", --load-time, 2s").empty());
}

TEST(ParseConfigErrors, Names) {
  EXPECT_THAT(problems("endpoints: [{name: Chat, groups: [{name: g}]}]"),
              ElementsAre("endpoints[0].name: must match [a-z0-9][a-z0-9_-]* (lowercase letters, "
                          "digits, - and _), got \"Chat\""));
  EXPECT_THAT(problems("endpoints: [{name: \"\", groups: [{name: -g}]}]"),
              ElementsAre("endpoints[0].name: must not be empty",
                          "endpoints[0].groups[0].name: must match [a-z0-9][a-z0-9_-]* (lowercase "
                          "letters, digits, - and _), got \"-g\""));
  EXPECT_THAT(
      problems(
          "endpoints: [{name: a, groups: [{name: g}, {name: g}]}, {name: a, groups: [{name: g}]}]"),
      ElementsAre("endpoints[0].groups[1].name: duplicate group name \"g\" (also groups[0])",
                  "endpoints[1].name: duplicate endpoint name \"a\" (also endpoints[0])"));
  // Same group name in different endpoints is fine; digits, - and _ are allowed.
  EXPECT_NO_THROW(parse_config(
      "endpoints: [{name: a-1, groups: [{name: g_2}]}, {name: 2b, groups: [{name: g_2}]}]"));
}

TEST(ParseConfig, ModelsDefaultToTheEndpointsNameAndAreListedAsWritten) {
  const Config c = parse_config(
      "endpoints: [{name: chat, groups: [{name: g}]}, {name: code, models: "
      "[\"meta-llama/Llama-3.1-8B-Instruct\", qwen:7b], groups: [{name: g}]}]");
  EXPECT_THAT(c.endpoints[0].models, ElementsAre("chat"));
  EXPECT_THAT(c.endpoints[1].models, ElementsAre("meta-llama/Llama-3.1-8B-Instruct", "qwen:7b"));
  EXPECT_TRUE(serves_model(c.endpoints[1], "qwen:7b"));
  EXPECT_FALSE(serves_model(c.endpoints[1], "code"));
  // The effective configuration shows them, and an endpoint parsed alone gets the same default.
  EXPECT_NE(effective_yaml(c).find("models: [chat]"), std::string::npos) << effective_yaml(c);
  EXPECT_THAT(parse_endpoint("{name: x, groups: [{name: g}]}").models, ElementsAre("x"));
}

TEST(ParseConfig, ClientAuthIsNoneByDefaultOrKeys) {
  const std::string eps = "\nendpoints: [{name: a, groups: [{name: g}]}]";
  EXPECT_EQ(parse_config(eps).server.client_auth, ServerSpec::ClientAuth::kNone);
  const Config keys = parse_config("server: {client_auth: keys}" + eps);
  EXPECT_EQ(keys.server.client_auth, ServerSpec::ClientAuth::kKeys);
  EXPECT_NE(effective_yaml(keys).find("client_auth: keys"), std::string::npos);
  EXPECT_THAT(
      problems("server: {client_auth: key}" + eps),
      ElementsAre(StartsWith("server.client_auth: expected one of none|keys, got \"key\"")));
}

TEST(ParseConfig, TlsIsOffByDefaultOrPerListener) {
  const std::string eps = "\nendpoints: [{name: a, groups: [{name: g}]}]";
  const Config plain = parse_config(eps);
  EXPECT_FALSE(plain.server.tls.enabled());
  EXPECT_FALSE(plain.server.api_tls.enabled());
  const Config c = parse_config(
      "server: {tls: {cert_file: gw.crt, key_file: gw.key}, api_tls: {cert_file: "
      "api.crt, key_file: api.key}}" +
      eps);
  EXPECT_EQ(c.server.tls.cert_file, "gw.crt");
  EXPECT_EQ(c.server.tls.key_file, "gw.key");
  EXPECT_EQ(c.server.api_tls.cert_file, "api.crt");
  EXPECT_EQ(c.server.api_tls.key_file, "api.key");
  EXPECT_NE(effective_yaml(c).find("tls: {cert_file: gw.crt, key_file: gw.key}"), std::string::npos)
      << effective_yaml(c);
  EXPECT_THAT(problems("server: {tls: {cert_file: gw.crt}}" + eps),
              ElementsAre("server.tls.key_file: required (a PEM file)"));
  EXPECT_THAT(problems("server: {api_tls: {cert_file: \"\", key_file: k, ca: x}}" + eps),
              ElementsAre(StartsWith("server.api_tls.ca: unknown"),
                          "server.api_tls.cert_file: must not be empty"));
  EXPECT_THAT(problems("server: {tls: gw.crt}" + eps),
              ElementsAre(StartsWith("server.tls: expected a map like {cert_file: server.crt")));
}

TEST(ParseConfigErrors, ModelsAreNonEmptyStringsUniqueAcrossEndpoints) {
  EXPECT_THAT(problems("endpoints: [{name: a, models: [], groups: [{name: g}]}]"),
              ElementsAre("endpoints[0].models: must list at least one model (leave it out for "
                          "the endpoint's name)"));
  EXPECT_THAT(problems("endpoints: [{name: a, models: [m, [x]], groups: [{name: g}]}]"),
              ElementsAre("endpoints[0].models[1]: expected a string, got a list"));
  EXPECT_THAT(problems("endpoints: [{name: a, models: [\"\", m, m, \"a\\tb\"], groups: "
                       "[{name: g}]}]"),
              ElementsAre("endpoints[0].models[0]: must not be empty",
                          "endpoints[0].models[2]: \"m\" is listed twice",
                          "endpoints[0].models[3]: must not contain control characters (byte "
                          "0x09 at 1)"));
  EXPECT_THAT(problems("endpoints: [{name: a, models: m, groups: [{name: g}]}]"),
              ElementsAre("endpoints[0].models: expected a list, got \"m\""));
  EXPECT_THAT(
      problems("endpoints: [{name: a, models: [m, a], groups: [{name: g}]}, {name: b, models: "
               "[x, m], groups: [{name: g}]}, {name: m, groups: [{name: g}]}]"),
      ElementsAre("endpoints[1].models[1]: model \"m\" is served by endpoint \"a\" already (list "
                  "other names in models:); a model may be listed by one endpoint only",
                  "endpoints[2].name: model \"m\" is served by endpoint \"a\" already (without "
                  "models: an endpoint serves its name); a model may be listed by one endpoint "
                  "only"));
  // The file is named in the error's text.
  try {
    parse_config("endpoints: [{name: a, models: [], groups: [{name: g}]}]", "tide.yaml");
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("tide.yaml: endpoints[0].models: must list"));
  }
}

TEST(ParseConfigErrors, Server) {
  EXPECT_THAT(
      problems("server: {listen: \"8080\", api: localhost:99999}\nendpoints: [{name: a, groups: "
               "[{name: g}]}]"),
      ElementsAre("server.listen: expected host:port like 127.0.0.1:8080, got \"8080\"",
                  "server.api: expected host:port like 127.0.0.1:8080, got \"localhost:99999\""));
  EXPECT_THAT(
      problems(
          "server: {listen: \"h:80\", api: \"h:80\"}\nendpoints: [{name: a, groups: [{name: g}]}]"),
      ElementsAre("server.api: must differ from listen, got \"h:80\""));
  EXPECT_NO_THROW(
      parse_config("server: {listen: \"[::1]:0\", api: \"[::1]:0\"}\nendpoints: [{name: a, groups: "
                   "[{name: g}]}]"));
  EXPECT_THAT(problems("server: {max_header_bytes: 10, read_timeout: 0s, idle_timeout: 5, "
                       "threads: -1, upstream_timeout: 1h}\nendpoints: [{name: a, groups: "
                       "[{name: g}]}]"),
              ElementsAre("server.threads: must be >= 0 and <= 256, got -1",
                          "server.max_header_bytes: must be >= 1024 and <= 1048576, got 10",
                          "server.read_timeout: must be > 0, got 0s",
                          "server.idle_timeout: a duration needs a unit, e.g. 5s or 5ms, got 5"));
  const Config c = parse_config(
      "server: {max_body_bytes: 1000, read_timeout: 5s}\nendpoints: [{name: a, groups: "
      "[{name: g}]}]");
  EXPECT_EQ(c.server.max_body_bytes, 1000);
  EXPECT_EQ(c.server.read_timeout, 5s);
  EXPECT_EQ(c.server.idle_timeout, 60s);
  EXPECT_EQ(c.server.api_max_body_bytes, 1024 * 1024);
  EXPECT_THAT(problems("server: {api_max_body_bytes: 10}\nendpoints: [{name: a, groups: "
                       "[{name: g}]}]"),
              ElementsAre("server.api_max_body_bytes: must be >= 1024 and <= 1000000000, got 10"));
}

TEST(ParseConfigErrors, Provisioner) {
  EXPECT_THAT(group_problems("provisioner: {kind: statik}"),
              ElementsAre(g("provisioner.kind: expected one of local|static|slurm|kubernetes|"
                            "simulated, got \"statik\" (did you mean static?)")));
  EXPECT_THAT(group_problems("provisioner: {kind: static}"),
              ElementsAre(g("provisioner.urls: required: kind static needs at least one url")));
  EXPECT_THAT(group_problems("provisioner: {kind: static, urls: []}"),
              ElementsAre(g("provisioner.urls: required: kind static needs at least one url")));
  EXPECT_THAT(
      group_problems("provisioner: {kind: static, urls: [10.0.0.1:80]}"),
      ElementsAre(
          g("provisioner.urls[0]: must start with http:// or https://, got \"10.0.0.1:80\"")));
  EXPECT_THAT(
      group_problems("provisioner: {command: []}"),
      ElementsAre(g("provisioner.command: must not be empty (the program and its arguments)")));
  EXPECT_THAT(group_problems("provisioner: {command: python serve.py}"),
              ElementsAre(g("provisioner.command: expected a list, got \"python serve.py\"")));
  EXPECT_THAT(group_problems("provisioner: {command: [python, [x]]}"),
              ElementsAre(g("provisioner.command[1]: expected a string, got a list")));
  EXPECT_THAT(group_problems("provisioner: {ready: {path: health, interval: 0s}}"),
              ElementsAre(g("provisioner.ready.path: must start with /, got \"health\""),
                          g("provisioner.ready.interval: must be > 0, got 0s")));
  EXPECT_THAT(
      group_problems("provisioner: {gpus: [0, 1], gpus_per_replica: 4}"),
      ElementsAre(g("provisioner.gpus_per_replica: must be <= the number of gpus (2), got 4")));
  EXPECT_THAT(group_problems("provisioner: {gpus: [0, 0]}"),
              ElementsAre(g("provisioner.gpus[1]: duplicate gpu 0")));
  EXPECT_THAT(group_problems("provisioner: {gpus: [-1]}"),
              ElementsAre(g("provisioner.gpus[0]: must be >= 0, got -1")));
  EXPECT_THAT(group_problems("provisioner: {kind: local, image: x}"),
              ElementsAre(g("provisioner.image: unknown key (known keys: kind, command, urls, "
                            "ready, gpus, gpus_per_replica, pending_timeout)")));
  // The simulator needs no provisioner details.
  EXPECT_NO_THROW(group("provisioner: {kind: local}"));
}

TEST(ParseConfig, SlurmProvisioner) {
  const ProvisionerSpec p = group(R"(provisioner:
          kind: slurm
          command: [vllm, serve, --port, "{port}"]
          partition: gpu
          gres: "gpu:h100:1"
          cpus: 8
          mem: 64G
          time_limit: 12h
          sbatch_args: [--account=ml, "--qos=high"]
          output: /logs/tide-%j.out
          pending_timeout: 2m
          poll_interval: 500ms)")
                                .provisioner;
  EXPECT_EQ(p.kind, "slurm");
  EXPECT_THAT(p.command, ElementsAre("vllm", "serve", "--port", "{port}"));
  EXPECT_EQ(p.slurm.partition, "gpu");
  EXPECT_EQ(p.slurm.gres, "gpu:h100:1");
  EXPECT_EQ(p.slurm.cpus, 8);
  EXPECT_EQ(p.slurm.mem, "64G");
  EXPECT_EQ(p.slurm.time_limit, 12h);
  EXPECT_THAT(p.slurm.sbatch_args, ElementsAre("--account=ml", "--qos=high"));
  EXPECT_EQ(p.slurm.output, "/logs/tide-%j.out");
  EXPECT_EQ(p.pending_timeout, 2min);
  EXPECT_EQ(p.slurm.poll_interval, 500ms);
  // Defaults: the cluster's own, five minutes of pending, squeue every second.
  const SlurmSpec d = group("provisioner: {kind: slurm, command: [x]}").provisioner.slurm;
  EXPECT_EQ(d.partition, "");
  EXPECT_EQ(d.cpus, 0);
  EXPECT_EQ(d.time_limit, 0s);
  EXPECT_EQ(group("provisioner: {kind: slurm, command: [x]}").provisioner.pending_timeout, 5min);
  EXPECT_EQ(d.poll_interval, 1s);
  EXPECT_EQ(group("provisioner: {kind: slurm, pending_timeout: 0s}").provisioner.pending_timeout,
            0s);
}

TEST(ParseConfigErrors, SlurmProvisioner) {
  EXPECT_THAT(group_problems("provisioner: {kind: local, partition: gpu, gres: \"gpu:1\"}"),
              ElementsAre(g("provisioner.partition: only for kind slurm"),
                          g("provisioner.gres: only for kind slurm")));
  EXPECT_THAT(group_problems("provisioner: {kind: local, pending_timeout: 1m}"),
              ElementsAre(g("provisioner.pending_timeout: only for kind slurm or kubernetes (a "
                            "replica waiting in the cluster's queue)")));
  EXPECT_THAT(group_problems("provisioner: {kind: slurm, partiton: gpu}"),
              ElementsAre(g("provisioner.partiton: unknown key (did you mean partition?)")));
  EXPECT_THAT(group_problems("provisioner: {kind: slurm, partition: \"a b\", gres: \"\", cpus: 0}"),
              ElementsAre(g("provisioner.partition: must be one word without spaces, got \"a b\""),
                          g("provisioner.gres: must be one word without spaces, got \"\""),
                          g("provisioner.cpus: must be >= 1, got 0")));
  EXPECT_THAT(group_problems("provisioner: {kind: slurm, mem: 16GB}"),
              ElementsAre(g("provisioner.mem: must be a number of megabytes with an optional "
                            "unit K, M, G or T (as sbatch --mem), got \"16GB\"")));
  EXPECT_THAT(group_problems("provisioner: {kind: slurm, time_limit: 0s, poll_interval: 0s}"),
              ElementsAre(g("provisioner.time_limit: must be > 0, got 0s"),
                          g("provisioner.poll_interval: must be > 0, got 0s")));
  EXPECT_THAT(group_problems("provisioner: {kind: slurm, sbatch_args: [account=ml, --job-name=x, "
                             "-J, --time=10]}"),
              ElementsAre(g("provisioner.sbatch_args[0]: must be an sbatch option starting with "
                            "-, got \"account=ml\""),
                          g("provisioner.sbatch_args[1]: --job-name is set by tide (use the "
                            "provisioner's own keys)"),
                          g("provisioner.sbatch_args[2]: -J is set by tide (use the "
                            "provisioner's own keys)"),
                          g("provisioner.sbatch_args[3]: --time is set by tide (use the "
                            "provisioner's own keys)")));
  EXPECT_THAT(group_problems("provisioner: {kind: slurm, pending_timeout: 5, output: \"\"}"),
              ElementsAre(g("provisioner.output: must not be empty (leave it out for /dev/null)"),
                          g("provisioner.pending_timeout: a duration needs a unit, e.g. 5s or "
                            "5ms, got 5")));
}

TEST(ParseConfigErrors, YamlSyntaxErrorGivesLineAndColumn) {
  const std::string bad = "endpoints:\n  - name: chat\n    groups: [{name: g}\n";
  const auto p = problems(bad);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_THAT(p[0], StartsWith("line 4, column 1: invalid YAML: "));
  EXPECT_THAT(problems("a: b: c"), ElementsAre(StartsWith("line 1, column 5: invalid YAML: ")));
}

TEST(ParseConfigErrors, AllProblemsAreCollectedAndWhatNamesTheSource) {
  try {
    parse_config(group_yaml("concurrency: eight\nmax_replica: 2\ncold_start: 60"), "quick.yaml");
    FAIL() << "parsed";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.problems().size(), 3u);
    EXPECT_EQ(e.source(), "quick.yaml");
    EXPECT_EQ(
        std::string(e.what()),
        "quick.yaml: " + g("max_replica: unknown key (did you mean max_replicas?)\n") +
            "quick.yaml: " + g("concurrency: expected an integer, got \"eight\"\n") +
            "quick.yaml: " + g("cold_start: a duration needs a unit, e.g. 60s or 60ms, got 60"));
  }
}

TEST(ConfigError, WhatWithoutSourceIsTheProblemsJoined) {
  const ConfigError e({"a: x", "b: y"});
  EXPECT_EQ(std::string(e.what()), "a: x\nb: y");
  EXPECT_EQ(e.source(), "");
}

// ---- distributions and service times ---------------------------------------------------------

TEST(Distributions, Parse) {
  const GroupSpec a = group("cold_start: {dist: uniform, min: 30s, max: 90s}");
  EXPECT_EQ(a.cold_start.kind, DurationDistribution::Kind::kUniform);
  EXPECT_EQ(a.cold_start.min, 30s);
  EXPECT_EQ(a.cold_start.max, 90s);
  const GroupSpec b = group("cold_start: {dist: lognormal, median: 60s, sigma: 0.3}");
  EXPECT_EQ(b.cold_start.kind, DurationDistribution::Kind::kLognormal);
  EXPECT_EQ(b.cold_start.median, 60s);
  EXPECT_DOUBLE_EQ(b.cold_start.sigma, 0.3);
  const GroupSpec c = group("cold_start: {dist: empirical, values: [50s, 60s, 90s]}");
  EXPECT_EQ(c.cold_start.kind, DurationDistribution::Kind::kEmpirical);
  EXPECT_THAT(c.cold_start.values, ElementsAre(50s, 60s, 90s));
  const GroupSpec d = group("cold_start: {dist: fixed, value: 1m}");
  EXPECT_EQ(d.cold_start.kind, DurationDistribution::Kind::kFixed);
  EXPECT_EQ(d.cold_start.value, 60s);
}

TEST(Distributions, ColdStartOfAClusterIsPendingPlusBoot) {
  const GroupSpec a = group(
      "cold_start: {pending: {dist: empirical, values: [0s, 10s, 50s]}, boot: {dist: uniform, "
      "min: 30s, max: 90s}}");
  EXPECT_EQ(a.pending.kind, DurationDistribution::Kind::kEmpirical);
  EXPECT_THAT(a.pending.values, ElementsAre(0s, 10s, 50s));
  EXPECT_EQ(a.cold_start.kind, DurationDistribution::Kind::kUniform);
  EXPECT_EQ(a.mean_cold_start(), 20s + 60s);
  // Either part alone; the other is 0.
  const GroupSpec b = group("cold_start: {pending: 2m}");
  EXPECT_EQ(b.pending.value, 2min);
  EXPECT_EQ(b.cold_start.value, 0s);
  EXPECT_EQ(group("cold_start: {boot: 45s}").mean_cold_start(), 45s);
  // The plain form has no pending part.
  EXPECT_EQ(group("cold_start: 60s").pending.mean(), 0s);
  EXPECT_THAT(group_problems("cold_start: {pending: {dist: normal}, boot: 1s, queue: 1s}"),
              ElementsAre(g("cold_start.queue: unknown key (known keys: pending, boot)"),
                          g("cold_start.pending.dist: expected one of "
                            "fixed|uniform|lognormal|empirical, got \"normal\" (did you mean "
                            "lognormal?)")));
  EXPECT_THAT(group_problems("cold_start: {pending: 5, dist: fixed}"),
              ElementsAre(g("cold_start.dist: unknown key (known keys: pending, boot)"),
                          g("cold_start.pending: a duration needs a unit, e.g. 5s or 5ms, got 5")));
}

TEST(Distributions, Errors) {
  EXPECT_THAT(group_problems("cold_start: {min: 1s}"),
              ElementsAre(g("cold_start.dist: required (fixed|uniform|lognormal|empirical)")));
  EXPECT_THAT(group_problems("cold_start: {dist: normal}"),
              ElementsAre(g("cold_start.dist: expected one of fixed|uniform|lognormal|empirical, "
                            "got \"normal\" (did you mean lognormal?)")));
  EXPECT_THAT(group_problems("cold_start: {dist: uniform, min: 90s, max: 30s}"),
              ElementsAre(g("cold_start.max: must be >= min (90s), got 30s")));
  EXPECT_THAT(group_problems("cold_start: {dist: uniform, value: 30s}"),
              ElementsAre(g("cold_start.value: unknown key (known keys: dist, min, max)"),
                          g("cold_start.min: required"), g("cold_start.max: required")));
  EXPECT_THAT(group_problems("cold_start: {dist: lognormal, median: 0s, sigma: -1}"),
              ElementsAre(g("cold_start.median: must be > 0, got 0s"),
                          g("cold_start.sigma: must be >= 0, got -1")));
  EXPECT_THAT(group_problems("cold_start: {dist: empirical, values: []}"),
              ElementsAre(g("cold_start.values: must have at least one value")));
  EXPECT_THAT(
      group_problems("cold_start: {dist: empirical, values: [1s, 5]}"),
      ElementsAre(g("cold_start.values[1]: a duration needs a unit, e.g. 5s or 5ms, got 5")));
}

TEST(Distributions, SampleAndMean) {
  Random rng(42);
  DurationDistribution fixed;
  fixed.value = 60s;
  EXPECT_EQ(fixed.sample(rng), 60s);
  EXPECT_EQ(fixed.mean(), 60s);

  DurationDistribution uniform;
  uniform.kind = DurationDistribution::Kind::kUniform;
  uniform.min = 30s;
  uniform.max = 90s;
  EXPECT_EQ(uniform.mean(), 60s);
  double sum = 0;
  constexpr int kN = 20000;
  for (int i = 0; i < kN; ++i) {
    const Duration d = uniform.sample(rng);
    EXPECT_GE(d, 30s);
    EXPECT_LE(d, 90s);
    sum += to_seconds(d);
  }
  EXPECT_NEAR(sum / kN, 60, 0.5);

  DurationDistribution lognormal;
  lognormal.kind = DurationDistribution::Kind::kLognormal;
  lognormal.median = 60s;
  lognormal.sigma = 0.3;
  EXPECT_NEAR(to_seconds(lognormal.mean()), 60 * std::exp(0.045), 1e-6);
  std::vector<double> samples;
  sum = 0;
  for (int i = 0; i < kN; ++i) {
    samples.push_back(to_seconds(lognormal.sample(rng)));
    sum += samples.back();
  }
  std::nth_element(samples.begin(), samples.begin() + kN / 2, samples.end());
  EXPECT_NEAR(samples[kN / 2], 60, 1.0);
  EXPECT_NEAR(sum / kN, to_seconds(lognormal.mean()), 1.0);

  DurationDistribution empirical;
  empirical.kind = DurationDistribution::Kind::kEmpirical;
  empirical.values = {50s, 60s, 100s};
  EXPECT_EQ(to_seconds(empirical.mean()), 70);
  int hits[3] = {0, 0, 0};
  for (int i = 0; i < 3000; ++i) {
    const Duration d = empirical.sample(rng);
    hits[d == 50s ? 0 : d == 60s ? 1 : 2]++;
    EXPECT_TRUE(d == 50s || d == 60s || d == 100s);
  }
  for (int h : hits) EXPECT_GT(h, 800);

  // Degenerate inputs stay defined.
  DurationDistribution empty;
  empty.kind = DurationDistribution::Kind::kEmpirical;
  EXPECT_EQ(empty.sample(rng), 0s);
  EXPECT_EQ(empty.mean(), 0s);
}

TEST(ServiceTime, Models) {
  const auto fixed = group("service_time: {model: fixed, value: 2s}").service_time;
  EXPECT_EQ(fixed.kind, ServiceTimeModel::Kind::kFixed);
  EXPECT_EQ(fixed.value, 2s);
  EXPECT_EQ(group("service_time: 3s").service_time.value, 3s);
  const auto ln = group("service_time: {model: lognormal, median: 1s, sigma: 0.5}").service_time;
  EXPECT_EQ(ln.kind, ServiceTimeModel::Kind::kLognormal);
  EXPECT_EQ(ln.median, 1s);
  EXPECT_DOUBLE_EQ(ln.sigma, 0.5);
  const auto tokens =
      group("service_time: {model: tokens, prefill: 0.0002, decode: 0.02, base: 50ms}")
          .service_time;
  EXPECT_EQ(tokens.kind, ServiceTimeModel::Kind::kTokens);
  EXPECT_EQ(tokens.base, 50ms);
  EXPECT_EQ(group("service_time: {model: trace}").service_time.kind,
            ServiceTimeModel::Kind::kTrace);
}

TEST(ServiceTime, Errors) {
  EXPECT_THAT(group_problems("service_time: {value: 2s}"),
              ElementsAre(g("service_time.model: required (fixed|lognormal|tokens|trace)")));
  EXPECT_THAT(group_problems("service_time: {model: tokens, prefill: 0.2ms}"),
              ElementsAre(g("service_time.prefill: expected a number, got \"0.2ms\"")));
  EXPECT_THAT(group_problems("service_time: {model: fixed, value: 0s}"),
              ElementsAre(g("service_time.value: must be > 0, got 0s")));
  EXPECT_THAT(group_problems("service_time: {model: trace, value: 1s}"),
              ElementsAre(g("service_time.value: unknown key (known keys: model)")));
  EXPECT_THAT(group_problems("service_time: {model: tokens, decode: 1s}"),
              ElementsAre(g("service_time.decode: expected a number, got \"1s\"")));
}

// ---- scaling ---------------------------------------------------------------------------------

TEST(Scaling, EveryPresetParsesInAConfigAndAlone) {
  for (const std::string& name : preset_names()) {
    SCOPED_TRACE(name);
    const GroupSpec gs = group("max_replicas: 4\nconcurrency: 8\nscaling: {preset: " + name + "}");
    EXPECT_EQ(gs.scaling.preset, name);
    EXPECT_EQ(gs.scaling.policy, preset_spec(name)->policy);
    EXPECT_EQ(scaling(name).preset, name);  // bare name
    EXPECT_EQ(scaling("preset: " + name).policy, gs.scaling.policy);
    EXPECT_EQ(group("scaling: " + name).scaling.preset, name);  // `scaling: hf`
  }
}

TEST(Scaling, PresetOverrides) {
  const ScalingSpec s = scaling(
      "{preset: hf, idle_timeout: 5m, target: 0.6, hysteresis: 0.2, "
      "admission: {reject_status: 503}, tick: 500ms}");
  EXPECT_EQ(s.preset, "hf");
  EXPECT_EQ(s.policy, PolicyKind::kTarget);
  EXPECT_EQ(s.modifiers.idle_timeout, 5min);  // target policy: the modifier
  EXPECT_DOUBLE_EQ(s.target.target, 0.6);
  EXPECT_DOUBLE_EQ(s.modifiers.hysteresis, 0.2);
  EXPECT_EQ(s.admission.reject_status, 503);
  EXPECT_FALSE(s.admission.hold);            // kept from the preset
  EXPECT_EQ(s.modifiers.up_interval, 3min);  // kept from the preset
  EXPECT_EQ(s.tick, 500ms);

  // idle_timeout goes to the policy's own field for queue and tide.
  EXPECT_EQ(scaling("{preset: viewcomfy, idle_timeout: 45s}").queue.idle_timeout, 45s);
  EXPECT_FALSE(scaling("{preset: viewcomfy, idle_timeout: 45s}").modifiers.idle_timeout);
  EXPECT_EQ(scaling("{preset: tide, idle_timeout: 2m}").tide.idle_timeout, 2min);
  EXPECT_EQ(scaling("{policy: concurrency, idle_timeout: 2m}").modifiers.idle_timeout, 2min);

  // Nested rules merge field by field.
  const ScalingSpec h = scaling("{preset: hpa, scale_down: {stabilization: 60s}}");
  EXPECT_EQ(h.target.scale_down.stabilization, 60s);
  ASSERT_EQ(h.target.scale_down.policies.size(), 1u);
  EXPECT_EQ(h.target.scale_down.policies[0].type, RateLimit::Type::kPercent);

  // `tick` on the concurrency policy also sets the KPA's evaluation period.
  const ScalingSpec k = scaling("{preset: knative, tick: 4s, target: 10}");
  EXPECT_EQ(k.tick, 4s);
  EXPECT_EQ(k.concurrency.tick, 4s);
  EXPECT_DOUBLE_EQ(k.concurrency.target, 10);
}

TEST(Scaling, PresetOverrideWithAKeyOfAnotherPolicy) {
  EXPECT_THAT(scaling_problems("{preset: hf, queue_size: 2}"),
              ElementsAre("scaling.queue_size: not a key of policy target (preset hf); it belongs "
                          "to policy queue"));
  EXPECT_THAT(scaling_problems("{preset: viewcomfy, metric: rps}"),
              ElementsAre("scaling.metric: not a key of policy queue (preset viewcomfy); it "
                          "belongs to policy target and step"));
  EXPECT_THAT(scaling_problems("{policy: tide, stable_window: 60s}"),
              ElementsAre("scaling.stable_window: not a key of policy tide; it belongs to policy "
                          "concurrency"));
}

TEST(Scaling, TypoOfAnotherPolicysKey) {
  EXPECT_THAT(scaling_problems("{preset: hf, queue_sise: 2}"),
              ElementsAre("scaling.queue_sise: unknown key (did you mean queue_size? it belongs to "
                          "policy queue, not policy target (preset hf))"));
  EXPECT_THAT(
      scaling_problems("{preset: hf, bogus: 2}"),
      ElementsAre(StartsWith("scaling.bogus: unknown key (known keys: preset, policy, tick, "
                             "admission, idle_timeout,")));
}

TEST(Scaling, UnknownPresetListsTheKnownOnes) {
  EXPECT_THAT(scaling_problems("{preset: ray_serve}"),
              ElementsAre("scaling.preset: unknown preset \"ray_serve\" (did you mean ray-serve?); "
                          "known presets: tide, hf, hpa, knative, ray-serve, skyserve, runpod, "
                          "viewcomfy"));
  EXPECT_THAT(group_problems("scaling: nope"),
              ElementsAre(g("scaling: unknown preset \"nope\"; known presets: tide, hf, hpa, "
                            "knative, ray-serve, skyserve, runpod, viewcomfy")));
}

TEST(Scaling, PresetAndPolicyTogether) {
  EXPECT_THAT(scaling_problems("{preset: hf, policy: queue}"),
              ElementsAre("scaling.policy: cannot be combined with preset (preset hf uses policy "
                          "target)"));
  EXPECT_THAT(scaling_problems("{policy: magic}"),
              ElementsAre("scaling.policy: expected one of queue|target|concurrency|step|tide, got "
                          "\"magic\""));
}

TEST(Scaling, EmptyOrAbsentIsTheTidePreset) {
  EXPECT_EQ(scaling("").preset, "tide");
  EXPECT_EQ(scaling("{}").preset, "tide");
  // Keys without preset or policy override the tide preset.
  EXPECT_DOUBLE_EQ(scaling("{target_wait_probability: 0.05}").tide.target_wait_probability, 0.05);
  EXPECT_THAT(scaling_problems("[1, 2]"),
              ElementsAre("scaling: expected a map like {preset: tide} or {policy: queue, "
                          "queue_size: 1}, got a list"));
}

TEST(Scaling, PolicyParams) {
  const ScalingSpec t = scaling(R"(
policy: target
metric: in_flight
target: 6
tolerance: 0.05
sync_period: 30s
metric_window: 1m
scale_up: {stabilization: 10s, select: min, policies: [{type: pods, value: 2, period: 30s}, {type: percent, value: 50}]}
scale_down: {select: disabled, policies: []}
)");
  EXPECT_EQ(t.preset, "");
  EXPECT_EQ(t.target.metric, Metric::kInFlight);
  EXPECT_DOUBLE_EQ(t.target.target, 6);
  EXPECT_DOUBLE_EQ(t.target.tolerance, 0.05);
  EXPECT_EQ(t.target.sync_period, 30s);
  EXPECT_EQ(t.target.metric_window, 60s);
  EXPECT_EQ(t.target.scale_up.stabilization, 10s);
  EXPECT_EQ(t.target.scale_up.select, ScalingRules::Select::kMin);
  ASSERT_EQ(t.target.scale_up.policies.size(), 2u);
  EXPECT_EQ(t.target.scale_up.policies[0].type, RateLimit::Type::kPods);
  EXPECT_DOUBLE_EQ(t.target.scale_up.policies[0].value, 2);
  EXPECT_EQ(t.target.scale_up.policies[0].period, 30s);
  EXPECT_EQ(t.target.scale_up.policies[1].type, RateLimit::Type::kPercent);
  EXPECT_EQ(t.target.scale_up.policies[1].period, 15s);
  EXPECT_EQ(t.target.scale_down.select, ScalingRules::Select::kDisabled);
  EXPECT_TRUE(t.target.scale_down.policies.empty());
  EXPECT_EQ(t.target.scale_down.stabilization, 300s);  // the HPA default

  const ScalingSpec c = scaling(R"({policy: concurrency, target: 5, stable_window: 30s,
    panic_window_percentage: 20, panic_threshold_percentage: 150, max_scale_up_rate: 10,
    max_scale_down_rate: 4, scale_down_delay: 15s, scale_to_zero_grace: 10s})");
  EXPECT_DOUBLE_EQ(c.concurrency.target, 5);
  EXPECT_EQ(c.concurrency.stable_window, 30s);
  EXPECT_DOUBLE_EQ(c.concurrency.panic_window_percentage, 20);
  EXPECT_DOUBLE_EQ(c.concurrency.panic_threshold_percentage, 150);
  EXPECT_DOUBLE_EQ(c.concurrency.max_scale_up_rate, 10);
  EXPECT_DOUBLE_EQ(c.concurrency.max_scale_down_rate, 4);
  EXPECT_EQ(c.concurrency.scale_down_delay, 15s);
  EXPECT_EQ(c.concurrency.scale_to_zero_grace, 10s);
  EXPECT_EQ(c.concurrency.tick, 2s);

  const ScalingSpec s = scaling(R"(
policy: step
metric: queue
adjustment: percent
window: 30s
cooldown_up: 10s
cooldown_down: 2m
steps:
  - {upper: 0.5, change: -50}
  - {lower: 2, upper: 5, change: 50}
  - {lower: 5, change: 100}
)");
  EXPECT_EQ(s.step.metric, Metric::kQueue);
  EXPECT_EQ(s.step.adjustment, StepPolicy::Adjustment::kPercent);
  EXPECT_EQ(s.step.window, 30s);
  EXPECT_EQ(s.step.cooldown_up, 10s);
  EXPECT_EQ(s.step.cooldown_down, 120s);
  ASSERT_EQ(s.step.steps.size(), 3u);
  EXPECT_FALSE(s.step.steps[0].lower.has_value());
  EXPECT_EQ(s.step.steps[0].upper, 0.5);
  EXPECT_EQ(s.step.steps[1].lower, 2);
  EXPECT_FALSE(s.step.steps[2].upper.has_value());
  EXPECT_DOUBLE_EQ(s.step.steps[2].change, 100);

  const ScalingSpec d = scaling(R"({policy: tide, target_wait_probability: 0.05, demand_window: 30s,
    keep_window: 3m, service_window: 10m, history_window: 2h, up_delay: 1s,
    down_delay: 2s, up_interval: 3s, down_interval: 4s,
    admission: {hold: false, reject_status: 429}})");
  EXPECT_DOUBLE_EQ(d.tide.target_wait_probability, 0.05);
  EXPECT_EQ(d.tide.demand_window, 30s);
  EXPECT_EQ(d.tide.keep_window, 180s);
  EXPECT_EQ(d.tide.service_window, 10min);
  EXPECT_EQ(d.tide.history_window, 2h);
  EXPECT_EQ(scaling("{preset: tide, history_window: 0}").tide.history_window, 0s);
  const ScalingSpec defaults = scaling("{preset: tide}");
  EXPECT_EQ(defaults.tide.service_window, 5min);
  EXPECT_EQ(defaults.tide.history_window, 1h);
  EXPECT_EQ(d.modifiers.up_delay, 1s);
  EXPECT_EQ(d.modifiers.down_delay, 2s);
  EXPECT_EQ(d.modifiers.up_interval, 3s);
  EXPECT_EQ(d.modifiers.down_interval, 4s);
  EXPECT_FALSE(d.admission.hold);
  EXPECT_EQ(d.admission.reject_status, 429);
}

TEST(Scaling, ParamErrors) {
  EXPECT_THAT(scaling_problems("{policy: queue, queue_size: 0}"),
              ElementsAre("scaling.queue_size: must be >= 1, got 0"));
  EXPECT_THAT(scaling_problems("{policy: tide, target_wait_probability: 1}"),
              ElementsAre("scaling.target_wait_probability: must be > 0 and < 1, got 1"));
  EXPECT_THAT(
      scaling_problems("{policy: tide, service_window: 0s, history_window: 25h}"),
      ElementsAre(
          "scaling.service_window: must be > 0, got 0s",
          "scaling.history_window: must be at most 24h (0 turns warm headroom off), got 25h"));
  EXPECT_THAT(scaling_problems("{hysteresis: 1.5, tick: 0s}"),
              ElementsAre("scaling.tick: must be > 0, got 0s",
                          "scaling.hysteresis: must be >= 0 and < 1, got 1.5"));
  EXPECT_THAT(scaling_problems("{admission: {reject_status: 200}}"),
              ElementsAre("scaling.admission.reject_status: must be >= 400 and <= 599, got 200"));
  EXPECT_THAT(scaling_problems("{policy: target, metric: utilisation}"),
              ElementsAre("scaling.metric: expected one of utilization|in_flight|queue|concurrency|"
                          "rps|load|engine_waiting|engine_running|engine_kv_cache, got "
                          "\"utilisation\" (did you mean utilization?)"));
  EXPECT_THAT(
      scaling_problems("{policy: target, target: 80}"),
      ElementsAre("scaling.target: must be <= 1 for metric utilization (a fraction), got 80"));
  EXPECT_THAT(
      scaling_problems("{policy: target, metric: queue, target: 0}"),
      ElementsAre("scaling.target: must be > 0 for metric queue (0 = auto only for rps), got 0"));
  EXPECT_THAT(scaling_problems("{preset: skyserve, metric: utilization}"),
              ElementsAre("scaling.target: must be > 0 for metric utilization (0 = auto only for "
                          "rps), got 0"));
  EXPECT_THAT(scaling_problems("{policy: target, target: -1}"),
              ElementsAre("scaling.target: must be >= 0, got -1"));
  EXPECT_THAT(scaling_problems("{policy: target, metric: in_flight, target: 12}", 8),
              ElementsAre("scaling.target: must be <= the group's concurrency (8) for metric "
                          "in_flight, got 12"));
  EXPECT_THAT(scaling_problems("{policy: target, tolerance: 1}"),
              ElementsAre("scaling.tolerance: must be >= 0 and < 1, got 1"));
  EXPECT_THAT(scaling_problems("{policy: target, scale_up: {select: maximum, policies: [{type: "
                               "pod, value: 0}, {value: 1, period: 0s}]}}"),
              ElementsAre("scaling.scale_up.select: expected one of max|min|disabled, got "
                          "\"maximum\" (did you mean max?)",
                          "scaling.scale_up.policies[0].type: expected one of pods|percent, got "
                          "\"pod\" (did you mean pods?)",
                          "scaling.scale_up.policies[0].value: must be > 0, got 0",
                          "scaling.scale_up.policies[1].type: required (pods or percent)",
                          "scaling.scale_up.policies[1].period: must be > 0, got 0s"));
  EXPECT_THAT(
      scaling_problems("{policy: concurrency, max_scale_down_rate: 1, panic_window_percentage: 0}"),
      ElementsAre("scaling.panic_window_percentage: must be > 0 and <= 100, got 0",
                  "scaling.max_scale_down_rate: must be > 1, got 1"));
  EXPECT_THAT(scaling_problems("{policy: target, up_delay: 30}"),
              ElementsAre("scaling.up_delay: a duration needs a unit, e.g. 30s or 30ms, got 30"));
  // rps alone may have target 0 (derived from capacity).
  EXPECT_NO_THROW(scaling("{policy: target, metric: rps, target: 0}"));
}

TEST(Scaling, StepErrors) {
  EXPECT_THAT(scaling_problems("{policy: step}"),
              ElementsAre("scaling.steps: required (at least one step)"));
  EXPECT_THAT(scaling_problems("{policy: step, steps: []}"),
              ElementsAre("scaling.steps: must have at least one step"));
  EXPECT_THAT(scaling_problems("{policy: step, steps: [{lower: 0, upper: 10, change: 1}, {lower: "
                               "5, upper: 20, change: 2}]}"),
              ElementsAre("scaling.steps[1]: overlaps steps[0] ([5, 20) and [0, 10))"));
  EXPECT_THAT(
      scaling_problems("{policy: step, steps: [{lower: 5, change: 1}, {upper: 6, change: -1}]}"),
      ElementsAre("scaling.steps[1]: overlaps steps[0] ([-inf, 6) and [5, +inf))"));
  EXPECT_THAT(scaling_problems("{policy: step, steps: [{lower: 5, upper: 5, change: 1}]}"),
              ElementsAre("scaling.steps[0].upper: must be > lower (5), got 5"));
  EXPECT_THAT(
      scaling_problems("{policy: step, adjustment: exact, steps: [{lower: 1, change: -1}]}"),
      ElementsAre("scaling.steps[0].change: must be >= 0 with adjustment exact, got -1"));
  EXPECT_THAT(scaling_problems("{policy: step, steps: [{lower: 1}]}"),
              ElementsAre("scaling.steps[0].change: required"));
  // Adjacent bands touch without overlapping.
  EXPECT_NO_THROW(
      scaling("{policy: step, steps: [{upper: 1, change: -1}, {lower: 1, change: 1}]}"));
}

TEST(Scaling, PathsInAConfigStartAtTheGroup) {
  EXPECT_THAT(group_problems("scaling: {preset: hf, queue_size: 2}"),
              ElementsAre(g("scaling.queue_size: not a key of policy target (preset hf); it "
                            "belongs to policy queue")));
  EXPECT_THAT(
      group_problems("concurrency: 4\nscaling: {policy: target, metric: in_flight, target: 5}"),
      ElementsAre(g("scaling.target: must be <= the group's concurrency (4) for metric "
                    "in_flight, got 5")));
}

TEST(Scaling, ParseScalingSyntaxError) {
  EXPECT_THAT(scaling_problems("{preset: hf"), ElementsAre(StartsWith("line ")));
}

// ---- presets ---------------------------------------------------------------------------------

TEST(Presets, NamesInOrder) {
  EXPECT_THAT(preset_names(), ElementsAre("tide", "hf", "hpa", "knative", "ray-serve", "skyserve",
                                          "runpod", "viewcomfy"));
  EXPECT_FALSE(preset_spec("nope").has_value());
  for (const std::string& name : preset_names()) {
    EXPECT_EQ(preset_spec(name)->preset, name);
    EXPECT_EQ(preset_spec(name)->tick, 1s);
  }
}

TEST(Presets, Tide) {
  const ScalingSpec s = *preset_spec("tide");
  EXPECT_EQ(s.policy, PolicyKind::kTide);
  EXPECT_TRUE(s.admission.hold);
  EXPECT_FALSE(s.min_one);
}

TEST(Presets, HuggingFace) {
  const ScalingSpec s = *preset_spec("hf");
  EXPECT_EQ(s.policy, PolicyKind::kTarget);
  EXPECT_EQ(s.target.metric, Metric::kUtilization);
  EXPECT_DOUBLE_EQ(s.target.target, 0.8);
  EXPECT_DOUBLE_EQ(s.target.tolerance, 0);
  EXPECT_EQ(s.target.metric_window, 2min);
  EXPECT_EQ(s.target.sync_period, 1min);
  EXPECT_EQ(s.target.scale_up.stabilization, 0s);
  EXPECT_TRUE(s.target.scale_up.policies.empty());
  EXPECT_EQ(s.target.scale_up.select, ScalingRules::Select::kMax);
  EXPECT_EQ(s.target.scale_down.stabilization, 0s);
  EXPECT_TRUE(s.target.scale_down.policies.empty());
  EXPECT_EQ(s.modifiers.up_interval, 3min);
  EXPECT_EQ(s.modifiers.down_interval, 5min);
  EXPECT_EQ(s.modifiers.idle_timeout, 15min);
  EXPECT_FALSE(s.admission.hold);
  EXPECT_EQ(s.admission.reject_status, 502);
}

TEST(Presets, Hpa) {
  const ScalingSpec s = *preset_spec("hpa");
  EXPECT_EQ(s.policy, PolicyKind::kTarget);
  EXPECT_EQ(s.target.metric, Metric::kUtilization);
  EXPECT_DOUBLE_EQ(s.target.target, 0.7);
  EXPECT_DOUBLE_EQ(s.target.tolerance, 0.1);
  EXPECT_EQ(s.target.sync_period, 15s);
  EXPECT_EQ(s.target.metric_window, 1min);
  EXPECT_EQ(s.target.scale_up.stabilization, 0s);
  ASSERT_EQ(s.target.scale_up.policies.size(), 2u);
  EXPECT_EQ(s.target.scale_up.policies[0].type, RateLimit::Type::kPods);
  EXPECT_DOUBLE_EQ(s.target.scale_up.policies[0].value, 4);
  EXPECT_EQ(s.target.scale_up.policies[1].type, RateLimit::Type::kPercent);
  EXPECT_DOUBLE_EQ(s.target.scale_up.policies[1].value, 100);
  EXPECT_EQ(s.target.scale_down.stabilization, 300s);
  ASSERT_EQ(s.target.scale_down.policies.size(), 1u);
  EXPECT_TRUE(s.min_one);
  EXPECT_FALSE(s.admission.hold);
  EXPECT_EQ(s.admission.reject_status, 503);
}

TEST(Presets, Knative) {
  const ScalingSpec s = *preset_spec("knative");
  EXPECT_EQ(s.policy, PolicyKind::kConcurrency);
  EXPECT_DOUBLE_EQ(s.concurrency.target, 0);
  EXPECT_EQ(s.concurrency.stable_window, 60s);
  EXPECT_EQ(s.concurrency.tick, 2s);
  EXPECT_TRUE(s.admission.hold);
}

TEST(Presets, RayServe) {
  const ScalingSpec s = *preset_spec("ray-serve");
  EXPECT_EQ(s.policy, PolicyKind::kTarget);
  EXPECT_EQ(s.target.metric, Metric::kConcurrency);
  EXPECT_DOUBLE_EQ(s.target.target, 2);
  EXPECT_DOUBLE_EQ(s.target.tolerance, 0);
  EXPECT_EQ(s.target.sync_period, 10s);
  EXPECT_EQ(s.target.metric_window, 30s);
  EXPECT_TRUE(s.target.scale_up.policies.empty());
  EXPECT_EQ(s.target.scale_down.stabilization, 0s);
  EXPECT_TRUE(s.target.scale_down.policies.empty());
  EXPECT_EQ(s.modifiers.up_delay, 30s);
  EXPECT_EQ(s.modifiers.down_delay, 600s);
  EXPECT_TRUE(s.admission.hold);
}

TEST(Presets, SkyServe) {
  const ScalingSpec s = *preset_spec("skyserve");
  EXPECT_EQ(s.target.metric, Metric::kRps);
  EXPECT_DOUBLE_EQ(s.target.target, 0);
  EXPECT_EQ(s.target.sync_period, 20s);
  EXPECT_EQ(s.target.metric_window, 60s);
  EXPECT_TRUE(s.target.scale_down.policies.empty());
  EXPECT_EQ(s.modifiers.up_delay, 300s);
  EXPECT_EQ(s.modifiers.down_delay, 1200s);
  EXPECT_FALSE(s.admission.hold);
  EXPECT_EQ(s.admission.reject_status, 503);
}

TEST(Presets, RunPod) {
  const ScalingSpec s = *preset_spec("runpod");
  EXPECT_EQ(s.target.metric, Metric::kConcurrency);
  EXPECT_DOUBLE_EQ(s.target.target, 4);
  EXPECT_EQ(s.target.sync_period, 1s);
  EXPECT_EQ(s.target.metric_window, 1s);
  EXPECT_EQ(s.modifiers.down_delay, 5s);
  EXPECT_EQ(s.modifiers.idle_timeout, 5s);  // its last worker stops too
  EXPECT_EQ(s.modifiers.up_delay, 0s);
  EXPECT_TRUE(s.admission.hold);
}

TEST(Presets, ViewComfy) {
  const ScalingSpec s = *preset_spec("viewcomfy");
  EXPECT_EQ(s.policy, PolicyKind::kQueue);
  EXPECT_EQ(s.queue.queue_size, 1);
  EXPECT_EQ(s.queue.idle_timeout, 30s);
  EXPECT_TRUE(s.admission.hold);
}

TEST(Names, MetricAndPolicyNamesMatchTheYaml) {
  EXPECT_EQ(metric_name(Metric::kUtilization), "utilization");
  EXPECT_EQ(metric_name(Metric::kInFlight), "in_flight");
  EXPECT_EQ(metric_name(Metric::kQueue), "queue");
  EXPECT_EQ(metric_name(Metric::kConcurrency), "concurrency");
  EXPECT_EQ(metric_name(Metric::kRps), "rps");
  EXPECT_EQ(metric_name(Metric::kLoad), "load");
  EXPECT_EQ(policy_name(PolicyKind::kQueue), "queue");
  EXPECT_EQ(policy_name(PolicyKind::kTarget), "target");
  EXPECT_EQ(policy_name(PolicyKind::kConcurrency), "concurrency");
  EXPECT_EQ(policy_name(PolicyKind::kStep), "step");
  EXPECT_EQ(policy_name(PolicyKind::kTide), "tide");
}

// ---- files and robustness --------------------------------------------------------------------

TEST(LoadConfig, ReadsAFile) {
  const std::string path = ::testing::TempDir() + "tide_config_test.yaml";
  {
    std::ofstream out(path);
    out << kExample;
  }
  EXPECT_EQ(load_config(path).endpoints.at(0).groups.at(0).name, "h100");
  std::remove(path.c_str());
}

TEST(LoadConfig, MissingFileNamesThePath) {
  try {
    load_config("/nonexistent/tide.yaml");
    FAIL() << "loaded";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "/nonexistent/tide.yaml: cannot read: No such file or directory");
    EXPECT_EQ(e.source(), "/nonexistent/tide.yaml");
  }
  EXPECT_THROW(load_config(::testing::TempDir()), ConfigError);
}

TEST(LoadConfig, ProblemsArePrefixedWithTheFileName) {
  const std::string path = ::testing::TempDir() + "tide_config_bad.yaml";
  {
    std::ofstream out(path);
    out << "endpoints: []\n";
  }
  try {
    load_config(path);
    FAIL() << "loaded";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), path + ": endpoints: must have at least one endpoint");
  }
  std::remove(path.c_str());
}

// Mangles the example one character at a time: every result must parse or be a ConfigError.
TEST(Robustness, MangledInputNeverEscapesAsAnythingButConfigError) {
  const std::string base = kExample;
  const char inserts[] = {':', '[', '{', '-', ' ', '\n', '"', '&', '*', '!', '\t', '#', '?', '|'};
  int errors = 0;
  for (size_t i = 0; i < base.size(); ++i) {
    std::vector<std::string> variants = {base.substr(0, i) + base.substr(i + 1)};
    for (char c : inserts) variants.push_back(base.substr(0, i) + c + base.substr(i));
    for (const std::string& text : variants) {
      try {
        parse_config(text);
      } catch (const ConfigError& e) {
        ++errors;
        EXPECT_FALSE(e.problems().empty());
      } catch (const std::exception& e) {
        ADD_FAILURE() << "escaped: " << e.what() << "\n" << text;
      }
    }
  }
  EXPECT_GT(errors, 0);
  for (const char* text : {"*a", "&a [*a]", "{", "]", "%YAML 9.9\n---\na: 1", "? [a]\n: b",
                           "endpoints: [{name: chat, groups: [{name: g, ? [x] : y}]}]",
                           "endpoints: !!binary aGVsbG8=", "\xff\xfe"}) {
    try {
      parse_config(text);
    } catch (const ConfigError&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "escaped: " << e.what() << "\n" << text;
    }
  }
}

}  // namespace
TEST(ParseConfig, Routing) {
  const Config split = parse_config(
      "endpoints: [{name: a, routing: {mode: split, weights: {new: 10, old: 90}, sticky_header: "
      "X-User}, groups: [{name: old}, {name: new}]}]");
  const RoutingSpec& r = split.endpoints[0].routing;
  EXPECT_EQ(r.mode, RoutingSpec::Mode::kSplit);
  EXPECT_THAT(r.weights, ElementsAre(90.0, 10.0));  // by group index
  EXPECT_EQ(r.sticky_header, "X-User");
  const Config overflow = parse_config(
      "endpoints: [{name: a, routing: {mode: overflow, order: [big, small]}, groups: [{name: "
      "small}, {name: big}]}]");
  EXPECT_EQ(overflow.endpoints[0].routing.mode, RoutingSpec::Mode::kOverflow);
  EXPECT_THAT(overflow.endpoints[0].routing.order, ElementsAre(1, 0));
}

TEST(ParseConfigErrors, Routing) {
  const std::string groups = ", groups: [{name: a}, {name: b}]}]";
  EXPECT_THAT(
      problems("endpoints: [{name: e, routing: {mode: split, weights: {a: 1, c: 2}}" + groups),
      ElementsAre("endpoints[0].routing.weights.c: no group named \"c\" (groups: a, b)"));
  EXPECT_THAT(problems("endpoints: [{name: e, routing: {weights: {a: 0, b: -1}}" + groups),
              ElementsAre("endpoints[0].routing.weights.b: must be >= 0, got -1"));
  EXPECT_THAT(problems("endpoints: [{name: e, routing: {weights: {a: 0}}" + groups),
              ElementsAre("endpoints[0].routing.weights: at least one weight must be > 0"));
  EXPECT_THAT(problems("endpoints: [{name: e, routing: {mode: overflow, order: [a]}" + groups),
              ElementsAre("endpoints[0].routing.order: must list every group once (groups: a, b)"));
  EXPECT_THAT(problems("endpoints: [{name: e, routing: {mode: overflow, order: [a, a]}" + groups),
              ElementsAre("endpoints[0].routing.order[1]: \"a\" is listed twice"));
  EXPECT_THAT(problems("endpoints: [{name: e, routing: {mode: overflow, weights: {a: 1}}" + groups),
              ElementsAre("endpoints[0].routing.weights: only for mode split"));
  EXPECT_THAT(problems("endpoints: [{name: e, routing: {mode: spill}" + groups),
              ElementsAre(HasSubstr("endpoints[0].routing.mode: expected one of split|overflow")));
}

TEST(ParseConfig, StateAndApiAuth) {
  const Config defaults = parse_config("endpoints: [{name: a, groups: [{name: g}]}]");
  EXPECT_EQ(defaults.state.path, "tide-state.db");
  EXPECT_EQ(defaults.state.sample_interval, 5s);
  EXPECT_TRUE(defaults.server.api_token.empty());
  EXPECT_FALSE(defaults.server.public_read);
  const Config c = parse_config(
      "server: {api_token: 0123456789abcdef0123, public_read: true}\n"
      "state: {path: /var/lib/tide/state.db, sample_interval: 1s, downsample_after: 1h, "
      "downsample_step: 10s, retention: 7d}\n"
      "endpoints: [{name: a, groups: [{name: g}]}]");
  EXPECT_EQ(c.server.api_token, "0123456789abcdef0123");
  EXPECT_TRUE(c.server.public_read);
  EXPECT_EQ(c.state.path, "/var/lib/tide/state.db");
  EXPECT_EQ(c.state.sample_interval, 1s);
  EXPECT_EQ(c.state.downsample_after, 1h);
  EXPECT_EQ(c.state.downsample_step, 10s);
  EXPECT_EQ(c.state.retention, 168h);
}

TEST(ParseConfigErrors, StateAndApiAuth) {
  const std::string eps = "\nendpoints: [{name: a, groups: [{name: g}]}]";
  EXPECT_THAT(problems("server: {api_token: short}" + eps),
              ElementsAre("server.api_token: must be at least 16 characters, got 5"));
  EXPECT_THAT(problems("state: {path: ''}" + eps),
              ElementsAre(HasSubstr("state.path: must not be empty")));
  EXPECT_THAT(problems("state: {sample_interval: 10s, downsample_step: 5s}" + eps),
              ElementsAre("state.downsample_step: must be >= sample_interval (10s), got 5s"));
  EXPECT_THAT(problems("state: {keep: 1d}" + eps),
              ElementsAre(HasSubstr("state.keep: unknown key")));
}

TEST(ParseEndpoint, GivesBackTheSpecFromItsOwnSourceAndNamesFieldsFromThePath) {
  const Config c = parse_config(
      "endpoints: [{name: chat, queue: {max_length: 7}, groups: [{name: a, max_replicas: 3}, "
      "{name: b}], routing: {weights: {a: 1, b: 3}}}]");
  const EndpointSpec& e = c.endpoints[0];
  EXPECT_NE(e.source.find("max_length: 7"), std::string::npos) << e.source;
  const EndpointSpec again = parse_endpoint(e.source);
  EXPECT_EQ(again.name, "chat");
  EXPECT_EQ(again.queue.max_length, 7);
  EXPECT_EQ(again.groups[0].max_replicas, 3);
  EXPECT_THAT(again.routing.weights, ElementsAre(1.0, 3.0));
  EXPECT_EQ(again.source, e.source);
  // JSON is YAML too.
  const EndpointSpec json = parse_endpoint(
      R"({"name": "chat", "groups": [{"name": "a", "min_replicas": 1, "max_replicas": 2}]})");
  EXPECT_EQ(json.groups[0].min_replicas, 1);
  try {
    parse_endpoint("{name: chat, groups: [{name: a, min_replicas: 3, max_replicas: 1}]}", "body");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& err) {
    EXPECT_THAT(err.problems(),
                ElementsAre("body.groups[0].max_replicas: must be >= min_replicas (3), got 1"));
  }
  EXPECT_THROW(parse_endpoint("[1, 2"), ConfigError);
}

}  // namespace tide::config

namespace tide::config {
namespace {

TEST(ParseConfig, AgentRouteAndTheLoadSignal) {
  const GroupSpec plain = group("max_replicas: 2");
  EXPECT_FALSE(plain.agent.enabled);
  EXPECT_EQ(plain.agent.work, AgentSpec::Work::kTokens);
  EXPECT_EQ(plain.agent.report_interval, 1s);
  const GroupSpec g = group(
      "agent: {enabled: true, work: requests, report_interval: 500ms}\n"
      "scaling: {policy: target, metric: load, target: 0.7}");
  EXPECT_TRUE(g.agent.enabled);
  EXPECT_EQ(g.agent.work, AgentSpec::Work::kRequests);
  EXPECT_EQ(g.agent.report_interval, 500ms);
  EXPECT_EQ(g.scaling.target.metric, Metric::kLoad);
  EXPECT_DOUBLE_EQ(g.scaling.target.target, 0.7);

  const Config defaults = parse_config("endpoints: [{name: a, groups: [{name: g}]}]");
  EXPECT_EQ(defaults.route.token_ttl, 30s);
  EXPECT_TRUE(defaults.route.key_file.empty());
  EXPECT_EQ(defaults.route.rotate_after, Duration{0});
  const Config c = parse_config(
      "route: {token_ttl: 10s, key_file: /etc/tide/route.key, rotate_after: 24h}\n"
      "endpoints: [{name: a, groups: [{name: g}]}]");
  EXPECT_EQ(c.route.token_ttl, 10s);
  EXPECT_EQ(c.route.key_file, "/etc/tide/route.key");
  EXPECT_EQ(c.route.rotate_after, 24h);
}

TEST(ParseConfig, EngineMetricsAndTheMetricsReadFromThem) {
  EXPECT_FALSE(group("max_replicas: 2").engine_metrics.enabled);
  const GroupSpec d =
      group("engine_metrics: {}\nscaling: {policy: target, metric: engine_waiting, target: 2}");
  EXPECT_TRUE(d.engine_metrics.enabled);
  EXPECT_EQ(d.engine_metrics.path, "/metrics");
  EXPECT_EQ(d.engine_metrics.kind, metrics::EngineKind::kVllm);
  EXPECT_EQ(d.engine_metrics.interval, 1s);
  EXPECT_EQ(d.engine_metrics.timeout, 1s);
  EXPECT_EQ(d.engine_metrics.max_bytes, 1 << 20);
  EXPECT_EQ(d.scaling.target.metric, Metric::kEngineWaiting);
  const GroupSpec g = group(
      "engine_metrics: {path: /prom, kind: sglang, interval: 500ms, timeout: 200ms, max_bytes: "
      "4096}\nscaling: {policy: step, metric: engine_kv_cache, steps: [{lower: 0.9, change: 1}]}");
  EXPECT_EQ(g.engine_metrics.path, "/prom");
  EXPECT_EQ(g.engine_metrics.kind, metrics::EngineKind::kSglang);
  EXPECT_EQ(g.engine_metrics.interval, 500ms);
  EXPECT_EQ(g.engine_metrics.timeout, 200ms);
  EXPECT_EQ(g.engine_metrics.max_bytes, 4096);
  EXPECT_EQ(g.scaling.step.metric, Metric::kEngineKvCache);
  EXPECT_EQ(metric_name(Metric::kEngineRunning), "engine_running");
  // The effective configuration (tide validate) shows it.
  const Config c = parse_config(
      "endpoints: [{name: a, groups: [{name: g, engine_metrics: {kind: tgi, interval: 2s}}]}]");
  const std::string yaml = effective_yaml(c);
  EXPECT_NE(yaml.find("engine_metrics: {path: /metrics, kind: tgi, interval: 2s, timeout: 1s, "
                      "max_bytes: 1048576}"),
            std::string::npos)
      << yaml;
}

TEST(ParseConfigErrors, EngineMetrics) {
  EXPECT_THAT(group_problems("engine_metrics: {path: metrics}"),
              ElementsAre(g("engine_metrics.path: must start with / and hold no spaces, got "
                            "\"metrics\"")));
  EXPECT_THAT(group_problems("engine_metrics: {kind: triton}"),
              ElementsAre(StartsWith(g("engine_metrics.kind: "))));
  EXPECT_THAT(group_problems("engine_metrics: {interval: 10ms}"),
              ElementsAre(g("engine_metrics.interval: must be >= 0.1 and <= 60, got 10ms")));
  EXPECT_THAT(group_problems("engine_metrics: {max_bytes: 10}"),
              ElementsAre(HasSubstr("engine_metrics.max_bytes: must be >= 1024")));
  EXPECT_THAT(group_problems("engine_metrics: {pth: /metrics}"),
              ElementsAre(HasSubstr("engine_metrics.pth: unknown key")));
  EXPECT_THAT(group_problems("scaling: {policy: target, metric: engine_waiting, target: 2}"),
              ElementsAre(g("scaling: metric engine_waiting is read from the model servers: the "
                            "group needs engine_metrics (like {path: /metrics, kind: vllm})")));
  EXPECT_THAT(group_problems("engine_metrics: {}\n"
                             "scaling: {policy: target, metric: engine_kv_cache, target: 80}"),
              ElementsAre(HasSubstr("scaling.target: must be <= 1 for metric engine_kv_cache")));
}

TEST(ParseConfigErrors, AgentRouteAndTheLoadSignal) {
  EXPECT_THAT(group_problems("agent: {enabled: yes please}"),
              ElementsAre(StartsWith(std::string(kG) + "agent.enabled: ")));
  EXPECT_THAT(group_problems("agent: {work: bytes}"),
              ElementsAre(StartsWith(std::string(kG) + "agent.work: ")));
  EXPECT_THAT(
      group_problems("agent: {report_interval: 10ms}"),
      ElementsAre(std::string(kG) + "agent.report_interval: must be >= 0.1 and <= 60, got 10ms"));
  EXPECT_THAT(group_problems("agent: {enable: true}"),
              ElementsAre(HasSubstr("agent.enable: unknown key")));
  EXPECT_THAT(group_problems("agent: true"), ElementsAre(StartsWith(std::string(kG) + "agent: ")));
  EXPECT_THAT(
      group_problems("provisioner: {kind: static, urls: [http://a:1]}\nagent: {enabled: true}"),
      ElementsAre(HasSubstr(std::string(kG) + "agent.enabled: tide starts the agent with kind "
                                              "local only; with kind static")));
  EXPECT_THAT(group_problems("provisioner: {kind: slurm, command: [x]}\nagent: {enabled: true}"),
              ElementsAre(HasSubstr("with kind slurm, put `tide agent` in front")));
  EXPECT_THAT(group_problems("scaling: {policy: target, metric: load, target: 0}"),
              ElementsAre(HasSubstr("scaling.target: must be > 0 for metric load")));

  const std::string eps = "\nendpoints: [{name: a, groups: [{name: g}]}]";
  EXPECT_THAT(problems("route: {token_ttl: 1h}" + eps),
              ElementsAre("route.token_ttl: must be > 0 and <= 600, got 1h"));
  EXPECT_THAT(problems("route: {token_ttl: 30s, rotate_after: 10s}" + eps),
              ElementsAre("route.rotate_after: must be 0 (never) or longer than token_ttl (30s), "
                          "got 10s"));
  EXPECT_THAT(problems("route: {key_file: ''}" + eps),
              ElementsAre(HasSubstr("route.key_file: must not be empty")));
  EXPECT_THAT(problems("route: {ttl: 5s}" + eps), ElementsAre(HasSubstr("route.ttl: unknown key")));
}

TEST(ParseConfig, KubernetesProvisioner) {
  const GroupSpec gs = group(R"(provisioner:
  kind: kubernetes
  namespace: ml-serving
  kubeconfig: /etc/tide/kubeconfig
  context: prod
  port: 8000
  container: model
  gpus_per_replica: 2
  pending_timeout: 90s
  ready: {path: /v1/models}
  template:
    metadata:
      labels: {app: chat, version: "2"}
      annotations: {note: "x"}
    spec:
      nodeSelector: {gpu: h100}
      terminationGracePeriodSeconds: 30
      containers:
        - name: model
          image: vllm/vllm-openai:v0.6.3
          args: [--port, "8000", --max-model-len, "8192"]
          env: [{name: HF_HOME, value: /cache}, {name: DEBUG, value: "true"}]
          resources: {limits: {memory: 80Gi, cpu: 8}}
        - name: sidecar
          image: busybox
          command: [sleep, infinity]
          tty: true
          workingDir: ~)");
  const ProvisionerSpec& p = gs.provisioner;
  EXPECT_EQ(p.kind, "kubernetes");
  EXPECT_EQ(p.kube_namespace, "ml-serving");
  EXPECT_EQ(p.kubeconfig, "/etc/tide/kubeconfig");
  EXPECT_EQ(p.kube_context, "prod");
  EXPECT_EQ(p.port, 8000);
  EXPECT_EQ(p.container, "model");
  EXPECT_EQ(p.gpus_per_replica, 2);
  EXPECT_EQ(p.gpu_resource, "nvidia.com/gpu");
  EXPECT_EQ(p.pending_timeout, 90s);
  EXPECT_EQ(p.ready.path, "/v1/models");
  // The template is kept as the JSON the API takes: plain numbers and booleans typed, quoted
  // scalars strings, ~ null.
  EXPECT_EQ(p.pod_template,
            R"({"metadata":{"annotations":{"note":"x"},"labels":{"app":"chat","version":"2"}},)"
            R"("spec":{"containers":[{"args":["--port","8000","--max-model-len","8192"],)"
            R"("env":[{"name":"HF_HOME","value":"/cache"},{"name":"DEBUG","value":"true"}],)"
            R"("image":"vllm/vllm-openai:v0.6.3","name":"model","resources":{"limits":)"
            R"({"cpu":8,"memory":"80Gi"}}},{"command":["sleep","infinity"],"image":"busybox",)"
            R"("name":"sidecar","tty":true,"workingDir":null}],"nodeSelector":{"gpu":"h100"},)"
            R"("terminationGracePeriodSeconds":30}})");
  // Defaults.
  const ProvisionerSpec d =
      group(
          "provisioner: {kind: kubernetes, port: 80, template: {spec: {containers: [{name: a, "
          "image: b}]}}}")
          .provisioner;
  EXPECT_EQ(d.kube_namespace, "default");
  EXPECT_EQ(d.kubeconfig, "");
  EXPECT_EQ(d.container, "");
  EXPECT_EQ(d.pending_timeout, 5min);
}

TEST(ParseConfigErrors, KubernetesProvisioner) {
  EXPECT_THAT(group_problems("provisioner: {kind: kubernetes}"),
              ElementsAre(g("provisioner.template: required: kind kubernetes needs a pod template "
                            "like {spec: {containers: [{name: model, image: ...}]}}"),
                          g("provisioner.port: required (the port the container listens on)")));
  const std::string ok_template = "template: {spec: {containers: [{name: model, image: x}]}}";
  auto k8s = [&](const std::string& fields) {
    return group_problems("provisioner: {kind: kubernetes, " + fields + "}");
  };
  EXPECT_THAT(k8s("port: 0, namespace: ML_1, " + ok_template),
              ElementsAre(g("provisioner.namespace: must be a DNS label "
                            "([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters), got \"ML_1\""),
                          g("provisioner.port: must be >= 1 and <= 65535, got 0")));
  EXPECT_THAT(k8s("port: 80, container: web, gpus: [0], gpu_resource: gpu, " + ok_template),
              ElementsAre(g("provisioner.gpus: only for kind local (a pool of GPU ids); kind "
                            "kubernetes asks the cluster for gpus_per_replica GPUs"),
                          g("provisioner.container: no container named \"web\" in "
                            "template.spec.containers (containers: model)"),
                          g("provisioner.gpu_resource: expected an extended resource name like "
                            "nvidia.com/gpu, got \"gpu\"")));
  EXPECT_THAT(k8s("port: 80, kubeconfig: \"\", pending_timeout: 5"),
              ElementsAre(g("provisioner.pending_timeout: a duration needs a unit, e.g. 5s or "
                            "5ms, got 5"),
                          g("provisioner.kubeconfig: must not be empty (a path to a kubeconfig "
                            "file)"),
                          g("provisioner.template: required: kind kubernetes needs a pod template "
                            "like {spec: {containers: [{name: model, image: ...}]}}")));
  // The template: what tide sets itself, what the API would refuse late, and its shape.
  EXPECT_THAT(k8s("port: 80, template: {metadata: {name: x, labels: {tide.dev/group: a, v: 2}, "
                  "lables: {}}, spec: {containers: [{name: a, image: b}]}}"),
              ElementsAre(g("provisioner.template.metadata.name: set by tide (pods are named "
                            "after their replica, in provisioner.namespace); remove it from the "
                            "template"),
                          g("provisioner.template.metadata.lables: unknown key (did you mean "
                            "labels?)"),
                          g("provisioner.template.metadata.labels.tide.dev/group: set by tide on "
                            "each pod; remove it from the template"),
                          g("provisioner.template.metadata.labels.v: expected a string (quote "
                            "it), got 2")));
  EXPECT_THAT(k8s("port: 80, template: {spec: {containers: []}}"),
              ElementsAre(g("provisioner.template.spec.containers: must have at least one "
                            "container")));
  EXPECT_THAT(k8s("port: 80, template: {spec: {containers: [{name: Model, image: \"\"}, {image: "
                  "b}, x]}}"),
              ElementsAre(g("provisioner.template.spec.containers[0].name: must be a DNS label "
                            "([a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters), got "
                            "\"Model\""),
                          g("provisioner.template.spec.containers[0].image: must not be empty"),
                          g("provisioner.template.spec.containers[1].name: required"),
                          g("provisioner.template.spec.containers[2]: expected a map like {name: "
                            "model, image: ...}, got \"x\"")));
  EXPECT_THAT(k8s("port: 80, template: {containers: [{name: a, image: b}]}"),
              ElementsAre(g("provisioner.template.containers: unknown key (known keys: "
                            "metadata, spec)"),
                          g("provisioner.template.spec: required (the pod spec, with at least one "
                            "container)")));
  // Kubernetes keys on another kind are a mistake worth naming.
  EXPECT_THAT(group_problems("provisioner: {kind: local, namespace: a, port: 80}"),
              ElementsAre(g("provisioner.namespace: only for kind kubernetes"),
                          g("provisioner.port: only for kind kubernetes")));
}

}  // namespace
}  // namespace tide::config

namespace tide::config {
namespace {

// The configuration shipped in deploy/kubernetes/configmap.yaml (data."tide.yaml") is valid.
TEST(ParseConfig, TheKubernetesDeployConfigMapParses) {
  std::ifstream in(std::string(TIDE_SOURCE_DIR) + "/deploy/kubernetes/configmap.yaml");
  ASSERT_TRUE(in);
  std::string text;
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    if (line == "  tide.yaml: |") {
      inside = true;
    } else if (inside && (line.empty() || line.rfind("    ", 0) == 0)) {
      text += (line.empty() ? "" : line.substr(4)) + "\n";
    } else if (inside) {
      break;
    }
  }
  ASSERT_FALSE(text.empty());
  const Config c = parse_config(text, "configmap.yaml");
  const ProvisionerSpec& p = c.endpoints.at(0).groups.at(0).provisioner;
  EXPECT_EQ(p.kind, "kubernetes");
  EXPECT_EQ(p.kubeconfig, "");  // in-cluster
  EXPECT_EQ(p.gpus_per_replica, 1);
}

}  // namespace
}  // namespace tide::config
