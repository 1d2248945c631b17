// Network addresses as text, one parser for every part of tide that reads them (the data plane,
// the agent, the configuration, the CLI and the backends): "host:port" addresses, URL
// authorities ("host", "host:port", "[v6]:port") and the formatting back. Plain C++ (no
// sockets): nothing here resolves or connects.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tide::net {

// A port in decimal digits only (no sign, no space), 0 to 65535.
std::optional<uint16_t> parse_port(std::string_view digits);

struct HostPort {
  std::string host;  // as written: an IPv6 host keeps its brackets
  uint16_t port = 0;
  std::string text() const;  // "host:port"
};

// "host:port", split at the last colon: a non-empty host (not checked further) and a port that
// parse_port accepts.
std::optional<HostPort> split_host_port(std::string_view address);

// The host of "host:port": everything before the last colon (all of it without one).
std::string_view host_of(std::string_view address);

// "[::1]" -> "::1"; any other host as it is.
std::string_view unbracket(std::string_view host);

// "host:port", with brackets around an IPv6 host ("[::1]:80").
std::string join_host_port(std::string_view host, uint16_t port);

// The authority of a URL (between "scheme://" and the path): "host", "host:port", "[v6]" or
// "[v6]:port". The host comes without brackets; `port` is empty where none is given (or after
// a bare colon).
struct Authority {
  std::string host;
  std::optional<uint16_t> port;
};
// In this order: callers index their messages with it.
enum class AuthorityError {
  kUnclosedBracket = 0,  // "[::1"
  kJunkAfterBracket,     // "[::1]x": only ":port" may follow
  kNoHost,               // "", ":80", "[]"
  kBadPort,              // not 1 to 65535 in digits
};
// On failure `error` says why and nothing is returned.
std::optional<Authority> parse_authority(std::string_view authority, AuthorityError& error);

}  // namespace tide::net
