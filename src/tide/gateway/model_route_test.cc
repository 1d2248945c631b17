#include "tide/gateway/model_route.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>

#include "tide/testing/fake_provisioner.h"

namespace tide::gateway {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

config::EndpointSpec spec(const std::string& name, std::vector<std::string> models) {
  config::EndpointSpec ep;
  ep.name = name;
  ep.models = std::move(models);
  ep.queue.timeout = 30s;
  config::GroupSpec g;
  g.name = "g";
  ep.groups.push_back(g);
  return ep;
}

struct Endpoints {
  ManualClock clock;
  test::FakeProvisioner prov;
  control::LiveEndpoint chat{spec("chat", {"chat"}), prov, clock};
  control::LiveEndpoint code{spec("code", {"qwen-coder", "meta/llama:8b"}), prov, clock};
  std::vector<control::LiveEndpoint*> all{&chat, &code};
};

TEST(RouteByModel, PostsUnderV1GoToTheEndpointListingTheirModel) {
  Endpoints e;
  const std::string body = R"({"model": "meta/llama:8b", "messages": []})";
  EXPECT_EQ(route_by_model("POST", "/v1/chat/completions", body, e.all, 0).endpoint, &e.code);
  EXPECT_EQ(route_by_model("POST", "/v1/embeddings?x=1", R"({"model": "chat"})", e.all, 0).endpoint,
            &e.chat);
  // Not an OpenAI path: left to the unknown-endpoint answer.
  const ModelRoute other = route_by_model("POST", "/generate", body, e.all, 0);
  EXPECT_EQ(other.endpoint, nullptr);
  EXPECT_EQ(other.status, 0u);
}

TEST(RouteByModel, AnUnknownModelIs404InOpenAisShapeNamingTheModels) {
  Endpoints e;
  const ModelRoute r =
      route_by_model("POST", "/v1/chat/completions", R"({"model": "gpt-4"})", e.all, 0);
  EXPECT_EQ(r.endpoint, nullptr);
  EXPECT_EQ(r.status, 404u);
  const json j = json::parse(r.body);
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "model");
  EXPECT_EQ(j["error"]["code"], "model_not_found");
  EXPECT_EQ(j["error"]["message"],
            "The model `gpt-4` does not exist; models: chat, qwen-coder, meta/llama:8b");
  // An echoed model is clipped.
  const ModelRoute big = route_by_model(
      "POST", "/v1/completions", R"({"model": ")" + std::string(5000, 'm') + "\"}", e.all, 0);
  EXPECT_EQ(big.status, 404u);
  EXPECT_LT(big.body.size(), 600u);
}

TEST(RouteByModel, AMissingOrInvalidModelIs400InTheSameShape) {
  Endpoints e;
  for (const char* body : {R"({"prompt": "hi"})", R"({"model": 1})", "not json", "[]"}) {
    const ModelRoute r = route_by_model("POST", "/v1/completions", body, e.all, 0);
    EXPECT_EQ(r.status, 400u) << body;
    const json j = json::parse(r.body);
    EXPECT_EQ(j["error"]["type"], "invalid_request_error") << body;
    EXPECT_TRUE(j["error"].contains("param")) << body;
    EXPECT_TRUE(j["error"]["code"].is_string()) << body;
  }
  EXPECT_EQ(
      json::parse(route_by_model("POST", "/v1/completions", "{}", e.all, 0).body)["error"]["code"],
      "missing_model");
}

TEST(RouteByModel, ModelsListsEveryModelOfEveryEndpoint) {
  Endpoints e;
  const ModelRoute r = route_by_model("GET", "/v1/models", "", e.all, 1700000000);
  EXPECT_EQ(r.status, 200u);
  const json expected = json::parse(R"({"object": "list", "data": [
      {"id": "chat", "object": "model", "created": 1700000000, "owned_by": "tide"},
      {"id": "qwen-coder", "object": "model", "created": 1700000000, "owned_by": "tide"},
      {"id": "meta/llama:8b", "object": "model", "created": 1700000000, "owned_by": "tide"}]})");
  EXPECT_EQ(json::parse(r.body), expected);
  // One model, as OpenAI's GET /v1/models/{id}.
  const ModelRoute one = route_by_model("GET", "/v1/models/meta/llama:8b", "", e.all, 5);
  EXPECT_EQ(one.status, 200u);
  EXPECT_EQ(json::parse(one.body)["id"], "meta/llama:8b");
  EXPECT_EQ(route_by_model("GET", "/v1/models/nope", "", e.all, 5).status, 404u);
  // The id as the OpenAI SDKs send it: percent-encoded ("/" as %2F).
  const ModelRoute encoded = route_by_model("GET", "/v1/models/meta%2Fllama%3A8b", "", e.all, 5);
  EXPECT_EQ(encoded.status, 200u);
  EXPECT_EQ(json::parse(encoded.body)["id"], "meta/llama:8b");
  const ModelRoute broken = route_by_model("GET", "/v1/models/meta%2", "", e.all, 5);
  EXPECT_EQ(broken.status, 400u);
  EXPECT_EQ(json::parse(broken.body)["error"]["code"], "invalid_model");
  EXPECT_EQ(json::parse(broken.body)["error"]["message"],
            "the model in the path, `meta%2`, is not a percent-encoded model name");
  // Other methods and paths under /v1/: 404 in OpenAI's shape.
  const ModelRoute files = route_by_model("GET", "/v1/files", "", e.all, 5);
  EXPECT_EQ(files.status, 404u);
  EXPECT_EQ(json::parse(files.body)["error"]["code"], "unknown_url");
}

}  // namespace
}  // namespace tide::gateway
