#include "tide/gateway/gateway.h"

#include <fmt/format.h>

#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <unordered_map>

#include "tide/auth/client_keys.h"
#include "tide/common/errors.h"
#include "tide/common/text.h"
#include "tide/gateway/http_parsers.h"
#include "tide/gateway/model_route.h"
#include "tide/gateway/refusal.h"
#include "tide/gateway/stream_timer.h"
#include "tide/gateway/tls_certs.h"
#include "tide/net/address.h"
#include "tide/net/error_body.h"
#include "tide/net/relay.h"

namespace tide::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using boost::system::error_code;
using control::Dispatch;
using control::Outcome;

namespace {

// Concrete executor types on the hot path: any_io_executor costs a type-erased copy per operation.
using Executor = asio::io_context::executor_type;
using Socket = asio::basic_stream_socket<tcp, Executor>;
using Acceptor = asio::basic_socket_acceptor<tcp, Executor>;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, Executor>;
using Resolver = asio::ip::basic_resolver<tcp, Executor>;
template <class T>
using awaitable = asio::awaitable<T, Executor>;
using Clock = std::chrono::steady_clock;

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable_t<Executor>{});
// Responses with a known length up to this are read whole and written in one go; longer ones,
// and every chunked or close-delimited one (SSE token streams), are relayed piece by piece.
constexpr uint64_t kWholeBodyLimit = 1 << 20;
// Idle upstream connections kept per replica address and worker thread, and for how long. The
// pool's sweep (every kPoolSweep) closes those whose replica closed them (a stopped replica) or
// that stayed idle past kPoolIdleTimeout.
constexpr size_t kPoolPerAddress = 512;
constexpr std::chrono::seconds kPoolIdleTimeout{30};
constexpr std::chrono::seconds kPoolSweep{1};
constexpr std::chrono::seconds kConnectTimeout{5};
// With no file descriptor left, accepting pauses this long (instead of spinning on EMFILE).
constexpr std::chrono::milliseconds kAcceptPause{100};
// At most one log line per worker this often (the counters count every event).
constexpr std::chrono::seconds kLogEvery{1};
// A request in service starts watching its client only after this (a held one at once): most
// requests are answered sooner, and watching costs a syscall (Asio re-arms epoll for each wait).
constexpr std::chrono::milliseconds kWatchAfter{50};

// Per worker thread (its own cache lines: no sharing between threads on the hot path); read by
// any thread.
struct alignas(64) Counters {
  std::atomic<uint64_t> requests{0}, ok{0}, r429{0}, r503{0}, r502{0}, r504{0}, r404{0}, bad{0},
      retries{0}, client_gone{0}, upstream_errors{0}, conn_refused{0}, body_memory{0},
      fd_exhausted{0}, internal{0}, unauthorized{0}, key_limited{0};
  std::atomic<int> active{0};
};

void append_number(std::string& out, uint64_t n) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, r.ptr);
}

// The Connection field a message to a peer speaking `version` needs for `keep` (what Beast's
// message::keep_alive() writes once the hop-by-hop fields are gone).
void append_keep_alive(std::string& out, unsigned version, bool keep) {
  if (version >= 11) {
    if (!keep) out += "Connection: close\r\n";
  } else if (keep) {
    out += "Connection: keep-alive\r\n";
  }
}

void append_status_line(std::string& out, unsigned version, unsigned status,
                        beast::string_view reason) {
  out += version >= 11 ? "HTTP/1.1 " : "HTTP/1.0 ";
  append_number(out, status);
  out += ' ';
  if (reason.empty()) reason = http::obsolete_reason(static_cast<http::status>(status));
  append(out, reason);
  out += "\r\n";
}

using net::error_body;

// A connection to a replica, with the bytes read past the last response.
struct Upstream {
  explicit Upstream(const Executor& ex) : socket(ex) {}
  Socket socket;
  beast::flat_buffer buffer;
  Clock::time_point idle_since;  // while pooled
};

// Whether an idle pooled connection is of no more use: its replica closed it (or reset it, or
// sent bytes nobody asked for).
bool idle_connection_dead(Upstream& up) {
  char byte = 0;
  const ssize_t n = ::recv(up.socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

// Errors that say tide, not the replica, ran out of something (file descriptors, buffers).
bool local_resource_error(const error_code& ec) {
  return ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
         ec == asio::error::no_memory || ec == error_code(ENFILE, boost::system::system_category());
}

// An admitted request's place under its client key's concurrency limit, given back however the
// request ends.
struct KeyPlace {
  const auth::ClientKeyRing::Entry* key;
  ~KeyPlace() {
    if (key != nullptr) key->release();
  }
};

// A held request's wake-up: LiveEndpoint calls wake() under its lock from any thread; the
// outcome is handed to the request's own thread. The coroutine that owns it never leaves before
// the outcome arrives or cancel() succeeded, so `this` outlives the posted handler.
struct HeldWait final : control::Waiter {
  explicit HeldWait(const Executor& ex) : timer(ex) {}
  Timer timer;
  std::optional<Dispatch> outcome;
  void wake(const Dispatch& d) override {
    asio::post(timer.get_executor(), [this, d] {
      outcome = d;
      timer.cancel();
    });
  }
};

// One client connection and everything its requests reuse. Shared with the handlers of its
// deadline timer and of its client watch; the session cancels both before it ends.
struct Conn;
// Unlinks a connection from its worker's list of requests in service not watched yet.
void unlink_in_service(Conn& c);

struct Conn : std::enable_shared_from_this<Conn> {
  explicit Conn(Socket s)
      : socket(std::move(s)), timer(socket.get_executor()), held(socket.get_executor()) {}
  ~Conn() { unlink_in_service(*this); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  Socket socket;
  beast::flat_buffer in;  // bytes from the client not parsed yet

  // The deadline of the current phase (idle, reading, upstream). One timer per connection,
  // re-armed only when the deadline moves earlier than where it waits; when it passes, the
  // client socket's operations are cancelled and the upstream connection (if any) is closed.
  Timer timer;
  Clock::time_point deadline = Clock::time_point::max();
  Clock::time_point timer_at = Clock::time_point::max();
  bool timer_waiting = false;
  uint64_t timer_gen = 0;
  bool timed_out = false;
  Upstream* connecting = nullptr;  // closed when the deadline passes

  // The client watch: while a request waits or is proxied, EOF from the client means it left;
  // it then releases its place in the queue or its replica slot at once. Armed when the request
  // is held, or by the worker's sweep once it has been in service for kWatchAfter; until then
  // the connection is on the worker's in-service list.
  Conn* svc_next = nullptr;
  Conn** svc_pprev = nullptr;  // the pointer to this one in the list; null when not listed
  uint64_t svc_epoch = 0;      // the worker's sweep count when listed
  bool watch_active = false;
  bool gone = false;
  uint64_t watch_gen = 0;
  Timer* held_timer = nullptr;  // cancelled when the client goes
  Upstream* up = nullptr;       // closed when the client goes or the deadline passes

  HeldWait held;
  RequestInfo req;
  ResponseInfo res;
  std::string target;  // as the replica sees it
  std::string out;     // a head (or a whole simple response) being written
};

void on_deadline(const std::shared_ptr<Conn>& cp, uint64_t gen, error_code ec);

void arm_timer(const std::shared_ptr<Conn>& cp, Clock::time_point at) {
  Conn& c = *cp;
  c.timer_at = at;
  c.timer.expires_at(at);  // a wait in progress completes with a stale generation
  c.timer_waiting = true;
  const uint64_t gen = ++c.timer_gen;
  c.timer.async_wait([cp, gen](error_code ec) { on_deadline(cp, gen, ec); });
}

void on_deadline(const std::shared_ptr<Conn>& cp, uint64_t gen, error_code ec) {
  Conn& c = *cp;
  if (gen != c.timer_gen) return;
  c.timer_waiting = false;
  if (ec || c.deadline == Clock::time_point::max()) return;
  if (Clock::now() < c.deadline) {
    arm_timer(cp, c.deadline);
    return;
  }
  c.timed_out = true;
  error_code ignored;
  c.socket.cancel(ignored);
  if (c.up != nullptr) c.up->socket.close(ignored);
  if (c.connecting != nullptr) c.connecting->socket.close(ignored);
}

void set_deadline(const std::shared_ptr<Conn>& cp, Clock::duration d) {
  Conn& c = *cp;
  c.timed_out = false;
  c.deadline = Clock::now() + d;
  if (c.timer_waiting && c.timer_at <= c.deadline) return;  // it re-checks when it wakes
  arm_timer(cp, c.deadline);
}

void clear_deadline(Conn& c) {
  c.timed_out = false;
  c.deadline = Clock::time_point::max();
}

void unlink_in_service(Conn& c) {
  if (c.svc_pprev == nullptr) return;
  *c.svc_pprev = c.svc_next;
  if (c.svc_next != nullptr) c.svc_next->svc_pprev = c.svc_pprev;
  c.svc_pprev = nullptr;
  c.svc_next = nullptr;
}

// An operation's error, as a timeout when the deadline cut it.
error_code outcome_of(const Conn& c, error_code ec) {
  if (ec && c.timed_out) return beast::error::timeout;
  return ec;
}

// Room to read into: what the buffer has spare, at least 4 KiB, at most 64 KiB.
size_t read_size(const beast::flat_buffer& b) {
  return std::clamp<size_t>(b.capacity() - b.size(), 4096, 65536);
}

using Buffers = std::array<asio::const_buffer, 2>;

// Writes what the (non-blocking) socket takes at once, and leaves the rest in `b`: most heads and
// short bodies go out without an asynchronous operation. False with `ec` clear when some is left.
bool write_now(Socket& socket, Buffers& b, error_code& ec) {
  size_t n = socket.write_some(b, ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    ec = {};
    n = 0;
  }
  if (ec) return false;
  for (auto& piece : b) {
    const size_t k = std::min(n, piece.size());
    piece += k;
    n -= k;
  }
  return b[0].size() == 0 && b[1].size() == 0;
}

// How sending a started request to its replica ended.
// Only a failed connect may be retried on another replica: a request a replica took and then
// dropped could hurt the next one the same way (docs/reliability.md).
enum class Relay {
  kDone,             // answered (whatever status the replica chose)
  kConnectFailed,    // no connection (refused, unreachable): nothing was sent; may be retried
  kDropped,          // it took the request, then closed or cut its answer before any reached the
                     // client: 502, not retried, the replica not blamed
  kBodyRefused,      // it closed while the body was being sent: 413, not retried
  kNoDescriptors,    // tide has no file descriptor left: 503, the replica not blamed
  kClientGone,       // the client went away
  kUpstreamTimeout,  // server.upstream_timeout passed
  kAborted,          // cut midway (client write failed, or replica died after sending bytes)
};

// A TLS connection (server.tls, server.api_tls). After the handshake, its plain bytes go through
// a socketpair to the same session() as a TCP connection's, so that every limit, the hold queue,
// the client watch and streaming work alike; two pumps copy between the two sides. The last pump
// to end sends close_notify and closes the TCP connection.
struct TlsLink {
  TlsLink(Socket s, std::shared_ptr<asio::ssl::context> c, std::atomic<int>* count)
      : ctx(std::move(c)),
        tls(std::move(s), *ctx),
        plain(tls.get_executor()),
        timer(tls.get_executor()),
        open(count) {}
  ~TlsLink() {
    if (open != nullptr) open->fetch_sub(1, std::memory_order_relaxed);
  }
  TlsLink(const TlsLink&) = delete;
  TlsLink& operator=(const TlsLink&) = delete;
  void close_tcp() {
    error_code ignored;
    tls.next_layer().close(ignored);
  }
  std::shared_ptr<asio::ssl::context> ctx;  // the certificate it began with (reloads swap it)
  asio::ssl::stream<Socket> tls;
  Socket plain;  // this side of the socketpair; the session has the other
  Timer timer;   // the deadline of the handshake, of each write to the client, of the close
  uint64_t gen = 0;
  int pumps = 2;           // pumps still running
  std::atomic<int>* open;  // its place under the listener's connection limit
};

// Closes the TCP connection when `d` passes, unless re-armed or disarmed before.
void arm_tls(const std::shared_ptr<TlsLink>& l, Clock::duration d) {
  l->timer.expires_after(d);
  const uint64_t gen = ++l->gen;
  l->timer.async_wait([l, gen](error_code ec) {
    if (!ec && gen == l->gen) l->close_tcp();
  });
}

void disarm_tls(TlsLink& l) {
  ++l.gen;
  l.timer.cancel();
}

// How long close_notify may take once the session is over.
constexpr std::chrono::seconds kTlsCloseTimeout{1};
constexpr size_t kTlsPiece = 16384;  // a TLS record's plaintext at most

}  // namespace

struct Gateway::Impl {
  struct Worker {
    asio::io_context* ctx;
    uint64_t index = 0;
    uint64_t next_request = 1;  // request ids: (index << 48) | next_request++
    Counters counters;
    std::unique_ptr<Acceptor> acceptor;
    std::unique_ptr<Acceptor> api_acceptor;
    std::unordered_map<std::string, std::vector<std::unique_ptr<Upstream>>> pool;
    std::unordered_map<std::string, tcp::endpoint> resolved;
    // Requests in service whose client is not watched yet, and the sweep that arms their watch.
    Conn* in_service = nullptr;
    uint64_t sweeps = 0;
    bool sweeping = false;
    std::unique_ptr<Timer> sweep_timer;
    // The upstream pool's sweep (idle and closed connections), while the pool holds any.
    std::unique_ptr<Timer> pool_timer;
    bool pool_sweeping = false;
    // Rate limit of log lines.
    Clock::time_point last_log{};
    uint64_t unlogged = 0;
  };

  config::ServerSpec server;
  std::vector<control::LiveEndpoint*> endpoints;
  std::vector<std::string> sticky_names;  // every endpoint's routing.sticky_header, once
  std::vector<int> sticky_index;          // per endpoint: its header in sticky_names, or -1
  ApiHandler api;
  std::vector<std::unique_ptr<Worker>> workers;
  uint16_t listen_port = 0;
  uint16_t api_listen_port = 0;
  std::atomic<bool> accepting{true};
  std::function<void(const std::string&)> log;
  // Open connections per listener (server.max_connections, server.api_max_connections).
  std::atomic<int> connections{0};
  std::atomic<int> api_connections{0};
  std::unique_ptr<BodyBudget> body_budget;
  // GET /v1/models's "created": when the gateway started (Unix seconds).
  int64_t created_unix = 0;
  // server.client_auth: keys: the keys requests must carry (else null).
  const auth::ClientKeyRing* client_keys = nullptr;
  // server.tls and server.api_tls: the listeners' certificates (null: plain HTTP).
  std::unique_ptr<TlsCerts> tls;
  std::unique_ptr<TlsCerts> api_tls;

  // A line for the operator, at most one per kLogEvery per worker (the rest are counted).
  void note(Worker& w, const std::string& line) {
    if (!log) return;
    const auto now = Clock::now();
    if (w.last_log != Clock::time_point{} && now - w.last_log < kLogEvery) {
      ++w.unlogged;
      return;
    }
    w.last_log = now;
    log(w.unlogged == 0 ? line : fmt::format("{} ({} more not logged)", line, w.unlogged));
    w.unlogged = 0;
  }

  // Binds `address` (`port_override` when not 0). Without `reuse_port` and `listen`, only checks
  // that the port is free: a bind without SO_REUSEPORT fails while any other socket listens on it,
  // so a second tide cannot join the first one's SO_REUSEPORT group.
  std::unique_ptr<Acceptor> bind(asio::io_context& ctx, const std::string& address,
                                 uint16_t port_override, bool reuse_port, bool listen = true) {
    const auto hp = net::split_host_port(address);
    if (!hp)
      throw std::runtime_error(fmt::format("cannot listen on {}: expected host:port", address));
    const std::string host(net::unbracket(hp->host));
    const uint16_t p = port_override != 0 ? port_override : hp->port;
    error_code ec;
    const auto ip = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot listen on {}: {}", address, ec.message()));
    auto acc = std::make_unique<Acceptor>(ctx);
    const tcp::endpoint ep(ip, p);
    acc->open(ep.protocol(), ec);
    if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && reuse_port)
      acc->set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (ec == asio::error::address_in_use)
      throw std::runtime_error(fmt::format(
          "cannot listen on {}: {} (is another tide serve running?)", address, ec.message()));
    if (!ec && listen) acc->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot listen on {}: {}", address, ec.message()));
    return acc;
  }

  awaitable<void> accept_loop(Worker& w, Acceptor& acc, bool is_api) {
    std::atomic<int>& open = is_api ? api_connections : connections;
    const int limit = is_api ? server.api_max_connections : server.max_connections;
    Timer pause(acc.get_executor());
    for (;;) {
      auto [ec, sock] = co_await acc.async_accept(kNoThrow);
      if (ec) {
        if (ec == asio::error::operation_aborted || !acc.is_open()) co_return;
        if (!local_resource_error(ec)) continue;  // the client left before we took it
        // No file descriptor left: keep serving the connections we have, try again shortly
        // (accepting at once would spin: the pending connection keeps the listener readable).
        ++w.counters.fd_exhausted;
        note(w, fmt::format("cannot accept a connection: {}; pausing accepts {} ms", ec.message(),
                            kAcceptPause.count()));
        pause.expires_after(kAcceptPause);
        co_await pause.async_wait(kNoThrow);
        continue;
      }
      if (open.fetch_add(1, std::memory_order_relaxed) >= limit) {
        open.fetch_sub(1, std::memory_order_relaxed);
        ++w.counters.conn_refused;
        note(w, fmt::format("refused a connection: {} open ({})", limit,
                            is_api ? "server.api_max_connections" : "server.max_connections"));
        refuse_connection(sock, limit, is_api, (is_api ? api_tls : tls) != nullptr);
        continue;
      }
      sock.set_option(tcp::no_delay(true), ec);
      sock.non_blocking(true, ec);
      if (const TlsCerts* certs = is_api ? api_tls.get() : tls.get()) {
        auto link = std::make_shared<TlsLink>(std::move(sock), certs->current(), &open);
        asio::co_spawn(*w.ctx, tls_session(w, std::move(link), is_api),
                       TaskEnd(is_api ? "an API TLS connection" : "a gateway TLS connection",
                               &w.counters.internal, log));
        continue;
      }
      asio::co_spawn(*w.ctx, session(w, std::make_shared<Conn>(std::move(sock)), is_api, &open),
                     TaskEnd(is_api ? "an API connection" : "a gateway connection",
                             &w.counters.internal, log));
    }
  }

  // Answers a connection over the limit with 503 at once and closes it; what the client sent
  // already is read first, so that the close does not reset the connection before the answer.
  // Over TLS it is only closed: a handshake would spend what the limit protects.
  static void refuse_connection(Socket& sock, int limit, bool is_api, bool is_tls) {
    error_code ec;
    if (is_tls) {
      sock.close(ec);
      return;
    }
    sock.non_blocking(true, ec);
    std::array<char, 16384> scratch;
    sock.read_some(asio::buffer(scratch), ec);
    const std::string body =
        error_body("too_many_connections",
                   fmt::format("tide has {} connections open ({}); try again shortly", limit,
                               is_api ? "server.api_max_connections" : "server.max_connections"));
    std::string o =
        "HTTP/1.1 503 Service Unavailable\r\nServer: tide\r\nContent-Type: "
        "application/json\r\nRetry-After: 1\r\nConnection: close\r\n";
    o += fmt::format("Content-Length: {}\r\n\r\n", body.size());
    o += body;
    sock.write_some(asio::buffer(o), ec);
    sock.shutdown(tcp::socket::shutdown_both, ec);
    sock.close(ec);
  }

  // Answers a request the gateway could not get served, counting it: a JSON error body naming
  // `type` and `message`, with Retry-After when `retry_after` > 0.
  awaitable<bool> refuse(const std::shared_ptr<Conn>& cp, std::atomic<uint64_t>& counter,
                         unsigned version, bool keep, http::status status, std::string_view type,
                         const std::string& message, int retry_after = 0) {
    ++counter;
    disarm_watch(*cp);
    co_return co_await write_simple(cp, version, keep, status, error_body(type, message),
                                    "application/json", retry_after);
  }

  awaitable<bool> write_simple(const std::shared_ptr<Conn>& cp, unsigned version, bool keep_alive,
                               http::status status, std::string body,
                               std::string_view content_type = "application/json",
                               int retry_after = 0) {
    Conn& c = *cp;
    std::string& o = c.out;
    o.clear();
    append_status_line(o, version, static_cast<unsigned>(status), {});
    o += "Server: tide\r\nContent-Type: ";
    o += content_type;
    o += "\r\n";
    if (retry_after > 0) {
      o += "Retry-After: ";
      append_number(o, static_cast<uint64_t>(retry_after));
      o += "\r\n";
    }
    append_keep_alive(o, version, keep_alive);
    o += "Content-Length: ";
    append_number(o, body.size());
    o += "\r\n\r\n";
    o += body;
    set_deadline(cp, server.read_timeout);
    Buffers b{asio::buffer(o), asio::const_buffer()};
    error_code ec;
    if (!write_now(c.socket, b, ec) && !ec) {
      auto [wec, n] = co_await asio::async_write(c.socket, b, kNoThrow);
      ec = wec;
    }
    co_return !ec && keep_alive;
  }

  // Releases a connection's place under its listener's limit, however its session ends.
  // (null: a TLS connection's, released by its TlsLink).
  struct Open {
    std::atomic<int>* count;
    ~Open() {
      if (count != nullptr) count->fetch_sub(1, std::memory_order_relaxed);
    }
  };
  // Requests between their first byte and their last, however the proxying ends.
  struct Active {
    std::atomic<int>& count;
    explicit Active(std::atomic<int>& c) : count(c) {
      count.fetch_add(1, std::memory_order_relaxed);
    }
    ~Active() { count.fetch_sub(1, std::memory_order_relaxed); }
  };

  // One request body's limit on the gateway listener or the admin API's.
  int64_t body_limit(bool is_api) const {
    return is_api ? server.api_max_body_bytes : server.max_body_bytes;
  }

  // One client connection's requests; `count` is its place under the listener's connection limit
  // (null over TLS: the TlsLink holds it).
  awaitable<void> session(Worker& w, std::shared_ptr<Conn> cp, bool is_api,
                          std::atomic<int>* count) {
    Open open{count};
    Conn& c = *cp;
    c.req.budget = body_budget.get();
    c.req.own_authorization = !is_api && client_keys != nullptr;
    for (;;) {
      RequestParser parser(c.req, sticky_names, server.max_trailer_bytes);
      parser.header_limit(static_cast<uint32_t>(server.max_header_bytes));
      parser.body_limit(static_cast<uint64_t>(body_limit(is_api)));
      parser.eager(true);
      // Idle: wait for the first byte of the next request.
      if (c.in.size() == 0) {
        set_deadline(cp, server.idle_timeout);
        auto [ec, n] = co_await c.socket.async_read_some(c.in.prepare(4096), kNoThrow);
        if (ec) break;  // closed, reset or idle too long
        c.in.commit(n);
      }
      // Reading: the rest of the request within read_timeout.
      set_deadline(cp, server.read_timeout);
      const error_code ec = co_await read_request(cp, parser);
      if (ec) {
        if (ec == http::error::end_of_stream || ec == asio::error::eof ||
            ec == asio::error::connection_reset)
          break;
        co_await refuse_request(w, cp, ec, is_api);
        break;
      }
      if (const char* bad = invalid_text(c.req, is_api)) {
        ++w.counters.bad;
        note(w,
             fmt::format("refused {} {}: {}", clip(c.req.method, 16), clip(c.req.target, 80), bad));
        co_await write_simple(cp, 11, false, http::status::bad_request,
                              error_body("bad_request", bad));
        break;
      }
      const bool keep = parser.keep_alive() && accepting.load(std::memory_order_relaxed);
      bool go_on = false;
      if (is_api) {
        go_on = co_await serve_api(w, cp, keep);
      } else {
        Active active(w.counters.active);
        go_on = co_await proxy(w, cp, keep);
      }
      c.req.release();
      // A big body's buffer is not kept for the next request.
      if (c.req.body.capacity() > (1u << 20)) std::string().swap(c.req.body);
      if (!go_on) {
        error_code ignored;
        c.socket.shutdown(tcp::socket::shutdown_send, ignored);
        break;
      }
    }
    // Release the handlers that hold the connection, and the socket.
    c.req.release();
    clear_deadline(c);
    c.timer.cancel();
    error_code ignored;
    c.socket.close(ignored);
  }

  // A TLS connection: the handshake within read_timeout (a client that sends nothing or garbage
  // is closed), then a socketpair to session() and the two pumps between them.
  awaitable<void> tls_session(Worker& w, std::shared_ptr<TlsLink> l, bool is_api) {
    arm_tls(l, server.read_timeout);
    auto [hec] = co_await l->tls.async_handshake(asio::ssl::stream_base::server, kNoThrow);
    disarm_tls(*l);
    if (hec) {  // garbage, silence, or a client that refused the certificate
      l->close_tcp();
      co_return;
    }
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
      ++w.counters.fd_exhausted;
      note(w, fmt::format("cannot serve a TLS connection: socketpair: {}", std::strerror(errno)));
      l->close_tcp();
      co_return;
    }
    // Asio's TCP socket type over a Unix socket: session() only reads, writes, waits, shuts down
    // and asks how many bytes are available, which a Unix stream socket does alike.
    Socket inner(*w.ctx);
    error_code ec;
    inner.assign(tcp::v4(), fds[0], ec);
    if (!ec) l->plain.assign(tcp::v4(), fds[1], ec);
    if (ec) {
      if (!inner.is_open()) ::close(fds[0]);
      ::close(fds[1]);
      l->close_tcp();
      co_return;
    }
    asio::co_spawn(
        *w.ctx, session(w, std::make_shared<Conn>(std::move(inner)), is_api, nullptr),
        TaskEnd(is_api ? "an API connection" : "a gateway connection", &w.counters.internal, log));
    asio::co_spawn(*w.ctx, tls_inbound(l),
                   TaskEnd("a TLS connection's reader", &w.counters.internal, log));
    co_await tls_outbound(l);
  }

  // Client to session. The client's EOF (or error) is passed on as EOF: the session then sees the
  // client leave, as over TCP.
  static awaitable<void> tls_inbound(std::shared_ptr<TlsLink> l) {
    std::array<char, kTlsPiece> buf;
    for (;;) {
      auto [ec, n] = co_await l->tls.async_read_some(asio::buffer(buf), kNoThrow);
      if (ec) break;
      auto [wec, wn] = co_await asio::async_write(l->plain, asio::buffer(buf.data(), n), kNoThrow);
      if (wec) break;
    }
    error_code ignored;
    l->plain.shutdown(tcp::socket::shutdown_send, ignored);
    co_await tls_pump_ended(l);
  }

  // Session to client, each write within read_timeout (a client that stops reading is cut, as
  // the session's own writes are). Ends when the session closes its side.
  awaitable<void> tls_outbound(std::shared_ptr<TlsLink> l) {
    std::array<char, kTlsPiece> buf;
    for (;;) {
      auto [ec, n] = co_await l->plain.async_read_some(asio::buffer(buf), kNoThrow);
      if (ec) break;
      arm_tls(l, server.read_timeout);
      auto [wec, wn] = co_await asio::async_write(l->tls, asio::buffer(buf.data(), n), kNoThrow);
      disarm_tls(*l);
      if (wec) break;
    }
    error_code ignored;
    l->plain.close(ignored);              // the session's writes fail from now on
    l->tls.next_layer().cancel(ignored);  // ends tls_inbound's read
    co_await tls_pump_ended(l);
  }

  // The last pump to end says close_notify (within kTlsCloseTimeout) and closes the connection.
  static awaitable<void> tls_pump_ended(const std::shared_ptr<TlsLink>& l) {
    if (--l->pumps > 0) co_return;
    arm_tls(l, kTlsCloseTimeout);
    co_await l->tls.async_shutdown(kNoThrow);
    disarm_tls(*l);
    l->close_tcp();
  }

  // Why a request's text cannot be taken, or null: a target that is not UTF-8 (every listener),
  // an API body that is not (JSON and YAML are UTF-8). Checked before anything parses them.
  static const char* invalid_text(const RequestInfo& req, bool is_api) {
    if (!valid_utf8(req.target)) return "the request target is not valid UTF-8";
    if (is_api && !valid_utf8(req.body)) return "the request body is not valid UTF-8";
    return nullptr;
  }

  // Reads the rest of a request into c.req, within the limits: header (Beast), body (Beast, and
  // the listener's body memory), chunk headers and trailer (server.max_trailer_bytes: the bytes
  // the parser holds unconsumed once the header is done). Says 100 Continue when asked.
  awaitable<error_code> read_request(const std::shared_ptr<Conn>& cp, RequestParser& parser) {
    Conn& c = *cp;
    bool continued = false;
    error_code ec;
    for (;;) {
      if (c.in.size() > 0) {
        const size_t n = parser.put(c.in.data(), ec);
        c.in.consume(n);
        if (ec && ec != http::error::need_more) co_return ec;
        ec = {};
        if (parser.is_done()) co_return ec;
        if (parser.is_header_done() &&
            c.in.size() > static_cast<size_t>(server.max_trailer_bytes)) {
          c.req.trailer_over = true;  // what the parser holds unconsumed: a chunk header or trailer
          co_return http::error::header_limit;
        }
        if (n > 0 && c.in.size() > 0) continue;
      }
      if (!continued && c.req.expect_continue && parser.is_header_done()) {
        continued = true;
        static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        auto [wec, wn] = co_await asio::async_write(c.socket, asio::buffer(kContinue), kNoThrow);
        if (wec) co_return outcome_of(c, wec);
      }
      auto [rec, n] = co_await c.socket.async_read_some(c.in.prepare(read_size(c.in)), kNoThrow);
      if (rec == asio::error::eof) {
        if (!parser.got_some()) co_return http::error::end_of_stream;
        parser.put_eof(ec);
        if (!ec && !parser.is_done()) ec = http::error::partial_message;
        co_return ec;
      }
      if (rec) co_return outcome_of(c, rec);
      c.in.commit(n);
    }
  }

  // Answers a request that could not be read whole (limits, timeout, malformed), and counts it.
  awaitable<void> refuse_request(Worker& w, const std::shared_ptr<Conn>& cp, error_code ec,
                                 bool is_api) {
    Conn& c = *cp;
    http::status status = http::status::bad_request;
    std::string type = "bad_request";
    std::string message = ec.message();
    int retry_after = 0;
    if (c.req.over_memory) {
      ++w.counters.body_memory;
      status = http::status::service_unavailable;
      type = "body_memory_full";
      message = fmt::format(
          "request bodies held in memory reached {} bytes (server.max_body_memory); try again",
          body_budget->limit());
      retry_after = 1;
    } else if (c.req.trailer_over) {
      status = http::status::request_header_fields_too_large;
      type = "trailer_too_large";
      message =
          fmt::format("a chunk header or the trailer exceeds {} bytes (server.max_trailer_bytes)",
                      server.max_trailer_bytes);
    } else if (ec == http::error::header_limit) {
      status = http::status::request_header_fields_too_large;
      type = "header_too_large";
      message = fmt::format("request headers exceed {} bytes (server.max_header_bytes)",
                            server.max_header_bytes);
    } else if (ec == http::error::body_limit) {
      status = http::status::payload_too_large;
      type = "body_too_large";
      message = fmt::format("request body exceeds {} bytes (server.{})", body_limit(is_api),
                            is_api ? "api_max_body_bytes" : "max_body_bytes");
    } else if (ec == beast::error::timeout) {
      status = http::status::request_timeout;
      type = "request_timeout";
      message = fmt::format("request not received within {} (server.read_timeout)",
                            format_duration(server.read_timeout));
    }
    if (!c.req.over_memory) ++w.counters.bad;
    co_await write_simple(cp, 11, false, status, error_body(type, message), "application/json",
                          retry_after);
  }

  awaitable<bool> serve_api(Worker& w, const std::shared_ptr<Conn>& cp, bool keep) {
    Conn& c = *cp;
    ApiRequest a;
    a.method = c.req.method;
    a.target = c.req.target;
    a.body = std::move(c.req.body);
    a.authorization = c.req.authorization;
    ApiResponse r{404, "application/json", error_body("not_found", "")};
    try {
      if (api) r = api(a);
    } catch (const std::exception& e) {  // a bug: answered, logged and counted
      ++w.counters.internal;
      note(w,
           fmt::format("API {} {} failed: {}", clip(a.method, 16), clip(a.target, 80), e.what()));
      r = ApiResponse{500, "application/json", error_body("internal_error", e.what())};
    }
    if (r.stream && r.stream->next) co_return co_await serve_stream(cp, std::move(r));
    co_return co_await write_simple(cp, c.req.version, keep, static_cast<http::status>(r.status),
                                    std::move(r.body), r.content_type, r.retry_after_s);
  }

  // `data` as the next piece of a streamed body: a chunk (HTTP/1.1), or as is (HTTP/1.0, whose
  // body ends when the connection closes).
  static void append_piece(std::string& o, std::string_view data, bool chunked) {
    if (data.empty()) return;  // an empty chunk would end the body
    if (chunked) fmt::format_to(std::back_inserter(o), "{:x}\r\n", data.size());
    o += data;
    if (chunked) o += "\r\n";
  }

  // Writes c.out within read_timeout (a client that stops reading is cut).
  awaitable<bool> write_out(const std::shared_ptr<Conn>& cp) {
    Conn& c = *cp;
    set_deadline(cp, server.read_timeout);
    Buffers b{asio::buffer(c.out), asio::const_buffer()};
    error_code ec;
    if (!write_now(c.socket, b, ec) && !ec) {
      auto [wec, n] = co_await asio::async_write(c.socket, b, kNoThrow);
      ec = wec;
    }
    clear_deadline(c);
    co_return !ec;
  }

  // An API response that goes on (ApiStream): the head and first piece, then a piece per
  // interval until the stream, the client or the server ends it. The connection then closes.
  awaitable<bool> serve_stream(const std::shared_ptr<Conn>& cp, ApiResponse r) {
    Conn& c = *cp;
    const unsigned version = c.req.version;
    const bool chunked = version >= 11;
    std::string& o = c.out;
    o.clear();
    append_status_line(o, version, static_cast<unsigned>(r.status), {});
    o += "Server: tide\r\nContent-Type: ";
    o += r.content_type;
    o += "\r\nCache-Control: no-cache\r\n";
    if (chunked) o += "Transfer-Encoding: chunked\r\nConnection: close\r\n";
    o += "\r\n";
    append_piece(o, r.body, chunked);
    // The client's EOF (it went away) cancels the wait between pieces.
    c.gone = false;
    c.up = nullptr;
    arm_watch(cp);
    c.held_timer = &c.held.timer;
    bool ok = co_await write_out(cp);
    while (ok) {
      c.held.timer.expires_after(r.stream->interval);
      co_await c.held.timer.async_wait(kNoThrow);
      if (c.gone || !accepting.load(std::memory_order_relaxed)) break;
      std::optional<std::string> more = r.stream->next();
      if (!more) break;
      o.clear();
      append_piece(o, *more, chunked);
      if (!o.empty()) ok = co_await write_out(cp);
    }
    const bool gone = c.gone || !ok;
    disarm_watch(c);
    if (!gone && chunked) {
      o.assign("0\r\n\r\n");
      co_await write_out(cp);
    }
    co_return false;
  }

  // Which endpoint a request is for, and the target to send upstream: by the Tide-Endpoint
  // header or the path's prefix, else (no header) by the body's model on OpenAI's paths. Null
  // when none: `answer` then holds the gateway's own answer (status 0: unknown endpoint).
  control::LiveEndpoint* route(const RequestInfo& req, std::string& target, ModelRoute& answer) {
    if (control::LiveEndpoint* ep = route_by_name(req, target)) return ep;
    if (req.has_endpoint) return nullptr;
    answer = route_by_model(req.method, req.target, req.body, endpoints, created_unix);
    target = req.target;
    return answer.endpoint;
  }

  control::LiveEndpoint* route_by_name(const RequestInfo& req, std::string& target) {
    const std::string_view t = req.target;
    if (req.has_endpoint) {
      for (auto* ep : endpoints) {
        if (ep->spec().name == req.endpoint) {
          target.assign(t);
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
        target.assign("/");
      } else if (t[end] == '?') {
        target.assign("/");
        target.append(t.substr(end));
      } else {
        target.assign(t.substr(end));
      }
      return ep;
    }
    return nullptr;
  }

  // Waits for a held request's outcome, its deadline, or its client going away.
  awaitable<Dispatch> wait_held(control::LiveEndpoint& ep, dispatch::RequestId id, Conn& c) {
    HeldWait& wait = c.held;
    wait.timer.expires_after(ep.spec().queue.timeout);
    for (;;) {
      auto [ec] = co_await wait.timer.async_wait(kNoThrow);
      if (wait.outcome) co_return *wait.outcome;
      if (ec != asio::error::operation_aborted || c.gone) {
        // Deadline passed or the client went away: withdraw it, unless it was just started.
        if (ep.cancel(id, c.gone ? Outcome::kClientGone : Outcome::kUnavailable)) {
          Dispatch d;
          d.kind = Dispatch::Kind::kTimedOut;
          co_return d;
        }
        wait.timer.expires_at(Timer::time_point::max());
      }
    }
  }

  static void arm_watch(const std::shared_ptr<Conn>& cp) {
    Conn& c = *cp;
    unlink_in_service(c);
    if (c.watch_active) return;
    c.watch_active = true;
    const uint64_t gen = ++c.watch_gen;
    c.socket.async_wait(Socket::wait_read, [cp, gen](error_code ec) {
      Conn& wc = *cp;
      if (ec || !wc.watch_active || gen != wc.watch_gen) return;
      error_code aec;
      if (wc.socket.available(aec) > 0 && !aec) return;  // a pipelined request, not EOF
      wc.gone = true;
      if (wc.held_timer != nullptr) wc.held_timer->cancel();
      if (wc.up != nullptr) {
        error_code ignored;
        wc.up->socket.close(ignored);
      }
    });
  }

  // A request just started on a replica: its watch is armed by the sweep if it is still in
  // service after kWatchAfter.
  void watch_later(Worker& w, Conn& c) {
    if (c.watch_active || c.svc_pprev != nullptr) return;
    c.svc_epoch = w.sweeps;
    c.svc_next = w.in_service;
    if (c.svc_next != nullptr) c.svc_next->svc_pprev = &c.svc_next;
    c.svc_pprev = &w.in_service;
    w.in_service = &c;
    if (!w.sweeping) start_sweep(w);
  }

  void start_sweep(Worker& w) {
    w.sweeping = true;
    w.sweep_timer->expires_after(kWatchAfter);
    w.sweep_timer->async_wait([this, &w](error_code ec) {
      w.sweeping = false;
      if (ec) return;
      const uint64_t sweep = ++w.sweeps;
      for (Conn* c = w.in_service; c != nullptr;) {
        Conn* next = c->svc_next;
        if (c->svc_epoch + 2 <= sweep) arm_watch(c->shared_from_this());  // listed a period ago
        c = next;
      }
      if (w.in_service != nullptr) start_sweep(w);
    });
  }

  static void disarm_watch(Conn& c) {
    unlink_in_service(c);
    c.held_timer = nullptr;
    c.up = nullptr;
    if (!c.watch_active) return;
    c.watch_active = false;
    error_code ignored;
    c.socket.cancel(ignored);
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
    if (v.size() >= kPoolPerAddress) return;
    up->idle_since = Clock::now();
    v.push_back(std::move(up));
    if (!w.pool_sweeping) sweep_pool(w);
  }

  // Every kPoolSweep while the pool holds connections: closes those the replica closed (it
  // stopped: no CLOSE-WAIT socket is left behind) or that were idle past kPoolIdleTimeout.
  void sweep_pool(Worker& w) {
    w.pool_sweeping = true;
    w.pool_timer->expires_after(kPoolSweep);
    w.pool_timer->async_wait([this, &w](error_code ec) {
      w.pool_sweeping = false;
      if (ec) return;
      const auto oldest = Clock::now() - kPoolIdleTimeout;
      for (auto it = w.pool.begin(); it != w.pool.end();) {
        std::erase_if(it->second, [&](const std::unique_ptr<Upstream>& up) {
          return up->idle_since < oldest || idle_connection_dead(*up);
        });
        it = it->second.empty() ? w.pool.erase(it) : std::next(it);
      }
      if (!w.pool.empty()) sweep_pool(w);
    });
  }

  awaitable<error_code> connect(Worker& w, Upstream& up, const std::string& address) {
    tcp::endpoint target;
    if (auto it = w.resolved.find(address); it != w.resolved.end()) {
      target = it->second;
    } else {
      const auto hp = net::split_host_port(address);
      if (!hp) co_return asio::error::invalid_argument;
      const std::string host(net::unbracket(hp->host));
      const uint16_t port = hp->port;
      error_code ec;
      auto ip = asio::ip::make_address(host, ec);
      if (ec) {
        Resolver resolver(*w.ctx);
        auto [rec, results] = co_await resolver.async_resolve(host, std::to_string(port), kNoThrow);
        if (rec || results.empty()) co_return rec ? rec : asio::error::host_not_found;
        target = results.begin()->endpoint();
      } else {
        target = tcp::endpoint(ip, port);
      }
      w.resolved[address] = target;
    }
    auto [ec] = co_await up.socket.async_connect(target, kNoThrow);
    if (!ec) up.socket.set_option(tcp::no_delay(true), ec);
    if (!ec) up.socket.non_blocking(true, ec);
    co_return ec;
  }

  // The request as the replica sees it: the client's request line with the rewritten target,
  // Host set to the replica, the end-to-end fields, and the body's length (what Beast's
  // prepare_payload() would set for a string body).
  static void build_upstream_request(Conn& c, const control::Dispatch& d) {
    const RequestInfo& r = c.req;
    std::string& o = c.out;
    o.clear();
    o += r.method;
    o += ' ';
    o += c.target;
    o += r.version >= 11 ? " HTTP/1.1\r\nHost: " : " HTTP/1.0\r\nHost: ";
    o += d.address;
    o += "\r\n";
    if (!d.upstream_secret.empty()) {  // admits the gateway at the replica's agent
      o += "Tide-Replica-Secret: ";
      o += d.upstream_secret;
      o += "\r\n";
    }
    o += r.fields;
    append_keep_alive(o, r.version, true);
    if (!r.body.empty() || r.verb == http::verb::options || r.verb == http::verb::put ||
        r.verb == http::verb::post) {
      o += "Content-Length: ";
      append_number(o, r.body.size());
      o += "\r\n";
    }
    o += "\r\n";
  }

  // Proxies one request; returns whether the client connection may carry another. The steps:
  // find its endpoint (by header or path prefix, else by the body's model), submit it (held
  // while no replica can take it), refuse it or forward it to the replica it started on, and
  // answer the client from how that ended (a failed connect is submitted once more, to another
  // replica).
  awaitable<bool> proxy(Worker& w, const std::shared_ptr<Conn>& cp, bool keep) {
    Conn& c = *cp;
    ++w.counters.requests;
    std::shared_ptr<const auth::ClientKeyRing::Entry> key;
    if (client_keys != nullptr) {
      key = client_keys->find(c.req.authorization);
      if (key == nullptr) co_return co_await refuse_client(w, cp, keep, nullptr);
      const auth::Admission a = key->admit(Clock::now().time_since_epoch().count());
      if (!a.ok) co_return co_await refuse_over_limit(w, cp, keep, *key, a);
    }
    const KeyPlace place{key.get()};
    ModelRoute answer;
    control::LiveEndpoint* ep = route(c.req, c.target, answer);
    if (ep == nullptr) co_return co_await answer_unrouted(w, cp, keep, answer);
    if (key != nullptr && !key->allows(ep->spec().name))
      co_return co_await refuse_client(w, cp, keep, key.get(), ep);
    const uint64_t sticky = sticky_key(c.req, *ep);
    clear_deadline(c);  // no deadline while held; upstream_timeout once sent
    c.gone = false;
    c.held_timer = nullptr;
    c.up = nullptr;
    int retries_left = 1;
    std::string last_error;
    std::optional<Time> first_submitted;  // latency counts from the first submission
    for (;;) {
      const Dispatch d = co_await submit(w, cp, *ep, sticky, first_submitted);
      if (c.gone) {
        if (d.kind == Dispatch::Kind::kStarted) ep->finish(d, Outcome::kClientGone);
        ++w.counters.client_gone;
        disarm_watch(c);
        co_return false;
      }
      if (d.kind == Dispatch::Kind::kLost) continue;  // it waited at a replica that failed
      if (d.kind != Dispatch::Kind::kStarted)
        co_return co_await refuse_dispatch(w, cp, *ep, d, keep);
      watch_later(w, c);
      Forwarded f = co_await forward(w, cp, *ep, d, keep, last_error);
      c.up = nullptr;
      clear_deadline(c);
      if (f.result == Relay::kDone && f.reusable) give_back(w, d.address, std::move(f.up));
      const std::optional<bool> answered =
          co_await conclude(w, cp, *ep, d, f, keep, retries_left, last_error);
      if (answered) co_return *answered;
    }
  }

  // A request without a client key the ring holds (`key` null): 401; one whose key may not use
  // endpoint `ep`: 403. In OpenAI's error shape, which its clients show.
  awaitable<bool> refuse_client(Worker& w, const std::shared_ptr<Conn>& cp, bool keep,
                                const auth::ClientKeyRing::Entry* key,
                                const control::LiveEndpoint* ep = nullptr) {
    ++w.counters.unauthorized;
    const bool bearer = cp->req.authorization.starts_with("Bearer ");
    std::string body =
        key == nullptr
            ? net::openai_error_body(
                  "invalid_request_error",
                  bearer ? "Incorrect API key provided (unknown or revoked)"
                         : "You didn't provide an API key: send Authorization: Bearer <key> (keys "
                           "are added with `tide keys add`)",
                  "", "invalid_api_key")
            : net::openai_error_body(
                  "invalid_request_error",
                  fmt::format("API key {} may not use endpoint {}", key->name, ep->spec().name), "",
                  "endpoint_not_allowed");
    co_return co_await write_simple(
        cp, cp->req.version, keep,
        key == nullptr ? http::status::unauthorized : http::status::forbidden, std::move(body));
  }

  // A request over its key's rate or concurrency limit: 429 with Retry-After, OpenAI's shape.
  awaitable<bool> refuse_over_limit(Worker& w, const std::shared_ptr<Conn>& cp, bool keep,
                                    const auth::ClientKeyRing::Entry& key,
                                    const auth::Admission& a) {
    ++w.counters.key_limited;
    const bool rate = std::string_view(a.limit) == "rate";
    const std::string message =
        rate ? fmt::format("Rate limit reached for API key {}: {} requests per second", key.name,
                           key.rate)
             : fmt::format("API key {} has {} requests in flight, its concurrency limit", key.name,
                           key.concurrency);
    co_return co_await write_simple(
        cp, cp->req.version, keep, http::status::too_many_requests,
        net::openai_error_body("requests", message, "",
                               rate ? "rate_limit_exceeded" : "concurrency_limit_exceeded"),
        "application/json", a.retry_after_s);
  }

  // A request no endpoint takes: the gateway's own answer on an OpenAI path (model_route.h: the
  // model list, or a model missing (400) or served by no endpoint (404)), else unknown endpoint.
  awaitable<bool> answer_unrouted(Worker& w, const std::shared_ptr<Conn>& cp, bool keep,
                                  const ModelRoute& m) {
    if (m.status == 0) co_return co_await answer_unknown_endpoint(w, cp, keep);
    if (m.status == 404) ++w.counters.r404;
    if (m.status == 400) ++w.counters.bad;
    co_return co_await write_simple(cp, cp->req.version, keep, static_cast<http::status>(m.status),
                                    m.body);
  }

  awaitable<bool> answer_unknown_endpoint(Worker& w, const std::shared_ptr<Conn>& cp, bool keep) {
    const Conn& c = *cp;
    ++w.counters.r404;
    std::string known;
    for (auto* e : endpoints) known += (known.empty() ? "" : ", ") + e->spec().name;
    co_return co_await write_simple(
        cp, c.req.version, keep, http::status::not_found,
        error_body("unknown_endpoint",
                   fmt::format("no endpoint for {}; endpoints: {} (path /<endpoint>/... or "
                               "header Tide-Endpoint)",
                               clip(c.req.has_endpoint ? c.req.endpoint : c.req.target),
                               clip(known, 1000))));
  }

  // The value of the endpoint's sticky header in `req` (0 without one).
  uint64_t sticky_key(const RequestInfo& req, const control::LiveEndpoint& ep) const {
    const size_t ep_index =
        static_cast<size_t>(std::find(endpoints.begin(), endpoints.end(), &ep) - endpoints.begin());
    const int sticky_at = sticky_index[ep_index];
    return sticky_at < 0 ? 0 : req.sticky[static_cast<size_t>(sticky_at)];
  }

  // Submits the request to its endpoint and, where it is held, waits for the outcome (watching
  // the client meanwhile). The dispatch carries the time of the first submission.
  awaitable<Dispatch> submit(Worker& w, const std::shared_ptr<Conn>& cp, control::LiveEndpoint& ep,
                             uint64_t sticky, std::optional<Time>& first_submitted) {
    Conn& c = *cp;
    const dispatch::RequestId id = (w.index << 48) | w.next_request++;
    Dispatch d = ep.submit_routed(id, sticky, &c.held);
    if (d.kind == Dispatch::Kind::kQueued) {
      arm_watch(cp);
      c.held.outcome.reset();
      c.held_timer = &c.held.timer;
      d = co_await wait_held(ep, id, c);
      c.held_timer = nullptr;
    }
    if (!first_submitted) first_submitted = d.submitted_at;
    d.submitted_at = *first_submitted;
    co_return d;
  }

  // Answers a request its dispatch refused (refusal.h says with what).
  awaitable<bool> refuse_dispatch(Worker& w, const std::shared_ptr<Conn>& cp,
                                  control::LiveEndpoint& ep, const Dispatch& d, bool keep) {
    const Refusal r = *refusal_for(d, ep.spec(), [&] { return ep.retry_after_s(d.group); });
    std::atomic<uint64_t>& counter = r.counted_as == 429   ? w.counters.r429
                                     : r.counted_as == 502 ? w.counters.r502
                                                           : w.counters.r503;
    co_return co_await refuse(cp, counter, cp->req.version, keep && r.keep,
                              static_cast<http::status>(r.status), r.type, r.message,
                              r.retry_after_s);
  }

  // How sending a request to its replica ended, and the connection it went over.
  struct Forwarded {
    Relay result = Relay::kDone;
    bool sent_any = false;  // bytes of the answer reached the client
    bool client_ok = true;  // false: writing to the client failed
    bool reusable = false;  // the connection may carry another request
    std::unique_ptr<Upstream> up;
    std::optional<control::StreamTimes> stream;  // a streamed answer's ttft and tpot
  };

  // Sends a started request to its replica and relays the answer, over a pooled connection
  // (tried again on a new one where the replica had closed it while idle) or a new one.
  awaitable<Forwarded> forward(Worker& w, const std::shared_ptr<Conn>& cp,
                               control::LiveEndpoint& ep, const Dispatch& d, bool keep,
                               std::string& last_error) {
    Conn& c = *cp;
    Forwarded f;
    f.up = take_pooled(w, d.address);
    bool fresh = f.up == nullptr;
    for (int attempt = 0;; ++attempt) {
      if (f.up == nullptr) {
        fresh = true;
        f.result = co_await open_upstream(w, cp, d, f, last_error);
        if (f.result != Relay::kDone) co_return f;
      }
      c.up = f.up.get();
      set_deadline(cp, server.upstream_timeout);
      bool body_cut = false;
      error_code rec = co_await send_request(c, *f.up, d, body_cut);
      // The response head, parsed in place: its bytes stay in up->buffer.
      ResponseHeadParser head(c.res);
      head.body_limit(boost::none);
      if (c.req.verb == http::verb::head) head.skip(true);
      size_t head_size = 0;
      if (!rec) rec = co_await read_head(c, *f.up, head, head_size);
      if (!rec) {
        const auto length = head.content_length();
        if (!head.is_done() && !(length && *length <= kWholeBodyLimit)) {
          f.result = co_await relay_stream(cp, head_size, keep, d, ep, f, last_error);
        } else {
          f.result = co_await answer_whole(cp, head, head_size, keep, d, ep, f, last_error);
        }
        co_return f;
      }
      if (c.gone) {
        f.result = Relay::kClientGone;
      } else if (rec == beast::error::timeout) {
        f.result = Relay::kUpstreamTimeout;
      } else if (!fresh && attempt == 0) {
        // A pooled connection may have been closed by the replica while idle: try a new one.
        c.up = nullptr;
        f.up.reset();
        continue;
      } else {
        last_error = no_answer(rec);
        f.result = body_cut ? Relay::kBodyRefused : Relay::kDropped;
      }
      co_return f;
    }
  }

  // A new connection to the replica of `d` into f.up: kDone, kConnectFailed or kNoDescriptors.
  awaitable<Relay> open_upstream(Worker& w, const std::shared_ptr<Conn>& cp, const Dispatch& d,
                                 Forwarded& f, std::string& last_error) {
    Conn& c = *cp;
    f.up = std::make_unique<Upstream>(c.socket.get_executor());
    c.connecting = f.up.get();
    set_deadline(cp, kConnectTimeout);
    error_code ec = co_await connect(w, *f.up, d.address);
    c.connecting = nullptr;
    if (!ec) co_return Relay::kDone;
    ec = outcome_of(c, ec);
    last_error = fmt::format("connect to {}: {}", d.address, ec.message());
    co_return local_resource_error(ec) ? Relay::kNoDescriptors : Relay::kConnectFailed;
  }

  // Writes the request (head and body) to the replica. `body_cut`: the replica closed while the
  // body was going out (it refused the body).
  awaitable<error_code> send_request(Conn& c, Upstream& up, const Dispatch& d, bool& body_cut) {
    build_upstream_request(c, d);
    Buffers request{asio::buffer(c.out), asio::buffer(c.req.body)};
    error_code rec;
    if (!write_now(up.socket, request, rec) && !rec) {
      auto [wec, wn] = co_await asio::async_write(up.socket, request, kNoThrow);
      rec = wec;
      const size_t of_head = std::min(wn, request[0].size());
      request[0] += of_head;
      request[1] += wn - of_head;
    }
    rec = outcome_of(c, rec);
    body_cut = rec && request[0].size() == 0 && request[1].size() > 0;
    co_return rec;
  }

  // Reads until `head` has the whole response head (`head_size` bytes at the front of
  // up.buffer).
  awaitable<error_code> read_head(Conn& c, Upstream& up, ResponseHeadParser& head,
                                  size_t& head_size) {
    error_code rec;
    for (;;) {
      if (up.buffer.size() > 0) {
        const size_t n = head.put(up.buffer.data(), rec);
        if (!rec) {  // the whole head (put stops after it)
          head_size = n;
          co_return rec;
        }
        if (rec != http::error::need_more) co_return rec;
        rec = {};
      }
      auto [ec, n] =
          co_await up.socket.async_read_some(up.buffer.prepare(read_size(up.buffer)), kNoThrow);
      if (ec == asio::error::eof)
        co_return head.got_some() ? http::error::partial_message : http::error::end_of_stream;
      if (ec) co_return outcome_of(c, ec);
      up.buffer.commit(n);
    }
  }

  // Why a replica gave no answer, for messages.
  static std::string no_answer(const error_code& rec) {
    const bool closed = rec == http::error::end_of_stream || rec == http::error::partial_message ||
                        rec == asio::error::eof || rec == asio::error::connection_reset ||
                        rec == asio::error::broken_pipe;
    return fmt::format("{}: {}",
                       closed ? "closed the connection without answering"
                              : "answered with something that is not an HTTP response",
                       rec.message());
  }

  // Short and sized: read it whole, then head and body go out in one write.
  awaitable<Relay> answer_whole(const std::shared_ptr<Conn>& cp, ResponseHeadParser& head,
                                size_t head_size, bool keep, const Dispatch& d,
                                control::LiveEndpoint& ep, Forwarded& f, std::string& last_error) {
    Conn& c = *cp;
    Upstream& up = *f.up;
    const bool upstream_keep = head.keep_alive();
    const size_t body = head.is_done() ? 0 : static_cast<size_t>(*head.content_length());
    const size_t total = head_size + body;
    while (up.buffer.size() < total) {
      auto [ec, n] = co_await up.socket.async_read_some(
          up.buffer.prepare(std::max<size_t>(total - up.buffer.size(), read_size(up.buffer))),
          kNoThrow);
      if (ec == asio::error::eof) ec = http::error::partial_message;
      if (ec) {
        ec = outcome_of(c, ec);
        if (c.gone) co_return Relay::kClientGone;
        if (ec == beast::error::timeout) co_return Relay::kUpstreamTimeout;
        last_error = fmt::format("cut its answer short: {}", ec.message());
        co_return Relay::kDropped;
      }
      up.buffer.commit(n);
    }
    build_client_head(c, keep, d, ep);
    set_deadline(cp, server.upstream_timeout);
    f.sent_any = true;
    const auto* data = static_cast<const char*>(up.buffer.data().data());
    Buffers response{asio::buffer(c.out), asio::buffer(data + head_size, body)};
    error_code wec;
    if (!write_now(c.socket, response, wec) && !wec) {
      auto [ec, n] = co_await asio::async_write(c.socket, response, kNoThrow);
      wec = ec;
    }
    up.buffer.consume(total);
    f.reusable = upstream_keep;
    if (!wec) co_return Relay::kDone;
    f.client_ok = false;
    co_return Relay::kAborted;
  }

  // The head of a whole answer for the client into c.out: the replica's status and end-to-end
  // fields, Tide-Replica, Tide-Group and the client's Connection.
  void build_client_head(Conn& c, bool keep, const Dispatch& d, control::LiveEndpoint& ep) {
    const unsigned version = c.req.version;
    std::string& o = c.out;
    o.clear();
    append_status_line(o, version, c.res.status, c.res.reason);
    o += c.res.fields;
    o += "Tide-Replica: ";
    append_replica(o, ep, d);
    o += "\r\nTide-Group: ";
    o += ep.spec().groups[static_cast<size_t>(d.group)].name;
    o += "\r\n";
    append_keep_alive(o, version, keep);
    o += "\r\n";
  }

  // Tells the endpoint how the request ended and answers the client where it still waits;
  // returns whether the connection may carry another request, or nullopt to submit it again
  // (a failed connect, once).
  awaitable<std::optional<bool>> conclude(Worker& w, const std::shared_ptr<Conn>& cp,
                                          control::LiveEndpoint& ep, const Dispatch& d,
                                          const Forwarded& f, bool keep, int& retries_left,
                                          const std::string& last_error) {
    Conn& c = *cp;
    switch (f.result) {
      case Relay::kDone:
        ep.finish(d, Outcome::kOk, f.stream ? &*f.stream : nullptr);
        ++w.counters.ok;
        disarm_watch(c);
        co_return f.client_ok&& keep;
      case Relay::kClientGone:
      case Relay::kAborted:
        // Aborted with the client still there: the replica cut its answer midway.
        ep.finish(d, f.result == Relay::kAborted && f.client_ok ? Outcome::kBadGateway
                                                                : Outcome::kClientGone);
        ++w.counters.client_gone;
        disarm_watch(c);
        co_return false;
      case Relay::kUpstreamTimeout:
        ep.finish(d, Outcome::kTimeout);
        ++w.counters.r504;
        disarm_watch(c);
        if (f.sent_any) co_return false;
        co_return co_await write_simple(
            cp, c.req.version, false, http::status::gateway_timeout,
            error_body("upstream_timeout",
                       fmt::format("replica {} did not answer within {} (server.upstream_timeout)",
                                   d.address, format_duration(server.upstream_timeout))));
      case Relay::kConnectFailed:
        ++w.counters.upstream_errors;
        ep.unreachable(d, last_error);  // nothing was sent: another replica may take it
        if (retries_left-- > 0) {
          ++w.counters.retries;
          co_return std::nullopt;
        }
        ep.count(d.group, Outcome::kBadGateway);
        co_return co_await refuse(
            cp, w.counters.r502, c.req.version, keep, http::status::bad_gateway,
            "replica_unreachable",
            fmt::format("no connection to the replicas given this request: {}", last_error));
      case Relay::kDropped:
      case Relay::kBodyRefused:
      case Relay::kNoDescriptors:
        co_return co_await refuse_dropped(w, cp, ep, d, f.result, keep, f.sent_any, last_error);
    }
    co_return false;
  }

  // A request its replica took and did not answer (kDropped, kBodyRefused), or one tide could not
  // send (kNoDescriptors): answered with why, never retried, and the replica not blamed (its
  // probes, process and agent say whether it is healthy).
  awaitable<bool> refuse_dropped(Worker& w, const std::shared_ptr<Conn>& cp,
                                 control::LiveEndpoint& ep, const Dispatch& d, Relay result,
                                 bool keep, bool sent_any, const std::string& why) {
    Conn& c = *cp;
    const unsigned version = c.req.version;
    const std::string replica =
        fmt::format("{}/{}", ep.spec().groups[static_cast<size_t>(d.group)].name, d.replica_id);
    if (result == Relay::kNoDescriptors) {
      ep.finish(d, Outcome::kUnavailable);
      ++w.counters.fd_exhausted;
      note(w, fmt::format("cannot reach replica {}: {}", replica, why));
      co_return co_await refuse(
          cp, w.counters.r503, version, keep, http::status::service_unavailable, "no_descriptors",
          fmt::format("tide cannot open a connection ({}); raise its open-files limit", why), 1);
    }
    ++w.counters.upstream_errors;
    ep.finish(d, Outcome::kBadGateway);
    if (sent_any) {  // part of the answer went out: nothing honest can follow
      disarm_watch(c);
      co_return false;
    }
    if (result == Relay::kBodyRefused) {
      co_return co_await refuse(
          cp, w.counters.bad, version, false, http::status::payload_too_large, "body_refused",
          fmt::format("replica {} closed the connection while the {}-byte body was being sent: it "
                      "takes no body this large ({})",
                      replica, c.req.body.size(), why));
    }
    co_return co_await refuse(
        cp, w.counters.r502, version, false, http::status::bad_gateway, "replica_dropped",
        fmt::format("replica {} took the request ({} header bytes, {} body bytes) and {}; not "
                    "retried, as a request a replica cannot take may hurt the next one",
                    replica, c.req.fields.size() + c.req.target.size(), c.req.body.size(), why));
  }

  // The Tide-Replica value: endpoint/group/replica id.
  static void append_replica(std::string& o, control::LiveEndpoint& ep, const Dispatch& d) {
    o += ep.spec().name;
    o += '/';
    o += ep.spec().groups[static_cast<size_t>(d.group)].name;
    o += '/';
    append_number(o, d.replica_id);
  }

  // Streamed: chunked bodies, SSE, close-delimited or large ones, through Beast's parser and
  // serializer; the head (still in up.buffer) is parsed again by Beast's parser. A complete
  // answer's ttft (and tpot for SSE) go to f.stream (stream_timer.h).
  awaitable<Relay> relay_stream(const std::shared_ptr<Conn>& cp, size_t head_size, bool keep,
                                const Dispatch& d, control::LiveEndpoint& ep, Forwarded& f,
                                std::string& last_error) {
    Conn& c = *cp;
    Upstream& up = *f.up;
    http::response_parser<http::buffer_body> p;
    p.body_limit(boost::none);
    if (c.req.verb == http::verb::head) p.skip(true);
    {
      error_code pec;
      const size_t n =
          p.put(asio::buffer(static_cast<const char*>(up.buffer.data().data()), head_size), pec);
      if (pec || !p.is_header_done()) {
        last_error = fmt::format("sent a head Beast cannot parse: {}",
                                 pec ? pec.message() : std::string("incomplete"));
        co_return Relay::kDropped;
      }
      up.buffer.consume(n);
    }
    const bool upstream_keep = p.keep_alive();
    const net::RelayHead head = net::prepare_relay_head(p, c.req.version, keep);
    auto& msg = p.get();
    std::string replica;
    append_replica(replica, ep, d);
    msg.set("Tide-Replica", replica);
    msg.set("Tide-Group", ep.spec().groups[static_cast<size_t>(d.group)].name);
    msg.keep_alive(head.keep);
    const beast::string_view type = msg[http::field::content_type];
    StreamTimer timer(d.submitted_at, is_event_stream({type.data(), type.size()}));
    const tide::Clock& clock = ep.clock();
    // The deadline set before sending still runs.
    const net::RelayEnd end = co_await net::relay_body(
        up.socket, up.buffer, p, c.socket, head.delimited_by_close, f.sent_any,
        [&](const char* data, size_t size) {
          if (size > 0 && timer.wants_time()) timer.on_body(clock.now(), {data, size});
        },
        [] {});
    if (end.side == net::RelayEnd::kUpstream) {
      const error_code ec = outcome_of(c, end.ec);
      if (c.gone) co_return Relay::kClientGone;
      if (ec == beast::error::timeout) co_return Relay::kUpstreamTimeout;
      last_error = fmt::format("cut its answer short: {}", ec.message());
      if (!f.sent_any) co_return Relay::kDropped;
      co_return Relay::kAborted;
    }
    if (end.side == net::RelayEnd::kClient) {
      f.client_ok = false;
      co_return Relay::kAborted;
    }
    f.reusable = upstream_keep && !head.delimited_by_close;
    f.stream = timer.times();
    co_return Relay::kDone;
  }
};

Gateway::Gateway(const config::ServerSpec& server, std::vector<control::LiveEndpoint*> endpoints,
                 std::vector<asio::io_context*> contexts, ApiHandler api)
    : impl_(std::make_unique<Impl>()) {
  if (contexts.empty()) throw std::runtime_error("gateway: no io_context");
  impl_->server = server;
  impl_->endpoints = std::move(endpoints);
  for (const control::LiveEndpoint* ep : impl_->endpoints) {
    const std::string& header = ep->spec().routing.sticky_header;
    int index = -1;
    if (!header.empty()) {
      auto it = std::find_if(impl_->sticky_names.begin(), impl_->sticky_names.end(),
                             [&](const std::string& n) { return beast::iequals(n, header); });
      if (it == impl_->sticky_names.end()) it = impl_->sticky_names.insert(it, header);
      index = static_cast<int>(it - impl_->sticky_names.begin());
    }
    impl_->sticky_index.push_back(index);
  }
  impl_->api = std::move(api);
  impl_->body_budget = std::make_unique<BodyBudget>(server.max_body_memory);
  if (server.tls.enabled()) impl_->tls = std::make_unique<TlsCerts>(server.tls, "server.tls");
  if (server.api_tls.enabled())
    impl_->api_tls = std::make_unique<TlsCerts>(server.api_tls, "server.api_tls");
  impl_->created_unix = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  // The port must be free of other processes' listeners: SO_REUSEPORT would let a second tide
  // on the same port take half of the traffic.
  impl_->listen_port =
      impl_->bind(*contexts.front(), server.listen, 0, /*reuse_port=*/false, /*listen=*/false)
          ->local_endpoint()
          .port();
  for (asio::io_context* ctx : contexts) {
    auto w = std::make_unique<Impl::Worker>();
    w->ctx = ctx;
    w->index = impl_->workers.size();
    w->sweep_timer = std::make_unique<Timer>(ctx->get_executor());
    w->pool_timer = std::make_unique<Timer>(ctx->get_executor());
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
    asio::co_spawn(*w->ctx, impl_->accept_loop(*w, *w->acceptor, false),
                   TaskEnd("the gateway's accept loop", &w->counters.internal, impl_->log));
    if (w->api_acceptor)
      asio::co_spawn(*w->ctx, impl_->accept_loop(*w, *w->api_acceptor, true),
                     TaskEnd("the API's accept loop", &w->counters.internal, impl_->log));
  }
}

void Gateway::set_log(std::function<void(const std::string&)> log) { impl_->log = std::move(log); }

bool Gateway::tls() const { return impl_->tls != nullptr; }
bool Gateway::api_tls() const { return impl_->api_tls != nullptr; }

std::vector<std::string> Gateway::describe_tls() const {
  std::vector<std::string> out;
  for (const TlsCerts* c : {impl_->tls.get(), impl_->api_tls.get()}) {
    if (c != nullptr) out.push_back(fmt::format("{}: {}", c->field(), c->describe()));
  }
  return out;
}

std::vector<std::string> Gateway::reload_tls() {
  std::vector<std::string> out;
  for (TlsCerts* c : {impl_->tls.get(), impl_->api_tls.get()}) {
    if (c != nullptr) out.push_back(c->reload());
  }
  return out;
}

void Gateway::set_client_keys(const auth::ClientKeyRing* keys) { impl_->client_keys = keys; }

void Gateway::stop_accepting() {
  impl_->accepting = false;
  for (auto& w : impl_->workers) {
    asio::post(*w->ctx, [acc = w->acceptor.get()] {
      error_code ignored;
      acc->close(ignored);
    });
  }
}

int Gateway::active_requests() const {
  int n = 0;
  for (const auto& w : impl_->workers) n += w->counters.active.load();
  return n;
}

GatewayCounters Gateway::counters() const {
  GatewayCounters g;
  for (const auto& w : impl_->workers) {
    const Counters& c = w->counters;
    g.requests += c.requests;
    g.ok += c.ok;
    g.rejected_429 += c.r429;
    g.rejected_503 += c.r503;
    g.rejected_502 += c.r502;
    g.timed_out_504 += c.r504;
    g.not_found_404 += c.r404;
    g.bad_requests += c.bad;
    g.retries += c.retries;
    g.client_disconnects += c.client_gone;
    g.upstream_errors += c.upstream_errors;
    g.connections_refused += c.conn_refused;
    g.body_memory_refused += c.body_memory;
    g.fd_exhausted += c.fd_exhausted;
    g.internal_errors += c.internal;
    g.unauthorized += c.unauthorized;
    g.key_limited += c.key_limited;
  }
  g.body_memory_bytes = impl_->body_budget->used();
  g.open_connections = impl_->connections.load(std::memory_order_relaxed);
  g.open_api_connections = impl_->api_connections.load(std::memory_order_relaxed);
  return g;
}

void Gateway::close() {
  for (auto& w : impl_->workers) {
    w->pool.clear();
    w->sweep_timer.reset();
    w->pool_timer.reset();
    // Connections parked in the contexts are destroyed with them: none may point into the list.
    while (w->in_service != nullptr) unlink_in_service(*w->in_service);
    w->acceptor.reset();
    w->api_acceptor.reset();
  }
}

}  // namespace tide::gateway
