// The gateway's HTTP/1.1 parsers, apart from its sockets so that they can be tested and fuzzed
// alone (fuzz/): a client request into a RequestInfo, a replica's response head into a
// ResponseInfo. Both are Beast basic_parser subclasses fed with put() as bytes arrive; limits
// (header_limit, body_limit) are set by the caller. Internal to the gateway: included by
// gateway.cc, its test and the fuzz targets only (Beast stays out of every other header).
// One parser per connection's thread.
#pragma once

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <atomic>

#include "tide/common/errors.h"
#include "tide/common/text.h"
#include "tide/control/endpoint.h"
#include "tide/net/hop_by_hop.h"

namespace tide::gateway {

namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

using net::hop_by_hop;

inline void append(std::string& out, beast::string_view s) { out.append(s.data(), s.size()); }

inline void append_field(std::string& out, beast::string_view name, beast::string_view value) {
  append(out, name);
  out += ": ";
  append(out, value);
  out += "\r\n";
}

// What the gateway keeps of a client request: the request line, the Tide-Endpoint and
// Authorization values, the end-to-end fields already formatted for the replica (hop-by-hop,
// Host and framing fields left out: they are written anew), and the body. Reused from request
// to request on a connection, so that its strings keep their capacity.
// The memory all request bodies buffered at once may take (server.max_body_memory), shared by
// every connection of a listener. A body reserves its size before it is read (its declared
// Content-Length, or each chunk as it comes).
class BodyBudget {
 public:
  explicit BodyBudget(int64_t limit) : limit_(limit) {}
  bool take(int64_t n) {
    if (used_.fetch_add(n, std::memory_order_relaxed) + n <= limit_) return true;
    used_.fetch_sub(n, std::memory_order_relaxed);
    return false;
  }
  void give(int64_t n) { used_.fetch_sub(n, std::memory_order_relaxed); }
  int64_t limit() const { return limit_; }
  int64_t used() const { return used_.load(std::memory_order_relaxed); }

 private:
  const int64_t limit_;
  std::atomic<int64_t> used_{0};
};

// What the gateway keeps of a client request: the request line, the Tide-Endpoint and
// Authorization values, the end-to-end fields already formatted for the replica (hop-by-hop,
// Host and framing fields left out: they are written anew), and the body. Reused from request
// to request on a connection, so that its strings keep their capacity.
struct RequestInfo {
  http::verb verb = http::verb::unknown;
  std::string method;
  std::string target;
  unsigned version = 11;
  bool has_endpoint = false;
  std::string endpoint;
  std::string authorization;
  std::string fields;
  std::string body;
  std::vector<uint64_t> sticky;  // per configured sticky header: a hash of its value, 0 = absent
  bool expect_continue = false;  // Expect: 100-continue (answered by the gateway, not forwarded)
  BodyBudget* budget = nullptr;  // where the body's bytes are reserved
  int64_t charged = 0;           // reserved for this body
  bool over_memory = false;      // the budget was spent: 503
  bool in_trailer = false;       // the head is done: fields now are the trailer's
  int64_t trailer_bytes = 0;
  bool trailer_over = false;  // the trailer (or a chunk header) passed max_trailer_bytes: 431
  // Authorization is the gateway's (a client key): kept in `authorization`, not forwarded.
  // Set by the connection, kept by clear().
  bool own_authorization = false;
  RequestInfo() = default;
  RequestInfo(const RequestInfo&) = delete;
  RequestInfo& operator=(const RequestInfo&) = delete;
  ~RequestInfo() { release(); }
  bool charge(int64_t n) {
    if (budget == nullptr) return true;
    if (!budget->take(n)) {
      over_memory = true;
      return false;
    }
    charged += n;
    return true;
  }
  void release() {
    if (budget != nullptr && charged > 0) budget->give(charged);
    charged = 0;
  }
  void clear() {
    release();
    over_memory = false;
    in_trailer = false;
    trailer_bytes = 0;
    trailer_over = false;
    expect_continue = false;
    std::fill(sticky.begin(), sticky.end(), 0);
    method.clear();
    target.clear();
    has_endpoint = false;
    endpoint.clear();
    authorization.clear();
    fields.clear();
    body.clear();
  }
};

// Parses a client request into a RequestInfo, without Beast's fields container.
class RequestParser final : public http::basic_parser<true> {
 public:
  // `sticky_names`: the headers endpoints route by (routing.sticky_header); `max_trailer`: the
  // bytes a trailer may have (server.max_trailer_bytes).
  RequestParser(RequestInfo& r, const std::vector<std::string>& sticky_names, int64_t max_trailer)
      : r_(r), sticky_names_(sticky_names), max_trailer_(max_trailer) {
    r_.sticky.resize(sticky_names.size());
    r_.clear();
  }

 private:
  void on_request_impl(http::verb method, beast::string_view method_str, beast::string_view target,
                       int version, error_code&) override {
    r_.verb = method;
    append(r_.method, method_str);
    append(r_.target, target);
    r_.version = static_cast<unsigned>(version);
  }
  void on_response_impl(int, beast::string_view, int, error_code&) override {}
  void on_field_impl(http::field f, beast::string_view name, beast::string_view value,
                     error_code& ec) override {
    if (r_.in_trailer) {  // counted, checked, and not forwarded (a proxy may drop trailers)
      r_.trailer_bytes += static_cast<int64_t>(name.size() + value.size() + 4);
      if (r_.trailer_bytes > max_trailer_) {
        r_.trailer_over = true;
        ec = http::error::header_limit;
      }
      return;
    }
    if (f == http::field::unknown) {
      if (!r_.has_endpoint && beast::iequals(name, "Tide-Endpoint")) {
        r_.has_endpoint = true;
        append(r_.endpoint, value);
      }
      for (size_t i = 0; i < sticky_names_.size(); ++i) {
        if (beast::iequals(name, sticky_names_[i])) r_.sticky[i] = control::sticky_key(value);
      }
    } else if (f == http::field::authorization) {
      r_.authorization.assign(value.data(), value.size());
      if (r_.own_authorization) return;
    } else if (f == http::field::expect) {
      // The gateway reads the whole body before it picks a replica: it says 100 Continue itself.
      if (beast::iequals(value, "100-continue")) r_.expect_continue = true;
      return;
    }
    if (hop_by_hop(f) || f == http::field::host || f == http::field::content_length ||
        f == http::field::transfer_encoding)
      return;
    // Only the gateway speaks for itself to an agent.
    if (f == http::field::unknown && beast::iequals(name, "Tide-Replica-Secret")) return;
    append_field(r_.fields, name, value);
  }
  void on_header_impl(error_code&) override { r_.in_trailer = true; }
  // A sized body reserves its length at once (the per-request limit was checked before); a
  // chunked one each chunk as it comes.
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code& ec) override {
    if (!length) return;
    if (!r_.charge(static_cast<int64_t>(*length))) {
      ec = http::error::body_limit;
      return;
    }
    r_.body.reserve(static_cast<size_t>(*length));
  }
  std::size_t on_body_impl(beast::string_view body, error_code&) override {
    append(r_.body, body);
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, error_code& ec) override {
    if (!r_.charge(static_cast<int64_t>(body.size()))) {
      ec = http::error::body_limit;
      return 0;
    }
    append(r_.body, body);
    return body.size();
  }
  void on_finish_impl(error_code&) override {}

  RequestInfo& r_;
  const std::vector<std::string>& sticky_names_;
  const int64_t max_trailer_;
};

// What the gateway keeps of a replica's response head: the status line and the end-to-end fields
// formatted for the client (hop-by-hop and Tide-Replica left out).
struct ResponseInfo {
  unsigned status = 0;
  unsigned version = 11;
  std::string reason;
  std::string fields;
};

// Parses a replica's response head only (the body is taken raw or by Beast's parser).
class ResponseHeadParser final : public http::basic_parser<false> {
 public:
  explicit ResponseHeadParser(ResponseInfo& r) : r_(r) {
    r_.reason.clear();
    r_.fields.clear();
  }

 private:
  void on_request_impl(http::verb, beast::string_view, beast::string_view, int,
                       error_code&) override {}
  void on_response_impl(int code, beast::string_view reason, int version, error_code&) override {
    r_.status = static_cast<unsigned>(code);
    append(r_.reason, reason);
    r_.version = static_cast<unsigned>(version);
  }
  void on_field_impl(http::field f, beast::string_view name, beast::string_view value,
                     error_code&) override {
    if (hop_by_hop(f)) return;
    if (f == http::field::unknown &&
        (beast::iequals(name, "Tide-Replica") || beast::iequals(name, "Tide-Group")))
      return;
    append_field(r_.fields, name, value);
  }
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
  std::size_t on_body_impl(beast::string_view body, error_code&) override { return body.size(); }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, error_code&) override {
    return body.size();
  }
  void on_finish_impl(error_code&) override {}

  ResponseInfo& r_;
};

}  // namespace tide::gateway
