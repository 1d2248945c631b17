#include "tide/sim/arrivals.h"

#include <fmt/format.h>
#include <zstd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>

namespace tide::sim {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Gamma(shape, 1) by Marsaglia and Tsang; below shape 1 through Gamma(shape + 1) x U^(1/shape).
double gamma1(double shape, Random& rng) {
  if (shape < 1) {
    const double g = gamma1(shape + 1, rng);
    return g * std::exp(std::log(rng.uniform_open0()) / shape);
  }
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9 * d);
  for (;;) {
    const double x = rng.normal();
    double v = 1 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    if (std::log(rng.uniform_open0()) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
  }
}

// Mean of the fitted distribution with scale 1.
double unit_mean(const ClientWindow& w) {
  return w.dist == ClientWindow::Dist::kGamma ? w.shape : std::tgamma(1 + 1 / w.shape);
}

}  // namespace

Trace collect(RequestSource& source) {
  Trace t;
  t.streams = source.streams();
  t.has_duration = source.has_duration();
  t.has_tokens = source.has_tokens();
  source.rewind();
  TraceRequest r;
  while (source.next(r)) t.requests.push_back(r);
  source.rewind();
  if (!t.requests.empty()) t.span = t.requests.back().arrival.time_since_epoch();
  return t;
}

// ----- MMPP -------------------------------------------------------------------------------------

MmppSource::MmppSource(const MmppOptions& options, Duration duration, uint64_t seed)
    : GeneratedSource(duration, seed), o_(options) {
  rewind();
}

void MmppSource::rewind() {
  rng_ = Random(seed_);
  t_ = 0;
  on_ = false;
  state_end_ = rng_.exponential(to_seconds(o_.mean_off));
}

bool MmppSource::next(TraceRequest& out) {
  const double end = to_seconds(duration_);
  while (t_ < end) {
    const double rate = on_ ? o_.rate_on : o_.rate_off;
    const double gap = rate > 0 ? rng_.exponential(1 / rate) : kInf;
    if (t_ + gap < state_end_) {
      t_ += gap;
      if (t_ >= end) return false;
      out = TraceRequest{};
      out.arrival = time_at_seconds(t_);
      return true;
    }
    // Memoryless: the next state starts at the switch, with a fresh gap.
    t_ = state_end_;
    on_ = !on_;
    state_end_ = t_ + rng_.exponential(to_seconds(on_ ? o_.mean_on : o_.mean_off));
  }
  return false;
}

// ----- batches ----------------------------------------------------------------------------------

BatchSource::BatchSource(const BatchOptions& options, Duration duration, uint64_t seed)
    : GeneratedSource(duration, seed), o_(options) {}

void BatchSource::rewind() {
  rng_ = Random(seed_);
  next_batch_t_ = 0;
  pending_.clear();
}

bool BatchSource::next(TraceRequest& out) {
  const double end = to_seconds(duration_);
  const double period = to_seconds(o_.period);
  if (!(period > 0)) return false;
  // Batches may overlap (a random gap shorter than the spread): add every batch that starts
  // before the earliest pending request, then hand that one out.
  for (;;) {
    if (next_batch_t_ == 0) next_batch_t_ = o_.random_gaps ? rng_.exponential(period) : period;
    if (next_batch_t_ >= end || (!pending_.empty() && pending_.back() < next_batch_t_)) break;
    for (int i = 0; i < o_.size; ++i) {
      const double t = next_batch_t_ + rng_.uniform() * to_seconds(o_.spread);
      if (t < end) pending_.push_back(t);
    }
    std::sort(pending_.begin(), pending_.end(), std::greater<>());
    next_batch_t_ += o_.random_gaps ? rng_.exponential(period) : period;
  }
  if (pending_.empty()) return false;
  out = TraceRequest{};
  out.arrival = time_at_seconds(pending_.back());
  pending_.pop_back();
  return true;
}

// ----- piecewise-constant rate -----------------------------------------------------------------

PiecewisePoissonSource::PiecewisePoissonSource(std::vector<RatePiece> pieces, Duration duration,
                                               uint64_t seed)
    : GeneratedSource(duration, seed), pieces_(std::move(pieces)) {}

void PiecewisePoissonSource::rewind() {
  rng_ = Random(seed_);
  t_ = 0;
  piece_ = 0;
}

bool PiecewisePoissonSource::next(TraceRequest& out) {
  const double end = to_seconds(duration_);
  while (piece_ < pieces_.size() && t_ < end) {
    const double piece_end =
        piece_ + 1 < pieces_.size() ? to_seconds(pieces_[piece_ + 1].start) : end;
    const double rate = pieces_[piece_].rate;
    const double gap = rate > 0 ? rng_.exponential(1 / rate) : kInf;
    if (t_ + gap < std::min(piece_end, end)) {
      t_ += gap;
      out = TraceRequest{};
      out.arrival = time_at_seconds(t_);
      return true;
    }
    t_ = piece_end;  // memoryless: start afresh in the next piece
    ++piece_;
  }
  return false;
}

// ----- ServeGen client windows -----------------------------------------------------------------

double mean_rate(const std::vector<ClientWindows>& clients, Duration duration) {
  const double end = to_seconds(duration);
  double requests = 0;
  for (const auto& c : clients) {
    for (const auto& w : c.windows) {
      if (w.start_s >= end) break;
      requests += w.rate * std::min(kClientWindowS, end - w.start_s);
    }
  }
  return end > 0 ? requests / end : 0;
}

ClientWindowSource::ClientWindowSource(std::vector<ClientWindows> clients, double rate_scale,
                                       Duration duration, uint64_t seed)
    : GeneratedSource(duration, seed), clients_(std::move(clients)), rate_scale_(rate_scale) {
  rewind();
}

void ClientWindowSource::rewind() {
  heap_ = {};
  window_.assign(clients_.size(), 0);
  rngs_.clear();
  Random root(seed_);
  for (size_t c = 0; c < clients_.size(); ++c) {
    rngs_.emplace_back(root.next_u64());
    const double t = clients_[c].windows.empty() ? kInf : advance(c, -kInf);
    if (t < kInf) heap_.push({t, c});
  }
}

double ClientWindowSource::gap(const ClientWindow& w, Random& rng) const {
  const double mean = 1 / (w.rate * rate_scale_);
  switch (w.dist) {
    case ClientWindow::Dist::kNone:
      return rng.exponential(mean);
    case ClientWindow::Dist::kGamma:
      return gamma1(w.shape, rng) * mean / unit_mean(w);
    case ClientWindow::Dist::kWeibull:
      return std::pow(-std::log(rng.uniform_open0()), 1 / w.shape) * mean / unit_mean(w);
  }
  return kInf;
}

double ClientWindowSource::advance(size_t c, double t) {
  const auto& ws = clients_[c].windows;
  const double end = to_seconds(duration_);
  for (size_t& i = window_[c]; i < ws.size() && ws[i].start_s < end; ++i) {
    const ClientWindow& w = ws[i];
    const double w_end = std::min(end, w.start_s + kClientWindowS);
    if (!(w.rate > 0)) continue;
    const double from = std::max(t, w.start_s);
    const double next = from + gap(w, rngs_[c]);
    if (next < w_end) return next;
    t = -kInf;  // the next window starts afresh
  }
  return kInf;
}

bool ClientWindowSource::next(TraceRequest& out) {
  if (heap_.empty()) return false;
  const Cursor cur = heap_.top();
  heap_.pop();
  out = TraceRequest{};
  out.arrival = time_at_seconds(cur.t);
  const double t = advance(cur.client, cur.t);
  if (t < kInf) heap_.push({t, cur.client});
  return true;
}

}  // namespace tide::sim
