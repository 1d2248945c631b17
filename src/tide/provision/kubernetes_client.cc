#include "tide/provision/kubernetes_client.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <optional>
#include <vector>

#include "tide/net/address.h"

namespace tide::provision::detail {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using asio::awaitable;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr size_t kMaxBody = 64 * 1024 * 1024;  // a pod list of thousands of pods
constexpr size_t kMaxLine = 4 * 1024 * 1024;   // one watch event

std::string ssl_error_text() {
  std::string out;
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += (out.empty() ? "" : "; ") + std::string(buf);
  }
  return out;
}

std::string describe(const error_code& ec, Duration timeout) {
  if (ec == beast::error::timeout) return "timed out after " + format_duration(timeout);
  return ec.message();
}

// The headers every request carries, the bearer token among them; the token file's problem.
template <class Body>
std::string set_headers(http::request<Body>& req, const kube::ClusterAccess& access) {
  req.set(http::field::host, net::join_host_port(access.host, access.port));
  req.set(http::field::user_agent, "tide");
  req.set(http::field::accept, "application/json");
  try {
    if (const std::string token = kube::bearer_token(access); !token.empty())
      req.set(http::field::authorization, "Bearer " + token);
  } catch (const kube::KubeError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// An operation in flight, cancelled by cancel_all() until it ends.
class KubeClient::Tracked {
 public:
  Tracked(KubeClient& client, std::function<void()> cancel)
      : client_(client), id_(client.track(std::move(cancel))) {}
  ~Tracked() { client_.untrack(id_); }
  Tracked(const Tracked&) = delete;
  Tracked& operator=(const Tracked&) = delete;

 private:
  KubeClient& client_;
  uint64_t id_;
};

std::string ApiResponse::describe() const {
  if (status == 0) return error;
  return kube::describe_error(status, body);
}

// A TCP connection, with TLS over it when the server is https.
struct KubeClient::Connection {
  Connection(const Strand& strand, ssl::context* ssl) {
    if (ssl != nullptr) {
      tls.emplace(strand, *ssl);
    } else {
      plain.emplace(strand);
    }
  }
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;

  beast::tcp_stream& tcp() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
  template <class F>
  auto with_stream(F&& f) {
    return tls ? f(*tls) : f(*plain);
  }
};

KubeClient::KubeClient(Strand strand, kube::ClusterAccess access)
    : strand_(std::move(strand)), access_(std::move(access)) {
  if (!access_.tls) return;
  ssl_ = std::make_unique<ssl::context>(ssl::context::tls_client);
  const std::string& what = access_.description;
  error_code ec;
  if (access_.insecure_skip_tls_verify) {
    ssl_->set_verify_mode(ssl::verify_none);
  } else {
    ssl_->set_verify_mode(ssl::verify_peer);
    if (access_.ca_pem.empty()) {
      ssl_->set_default_verify_paths(ec);
      if (ec)
        throw kube::KubeError(
            fmt::format("{}: the system's CA certificates: {}", what, ec.message()));
    } else {
      ssl_->add_certificate_authority(asio::buffer(access_.ca_pem), ec);
      if (ec)
        throw kube::KubeError(fmt::format("{}: the cluster's CA certificate: {} {}", what,
                                          ec.message(), ssl_error_text()));
    }
  }
  if (!access_.client_cert_pem.empty()) {
    ssl_->use_certificate_chain(asio::buffer(access_.client_cert_pem), ec);
    if (ec)
      throw kube::KubeError(
          fmt::format("{}: the client certificate: {} {}", what, ec.message(), ssl_error_text()));
    ssl_->use_private_key(asio::buffer(access_.client_key_pem), ssl::context::pem, ec);
    if (ec)
      throw kube::KubeError(
          fmt::format("{}: the client key: {} {}", what, ec.message(), ssl_error_text()));
  }
}

KubeClient::~KubeClient() = default;

std::string KubeClient::target(const std::string& path) const { return access_.base_path + path; }

uint64_t KubeClient::track(std::function<void()> cancel) {
  const uint64_t id = ++next_op_;
  in_flight_.emplace(id, std::move(cancel));
  return id;
}

void KubeClient::untrack(uint64_t id) { in_flight_.erase(id); }

void KubeClient::cancel_all() {
  cancelled_ = true;
  auto ops = std::move(in_flight_);
  in_flight_.clear();
  for (auto& [id, cancel] : ops) cancel();
}

awaitable<std::string> KubeClient::connect(Connection& c, Duration timeout) {
  const std::string where = net::join_host_port(access_.host, access_.port);
  std::vector<tcp::endpoint> endpoints;
  error_code ec;
  const auto address = asio::ip::make_address(access_.host, ec);
  if (!ec) {
    endpoints.emplace_back(address, access_.port);
  } else {
    tcp::resolver resolver(strand_);
    const std::string service = std::to_string(access_.port);
    auto [rec, results] = co_await resolver.async_resolve(access_.host, service, kNoThrow);
    if (rec) co_return fmt::format("cannot resolve {}: {}", access_.host, rec.message());
    for (const auto& r : results) endpoints.push_back(r.endpoint());
  }
  c.tcp().expires_after(timeout);
  if (auto [cec, ep] = co_await c.tcp().async_connect(endpoints, kNoThrow); cec)
    co_return fmt::format("connect {}: {}", where, describe(cec, timeout));
  if (!c.tls) co_return "";
  const std::string server_name =
      access_.tls_server_name.empty() ? access_.host : access_.tls_server_name;
  if (asio::ip::make_address(server_name, ec); ec) {  // SNI for names only
    if (!SSL_set_tlsext_host_name(c.tls->native_handle(), server_name.c_str()))
      co_return fmt::format("TLS to {}: cannot set the server name", where);
  }
  if (!access_.insecure_skip_tls_verify)
    c.tls->set_verify_callback(ssl::host_name_verification(server_name));
  if (auto [hec] = co_await c.tls->async_handshake(ssl::stream_base::client, kNoThrow); hec) {
    // OpenSSL's error queue is shared by the handshakes in flight on this thread: the verify
    // result of this connection says what was wrong with the server's certificate.
    const long verify = SSL_get_verify_result(c.tls->native_handle());
    if (verify != X509_V_OK)
      co_return fmt::format("TLS handshake with {}: certificate verify failed: {}", where,
                            X509_verify_cert_error_string(verify));
    co_return fmt::format("TLS handshake with {}: {}", where, describe(hec, timeout));
  }
  co_return "";
}

awaitable<ApiResponse> KubeClient::request(std::string_view method, const std::string& path,
                                           const std::string& body, Duration timeout) {
  auto self = shared_from_this();
  ApiResponse out;
  if (cancelled_) {
    out.error = "cancelled";
    co_return out;
  }
  http::request<http::string_body> req{http::string_to_verb(method), target(path), 11};
  if (std::string error = set_headers(req, access_); !error.empty()) {
    out.error = std::move(error);
    co_return out;
  }
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  req.keep_alive(false);

  Connection c(strand_, ssl_.get());
  const Tracked tracked(*this, [&c] { c.tcp().cancel(); });

  if (std::string error = co_await connect(c, timeout); !error.empty()) {
    out.error = cancelled_ ? "cancelled" : error;
    co_return out;
  }
  const std::string what = fmt::format("{} {}", method, path);
  auto [wec, written] =
      co_await c.with_stream([&](auto& s) { return http::async_write(s, req, kNoThrow); });
  if (wec) {
    out.error = cancelled_ ? "cancelled" : fmt::format("{}: {}", what, describe(wec, timeout));
    co_return out;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxBody);
  auto [rec, read] = co_await c.with_stream(
      [&](auto& s) { return http::async_read(s, buffer, parser, kNoThrow); });
  if (rec) {
    out.error = cancelled_ ? "cancelled" : fmt::format("{}: {}", what, describe(rec, timeout));
    co_return out;
  }
  out.status = parser.get().result_int();
  out.body = std::move(parser.get().body());
  error_code ignored;
  c.tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
  co_return out;
}

awaitable<ApiResponse> KubeClient::stream(const std::string& path,
                                          std::function<bool(std::string_view)> on_line,
                                          Duration idle) {
  auto self = shared_from_this();
  ApiResponse out;
  if (cancelled_) {
    out.error = "cancelled";
    co_return out;
  }
  http::request<http::empty_body> req{http::verb::get, target(path), 11};
  if (std::string error = set_headers(req, access_); !error.empty()) {
    out.error = std::move(error);
    co_return out;
  }

  Connection c(strand_, ssl_.get());
  const Tracked tracked(*this, [&c] { c.tcp().cancel(); });
  auto fail = [&](const error_code& ec) {
    out.error = cancelled_ ? "cancelled" : fmt::format("watch {}: {}", path, describe(ec, idle));
    return out;
  };

  if (std::string error = co_await connect(c, idle); !error.empty()) {
    out.error = cancelled_ ? "cancelled" : error;
    co_return out;
  }
  c.tcp().expires_after(idle);
  if (auto [wec, n] =
          co_await c.with_stream([&](auto& s) { return http::async_write(s, req, kNoThrow); });
      wec)
    co_return fail(wec);
  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);  // a watch has no end
  c.tcp().expires_after(idle);
  if (auto [hec, n] = co_await c.with_stream(
          [&](auto& s) { return http::async_read_header(s, buffer, parser, kNoThrow); });
      hec)
    co_return fail(hec);
  out.status = parser.get().result_int();
  const bool streaming = out.status == 200;
  std::string line;
  char chunk[16 * 1024];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    c.tcp().expires_after(idle);
    auto [rec, n] = co_await c.with_stream(
        [&](auto& s) { return http::async_read_some(s, buffer, parser, kNoThrow); });
    if (rec && rec != http::error::need_buffer) {
      if (rec == http::error::end_of_stream || rec == http::error::partial_message ||
          rec == asio::error::eof)
        break;  // the server closed the stream: the caller watches again
      co_return fail(rec);
    }
    const size_t got = sizeof chunk - parser.get().body().size;
    if (!streaming) {
      if (out.body.size() < kMaxBody) out.body.append(chunk, got);
      continue;
    }
    for (size_t i = 0; i < got; ++i) {
      if (chunk[i] != '\n') {
        line += chunk[i];
        if (line.size() > kMaxLine) {
          out.error = fmt::format("watch {}: an event longer than {} bytes", path, kMaxLine);
          co_return out;
        }
        continue;
      }
      const bool more = line.empty() || on_line(line);
      line.clear();
      if (cancelled_) {
        out.error = "cancelled";
        co_return out;
      }
      if (!more) co_return out;
    }
  }
  if (streaming && !line.empty()) on_line(line);
  co_return out;
}

}  // namespace tide::provision::detail
