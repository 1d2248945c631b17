#include "tide/serve/admin_api.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace tide::serve {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// Launches nothing: these tests never tick the endpoint.
struct NoProvisioner : control::Provisioner {
  void launch(const control::Replica&, const config::GroupSpec&, control::ReplicaEvents&) override {
  }
  void stop(const control::Replica&) override {}
  bool adopt(const control::Replica&, const config::GroupSpec&, const std::string&,
             control::ReplicaEvents&) override {
    return false;
  }
};

config::Config one_endpoint() {
  config::Config c;
  c.state.path = ":memory:";
  config::EndpointSpec ep;
  ep.name = "chat";
  config::GroupSpec g;
  g.name = "local";
  g.max_replicas = 1;
  ep.groups.push_back(g);
  c.endpoints.push_back(ep);
  return c;
}

// The API over one endpoint and an in-memory state file; the steady clock's zero is 1.7e9 s on
// the wall clock.
struct Fixture {
  config::Config config = one_endpoint();
  ServeOptions options;
  ManualClock clock;
  WallClock wall{std::chrono::system_clock::time_point(1'700'000'000s)};
  NoProvisioner provisioner;
  std::unique_ptr<store::Store> store = store::Store::open("");
  std::string token = "test-token";
  std::vector<std::unique_ptr<control::LiveEndpoint>> endpoints;
  std::unique_ptr<RouteApi> route_api;
  auth::ClientKeyRing ring;
  KeysApi keys{*store, ring, [] { return 1'700'000'100.0; },
               [] { return std::vector<std::string>{"chat"}; }};
  std::unique_ptr<AdminApi> api;

  Fixture() {
    endpoints.push_back(std::make_unique<control::LiveEndpoint>(config.endpoints[0], provisioner,
                                                                clock, [](const std::string&) {}));
    route_api = std::make_unique<RouteApi>(config, std::vector{endpoints[0].get()},
                                           [](const std::string&) {});
    api = std::make_unique<AdminApi>(
        AdminApi::Parts{.config = config,
                        .options = options,
                        .clock = clock,
                        .store = *store,
                        .api_token = token,
                        .endpoints = endpoints,
                        .route_api = *route_api,
                        .keys = keys,
                        .wall = wall,
                        .find_endpoint = [this](std::string_view name) -> control::LiveEndpoint* {
                          return name == "chat" ? endpoints[0].get() : nullptr;
                        },
                        .metrics = [] { return std::string("metrics\n"); }});
  }

  gateway::ApiResponse get(const std::string& target, bool with_token = true) {
    return call("GET", target, "", with_token);
  }
  gateway::ApiResponse call(const std::string& method, const std::string& target,
                            const std::string& body = {}, bool with_token = true) {
    return api->handle({method, target, body, with_token ? "Bearer " + token : ""});
  }
};

TEST(AdminApi, AnswersHealthWithoutATokenAndTheRestOnlyWithIt) {
  Fixture f;
  EXPECT_EQ(f.get("/healthz", false).status, 200);
  EXPECT_EQ(f.get("/v1/endpoints", false).status, 401);
  const auto r = f.get("/v1/endpoints");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["endpoints"][0]["name"], "chat");
  EXPECT_EQ(f.get("/v1/endpoints/other").status, 404);
  EXPECT_EQ(f.get("/v1/endpoints/chat/decisions?limit=-1").status, 400);
}

TEST(AdminApi, AStoredDecisionComesBackWithEveryInput) {
  Fixture f;
  DecisionRecord d;
  d.time = Time{Duration{1'733'390'000'123'456'789}};
  d.endpoint = "chat";
  d.group = "local";
  d.from = 1;
  d.to = 3;
  d.reason = "queue";
  d.queued = 7;
  d.in_flight = 2;
  d.ready = 1;
  d.starting = 1;
  d.utilization = 0.875;
  f.store->add_decision(d);
  f.store->flush();
  const auto r = f.get("/v1/endpoints/chat/decisions?from=0&to=2e9");
  ASSERT_EQ(r.status, 200) << r.body;
  const json list = json::parse(r.body)["decisions"];
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["time"].get<double>(), unix_seconds(d.time));
  EXPECT_EQ(list[0]["group"], "local");
  EXPECT_EQ(list[0]["from"], 1);
  EXPECT_EQ(list[0]["to"], 3);
  EXPECT_EQ(list[0]["reason"], "queue");
  EXPECT_EQ(list[0]["queued"], 7);
  EXPECT_EQ(list[0]["in_flight"], 2);
  EXPECT_EQ(list[0]["ready"], 1);
  EXPECT_EQ(list[0]["starting"], 1);
  EXPECT_EQ(list[0]["utilization"].get<double>(), 0.875);
}

TEST(AdminApi, KeysAreAddedShownOnceListedWithoutThemAndRevokedAtOnce) {
  Fixture f;
  f.config.server.public_read = true;  // keys stay behind the token all the same
  EXPECT_EQ(f.call("POST", "/v1/keys", R"({"name": "alice"})", false).status, 401);
  EXPECT_EQ(f.get("/v1/keys", false).status, 401);
  const auto added = f.call("POST", "/v1/keys", R"({"name": "alice", "endpoints": ["chat"]})");
  ASSERT_EQ(added.status, 201) << added.body;
  const json a = json::parse(added.body);
  const std::string key = a["key"];
  EXPECT_TRUE(key.starts_with("sk-tide-")) << key;
  EXPECT_EQ(a["endpoints"], json::array({"chat"}));
  EXPECT_EQ(a["created"], 1'700'000'100.0);
  // The ring has it; the list and the state file have its name, never the key.
  ASSERT_TRUE(f.ring.find("Bearer " + key));
  const auto listed = f.get("/v1/keys");
  ASSERT_EQ(listed.status, 200);
  EXPECT_EQ(listed.body.find(key), std::string::npos);
  EXPECT_EQ(json::parse(listed.body)["keys"][0]["name"], "alice");
  EXPECT_EQ(f.store->client_keys()[0].digest, auth::client_key_digest(key));
  // Names are unique, checked, and endpoints must exist.
  EXPECT_EQ(f.call("POST", "/v1/keys", R"({"name": "alice"})").status, 409);
  EXPECT_EQ(f.call("POST", "/v1/keys", R"({"name": "a b"})").status, 400);
  EXPECT_EQ(f.call("POST", "/v1/keys", R"({"name": "bob", "endpoints": ["nope"]})").status, 400);
  EXPECT_EQ(f.call("POST", "/v1/keys", "not json").status, 400);
  // Limits: a rate > 0, a whole concurrency >= 1; shown in the list.
  for (const char* bad :
       {R"({"name": "c", "rate": 0})", R"({"name": "c", "rate": "fast"})",
        R"({"name": "c", "concurrency": 1.5})", R"({"name": "c", "concurrency": 0})"})
    EXPECT_EQ(f.call("POST", "/v1/keys", bad).status, 400) << bad;
  const auto limited =
      f.call("POST", "/v1/keys", R"({"name": "c", "rate": 2.5, "concurrency": 3})");
  ASSERT_EQ(limited.status, 201) << limited.body;
  EXPECT_EQ(json::parse(limited.body)["rate"], 2.5);
  const json keys = json::parse(f.get("/v1/keys").body)["keys"];
  EXPECT_EQ(keys[1]["name"], "c");
  EXPECT_EQ(keys[1]["concurrency"], 3);
  EXPECT_TRUE(keys[0]["rate"].is_null());
  // Revoked: gone from the ring before the answer.
  EXPECT_EQ(f.call("DELETE", "/v1/keys/alice").status, 200);
  EXPECT_FALSE(f.ring.find("Bearer " + key));
  EXPECT_EQ(f.call("DELETE", "/v1/keys/alice").status, 404);
  EXPECT_EQ(f.call("PUT", "/v1/keys/alice").status, 405);
}

TEST(AdminApi, PutRefusesAModelAnotherEndpointServes) {
  Fixture f;
  config::EndpointSpec other = f.config.endpoints[0];
  other.name = "code";
  other.models = {"qwen"};
  f.endpoints.push_back(std::make_unique<control::LiveEndpoint>(other, f.provisioner, f.clock,
                                                                [](const std::string&) {}));
  const std::string body =
      "{name: chat, models: [chat, qwen], groups: [{name: local, max_replicas: 1, provisioner: "
      "{kind: local, command: [/bin/sleep, \"{port}\"]}}]}";
  const auto r = f.call("PUT", "/v1/endpoints/chat", body);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find(R"(body.models: model \"qwen\" is served by endpoint \"code\" already)"),
            std::string::npos)
      << r.body;
  // Without the clash the same change is applied.
  const auto ok = f.call(
      "PUT", "/v1/endpoints/chat",
      "{name: chat, models: [chat, llama], groups: [{name: local, max_replicas: 1, provisioner: "
      "{kind: local, command: [/bin/sleep, \"{port}\"]}}]}");
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_TRUE(config::serves_model(f.endpoints[0]->spec(), "llama"));
}

}  // namespace
}  // namespace tide::serve
