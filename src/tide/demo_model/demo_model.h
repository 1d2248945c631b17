// demo_model: an emulated LLM server for demos and tests. It speaks a small, OpenAI-compatible
// HTTP/1.1 API (/health, /v1/completions, /v1/chat/completions, streaming or not, and a
// Prometheus /metrics page with vLLM's, TGI's or SGLang's load gauges) and behaves like
// one replica of a model server: a cold start during which /health answers 503, a fixed number of
// slots taken FIFO, and service times drawn from a model. It runs no model; the text is fake.
//
// DemoModelServer binds in its constructor (so port() is known at once), serves on the thread that
// calls run(), and stop() may be called from any thread. Beast/Asio live only in demo_model.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "tide/common/time.h"
#include "tide/metrics/engine_signals.h"

namespace tide::demo_model {

// How long a request occupies its slot.
struct ServiceModel {
  enum class Kind { kFixed, kLognormal, kTokens };
  Kind kind = Kind::kFixed;
  double fixed_s = 1.0;    // kFixed
  double median_s = 1.0;   // kLognormal
  double sigma = 0.5;      // kLognormal
  double prefill_s = 0.0;  // kTokens: seconds per input (prompt) token
  double decode_s = 0.02;  // kTokens: seconds per output token
};

// Parses "fixed:1s", "lognormal:1s,0.5" (median, sigma) or "tokens:0.0002,0.02" (prefill and
// decode seconds per token). On bad input returns nullopt and sets `error`.
std::optional<ServiceModel> parse_service_model(std::string_view text, std::string& error);

struct DemoModelOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: an ephemeral port, see DemoModelServer::port()
  int concurrency = 4;
  Duration load_time{0};  // cold start: /health answers 503 until it has passed
  ServiceModel service;
  double token_rate = 0;  // streaming tokens per second; 0: 1/decode for kTokens, else 50
  uint64_t seed = 1;
  std::string model_name = "tide-demo";
  bool handle_signals = false;  // run() returns on SIGINT/SIGTERM
  // Completions carry Demo-Health-Lag-Us (from the end of the cold start to the first 2xx of
  // /health: how long readiness took to be seen) and Demo-Ready-To-Request-Us (from that first
  // 2xx to this request's arrival: readiness to dispatch, one clock, as the replica sees it).
  bool timing = false;
  // GET /metrics: the page of the engine named here, with its gauges from the server's state
  // (requests in a slot: running; waiting for one: waiting; share of slots taken: the KV cache).
  metrics::EngineKind engine = metrics::EngineKind::kVllm;
};

class DemoModelServer {
 public:
  // Binds and listens; throws std::runtime_error if it cannot. The cold start begins here.
  explicit DemoModelServer(DemoModelOptions options);
  ~DemoModelServer();
  DemoModelServer(const DemoModelServer&) = delete;
  DemoModelServer& operator=(const DemoModelServer&) = delete;

  // The bound port (the ephemeral one when options.port was 0).
  uint16_t port() const;
  // Serves on the calling thread until stop() (or a signal, with handle_signals) and every
  // connection has closed. Call once.
  void run();
  // Stops accepting, closes connections and makes run() return. Thread-safe.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tide::demo_model
