// `tide serve`: one process running the gateway, the control loop of every endpoint, the local
// or static replicas they ask for, and the admin API.
//
// Threads: `server.threads` gateway threads (one io_context each) and one control thread that
// runs the control ticks, the provisioner (probes, child processes) and signal handling (SIGHUP:
// the TLS listeners read their certificate and key files again).
// Shutdown (stop(), SIGINT or SIGTERM): stop accepting, answer held requests 503, let requests
// in progress finish (up to drain_timeout), stop every replica, return from run().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "tide/common/time.h"
#include "tide/config/config.h"

namespace tide::serve {

struct ServeOptions {
  // SIGINT / SIGTERM start the shutdown; SIGHUP reads the TLS files and config_path again.
  bool handle_signals = true;
  // The config file the server was started from, read again on SIGHUP ("" = none to read).
  std::string config_path;
  Duration drain_timeout = std::chrono::seconds(30);
  Duration stop_grace = std::chrono::seconds(10);  // replicas: SIGTERM, then SIGKILL after this
  // The dashboard's built files (index.html and the rest), served by the API listener at / and
  // /ui/...; read once at start. Empty or missing: no dashboard.
  std::string web_dir;
  // Operator log lines (listening, decisions, replicas ready or failed); default: stderr.
  std::function<void(const std::string&)> log;
};

class Server {
 public:
  // Validates that every group can run live, binds the listeners; throws std::runtime_error
  // with the reason when it cannot. Nothing is launched before run().
  explicit Server(const config::Config& config, ServeOptions options = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const;
  uint16_t api_port() const;

  // Serves until stop() or a signal, then shuts down cleanly. Call once.
  void run();
  // Starts the shutdown. Thread-safe; returns at once.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tide::serve
