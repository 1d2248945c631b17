// Chunked bodies, decoded by the gateway's request parser (Beast underneath: client bodies) and by
// the CLI's own decoder (cli/http.cc: answers of the admin API). The input is the body after a
// chunked head; the first byte sets the read size. Where both decoders take a body whole, they
// must agree on it.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "tide/cli/http.h"
#include "tide/gateway/http_parsers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tide::fuzz::Input in(data, size);
  const size_t step = size_t{in.byte()} + 1;
  const std::string_view body = in.rest();

  static const std::vector<std::string> kNoSticky;
  tide::gateway::RequestInfo info;
  tide::gateway::RequestParser parser(info, kNoSticky, 16 * 1024);
  parser.header_limit(16 * 1024);
  parser.body_limit(1 << 20);
  parser.eager(true);
  const std::string request =
      "POST /v1/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(body);
  const tide::fuzz::Fed fed = tide::fuzz::feed(parser, request, step);
  if (!fed.ec && info.body.size() > body.size()) __builtin_trap();

  const std::string answer =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(body);
  using State = tide::cli::ParsedResponse::State;
  const tide::cli::ParsedResponse partial = tide::cli::parse_http_response(answer, false);
  const tide::cli::ParsedResponse at_eof = tide::cli::parse_http_response(answer, true);
  if (partial.state == State::kComplete && at_eof.state != State::kComplete) __builtin_trap();
  if (at_eof.state == State::kComplete && at_eof.body.size() > body.size()) __builtin_trap();
  if (!fed.ec && at_eof.state == State::kComplete && at_eof.body != info.body) __builtin_trap();
  return 0;
}
