#include "tide/cli/http.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

namespace tide::cli {
namespace {

using State = ParsedResponse::State;
using namespace std::chrono_literals;

TEST(ParseApiUrl, AcceptsHttpUrlsAndHostPort) {
  std::string error;
  auto a = parse_api_url("http://127.0.0.1:8081", error);
  ASSERT_TRUE(a) << error;
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8081);
  EXPECT_EQ(a->base, "");
  EXPECT_EQ(a->text, "http://127.0.0.1:8081");

  auto b = parse_api_url("localhost:9000", error);
  ASSERT_TRUE(b) << error;
  EXPECT_EQ(b->host, "localhost");
  EXPECT_EQ(b->port, 9000);

  auto c = parse_api_url("http://example.com/tide/", error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->port, 80);
  EXPECT_EQ(c->base, "/tide");
  EXPECT_EQ(c->text, "http://example.com:80/tide");

  auto d = parse_api_url("http://[::1]:8081", error);
  ASSERT_TRUE(d) << error;
  EXPECT_EQ(d->host, "::1");
  EXPECT_EQ(d->text, "http://[::1]:8081");
}

TEST(ParseApiUrl, HttpsDefaultsToPort443) {
  std::string error;
  auto a = parse_api_url("https://tide.example.com/base/", error);
  ASSERT_TRUE(a) << error;
  EXPECT_TRUE(a->https);
  EXPECT_EQ(a->port, 443);
  EXPECT_EQ(a->base, "/base");
  EXPECT_EQ(a->text, "https://tide.example.com:443/base");
  auto b = parse_api_url("HTTPS://127.0.0.1:8443", error);
  ASSERT_TRUE(b) << error;
  EXPECT_TRUE(b->https);
  EXPECT_EQ(b->port, 8443);
  auto c = parse_api_url("127.0.0.1:8081", error);
  ASSERT_TRUE(c) << error;
  EXPECT_FALSE(c->https);
}

TEST(ParseApiUrl, RefusesWhatItCannotSpeakWithAReason) {
  std::string error;
  EXPECT_FALSE(parse_api_url("ftp://x:1", error));
  EXPECT_NE(error.find("expected http://HOST:PORT or https://HOST:PORT"), std::string::npos)
      << error;
  EXPECT_FALSE(parse_api_url("http://:8081", error));
  EXPECT_FALSE(parse_api_url("127.0.0.1:http", error));
  EXPECT_NE(error.find("port must be a number"), std::string::npos) << error;
  EXPECT_FALSE(parse_api_url("127.0.0.1:70000", error));
  EXPECT_FALSE(parse_api_url("http://user:pw@host:1", error));
  EXPECT_FALSE(parse_api_url("", error));
}

TEST(ParseHttpResponse, ContentLengthCompleteOnlyWithTheWholeBody) {
  const std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n";
  EXPECT_EQ(parse_http_response(head + "{\"a\"", false).state, State::kIncomplete);
  const ParsedResponse r = parse_http_response(head + "{\"a\":1}", false);
  ASSERT_EQ(r.state, State::kComplete);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"a\":1}");
  EXPECT_EQ(r.headers.at("content-type"), "application/json");
  const ParsedResponse cut = parse_http_response(head + "{\"a\"", true);
  EXPECT_EQ(cut.state, State::kBad);
  EXPECT_NE(cut.error.find("cut short: 4 of 7 bytes"), std::string::npos) << cut.error;
}

TEST(ParseHttpResponse, ChunkedBodyIsJoinedAndNeedsItsLastChunk) {
  const std::string head = "HTTP/1.1 401 Unauthorized\r\ntransfer-encoding: chunked\r\n\r\n";
  const std::string chunks = "4;ext=1\r\n{\"er\r\n3\r\nr\":\r\n2\r\n1}\r\n";
  EXPECT_EQ(parse_http_response(head + chunks, false).state, State::kIncomplete);
  EXPECT_EQ(parse_http_response(head + chunks + "0\r\n", false).state, State::kIncomplete);
  const ParsedResponse r = parse_http_response(head + chunks + "0\r\n\r\n", false);
  ASSERT_EQ(r.state, State::kComplete) << r.error;
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.body, "{\"err\":1}");
  EXPECT_EQ(parse_http_response(head + chunks, true).state, State::kBad);
  EXPECT_EQ(parse_http_response(head + "zz\r\n", false).state, State::kBad);
}

TEST(ParseHttpResponse, WithoutALengthTheBodyEndsWhenTheServerCloses) {
  const std::string raw = "HTTP/1.0 200 OK\r\n\r\nhello";
  EXPECT_EQ(parse_http_response(raw, false).state, State::kIncomplete);
  const ParsedResponse r = parse_http_response(raw, true);
  ASSERT_EQ(r.state, State::kComplete);
  EXPECT_EQ(r.body, "hello");
}

TEST(ParseHttpResponse, SomethingElseThanHttpIsBad) {
  const ParsedResponse r = parse_http_response("SSH-2.0-OpenSSH_9.2\r\n\r\n", false);
  EXPECT_EQ(r.state, State::kBad);
  EXPECT_NE(r.error.find("not an HTTP answer"), std::string::npos) << r.error;
  EXPECT_EQ(parse_http_response("", true).state, State::kBad);
}

// A server on 127.0.0.1 that answers one connection with `answer`, sent in two writes, and
// keeps the request it read.
class OneShotServer {
 public:
  explicit OneShotServer(std::string answer) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 1), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, answer = std::move(answer)] {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      while (request_.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        request_.append(buf, static_cast<size_t>(n));
      }
      const size_t half = answer.size() / 2;
      ::send(c, answer.data(), half, MSG_NOSIGNAL);
      ::send(c, answer.data() + half, answer.size() - half, MSG_NOSIGNAL);
      ::close(c);
    });
  }
  ~OneShotServer() {
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  uint16_t port() const { return port_; }
  std::string request() {
    thread_.join();
    return request_;
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::string request_;
};

TEST(HttpGet, SendsTheTokenAndReadsAChunkedAnswer) {
  OneShotServer server(
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n");
  std::string error;
  const auto url =
      parse_api_url("http://127.0.0.1:" + std::to_string(server.port()) + "/base", error);
  ASSERT_TRUE(url) << error;
  const HttpResult r = http_get(*url, "/v1/endpoints?x=1", {{"Authorization", "Bearer t0k"}}, 5s);
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "{\"a\":1}");
  EXPECT_EQ(r.content_type, "application/json");
  const std::string request = server.request();
  EXPECT_TRUE(request.starts_with("GET /base/v1/endpoints?x=1 HTTP/1.1\r\n")) << request;
  EXPECT_NE(request.find("\r\nAuthorization: Bearer t0k\r\n"), std::string::npos) << request;
  EXPECT_NE(request.find("\r\nHost: 127.0.0.1:"), std::string::npos) << request;
}

TEST(HttpGet, AnAnswerCutShortIsAnErrorNotABody) {
  OneShotServer server("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"a\":");
  std::string error;
  const auto url = parse_api_url("127.0.0.1:" + std::to_string(server.port()), error);
  const HttpResult r = http_get(*url, "/", {}, 5s);
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.error.find("cut short"), std::string::npos) << r.error;
}

TEST(HttpGet, NobodyListeningIsConnectionRefused) {
  // A port that was just bound and released: nothing listens there.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  std::string error;
  const auto url = parse_api_url("127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), error);
  const HttpResult r = http_get(*url, "/v1/endpoints", {}, 5s);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.error, "connection refused");
}

}  // namespace
}  // namespace tide::cli
