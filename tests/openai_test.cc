// End to end, as an OpenAI client sees tide: one base URL (the gateway's /v1/), the model chosen
// by the body's "model", real `tide serve` with demo-model replicas on 127.0.0.1
// (serve_harness.h).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
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

}  // namespace
}  // namespace tide::test
