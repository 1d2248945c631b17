#include "tide/cli/commands.h"

#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace tide::cli {
namespace {

using namespace std::chrono_literals;

TEST(ResolveConnection, FlagBeatsEnvironmentBeatsTheServersDefault) {
  EXPECT_EQ(resolve_connection("", nullptr, "", nullptr).url.text, "http://127.0.0.1:8081");
  EXPECT_EQ(resolve_connection("", "", "", nullptr).url.text, "http://127.0.0.1:8081");
  EXPECT_EQ(resolve_connection("", "http://10.0.0.2:9000", "", nullptr).url.text,
            "http://10.0.0.2:9000");
  EXPECT_EQ(resolve_connection("127.0.0.1:7000", "http://10.0.0.2:9000", "", nullptr).url.text,
            "http://127.0.0.1:7000");
  EXPECT_EQ(resolve_connection("", nullptr, "", "from-env").token, "from-env");
  EXPECT_EQ(resolve_connection("", nullptr, "from-flag", "from-env").token, "from-flag");
  EXPECT_EQ(resolve_connection("", nullptr, "", nullptr).token, "");
}

TEST(ResolveConnection, CaCertFlagBeatsEnvironment) {
  const Connection env = resolve_connection("https://h:1", nullptr, "", nullptr, "", "/env/ca.crt");
  EXPECT_TRUE(env.url.https);
  EXPECT_EQ(env.url.ca_file, "/env/ca.crt");
  const Connection flag =
      resolve_connection("https://h:1", nullptr, "", nullptr, "/flag/ca.crt", "/env/ca.crt");
  EXPECT_EQ(flag.url.ca_file, "/flag/ca.crt");
  EXPECT_EQ(resolve_connection("https://h:1", nullptr, "", nullptr).url.ca_file, "");
}

TEST(ResolveConnection, ABadAddressNamesWhereItCameFrom) {
  try {
    resolve_connection("", "ftp://tide.example.com", "", nullptr);
    FAIL();
  } catch (const CliError& e) {
    EXPECT_TRUE(std::string(e.what()).starts_with("TIDE_API: ")) << e.what();
    EXPECT_NE(std::string(e.what()).find("expected http://HOST:PORT or https://"),
              std::string::npos);
  }
  EXPECT_THROW(resolve_connection("http://host:port", nullptr, "", nullptr), CliError);
}

TEST(HistoryFlags, SinceStepAndTheirLimits) {
  EXPECT_EQ(parse_since("30m"), 30min);
  EXPECT_EQ(parse_since("1h"), 1h);
  EXPECT_EQ(parse_since("2d"), 48h);
  for (const char* bad : {"", "0", "1x", "-1h", "1 h", "yesterday"}) {
    try {
      parse_since(bad);
      ADD_FAILURE() << bad;
    } catch (const CliError& e) {
      EXPECT_NE(std::string(e.what()).find("--since: expected a duration > 0 like 30m, 1h, 2d"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_EQ(parse_step("60s"), 60s);
  EXPECT_EQ(parse_step("auto"), 0s);
  EXPECT_EQ(parse_step(""), 0s);
  EXPECT_THROW(parse_step("0"), CliError);
  EXPECT_THROW(parse_step("fast"), CliError);
  EXPECT_EQ(auto_step(1h), 2min);
  EXPECT_EQ(auto_step(30min), 1min);
  EXPECT_EQ(auto_step(10s), 1s);
  EXPECT_EQ(auto_step(48h), 2h);
  EXPECT_EQ(auto_step(std::chrono::hours(24 * 365)), std::chrono::hours(168));
  EXPECT_NO_THROW(check_span(1h, 60s));
  EXPECT_THROW(check_span(1min, 2min), CliError);
  EXPECT_THROW(check_span(std::chrono::hours(48), 1s), CliError);
}

TEST(PathSegment, EncodesWhatIsNotSafeInAPath) {
  EXPECT_EQ(path_segment("chat-v2_x.y"), "chat-v2_x.y");
  EXPECT_EQ(path_segment("a b/c?"), "a%20b%2Fc%3F");
}

// Canned answers by target; anything else is 404 like the admin API's.
struct FakeApi {
  std::map<std::string, HttpResult> answers;
  std::vector<std::string> asked;
  Fetch fetch() {
    return [this](const std::string& target) {
      asked.push_back(target);
      for (const auto& [prefix, r] : answers) {
        if (target.starts_with(prefix) &&
            (target.size() == prefix.size() || target[prefix.size()] == '?'))
          return r;
      }
      return HttpResult{404, "application/json",
                        R"({"error": {"type": "unknown_endpoint", "message": "no endpoint"}})", ""};
    };
  }
};

HttpResult ok(std::string body) { return {200, "application/json", std::move(body), ""}; }

const char* kList = R"({"endpoints": [{"name": "chat", "groups": []}]})";
const char* kChat = R"({"name": "chat", "queued": 0, "requests": 7, "routing": {"mode": "split"},
  "groups": [{"name": "local", "desired": 1, "ready": 1, "starting": 0, "draining": 0,
              "min_replicas": 0, "max_replicas": 2, "queued": 0, "in_flight": 0,
              "replicas": [{"id": 1, "name": "chat/local/1", "state": "ready",
                            "address": "127.0.0.1:1234", "in_flight": 0, "age_s": 5}]}]})";

struct Outcome {
  int code;
  std::string out, err;
};

Outcome status(FakeApi& fake, StatusOptions o = {}, bool has_token = true) {
  std::ostringstream out, err;
  const int code =
      run_status(AdminApi("http://127.0.0.1:8081", has_token, fake.fetch()), o, out, err);
  return {code, out.str(), err.str()};
}

Outcome history(FakeApi& fake, HistoryOptions o) {
  std::ostringstream out, err;
  const int code = run_history(AdminApi("http://127.0.0.1:8081", true, fake.fetch()), o, out, err);
  return {code, out.str(), err.str()};
}

TEST(RunStatus, ReadsTheListThenEachEndpoint) {
  FakeApi fake;
  fake.answers["/v1/endpoints"] = ok(kList);
  fake.answers["/v1/endpoints/chat"] = ok(kChat);
  const Outcome r = status(fake);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("chat  routing split  queued 0  requests 7"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("chat/local/1  ready"), std::string::npos) << r.out;
  EXPECT_EQ(fake.asked, (std::vector<std::string>{"/v1/endpoints", "/v1/endpoints/chat"}));

  StatusOptions o;
  o.json = true;
  const Outcome j = status(fake, o);
  EXPECT_EQ(j.code, 0);
  EXPECT_EQ(json::parse(j.out)["endpoints"][0]["groups"][0]["ready"], 1);
}

TEST(RunStatus, NobodyListeningSaysSoAndFails) {
  FakeApi fake;
  fake.answers["/v1/endpoints"] = HttpResult{0, "", "", "connection refused"};
  const Outcome r = status(fake);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "tide: cannot reach tide at http://127.0.0.1:8081: connection refused\n");
}

TEST(RunStatus, A401SaysHowToGiveTheToken) {
  FakeApi fake;
  fake.answers["/v1/endpoints"] =
      HttpResult{401, "application/json",
                 R"({"error": {"type": "unauthorized", "message": "wrong API token"}})", ""};
  const Outcome wrong = status(fake);
  EXPECT_EQ(wrong.code, 1);
  EXPECT_NE(wrong.err.find("refused the API token (401: wrong API token)"), std::string::npos)
      << wrong.err;
  EXPECT_NE(wrong.err.find("TIDE_API_TOKEN"), std::string::npos);
  EXPECT_NE(wrong.err.find("--token"), std::string::npos);
  const Outcome none = status(fake, {}, /*has_token=*/false);
  EXPECT_NE(none.err.find("needs an API token"), std::string::npos) << none.err;
  EXPECT_NE(none.err.find("Set TIDE_API_TOKEN or pass --token"), std::string::npos) << none.err;
}

TEST(RunStatus, AnUnknownEndpointIsNamedWithTheKnownOnes) {
  FakeApi fake;
  fake.answers["/v1/endpoints"] = ok(kList);
  StatusOptions o;
  o.endpoints = {"chta"};
  const Outcome r = status(fake, o);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "tide: no endpoint named \"chta\" at http://127.0.0.1:8081 (endpoints: chat)\n");
}

TEST(RunStatus, TheGatewayInsteadOfTheApiIsRecognised) {
  FakeApi fake;  // everything 404s
  const Outcome r = status(fake);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("answered 404 to GET /v1/endpoints"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not the gateway"), std::string::npos) << r.err;
}

TEST(RunStatus, MalformedOrOddJsonIsAnErrorNotACrash) {
  FakeApi fake;
  fake.answers["/v1/endpoints"] = ok(R"({"endpoints": [)");
  Outcome r = status(fake);
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(r.err.starts_with(
      "tide: tide at http://127.0.0.1:8081 sent malformed JSON for GET /v1/endpoints: parse error"))
      << r.err;

  fake.answers["/v1/endpoints"] = ok("[1, 2]");
  r = status(fake);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("not a JSON object"), std::string::npos) << r.err;

  fake.answers["/v1/endpoints"] = ok(R"({"endpoints": {"chat": 1}})");
  r = status(fake);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no \"endpoints\" list"), std::string::npos) << r.err;

  fake.answers["/v1/endpoints"] = ok(R"({"endpoints": [{"name": 3}]})");
  r = status(fake);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("an endpoint without a name"), std::string::npos) << r.err;

  // A detail of the wrong shape still prints (with dashes).
  fake.answers["/v1/endpoints"] = ok(kList);
  fake.answers["/v1/endpoints/chat"] = ok(R"({"groups": 12, "queued": "many"})");
  r = status(fake);
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST(RunStatus, OtherStatusesShowTheServersMessage) {
  FakeApi fake;
  fake.answers["/v1/endpoints"] =
      HttpResult{500, "application/json",
                 R"({"error": {"type": "state_file", "message": "disk I/O error"}})", ""};
  const Outcome r = status(fake);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "tide: tide at http://127.0.0.1:8081 answered 500 to GET /v1/endpoints: disk "
            "I/O error\n");
}

TEST(RunHistory, AsksForTheSpanAndStepAndPrintsTheDecisions) {
  FakeApi fake;
  fake.answers["/v1/endpoints/chat/history"] = ok(R"({"endpoint": "chat", "from": 1700000000,
      "to": 1700003600, "step_s": 120, "groups": [{"name": "local", "points": [
      {"t": 1700000000, "step_s": 120, "desired": 1, "ready": 1, "starting": 0, "draining": 0,
       "queued": 0, "in_flight": 0, "requests": 3, "latency_p50_s": 0.5,
       "latency_p95_s": null}]}]})");
  fake.answers["/v1/endpoints/chat/decisions"] = ok(R"({"decisions": [{"time": 1700000000,
      "group": "local", "from": 0, "to": 1, "reason": "queued 1: 0 -> 1"}]})");
  HistoryOptions o;
  o.endpoint = "chat";
  o.since = 1h;
  o.now_s = 1700003600;
  o.format.utc = true;
  const Outcome r = history(fake, o);
  EXPECT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(fake.asked.size(), 2u);
  EXPECT_EQ(fake.asked[0],
            "/v1/endpoints/chat/history?from=1700000000.000&to=1700003600.000&step=120");
  EXPECT_EQ(fake.asked[1],
            "/v1/endpoints/chat/decisions?from=1700000000.000&to=1700003600.000&limit=10");
  EXPECT_NE(r.out.find("chat/local  22:13:20 to 23:13:20, step 2m"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("local  0 -> 1  queued 1: 0 -> 1"), std::string::npos) << r.out;

  o.json = true;
  o.decisions = 0;
  fake.asked.clear();
  const Outcome j = history(fake, o);
  EXPECT_EQ(j.code, 0);
  EXPECT_EQ(fake.asked.size(), 1u) << "--decisions 0 asks for none";
  EXPECT_EQ(json::parse(j.out)["groups"][0]["points"][0]["requests"], 3);
}

TEST(RunHistory, AnUnknownEndpointIsNamed) {
  FakeApi fake;
  fake.answers["/v1/endpoints"] = ok(kList);
  HistoryOptions o;
  o.endpoint = "nope";
  o.since = 1h;
  const Outcome r = history(fake, o);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "tide: no endpoint named \"nope\" at http://127.0.0.1:8081 (endpoints: chat)\n");
}

}  // namespace
}  // namespace tide::cli
