// Pieces the provisioners share, inside src/tide/provision only (this header brings in Asio).
//
// Everything here runs on one strand of the caller's io_context (Core::strand) unless it says
// otherwise: each backend's state is touched only there, so it needs no lock.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tide/config/config.h"
#include "tide/control/provisioner.h"
#include "tide/provision/provision.h"

namespace tide::provision::detail {

namespace asio = boost::asio;
using Strand = asio::strand<asio::io_context::executor_type>;
// For co_await: an operation's error comes back as a value (a tuple with its error_code).
inline constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

struct Core {
  Core(asio::io_context& io, const Clock& c, ProvisionOptions o)
      : strand(asio::make_strand(io)), clock(c), options(std::move(o)) {}
  Strand strand;
  const Clock& clock;
  ProvisionOptions options;
  // Set when the LiveProvisioner is destroyed: nothing may be reported any more.
  std::atomic<bool> closed{false};
};

// The last lines of a replica's output, trimmed, for an error message. Any thread.
std::string last_lines(std::string_view output);
// `s` with every `from` replaced by `to`.
std::string replace_all(std::string s, std::string_view from, std::string_view to);

// One launch, as the backends receive it on the strand.
struct Launch {
  uint64_t id = 0;
  std::string key;   // the replica's name, or "#id" when it has none
  std::string name;  // for logs and the environment
  config::ProvisionerSpec spec;
  control::ReplicaEvents* events = nullptr;
  // A group with agent.enabled: the agent's part of the command line (local only).
  std::optional<std::vector<std::string>> agent_argv;
  std::vector<std::string> agent_env;
  // The model server's metrics page, for the probe to read (groups without an agent).
  std::optional<config::EngineMetricsSpec> engine;
};

// Where and how a replica is probed.
struct ProbeTarget {
  std::string host;
  uint16_t port = 0;
  config::ReadyProbe ready;
  Duration liveness_interval{0};
  int liveness_failures = 3;
};

// Probes one replica over HTTP: readiness every ready.interval until a 2xx, then liveness every
// liveness_interval until `liveness_failures` probes in a row fail. Calls on_ready once, then
// on_dead at most once; neither after cancel(). Strand only.
class Watch : public std::enable_shared_from_this<Watch> {
 public:
  Watch(Strand strand, ProbeTarget target);
  ~Watch();
  void start(std::function<void()> on_ready, std::function<void(std::string)> on_dead);
  void cancel();
  // Before start(): once ready, the model server's metrics page is read every spec.interval
  // and what it says handed to on_engine; a failed read is skipped (it fails nothing).
  void read_engine(config::EngineMetricsSpec spec,
                   std::function<void(const metrics::EngineSignals&)> on_engine);

 private:
  static asio::awaitable<void> run(std::shared_ptr<Watch> self);
  // Nothing on success (2xx), else what went wrong ("Connection refused", "status 503").
  static asio::awaitable<std::optional<std::string>> probe_once(std::shared_ptr<Watch> self);
  static asio::awaitable<void> engine_loop(std::shared_ptr<Watch> self);
  struct Answer {
    std::optional<std::string> error;  // no answer: why
    unsigned status = 0;
    std::string body;
  };
  // GET `path` on the target: one deadline for connect, request and answer; `cancel` is set
  // while it is in flight; `local_error` says whether a failed connect was for want of a
  // descriptor or buffer here (not the replica's fault).
  static asio::awaitable<Answer> get(std::shared_ptr<Watch> self, const std::string& path,
                                     Duration timeout, size_t body_limit,
                                     std::function<void()>& cancel, bool& local_error);

  Strand strand_;
  ProbeTarget target_;
  asio::steady_timer timer_;
  std::function<void()> cancel_probe_;  // set while a probe is in flight
  asio::steady_timer engine_timer_;
  std::function<void()> cancel_engine_;  // set while a read of the metrics page is in flight
  std::function<void()> on_ready_;
  std::function<void(std::string)> on_dead_;
  std::optional<config::EngineMetricsSpec> engine_;
  std::function<void(const metrics::EngineSignals&)> on_engine_;
  bool cancelled_ = false;
  bool dead_ = false;         // failed its liveness probes
  bool local_error_ = false;  // the last probe failed for want of a descriptor (not the replica)
};

// `w` reading the launch's engine metrics page, if it has one, for its replica's events.
void read_engine_metrics(Watch& w, const Launch& l, const std::shared_ptr<Core>& core);

}  // namespace tide::provision::detail
