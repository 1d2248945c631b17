#include "tide/serve/serve.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "tide/control/live_endpoint.h"
#include "tide/gateway/gateway.h"
#include "tide/provision/provision.h"
#include "tide/serve/observe.h"

namespace tide::serve {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {

void log_to_stderr(const std::string& line) {
  const auto now = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
  std::fputs(fmt::format("{:%H:%M:%S} {}\n", now, line).c_str(), stderr);
}

std::string validate_for_serving(const config::Config& config) {
  std::string problems;
  for (size_t e = 0; e < config.endpoints.size(); ++e) {
    const auto& ep = config.endpoints[e];
    for (size_t g = 0; g < ep.groups.size(); ++g) {
      const auto& group = ep.groups[g];
      const auto& p = group.provisioner;
      const std::string at = fmt::format("endpoints[{}].groups[{}].provisioner", e, g);
      if (!provision::LiveProvisioner::supports(p.kind)) {
        problems +=
            fmt::format("{}.kind: {} cannot run live replicas (use local or static)\n", at, p.kind);
      } else if (p.kind == "local" && p.command.empty()) {
        problems += fmt::format(
            "{}.command: required for kind local (the replica's argv, with "
            "{{port}} where it listens)\n",
            at);
      } else if (p.kind == "static" && group.max_replicas > static_cast<int>(p.urls.size())) {
        problems += fmt::format(
            "endpoints[{}].groups[{}].max_replicas: must be <= the number of urls ({}), got {}\n",
            e, g, p.urls.size(), group.max_replicas);
      }
    }
  }
  return problems;
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
  std::unique_ptr<provision::LiveProvisioner> provisioner;
  std::vector<std::unique_ptr<control::LiveEndpoint>> endpoints;
  std::unique_ptr<gateway::Gateway> gateway;
  std::vector<std::unique_ptr<asio::steady_timer>> tickers;
  std::unique_ptr<asio::signal_set> signals;
  std::mutex log_mu;
  bool stopping = false;  // control thread only
  Time started{};
  std::map<std::string, WebFile> web;

  void log(const std::string& line) {
    std::lock_guard lock(log_mu);
    if (options.log) {
      options.log(line);
    } else {
      log_to_stderr(line);
    }
  }

  double wall_seconds(Time t) const {
    const auto wall = wall_zero + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                      t.time_since_epoch());
    return std::chrono::duration<double>(wall.time_since_epoch()).count();
  }

  json decision_json(const control::DecisionRecord& d) const {
    return {{"time", wall_seconds(d.time)},
            {"group", d.group},
            {"from", d.from},
            {"to", d.to},
            {"reason", d.reason},
            {"queued", d.queued},
            {"in_flight", d.in_flight},
            {"ready", d.ready},
            {"starting", d.starting}};
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
    if (detail) {
      json decisions = json::array();
      for (const auto& d : v.decisions) decisions.push_back(decision_json(d));
      out["decisions"] = std::move(decisions);
    }
    return out;
  }

  gateway::ApiResponse api(const gateway::ApiRequest& req) {
    auto error = [](int status, std::string_view type, const std::string& message) {
      return gateway::ApiResponse{status, "application/json",
                                  json{{"error", {{"type", type}, {"message", message}}}}.dump()};
    };
    std::string_view path = req.target;
    if (const size_t q = path.find('?'); q != path.npos) path = path.substr(0, q);
    if (path == "/healthz") return {200, "text/plain", "ok\n"};
    if (path == "/metrics") {
      if (req.method != "GET") return error(405, "method_not_allowed", "only GET");
      return {200, "text/plain; version=0.0.4; charset=utf-8", metrics()};
    }
    if (path == "/" || path == "/ui" || path.starts_with("/ui/")) return web_file(path);
    if (path == "/v1/events") {
      if (req.method != "GET") return error(405, "method_not_allowed", "only GET");
      return events(req.target);
    }
    constexpr std::string_view kEndpoints = "/v1/endpoints";
    if (!path.starts_with(kEndpoints)) return error(404, "not_found", "no such path");
    if (req.method != "GET") return error(405, "method_not_allowed", "only GET");
    std::string_view rest = path.substr(kEndpoints.size());
    if (rest.empty() || rest == "/") {
      json list = json::array();
      for (auto& ep : endpoints) list.push_back(endpoint_json(*ep, false));
      return {200, "application/json", json{{"endpoints", std::move(list)}}.dump(2) + "\n"};
    }
    if (rest.front() != '/') return error(404, "not_found", "no such path");
    const std::string_view name = rest.substr(1);
    for (auto& ep : endpoints) {
      if (ep->spec().name == name)
        return {200, "application/json", endpoint_json(*ep, true).dump(2) + "\n"};
    }
    return error(404, "unknown_endpoint", fmt::format("no endpoint named {}", name));
  }

  std::string metrics() {
    MetricsInput in;
    for (auto& ep : endpoints) in.endpoints.push_back({&ep->spec(), ep->view(0)});
    in.gateway = gateway->counters();
    in.active_requests = gateway->active_requests();
    in.start_time_s = wall_seconds(started);
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
          json dj = decision_json(d);
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

  void schedule_tick(size_t index, control::LiveEndpoint& ep, int group) {
    asio::steady_timer& t = *tickers[index];
    t.expires_after(ep.spec().groups[static_cast<size_t>(group)].scaling.tick);
    t.async_wait([this, index, &ep, group](boost::system::error_code ec) {
      if (ec || stopping) return;
      ep.tick(group);
      schedule_tick(index, ep, group);
    });
  }

  void begin_shutdown() {
    if (stopping) return;
    stopping = true;
    log("shutting down: no new connections, held requests answered 503, draining");
    gateway->stop_accepting();
    for (auto& ep : endpoints) ep->shut_down();
    for (auto& t : tickers) t->cancel();
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
  if (std::string problems = validate_for_serving(config); !problems.empty()) {
    problems.pop_back();
    throw std::runtime_error(problems);
  }
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
  provision::ProvisionOptions popts;
  popts.stop_grace = m.options.stop_grace;
  m.provisioner = std::make_unique<provision::LiveProvisioner>(m.control_ctx, m.clock, popts);
  m.web = load_web(m.options.web_dir);
  std::vector<control::LiveEndpoint*> eps;
  for (const auto& spec : m.config.endpoints) {
    m.endpoints.push_back(std::make_unique<control::LiveEndpoint>(
        spec, *m.provisioner, m.clock, [this](const std::string& line) { impl_->log(line); }));
    eps.push_back(m.endpoints.back().get());
  }
  m.gateway = std::make_unique<gateway::Gateway>(
      m.config.server, eps, ctxs, [this](const gateway::ApiRequest& r) { return impl_->api(r); });
}

Server::~Server() {
  Impl& m = *impl_;
  // Nothing runs any more: release sockets, then the coroutines still parked in the contexts.
  m.gateway->close();
  m.tickers.clear();
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
