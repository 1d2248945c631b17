// One blocking HTTP/1.1 exchange with a server on 127.0.0.1 (Beast, one connection per call),
// for the unit tests of servers (the agent, the demo model). The end-to-end tests, which time
// body pieces, have tests/http_client.h.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace tide::test {

struct HttpReply {
  unsigned status = 0;
  std::string body;
  boost::beast::http::fields fields;
  // The body's "error" object ({} when there is none).
  nlohmann::json error() const {
    const nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
    return j.is_object() && j.contains("error") ? j["error"] : nlohmann::json::object();
  }
};

// Sends one request (Content-Type application/json, `headers` added) and reads the answer; throws
// on a connection or protocol error.
inline HttpReply http_request(
    uint16_t port, boost::beast::http::verb verb, const std::string& target,
    const std::string& body = "",
    const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  namespace asio = boost::asio;
  namespace beast = boost::beast;
  namespace http = beast::http;
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), port});
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::content_type, "application/json");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  http::write(s, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res);
  return {res.result_int(), res.body(), static_cast<const http::fields&>(res)};
}

}  // namespace tide::test
