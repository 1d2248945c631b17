// Relaying a replica's streamed answer to a client, shared by the gateway and the agent: the
// hop-by-hop rules and the read-a-piece, write-a-piece loop over Beast's buffer_body parser and
// serializer (chunked bodies, SSE token streams, close-delimited ones). Beast's: included by
// gateway.cc, agent.cc and their tests only.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <string_view>

#include "tide/net/hop_by_hop.h"

namespace tide::net {

using RelayParser = boost::beast::http::response_parser<boost::beast::http::buffer_body>;

// Makes the head a replica sent (parsed into `p`) ready for a client speaking HTTP/`version`
// that asked to stay open (`keep`): hop-by-hop fields out, the client's version, and a body
// delimited by the replica closing sent chunked to an HTTP/1.1 client (an HTTP/1.0 one sees the
// connection close instead). Returns whether the client's connection may stay open; the caller
// adds its own fields and then calls keep_alive() with it.
struct RelayHead {
  bool keep = false;
  bool delimited_by_close = false;
};
inline RelayHead prepare_relay_head(RelayParser& p, unsigned version, bool keep) {
  auto& msg = p.get();
  strip_hop_by_hop(msg.base());
  RelayHead h{keep, !p.content_length() && !msg.chunked()};
  msg.version(version);
  if (h.delimited_by_close) {
    if (version >= 11) {
      msg.chunked(true);
    } else {
      h.keep = false;
    }
  }
  return h;
}

// How a relay ended: kDone, or which side failed and with what (a timeout on a Beast stream
// shows as beast::error::timeout).
struct RelayEnd {
  enum Side { kDone, kUpstream, kClient } side = kDone;
  boost::system::error_code ec;
};

// Copies the body of the answer whose head `p` holds (made ready by prepare_relay_head) from
// `up` (bytes already read past the head in `up_buffer`) to `client`, 16 KiB at most a piece,
// writing the head with the first piece. `on_body(data, size)` sees every body byte read;
// `before_write()` runs before each write (to set a deadline). `sent_any` turns true before the
// first write.
template <class Upstream, class Client, class OnBody, class BeforeWrite>
boost::asio::awaitable<RelayEnd, typename Upstream::executor_type> relay_body(
    Upstream& up, boost::beast::flat_buffer& up_buffer, RelayParser& p, Client& client,
    bool delimited_by_close, bool& sent_any, OnBody on_body, BeforeWrite before_write) {
  namespace asio = boost::asio;
  namespace http = boost::beast::http;
  constexpr auto kNoThrow =
      asio::as_tuple(asio::use_awaitable_t<typename Upstream::executor_type>{});
  auto& msg = p.get();
  http::response_serializer<http::buffer_body> sr(msg);
  std::array<char, 16 * 1024> buf;
  for (;;) {
    if (!p.is_done()) {
      msg.body().data = buf.data();
      msg.body().size = buf.size();
      auto [ec, n] = co_await http::async_read_some(up, up_buffer, p, kNoThrow);
      if (ec == http::error::need_buffer) ec = {};
      if (ec == http::error::end_of_stream && delimited_by_close) ec = {};
      if (ec) co_return RelayEnd{RelayEnd::kUpstream, ec};
      const size_t got = buf.size() - msg.body().size;
      on_body(buf.data(), got);
      msg.body().size = got;
      // No body bytes yet (only framing was read): a zero-sized buffer would go out as the
      // last chunk, so hand none; the serializer then sends just the header, if due.
      msg.body().data = got == 0 ? nullptr : buf.data();
      msg.body().more = !p.is_done();
      if (got == 0 && !p.is_done() && sr.is_header_done()) continue;
    } else {
      msg.body().data = nullptr;
      msg.body().size = 0;
      msg.body().more = false;
    }
    sent_any = true;
    before_write();
    auto [wec, wn] = co_await http::async_write(client, sr, kNoThrow);
    if (wec == http::error::need_buffer) wec = {};
    if (wec) co_return RelayEnd{RelayEnd::kClient, wec};
    if (p.is_done() && sr.is_done()) co_return RelayEnd{};
  }
}

}  // namespace tide::net
