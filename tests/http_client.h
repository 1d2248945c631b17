// A small blocking HTTP/1.1 client for end-to-end tests: plain sockets, one request per
// connection, with the arrival time of every body piece (to check that streams stream).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace tide::test {

struct HttpResponse {
  int status = 0;                              // 0: no response (see error)
  std::map<std::string, std::string> headers;  // names lower-case
  std::string body;                            // de-chunked
  std::vector<double> piece_times;             // seconds since the request was sent, per read
  std::string error;
};

struct HttpRequest {
  std::string method = "GET";
  std::string target = "/";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  double timeout_s = 30;
};

HttpResponse http(uint16_t port, const HttpRequest& request);

inline HttpRequest make_request(std::string method, std::string target, std::string body = {}) {
  HttpRequest r;
  r.method = std::move(method);
  r.target = std::move(target);
  r.body = std::move(body);
  return r;
}
inline HttpResponse http_get(uint16_t port, const std::string& target) {
  return http(port, make_request("GET", target));
}
inline HttpResponse http_post(uint16_t port, const std::string& target, const std::string& body) {
  return http(port, make_request("POST", target, body));
}

// A connected socket to 127.0.0.1:port (TCP_NODELAY), or -1.
int http_connect(uint16_t port);
// Reads until the peer closes or `timeout_s` passes.
std::string read_until_close(int fd, double timeout_s);
// Reads until what came contains `end`, the peer closes or `timeout_s` passes.
std::string read_until(int fd, const std::string& end, double timeout_s);

// Opens a connection, sends `request` and returns the socket without reading (the caller closes
// it to play a client that goes away). -1 on failure.
int http_send_only(uint16_t port, const HttpRequest& request);

}  // namespace tide::test
