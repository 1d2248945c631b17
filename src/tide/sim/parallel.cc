#include "tide/sim/parallel.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace tide::sim {

void parallel_for(size_t n, size_t threads, const std::function<void(size_t)>& job,
                  const std::function<void(size_t)>& done) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  threads = std::min(threads, n);
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  size_t finished = 0;
  std::exception_ptr error;
  auto worker = [&] {
    for (size_t i = next++; i < n && !failed; i = next++) {
      try {
        job(i);
      } catch (...) {
        std::lock_guard lock(mu);
        if (!error) error = std::current_exception();
        failed = true;
        return;
      }
      std::lock_guard lock(mu);
      ++finished;
      if (done) done(finished);
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

std::vector<SimResult> simulate_each(
    const std::vector<std::pair<std::string, config::Config>>& runs,
    const SourceFactory& make_source, const SimOptions& options, size_t threads,
    const std::function<void(size_t)>& done) {
  std::vector<SimResult> results(runs.size());
  parallel_for(
      runs.size(), threads,
      [&](size_t i) {
        auto source = make_source();
        results[i] = simulate(runs[i].second, *source, options);
        results[i].policy = runs[i].first;
      },
      done);
  return results;
}

}  // namespace tide::sim
