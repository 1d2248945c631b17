#include "tide/serve/route_api.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>

#include "tide/agent/report.h"
#include "tide/common/text.h"

namespace tide::serve {

using json = nlohmann::json;

namespace {

gateway::ApiResponse error(int status, std::string_view type, const std::string& message,
                           int retry_after = 0) {
  return {status, "application/json",
          json{{"error", {{"type", type}, {"message", message}}}}.dump() + "\n", retry_after};
}

// Where the signing keys live: route.key_file, else beside the state file; none (memory only)
// when the state is kept in memory.
std::string key_path(const config::Config& c) {
  if (!c.route.key_file.empty()) return c.route.key_file;
  if (c.state.path == ":memory:") return {};
  const std::filesystem::path dir = std::filesystem::path(c.state.path).parent_path();
  return (dir / "tide-route.key").string();
}

// What POST /v1/route asks: {"endpoint": ..., "work": ..., "key": ...}.
struct RouteQuery {
  std::string endpoint;
  double work = 0;      // 0: not given
  uint64_t sticky = 0;  // the key's hash; 0: no key
};

// Reads `body` into `q`; the problem with it ("" if none).
std::string read_route_query(const json& body, RouteQuery& q) {
  if (!body.is_object()) return R"(body: expected a JSON object like {"endpoint": "chat"})";
  for (const auto& [key, value] : body.items()) {
    if (key != "endpoint" && key != "work" && key != "key")
      return fmt::format("{}: unknown field (known: endpoint, work, key)", key);
  }
  auto name = body.find("endpoint");
  if (name == body.end() || !name->is_string())
    return "endpoint: required, the name of an endpoint";
  if (auto w = body.find("work"); w != body.end()) {
    if (!w->is_number() || !std::isfinite(w->get<double>()) || w->get<double>() < 0 ||
        w->get<double>() > 1e12)
      return fmt::format("work: must be a number from 0 to 1e12 (work units), got {}", w->dump());
    q.work = w->get<double>();
  }
  // A client's key (a user, a conversation): with split routing, the same key is routed to the
  // same group, as the gateway does with routing.sticky_header.
  if (auto k = body.find("key"); k != body.end()) {
    if (!k->is_string() || k->get<std::string>().empty() || k->get<std::string>().size() > 1024)
      return fmt::format(
          "key: must be a string of 1 to 1024 characters, got {}",
          k->is_string() ? fmt::format("{} characters", k->get<std::string>().size()) : k->dump());
    q.sticky = control::sticky_key(k->get<std::string>());
  }
  q.endpoint = name->get<std::string>();
  return "";
}

// 503 for a route with no replica ready, with the group's state and when to retry.
gateway::ApiResponse no_ready_replica(const std::string& endpoint, const control::DirectRoute& r) {
  gateway::ApiResponse out = error(503, "no_ready_replica",
                                   fmt::format("no replica of {}/{} is ready yet; retry in {} s",
                                               endpoint, r.group_name, r.retry_after_s),
                                   r.retry_after_s);
  json j = json::parse(out.body);
  j["state"] = {{"group", r.group_name},
                {"desired", r.status.desired},
                {"starting", r.status.starting},
                {"ready", r.status.ready},
                {"queued", r.status.queued + r.status.waiting_clients},
                {"retry_after_s", r.retry_after_s}};
  if (!r.status.last_error.empty()) j["state"]["last_error"] = r.status.last_error;
  out.body = j.dump() + "\n";
  return out;
}

}  // namespace

RouteApi::RouteApi(const config::Config& config, std::vector<control::LiveEndpoint*> endpoints,
                   Log log)
    : spec_(config.route),
      key_path_(key_path(config)),
      endpoints_(std::move(endpoints)),
      log_(std::move(log)) {
  bool agents = false;
  for (const auto& ep : config.endpoints)
    for (const auto& g : ep.groups) agents = agents || g.agent.enabled;
  if (!agents) return;  // opened when a group gets agents (PUT) and launches its first replica
  std::lock_guard lock(mu_);
  open_ring_locked(wall_.now());
}

void RouteApi::open_ring_locked(Time now) {
  if (ring_) return;
  if (key_path_.empty()) {
    ring_ = auth::KeyRing::ephemeral(now);
    if (log_) log_("route keys: in memory only (state.path is :memory:)");
  } else {
    const bool existed = std::filesystem::exists(key_path_);
    ring_ = auth::KeyRing::open(key_path_, now);
    if (log_)
      log_(fmt::format("route keys: {} {} (current key {})", existed ? "loaded" : "created",
                       key_path_, ring_->current_key_id()));
  }
  rotate_if_due_locked(now);
}

std::string RouteApi::replica_secret(const std::string& endpoint, uint64_t replica_id) {
  std::lock_guard lock(mu_);
  if (!ring_) {
    // A group got agents at run time: its first launch opens the keys.
    try {
      open_ring_locked(wall_.now());
    } catch (const std::exception& e) {
      if (log_) log_(fmt::format("route keys: {}", e.what()));
      return {};
    }
  }
  return ring_->replica_secret(fmt::format("{}/{}", endpoint, replica_id));
}

void RouteApi::rotate_if_due_locked(Time now) {
  if (!ring_ || spec_.rotate_after <= Duration{0}) return;
  if (now - ring_->current_created_at() < spec_.rotate_after) return;
  const std::string old = ring_->current_key_id();
  try {
    ring_->rotate(now, spec_.token_ttl);
    if (log_)
      log_(fmt::format("route keys: rotated {} -> {}; {} stays trusted for {}", old,
                       ring_->current_key_id(), old, format_duration(spec_.token_ttl)));
  } catch (const std::exception& e) {
    if (log_) log_(fmt::format("route keys: rotation failed, keeping {}: {}", old, e.what()));
  }
}

json RouteApi::keys_json_locked(Time now) const {
  json keys = json::array();
  if (ring_) {
    for (const auto& k : ring_->public_keys(now)) {
      json o = {{"id", k.id}, {"public_key", auth::base64url(k.bytes)}};
      if (k.valid_until)
        o["valid_until_ms"] =
            std::chrono::duration_cast<std::chrono::milliseconds>(k.valid_until->time_since_epoch())
                .count();
      keys.push_back(std::move(o));
    }
  }
  return json{{"algorithm", "Ed25519"},
              {"token_ttl_s", to_seconds(spec_.token_ttl)},
              {"keys", std::move(keys)}};
}

std::string RouteApi::public_keys_json() {
  std::lock_guard lock(mu_);
  return keys_json_locked(wall_.now()).dump();
}

std::optional<gateway::ApiResponse> RouteApi::handle(const gateway::ApiRequest& req) {
  std::string_view path = req.target;
  if (const size_t q = path.find('?'); q != path.npos) path = path.substr(0, q);
  if (path == "/v1/route") {
    if (req.method != "POST") return error(405, "method_not_allowed", "POST /v1/route");
    return route(req);
  }
  if (path == "/v1/agent/report") {
    if (req.method != "POST") return error(405, "method_not_allowed", "POST /v1/agent/report");
    return report(req);
  }
  if (path == "/v1/pubkey") {
    if (req.method != "GET") return error(405, "method_not_allowed", "GET /v1/pubkey");
    std::lock_guard lock(mu_);
    const Time now = wall_.now();
    rotate_if_due_locked(now);
    return gateway::ApiResponse{200, "application/json", keys_json_locked(now).dump(2) + "\n"};
  }
  if (path == "/v1/agents") {
    if (req.method != "GET") return error(405, "method_not_allowed", "GET /v1/agents");
    std::lock_guard lock(mu_);
    json routes = json::object();
    for (const auto& [ep, c] : routes_)
      routes[ep.empty() ? "(unknown)" : ep] = {{"calls", c.calls},
                                               {"routed", c.routed},
                                               {"no_replica", c.no_replica},
                                               {"refused", c.refused}};
    return gateway::ApiResponse{
        200, "application/json",
        json{{"routes", std::move(routes)},
             {"reports", {{"accepted", reports_accepted_}, {"rejected", reports_rejected_}}},
             {"current_key", ring_ ? ring_->current_key_id() : ""}}
                .dump(2) +
            "\n"};
  }
  return std::nullopt;
}

gateway::ApiResponse RouteApi::route(const gateway::ApiRequest& req) {
  const json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  auto refuse = [&](const std::string& endpoint, int status, std::string_view type,
                    const std::string& message) {
    std::lock_guard lock(mu_);
    ++routes_[endpoint].calls;
    ++routes_[endpoint].refused;
    return error(status, type, message);
  };
  RouteQuery q;
  if (std::string problem = read_route_query(body, q); !problem.empty())
    return refuse("", 400, "bad_request", problem);
  const std::string& endpoint = q.endpoint;
  const double work = q.work;
  control::LiveEndpoint* ep = nullptr;
  for (auto* e : endpoints_) {
    if (e->spec().name == endpoint) ep = e;
  }
  if (ep == nullptr)
    return refuse("", 404, "unknown_endpoint", "no endpoint named " + clip(endpoint));

  const control::DirectRoute r = ep->route_direct(work, q.sticky, spec_.token_ttl);
  std::lock_guard lock(mu_);
  Counts& counts = routes_[endpoint];
  ++counts.calls;
  switch (r.kind) {
    case control::DirectRoute::Kind::kNoAgent:
      ++counts.refused;
      return error(409, "no_agent",
                   fmt::format("endpoint {} has no group with agent: {{enabled: true}}; send its "
                               "requests through the gateway",
                               endpoint));
    case control::DirectRoute::Kind::kShutdown:
      ++counts.refused;
      return error(503, "shutting_down", "the server is stopping");
    case control::DirectRoute::Kind::kNoReplica:
      ++counts.no_replica;
      return no_ready_replica(endpoint, r);
    case control::DirectRoute::Kind::kRouted:
      break;
  }
  const Time now = wall_.now();
  rotate_if_due_locked(now);
  auth::Claims claims;
  claims.endpoint = endpoint;
  claims.replica_id = r.replica_id;
  claims.expires_at = now + spec_.token_ttl;
  claims.request = auth::random_u64();
  if (work > 0) claims.work = work;
  ++counts.routed;
  return gateway::ApiResponse{
      200, "application/json",
      json{{"url", "http://" + r.address},
           {"token", ring_->issue(claims)},
           {"expires_at", std::round(to_seconds(claims.expires_at) * 1000) / 1000},
           {"replica", r.replica_name},
           {"group", r.group_name},
           {"header", "Tide-Route-Token"}}
              .dump() +
          "\n"};
}

gateway::ApiResponse RouteApi::reject_report(int status, const std::string& reason,
                                             const std::string& message) {
  {
    std::lock_guard lock(mu_);
    ++reports_rejected_[reason];
  }
  return error(status, reason, message);
}

gateway::ApiResponse RouteApi::report(const gateway::ApiRequest& req) {
  constexpr std::string_view kBearer = "Bearer ";
  if (!std::string_view(req.authorization).starts_with(kBearer))
    return reject_report(401, "unauthorized", "Authorization: Bearer <replica secret> is required");
  const std::string_view secret = std::string_view(req.authorization).substr(kBearer.size());
  const agent::ParsedReport parsed = agent::parse_report(req.body);
  if (!parsed.report) return reject_report(400, "invalid_report", parsed.error);
  const agent::AgentReport& rep = *parsed.report;
  // A replica can only report for itself: its secret is derived from its own endpoint and id.
  // Without keys no replica was given a secret (and a report does not create them).
  std::string expected;
  {
    std::lock_guard lock(mu_);
    if (ring_) expected = ring_->replica_secret(fmt::format("{}/{}", rep.endpoint, rep.replica_id));
  }
  if (expected.empty() || !auth::secrets_equal(secret, expected))
    return reject_report(
        401, "unauthorized",
        fmt::format("the secret is not that of replica {} of {}", rep.replica_id, rep.endpoint));
  control::LiveEndpoint* ep = nullptr;
  for (auto* e : endpoints_) {
    if (e->spec().name == rep.endpoint) ep = e;
  }
  if (ep == nullptr)
    return reject_report(404, "unknown_endpoint", "no endpoint named " + rep.endpoint);
  switch (ep->agent_report(rep.replica_id, agent::to_replica_report(rep), rep.state, rep.address,
                           rep.detail)) {
    case control::LiveEndpoint::ReportResult::kUnknownReplica:
      return reject_report(410, "unknown_replica",
                           fmt::format("replica {} of {} is not live (stopped, failed or never "
                                       "launched): stop reporting",
                                       rep.replica_id, rep.endpoint));
    case control::LiveEndpoint::ReportResult::kNoAgent:
      return reject_report(409, "no_agent",
                           fmt::format("replica {} of {} belongs to a group without an agent",
                                       rep.replica_id, rep.endpoint));
    case control::LiveEndpoint::ReportResult::kAccepted:
      break;
  }
  std::lock_guard lock(mu_);
  ++reports_accepted_;
  return gateway::ApiResponse{200, "application/json", "{\"ok\":true}\n"};
}

void RouteApi::annotate(json& out, const control::EndpointView& view) const {
  {
    std::lock_guard lock(mu_);
    auto it = routes_.find(view.name);
    const Counts c = it == routes_.end() ? Counts{} : it->second;
    out["two_step"] = {{"route_calls", c.calls},
                       {"routed", c.routed},
                       {"no_replica", c.no_replica},
                       {"refused", c.refused}};
  }
  if (!out.contains("groups")) return;
  for (size_t g = 0; g < view.groups.size() && g < out["groups"].size(); ++g) {
    const control::GroupView& gv = view.groups[g];
    json& group = out["groups"][g];
    group["load"] = gv.status.load;
    group["reporting"] = gv.status.reporting;
    group["direct_routes"] = gv.status.direct_routes;
    group["waiting_clients"] = gv.status.waiting_clients;
    if (!group.contains("replicas")) continue;
    for (size_t i = 0; i < gv.replicas.size() && i < group["replicas"].size(); ++i) {
      const control::ReplicaView& rv = gv.replicas[i];
      json& replica = group["replicas"][i];
      replica["routes"] = rv.routes;
      if (!rv.report) continue;
      const control::ReplicaReport& r = *rv.report;
      replica["report"] = {{"age_s", rv.report_age_s}, {"in_service", r.in_service},
                           {"queued", r.queued},       {"busy", r.busy},
                           {"load", r.load.load},      {"capacity", r.load.capacity},
                           {"demand", r.load.demand},  {"throughput", r.load.throughput},
                           {"learned", r.load.learned}};
      if (!r.gpus.empty()) replica["report"]["gpus"] = agent::gpus_json(r.gpus);
    }
  }
}

}  // namespace tide::serve
