// Synthetic arrival processes beyond Poisson, as RequestSources for the simulator and the policy
// corpus (bench/policy): on/off (MMPP), batches, piecewise-constant rates (a step that stays), and
// real LLM clients' arrival processes from fitted per-window distributions (ServeGen).
//
// Each is deterministic for its seed, generated lazily, and starts over on rewind(). Not
// thread-safe: one source per simulation.
#pragma once

#include <cstdint>
#include <queue>
#include <string>
#include <vector>

#include "tide/common/random.h"
#include "tide/sim/engine.h"

namespace tide::sim {

// Fills a Trace with every request of `source` (rewound first, and again after).
Trace collect(RequestSource& source);

// Generated sources share these: the end of the workload, the seed, one stream.
class GeneratedSource : public RequestSource {
 public:
  GeneratedSource(Duration duration, uint64_t seed)
      : duration_(duration), seed_(seed), rng_(seed) {}
  Duration horizon() const override { return duration_; }
  const std::vector<std::string>& streams() const override { return streams_; }

 protected:
  Duration duration_;
  uint64_t seed_;
  Random rng_;  // rewind(): Random(seed_)

 private:
  std::vector<std::string> streams_{"synthetic"};
};

// Markov-modulated Poisson with two states: Poisson at rate_on while on, at rate_off while off;
// each stay is exponential with mean mean_on / mean_off. Starts in the off state.
struct MmppOptions {
  double rate_on = 1;
  double rate_off = 0;
  Duration mean_on = std::chrono::minutes(1);
  Duration mean_off = std::chrono::minutes(10);
};
class MmppSource final : public GeneratedSource {
 public:
  MmppSource(const MmppOptions& options, Duration duration, uint64_t seed);
  bool next(TraceRequest& out) override;
  void rewind() override;

 private:
  MmppOptions o_;
  double t_ = 0;
  double state_end_ = 0;
  bool on_ = false;
};

// Batches: `size` requests at once, each at a uniform offset within `spread` of the batch's
// start; batches every `period` (exactly, or exponential gaps with that mean when `random_gaps`).
// The first batch comes after one gap.
struct BatchOptions {
  int size = 40;
  Duration spread = std::chrono::seconds(1);
  Duration period = std::chrono::minutes(3);
  bool random_gaps = true;
};
class BatchSource final : public GeneratedSource {
 public:
  BatchSource(const BatchOptions& options, Duration duration, uint64_t seed);
  bool next(TraceRequest& out) override;
  void rewind() override;

 private:
  BatchOptions o_;
  double next_batch_t_ = 0;      // 0: not drawn yet
  std::vector<double> pending_;  // requests of started batches, latest first
};

// Poisson at a piecewise-constant rate: rates[i] from starts[i] (the first at 0) until the next
// start. A step up that stays: {0, r}, {T, 4r}.
struct RatePiece {
  Duration start;
  double rate;
};
class PiecewisePoissonSource final : public GeneratedSource {
 public:
  PiecewisePoissonSource(std::vector<RatePiece> pieces, Duration duration, uint64_t seed);
  bool next(TraceRequest& out) override;
  void rewind() override;

 private:
  std::vector<RatePiece> pieces_;
  double t_ = 0;
  size_t piece_ = 0;
};

// One client of a ServeGen model: 600 s windows with a measured rate and the fitted distribution
// of its inter-arrival times (Gamma or Weibull, shape and scale in seconds; none: Poisson at the
// rate, or nothing when the rate is 0).
struct ClientWindow {
  double start_s = 0;
  double rate = 0;  // requests per second
  enum class Dist : uint8_t { kNone, kGamma, kWeibull };
  Dist dist = Dist::kNone;
  double shape = 0;
  double scale = 0;
};
struct ClientWindows {
  std::string name;                   // the file it came from
  std::vector<ClientWindow> windows;  // by start
};
inline constexpr double kClientWindowS = 600;

// Reads every client of `model` (e.g. "deepseek-r1", "m-large") from the ServeGen archive
// (a .tar.zst or .tar of data/<family>/<model>/chunk-N-trace.csv). Throws TraceError naming the
// archive, the member and the line of a malformed row; an unknown model lists the models found.
std::vector<ClientWindows> load_client_windows(const std::string& archive,
                                               const std::string& model);

// Mean summed rate of the clients over [0, duration) (requests per second).
double mean_rate(const std::vector<ClientWindows>& clients, Duration duration);

// Arrivals of all clients merged. In each window a client's gaps are drawn from its fitted
// distribution, rescaled so that their mean is 1 / rate (the measured rate is kept; the fit
// gives the shape, hence the burstiness), then divided by `rate_scale` (0.01: a hundredth of
// the traffic with the same burstiness per client). A window's arrivals start afresh at its
// start; a gap running past its end ends the window.
class ClientWindowSource final : public GeneratedSource {
 public:
  ClientWindowSource(std::vector<ClientWindows> clients, double rate_scale, Duration duration,
                     uint64_t seed);
  bool next(TraceRequest& out) override;
  void rewind() override;

 private:
  struct Cursor {
    double t;
    size_t client;
    bool operator>(const Cursor& o) const { return t != o.t ? t > o.t : client > o.client; }
  };
  // The next arrival of client c after time t (in its current window or a later one), or +inf.
  double advance(size_t c, double t);
  double gap(const ClientWindow& w, Random& rng) const;
  std::vector<ClientWindows> clients_;
  double rate_scale_;
  std::vector<size_t> window_;  // per client: the window it is in
  std::vector<Random> rngs_;    // per client
  std::priority_queue<Cursor, std::vector<Cursor>, std::greater<>> heap_;
};

}  // namespace tide::sim
