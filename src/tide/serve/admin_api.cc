#include "tide/serve/admin_api.h"

#include <fmt/format.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "tide/agent/report.h"
#include "tide/common/decision.h"
#include "tide/common/text.h"
#include "tide/serve/check.h"
#include "tide/serve/observe.h"

namespace tide::serve {

using json = nlohmann::json;

namespace {

// The endpoint's SLO as written, and the wait budget the deciders take from it now (with a ttft
// SLO: ttft less the prefill observed).
json slo_json(control::LiveEndpoint& ep) {
  const config::SloSpec& slo = ep.spec().slo;
  json out = slo.ttft ? json{{"ttft_s", to_seconds(*slo.ttft)}}
                      : json{{"max_wait_s", to_seconds(slo.max_wait)}};
  out["wait_budget_s"] = to_seconds(ep.wait_budget());
  return out;
}

// A group's model-server figures as its last observation summed them (engine_metrics).
json engine_group_json(const control::GroupStatus& s) {
  json j = {{"reporting", s.engine_reporting},
            {"waiting", s.engine_waiting},
            {"running", s.engine_running}};
  if (s.engine_kv_cache) j["kv_cache"] = *s.engine_kv_cache;
  return j;
}

// Constant-time comparison, so the token cannot be guessed a byte at a time by timing.
bool same_secret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// A query parameter's value ("" when absent); no percent-decoding (the values are numbers).
std::string query_param(std::string_view target, std::string_view key) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return "";
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == key)
      return eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1));
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
  }
  return "";
}

// A latency of the history, or null where the span had no answer (stored as -1).
json seconds_or_null(double s) { return s < 0 ? json(nullptr) : json(s); }

// Seconds: a plain number, or a duration like 90s / 5m / 1h.
std::optional<double> parse_seconds(const std::string& text) {
  if (text.empty()) return std::nullopt;
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc() && end == text.data() + text.size()) return v;
  if (auto d = parse_duration(text)) return to_seconds(*d);
  return std::nullopt;
}

// A built file of the dashboard, served from memory.
struct WebFile {
  std::string content_type;
  std::string body;
};

// Reads the dashboard's files (web/ built by npm) once: URL path -> file. Only what is listed
// here is ever served, so no request can reach outside the directory.
std::map<std::string, WebFile> load_web(const std::string& dir) {
  namespace fs = std::filesystem;
  std::map<std::string, WebFile> files;
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) return files;
  static const std::map<std::string, std::string> kTypes = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".json", "application/json"},
      {".map", "application/json"}};
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const auto type = kTypes.find(it->path().extension().string());
    if (type == kTypes.end()) continue;
    std::ifstream in(it->path(), std::ios::binary);
    std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    files["/ui/" + fs::relative(it->path(), dir, ec).generic_string()] = {type->second,
                                                                          std::move(body)};
  }
  return files;
}

}  // namespace

struct AdminApi::Impl {
  explicit Impl(Parts p)
      : config(p.config),
        options(p.options),
        clock(p.clock),
        store(&p.store),
        api_token(p.api_token),
        endpoints(p.endpoints),
        route_api(&p.route_api),
        keys(p.keys),
        wall(p.wall),
        find_endpoint(std::move(p.find_endpoint)),
        metrics(std::move(p.metrics)),
        web(load_web(options.web_dir)) {}

  const config::Config& config;
  const ServeOptions& options;
  const Clock& clock;
  store::Store* store;
  const std::string& api_token;
  const std::vector<std::unique_ptr<control::LiveEndpoint>>& endpoints;
  RouteApi* route_api;
  KeysApi& keys;
  const WallClock& wall;
  std::function<control::LiveEndpoint*(std::string_view)> find_endpoint;
  std::function<std::string()> metrics;
  std::map<std::string, WebFile> web;

  // A decision (on the wall clock) as the API shows it, live or from the state file.
  static json decision_json(const DecisionRecord& d) {
    return {{"time", unix_seconds(d.time)},
            {"group", d.group},
            {"from", d.from},
            {"to", d.to},
            {"reason", d.reason},
            {"queued", d.queued},
            {"in_flight", d.in_flight},
            {"ready", d.ready},
            {"starting", d.starting},
            {"utilization", d.utilization}};
  }

  json endpoint_json(control::LiveEndpoint& ep, bool detail) {
    return endpoint_json(ep, ep.view(), detail);
  }

  // An endpoint's routing: split weights (and sticky header) or the overflow order.
  static json routing_json(const config::EndpointSpec& spec) {
    const auto& routing = spec.routing;
    json out = {{"mode", routing.mode == config::RoutingSpec::Mode::kSplit ? "split" : "overflow"}};
    if (routing.mode == config::RoutingSpec::Mode::kSplit) {
      json weights = json::object();
      for (size_t g = 0; g < spec.groups.size(); ++g)
        weights[spec.groups[g].name] = routing.weights.empty() ? 1.0 : routing.weights[g];
      out["weights"] = std::move(weights);
      if (!routing.sticky_header.empty()) out["sticky_header"] = routing.sticky_header;
    } else {
      json order = json::array();
      for (size_t i = 0; i < spec.groups.size(); ++i) {
        const size_t g = routing.order.empty() ? i : static_cast<size_t>(routing.order[i]);
        order.push_back(spec.groups[g].name);
      }
      out["order"] = std::move(order);
    }
    return out;
  }

  // A group's rolling replacement: its template generation, its state (none, rolling, complete,
  // stopped, with the reason), live replicas on the old and the new template, and its limits.
  static json rollout_json(const control::RolloutStatus& r, const config::RolloutSpec& limits) {
    json out = {{"generation", r.generation},     {"state", control::rollout_state_name(r.state)},
                {"old_replicas", r.old_replicas}, {"new_replicas", r.new_replicas},
                {"max_surge", limits.max_surge},  {"max_unavailable", limits.max_unavailable}};
    if (!r.reason.empty()) out["reason"] = r.reason;
    return out;
  }

  json endpoint_json(control::LiveEndpoint& ep, const control::EndpointView& v, bool detail) {
    json groups = json::array();
    for (size_t g = 0; g < v.groups.size(); ++g) {
      const auto& gv = v.groups[g];
      const auto& spec = ep.spec().groups[g];
      json group = {{"name", gv.name},
                    {"provisioner", spec.provisioner.kind},
                    {"min_replicas", spec.min_replicas},
                    {"max_replicas", spec.max_replicas},
                    {"concurrency", spec.concurrency},
                    {"desired", gv.status.desired},
                    {"starting", gv.status.starting},
                    {"ready", gv.status.ready},
                    {"draining", gv.status.draining},
                    {"queued", gv.status.queued},
                    {"in_flight", gv.status.in_flight},
                    {"launches", gv.status.launches},
                    {"failures", gv.status.failures},
                    {"replica_seconds", gv.replica_seconds},
                    {"routed", gv.status.routed},
                    {"spilled", gv.status.spilled},
                    {"overflow_in", gv.status.overflow_in},
                    {"rerouted", gv.status.rerouted},
                    {"last_reason", gv.status.last_reason},
                    {"rollout", rollout_json(gv.status.rollout, spec.rollout)},
                    {"stats", group_stats_json(gv, spec)}};
      if (spec.price) group["price"] = *spec.price;
      if (!gv.status.last_error.empty()) group["last_error"] = gv.status.last_error;
      if (gv.status.backoff_until)
        group["backoff_s"] = std::max(0.0, to_seconds(*gv.status.backoff_until - clock.now()));
      if (detail) {
        json replicas = json::array();
        for (const auto& r : gv.replicas) {
          json rj = {{"id", r.id},           {"name", r.name},
                     {"state", r.state},     {"generation", r.generation},
                     {"address", r.address}, {"in_flight", r.in_flight},
                     {"age_s", r.age_s}};
          if (r.ready_after_s >= 0) rj["cold_start_s"] = r.ready_after_s;
          if (!r.error.empty()) rj["error"] = r.error;
          if (r.engine) {
            rj["engine"] = agent::engine_json(*r.engine);
            rj["engine"]["age_s"] = r.engine_age_s;
          }
          replicas.push_back(std::move(rj));
        }
        group["replicas"] = std::move(replicas);
      }
      if (spec.engine_metrics.enabled) group["engine"] = engine_group_json(gv.status);
      groups.push_back(std::move(group));
    }
    json out = {{"name", v.name},
                {"routing", routing_json(ep.spec())},
                {"url_prefix", "/" + v.name + "/"},
                {"queued", v.queued},
                {"queue",
                 {{"max_length", ep.spec().queue.max_length},
                  {"timeout_s", to_seconds(ep.spec().queue.timeout)}}},
                {"slo", slo_json(ep)},
                {"requests", v.requests},
                {"rejected_queue_full", v.rejected_queue_full},
                {"rejected_no_replica", v.rejected_no_replica},
                {"timed_out", v.timed_out},
                {"groups", std::move(groups)}};
    route_api->annotate(out, v);
    if (detail) {
      out["config"] = ep.spec().source;
      json decisions = json::array();
      for (const auto& d : v.decisions) decisions.push_back(decision_json(wall.decision(d)));
      out["decisions"] = std::move(decisions);
    }
    return out;
  }

  // Messages may quote what a client sent: each is bounded (clip) and stays valid JSON.
  static gateway::ApiResponse error(int status, std::string_view type, const std::string& message) {
    return {status, "application/json",
            json{{"error", {{"type", type}, {"message", clip(message, 2000)}}}}.dump() + "\n"};
  }

  // Bearer-token check: nothing when allowed, else the 401 to send.
  // `reads_public`: GET and HEAD are open with server.public_read.
  std::optional<gateway::ApiResponse> refuse_unauthorized(const gateway::ApiRequest& req,
                                                          bool reads_public = true) {
    if (reads_public && config.server.public_read && (req.method == "GET" || req.method == "HEAD"))
      return std::nullopt;
    constexpr std::string_view kBearer = "Bearer ";
    std::string_view given = req.authorization;
    if (given.starts_with(kBearer) && same_secret(given.substr(kBearer.size()), api_token))
      return std::nullopt;
    return error(401, "unauthorized",
                 req.authorization.empty()
                     ? "this API needs Authorization: Bearer <token> (server.api_token, "
                       "else TIDE_API_TOKEN, else the state file's: `tide token show`)"
                     : "wrong API token");
  }

  // from/to (Unix seconds, default: the last hour up to now) and their validation.
  std::optional<gateway::ApiResponse> read_range(const gateway::ApiRequest& req, double& from,
                                                 double& to) {
    const double now = wall.seconds(clock.now());
    to = now + 1;
    from = now - 3600;
    for (auto [key, out] : {std::pair{"from", &from}, std::pair{"to", &to}}) {
      const std::string text = query_param(req.target, key);
      if (text.empty()) continue;
      const auto v = parse_seconds(text);
      if (!v)
        return error(400, "bad_request",
                     fmt::format("{}: expected Unix seconds, got {}", key, text));
      *out = *v;
    }
    if (!(from < to))
      return error(400, "bad_request", fmt::format("from ({}) must be before to ({})", from, to));
    return std::nullopt;
  }

  gateway::ApiResponse history_json(const gateway::ApiRequest& req, const std::string& name) {
    double from = 0, to = 0;
    if (auto bad = read_range(req, from, to)) return *bad;
    double step = std::max(to_seconds(config.state.sample_interval), (to - from) / 500);
    if (const std::string text = query_param(req.target, "step"); !text.empty()) {
      const auto v = parse_seconds(text);
      if (!v || *v <= 0)
        return error(400, "bad_request", fmt::format("step: expected seconds > 0, got {}", text));
      step = *v;
    }
    if ((to - from) / step > 20000)
      return error(400, "bad_request",
                   fmt::format("step: {} s over {} s gives more than 20000 points per group", step,
                               to - from));
    json groups = json::array();
    std::string current;
    for (const auto& row : store->history(name, from, to, step)) {
      if (groups.empty() || row.group != current) {
        groups.push_back({{"name", row.group}, {"points", json::array()}});
        current = row.group;
      }
      groups.back()["points"].push_back({{"t", row.time},
                                         {"step_s", row.step_s},
                                         {"desired", row.desired},
                                         {"ready", row.ready},
                                         {"starting", row.starting},
                                         {"draining", row.draining},
                                         {"queued", row.queued},
                                         {"in_flight", row.in_flight},
                                         {"requests", row.requests},
                                         {"latency_p50_s", seconds_or_null(row.latency_p50_s)},
                                         {"latency_p95_s", seconds_or_null(row.latency_p95_s)},
                                         {"latency_p99_s", seconds_or_null(row.latency_p99_s)}});
    }
    return {200, "application/json",
            json{{"endpoint", name},
                 {"from", from},
                 {"to", to},
                 {"step_s", step},
                 {"groups", std::move(groups)}}
                    .dump() +
                "\n"};
  }

  gateway::ApiResponse decisions_json(const gateway::ApiRequest& req, const std::string& name) {
    double from = 0, to = 0;
    if (auto bad = read_range(req, from, to)) return *bad;
    int limit = 1000;
    if (const std::string text = query_param(req.target, "limit"); !text.empty()) {
      int v = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc() || end != text.data() + text.size() || v < 1 || v > 100000)
        return error(400, "bad_request",
                     fmt::format("limit: expected a whole number from 1 to 100000, got {}", text));
      limit = v;
    }
    json list = json::array();
    for (const auto& d : store->decisions(name, from, to, limit)) list.push_back(decision_json(d));
    return {200, "application/json",
            json{{"endpoint", name}, {"from", from}, {"to", to}, {"decisions", std::move(list)}}
                    .dump() +
                "\n"};
  }

  // A new configuration of `ep`, validated like the file (`where` names it in the problems) and
  // applied at once; recorded with its source and text. Why not, when it was not applied: the
  // problems and the HTTP status that answers them.
  struct Refused {
    int status = 400;
    std::vector<std::string> problems;
  };
  std::optional<Refused> apply(control::LiveEndpoint& ep, const config::EndpointSpec& next,
                               const std::string& where, const std::string& source,
                               const std::string& text) {
    if (auto problems = check_for_serving(next, where); !problems.empty())
      return Refused{400, std::move(problems)};
    std::vector<const config::EndpointSpec*> others;
    for (const auto& other : endpoints) others.push_back(&other->spec());
    if (auto clash = config::model_clash(next, others))
      return Refused{400,
                     {fmt::format("{}.models: {}; a model may be listed by one endpoint only",
                                  where, *clash)}};
    config::EndpointSpec runnable = next;
    expand_tide_path(runnable);
    if (std::string why = ep.reconfigure(runnable); !why.empty())
      return Refused{409, {where + "." + why}};
    store->add_config({wall.seconds(clock.now()), next.name, source, text});
    return std::nullopt;
  }

  // PUT /v1/endpoints/{name}: the endpoint's new configuration, in the schema of an entry of
  // `endpoints:` (YAML or JSON), validated like the file; applied at once and recorded.
  gateway::ApiResponse put_endpoint(control::LiveEndpoint& ep, const std::string& body) {
    const std::string& name = ep.spec().name;
    auto invalid = [](std::vector<std::string> problems) {
      // Each problem may quote the body: bounded, as is their number.
      if (problems.size() > 20) problems.resize(20);
      for (auto& p : problems) p = clip(p, 500);
      std::string message;
      for (const auto& p : problems) message += (message.empty() ? "" : "; ") + p;
      return gateway::ApiResponse{
          400, "application/json",
          json{
              {"error", {{"type", "invalid_config"}, {"message", message}, {"problems", problems}}}}
                  .dump() +
              "\n"};
    };
    config::EndpointSpec next;
    try {
      next = config::parse_endpoint(body, "body");
    } catch (const config::ConfigError& e) {
      return invalid(e.problems());
    }
    if (next.name != name)
      return invalid({fmt::format("body.name: must be {} (the endpoint in the URL), got {}", name,
                                  clip(next.name))});
    if (auto refused = apply(ep, next, "body", "api", body))
      return refused->status == 409 ? error(409, "conflict", refused->problems.front())
                                    : invalid(std::move(refused->problems));
    return {200, "application/json", endpoint_json(ep, true).dump(2) + "\n"};
  }

  // SIGHUP: the endpoints of the config file read again. Each whose entry changed gets it as a
  // PUT would (a changed launch template rolls its replicas); adding or removing an endpoint
  // takes a restart. One line per endpoint for the log.
  std::vector<std::string> reload(const config::Config& next, const std::string& file) {
    std::vector<std::string> lines;
    for (size_t i = 0; i < next.endpoints.size(); ++i) {
      const config::EndpointSpec& spec = next.endpoints[i];
      control::LiveEndpoint* ep = find_endpoint(spec.name);
      const std::string text = endpoint_text(spec);
      if (ep == nullptr) {
        lines.push_back(fmt::format("endpoint {} is new in {}: adding an endpoint takes a restart",
                                    spec.name, file));
      } else if (endpoint_text(ep->spec()) == text) {
        lines.push_back(fmt::format("endpoint {}: unchanged", spec.name));
      } else if (auto refused =
                     apply(*ep, spec, fmt::format("{}: endpoints[{}]", file, i), "file", text)) {
        std::string why;
        for (const auto& p : refused->problems) why += (why.empty() ? "" : "; ") + clip(p, 500);
        lines.push_back(fmt::format("endpoint {}: not applied: {}", spec.name, why));
      } else {
        lines.push_back(fmt::format("endpoint {}: the file's configuration applied", spec.name));
      }
    }
    for (const auto& ep : endpoints) {
      const std::string& name = ep->spec().name;
      const bool kept = std::any_of(next.endpoints.begin(), next.endpoints.end(),
                                    [&](const config::EndpointSpec& e) { return e.name == name; });
      if (!kept)
        lines.push_back(fmt::format(
            "endpoint {} is no longer in {}: removing an endpoint takes a restart", name, file));
    }
    return lines;
  }

  // An endpoint's configuration as the file would say it, `{tide}` expanded (for comparing).
  static std::string endpoint_text(config::EndpointSpec spec) {
    expand_tide_path(spec);
    config::Config one;
    one.endpoints.push_back(std::move(spec));
    return config::effective_yaml(one);
  }

  gateway::ApiResponse api(const gateway::ApiRequest& req) {
    std::string_view path = req.target;
    if (const size_t q = path.find('?'); q != path.npos) path = path.substr(0, q);
    // Two-step routing and agent reports are open like the gateway (reports carry their
    // replica's secret); the agents' counters are admin data.
    if (path != "/v1/agents")
      if (auto r = route_api->handle(req)) return std::move(*r);
    if (path == "/healthz") return {200, "text/plain", "ok\n"};
    if (path == "/" || path == "/ui" || path.starts_with("/ui/")) return web_file(path);
    // Prometheus scrapes without a token where server.metrics_auth allows it (loopback).
    if (path == "/metrics" && config::metrics_need_token(config.server))
      if (auto denied = refuse_unauthorized(req)) return *denied;
    if (path == "/metrics") {
      if (req.method != "GET") return error(405, "method_not_allowed", "only GET");
      return {200, "text/plain; version=0.0.4; charset=utf-8", metrics()};
    }
    if (path.starts_with("/v1/keys")) {
      if (auto denied = refuse_unauthorized(req, /*reads_public=*/false)) return *denied;
      if (auto r = keys.handle(req)) return std::move(*r);
    }
    if (auto denied = refuse_unauthorized(req)) return *denied;
    if (path == "/v1/events") {
      if (req.method != "GET") return error(405, "method_not_allowed", "only GET");
      return events(req.target);
    }
    if (path == "/v1/agents") return *route_api->handle(req);
    constexpr std::string_view kEndpoints = "/v1/endpoints";
    if (!path.starts_with(kEndpoints)) return error(404, "not_found", "no such path");
    std::string_view rest = path.substr(kEndpoints.size());
    if (rest.empty() || rest == "/") {
      if (req.method != "GET") return error(405, "method_not_allowed", "only GET here");
      json list = json::array();
      for (auto& ep : endpoints) list.push_back(endpoint_json(*ep, false));
      return {200, "application/json", json{{"endpoints", std::move(list)}}.dump(2) + "\n"};
    }
    if (rest.front() != '/') return error(404, "not_found", "no such path");
    rest.remove_prefix(1);
    const size_t slash = rest.find('/');
    const std::string name(rest.substr(0, slash));
    const std::string_view sub = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
    control::LiveEndpoint* ep = find_endpoint(name);
    if (ep == nullptr)
      return error(404, "unknown_endpoint", fmt::format("no endpoint named {}", clip(name)));
    if (sub.empty()) {
      if (req.method == "PUT") return put_endpoint(*ep, req.body);
      if (req.method != "GET") return error(405, "method_not_allowed", "GET or PUT here");
      return {200, "application/json", endpoint_json(*ep, true).dump(2) + "\n"};
    }
    if (req.method != "GET") return error(405, "method_not_allowed", "only GET here");
    try {
      if (sub == "history") return history_json(req, name);
      if (sub == "decisions") return decisions_json(req, name);
    } catch (const store::StoreError& e) {
      return error(500, "state_file", e.what());
    }
    return error(404, "not_found", "no such path");
  }

  gateway::ApiResponse web_file(std::string_view path) {
    if (path == "/" || path == "/ui" || path == "/ui/") path = "/ui/index.html";
    auto it = web.find(std::string(path));
    if (it != web.end()) return {200, it->second.content_type, it->second.body};
    if (web.empty()) {
      return {404, "text/plain; charset=utf-8",
              fmt::format("The dashboard is not built: no files in {} (it is built from web/ "
                          "when npm is installed; see docs/dashboard.md). The API is at "
                          "/v1/endpoints, metrics at /metrics.\n",
                          options.web_dir.empty() ? std::string("(no --web)") : options.web_dir)};
    }
    return {404, "text/plain; charset=utf-8", "no such file\n"};
  }

  // GET /v1/events[?endpoint=NAME]: every second, per endpoint, an `endpoint` event (its state,
  // groups with figures, and latency over the last 10 s) and a `decision` event per decision
  // made since the last one (the first time: the last 50).
  gateway::ApiResponse events(std::string_view target) {
    std::string only;
    if (const size_t q = target.find("endpoint="); q != target.npos) {
      only = std::string(target.substr(q + 9));
      only = only.substr(0, only.find('&'));
    }
    std::vector<control::LiveEndpoint*> chosen;
    for (auto& ep : endpoints) {
      if (only.empty() || ep->spec().name == only) chosen.push_back(ep.get());
    }
    if (chosen.empty()) {
      return {404, "application/json",
              json{{"error",
                    {{"type", "unknown_endpoint"},
                     {"message", fmt::format("no endpoint named {}", only)}}}}
                  .dump()};
    }
    auto state = std::make_shared<LiveWindow>();
    auto next = [this, chosen, state]() -> std::optional<std::string> {
      std::string out;
      const Time now = clock.now();
      for (control::LiveEndpoint* ep : chosen) {
        const control::EndpointView v = ep->view();
        json snapshot = endpoint_json(*ep, v, /*detail=*/false);
        snapshot["time"] = wall.seconds(now);
        snapshot["recent"] = state->recent(now, v);
        json replicas = json::array();
        for (size_t g = 0; g < v.groups.size(); ++g) {
          for (const auto& r : v.groups[g].replicas) {
            json rj = {{"name", r.name},           {"group", v.groups[g].name},
                       {"state", r.state},         {"generation", r.generation},
                       {"in_flight", r.in_flight}, {"age_s", r.age_s}};
            if (r.ready_after_s >= 0) rj["cold_start_s"] = r.ready_after_s;
            replicas.push_back(std::move(rj));
          }
        }
        snapshot["replicas"] = std::move(replicas);
        out += sse_event("endpoint", snapshot.dump());
        for (const auto& d : state->new_decisions(v)) {
          json dj = decision_json(wall.decision(d));
          dj["endpoint"] = v.name;
          out += sse_event("decision", dj.dump());
        }
      }
      return out;
    };
    gateway::ApiResponse r{200, "text/event-stream", next().value_or("")};
    r.stream = std::make_shared<gateway::ApiStream>();
    r.stream->next = std::move(next);
    return r;
  }
};

AdminApi::AdminApi(Parts parts) : impl_(std::make_unique<Impl>(std::move(parts))) {}
AdminApi::~AdminApi() = default;

gateway::ApiResponse AdminApi::handle(const gateway::ApiRequest& req) { return impl_->api(req); }

bool AdminApi::has_dashboard() const { return !impl_->web.empty(); }

std::vector<std::string> AdminApi::reload(const config::Config& next, const std::string& file) {
  return impl_->reload(next, file);
}

void expand_tide_path(config::EndpointSpec& spec) {
  static const std::string self = [] {
    std::error_code ec;
    return std::filesystem::read_symlink("/proc/self/exe", ec).string();
  }();
  for (auto& g : spec.groups) {
    for (auto& arg : g.provisioner.command) {
      for (size_t at = arg.find("{tide}"); at != std::string::npos; at = arg.find("{tide}"))
        arg.replace(at, 6, self);
    }
  }
}

}  // namespace tide::serve
