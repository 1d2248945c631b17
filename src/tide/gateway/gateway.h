// The data plane of `tide serve`: an HTTP/1.1 reverse proxy that routes each request to an
// endpoint, holds it while no replica has a free slot, proxies it to the replica the endpoint's
// dispatcher picked (reusing upstream connections), and streams the answer back as it comes.
// It also serves the admin API on a second listener through a plain handler. Either listener may
// speak HTTPS (server.tls, server.api_tls): TLS ends in the gateway, before the same code.
//
// Threads: one io_context per thread, given by the caller; each runs an acceptor on the same
// port (SO_REUSEPORT, after checking that no other process listens there) and its own upstream
// connection pool, so a request never changes thread.
// Endpoints are shared; LiveEndpoint takes its own lock. Beast and Asio stay in gateway.cc.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tide/config/config.h"
#include "tide/control/live_endpoint.h"

namespace boost::asio {
class io_context;
}
namespace tide::auth {
class ClientKeyRing;
}

namespace tide::gateway {

// One API exchange, free of Beast types.
struct ApiRequest {
  std::string method;
  std::string target;  // path and query
  std::string body;
  std::string authorization;
};
// A response whose body goes on (server-sent events): after the head and the response's `body`,
// the gateway calls `next` every `interval` on the connection's thread and sends what it returns,
// until `next` returns nullopt, the client goes away, or the gateway stops accepting (shutdown).
// HTTP/1.1 clients get it chunked; the connection closes at the end.
struct ApiStream {
  Duration interval = std::chrono::seconds(1);
  std::function<std::optional<std::string>()> next;
};
struct ApiResponse {
  ApiResponse(int status_code = 200, std::string type = "application/json", std::string text = {},
              int retry_after = 0)
      : status(status_code),
        content_type(std::move(type)),
        body(std::move(text)),
        retry_after_s(retry_after) {}
  int status;
  std::string content_type;
  std::string body;
  int retry_after_s;                  // > 0: sent as Retry-After
  std::shared_ptr<ApiStream> stream;  // set: `body` is only the start (see ApiStream)
};
// Called on a gateway thread; must not block for long.
using ApiHandler = std::function<ApiResponse(const ApiRequest&)>;

// Counters of what the gateway did (every handled error is counted).
struct GatewayCounters {
  uint64_t requests = 0;
  uint64_t ok = 0;                  // answered by a replica (any status it chose)
  uint64_t rejected_429 = 0;        // hold queue full
  uint64_t rejected_503 = 0;        // queue timeout, shutting down, no replica (skyserve-like)
  uint64_t rejected_502 = 0;        // replica failed twice, or no replica (hf-like)
  uint64_t timed_out_504 = 0;       // replica did not answer within upstream_timeout
  uint64_t not_found_404 = 0;       // no such endpoint
  uint64_t bad_requests = 0;        // 400, 408, 413, 431
  uint64_t retries = 0;             // requests sent again after their replica failed
  uint64_t client_disconnects = 0;  // clients gone before their answer was complete
  uint64_t upstream_errors = 0;     // connect/read/write errors talking to replicas
  // Limits (docs/reliability.md) and the gateway's own troubles.
  uint64_t connections_refused = 0;  // over server.max_connections / api_max_connections: 503
  uint64_t body_memory_refused = 0;  // bodies in memory at server.max_body_memory: 503
  uint64_t fd_exhausted = 0;         // accept or connect found no file descriptor left
  uint64_t internal_errors = 0;      // exceptions that ended a connection (logged)
  uint64_t unauthorized = 0;         // 401: no client key or an unknown one; 403: out of its scope
  uint64_t key_limited = 0;          // 429: over its client key's rate or concurrency limit
  // Gauges: what the limits hold now.
  int64_t body_memory_bytes = 0;  // request bodies reserved in memory (server.max_body_memory)
  int open_connections = 0;       // client connections to the gateway (server.max_connections)
  int open_api_connections = 0;   // and to the admin API (server.api_max_connections)
};

class Gateway {
 public:
  // Binds the data-plane listener (server.listen) on every context, and the API listener
  // (server.api) on the first; throws std::runtime_error naming the address when it cannot.
  // `endpoints` and `contexts` must outlive the Gateway.
  Gateway(const config::ServerSpec& server, std::vector<control::LiveEndpoint*> endpoints,
          std::vector<boost::asio::io_context*> contexts, ApiHandler api);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  uint16_t port() const;
  uint16_t api_port() const;

  // Starts accepting on every context (the contexts' threads do the work).
  void start();
  // Stops accepting new connections; requests in progress continue. Thread-safe.
  void stop_accepting();
  // Requests between their first byte and their last (held ones included).
  int active_requests() const;
  GatewayCounters counters() const;
  // Releases every socket. Call after the contexts have stopped and before they are destroyed.
  void close();
  // Where the gateway tells what an operator should know (bad requests, exceptions, fd
  // exhaustion; rate-limited). Called on gateway threads. Set before start().
  void set_log(std::function<void(const std::string&)> log);
  // With server.client_auth: keys, the keys every gateway request must carry (`keys` must
  // outlive the Gateway; its changes take effect at once). Set before start().
  void set_client_keys(const auth::ClientKeyRing* keys);

  // Whether the gateway's listener (server.tls) and the API's (server.api_tls) speak HTTPS.
  bool tls() const;
  bool api_tls() const;
  // A line per TLS listener: its field and certificate (subject, serial, expiry).
  std::vector<std::string> describe_tls() const;
  // Reads every TLS listener's files again (SIGHUP); thread-safe. New connections get the new
  // certificate, open ones keep theirs; a file that fails keeps the previous certificate. A line
  // per listener says which happened.
  std::vector<std::string> reload_tls();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tide::gateway
