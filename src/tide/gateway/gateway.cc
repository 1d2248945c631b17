#include "tide/gateway/gateway.h"

#include <fmt/format.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <unordered_map>

namespace tide::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::ip::tcp;
using boost::system::error_code;
using control::Dispatch;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
// Responses with a known length up to this are read whole and written in one go; longer ones,
// and every chunked or close-delimited one (SSE token streams), are relayed piece by piece.
constexpr uint64_t kWholeBodyLimit = 1 << 20;
constexpr size_t kPoolPerAddress = 512;

using Request = http::request<http::string_body>;

struct Counters {
  std::atomic<uint64_t> requests{0}, ok{0}, r429{0}, r503{0}, r502{0}, r504{0}, r404{0}, bad{0},
      retries{0}, client_gone{0}, upstream_errors{0};
};

bool parse_host_port(const std::string& hp, std::string& host, uint16_t& port) {
  const size_t colon = hp.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  host = hp.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned long p = 0;
  try {
    size_t used = 0;
    p = std::stoul(hp.substr(colon + 1), &used);
    if (used != hp.size() - colon - 1) return false;
  } catch (const std::exception&) {
    return false;
  }
  if (p > 65535) return false;
  port = static_cast<uint16_t>(p);
  return true;
}

// Fields that describe one hop, not the message (RFC 9110 7.6.1).
void strip_hop_by_hop(http::fields& f) {
  for (auto field : {http::field::connection, http::field::keep_alive,
                     http::field::proxy_connection, http::field::te, http::field::trailer,
                     http::field::upgrade, http::field::proxy_authorization}) {
    f.erase(field);
  }
}

std::string error_body(std::string_view type, std::string_view message) {
  nlohmann::json j = {{"error", {{"type", type}, {"message", message}}}};
  return j.dump();
}

// A connection to a replica, with the bytes read past the last response.
struct Upstream {
  explicit Upstream(const asio::any_io_executor& ex) : stream(ex) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
};

// A held request's wake-up: LiveEndpoint calls wake() under its lock from any thread; the
// outcome is handed to the request's own thread. The coroutine that owns it never leaves before
// the outcome arrives or cancel() succeeded, so `this` outlives the posted handler.
struct HeldWait final : control::Waiter {
  explicit HeldWait(const asio::any_io_executor& ex) : timer(ex) {}
  asio::steady_timer timer;
  std::optional<Dispatch> outcome;
  void wake(const Dispatch& d) override {
    asio::post(timer.get_executor(), [this, d] {
      outcome = d;
      timer.cancel();
    });
  }
};

// Watches a client connection for EOF while its request waits or is proxied, so that a client
// that goes away releases its place in the queue or its replica slot at once.
struct ClientWatch {
  bool active = true;
  bool gone = false;
  tcp::socket* client = nullptr;
  asio::steady_timer* timer = nullptr;  // cancelled when the client goes
  Upstream* upstream = nullptr;         // closed when the client goes
};

// How sending a started request to its replica ended.
enum class Relay {
  kDone,             // answered (whatever status the replica chose)
  kReplicaFailed,    // nothing received: connect refused, reset, closed
  kClientGone,       // the client went away
  kUpstreamTimeout,  // server.upstream_timeout passed
  kAborted,          // cut midway (client write failed, or replica died after sending bytes)
};

}  // namespace

struct Gateway::Impl {
  struct Worker {
    asio::io_context* ctx;
    std::unique_ptr<tcp::acceptor> acceptor;
    std::unique_ptr<tcp::acceptor> api_acceptor;
    std::unordered_map<std::string, std::vector<std::unique_ptr<Upstream>>> pool;
    std::unordered_map<std::string, tcp::endpoint> resolved;
  };

  config::ServerSpec server;
  std::vector<control::LiveEndpoint*> endpoints;
  ApiHandler api;
  std::vector<std::unique_ptr<Worker>> workers;
  uint16_t listen_port = 0;
  uint16_t api_listen_port = 0;
  std::atomic<int> active{0};
  std::atomic<uint64_t> next_request{1};
  std::atomic<bool> accepting{true};
  Counters counters;

  std::unique_ptr<tcp::acceptor> bind(asio::io_context& ctx, const std::string& address,
                                      uint16_t port_override, bool reuse_port) {
    std::string host;
    uint16_t p = 0;
    if (!parse_host_port(address, host, p))
      throw std::runtime_error(fmt::format("cannot listen on {}: expected host:port", address));
    if (port_override != 0) p = port_override;
    error_code ec;
    const auto ip = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot listen on {}: {}", address, ec.message()));
    auto acc = std::make_unique<tcp::acceptor>(ctx);
    const tcp::endpoint ep(ip, p);
    acc->open(ep.protocol(), ec);
    if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && reuse_port)
      acc->set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot listen on {}: {}", address, ec.message()));
    return acc;
  }

  awaitable<void> accept_loop(Worker& w, tcp::acceptor& acc, bool is_api) {
    for (;;) {
      auto [ec, sock] = co_await acc.async_accept(kNoThrow);
      if (ec) {
        if (ec == asio::error::operation_aborted || !acc.is_open()) co_return;
        continue;  // EMFILE and friends: keep serving the connections we have
      }
      sock.set_option(tcp::no_delay(true), ec);
      asio::co_spawn(*w.ctx, session(w, std::move(sock), is_api), asio::detached);
    }
  }

  awaitable<bool> write_simple(beast::tcp_stream& client, unsigned version, bool keep_alive,
                               http::status status, std::string body,
                               std::string_view content_type = "application/json",
                               int retry_after = 0) {
    http::response<http::string_body> res{status, version};
    res.set(http::field::server, "tide");
    res.set(http::field::content_type, content_type);
    if (retry_after > 0) res.set(http::field::retry_after, std::to_string(retry_after));
    res.body() = std::move(body);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    client.expires_after(server.read_timeout);
    auto [ec, n] = co_await http::async_write(client, res, kNoThrow);
    co_return !ec && keep_alive;
  }

  awaitable<void> session(Worker& w, tcp::socket sock, bool is_api) {
    beast::tcp_stream client(std::move(sock));
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<uint32_t>(server.max_header_bytes));
      parser.body_limit(static_cast<uint64_t>(server.max_body_bytes));
      // Idle: wait for the first byte of the next request.
      if (buffer.size() == 0) {
        client.expires_after(server.idle_timeout);
        auto [ec, n] = co_await client.async_read_some(buffer.prepare(4096), kNoThrow);
        if (ec) co_return;  // closed, reset or idle too long
        buffer.commit(n);
      }
      // Reading: the rest of the request within read_timeout.
      client.expires_after(server.read_timeout);
      auto [ec, n] = co_await http::async_read(client, buffer, parser, kNoThrow);
      if (ec) {
        http::status status = http::status::bad_request;
        std::string type = "bad_request";
        std::string message = ec.message();
        if (ec == http::error::header_limit) {
          status = http::status::request_header_fields_too_large;
          type = "header_too_large";
          message = fmt::format("request headers exceed {} bytes (server.max_header_bytes)",
                                server.max_header_bytes);
        } else if (ec == http::error::body_limit) {
          status = http::status::payload_too_large;
          type = "body_too_large";
          message = fmt::format("request body exceeds {} bytes (server.max_body_bytes)",
                                server.max_body_bytes);
        } else if (ec == beast::error::timeout) {
          status = http::status::request_timeout;
          type = "request_timeout";
          message = fmt::format("request not received within {} (server.read_timeout)",
                                format_duration(server.read_timeout));
        } else if (ec == http::error::end_of_stream || ec == asio::error::eof ||
                   ec == asio::error::connection_reset) {
          co_return;
        }
        ++counters.bad;
        co_await write_simple(client, 11, false, status, error_body(type, message));
        co_return;
      }
      Request req = parser.release();
      const bool keep = req.keep_alive() && accepting.load(std::memory_order_relaxed);
      bool go_on = false;
      if (is_api) {
        go_on = co_await serve_api(client, req, keep);
      } else {
        ++active;
        go_on = co_await proxy(w, client, req, keep);
        --active;
      }
      if (!go_on) {
        error_code ignored;
        client.socket().shutdown(tcp::socket::shutdown_send, ignored);
        co_return;
      }
    }
  }

  awaitable<bool> serve_api(beast::tcp_stream& client, Request& req, bool keep) {
    ApiRequest a;
    a.method = std::string(req.method_string());
    a.target = std::string(req.target());
    a.body = std::move(req.body());
    a.authorization = std::string(req[http::field::authorization]);
    ApiResponse r =
        api ? api(a) : ApiResponse{404, "application/json", error_body("not_found", "")};
    co_return co_await write_simple(client, req.version(), keep,
                                    static_cast<http::status>(r.status), std::move(r.body),
                                    r.content_type);
  }

  // Which endpoint a request is for, and the target to send upstream.
  control::LiveEndpoint* route(const Request& req, std::string& target) {
    const std::string_view t = req.target();
    if (auto h = req.find("Tide-Endpoint"); h != req.end()) {
      for (auto* ep : endpoints) {
        if (ep->spec().name == h->value()) {
          target = std::string(t);
          return ep;
        }
      }
      return nullptr;
    }
    if (t.empty() || t.front() != '/') return nullptr;
    const size_t end = t.find_first_of("/?", 1);
    const std::string_view name = t.substr(1, end == std::string_view::npos ? t.npos : end - 1);
    for (auto* ep : endpoints) {
      if (ep->spec().name != name) continue;
      if (end == std::string_view::npos) {
        target = "/";
      } else if (t[end] == '?') {
        target = "/" + std::string(t.substr(end));
      } else {
        target = std::string(t.substr(end));
      }
      return ep;
    }
    return nullptr;
  }

  // Waits for a held request's outcome, its deadline, or its client going away.
  awaitable<Dispatch> wait_held(control::LiveEndpoint& ep, dispatch::RequestId id, HeldWait& wait,
                                ClientWatch& watch) {
    wait.timer.expires_after(ep.spec().queue.timeout);
    for (;;) {
      auto [ec] = co_await wait.timer.async_wait(kNoThrow);
      if (wait.outcome) co_return *wait.outcome;
      if (ec != asio::error::operation_aborted || watch.gone) {
        // Deadline passed or the client went away: withdraw it, unless it was just started.
        if (ep.cancel(id)) {
          Dispatch d;
          d.kind = Dispatch::Kind::kTimedOut;
          co_return d;
        }
        wait.timer.expires_at(asio::steady_timer::time_point::max());
      }
    }
  }

  void arm_watch(beast::tcp_stream& client, const std::shared_ptr<ClientWatch>& watch) {
    watch->client = &client.socket();
    client.socket().async_wait(tcp::socket::wait_read, [watch](error_code ec) {
      if (ec || !watch->active) return;
      error_code aec;
      if (watch->client->available(aec) > 0 && !aec) return;  // a pipelined request, not EOF
      watch->gone = true;
      if (watch->timer != nullptr) watch->timer->cancel();
      if (watch->upstream != nullptr) {
        error_code ignored;
        watch->upstream->stream.socket().close(ignored);
      }
    });
  }

  void disarm_watch(beast::tcp_stream& client, ClientWatch& watch) {
    watch.active = false;
    watch.timer = nullptr;
    watch.upstream = nullptr;
    error_code ignored;
    client.socket().cancel(ignored);
  }

  std::unique_ptr<Upstream> take_pooled(Worker& w, const std::string& address) {
    auto it = w.pool.find(address);
    if (it == w.pool.end() || it->second.empty()) return nullptr;
    auto up = std::move(it->second.back());
    it->second.pop_back();
    return up;
  }

  void give_back(Worker& w, const std::string& address, std::unique_ptr<Upstream> up) {
    auto& v = w.pool[address];
    if (v.size() < kPoolPerAddress) v.push_back(std::move(up));
  }

  awaitable<error_code> connect(Worker& w, Upstream& up, const std::string& address) {
    tcp::endpoint target;
    if (auto it = w.resolved.find(address); it != w.resolved.end()) {
      target = it->second;
    } else {
      std::string host;
      uint16_t port = 0;
      if (!parse_host_port(address, host, port)) co_return asio::error::invalid_argument;
      error_code ec;
      auto ip = asio::ip::make_address(host, ec);
      if (ec) {
        tcp::resolver resolver(*w.ctx);
        auto [rec, results] = co_await resolver.async_resolve(host, std::to_string(port), kNoThrow);
        if (rec || results.empty()) co_return rec ? rec : asio::error::host_not_found;
        target = results.begin()->endpoint();
      } else {
        target = tcp::endpoint(ip, port);
      }
      w.resolved[address] = target;
    }
    up.stream.expires_after(std::chrono::seconds(5));
    auto [ec] = co_await up.stream.async_connect(target, kNoThrow);
    if (!ec) up.stream.socket().set_option(tcp::no_delay(true), ec);
    co_return ec;
  }

  // Proxies one request; returns whether the client connection may carry another.
  awaitable<bool> proxy(Worker& w, beast::tcp_stream& client, Request& req, bool keep) {
    ++counters.requests;
    const unsigned version = req.version();
    std::string target;
    control::LiveEndpoint* ep = route(req, target);
    if (ep == nullptr) {
      ++counters.r404;
      std::string known;
      for (auto* e : endpoints) known += (known.empty() ? "" : ", ") + e->spec().name;
      co_return co_await write_simple(
          client, version, keep, http::status::not_found,
          error_body("unknown_endpoint",
                     fmt::format("no endpoint for {}; endpoints: {} (path /<endpoint>/... or "
                                 "header Tide-Endpoint)",
                                 std::string(req.target()), known)));
    }
    // The request as the replica sees it.
    req.target(target);
    strip_hop_by_hop(req.base());
    req.keep_alive(true);
    req.prepare_payload();

    const int groups = static_cast<int>(ep->spec().groups.size());
    auto watch = std::make_shared<ClientWatch>();
    arm_watch(client, watch);
    HeldWait wait(client.get_executor());
    int retries_left = 1;
    std::string last_error;
    for (;;) {
      const dispatch::RequestId id = next_request.fetch_add(1, std::memory_order_relaxed);
      const int group = groups == 1 ? 0 : static_cast<int>(id % static_cast<uint64_t>(groups));
      Dispatch d = ep->submit(id, group, &wait);
      if (d.kind == Dispatch::Kind::kQueued) {
        wait.outcome.reset();
        watch->timer = &wait.timer;
        d = co_await wait_held(*ep, id, wait, *watch);
        watch->timer = nullptr;
      }
      if (watch->gone) {
        if (d.kind == Dispatch::Kind::kStarted) ep->finish(d);
        ++counters.client_gone;
        disarm_watch(client, *watch);
        co_return false;
      }
      switch (d.kind) {
        case Dispatch::Kind::kStarted:
          break;
        case Dispatch::Kind::kLost:
          continue;  // it waited at a replica that failed: submit again
        case Dispatch::Kind::kQueueFull:
          ++counters.r429;
          disarm_watch(client, *watch);
          co_return co_await write_simple(
              client, version, keep, http::status::too_many_requests,
              error_body("queue_full",
                         fmt::format("endpoint {} holds {} requests already (queue.max_length)",
                                     ep->spec().name, ep->spec().queue.max_length)),
              "application/json", 1);
        case Dispatch::Kind::kNoReplica: {
          const int status =
              ep->spec().groups[static_cast<size_t>(group)].scaling.admission.reject_status;
          (status == 502 ? counters.r502 : counters.r503)++;
          disarm_watch(client, *watch);
          co_return co_await write_simple(
              client, version, keep, static_cast<http::status>(status),
              error_body("no_replica", fmt::format("endpoint {} has no ready replica and this "
                                                   "group does not hold requests",
                                                   ep->spec().name)),
              "application/json", ep->retry_after_s(group));
        }
        case Dispatch::Kind::kTimedOut:
          ++counters.r503;
          disarm_watch(client, *watch);
          co_return co_await write_simple(
              client, version, keep, http::status::service_unavailable,
              error_body("queue_timeout",
                         fmt::format("no replica of endpoint {} could take the request within {} "
                                     "(queue.timeout)",
                                     ep->spec().name, format_duration(ep->spec().queue.timeout))),
              "application/json", ep->retry_after_s(group));
        case Dispatch::Kind::kShutdown:
        case Dispatch::Kind::kQueued:
          ++counters.r503;
          disarm_watch(client, *watch);
          co_return co_await write_simple(client, version, false, http::status::service_unavailable,
                                          error_body("shutting_down", "tide is shutting down"),
                                          "application/json", 1);
      }

      // Started on a replica: send it.
      Relay result = Relay::kDone;
      bool sent_any = false;
      bool client_ok = true;
      bool reusable = false;
      std::unique_ptr<Upstream> up = take_pooled(w, d.address);
      bool fresh = up == nullptr;
      for (int attempt = 0;; ++attempt) {
        if (up == nullptr) {
          up = std::make_unique<Upstream>(client.get_executor());
          fresh = true;
          if (error_code ec = co_await connect(w, *up, d.address)) {
            last_error = fmt::format("connect to {}: {}", d.address, ec.message());
            result = Relay::kReplicaFailed;
            break;
          }
        }
        watch->upstream = up.get();
        up->stream.expires_after(server.upstream_timeout);
        req.set(http::field::host, d.address);
        auto [wec, wn] = co_await http::async_write(up->stream, req, kNoThrow);
        http::response_parser<http::empty_body> head;
        head.body_limit(boost::none);
        error_code rec = wec;
        if (!wec) {
          auto [hec, hn] = co_await http::async_read_header(up->stream, up->buffer, head, kNoThrow);
          rec = hec;
        }
        if (!rec) {
          result = co_await relay(client, *up, head, version, keep, d, *ep, *watch, sent_any,
                                  client_ok, reusable, last_error);
          break;
        }
        if (watch->gone) {
          result = Relay::kClientGone;
          break;
        }
        if (rec == beast::error::timeout) {
          result = Relay::kUpstreamTimeout;
          break;
        }
        // A pooled connection may have been closed by the replica while idle: try a new one.
        if (!fresh && attempt == 0) {
          up.reset();
          continue;
        }
        last_error = fmt::format("{} before any response byte: {}", d.address, rec.message());
        result = Relay::kReplicaFailed;
        break;
      }
      watch->upstream = nullptr;
      if (result == Relay::kDone && reusable) give_back(w, d.address, std::move(up));

      switch (result) {
        case Relay::kDone: {
          ep->finish(d);
          ++counters.ok;
          disarm_watch(client, *watch);
          co_return client_ok&& keep;
        }
        case Relay::kClientGone:
        case Relay::kAborted:
          ep->finish(d);
          ++counters.client_gone;
          disarm_watch(client, *watch);
          co_return false;
        case Relay::kUpstreamTimeout:
          ep->finish(d);
          ++counters.r504;
          disarm_watch(client, *watch);
          if (sent_any) co_return false;
          co_return co_await write_simple(
              client, version, false, http::status::gateway_timeout,
              error_body(
                  "upstream_timeout",
                  fmt::format("replica {} did not answer within {} (server.upstream_timeout)",
                              d.address, format_duration(server.upstream_timeout))));
        case Relay::kReplicaFailed:
          ++counters.upstream_errors;
          ep->unreachable(d, last_error);
          if (sent_any) {
            disarm_watch(client, *watch);
            co_return false;  // part of the answer went out: nothing honest can follow
          }
          if (retries_left-- > 0) {
            ++counters.retries;
            continue;
          }
          ++counters.r502;
          disarm_watch(client, *watch);
          co_return co_await write_simple(
              client, version, keep, http::status::bad_gateway,
              error_body("replica_failed",
                         fmt::format("the replicas given this request failed before answering: {}",
                                     last_error)));
      }
    }
  }

  // Sends the replica's answer to the client: whole when short and sized, else as it comes.
  awaitable<Relay> relay(beast::tcp_stream& client, Upstream& up,
                         http::response_parser<http::empty_body>& head, unsigned version, bool keep,
                         const Dispatch& d, control::LiveEndpoint& ep, ClientWatch& watch,
                         bool& sent_any, bool& client_ok, bool& reusable, std::string& last_error) {
    const bool upstream_keep = head.get().keep_alive();
    const auto length = head.content_length();
    const std::string replica =
        fmt::format("{}/{}/{}", ep.spec().name, ep.spec().groups[static_cast<size_t>(d.group)].name,
                    d.replica_id);
    if (head.is_done() || (length && *length <= kWholeBodyLimit)) {
      http::response_parser<http::string_body> whole(std::move(head));
      if (!whole.is_done()) {
        auto [ec, n] = co_await http::async_read(up.stream, up.buffer, whole, kNoThrow);
        if (ec) {
          if (watch.gone) co_return Relay::kClientGone;
          if (ec == beast::error::timeout) co_return Relay::kUpstreamTimeout;
          last_error = fmt::format("{} while reading its answer: {}", d.address, ec.message());
          co_return Relay::kReplicaFailed;
        }
      }
      auto res = whole.release();
      strip_hop_by_hop(res.base());
      res.version(version);
      res.set("Tide-Replica", replica);
      res.keep_alive(keep);
      client.expires_after(server.upstream_timeout);
      sent_any = true;
      auto [wec, wn] = co_await http::async_write(client, res, kNoThrow);
      reusable = upstream_keep;
      if (wec) {
        client_ok = false;
        co_return Relay::kAborted;
      }
      co_return Relay::kDone;
    }
    // Streamed: chunked bodies, SSE, close-delimited or large ones.
    http::response_parser<http::buffer_body> p(std::move(head));
    auto& msg = p.get();
    strip_hop_by_hop(msg.base());
    const bool delimited_by_close = !length && !msg.chunked();
    msg.version(version);
    if (delimited_by_close) {
      if (version >= 11) {
        msg.chunked(true);
      } else {
        keep = false;
      }
    }
    msg.set("Tide-Replica", replica);
    msg.keep_alive(keep);
    http::response_serializer<http::buffer_body> sr(msg);
    std::array<char, 16 * 1024> buf;
    client.expires_after(server.upstream_timeout);
    for (;;) {
      if (!p.is_done()) {
        msg.body().data = buf.data();
        msg.body().size = buf.size();
        auto [ec, n] = co_await http::async_read_some(up.stream, up.buffer, p, kNoThrow);
        if (ec == http::error::need_buffer) ec = {};
        if (ec == http::error::end_of_stream && delimited_by_close) ec = {};
        if (ec) {
          if (watch.gone) co_return Relay::kClientGone;
          if (ec == beast::error::timeout) co_return Relay::kUpstreamTimeout;
          last_error = fmt::format("{} while streaming its answer: {}", d.address, ec.message());
          if (!sent_any) co_return Relay::kReplicaFailed;
          co_return Relay::kAborted;
        }
        msg.body().size = buf.size() - msg.body().size;
        // No body bytes yet (only framing was read): a zero-sized buffer would go out as the
        // last chunk, so hand none; the serializer then sends just the header, if due.
        msg.body().data = msg.body().size == 0 ? nullptr : buf.data();
        msg.body().more = !p.is_done();
        if (msg.body().size == 0 && !p.is_done() && sr.is_header_done()) continue;
      } else {
        msg.body().data = nullptr;
        msg.body().size = 0;
        msg.body().more = false;
      }
      sent_any = true;
      auto [wec, wn] = co_await http::async_write(client, sr, kNoThrow);
      if (wec == http::error::need_buffer) wec = {};
      if (wec) {
        client_ok = false;
        co_return Relay::kAborted;
      }
      if (p.is_done() && sr.is_done()) break;
    }
    reusable = upstream_keep && !delimited_by_close;
    co_return Relay::kDone;
  }
};

Gateway::Gateway(const config::ServerSpec& server, std::vector<control::LiveEndpoint*> endpoints,
                 std::vector<asio::io_context*> contexts, ApiHandler api)
    : impl_(std::make_unique<Impl>()) {
  if (contexts.empty()) throw std::runtime_error("gateway: no io_context");
  impl_->server = server;
  impl_->endpoints = std::move(endpoints);
  impl_->api = std::move(api);
  for (asio::io_context* ctx : contexts) {
    auto w = std::make_unique<Impl::Worker>();
    w->ctx = ctx;
    w->acceptor = impl_->bind(*ctx, server.listen, impl_->listen_port, /*reuse_port=*/true);
    impl_->listen_port = w->acceptor->local_endpoint().port();
    impl_->workers.push_back(std::move(w));
  }
  Impl::Worker& first = *impl_->workers.front();
  first.api_acceptor = impl_->bind(*first.ctx, server.api, 0, /*reuse_port=*/false);
  impl_->api_listen_port = first.api_acceptor->local_endpoint().port();
}

Gateway::~Gateway() = default;

uint16_t Gateway::port() const { return impl_->listen_port; }
uint16_t Gateway::api_port() const { return impl_->api_listen_port; }

void Gateway::start() {
  for (auto& w : impl_->workers) {
    asio::co_spawn(*w->ctx, impl_->accept_loop(*w, *w->acceptor, false), asio::detached);
    if (w->api_acceptor)
      asio::co_spawn(*w->ctx, impl_->accept_loop(*w, *w->api_acceptor, true), asio::detached);
  }
}

void Gateway::stop_accepting() {
  impl_->accepting = false;
  for (auto& w : impl_->workers) {
    asio::post(*w->ctx, [acc = w->acceptor.get()] {
      error_code ignored;
      acc->close(ignored);
    });
  }
}

int Gateway::active_requests() const { return impl_->active.load(); }

GatewayCounters Gateway::counters() const {
  const Counters& c = impl_->counters;
  GatewayCounters g;
  g.requests = c.requests;
  g.ok = c.ok;
  g.rejected_429 = c.r429;
  g.rejected_503 = c.r503;
  g.rejected_502 = c.r502;
  g.timed_out_504 = c.r504;
  g.not_found_404 = c.r404;
  g.bad_requests = c.bad;
  g.retries = c.retries;
  g.client_disconnects = c.client_gone;
  g.upstream_errors = c.upstream_errors;
  return g;
}

void Gateway::close() {
  for (auto& w : impl_->workers) {
    w->pool.clear();
    w->acceptor.reset();
    w->api_acceptor.reset();
  }
}

}  // namespace tide::gateway
