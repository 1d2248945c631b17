#include "tide/net/relay.h"

#include <gtest/gtest.h>

#include <string>

namespace tide::net {
namespace {

namespace http = boost::beast::http;

// Feeds a replica's head to a relay parser, as the gateway and the agent do.
void put_head(RelayParser& p, std::string_view head) {
  boost::system::error_code ec;
  p.put(boost::asio::buffer(head.data(), head.size()), ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(p.is_header_done());
}

TEST(HopByHop, TheFieldsOfOneHop) {
  for (auto f : {http::field::connection, http::field::keep_alive, http::field::proxy_connection,
                 http::field::te, http::field::trailer, http::field::upgrade,
                 http::field::proxy_authorization})
    EXPECT_TRUE(hop_by_hop(f)) << f;
  for (auto f : {http::field::host, http::field::content_length, http::field::content_type,
                 http::field::transfer_encoding, http::field::authorization})
    EXPECT_FALSE(hop_by_hop(f)) << f;
}

TEST(PrepareRelayHead, DropsHopByHopFieldsAndKeepsTheRest) {
  RelayParser p;
  put_head(p,
           "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, x-secret\r\n"
           "Keep-Alive: timeout=5\r\nUpgrade: h2c\r\nTE: trailers\r\nTrailer: x\r\n"
           "Proxy-Connection: close\r\nProxy-Authorization: Basic x\r\nX-Kept: yes\r\n\r\n");
  const RelayHead h = prepare_relay_head(p, 11, true);
  EXPECT_TRUE(h.keep);
  EXPECT_FALSE(h.delimited_by_close);
  const auto& msg = p.get();
  for (const auto& f : msg) EXPECT_FALSE(hop_by_hop(f.name())) << f.name_string();
  EXPECT_EQ(msg["X-Kept"], "yes");
  EXPECT_EQ(msg[http::field::content_length], "5");
}

TEST(PrepareRelayHead, ACloseDelimitedBodyGoesChunkedToHttp11) {
  RelayParser p;
  put_head(p, "HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n");
  const RelayHead h = prepare_relay_head(p, 11, true);
  EXPECT_TRUE(h.delimited_by_close);
  EXPECT_TRUE(h.keep);
  EXPECT_EQ(p.get().version(), 11u);
  EXPECT_TRUE(p.get().chunked());
}

TEST(PrepareRelayHead, ACloseDelimitedBodyClosesAnHttp10Client) {
  RelayParser p;
  put_head(p, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
  const RelayHead h = prepare_relay_head(p, 10, true);
  EXPECT_TRUE(h.delimited_by_close);
  EXPECT_FALSE(h.keep);
  EXPECT_EQ(p.get().version(), 10u);
  EXPECT_FALSE(p.get().chunked());
}

TEST(PrepareRelayHead, AChunkedAnswerStaysChunked) {
  RelayParser p;
  put_head(p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  const RelayHead h = prepare_relay_head(p, 11, false);
  EXPECT_FALSE(h.delimited_by_close);
  EXPECT_FALSE(h.keep);
  EXPECT_TRUE(p.get().chunked());
}

}  // namespace
}  // namespace tide::net
