#include <fmt/format.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdio>
#include <exception>
#include <vector>

#include "tide/provision/internal.h"

namespace tide::provision::detail {

namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

std::string describe(const error_code& ec, Duration timeout) {
  if (ec == beast::error::timeout) return "timed out after " + format_duration(timeout);
  return ec.message();
}

}  // namespace

Watch::Watch(Strand strand, ProbeTarget target)
    : strand_(std::move(strand)),
      target_(std::move(target)),
      timer_(strand_),
      engine_timer_(strand_) {}

Watch::~Watch() = default;

void Watch::start(std::function<void()> on_ready, std::function<void(std::string)> on_dead) {
  on_ready_ = std::move(on_ready);
  on_dead_ = std::move(on_dead);
  asio::co_spawn(strand_, run(shared_from_this()), [](const std::exception_ptr& e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      std::fprintf(stderr, "tide: health probe failed: %s\n", x.what());
    }
  });
}

void Watch::cancel() {
  cancelled_ = true;
  timer_.cancel();
  engine_timer_.cancel();
  if (cancel_probe_) cancel_probe_();
  if (cancel_engine_) cancel_engine_();
  on_ready_ = nullptr;  // drops what the callbacks hold at once
  on_dead_ = nullptr;
  on_engine_ = nullptr;
}

awaitable<void> Watch::run(std::shared_ptr<Watch> self) {
  for (;;) {
    const auto error = co_await probe_once(self);
    if (self->cancelled_) co_return;
    if (!error) break;
    self->timer_.expires_after(self->target_.ready.interval);
    co_await self->timer_.async_wait(kNoThrow);
    if (self->cancelled_) co_return;
  }
  if (auto on_ready = std::move(self->on_ready_)) on_ready();
  if (self->engine_ && !self->cancelled_)
    asio::co_spawn(self->strand_, engine_loop(self), [](const std::exception_ptr& e) {
      if (e) std::fprintf(stderr, "tide: reading engine metrics ended by an exception\n");
    });
  int failures = 0;
  while (!self->cancelled_) {
    self->timer_.expires_after(self->target_.liveness_interval);
    co_await self->timer_.async_wait(kNoThrow);
    if (self->cancelled_) co_return;
    const auto error = co_await probe_once(self);
    if (self->cancelled_) co_return;
    if (!error) {
      failures = 0;
    } else if (self->local_error_) {
      // tide ran out of descriptors or buffers: says nothing of the replica's health.
    } else if (++failures >= self->target_.liveness_failures) {
      self->dead_ = true;  // the metrics page is read no more
      self->engine_timer_.cancel();
      if (auto on_dead = std::move(self->on_dead_))
        on_dead(fmt::format("health check failed {} times: {}", failures, *error));
      co_return;
    }
  }
}

awaitable<std::optional<std::string>> Watch::probe_once(std::shared_ptr<Watch> self) {
  const ProbeTarget& t = self->target_;
  const Answer a = co_await get(self, t.ready.path, t.ready.timeout, 64 * 1024, self->cancel_probe_,
                                self->local_error_);
  if (a.error) co_return a.error;
  if (a.status >= 200 && a.status < 300) co_return std::nullopt;
  co_return fmt::format("status {}", a.status);
}

awaitable<Watch::Answer> Watch::get(std::shared_ptr<Watch> self, const std::string& path,
                                    Duration timeout, size_t body_limit,
                                    std::function<void()>& cancel, bool& local_error) {
  const ProbeTarget& t = self->target_;
  std::vector<tcp::endpoint> endpoints;
  error_code ec;
  const auto address = asio::ip::make_address(t.host, ec);
  if (!ec) {
    endpoints.emplace_back(address, t.port);
  } else {
    tcp::resolver resolver(self->strand_);
    auto [rec, results] = co_await resolver.async_resolve(t.host, std::to_string(t.port), kNoThrow);
    if (self->cancelled_) co_return Answer{"cancelled", 0, {}};
    if (rec) co_return Answer{fmt::format("cannot resolve {}: {}", t.host, rec.message()), 0, {}};
    for (const auto& r : results) endpoints.push_back(r.endpoint());
  }

  beast::tcp_stream stream(self->strand_);
  cancel = [&stream] { stream.cancel(); };
  struct Forget {
    std::function<void()>& c;
    ~Forget() { c = nullptr; }
  } forget{cancel};
  stream.expires_after(timeout);  // one deadline for connect, request and response

  local_error = false;
  if (auto [cec, ep] = co_await stream.async_connect(endpoints, kNoThrow); cec) {
    local_error = cec == asio::error::no_descriptors || cec == asio::error::no_buffer_space ||
                  cec == asio::error::no_memory ||
                  cec == error_code(ENFILE, boost::system::system_category());
    co_return Answer{describe(cec, timeout), 0, {}};
  }
  http::request<http::empty_body> req{http::verb::get, path, 11};
  req.set(http::field::host, fmt::format("{}:{}", t.host, t.port));
  req.set(http::field::user_agent, "tide-probe");
  req.keep_alive(false);
  if (auto [wec, n] = co_await http::async_write(stream, req, kNoThrow); wec)
    co_return Answer{describe(wec, timeout), 0, {}};
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(body_limit);
  if (auto [rec, n] = co_await http::async_read(stream, buffer, parser, kNoThrow); rec)
    co_return Answer{describe(rec, timeout), 0, {}};
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  co_return Answer{std::nullopt, parser.get().result_int(), std::move(parser.get().body())};
}

awaitable<void> Watch::engine_loop(std::shared_ptr<Watch> self) {
  const config::EngineMetricsSpec& e = *self->engine_;
  const auto limit = static_cast<size_t>(e.max_bytes);
  bool local_error = false;  // what it says of tide, not the replica, changes nothing here
  while (!self->cancelled_ && !self->dead_) {
    self->engine_timer_.expires_after(e.interval);
    co_await self->engine_timer_.async_wait(kNoThrow);
    if (self->cancelled_ || self->dead_) co_return;
    const Answer a =
        co_await get(self, e.path, e.timeout, limit, self->cancel_engine_, local_error);
    if (self->cancelled_) co_return;
    if (a.error || a.status != 200) continue;  // stale figures drop out at the control plane
    const metrics::EngineScan scan = metrics::read_engine_signals(a.body, e.kind, limit);
    if (scan.signals && self->on_engine_) self->on_engine_(*scan.signals);
  }
}

void Watch::read_engine(config::EngineMetricsSpec spec,
                        std::function<void(const metrics::EngineSignals&)> on_engine) {
  engine_ = std::move(spec);
  on_engine_ = std::move(on_engine);
}

void read_engine_metrics(Watch& w, const Launch& l, const std::shared_ptr<Core>& core) {
  if (!l.engine) return;
  w.read_engine(*l.engine, [core, events = l.events, id = l.id](const metrics::EngineSignals& s) {
    if (!core->closed) events->on_replica_engine(id, core->clock.now(), s);
  });
}

}  // namespace tide::provision::detail
