// The gateway's client request parser (gateway/http_parsers.h) as tide serve runs it: its default
// limits, eager, bytes arriving in reads of 1 to 256 bytes, requests one after another on a
// connection. Read in pieces or whole, a request must parse alike.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "tide/gateway/http_parsers.h"

namespace {

using tide::gateway::RequestInfo;
using tide::gateway::RequestParser;

const std::vector<std::string> kSticky = {"X-Session", "Tide-Endpoint"};

tide::fuzz::Fed parse(RequestInfo& info, std::string_view raw, size_t step, bool& keep_alive) {
  RequestParser parser(info, kSticky, 16 * 1024);  // the default max_trailer_bytes
  parser.header_limit(16 * 1024);
  parser.body_limit(1 << 20);
  parser.eager(true);
  const tide::fuzz::Fed fed = tide::fuzz::feed(parser, raw, step);
  keep_alive = !fed.ec && parser.keep_alive();
  return fed;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tide::fuzz::Input in(data, size);
  const size_t step = size_t{in.byte()} + 1;
  std::string_view raw = in.rest();
  RequestInfo pieces, whole;  // reused across requests, as on a connection
  for (int request = 0; request < 8 && !raw.empty(); ++request) {
    bool keep = false, whole_keep = false;
    const tide::fuzz::Fed a = parse(pieces, raw, step, keep);
    const tide::fuzz::Fed b = parse(whole, raw, raw.size(), whole_keep);
    if (!a.ec != !b.ec) __builtin_trap();
    if (a.ec) break;
    if (a.used != b.used || keep != whole_keep || pieces.body != whole.body ||
        pieces.fields != whole.fields || pieces.target != whole.target ||
        pieces.endpoint != whole.endpoint || pieces.sticky != whole.sticky)
      __builtin_trap();
    if (!keep) break;
    raw.remove_prefix(a.used);
  }
  return 0;
}
