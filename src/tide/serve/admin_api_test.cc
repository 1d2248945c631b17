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
                        .wall = wall,
                        .find_endpoint = [this](std::string_view name) -> control::LiveEndpoint* {
                          return name == "chat" ? endpoints[0].get() : nullptr;
                        },
                        .metrics = [] { return std::string("metrics\n"); }});
  }

  gateway::ApiResponse get(const std::string& target, bool with_token = true) {
    return api->handle({"GET", target, "", with_token ? "Bearer " + token : ""});
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

}  // namespace
}  // namespace tide::serve
