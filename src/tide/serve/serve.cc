#include "tide/serve/serve.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "tide/common/build_info.h"
#include "tide/common/text.h"
#include "tide/control/live_endpoint.h"
#include "tide/gateway/gateway.h"
#include "tide/provision/provision.h"
#include "tide/serve/api_token.h"
#include "tide/serve/check.h"
#include "tide/serve/observe.h"
#include "tide/serve/route_api.h"
#include "tide/store/store.h"

namespace tide::serve {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {

void log_to_stderr(const std::string& line) {
  const auto now = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
  std::fputs(fmt::format("{:%H:%M:%S} {}\n", now, line).c_str(), stderr);
}

// `{tide}` in a local command is the path of this tide binary (for `{tide} demo-model`). Specs
// keep the placeholder (so stored configurations stay portable); replicas get the path.
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

struct Server::Impl {
  config::Config config;
  ServeOptions options;
  SteadyClock clock;
  // Wall time of the steady clock's zero, to show instants to people.
  std::chrono::system_clock::time_point wall_zero;

  asio::io_context control_ctx{1};
  std::vector<std::unique_ptr<asio::io_context>> gateway_ctxs;
  std::unique_ptr<store::Store> store;
  std::string api_token;
  std::unique_ptr<provision::LiveProvisioner> provisioner;
  std::string replica_log_dir;  // with a state file: where local replicas' output goes
  std::vector<std::unique_ptr<control::LiveEndpoint>> endpoints;
  std::unique_ptr<gateway::Gateway> gateway;
  std::unique_ptr<RouteApi> route_api;  // two-step routing, agents' reports (route_api.h)
  std::vector<std::unique_ptr<asio::steady_timer>> tickers;
  std::unique_ptr<asio::steady_timer> sampler;
  Time last_compact = kTimeMin;
  // Per endpoint and group: requests routed and latencies at the previous sample, so that a
  // history row holds what happened in its own span.
  std::vector<std::vector<uint64_t>> routed_at_sample;
  std::vector<std::vector<LogLinearHistogram>> latency_at_sample;
  std::unique_ptr<asio::signal_set> signals;
  std::mutex log_mu;
  bool stopping = false;  // control thread only
  Time started{};
  std::map<std::string, WebFile> web;

  // server.api_token, else TIDE_API_TOKEN, else the state file's, else a new one (printed once).
  void resolve_api_token() {
    api_token = config.server.api_token;
    if (api_token.empty()) {
      if (const char* env = std::getenv("TIDE_API_TOKEN"); env != nullptr && *env != '\0')
        api_token = env;
    }
    if (api_token.empty()) api_token = store->meta(kApiTokenKey).value_or("");
    if (api_token.empty()) {
      api_token = new_api_token();
      store->set_meta(kApiTokenKey, api_token);
      store->flush();
      const std::string& file = store->path();
      log(file.empty() ? fmt::format("API token (in memory only): {}", api_token)
                       : fmt::format("API token (kept in {}; `tide token show --state {}` prints "
                                     "it again): {}",
                                     file, file, api_token));
    }
  }

  // Each endpoint runs the configuration last set through the API when the file's own version
  // of it has not changed since; a changed file wins (and is recorded).
  void resolve_endpoint_configs() {
    const double now = wall_seconds(clock.now());
    for (auto& spec : config.endpoints) {
      const auto rows = store->configs(spec.name);
      const store::ConfigRow* last_file = nullptr;
      for (const auto& r : rows) {
        if (r.source == "file") last_file = &r;
      }
      if (last_file == nullptr || last_file->text != spec.source) {
        store->add_config({now, spec.name, "file", spec.source});
        continue;
      }
      if (rows.back().source != "api") continue;
      try {
        config::EndpointSpec changed = config::parse_endpoint(rows.back().text, "stored");
        log(
            fmt::format("endpoint {}: running the configuration set through the API at {:.0f} "
                        "(the file's is unchanged since)",
                        spec.name, rows.back().time));
        spec = std::move(changed);
      } catch (const config::ConfigError& e) {
        log(
            fmt::format("endpoint {}: the stored API configuration no longer parses ({}); using "
                        "the file's",
                        spec.name, e.what()));
      }
    }
    store->flush();
  }

  void log(const std::string& line) {
    std::lock_guard lock(log_mu);
    if (options.log) {
      options.log(line);
    } else {
      log_to_stderr(line);
    }
  }

  Time from_wall(double wall_s) const {
    const double zero = std::chrono::duration<double>(wall_zero.time_since_epoch()).count();
    return time_at_seconds(wall_s - zero);
  }

  // `t` (the steady clock) on the wall clock: nanoseconds since the Unix epoch.
  Time wall_time(Time t) const {
    const auto wall = wall_zero + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                      t.time_since_epoch());
    return Time{std::chrono::duration_cast<Duration>(wall.time_since_epoch())};
  }

  double wall_seconds(Time t) const { return unix_seconds(wall_time(t)); }

  // A decision on the wall clock, as the state file keeps it and the API shows it.
  DecisionRecord on_wall_clock(DecisionRecord d) const {
    d.time = wall_time(d.time);
    return d;
  }

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
                    {"stats", group_stats_json(gv, spec)}};
      if (spec.price) group["price"] = *spec.price;
      if (!gv.status.last_error.empty()) group["last_error"] = gv.status.last_error;
      if (gv.status.backoff_until)
        group["backoff_s"] = std::max(0.0, to_seconds(*gv.status.backoff_until - clock.now()));
      if (detail) {
        json replicas = json::array();
        for (const auto& r : gv.replicas) {
          json rj = {{"id", r.id},           {"name", r.name},           {"state", r.state},
                     {"address", r.address}, {"in_flight", r.in_flight}, {"age_s", r.age_s}};
          if (r.ready_after_s >= 0) rj["cold_start_s"] = r.ready_after_s;
          if (!r.error.empty()) rj["error"] = r.error;
          replicas.push_back(std::move(rj));
        }
        group["replicas"] = std::move(replicas);
      }
      groups.push_back(std::move(group));
    }
    const auto& routing = ep.spec().routing;
    json routing_json = {
        {"mode", routing.mode == config::RoutingSpec::Mode::kSplit ? "split" : "overflow"}};
    if (routing.mode == config::RoutingSpec::Mode::kSplit) {
      json weights = json::object();
      for (size_t g = 0; g < ep.spec().groups.size(); ++g)
        weights[ep.spec().groups[g].name] = routing.weights.empty() ? 1.0 : routing.weights[g];
      routing_json["weights"] = std::move(weights);
      if (!routing.sticky_header.empty()) routing_json["sticky_header"] = routing.sticky_header;
    } else {
      json order = json::array();
      for (size_t i = 0; i < ep.spec().groups.size(); ++i) {
        const size_t g = routing.order.empty() ? i : static_cast<size_t>(routing.order[i]);
        order.push_back(ep.spec().groups[g].name);
      }
      routing_json["order"] = std::move(order);
    }
    json out = {{"name", v.name},
                {"routing", std::move(routing_json)},
                {"url_prefix", "/" + v.name + "/"},
                {"queued", v.queued},
                {"queue",
                 {{"max_length", ep.spec().queue.max_length},
                  {"timeout_s", to_seconds(ep.spec().queue.timeout)}}},
                {"slo", {{"max_wait_s", to_seconds(ep.spec().slo.max_wait)}}},
                {"requests", v.requests},
                {"rejected_queue_full", v.rejected_queue_full},
                {"rejected_no_replica", v.rejected_no_replica},
                {"timed_out", v.timed_out},
                {"groups", std::move(groups)}};
    route_api->annotate(out, v);
    if (detail) {
      out["config"] = ep.spec().source;
      json decisions = json::array();
      for (const auto& d : v.decisions) decisions.push_back(decision_json(on_wall_clock(d)));
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
  std::optional<gateway::ApiResponse> refuse_unauthorized(const gateway::ApiRequest& req) {
    if (config.server.public_read && (req.method == "GET" || req.method == "HEAD"))
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

  control::LiveEndpoint* find_endpoint(std::string_view name) {
    for (auto& ep : endpoints) {
      if (ep->spec().name == name) return ep.get();
    }
    return nullptr;
  }

  // from/to (Unix seconds, default: the last hour up to now) and their validation.
  std::optional<gateway::ApiResponse> read_range(const gateway::ApiRequest& req, double& from,
                                                 double& to) {
    const double now = wall_seconds(clock.now());
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
    if (auto problems = check_for_serving(next, "body"); !problems.empty())
      return invalid(std::move(problems));
    config::EndpointSpec runnable = next;
    expand_tide_path(runnable);
    if (std::string why = ep.reconfigure(runnable); !why.empty())
      return error(409, "conflict", "body." + why);
    store->add_config({wall_seconds(clock.now()), name, "api", body});
    return {200, "application/json", endpoint_json(ep, true).dump(2) + "\n"};
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

  std::string metrics() {
    MetricsInput in;
    for (auto& ep : endpoints) in.endpoints.push_back({&ep->spec(), ep->view(0)});
    in.gateway = gateway->counters();
    in.active_requests = gateway->active_requests();
    in.start_time_s = wall_seconds(started);
    in.process = read_process_stats();
    in.version = build_version();
    in.commit = build_commit();
    return metrics_text(in);
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
        snapshot["time"] = wall_seconds(now);
        snapshot["recent"] = state->recent(now, v);
        json replicas = json::array();
        for (size_t g = 0; g < v.groups.size(); ++g) {
          for (const auto& r : v.groups[g].replicas) {
            json rj = {{"name", r.name},
                       {"group", v.groups[g].name},
                       {"state", r.state},
                       {"in_flight", r.in_flight},
                       {"age_s", r.age_s}};
            if (r.ready_after_s >= 0) rj["cold_start_s"] = r.ready_after_s;
            replicas.push_back(std::move(rj));
          }
        }
        snapshot["replicas"] = std::move(replicas);
        out += sse_event("endpoint", snapshot.dump());
        for (const auto& d : state->new_decisions(v)) {
          json dj = decision_json(on_wall_clock(d));
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

  // `tide agent` in front of a replica of a group with agents: it reports to this API.
  provision::AgentLaunch agent_launch(const control::Replica& r, const config::GroupSpec&) {
    const std::string endpoint = r.name.substr(0, r.name.find('/'));
    std::string host = config.server.api.substr(0, config.server.api.rfind(':'));
    if (host == "0.0.0.0" || host == "::" || host == "[::]") host = "127.0.0.1";
    std::error_code ec;
    provision::AgentLaunch a;
    a.program = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    a.args = {"--control",    fmt::format("http://{}:{}", host, gateway->api_port()),
              "--endpoint",   endpoint,
              "--replica-id", std::to_string(r.id)};
    a.env = {"TIDE_AGENT_SECRET=" + route_api->replica_secret(endpoint, r.id),
             "TIDE_ROUTE_KEYS=" + route_api->public_keys_json()};
    return a;
  }

  void schedule_tick(size_t index, control::LiveEndpoint& ep, int group) {
    asio::steady_timer& t = *tickers[index];
    t.expires_after(ep.spec().groups[static_cast<size_t>(group)].scaling.tick);
    t.async_wait([this, index, &ep, group](boost::system::error_code ec) {
      if (ec || stopping) return;
      ep.tick(group);
      schedule_tick(index, ep, group);
    });
  }

  // What the state file learns of an endpoint's decisions and replicas.
  void attach_journal(control::LiveEndpoint& ep) {
    const std::string name = ep.spec().name;
    control::LiveEndpoint::Journal journal;
    journal.decision = [this](const DecisionRecord& d) { store->add_decision(on_wall_clock(d)); };
    journal.replica = [this, name, &ep](const control::Replica& r) {
      store::ReplicaRow row;
      row.endpoint = name;
      row.id = r.id;
      row.group = ep.spec().groups[static_cast<size_t>(r.group)].name;
      row.name = r.name;
      row.state = std::string(control::state_name(r.state));
      row.handle = r.handle;
      row.address = r.address;
      row.error = r.error;
      row.requested_at = wall_seconds(r.requested_at);
      if (r.ready_at != Time{}) row.ready_at = wall_seconds(r.ready_at);
      if (r.stopped_at != Time{}) row.stopped_at = wall_seconds(r.stopped_at);
      store->put_replica(std::move(row));
    };
    ep.set_journal(std::move(journal));
  }

  // After a restart: replicas the previous run left running are taken over by their endpoint,
  // or stopped when their endpoint or group is no longer configured.
  void adopt_replicas() {
    const std::vector<store::ReplicaRow> rows = store->live_replicas();
    // Processes of replicas whose handle never reached the state file (tide died between the
    // fork and the commit) are found by their environment and killed: nothing is orphaned.
    std::vector<std::string> recorded;
    for (const auto& row : rows) {
      if (!row.handle.empty()) recorded.push_back(row.name);
    }
    for (const std::string& line :
         provision::LiveProvisioner::kill_unrecorded(replica_log_dir, recorded))
      log("killed " + line + ": launched, but its handle never reached the state file");
    for (store::ReplicaRow row : rows) {
      control::LiveEndpoint* ep = find_endpoint(row.endpoint);
      const bool has_group =
          ep != nullptr && std::any_of(ep->spec().groups.begin(), ep->spec().groups.end(),
                                       [&](const auto& g) { return g.name == row.group; });
      if (row.handle.empty()) {
        row.state = "failed";
        row.error = "lost: tide stopped before its provisioner said where it runs";
      } else if (has_group) {
        const Time ready_at = row.ready_at > 0 ? from_wall(row.ready_at) : Time{};
        if (ep->adopt(row.group, row.id, row.handle, from_wall(row.requested_at), ready_at))
          continue;
        row.state = "failed";
        row.error = "could not be adopted after a restart of tide";
      } else {
        stop_orphan(row);
        row.state = "stopped";
        row.error = "no longer in the configuration: stopped after a restart of tide";
      }
      row.stopped_at = wall_seconds(clock.now());
      log(fmt::format("replica {}: {}", row.name, row.error));
      store->put_replica(std::move(row));
    }
  }

  // Stops a replica of a group that no longer exists: adopted without an endpoint, then stopped.
  void stop_orphan(const store::ReplicaRow& row) {
    struct Ignore final : control::ReplicaEvents {
      void on_replica_starting(uint64_t, Time) override {}
      void on_replica_ready(uint64_t, Time, std::string) override {}
      void on_replica_failed(uint64_t, Time, std::string) override {}
    };
    static Ignore ignore;
    config::GroupSpec group;
    group.name = row.group;
    group.provisioner.kind = row.handle.substr(0, row.handle.find(' '));
    control::Replica r;
    r.id = row.id;
    r.name = row.name;
    if (provisioner->adopt(r, group, row.handle, ignore)) provisioner->stop(r);
  }

  // A clean stop: no replica is left for the next run to adopt.
  void mark_all_stopped() {
    store->flush();
    const double now = wall_seconds(clock.now());
    for (store::ReplicaRow row : store->live_replicas()) {
      row.state = "stopped";
      row.stopped_at = now;
      store->put_replica(std::move(row));
    }
    store->flush();
  }

  void schedule_sample() {
    sampler->expires_after(config.state.sample_interval);
    sampler->async_wait([this](boost::system::error_code ec) {
      if (ec || stopping) return;
      sample();
      schedule_sample();
    });
  }

  // One history row per group, and now and then the downsampling.
  void sample() {
    const Time now = clock.now();
    const double t = wall_seconds(now);
    std::vector<store::SampleRow> rows;
    for (size_t e = 0; e < endpoints.size(); ++e) {
      const control::EndpointView v = endpoints[e]->view(0);
      routed_at_sample[e].resize(v.groups.size(), 0);
      latency_at_sample[e].resize(v.groups.size(), control::GroupStats::seconds_histogram());
      for (size_t g = 0; g < v.groups.size(); ++g) {
        const auto& st = v.groups[g].status;
        store::SampleRow row;
        row.time = t;
        row.endpoint = v.name;
        row.group = v.groups[g].name;
        row.step_s = to_seconds(config.state.sample_interval);
        row.desired = st.desired;
        row.ready = st.ready;
        row.starting = st.starting;
        row.draining = st.draining;
        row.queued = st.queued;
        row.in_flight = st.in_flight;
        row.requests = st.routed - std::min(st.routed, routed_at_sample[e][g]);
        routed_at_sample[e][g] = st.routed;
        LogLinearHistogram span = v.groups[g].stats.latency;
        span.subtract(latency_at_sample[e][g]);
        latency_at_sample[e][g] = v.groups[g].stats.latency;
        // No answer in the span: no latency (-1, shown as null), rather than a false 0.
        row.latency_p50_s = span.count() == 0 ? -1 : span.quantile(0.5);
        row.latency_p95_s = span.count() == 0 ? -1 : span.quantile(0.95);
        row.latency_p99_s = span.count() == 0 ? -1 : span.quantile(0.99);
        rows.push_back(std::move(row));
      }
    }
    store->add_samples(std::move(rows));
    if (last_compact == kTimeMin || now - last_compact >= std::chrono::minutes(10)) {
      last_compact = now;
      store::Retention retention;
      retention.downsample_after_s = to_seconds(config.state.downsample_after);
      retention.downsample_step_s = to_seconds(config.state.downsample_step);
      retention.keep_s = to_seconds(config.state.retention);
      store->compact(t, retention);
    }
  }

  void begin_shutdown() {
    if (stopping) return;
    stopping = true;
    log("shutting down: no new connections, held requests answered 503, draining");
    gateway->stop_accepting();
    for (auto& ep : endpoints) ep->shut_down();
    for (auto& t : tickers) t->cancel();
    if (sampler) sampler->cancel();
    signals.reset();
    wait_drained(clock.now() + options.drain_timeout);
  }

  void wait_drained(Time deadline) {
    if (gateway->active_requests() > 0 && clock.now() < deadline) {
      auto t = std::make_shared<asio::steady_timer>(control_ctx, std::chrono::milliseconds(20));
      t->async_wait([this, t, deadline](boost::system::error_code) { wait_drained(deadline); });
      return;
    }
    if (gateway->active_requests() > 0)
      log(fmt::format("{} requests still in progress after {}: cutting them",
                      gateway->active_requests(), format_duration(options.drain_timeout)));
    log("stopping every replica");
    provisioner->shutdown([this] {
      log("all replicas stopped");
      mark_all_stopped();
      for (auto& ctx : gateway_ctxs) ctx->stop();
      control_ctx.stop();
    });
  }
};

Server::Server(const config::Config& config, ServeOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.config = config;
  m.options = std::move(options);
  if (auto problems = check_for_serving(config); !problems.empty())
    throw config::ConfigError(std::move(problems));
  m.wall_zero = std::chrono::system_clock::now() -
                std::chrono::duration_cast<std::chrono::system_clock::duration>(
                    m.clock.now().time_since_epoch());
  int threads = m.config.server.threads;
  if (threads <= 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  std::vector<asio::io_context*> ctxs;
  for (int i = 0; i < threads; ++i) {
    m.gateway_ctxs.push_back(std::make_unique<asio::io_context>(1));
    ctxs.push_back(m.gateway_ctxs.back().get());
  }
  const bool persistent = m.config.state.path != ":memory:";
  try {
    m.store = store::Store::open(persistent ? m.config.state.path : "");
  } catch (const store::StoreError& e) {
    throw std::runtime_error(e.what());
  }
  m.store->on_error([this](const std::string& line) { impl_->log(line); });
  m.resolve_api_token();
  m.resolve_endpoint_configs();

  provision::ProvisionOptions popts;
  popts.stop_grace = m.options.stop_grace;
  if (persistent) {
    // Replicas outlive a crash of tide, for the next run to adopt; their output goes here.
    std::error_code ec;
    popts.replica_log_dir = std::filesystem::absolute(m.config.state.path + ".replicas", ec)
                                .lexically_normal()
                                .string();
    std::filesystem::create_directories(popts.replica_log_dir, ec);
    if (ec)
      throw std::runtime_error(
          fmt::format("state: cannot create {}: {}", popts.replica_log_dir, ec.message()));
    m.replica_log_dir = popts.replica_log_dir;
  }
  popts.agent = [this](const control::Replica& r, const config::GroupSpec& g) {
    return impl_->agent_launch(r, g);
  };
  m.provisioner = std::make_unique<provision::LiveProvisioner>(m.control_ctx, m.clock, popts);
  m.web = load_web(m.options.web_dir);
  std::vector<control::LiveEndpoint*> eps;
  for (const auto& spec : m.config.endpoints) {
    config::EndpointSpec runnable = spec;
    expand_tide_path(runnable);
    m.endpoints.push_back(std::make_unique<control::LiveEndpoint>(
        runnable, *m.provisioner, m.clock, [this](const std::string& line) { impl_->log(line); }));
    m.attach_journal(*m.endpoints.back());
    m.endpoints.back()->reserve_ids(m.store->max_replica_id(spec.name) + 1);
    eps.push_back(m.endpoints.back().get());
  }
  m.routed_at_sample.resize(m.endpoints.size());
  m.latency_at_sample.resize(m.endpoints.size());
  m.route_api = std::make_unique<RouteApi>(m.config, eps,
                                           [this](const std::string& line) { impl_->log(line); });
  for (auto* ep : eps) {
    ep->set_agent_secret([this, name = ep->spec().name](uint64_t id) {
      return impl_->route_api->replica_secret(name, id);
    });
  }
  m.gateway = std::make_unique<gateway::Gateway>(
      m.config.server, eps, ctxs, [this](const gateway::ApiRequest& r) { return impl_->api(r); });
  m.gateway->set_log([this](const std::string& line) { impl_->log("gateway: " + line); });
}

Server::~Server() {
  Impl& m = *impl_;
  // Nothing runs any more: release sockets, then the coroutines still parked in the contexts.
  m.gateway->close();
  m.tickers.clear();
  m.sampler.reset();
  m.signals.reset();
  for (auto& ctx : m.gateway_ctxs) ctx.reset();
  m.provisioner.reset();
}

uint16_t Server::port() const { return impl_->gateway->port(); }
uint16_t Server::api_port() const { return impl_->gateway->api_port(); }

void Server::run() {
  Impl& m = *impl_;
  m.started = m.clock.now();
  m.log(fmt::format("gateway on http://{}:{} , API on http://{}:{} , {} gateway threads",
                    m.config.server.listen.substr(0, m.config.server.listen.rfind(':')), port(),
                    m.config.server.api.substr(0, m.config.server.api.rfind(':')), api_port(),
                    m.gateway_ctxs.size()));
  m.log(m.web.empty() ? fmt::format("no dashboard: no built files in {}",
                                    m.options.web_dir.empty() ? "(none given)" : m.options.web_dir)
                      : fmt::format("dashboard at http://{}:{}/",
                                    m.config.server.api.substr(0, m.config.server.api.rfind(':')),
                                    api_port()));
  for (const auto& ep : m.endpoints) {
    for (const auto& g : ep->spec().groups) {
      m.log(fmt::format("endpoint {} at /{}/ : group {} ({}, {}..{} replicas, concurrency {})",
                        ep->spec().name, ep->spec().name, g.name, g.provisioner.kind,
                        g.min_replicas, g.max_replicas, g.concurrency));
    }
  }
  if (m.options.handle_signals) {
    m.signals = std::make_unique<asio::signal_set>(m.control_ctx, SIGINT, SIGTERM);
    m.signals->async_wait([&m](boost::system::error_code ec, int sig) {
      if (ec) return;
      m.log(fmt::format("signal {} received", sig));
      m.begin_shutdown();
    });
  }
  // Adoption first, so that the first ticks count the adopted replicas.
  m.adopt_replicas();
  // First ticks at once: min_replicas come up without waiting a tick.
  for (auto& ep : m.endpoints) {
    for (int g = 0; g < static_cast<int>(ep->spec().groups.size()); ++g) {
      m.tickers.push_back(std::make_unique<asio::steady_timer>(m.control_ctx));
      const size_t index = m.tickers.size() - 1;
      control::LiveEndpoint* e = ep.get();
      asio::post(m.control_ctx, [&m, index, e, g] {
        if (m.stopping) return;
        e->tick(g);
        m.schedule_tick(index, *e, g);
      });
    }
  }
  m.sampler = std::make_unique<asio::steady_timer>(m.control_ctx);
  m.schedule_sample();
  m.gateway->start();
  std::vector<std::thread> threads;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (auto& ctx : m.gateway_ctxs) {
    guards.push_back(asio::make_work_guard(*ctx));
    threads.emplace_back([c = ctx.get()] { c->run(); });
  }
  auto control_guard = asio::make_work_guard(m.control_ctx);
  m.control_ctx.run();
  guards.clear();
  for (auto& t : threads) t.join();
  m.log("stopped");
}

void Server::stop() {
  asio::post(impl_->control_ctx, [m = impl_.get()] { m->begin_shutdown(); });
}

}  // namespace tide::serve
