#include "tide/cli/http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>

#include "tide/net/address.h"

namespace tide::cli {
namespace {

using SteadyTime = std::chrono::steady_clock;

// Beyond this an answer is not the admin API's: stop reading instead of eating memory.
constexpr size_t kMaxAnswerBytes = 256u << 20;
constexpr size_t kMaxHeadBytes = 64u << 10;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// strerror with a lower-case start, to follow "cannot reach ...: ".
std::string errno_text(int e) {
  std::string s = std::strerror(e);
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

// Decodes a chunked body from `body`. kIncomplete while the last chunk has not arrived.
ParsedResponse::State dechunk(std::string_view body, std::string& out, std::string& error) {
  size_t at = 0;
  out.clear();
  for (;;) {
    const size_t eol = body.find("\r\n", at);
    if (eol == std::string_view::npos) return ParsedResponse::State::kIncomplete;
    std::string_view size_line = body.substr(at, eol - at);
    size_line = trim(size_line.substr(0, size_line.find(';')));  // chunk extensions
    size_t size = 0;
    const auto [end, ec] =
        std::from_chars(size_line.data(), size_line.data() + size_line.size(), size, 16);
    if (ec != std::errc() || end != size_line.data() + size_line.size() || size_line.empty()) {
      error = fmt::format("bad chunk size \"{}\"", size_line);
      return ParsedResponse::State::kBad;
    }
    if (size == 0) {
      // Trailers (none expected) end with an empty line.
      const size_t trailers = eol + 2;
      if (body.substr(trailers, 2) == "\r\n" ||
          body.find("\r\n\r\n", trailers) != std::string_view::npos)
        return ParsedResponse::State::kComplete;
      return ParsedResponse::State::kIncomplete;
    }
    if (size > kMaxAnswerBytes) {
      error = "a chunk larger than 256 MiB";
      return ParsedResponse::State::kBad;
    }
    if (body.size() < eol + 2 + size + 2) return ParsedResponse::State::kIncomplete;
    out.append(body.substr(eol + 2, size));
    if (body.substr(eol + 2 + size, 2) != "\r\n") {
      error = "chunk not followed by CRLF";
      return ParsedResponse::State::kBad;
    }
    at = eol + 2 + size + 2;
  }
}

int connect_with_deadline(const ApiUrl& url, SteadyTime::time_point deadline, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(url.port);
  if (const int rc = ::getaddrinfo(url.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    error = fmt::format("cannot resolve {}: {}", url.host, ::gai_strerror(rc));
    return -1;
  }
  int last_errno = ECONNREFUSED;
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      last_errno = errno;
      continue;
    }
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      int e = errno;
      if (e == EINPROGRESS) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyTime::now());
        pollfd p{fd, POLLOUT, 0};
        const int ready = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
        socklen_t len = sizeof e;
        if (ready <= 0) {
          e = ETIMEDOUT;
        } else if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0) {
          e = errno;
        }
      }
      if (e != 0 && e != EINPROGRESS) {
        last_errno = e;
        ::close(fd);
        fd = -1;
      }
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0) {
    error = errno_text(last_errno);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Waits for `events` on `fd` until the deadline; false on timeout.
bool wait_for(int fd, short events, SteadyTime::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyTime::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return true;  // let the next call report the error
  }
}

// OpenSSL's reason for the last failure on this thread (its queue emptied).
std::string openssl_reason() {
  std::string out = "unknown TLS error";
  while (const unsigned long e = ERR_get_error()) {
    if (const char* r = ERR_reason_error_string(e)) out = r;
  }
  return out;
}

// One connection's bytes, plain or through TLS; owns the socket. Every call waits at most until
// the deadline (then fails with `error` left empty) and sets `error` on any other failure.
class Channel {
 public:
  explicit Channel(int fd) : fd_(fd) {}
  ~Channel() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    ::close(fd_);
  }
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // The TLS handshake, verifying that the server's certificate chains to url.ca_file (else the
  // system's CAs) and names url.host, as curl does.
  bool start_tls(const ApiUrl& url, SteadyTime::time_point deadline, std::string& error) {
    if (!make_ssl(url, error)) return false;
    if (tls_call([&] { return SSL_connect(ssl_); }, deadline, error) > 0) return true;
    const long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK) {
      error = fmt::format(
          "the server's TLS certificate is not trusted: {} (give its CA with --cacert FILE or "
          "TIDE_CACERT)",
          X509_verify_cert_error_string(verify));
    } else if (error.empty()) {
      error = "no TLS handshake within the timeout";
    } else {
      error = "TLS handshake: " + error;
    }
    return false;
  }

  bool send_all(std::string_view data, SteadyTime::time_point deadline, std::string& error) {
    size_t sent = 0;
    while (sent < data.size()) {
      const std::string_view rest = data.substr(sent);
      const ssize_t n =
          ssl_ != nullptr
              ? tls_call(
                    [&] { return SSL_write(ssl_, rest.data(), static_cast<int>(rest.size())); },
                    deadline, error)
              : plain_call(POLLOUT, deadline, error,
                           [&] { return ::send(fd_, rest.data(), rest.size(), MSG_NOSIGNAL); });
      if (n <= 0) {
        if (n == 0) error = errno_text(EPIPE);
        return false;
      }
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // Bytes read (> 0), 0 when the server has closed, -1 on timeout or error.
  ssize_t receive(char* buf, size_t size, SteadyTime::time_point deadline, std::string& error) {
    if (ssl_ != nullptr)
      return tls_call([&] { return SSL_read(ssl_, buf, static_cast<int>(size)); }, deadline, error);
    return plain_call(POLLIN, deadline, error, [&] { return ::recv(fd_, buf, size, 0); });
  }

 private:
  bool make_ssl(const ApiUrl& url, std::string& error) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (ctx_ == nullptr) {
      error = "TLS: " + openssl_reason();
      return false;
    }
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_options(ctx_, SSL_OP_IGNORE_UNEXPECTED_EOF);  // the parser says what is missing
    const bool cas = url.ca_file.empty()
                         ? SSL_CTX_set_default_verify_paths(ctx_) == 1
                         : SSL_CTX_load_verify_locations(ctx_, url.ca_file.c_str(), nullptr) == 1;
    if (!cas) {
      error = fmt::format("cannot load the CA certificates {}: {}",
                          url.ca_file.empty() ? "of the system" : url.ca_file, openssl_reason());
      return false;
    }
    ssl_ = SSL_new(ctx_);
    if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_) != 1) {
      error = "TLS: " + openssl_reason();
      return false;
    }
    in6_addr any{};
    const bool is_ip = ::inet_pton(AF_INET, url.host.c_str(), &any) == 1 ||
                       ::inet_pton(AF_INET6, url.host.c_str(), &any) == 1;
    if (is_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), url.host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl_, url.host.c_str());
      SSL_set1_host(ssl_, url.host.c_str());
    }
    return true;
  }

  // Calls `op` (SSL_connect, SSL_read, SSL_write) until it is done, waiting for the socket as
  // OpenSSL asks. Its result (> 0), 0 at the server's close, -1 on timeout or error.
  template <class Op>
  ssize_t tls_call(Op op, SteadyTime::time_point deadline, std::string& error) {
    for (;;) {
      ERR_clear_error();
      const int n = op();
      if (n > 0) return n;
      const int why = SSL_get_error(ssl_, n);
      if (why == SSL_ERROR_ZERO_RETURN) return 0;
      const short events = why == SSL_ERROR_WANT_READ    ? POLLIN
                           : why == SSL_ERROR_WANT_WRITE ? POLLOUT
                                                         : 0;
      if (events == 0) {
        error = why == SSL_ERROR_SYSCALL && errno != 0 ? errno_text(errno) : openssl_reason();
        return -1;
      }
      if (!wait_for(fd_, events, deadline)) return -1;
    }
  }

  template <class Op>
  ssize_t plain_call(short events, SteadyTime::time_point deadline, std::string& error, Op op) {
    for (;;) {
      if (!wait_for(fd_, events, deadline)) return -1;
      const ssize_t n = op();
      if (n >= 0) return n;
      if (errno == EAGAIN || errno == EINTR) continue;
      error = errno_text(errno);
      return -1;
    }
  }

  int fd_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
};

}  // namespace

std::optional<ApiUrl> parse_api_url(std::string_view text, std::string& error) {
  std::string_view rest = trim(text);
  const std::string given(rest);
  ApiUrl url;
  if (const size_t scheme = rest.find("://"); scheme != std::string_view::npos) {
    const std::string name = lower(rest.substr(0, scheme));
    if (name != "http" && name != "https") {
      error = fmt::format("\"{}\": expected http://HOST:PORT or https://HOST:PORT", given);
      return std::nullopt;
    }
    url.https = name == "https";
    url.port = url.https ? 443 : 80;
    rest.remove_prefix(scheme + 3);
  }
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view base = rest.substr(slash);
    if (base.find_first_of("?#") != std::string_view::npos) {
      error = fmt::format("\"{}\": expected no query or fragment in the API address", given);
      return std::nullopt;
    }
    while (!base.empty() && base.back() == '/') base.remove_suffix(1);
    url.base = std::string(base);
  }
  if (authority.find('@') != std::string_view::npos) {
    error = fmt::format("\"{}\": no user in the address, please; the token goes in --token", given);
    return std::nullopt;
  }
  net::AuthorityError why{};
  auto parsed = net::parse_authority(authority, why);
  if (!parsed) {
    constexpr std::string_view kWhy[] = {"unclosed [ in the address", "expected :PORT after ]",
                                         "expected http://HOST:PORT",
                                         "the port must be a number from 1 to 65535"};
    error = fmt::format("\"{}\": {}", given, kWhy[static_cast<int>(why)]);
    return std::nullopt;
  }
  url.host = std::move(parsed->host);
  if (parsed->port) url.port = *parsed->port;
  url.text = fmt::format("{}://{}{}", url.https ? "https" : "http",
                         net::join_host_port(url.host, url.port), url.base);
  return url;
}

ParsedResponse parse_http_response(std::string_view raw, bool at_eof) {
  using State = ParsedResponse::State;
  ParsedResponse r;
  auto incomplete = [&](std::string why) {
    if (at_eof) {
      r.state = State::kBad;
      r.error = std::move(why);
    }
    return r;
  };
  const size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    if (raw.size() > kMaxHeadBytes) {
      r.state = State::kBad;
      r.error = "the answer's head is too long";
      return r;
    }
    return incomplete(raw.empty() ? "the connection closed without an answer"
                                  : "the connection closed in the middle of the answer's head");
  }
  const std::string_view head = raw.substr(0, head_end);
  size_t line_end = head.find("\r\n");
  const std::string_view status_line = head.substr(0, line_end);
  // "HTTP/1.1 200 OK"
  if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12 || status_line[8] != ' ' ||
      std::from_chars(status_line.data() + 9, status_line.data() + 12, r.status).ptr !=
          status_line.data() + 12 ||
      r.status < 100 || r.status > 599) {
    r.state = State::kBad;
    r.error = fmt::format("not an HTTP answer: \"{}\"", status_line.substr(0, 60));
    return r;
  }
  while (line_end != std::string_view::npos) {
    const size_t next = head.find("\r\n", line_end + 2);
    const std::string_view line =
        head.substr(line_end + 2,
                    next == std::string_view::npos ? std::string_view::npos : next - line_end - 2);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos)
      r.headers[lower(trim(line.substr(0, colon)))] = std::string(trim(line.substr(colon + 1)));
    line_end = next;
  }
  const std::string_view body = raw.substr(head_end + 4);
  if (r.status == 204 || r.status == 304) {
    r.state = State::kComplete;
    return r;
  }
  if (auto te = r.headers.find("transfer-encoding");
      te != r.headers.end() && lower(te->second).find("chunked") != std::string::npos) {
    r.state = dechunk(body, r.body, r.error);
    if (r.state == State::kIncomplete) {
      r.body.clear();
      return incomplete("the connection closed before the last chunk of the answer");
    }
    return r;
  }
  if (auto cl = r.headers.find("content-length"); cl != r.headers.end()) {
    size_t length = 0;
    const std::string& text = cl->second;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), length);
    if (ec != std::errc() || end != text.data() + text.size()) {
      r.state = State::kBad;
      r.error = fmt::format("bad Content-Length \"{}\"", text);
      return r;
    }
    if (body.size() < length)
      return incomplete(
          fmt::format("the answer was cut short: {} of {} bytes", body.size(), length));
    r.body = std::string(body.substr(0, length));
    r.state = State::kComplete;
    return r;
  }
  // Neither: the body runs until the server closes.
  if (!at_eof) return r;
  r.body = std::string(body);
  r.state = State::kComplete;
  return r;
}

HttpResult http_request(const ApiUrl& url, std::string_view method, std::string_view target,
                        std::string_view body,
                        const std::vector<std::pair<std::string, std::string>>& headers,
                        Duration timeout) {
  HttpResult result;
  const auto deadline =
      SteadyTime::now() + std::chrono::duration_cast<SteadyTime::duration>(timeout);
  const int fd = connect_with_deadline(url, deadline, result.error);
  if (fd < 0) return result;
  const bool v6 = url.host.find(':') != std::string::npos;
  std::string request = fmt::format(
      "{} {}{} HTTP/1.1\r\nHost: {}{}{}:{}\r\nUser-Agent: tide-cli\r\nAccept: "
      "application/json\r\n",
      method, url.base, target, v6 ? "[" : "", url.host, v6 ? "]" : "", url.port);
  for (const auto& [k, v] : headers) request += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST")
    request += fmt::format("Content-Type: application/json\r\nContent-Length: {}\r\n", body.size());
  request += "Connection: close\r\n\r\n";
  request += body;

  const std::string waited = format_duration(timeout);
  Channel channel(fd);
  if (url.https && !channel.start_tls(url, deadline, result.error)) return result;
  if (!channel.send_all(request, deadline, result.error)) {
    if (result.error.empty()) result.error = "could not send the request within " + waited;
    return result;
  }

  std::string raw;
  char buf[16384];
  ParsedResponse parsed;
  for (;;) {
    const ssize_t n = channel.receive(buf, sizeof buf, deadline, result.error);
    if (n < 0) {
      if (result.error.empty()) result.error = "no complete answer within " + waited;
      break;
    }
    if (n > 0) raw.append(buf, static_cast<size_t>(n));
    if (raw.size() > kMaxAnswerBytes) {
      result.error = "the answer is larger than 256 MiB";
      break;
    }
    parsed = parse_http_response(raw, /*at_eof=*/n == 0);
    if (parsed.state == ParsedResponse::State::kBad) {
      result.error = parsed.error;
      break;
    }
    if (parsed.state == ParsedResponse::State::kComplete) {
      result.status = parsed.status;
      result.body = std::move(parsed.body);
      if (auto ct = parsed.headers.find("content-type"); ct != parsed.headers.end())
        result.content_type = ct->second;
      break;
    }
  }
  return result;
}

}  // namespace tide::cli
