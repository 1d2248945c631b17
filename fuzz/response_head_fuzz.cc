// The gateway's reading of a replica's answer: the head by ResponseHeadParser (in place, no body
// limit), then, as for a streamed answer, the whole message again by Beast's response_parser
// with a buffer body, relayed in 4 KiB pieces.
// The option byte: bit 0, the answer to a HEAD request.
#include <array>
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "tide/gateway/http_parsers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace http = boost::beast::http;
  tide::fuzz::Input in(data, size);
  const uint8_t options = in.byte();
  const std::string_view raw = in.rest();
  tide::gateway::ResponseInfo info;
  tide::gateway::ResponseHeadParser head(info);
  head.body_limit(boost::none);
  if (options & 1) head.skip(true);  // the answer to a HEAD request
  boost::system::error_code ec;
  const size_t head_size = head.put(boost::asio::buffer(raw.data(), raw.size()), ec);
  if (ec || !head.is_header_done()) return 0;
  if (head_size > raw.size()) __builtin_trap();

  http::response_parser<http::buffer_body> p;
  p.body_limit(boost::none);
  if (options & 1) p.skip(true);
  p.put(boost::asio::buffer(raw.data(), head_size), ec);
  if (ec || !p.is_header_done()) __builtin_trap();  // the head parsed once must parse again
  std::array<char, 4096> buf;
  size_t at = head_size, relayed = 0;
  while (!p.is_done()) {
    p.get().body().data = buf.data();
    p.get().body().size = buf.size();
    const size_t used = p.put(boost::asio::buffer(raw.data() + at, raw.size() - at), ec);
    at += used;
    relayed += buf.size() - p.get().body().size;
    if (ec == http::error::need_more || (!ec && used == 0)) {
      p.put_eof(ec);  // nothing more arrives
      break;
    }
    if (ec) break;
  }
  if (relayed > raw.size()) __builtin_trap();
  return 0;
}
