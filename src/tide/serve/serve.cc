#include "tide/serve/serve.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "tide/auth/client_keys.h"
#include "tide/common/build_info.h"
#include "tide/control/live_endpoint.h"
#include "tide/gateway/gateway.h"
#include "tide/net/address.h"
#include "tide/provision/provision.h"
#include "tide/serve/admin_api.h"
#include "tide/serve/api_token.h"
#include "tide/serve/check.h"
#include "tide/serve/keys_api.h"
#include "tide/serve/observe.h"
#include "tide/serve/route_api.h"
#include "tide/serve/wall_clock.h"
#include "tide/store/store.h"

namespace tide::serve {

namespace asio = boost::asio;

namespace {

void log_to_stderr(const std::string& line) {
  const auto now = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
  std::fputs(fmt::format("{:%H:%M:%S} {}\n", now, line).c_str(), stderr);
}

}  // namespace

struct Server::Impl {
  config::Config config;
  ServeOptions options;
  SteadyClock clock;
  WallClock wall;  // to show instants to people

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
  std::unique_ptr<asio::signal_set> reload_signals;  // SIGHUP: read the TLS files again
  std::mutex log_mu;
  bool stopping = false;  // control thread only
  Time started{};
  std::unique_ptr<AdminApi> admin;  // the admin API (admin_api.h)
  auth::ClientKeyRing client_keys;  // the gateway's, checked with server.client_auth: keys
  std::unique_ptr<KeysApi> keys_api;

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
    const double now = wall.seconds(clock.now());
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
        if (auto clash = model_clash_with_others(changed)) {
          log(
              fmt::format("endpoint {}: the configuration set through the API lists a model the "
                          "file gives another endpoint now ({}); using the file's",
                          spec.name, *clash));
          continue;
        }
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

  std::optional<std::string> model_clash_with_others(const config::EndpointSpec& e) const {
    std::vector<const config::EndpointSpec*> others;
    for (const auto& spec : config.endpoints) others.push_back(&spec);
    return config::model_clash(e, others);
  }

  void log(const std::string& line) {
    std::lock_guard lock(log_mu);
    if (options.log) {
      options.log(line);
    } else {
      log_to_stderr(line);
    }
  }

  std::string metrics() {
    MetricsInput in;
    for (auto& ep : endpoints) in.endpoints.push_back({&ep->spec(), ep->view(0)});
    in.gateway = gateway->counters();
    in.client_keys = client_keys.request_counts();
    in.active_requests = gateway->active_requests();
    in.start_time_s = wall.seconds(started);
    in.process = read_process_stats();
    in.version = build_version();
    in.commit = build_commit();
    return metrics_text(in);
  }

  control::LiveEndpoint* find_endpoint(std::string_view name) {
    for (auto& ep : endpoints) {
      if (ep->spec().name == name) return ep.get();
    }
    return nullptr;
  }

  // `tide agent` in front of a replica of a group with agents: it reports to this API.
  provision::AgentLaunch agent_launch(const control::Replica& r, const config::GroupSpec&) {
    const std::string endpoint = r.name.substr(0, r.name.find('/'));
    std::string host(net::host_of(config.server.api));
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
    journal.decision = [this](const DecisionRecord& d) { store->add_decision(wall.decision(d)); };
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
      row.template_id = r.template_id;
      row.requested_at = wall.seconds(r.requested_at);
      if (r.ready_at != Time{}) row.ready_at = wall.seconds(r.ready_at);
      if (r.stopped_at != Time{}) row.stopped_at = wall.seconds(r.stopped_at);
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
        const Time ready_at = row.ready_at > 0 ? wall.from_seconds(row.ready_at) : Time{};
        if (ep->adopt(row.group, row.id, row.handle, wall.from_seconds(row.requested_at), ready_at,
                      row.template_id))
          continue;
        row.state = "failed";
        row.error = "could not be adopted after a restart of tide";
      } else {
        stop_orphan(row);
        row.state = "stopped";
        row.error = "no longer in the configuration: stopped after a restart of tide";
      }
      row.stopped_at = wall.seconds(clock.now());
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
    const double now = wall.seconds(clock.now());
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
    const double t = wall.seconds(now);
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

  // SIGHUP, again and again until the shutdown: the TLS listeners read their files again, and
  // the endpoints the config file again.
  void wait_reload() {
    reload_signals->async_wait([this](boost::system::error_code ec, int) {
      if (ec || stopping) return;
      const std::vector<std::string> lines = gateway->reload_tls();
      if (lines.empty()) log("SIGHUP received: no TLS listener, nothing to reload");
      for (const std::string& line : lines) log("SIGHUP: " + line);
      reload_config();
      wait_reload();
    });
  }

  // The config file read again: endpoints whose entry changed get it as a PUT would. A file
  // that does not parse changes nothing.
  void reload_config() {
    if (options.config_path.empty()) return;
    try {
      const config::Config next = config::load_config(options.config_path);
      for (const std::string& line : admin->reload(next, options.config_path))
        log("SIGHUP: " + line);
    } catch (const std::exception& e) {
      log(fmt::format("SIGHUP: {} not applied, nothing changed: {}", options.config_path,
                      e.what()));
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
    reload_signals.reset();
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
  m.wall = WallClock(std::chrono::system_clock::now() -
                     std::chrono::duration_cast<std::chrono::system_clock::duration>(
                         m.clock.now().time_since_epoch()));
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
  m.keys_api = std::make_unique<KeysApi>(
      *m.store, m.client_keys, [this] { return impl_->wall.seconds(impl_->clock.now()); },
      [this] {
        std::vector<std::string> names;
        for (const auto& ep : impl_->endpoints) names.push_back(ep->spec().name);
        return names;
      });
  m.keys_api->load();
  m.admin = std::make_unique<AdminApi>(AdminApi::Parts{
      .config = m.config,
      .options = m.options,
      .clock = m.clock,
      .store = *m.store,
      .api_token = m.api_token,
      .endpoints = m.endpoints,
      .route_api = *m.route_api,
      .keys = *m.keys_api,
      .wall = m.wall,
      .find_endpoint = [this](std::string_view name) { return impl_->find_endpoint(name); },
      .metrics = [this] { return impl_->metrics(); }});
  m.gateway = std::make_unique<gateway::Gateway>(
      m.config.server, eps, ctxs,
      [this](const gateway::ApiRequest& r) { return impl_->admin->handle(r); });
  m.gateway->set_log([this](const std::string& line) { impl_->log("gateway: " + line); });
  if (m.config.server.client_auth == config::ServerSpec::ClientAuth::kKeys) {
    m.gateway->set_client_keys(&m.client_keys);
    m.log(
        fmt::format("client_auth: keys: the gateway wants one of the {} client keys of the state "
                    "file (`tide keys add NAME` adds one)",
                    m.store->client_keys().size()));
  }
}

Server::~Server() {
  Impl& m = *impl_;
  // Nothing runs any more: release sockets, then the coroutines still parked in the contexts.
  m.gateway->close();
  m.tickers.clear();
  m.sampler.reset();
  m.signals.reset();
  m.reload_signals.reset();
  for (auto& ctx : m.gateway_ctxs) ctx.reset();
  m.provisioner.reset();
}

uint16_t Server::port() const { return impl_->gateway->port(); }
uint16_t Server::api_port() const { return impl_->gateway->api_port(); }

void Server::run() {
  Impl& m = *impl_;
  m.started = m.clock.now();
  // Before the first log line: whoever waits for it may signal at once.
  if (m.options.handle_signals) {
    m.signals = std::make_unique<asio::signal_set>(m.control_ctx, SIGINT, SIGTERM);
    m.signals->async_wait([&m](boost::system::error_code ec, int sig) {
      if (ec) return;
      m.log(fmt::format("signal {} received", sig));
      m.begin_shutdown();
    });
    m.reload_signals = std::make_unique<asio::signal_set>(m.control_ctx, SIGHUP);
    m.wait_reload();
  }
  const char* scheme = m.gateway->tls() ? "https" : "http";
  const char* api_scheme = m.gateway->api_tls() ? "https" : "http";
  m.log(fmt::format("gateway on {}://{}:{} , API on {}://{}:{} , {} gateway threads", scheme,
                    net::host_of(m.config.server.listen), port(), api_scheme,
                    net::host_of(m.config.server.api), api_port(), m.gateway_ctxs.size()));
  for (const std::string& line : m.gateway->describe_tls()) m.log(line);
  m.log(!m.admin->has_dashboard()
            ? fmt::format("no dashboard: no built files in {}",
                          m.options.web_dir.empty() ? "(none given)" : m.options.web_dir)
            : fmt::format("dashboard at {}://{}:{}/", api_scheme, net::host_of(m.config.server.api),
                          api_port()));
  for (const auto& ep : m.endpoints) {
    for (const auto& g : ep->spec().groups) {
      m.log(fmt::format("endpoint {} at /{}/ : group {} ({}, {}..{} replicas, concurrency {})",
                        ep->spec().name, ep->spec().name, g.name, g.provisioner.kind,
                        g.min_replicas, g.max_replicas, g.concurrency));
    }
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
