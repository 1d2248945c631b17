#include "tide/agent/agent.h"

#include <fcntl.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>

#include "tide/agent/nvml.h"
#include "tide/agent/report.h"
#include "tide/auth/keys.h"
#include "tide/common/errors.h"
#include "tide/metrics/load.h"
#include "tide/net/address.h"
#include "tide/net/error_body.h"
#include "tide/net/relay.h"
#include "tide/os/child_process.h"

namespace tide::agent {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::ip::tcp;
using boost::system::error_code;
using json = nlohmann::json;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kTailBytes = 16 * 1024;  // of each answer, searched for `usage`
constexpr Duration kCallTimeout = std::chrono::seconds(2);

using net::HostPort;

// "host:port" (localhost as 127.0.0.1: the agent connects to addresses, it resolves no names).
std::optional<HostPort> parse_host_port(std::string_view s) {
  auto hp = net::split_host_port(s);
  if (hp && hp->host == "localhost") hp->host = "127.0.0.1";
  return hp;
}

// "http://host:port" with an optional trailing slash.
std::optional<HostPort> parse_http_url(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme)) return std::nullopt;
  url.remove_prefix(kScheme.size());
  if (url.ends_with('/')) url.remove_suffix(1);
  if (url.find('/') != std::string_view::npos) return std::nullopt;
  return parse_host_port(url);
}

using net::error_body;

// A quantity integrated over time.
struct Integral {
  double value = 0;
  Time since{};
  double sum = 0;
  void set(double v, Time now) {
    sum += value * to_seconds(now - since);
    since = now;
    value = v;
  }
  // The integral since the last take, and start anew.
  double take(Time now) {
    set(value, now);
    const double s = sum;
    sum = 0;
    return s;
  }
};

// The number after "key": within `text`, if any.
std::optional<uint64_t> number_after(std::string_view text, std::string_view key) {
  const size_t at = text.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  size_t i = at + key.size();
  while (i < text.size() && (text[i] == ' ' || text[i] == ':' || text[i] == '\t')) ++i;
  uint64_t v = 0;
  size_t digits = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9' && digits < 15) {
    v = v * 10 + static_cast<uint64_t>(text[i++] - '0');
    ++digits;
  }
  if (digits == 0) return std::nullopt;
  return v;
}

// Token counts of the last OpenAI `usage` object in the end of an answer (a JSON body, or the
// last events of a stream).
struct Usage {
  uint64_t prompt = 0;
  uint64_t completion = 0;
};
std::optional<Usage> find_usage(std::string_view tail) {
  const size_t at = tail.rfind("\"usage\"");
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view obj = tail.substr(at, 400);
  if (const size_t close = obj.find('}'); close != std::string_view::npos)
    obj = obj.substr(0, close);
  const auto prompt = number_after(obj, "\"prompt_tokens\"");
  const auto completion = number_after(obj, "\"completion_tokens\"");
  if (!prompt && !completion) return std::nullopt;
  return Usage{prompt.value_or(0), completion.value_or(0)};
}

void log_to_stderr(const std::string& line) {
  const auto now = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
  std::fputs(fmt::format("{:%H:%M:%S} agent: {}\n", now, line).c_str(), stderr);
}

}  // namespace

std::vector<auth::PublicKey> parse_public_keys(const std::string& text) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  const json* list = &j;
  if (j.is_object() && j.contains("keys")) list = &j["keys"];
  if (!list->is_array()) throw std::runtime_error("keys: expected a list of public keys");
  std::vector<auth::PublicKey> keys;
  for (size_t i = 0; i < list->size(); ++i) {
    const json& k = (*list)[i];
    auth::PublicKey key;
    if (!k.is_object() || !k.contains("id") || !k["id"].is_string() || !k.contains("public_key") ||
        !k["public_key"].is_string())
      throw std::runtime_error(fmt::format("keys[{}]: expected {{\"id\", \"public_key\"}}", i));
    key.id = k["id"].get<std::string>();
    auto bytes = auth::from_base64url(k["public_key"].get<std::string>());
    if (!bytes || bytes->size() != 32)
      throw std::runtime_error(
          fmt::format("keys[{}].public_key: expected 32 bytes in base64url", i));
    key.bytes = std::move(*bytes);
    if (auto it = k.find("valid_until_ms"); it != k.end() && !it->is_null()) {
      if (!it->is_number_integer())
        throw std::runtime_error(fmt::format("keys[{}].valid_until_ms: expected an integer", i));
      key.valid_until = Time{std::chrono::milliseconds(it->get<int64_t>())};
    }
    keys.push_back(std::move(key));
  }
  return keys;
}

struct Agent::Impl : std::enable_shared_from_this<Impl> {
  explicit Impl(AgentOptions opts)
      : o(std::move(opts)), verifier(o.endpoint, o.replica_id, o.token) {}

  AgentOptions o;
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  HostPort upstream;
  std::optional<HostPort> control;
  std::string advertise;
  SteadyClock steady;
  SystemClock wall;
  auth::TokenVerifier verifier;
  std::unique_ptr<Nvml> nvml;
  std::vector<int> gpu_devices;
  metrics::LoadEstimator estimator;

  control::AgentState state = control::AgentState::kStarting;
  std::string detail = "waiting for the model server's first healthy answer";
  struct Waiter {
    explicit Waiter(asio::io_context& io) : timer(io, asio::steady_timer::time_point::max()) {}
    asio::steady_timer timer;
    bool granted = false;
  };
  std::deque<std::shared_ptr<Waiter>> waiters;
  int in_service = 0;
  int queued = 0;
  Integral in_service_time, queued_time, busy_time;
  Time interval_start{};
  // This interval.
  uint64_t arrivals = 0;
  uint64_t completions = 0;
  double work = 0;
  double service_sum = 0;  // seconds in service of the completions
  uint64_t tokens_in = 0;
  uint64_t tokens_out = 0;
  double latency_sum = 0;
  double latency_max = 0;
  // Since start.
  uint64_t total_requests = 0;
  uint64_t total_completed = 0;
  uint64_t total_rejected = 0;
  double total_work = 0;
  uint64_t seq = 0;
  bool control_away = false;

  asio::steady_timer report_timer{io};
  asio::steady_timer health_timer{io};
  asio::steady_timer key_timer{io};
  asio::steady_timer engine_timer{io};
  std::optional<metrics::EngineSignals> engine;  // as last read; reset by a failed read
  std::atomic<uint64_t> task_errors{0};          // exceptions that ended a detached task (logged)
  asio::signal_set signals{io};
  Time last_key_refresh = kTimeMin;
  bool refreshing = false;
  bool stopping = false;
  pid_t child = -1;
  int exit_status = 0;

  mutable std::mutex stats_mu;
  AgentCounters stats;

  // Every open connection, so that shutting down can close them all and let each coroutine end
  // by itself (run() then returns with nothing left pending).
  std::set<beast::tcp_stream*> streams;
  struct Tracked {
    Tracked(Impl& impl, beast::tcp_stream& stream) : m(impl), s(stream) {
      if (m.stopping) {
        error_code ignored;
        s.socket().close(ignored);
      }
      m.streams.insert(&s);
    }
    ~Tracked() { m.streams.erase(&s); }
    Tracked(const Tracked&) = delete;
    Tracked& operator=(const Tracked&) = delete;
    Impl& m;
    beast::tcp_stream& s;
  };

  template <class F>
  void stat(F f) {
    std::lock_guard lock(stats_mu);
    f(stats);
  }

  void log(const std::string& line) {
    if (o.log) {
      o.log(line);
    } else {
      log_to_stderr(line);
    }
  }
  // The end of a detached coroutine: an exception is logged and counted.
  TaskEnd task_end(std::string what) {
    return TaskEnd("agent: " + std::move(what), &task_errors,
                   [this](const std::string& line) { log(line); });
  }

  // ---- state and measures -----------------------------------------------------------------

  void set_state(control::AgentState s, std::string why) {
    if (s == state) return;
    state = s;
    detail = std::move(why);
    log(fmt::format("model server {}{}", state_name(s), detail.empty() ? "" : ": " + detail));
    stat([&](AgentCounters& c) { c.state = std::string(state_name(s)); });
    report_timer.cancel();  // report at once
  }

  void set_load(int in_service_now, int queued_now) {
    const Time now = steady.now();
    in_service_time.set(in_service_now, now);
    queued_time.set(queued_now, now);
    busy_time.set(in_service_now > 0 ? 1 : 0, now);
    in_service = in_service_now;
    queued = queued_now;
    stat([&](AgentCounters& c) {
      c.in_service = in_service;
      c.queued = queued;
    });
  }

  // Waits for a slot to the model server, FIFO.
  awaitable<bool> acquire_slot() {
    set_load(in_service, queued + 1);
    if (in_service < o.slots && waiters.empty()) {
      set_load(in_service + 1, queued - 1);
      co_return true;
    }
    auto w = std::make_shared<Waiter>(io);
    waiters.push_back(w);
    co_await w->timer.async_wait(kNoThrow);
    if (!w->granted) {  // shutting down
      std::erase(waiters, w);
      set_load(in_service, queued - 1);
      co_return false;
    }
    set_load(in_service, queued - 1);  // the slot was handed over: in_service already counts it
    co_return true;
  }

  void release_slot() {
    if (!waiters.empty()) {
      auto w = waiters.front();
      waiters.pop_front();
      w->granted = true;
      w->timer.cancel();
      return;
    }
    set_load(in_service - 1, queued);
  }

  void count_rejected(std::string_view reason) {
    ++total_rejected;
    stat([&](AgentCounters& c) { ++c.rejected[std::string(reason)]; });
  }

  AgentReport take_report() {
    const Time now = steady.now();
    const double seconds = std::max(1e-9, to_seconds(now - interval_start));
    AgentReport r;
    r.endpoint = o.endpoint;
    r.replica_id = o.replica_id;
    r.state = state;
    if (state != control::AgentState::kReady) r.detail = detail;
    r.address = advertise;
    r.seq = ++seq;
    r.slots = o.slots;
    r.interval_s = seconds;
    r.in_service = in_service;
    r.queued = queued;
    r.avg_in_service = in_service_time.take(now) / seconds;
    r.avg_queued = queued_time.take(now) / seconds;
    r.busy = std::clamp(busy_time.take(now) / seconds, 0.0, 1.0);
    r.arrivals = arrivals;
    r.completed = completions;
    r.work = work;
    r.work_unit = o.work_tokens ? "tokens" : "requests";
    r.tokens_in = tokens_in;
    r.tokens_out = tokens_out;
    if (completions > 0) {
      r.latency_mean_s = latency_sum / static_cast<double>(completions);
      r.latency_max_s = latency_max;
    }
    r.load = estimator.update({.seconds = seconds,
                               .slots = static_cast<double>(o.slots),
                               .avg_in_service = r.avg_in_service,
                               .avg_queued = r.avg_queued,
                               .arrivals = arrivals,
                               .completions = completions,
                               .work = work,
                               .service_s = service_sum});
    r.work_per_request = estimator.work_per_request();
    r.total_requests = total_requests;
    r.total_completed = total_completed;
    r.total_rejected = total_rejected;
    r.total_work = total_work;
    {
      std::lock_guard lock(stats_mu);
      r.reports_failed = stats.reports_failed;
    }
    if (nvml) {
      r.gpus = nvml->read(gpu_devices);
      stat([&](AgentCounters& c) { c.gpus = r.gpus; });
    }
    r.engine = engine;
    arrivals = completions = tokens_in = tokens_out = 0;
    work = service_sum = latency_sum = latency_max = 0;
    interval_start = now;
    return r;
  }

  // ---- HTTP client ------------------------------------------------------------------------

  struct CallResult {
    int status = 0;  // 0: no answer (see error)
    std::string body;
    std::string error;
  };

  awaitable<CallResult> call(const HostPort& to, http::verb verb, const std::string& target,
                             std::string body, const std::string& authorization, Duration timeout,
                             size_t body_limit = 1024 * 1024) {
    CallResult out;
    beast::tcp_stream s(io);
    Tracked tracked(*this, s);
    s.expires_after(timeout);
    tcp::resolver resolver(io);
    auto [rec, results] =
        co_await resolver.async_resolve(to.host, std::to_string(to.port), kNoThrow);
    if (rec) {
      out.error = fmt::format("resolve {}: {}", to.host, rec.message());
      co_return out;
    }
    auto [cec, ep] = co_await s.async_connect(results, kNoThrow);
    if (cec) {
      out.error = fmt::format("connect {}: {}", to.text(), cec.message());
      co_return out;
    }
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, to.text());
    req.set(http::field::user_agent, "tide-agent");
    if (!authorization.empty()) req.set(http::field::authorization, authorization);
    if (verb == http::verb::post) req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
    req.keep_alive(false);
    req.prepare_payload();
    auto [wec, wn] = co_await http::async_write(s, req, kNoThrow);
    if (wec) {
      out.error = fmt::format("send to {}: {}", to.text(), wec.message());
      co_return out;
    }
    beast::flat_buffer buf;
    http::response_parser<http::string_body> p;
    p.body_limit(body_limit);
    auto [ec, n] = co_await http::async_read(s, buf, p, kNoThrow);
    if (ec) {
      out.error = fmt::format("answer from {}: {}", to.text(), ec.message());
      co_return out;
    }
    out.status = static_cast<int>(p.get().result_int());
    out.body = std::move(p.get().body());
    error_code ignored;
    s.socket().shutdown(tcp::socket::shutdown_both, ignored);
    co_return out;
  }

  // ---- loops --------------------------------------------------------------------------------

  awaitable<void> health_loop(std::shared_ptr<Impl> self) {
    int failures = 0;
    while (!stopping) {
      const CallResult r =
          co_await call(upstream, http::verb::get, o.health_path, {}, {}, std::chrono::seconds(1));
      const bool ok = r.status >= 200 && r.status < 300;
      const std::string why =
          ok ? ""
             : (r.status != 0 ? fmt::format("{} answered {}", o.health_path, r.status) : r.error);
      if (ok) {
        failures = 0;
        set_state(control::AgentState::kReady, "");
      } else if (state == control::AgentState::kReady) {
        if (++failures >= o.unhealthy_after)
          set_state(control::AgentState::kUnhealthy,
                    fmt::format("{} failed health checks in a row, last: {}", failures, why));
      } else if (state == control::AgentState::kStarting) {
        detail = why;
      }
      health_timer.expires_after(state == control::AgentState::kReady ? std::chrono::seconds(1)
                                                                      : o.health_interval);
      co_await health_timer.async_wait(kNoThrow);
    }
    (void)self;
  }

  // Reads the model server's metrics page once: its figures, or why not.
  awaitable<metrics::EngineScan> read_engine() {
    const CallResult r = co_await call(upstream, http::verb::get, o.engine_path, {}, {},
                                       o.engine_timeout, o.engine_max_bytes);
    metrics::EngineScan scan;
    if (r.status == 200) {
      scan = metrics::read_engine_signals(r.body, o.engine_kind, o.engine_max_bytes);
    } else {
      scan.error = r.status != 0 ? fmt::format("{} answered {}", o.engine_path, r.status) : r.error;
    }
    co_return scan;
  }

  // Every engine_interval while the model server is ready. A failed read forgets the last
  // figures (reports go without them) and is logged once until a read succeeds again.
  awaitable<void> engine_loop(std::shared_ptr<Impl> self) {
    bool failing = false;
    while (!stopping && !o.engine_path.empty()) {
      engine_timer.expires_after(o.engine_interval);
      co_await engine_timer.async_wait(kNoThrow);
      if (stopping) break;
      if (state != control::AgentState::kReady) continue;
      const metrics::EngineScan scan = co_await read_engine();
      engine = scan.signals;
      stat([&](AgentCounters& c) {
        c.engine = scan.signals;
        c.engine_error = scan.error;
        if (!scan.signals) ++c.engine_reads_failed;
      });
      if (!scan.signals && !failing) log("cannot read the engine's metrics: " + scan.error);
      if (scan.signals && failing) log("the engine's metrics read again");
      failing = !scan.signals;
    }
    (void)self;
  }

  awaitable<void> report_loop(std::shared_ptr<Impl> self) {
    while (!stopping) {
      report_timer.expires_after(o.report_interval);
      co_await report_timer.async_wait(kNoThrow);  // cancelled: a state change, report now
      if (stopping) break;
      const AgentReport r = take_report();
      if (!control) continue;
      const CallResult res = co_await call(*control, http::verb::post, "/v1/agent/report",
                                           encode_report(r), "Bearer " + o.secret, kCallTimeout);
      if (res.status == 200) {
        stat([](AgentCounters& c) { ++c.reports_sent; });
        if (control_away) log("control plane reachable again: reports resume");
        control_away = false;
        continue;
      }
      stat([](AgentCounters& c) { ++c.reports_failed; });
      if (!control_away) {
        // Said once per absence; serving goes on meanwhile.
        log(fmt::format("report not taken: {}",
                        res.status != 0 ? fmt::format("{} {}", res.status, res.body) : res.error));
      }
      control_away = true;
    }
    (void)self;
  }

  awaitable<void> refresh_keys(bool on_demand) {
    const Time now = steady.now();
    if (!control || refreshing ||
        (on_demand && last_key_refresh != kTimeMin &&
         now - last_key_refresh < std::chrono::seconds(1)))
      co_return;
    refreshing = true;
    last_key_refresh = now;
    const CallResult r =
        co_await call(*control, http::verb::get, "/v1/pubkey", {}, {}, kCallTimeout);
    refreshing = false;
    if (r.status != 200) co_return;  // keep the keys we have
    try {
      std::vector<auth::PublicKey> keys = parse_public_keys(r.body);
      stat([&](AgentCounters& c) { c.keys = keys.size(); });
      verifier.set_keys(std::move(keys));
    } catch (const std::exception& e) {
      log(fmt::format("ignored the control plane's keys: {}", e.what()));
    }
  }

  awaitable<void> key_loop(std::shared_ptr<Impl> self) {
    while (!stopping) {
      co_await refresh_keys(false);
      key_timer.expires_after(o.key_refresh);
      co_await key_timer.async_wait(kNoThrow);
    }
    (void)self;
  }

  // ---- serving ------------------------------------------------------------------------------

  awaitable<bool> reply(beast::tcp_stream& s, unsigned version, bool keep, unsigned status,
                        std::string body, int retry_after = 0) {
    http::response<http::string_body> res{static_cast<http::status>(status), version};
    res.set(http::field::server, "tide-agent");
    res.set(http::field::content_type, "application/json");
    if (retry_after > 0) res.set(http::field::retry_after, std::to_string(retry_after));
    res.keep_alive(keep);
    res.body() = std::move(body);
    res.prepare_payload();
    s.expires_after(o.read_timeout);
    auto [ec, n] = co_await http::async_write(s, res, kNoThrow);
    co_return !ec && keep;
  }

  awaitable<bool> refuse(beast::tcp_stream& s, unsigned version, bool keep, unsigned status,
                         std::string_view reason, std::string_view message, int retry_after = 0) {
    count_rejected(reason);
    co_return co_await reply(s, version, keep, status, error_body(reason, message), retry_after);
  }

  // Releases the slot however the request ends.
  struct SlotGuard {
    Impl* impl;
    ~SlotGuard() { impl->release_slot(); }
  };

  // Admits the request (replica secret or route token, and a ready model server): nullopt, with
  // the admission counted, or the refusal's result. Takes the admission headers out of `req`.
  awaitable<std::optional<bool>> admit(beast::tcp_stream& client,
                                       http::request<http::string_body>& req) {
    const unsigned version = req.version();
    const bool keep = req.keep_alive();
    const std::string token(req["Tide-Route-Token"]);
    const std::string secret(req["Tide-Replica-Secret"]);
    req.erase("Tide-Route-Token");
    req.erase("Tide-Replica-Secret");
    bool via_gateway = false;
    if (!secret.empty()) {
      if (!auth::secrets_equal(secret, o.secret))
        co_return co_await refuse(client, version, keep, 401, "bad_secret",
                                  "Tide-Replica-Secret does not match this replica");
      via_gateway = true;
    } else {
      if (!token.empty() && verifier.unknown_key(token)) co_await refresh_keys(true);
      const auth::Verdict v = verifier.verify(token, wall.now());
      if (!v.ok)
        co_return co_await refuse(client, version, keep,
                                  static_cast<unsigned>(auth::rejection_status(v.reason)),
                                  auth::rejection_name(v.reason), v.message);
    }
    if (state != control::AgentState::kReady)
      co_return co_await refuse(
          client, version, keep, 503, "not_ready",
          fmt::format("the model server is {}: {}", state_name(state), detail), 1);
    stat([&](AgentCounters& c) { ++(via_gateway ? c.admitted_gateway : c.admitted_token); });
    co_return std::nullopt;
  }

  // Proxies one request to the model server: admission, a slot, then the exchange relayed to
  // the client and measured. Returns whether the client connection may carry another.
  awaitable<bool> proxy(beast::tcp_stream& client, http::request<http::string_body> req) {
    const unsigned version = req.version();
    const bool keep = req.keep_alive();
    if (const std::optional<bool> refused = co_await admit(client, req)) co_return *refused;
    const Time arrived = steady.now();
    ++arrivals;
    ++total_requests;
    if (!co_await acquire_slot())
      co_return co_await reply(client, version, false, 503,
                               error_body("shutting_down", "the agent is stopping"));
    SlotGuard guard{this};
    const Time started = steady.now();

    beast::tcp_stream up(io);
    Tracked tracked(*this, up);
    up.expires_after(o.upstream_timeout);
    tcp::endpoint target(asio::ip::make_address(upstream.host), upstream.port);
    auto [cec] = co_await up.async_connect(target, kNoThrow);
    error_code hec = cec;
    beast::flat_buffer upbuf;
    http::response_parser<http::buffer_body> p;
    p.body_limit(boost::none);
    if (!hec) {
      req.set(http::field::host, upstream.text());
      req.keep_alive(false);
      req.prepare_payload();
      if (req.method() == http::verb::head) p.skip(true);
      std::tie(hec, std::ignore) = co_await http::async_write(up, req, kNoThrow);
    }
    if (!hec) std::tie(hec, std::ignore) = co_await http::async_read_header(up, upbuf, p, kNoThrow);
    if (hec) {
      stat([](AgentCounters& c) { ++c.upstream_errors; });
      std::string why = fmt::format("model server at {}: {}", upstream.text(), hec.message());
      co_return co_await reply(client, version, keep, 502,
                               error_body(cec ? "upstream_unreachable" : "upstream_failed", why));
    }
    const net::RelayHead head = net::prepare_relay_head(p, version, keep);
    auto& msg = p.get();
    msg.keep_alive(head.keep);
    std::string tail;
    client.expires_never();
    bool sent_any = false;
    const net::RelayEnd end = co_await net::relay_body(
        up, upbuf, p, client, head.delimited_by_close, sent_any,
        [&](const char* data, size_t size) {
          tail.append(data, size);
          if (tail.size() > 2 * kTailBytes) tail.erase(0, tail.size() - kTailBytes);
        },
        [&] { client.expires_after(o.upstream_timeout); });
    if (end.side == net::RelayEnd::kUpstream) {
      stat([](AgentCounters& c) { ++c.upstream_errors; });
      co_return false;  // the client sees its answer cut short
    }
    // The client went away; dropping `up` tells the model server.
    if (end.side == net::RelayEnd::kClient) co_return false;
    measure(arrived, started, msg.result_int(), tail);
    co_return head.keep;
  }

  // Counts a completed request: its latency (from `arrived`), service time (from `started`)
  // and work (its tokens, from the `usage` in the answer's `tail`, with work_tokens).
  void measure(Time arrived, Time started, unsigned status, const std::string& tail) {
    const double latency = to_seconds(steady.now() - arrived);
    double w = 1;
    if (o.work_tokens && status < 300) {
      if (const auto usage = find_usage(tail)) {
        tokens_in += usage->prompt;
        tokens_out += usage->completion;
        w = std::max<double>(1, static_cast<double>(usage->prompt + usage->completion));
      }
    }
    ++completions;
    ++total_completed;
    work += w;
    total_work += w;
    service_sum += to_seconds(steady.now() - started);
    latency_sum += latency;
    latency_max = std::max(latency_max, latency);
    stat([](AgentCounters& c) { ++c.completed; });
  }

  awaitable<void> session(tcp::socket sock, std::shared_ptr<Impl> self) {
    beast::tcp_stream s(std::move(sock));
    Tracked tracked(*this, s);
    beast::flat_buffer buf;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(16 * 1024);
      parser.body_limit(static_cast<uint64_t>(o.max_body_bytes));
      s.expires_after(o.read_timeout);
      auto [ec, n] = co_await http::async_read(s, buf, parser, kNoThrow);
      if (ec == http::error::body_limit) {
        co_await reply(s, 11, false, 413, error_body("body_too_large", "request body too large"));
        break;
      }
      if (ec == http::error::header_limit) {
        co_await reply(s, 11, false, 431, error_body("header_too_large", "request head too large"));
        break;
      }
      if (ec) break;
      http::request<http::string_body> req = parser.release();
      const std::string_view target(req.target().data(), req.target().size());
      bool go_on = false;
      if (target == "/tide/health") {
        // (Built outside co_await: GCC 12 cannot keep an initializer list across a suspension.)
        const bool ready = state == control::AgentState::kReady;
        std::string health = health_json();
        go_on = co_await reply(s, req.version(), req.keep_alive(), ready ? 200 : 503,
                               std::move(health));
      } else if (target == "/tide/status") {
        go_on = co_await reply(s, req.version(), req.keep_alive(), 200, status_json());
      } else {
        go_on = co_await proxy(s, std::move(req));
      }
      if (!go_on) break;
    }
    error_code ignored;
    s.socket().shutdown(tcp::socket::shutdown_send, ignored);
    (void)self;
  }

  std::string health_json() const {
    return json{{"state", state_name(state)}, {"detail", detail}}.dump();
  }

  std::string status_json() {
    const AgentCounters c = snapshot();
    return json{{"endpoint", o.endpoint},
                {"replica_id", o.replica_id},
                {"state", c.state},
                {"admitted", {{"token", c.admitted_token}, {"gateway", c.admitted_gateway}}},
                {"rejected", c.rejected},
                {"completed", c.completed},
                {"in_service", c.in_service},
                {"queued", c.queued},
                {"upstream_errors", c.upstream_errors},
                {"reports", {{"sent", c.reports_sent}, {"failed", c.reports_failed}}},
                {"keys", c.keys},
                {"gpu", c.gpu},
                {"gpus", gpus_json(c.gpus)},
                {"engine", c.engine ? engine_json(*c.engine) : json(nullptr)},
                {"engine_error", c.engine_error}}
        .dump();
  }

  AgentCounters snapshot() const {
    std::lock_guard lock(stats_mu);
    return stats;
  }

  awaitable<void> accept_loop(std::shared_ptr<Impl> self) {
    while (!stopping) {
      auto [ec, sock] = co_await acceptor.async_accept(kNoThrow);
      if (ec) {
        if (stopping || ec == asio::error::operation_aborted) break;
        if (ec == asio::error::no_descriptors) {  // pause rather than spin until one frees
          asio::steady_timer pause(io, std::chrono::milliseconds(100));
          co_await pause.async_wait(kNoThrow);
        }
        continue;
      }
      sock.set_option(tcp::no_delay(true), ec);
      asio::co_spawn(io, session(std::move(sock), self), task_end("a connection"));
    }
  }

  // ---- the model server as a child ----------------------------------------------------------

  void spawn_child() {
    // The replica secret admits the gateway at this agent: the model server has no use for it.
    ::unsetenv("TIDE_AGENT_SECRET");
    os::ChildSpec spec(o.command.front(), o.command);
    spec.die_with_parent = true;
    spec.close_other_fds = true;
    const os::StartedChild c = os::start_child(spec);
    if (c.pid < 0) throw std::runtime_error(fmt::format("{}: {}", c.step, std::strerror(c.error)));
    // A program that could not start has exited (127): SIGCHLD stops the agent, as for any exit.
    if (c.error != 0)
      std::fprintf(stderr, "agent: cannot run %s: %s\n", o.command.front().c_str(),
                   std::strerror(c.error));
    child = c.pid;
    log(fmt::format("started the model server (pid {}): {}", c.pid, fmt::join(o.command, " ")));
  }

  void watch_signals(std::shared_ptr<Impl> self) {
    signals.async_wait([this, self](const error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGCHLD) {
        int st = 0;
        if (child > 0 && ::waitpid(child, &st, WNOHANG) == child) {
          child = -1;
          exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
          log(fmt::format("the model server exited ({}): stopping",
                          WIFEXITED(st) ? fmt::format("status {}", WEXITSTATUS(st))
                                        : fmt::format("signal {}", WTERMSIG(st))));
          shut_down();
          return;
        }
      } else {
        log(fmt::format("signal {}: stopping", sig));
        if (child > 0) {
          ::kill(child, SIGTERM);  // and stop once it has exited
        } else {
          shut_down();
          return;
        }
      }
      watch_signals(self);
    });
  }

  void shut_down() {
    if (stopping) return;
    stopping = true;
    error_code ignored;
    acceptor.close(ignored);
    report_timer.cancel();
    health_timer.cancel();
    key_timer.cancel();
    engine_timer.cancel();
    signals.cancel(ignored);
    for (auto& w : waiters) w->timer.cancel();
    for (beast::tcp_stream* st : streams) st->socket().close(ignored);
  }
};

Agent::Agent(AgentOptions options) : impl_(std::make_shared<Impl>(std::move(options))) {
  Impl& m = *impl_;
  const AgentOptions& o = m.o;
  if (o.endpoint.empty()) throw std::runtime_error("--endpoint: required");
  if (o.replica_id == 0) throw std::runtime_error("--replica-id: required (>= 1)");
  if (o.secret.size() < 16)
    throw std::runtime_error(
        "the replica secret (TIDE_AGENT_SECRET) must be at least 16 characters");
  if (o.slots < 1) throw std::runtime_error("--slots: must be >= 1");
  if (o.report_interval <= Duration{0}) throw std::runtime_error("--report-interval: must be > 0");
  auto up = parse_host_port(o.upstream);
  if (!up)
    throw std::runtime_error(fmt::format("--upstream: expected host:port, got \"{}\"", o.upstream));
  error_code ec;
  asio::ip::make_address(up->host, ec);
  if (ec) throw std::runtime_error(fmt::format("--upstream: {} is not an IP address", up->host));
  m.upstream = *up;
  if (!o.control.empty()) {
    m.control = parse_http_url(o.control);
    if (!m.control)
      throw std::runtime_error(
          fmt::format("--control: expected http://host:port, got \"{}\"", o.control));
  }
  auto listen = parse_host_port(o.listen);
  if (!listen)
    throw std::runtime_error(fmt::format("--listen: expected host:port, got \"{}\"", o.listen));
  const auto addr = asio::ip::make_address(listen->host, ec);
  if (ec) throw std::runtime_error(fmt::format("--listen: {} is not an IP address", listen->host));
  tcp::endpoint ep(addr, listen->port);
  m.acceptor.open(ep.protocol(), ec);
  if (!ec) m.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) m.acceptor.bind(ep, ec);
  if (!ec) m.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error(fmt::format("cannot listen on {}: {}", o.listen, ec.message()));
  m.advertise = o.advertise.empty() ? fmt::format("{}:{}", listen->host, port()) : o.advertise;
  m.verifier.set_keys(o.keys);
  std::string why;
  m.nvml = Nvml::open(o.nvml_library, why);
  if (m.nvml) m.gpu_devices = visible_devices(std::getenv("CUDA_VISIBLE_DEVICES"));
  m.stats.state = "starting";
  m.stats.keys = o.keys.size();
  m.stats.gpu = m.nvml != nullptr;
  if (!m.nvml) m.log(fmt::format("no GPU readings: {}", why));
}

Agent::~Agent() {
  Impl& m = *impl_;
  if (m.child > 0) {
    ::kill(m.child, SIGKILL);
    ::waitpid(m.child, nullptr, 0);
    m.child = -1;
  }
}

uint16_t Agent::port() const { return impl_->acceptor.local_endpoint().port(); }

int Agent::run() {
  Impl& m = *impl_;
  auto self = impl_;
  m.signals.add(SIGCHLD);
  if (m.o.handle_signals) {
    m.signals.add(SIGINT);
    m.signals.add(SIGTERM);
  }
  if (!m.o.command.empty()) m.spawn_child();
  const Time now = m.steady.now();
  m.interval_start = now;
  m.in_service_time.since = m.queued_time.since = m.busy_time.since = now;
  m.log(fmt::format("replica {} of {} on {} (slots {}), model server {}, control {}",
                    m.o.replica_id, m.o.endpoint, m.advertise, m.o.slots, m.upstream.text(),
                    m.control ? m.control->text() : "none"));
  m.watch_signals(self);
  asio::co_spawn(m.io, m.accept_loop(self), m.task_end("the accept loop"));
  asio::co_spawn(m.io, m.health_loop(self), m.task_end("the health loop"));
  asio::co_spawn(m.io, m.report_loop(self), m.task_end("the report loop"));
  asio::co_spawn(m.io, m.key_loop(self), m.task_end("the key loop"));
  asio::co_spawn(m.io, m.engine_loop(self), m.task_end("the engine metrics loop"));
  m.io.run();
  if (m.child > 0) {  // stopped from outside: the model server goes too
    ::kill(m.child, SIGTERM);
    int st = 0;
    ::waitpid(m.child, &st, 0);
    m.child = -1;
  }
  return m.exit_status;
}

void Agent::stop() {
  asio::post(impl_->io, [m = impl_] { m->shut_down(); });
}

AgentCounters Agent::counters() const { return impl_->snapshot(); }

}  // namespace tide::agent
