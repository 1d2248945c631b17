#include "tide/gateway/http_parsers.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_util.h"

namespace tide::gateway {
namespace {

// Gives `raw` to the parser as reads of `step` bytes would (the fuzz targets' helper).
template <class Parser>
error_code feed(Parser& parser, std::string_view raw, size_t step) {
  return fuzz::feed(parser, raw, step).ec;
}

const std::vector<std::string> kNoSticky;

TEST(RequestParser, KeepsTheRequestLineEndpointAuthorizationAndEndToEndFields) {
  const std::string raw =
      "POST /chat/v1/completions HTTP/1.1\r\nHost: x\r\nTide-Endpoint: chat\r\n"
      "Authorization: Bearer t\r\nConnection: keep-alive\r\nX-User: ann\r\n"
      "Tide-Replica-Secret: s\r\nContent-Length: 5\r\n\r\nhello";
  for (size_t step : {raw.size(), size_t{1}, size_t{7}}) {
    RequestInfo info;
    const std::vector<std::string> sticky = {"X-User"};
    RequestParser parser(info, sticky, 16 * 1024);
    parser.eager(true);
    EXPECT_FALSE(feed(parser, raw, step)) << step;
    ASSERT_TRUE(parser.is_done());
    EXPECT_EQ(info.verb, http::verb::post);
    EXPECT_EQ(info.target, "/chat/v1/completions");
    EXPECT_EQ(info.version, 11u);
    EXPECT_TRUE(info.has_endpoint);
    EXPECT_EQ(info.endpoint, "chat");
    EXPECT_EQ(info.authorization, "Bearer t");
    // Host, Connection, Content-Length and the replica secret are not forwarded as they came.
    EXPECT_EQ(info.fields, "Tide-Endpoint: chat\r\nAuthorization: Bearer t\r\nX-User: ann\r\n");
    EXPECT_EQ(info.body, "hello");
    EXPECT_EQ(info.sticky, std::vector<uint64_t>{control::sticky_key("ann")});
  }
}

TEST(RequestParser, AClientKeyIsKeptForTheGatewayAndNotForwarded) {
  const std::string raw =
      "POST /v1/completions HTTP/1.1\r\nAuthorization: Bearer sk-tide-1\r\nX-A: b\r\n"
      "Content-Length: 0\r\n\r\n";
  RequestInfo info;
  info.own_authorization = true;                   // server.client_auth: keys
  for (int request = 0; request < 2; ++request) {  // kept from request to request
    RequestParser parser(info, kNoSticky, 16 * 1024);
    EXPECT_FALSE(feed(parser, raw, raw.size()));
    EXPECT_EQ(info.authorization, "Bearer sk-tide-1");
    EXPECT_EQ(info.fields, "X-A: b\r\n");
  }
}

TEST(RequestParser, DecodesAChunkedBody) {
  const std::string raw =
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nTrailer-Field: x\r\n\r\n";
  RequestInfo info;
  RequestParser parser(info, kNoSticky, 16 * 1024);
  parser.eager(true);
  EXPECT_FALSE(feed(parser, raw, 3));
  EXPECT_TRUE(parser.is_done());
  EXPECT_EQ(info.body, "hello!");
}

TEST(RequestParser, LimitsAndMalformedInputAreErrors) {
  RequestInfo info;
  {
    RequestParser parser(info, kNoSticky, 16 * 1024);
    parser.header_limit(64);
    EXPECT_EQ(feed(parser, "GET / HTTP/1.1\r\nX: " + std::string(100, 'a') + "\r\n\r\n", 1000),
              http::error::header_limit);
  }
  {
    RequestParser parser(info, kNoSticky, 16 * 1024);
    parser.body_limit(4);
    EXPECT_EQ(feed(parser, "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 1000),
              http::error::body_limit);
  }
  {
    RequestParser parser(info, kNoSticky, 16 * 1024);
    EXPECT_EQ(feed(parser, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 1000),
              http::error::bad_chunk);
  }
}

TEST(ResponseHeadParser, KeepsTheStatusLineAndEndToEndFields) {
  const std::string raw =
      "HTTP/1.1 429 Too Many\r\nContent-Length: 2\r\nConnection: close\r\nTide-Replica: 3\r\n"
      "Tide-Group: gpu\r\nX-Model: m\r\n\r\n";
  ResponseInfo info;
  ResponseHeadParser parser(info);
  error_code ec;
  parser.put(boost::asio::buffer(raw), ec);
  EXPECT_FALSE(ec);
  EXPECT_TRUE(parser.is_header_done());
  EXPECT_EQ(info.status, 429u);
  EXPECT_EQ(info.reason, "Too Many");
  EXPECT_EQ(info.version, 11u);
  EXPECT_EQ(info.fields, "Content-Length: 2\r\nX-Model: m\r\n");
}

}  // namespace
}  // namespace tide::gateway
