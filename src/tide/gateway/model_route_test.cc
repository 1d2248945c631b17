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
using Kind = ModelField::Kind;

TEST(FindModel, TheTopLevelModelIsFoundWhereverItStands) {
  EXPECT_EQ(find_model(R"({"model": "chat", "prompt": "hi"})").value, "chat");
  const ModelField last = find_model(
      R"({"messages": [{"role": "user", "content": "hi"}], "stream": true, "model": "m/x:7b"})");
  EXPECT_EQ(last.kind, Kind::kFound);
  EXPECT_EQ(last.value, "m/x:7b");
}

TEST(FindModel, NestedModelKeysDoNotMatch) {
  // Only the one of the top object counts, before or after nested ones.
  EXPECT_EQ(find_model(R"({"messages": [{"model": "evil"}], "model": "chat"})").value, "chat");
  EXPECT_EQ(find_model(R"({"model": "chat", "tools": {"model": {"model": "evil"}}})").value,
            "chat");
  EXPECT_EQ(find_model(R"({"messages": [{"role": "user", "model": "evil"}]})").kind,
            Kind::kMissing);
  EXPECT_EQ(find_model(R"({"metadata": {"model": "evil"}})").kind, Kind::kMissing);
}

TEST(FindModel, EscapedStringsAreDecodedAndQuotedTextIsNoKey) {
  // A "model" inside a string value is text, not a key.
  EXPECT_EQ(find_model(R"({"prompt": "\"model\": \"evil\"", "model": "chat"})").value, "chat");
  EXPECT_EQ(find_model(R"({"prompt": "say \"model\": \"evil\"\\"})").kind, Kind::kMissing);
  // Escapes in the key and in the value are decoded as JSON says.
  EXPECT_EQ(find_model(R"({"mod\u0065l": "ch\u0061t\/v1"})").value, "chat/v1");
  EXPECT_EQ(find_model(R"({"model": "\u00e9t\u00e9"})").value, "\xC3\xA9t\xC3\xA9");
  // A lone surrogate is no character: refused.
  EXPECT_EQ(find_model(R"({"model": "\ud800"})").kind, Kind::kInvalidJson);
}

TEST(FindModel, BodiesWithoutAUsableModelSayWhy) {
  EXPECT_EQ(find_model(R"({"prompt": "hi"})").kind, Kind::kMissing);
  EXPECT_EQ(find_model("{}").kind, Kind::kMissing);
  EXPECT_EQ(find_model(R"({"model": 7})").kind, Kind::kNotString);
  EXPECT_EQ(find_model(R"({"model": null})").kind, Kind::kNotString);
  EXPECT_EQ(find_model(R"({"model": ["chat"]})").kind, Kind::kNotString);
  EXPECT_EQ(find_model(R"({"model": {"id": "chat"}})").kind, Kind::kNotString);
  EXPECT_EQ(find_model(R"({"model": ""})").kind, Kind::kNotString);
  EXPECT_EQ(find_model(R"({"model": "a", "model": "b"})").kind, Kind::kDuplicate);
  EXPECT_EQ(find_model(R"(["model", "chat"])").kind, Kind::kNotObject);
  EXPECT_EQ(find_model(R"("chat")").kind, Kind::kNotObject);
  const ModelField bad = find_model(R"({"model": "chat",)");
  EXPECT_EQ(bad.kind, Kind::kInvalidJson);
  EXPECT_NE(bad.value.find("parse error"), std::string::npos) << bad.value;
  EXPECT_EQ(find_model("").kind, Kind::kInvalidJson);
  EXPECT_EQ(find_model(R"({"model": "chat"} trailing)").kind, Kind::kInvalidJson);
  EXPECT_EQ(find_model("{\"model\": \"\xff\"}").kind, Kind::kInvalidJson);
}

TEST(FindModel, AHugeBodyIsParsedWithoutStackOrTreeAndItsMessageIsBounded) {
  // 8 MiB of prompt before the model.
  std::string body = R"({"messages": [{"role": "user", "content": ")";
  body += std::string(8 << 20, 'x');
  body += R"("}], "model": "chat"})";
  EXPECT_EQ(find_model(body).value, "chat");
  // Deep nesting costs no stack (the parser keeps its depth in a bit vector).
  const std::string deep =
      R"({"messages": )" + std::string(1 << 20, '[') + std::string(1 << 20, ']') + "}";
  EXPECT_EQ(find_model(deep).kind, Kind::kMissing);
  // A huge broken body: the reason is clipped.
  const ModelField cut = find_model(R"({"model": ")" + std::string(1 << 20, 'y'));
  EXPECT_EQ(cut.kind, Kind::kInvalidJson);
  EXPECT_LT(cut.value.size(), 400u);
}

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
  // Other methods and paths under /v1/: 404 in OpenAI's shape.
  const ModelRoute files = route_by_model("GET", "/v1/files", "", e.all, 5);
  EXPECT_EQ(files.status, 404u);
  EXPECT_EQ(json::parse(files.body)["error"]["code"], "unknown_url");
}

}  // namespace
}  // namespace tide::gateway
