// Helpers shared by the fuzz targets (fuzz/): option bytes taken from the front of the input,
// and feeding a Beast parser piece by piece as a socket would. Test-only code.
#pragma once

#include <boost/beast/http.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tide::fuzz {

// The input, consumed from the front: option bytes first, the rest as text.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : rest_(reinterpret_cast<const char*>(data), size) {}
  // The next byte (0 once the input is used up).
  uint8_t byte() {
    if (rest_.empty()) return 0;
    const auto b = static_cast<uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }
  std::string_view rest() const { return rest_; }

 private:
  std::string_view rest_;
};

// Gives `raw` to `parser` as it would arrive in reads of `step` bytes (>= 1), keeping the bytes
// not consumed yet in front, like the gateway's buffer; at the end of the input, put_eof.
// Returns the first error (none when the message is complete) and the bytes consumed.
struct Fed {
  boost::system::error_code ec;
  size_t used = 0;
};
template <class Parser>
Fed feed(Parser& parser, std::string_view raw, size_t step) {
  namespace http = boost::beast::http;
  boost::system::error_code ec;
  size_t begin = 0, end = 0;  // received and not consumed: [begin, end)
  bool want_more = true;      // the parser needs bytes beyond them
  while (!parser.is_done()) {
    if (want_more) {
      if (end == raw.size()) {
        parser.put_eof(ec);
        return {ec, begin};
      }
      end = std::min(raw.size(), end + step);
    }
    const size_t used = parser.put(boost::asio::buffer(raw.data() + begin, end - begin), ec);
    begin += used;
    if (ec == http::error::need_more || (!ec && used == 0)) {
      ec = {};
      want_more = true;
      continue;
    }
    if (ec) return {ec, begin};
    want_more = begin == end;
  }
  return {{}, begin};
}

}  // namespace tide::fuzz
