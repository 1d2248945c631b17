#include "http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>

namespace tide::test {

namespace {

using Clock = std::chrono::steady_clock;

int connect_to(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

std::string render(const HttpRequest& r) {
  std::string s = r.method + " " + r.target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  bool has_type = false;
  for (const auto& [k, v] : r.headers) {
    s += k + ": " + v + "\r\n";
    std::string lower = k;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    has_type = has_type || lower == "content-type";
  }
  if (!r.body.empty() || r.method == "POST") {
    if (!has_type) s += "Content-Type: application/json\r\n";
    s += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  }
  s += "Connection: close\r\n\r\n" + r.body;
  return s;
}

bool send_all(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

int http_connect(uint16_t port) { return connect_to(port); }

std::string read_until_close(int fd, double timeout_s) { return read_until(fd, {}, timeout_s); }

std::string read_until(int fd, const std::string& end, double timeout_s) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(timeout_s));
  std::string out;
  char buf[4096];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (!end.empty() && out.find(end) != std::string::npos) break;
  }
  return out;
}

int http_send_only(uint16_t port, const HttpRequest& request) {
  const int fd = connect_to(port);
  if (fd < 0) return -1;
  if (!send_all(fd, render(request))) {
    ::close(fd);
    return -1;
  }
  return fd;
}

HttpResponse http(uint16_t port, const HttpRequest& request) {
  HttpResponse res;
  const int fd = connect_to(port);
  if (fd < 0) {
    res.error = "connect failed";
    return res;
  }
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(request.timeout_s));
  if (!send_all(fd, render(request))) {
    res.error = "send failed";
    ::close(fd);
    return res;
  }
  std::string raw;
  std::vector<std::pair<size_t, double>> arrivals;  // raw offset where a read began, time
  char buf[16384];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      res.error = "timeout";
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;  // the server closes (Connection: close)
    arrivals.emplace_back(raw.size(), std::chrono::duration<double>(Clock::now() - start).count());
    raw.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  const size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    if (res.error.empty()) res.error = "no complete response head";
    return res;
  }
  // Status line and headers.
  const std::string head = raw.substr(0, head_end);
  size_t line_end = head.find("\r\n");
  const std::string status_line = head.substr(0, line_end);
  if (status_line.size() >= 12) res.status = std::atoi(status_line.c_str() + 9);
  while (line_end != std::string::npos) {
    const size_t next = head.find("\r\n", line_end + 2);
    const std::string line = head.substr(
        line_end + 2, next == std::string::npos ? std::string::npos : next - line_end - 2);
    const size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string key = line.substr(0, colon);
      std::transform(key.begin(), key.end(), key.begin(), ::tolower);
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      res.headers[key] = value;
    }
    line_end = next;
  }
  for (const auto& [offset, t] : arrivals) {
    if (offset + 1 > head_end + 4 || arrivals.size() == 1) res.piece_times.push_back(t);
  }
  std::string body = raw.substr(head_end + 4);
  if (res.headers["transfer-encoding"] == "chunked") {
    std::string out;
    size_t at = 0;
    for (;;) {
      const size_t eol = body.find("\r\n", at);
      if (eol == std::string::npos) break;
      const size_t size = std::strtoul(body.substr(at, eol - at).c_str(), nullptr, 16);
      if (size == 0) break;
      out += body.substr(eol + 2, size);
      at = eol + 2 + size + 2;
    }
    body = out;
  }
  res.body = std::move(body);
  return res;
}

}  // namespace tide::test
