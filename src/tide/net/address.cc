#include "tide/net/address.h"

#include <fmt/format.h>

namespace tide::net {

std::optional<uint16_t> parse_port(std::string_view digits) {
  if (digits.empty()) return std::nullopt;
  unsigned port = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + static_cast<unsigned>(c - '0');
    if (port > 65535) return std::nullopt;
  }
  return static_cast<uint16_t>(port);
}

std::string HostPort::text() const { return fmt::format("{}:{}", host, port); }

std::optional<HostPort> split_host_port(std::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  const auto port = parse_port(address.substr(colon + 1));
  if (!port) return std::nullopt;
  return HostPort{std::string(address.substr(0, colon)), *port};
}

std::string_view host_of(std::string_view address) { return address.substr(0, address.rfind(':')); }

std::string_view unbracket(std::string_view host) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    return host.substr(1, host.size() - 2);
  return host;
}

std::string join_host_port(std::string_view host, uint16_t port) {
  if (host.find(':') != std::string_view::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

std::optional<Authority> parse_authority(std::string_view authority, AuthorityError& error) {
  Authority a;
  std::string_view host = authority;
  std::string_view port;
  if (authority.starts_with('[')) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      error = AuthorityError::kUnclosedBracket;
      return std::nullopt;
    }
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        error = AuthorityError::kJunkAfterBracket;
        return std::nullopt;
      }
      port = after.substr(1);
    }
  } else if (const size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) {
    error = AuthorityError::kNoHost;
    return std::nullopt;
  }
  if (!port.empty()) {
    const auto p = parse_port(port);
    if (!p || *p == 0) {
      error = AuthorityError::kBadPort;
      return std::nullopt;
    }
    a.port = *p;
  }
  a.host = std::string(host);
  return a;
}

}  // namespace tide::net
