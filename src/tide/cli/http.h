// A small blocking HTTP/1.1 client for the CLI's calls of the admin API: GET (and POST, DELETE for
// `tide keys`) over plain TCP or TLS (https://, the server's certificate verified as curl does),
// one request per connection, the answer read whole (Content-Length, chunked, or until the server
// closes). No shared state: call it from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tide/common/time.h"

namespace tide::cli {

// Where the admin API listens: http(s)://HOST:PORT, optionally below a path prefix (behind a
// proxy), and which certificates an https one is verified with.
struct ApiUrl {
  std::string host;  // a name or an address; an IPv6 address without its brackets
  uint16_t port = 80;
  std::string base;  // path prefix without the trailing slash; "" for the root
  std::string text;  // normalised for messages: http(s)://host:port[/base]
  bool https = false;
  // https: the CA certificates (PEM) the server's certificate must chain to; "" for the
  // system's. The certificate must also name `host` (DNS name or IP address).
  std::string ca_file;
};

// Reads "http://HOST[:PORT][/BASE]", "https://HOST[:PORT][/BASE]" (port 443 by default) or
// "HOST:PORT" (as given to `tide serve --api`). Anything else gives nullopt and says why in
// `error`.
std::optional<ApiUrl> parse_api_url(std::string_view text, std::string& error);

// A raw answer read so far, parsed apart from the socket so that it can be tested alone.
struct ParsedResponse {
  enum class State { kIncomplete, kComplete, kBad };
  State state = State::kIncomplete;
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-case
  std::string body;                            // de-chunked; set when complete
  std::string error;                           // set when bad
};
// `at_eof`: the server has closed, nothing more will come (an incomplete answer is then bad).
ParsedResponse parse_http_response(std::string_view raw, bool at_eof);

struct HttpResult {
  int status = 0;  // 0: no answer, see `error`
  std::string content_type;
  std::string body;
  std::string error;  // "connection refused", "no answer within 10s", ...
};

// `method` url.base + target (path and query), with `body` (JSON) when not empty. `timeout`
// bounds the whole exchange.
HttpResult http_request(const ApiUrl& url, std::string_view method, std::string_view target,
                        std::string_view body,
                        const std::vector<std::pair<std::string, std::string>>& headers,
                        Duration timeout);
inline HttpResult http_get(const ApiUrl& url, std::string_view target,
                           const std::vector<std::pair<std::string, std::string>>& headers,
                           Duration timeout) {
  return http_request(url, "GET", target, {}, headers, timeout);
}

}  // namespace tide::cli
