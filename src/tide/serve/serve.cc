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
#include <mutex>
#include <stdexcept>
#include <thread>

#include "tide/control/live_endpoint.h"
#include "tide/gateway/gateway.h"
#include "tide/provision/provision.h"
#include "tide/serve/route_api.h"

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
  std::unique_ptr<RouteApi> route_api;  // two-step routing, agents' reports (route_api.h)
  std::vector<std::unique_ptr<asio::steady_timer>> tickers;
  std::unique_ptr<asio::signal_set> signals;
  std::mutex log_mu;
  bool stopping = false;  // control thread only
  Time started{};

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

  json endpoint_json(control::LiveEndpoint& ep, bool detail) {
    const control::EndpointView v = ep.view();
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
                    {"last_reason", gv.status.last_reason}};
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
      json decisions = json::array();
      for (const auto& d : v.decisions) {
        decisions.push_back({{"time", wall_seconds(d.time)},
                             {"group", d.group},
                             {"from", d.from},
                             {"to", d.to},
                             {"reason", d.reason},
                             {"queued", d.queued},
                             {"in_flight", d.in_flight},
                             {"ready", d.ready},
                             {"starting", d.starting}});
      }
      out["decisions"] = std::move(decisions);
    }
    return out;
  }

  gateway::ApiResponse api(const gateway::ApiRequest& req) {
    auto error = [](int status, std::string_view type, const std::string& message) {
      return gateway::ApiResponse{status, "application/json",
                                  json{{"error", {{"type", type}, {"message", message}}}}.dump()};
    };
    if (auto r = route_api->handle(req)) return std::move(*r);
    std::string_view path = req.target;
    if (const size_t q = path.find('?'); q != path.npos) path = path.substr(0, q);
    if (path == "/healthz") return {200, "text/plain", "ok\n"};
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
  popts.agent = [this](const control::Replica& r, const config::GroupSpec& g) {
    return impl_->agent_launch(r, g);
  };
  m.provisioner = std::make_unique<provision::LiveProvisioner>(m.control_ctx, m.clock, popts);
  std::vector<control::LiveEndpoint*> eps;
  for (const auto& spec : m.config.endpoints) {
    m.endpoints.push_back(std::make_unique<control::LiveEndpoint>(
        spec, *m.provisioner, m.clock, [this](const std::string& line) { impl_->log(line); }));
    eps.push_back(m.endpoints.back().get());
  }
  m.route_api = std::make_unique<RouteApi>(m.config, eps,
                                           [this](const std::string& line) { impl_->log(line); });
  for (auto* ep : eps) {
    ep->set_agent_secret([this, name = ep->spec().name](uint64_t id) {
      return impl_->route_api->replica_secret(name, id);
    });
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
