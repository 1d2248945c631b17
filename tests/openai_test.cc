// End to end, as an OpenAI client sees tide: one base URL (the gateway's /v1/), the model chosen
// by the body's "model", real `tide serve` with demo-model replicas on 127.0.0.1
// (serve_harness.h).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http_client.h"
#include "serve_harness.h"

namespace tide::test {
namespace {

// Two endpoints: chat serves two models, code one; both start at zero replicas.
Options two_models() {
  Options o;
  o.token_rate = "20";
  o.endpoint_extra = "models: [llama, llama-instruct]";
  o.second_endpoint = "code";
  o.second_extra = "models: [\"qwen/coder:7b\"]";
  return o;
}

int ready(const Serve& s, const std::string& endpoint) {
  const json e = s.endpoint(endpoint);
  return e.contains("groups") ? e["groups"][0]["ready"].get<int>() : -1;
}

std::vector<std::string> model_ids(const HttpResponse& r) {
  std::vector<std::string> ids;
  const json j = json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("data")) return ids;
  for (const auto& m : j["data"]) ids.push_back(m["id"].get<std::string>());
  return ids;
}

TEST(OpenAiRoutes, ModelsListsEveryModelWhileEveryEndpointIsAtZero) {
  Serve s("models", two_models());
  ASSERT_EQ(ready(s, "chat"), 0);
  ASSERT_EQ(ready(s, "code"), 0);
  const HttpResponse r = http_get(s.port(), "/v1/models");
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  EXPECT_EQ(r.headers.at("content-type"), "application/json");
  EXPECT_EQ(model_ids(r), (std::vector<std::string>{"llama", "llama-instruct", "qwen/coder:7b"}));
  const json first = json::parse(r.body)["data"][0];
  EXPECT_EQ(first["object"], "model");
  EXPECT_EQ(first["owned_by"], "tide");
  EXPECT_GT(first["created"].get<double>(), 1.7e9);
  // Listing started nothing.
  EXPECT_EQ(s.endpoint("chat")["groups"][0]["starting"], 0);
  EXPECT_EQ(s.endpoint("code")["groups"][0]["starting"], 0);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(OpenAiRoutes, EachModelGoesToItsEndpointAndStreamsStayStreamed) {
  Serve s("bymodel", two_models());
  const HttpResponse stream = http_post(
      s.port(), "/v1/chat/completions",
      R"({"messages": [{"role": "user", "content": "hi", "model": "llama"}], "max_tokens": 10,
          "stream": true, "model": "qwen/coder:7b"})");
  ASSERT_EQ(stream.status, 200) << stream.body << stream.error;
  EXPECT_TRUE(stream.headers.at("tide-replica").starts_with("code/")) << stream.body;
  EXPECT_EQ(stream.headers.at("content-type"), "text/event-stream");
  EXPECT_NE(stream.body.find("data: [DONE]"), std::string::npos);
  // 10 tokens at 20/s: pieces spread over ~0.45 s, not one lump at the end.
  ASSERT_GE(stream.piece_times.size(), 5u) << stream.body;
  EXPECT_GT(stream.piece_times.back() - stream.piece_times.front(), 0.3);
  for (const char* model : {"llama", "llama-instruct"}) {
    const HttpResponse r =
        http_post(s.port(), "/v1/completions",
                  std::string(R"({"prompt": "hi", "max_tokens": 2, "model": ")") + model + "\"}");
    ASSERT_EQ(r.status, 200) << r.body << r.error;
    EXPECT_TRUE(r.headers.at("tide-replica").starts_with("chat/")) << model;
  }
  EXPECT_EQ(s.terminate(), 0);
}

TEST(OpenAiRoutes, UnknownAndMissingModelsAreRefusedInOpenAisShape) {
  Serve s("unknown", two_models());
  const HttpResponse unknown =
      http_post(s.port(), "/v1/chat/completions", R"({"model": "gpt-4", "messages": []})");
  ASSERT_EQ(unknown.status, 404) << unknown.body;
  const json e = json::parse(unknown.body)["error"];
  EXPECT_EQ(e["type"], "invalid_request_error");
  EXPECT_EQ(e["param"], "model");
  EXPECT_EQ(e["code"], "model_not_found");
  EXPECT_EQ(e["message"],
            "The model `gpt-4` does not exist; models: llama, llama-instruct, qwen/coder:7b");
  const HttpResponse missing = http_post(s.port(), "/v1/completions", R"({"prompt": "hi"})");
  EXPECT_EQ(missing.status, 400);
  EXPECT_EQ(json::parse(missing.body)["error"]["code"], "missing_model");
  const HttpResponse broken = http_post(s.port(), "/v1/completions", R"({"model": "llama",)");
  EXPECT_EQ(broken.status, 400);
  EXPECT_EQ(json::parse(broken.body)["error"]["code"], "invalid_json");
  // None of them started a replica.
  EXPECT_EQ(s.endpoint("chat")["groups"][0]["launches"], 0);
  EXPECT_EQ(s.endpoint("code")["groups"][0]["launches"], 0);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(OpenAiRoutes, HeaderAndPrefixRoutesKeepWorkingAndComeFirst) {
  Serve s("precedence", two_models());
  // The header wins over the body's model.
  HttpRequest by_header =
      make_request("POST", "/v1/completions", R"({"model": "llama", "max_tokens": 2})");
  by_header.headers.emplace_back("Tide-Endpoint", "code");
  const HttpResponse header = http(s.port(), by_header);
  ASSERT_EQ(header.status, 200) << header.body;
  EXPECT_TRUE(header.headers.at("tide-replica").starts_with("code/"));
  // So does the prefix, which is stripped as before.
  const HttpResponse prefix =
      http_post(s.port(), "/chat/v1/completions", R"({"model": "qwen/coder:7b", "max_tokens": 2})");
  ASSERT_EQ(prefix.status, 200) << prefix.body;
  EXPECT_TRUE(prefix.headers.at("tide-replica").starts_with("chat/"));
  // An unknown header stays an unknown endpoint, whatever the body says.
  HttpRequest wrong = make_request("POST", "/v1/completions", R"({"model": "llama"})");
  wrong.headers.emplace_back("Tide-Endpoint", "nope");
  const HttpResponse nope = http(s.port(), wrong);
  EXPECT_EQ(nope.status, 404);
  EXPECT_NE(nope.body.find("unknown_endpoint"), std::string::npos);
  EXPECT_EQ(s.terminate(), 0);
}

// ---- client keys (server.client_auth: keys) -------------------------------------------------

HttpResponse with_key(uint16_t port, const std::string& key, const std::string& body,
                      const std::string& target = "/v1/completions") {
  HttpRequest req = make_request("POST", target, body);
  if (!key.empty()) req.headers.emplace_back("Authorization", "Bearer " + key);
  return http(port, req);
}

std::string completion(const std::string& model) {
  return R"({"prompt": "hi", "max_tokens": 2, "model": ")" + model + "\"}";
}

// `tide keys ARGS` against `s`: its exit status and output.
CliRun keys_cli(const Serve& s, const std::string& args) {
  return tide_cli("keys " + args + " --api http://127.0.0.1:" + std::to_string(s.api_port()) +
                  " --token " + Serve::kToken);
}

// The key `tide keys add` printed (its line starting with sk-tide-).
std::string printed_key(const CliRun& r) {
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("sk-tide-")) return line;
  }
  return {};
}

std::string file_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {(std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>()};
}

TEST(ClientKeys, RequestsNeedAKeyOfTheirScopeAndARevokedOneStopsAtOnce) {
  Options o = two_models();
  o.server_extra = ", client_auth: keys";
  Serve s("keys", o);
  const HttpResponse none = with_key(s.port(), "", completion("llama"));
  ASSERT_EQ(none.status, 401) << none.body;
  EXPECT_EQ(json::parse(none.body)["error"]["code"], "invalid_api_key");
  EXPECT_EQ(json::parse(none.body)["error"]["type"], "invalid_request_error");
  EXPECT_EQ(http_get(s.port(), "/v1/models").status, 401);
  EXPECT_EQ(http_post(s.port(), "/chat/v1/completions", kCompletion).status, 401);

  const CliRun added_alice = keys_cli(s, "add alice");
  ASSERT_EQ(added_alice.status, 0) << added_alice.out;
  const std::string alice = printed_key(added_alice);
  ASSERT_FALSE(alice.empty()) << added_alice.out;
  const CliRun added_bob = keys_cli(s, "add bob --endpoint code");
  ASSERT_EQ(added_bob.status, 0) << added_bob.out;
  const std::string bob = printed_key(added_bob);
  EXPECT_EQ(with_key(s.port(), alice, completion("llama")).status, 200);
  EXPECT_EQ(with_key(s.port(), alice, completion("qwen/coder:7b")).status, 200);
  EXPECT_EQ(with_key(s.port(), alice + "x", completion("llama")).status, 401);
  // bob may use endpoint code only.
  EXPECT_EQ(with_key(s.port(), bob, completion("qwen/coder:7b")).status, 200);
  const HttpResponse out_of_scope = with_key(s.port(), bob, completion("llama"));
  EXPECT_EQ(out_of_scope.status, 403);
  EXPECT_EQ(json::parse(out_of_scope.body)["error"]["code"], "endpoint_not_allowed");

  // Counted per key name.
  const std::string metrics = s.api("GET", "/metrics").body;
  EXPECT_NE(metrics.find(R"(tide_client_key_requests_total{key="alice"} 2)"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find(R"(tide_client_key_requests_total{key="bob"} 2)"), std::string::npos);
  EXPECT_NE(metrics.find(R"(tide_gateway_errors_total{kind="unauthorized"} 5)"), std::string::npos);
  const CliRun listed = keys_cli(s, "list");
  EXPECT_EQ(listed.status, 0) << listed.out;
  EXPECT_NE(listed.out.find("bob"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("code"), std::string::npos) << listed.out;

  // Revoked: refused from the DELETE's answer on, without a restart.
  const auto before = SteadyTime::now();
  ASSERT_EQ(s.api("DELETE", "/v1/keys/alice").status, 200);
  const HttpResponse revoked = with_key(s.port(), alice, completion("llama"));
  const double after_s = std::chrono::duration<double>(SteadyTime::now() - before).count();
  EXPECT_EQ(revoked.status, 401);
  EXPECT_LT(after_s, 1.0);
  EXPECT_EQ(keys_cli(s, "revoke alice").status, 1);  // gone already

  // Never in clear: not in the state file (nor its WAL), the log, or any API answer.
  std::string seen = listed.out + metrics + s.api("GET", "/v1/keys").body +
                     s.api("GET", "/v1/endpoints").body + s.log_text();
  for (const char* suffix : {"", "-wal", "-shm"})
    seen += file_text(s.dir() / (std::string("state.db") + suffix));
  EXPECT_EQ(seen.find(alice), std::string::npos);
  EXPECT_EQ(seen.find(bob), std::string::npos);
  EXPECT_EQ(seen.find(alice.substr(8, 16)), std::string::npos);
  EXPECT_EQ(seen.find(bob.substr(8, 16)), std::string::npos);

  // The keys survive a restart (their digests are in the state file).
  EXPECT_EQ(s.terminate(), 0);
  s.start();
  EXPECT_EQ(with_key(s.port(), bob, completion("qwen/coder:7b")).status, 200);
  EXPECT_EQ(with_key(s.port(), alice, completion("qwen/coder:7b")).status, 401);
  EXPECT_EQ(s.terminate(), 0);
}

TEST(ClientKeys, LimitsAnswer429WithRetryAfterAndGiveTheirPlacesBack) {
  Options o = two_models();
  o.server_extra = ", client_auth: keys";
  o.min_replicas = 1;
  o.service = "fixed:1s";
  Serve s("limits", o);
  ASSERT_TRUE(eventually([&] { return ready(s, "chat") == 1; }, 10));
  const std::string one = printed_key(keys_cli(s, "add one --concurrency 1"));
  const std::string slow = printed_key(keys_cli(s, "add slow --rate 0.5"));
  ASSERT_FALSE(one.empty());
  ASSERT_FALSE(slow.empty());

  // Concurrency 1: a second request while the first is in service is refused at once.
  HttpResponse first;
  std::thread busy([&] { first = with_key(s.port(), one, completion("llama")); });
  ASSERT_TRUE(eventually([&] { return s.count("in_flight") == 1; }, 5));
  const HttpResponse second = with_key(s.port(), one, completion("llama"));
  busy.join();
  EXPECT_EQ(first.status, 200);
  ASSERT_EQ(second.status, 429) << second.body;
  EXPECT_EQ(second.headers.at("retry-after"), "1");
  EXPECT_EQ(json::parse(second.body)["error"]["code"], "concurrency_limit_exceeded");
  // Its place is back once the first is answered.
  EXPECT_EQ(with_key(s.port(), one, completion("llama")).status, 200);

  // 0.5 requests per second: one, then 429 saying when to come back (within 2 s).
  EXPECT_EQ(with_key(s.port(), slow, completion("llama")).status, 200);
  const HttpResponse fast = with_key(s.port(), slow, completion("llama"));
  ASSERT_EQ(fast.status, 429) << fast.body;
  EXPECT_EQ(json::parse(fast.body)["error"]["code"], "rate_limit_exceeded");
  const int retry = std::stoi(fast.headers.at("retry-after"));
  EXPECT_GE(retry, 1);
  EXPECT_LE(retry, 2);

  const std::string metrics = s.api("GET", "/metrics").body;
  EXPECT_NE(metrics.find(R"(tide_client_key_limited_total{key="one"} 1)"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find(R"(tide_client_key_limited_total{key="slow"} 1)"), std::string::npos);
  EXPECT_NE(metrics.find(R"(tide_gateway_errors_total{kind="key_limit"} 2)"), std::string::npos);
  const CliRun listed = keys_cli(s, "list");
  EXPECT_NE(listed.out.find("1 at once"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("0.5/s"), std::string::npos) << listed.out;
  EXPECT_EQ(s.terminate(), 0);
}

}  // namespace
}  // namespace tide::test
