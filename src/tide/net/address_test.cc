#include "tide/net/address.h"

#include <gtest/gtest.h>

namespace tide::net {
namespace {

TEST(ParsePort, DigitsFrom0To65535Only) {
  EXPECT_EQ(parse_port("0"), 0);
  EXPECT_EQ(parse_port("8080"), 8080);
  EXPECT_EQ(parse_port("065535"), 65535);
  for (const char* bad : {"", "65536", "99999999999999999999", "+80", "-1", " 80", "80 ", "8a"})
    EXPECT_FALSE(parse_port(bad)) << bad;
}

TEST(SplitHostPort, SplitsAtTheLastColon) {
  auto hp = split_host_port("127.0.0.1:8080");
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 8080);
  EXPECT_EQ(hp->text(), "127.0.0.1:8080");
  hp = split_host_port("[::1]:0");
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "[::1]");  // brackets kept
  EXPECT_EQ(hp->port, 0);
  for (const char* bad : {"", "8080", ":8080", "host:", "host:port", "host:70000"})
    EXPECT_FALSE(split_host_port(bad)) << bad;
}

TEST(HostOf, IsWhatComesBeforeTheLastColon) {
  EXPECT_EQ(host_of("127.0.0.1:8080"), "127.0.0.1");
  EXPECT_EQ(host_of("[::1]:8080"), "[::1]");
  EXPECT_EQ(host_of("name"), "name");
}

TEST(Unbracket, RemovesTheBracketsOfAnIpv6Host) {
  EXPECT_EQ(unbracket("[::1]"), "::1");
  EXPECT_EQ(unbracket("[]"), "[]");
  EXPECT_EQ(unbracket("host"), "host");
}

TEST(JoinHostPort, BracketsIpv6Hosts) {
  EXPECT_EQ(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
  EXPECT_EQ(join_host_port("fd00::1", 8000), "[fd00::1]:8000");
  EXPECT_EQ(join_host_port("node-1", 0), "node-1:0");
}

TEST(ParseAuthority, HostsPortsAndIpv6) {
  AuthorityError e{};
  auto a = parse_authority("example.com", e);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "example.com");
  EXPECT_FALSE(a->port);
  a = parse_authority("example.com:8443", e);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "example.com");
  EXPECT_EQ(a->port, 8443);
  a = parse_authority("[fd00::1]:6443", e);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "fd00::1");
  EXPECT_EQ(a->port, 6443);
  a = parse_authority("[fd00::1]", e);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "fd00::1");
  EXPECT_FALSE(a->port);
  a = parse_authority("host:", e);  // a bare colon: no port
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "host");
  EXPECT_FALSE(a->port);
}

TEST(ParseAuthority, SaysWhyItFails) {
  auto fails_with = [](std::string_view text) {
    AuthorityError e{};
    EXPECT_FALSE(parse_authority(text, e)) << text;
    return e;
  };
  EXPECT_EQ(fails_with("[fd00::1"), AuthorityError::kUnclosedBracket);
  EXPECT_EQ(fails_with("[fd00::1]x"), AuthorityError::kJunkAfterBracket);
  EXPECT_EQ(fails_with(""), AuthorityError::kNoHost);
  EXPECT_EQ(fails_with(":80"), AuthorityError::kNoHost);
  EXPECT_EQ(fails_with("[]:80"), AuthorityError::kNoHost);
  EXPECT_EQ(fails_with("host:0"), AuthorityError::kBadPort);
  EXPECT_EQ(fails_with("host:65536"), AuthorityError::kBadPort);
  EXPECT_EQ(fails_with("host:http"), AuthorityError::kBadPort);
  EXPECT_EQ(fails_with("[::1]:+1"), AuthorityError::kBadPort);
}

}  // namespace
}  // namespace tide::net
