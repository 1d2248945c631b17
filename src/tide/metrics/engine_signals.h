// What a model server (vLLM, TGI, SGLang) says of its own load on its Prometheus `/metrics` page:
// requests running, requests waiting, and the share of its KV cache in use. Read from the page's
// text by a bounded parser; plain code, no I/O, no clock (the scrapers live in the agent and the
// provisioners' probes).
//
// The metric names, as the engines define them:
//   vLLM   (vllm/engine/metrics.py, vllm/v1/metrics/loggers.py): gauges
//          vllm:num_requests_running, vllm:num_requests_waiting, vllm:gpu_cache_usage_perc
//          (renamed vllm:kv_cache_usage_perc in newer releases; 1 = full), labels model_name
//          and, with data parallelism, engine.
//   TGI    (router/src/queue.rs, router/src/infer/*): gauges tgi_queue_size,
//          tgi_batch_current_size, no labels; no KV-cache gauge.
//   SGLang (python/sglang/srt/metrics/collector.py): gauges sglang:num_running_reqs,
//          sglang:num_queue_reqs, sglang:token_usage (0..1), label model_name (and tp_rank...).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tide::metrics {

// One metric family's samples on a page, summed over its label sets (`series` of them). Samples
// that are not finite numbers (NaN, +Inf) are left out.
struct FamilyTotal {
  double sum = 0;
  int series = 0;
};

// The totals of `families` (same order), or `error` when the page cannot be read: larger than
// `max_bytes`, or not text. Comments, # HELP / # TYPE, other families and lines that are not
// samples are skipped (`skipped` counts the last kind).
struct PrometheusScan {
  std::vector<FamilyTotal> totals;
  int skipped = 0;
  std::string error;
};
PrometheusScan scan_prometheus(std::string_view page, std::span<const std::string_view> families,
                               size_t max_bytes);

enum class EngineKind { kVllm, kTgi, kSglang };
std::optional<EngineKind> engine_kind(std::string_view name);  // "vllm" | "tgi" | "sglang"
std::string_view engine_kind_name(EngineKind kind);

// A model server's own figures at one moment, summed over its label sets (engines, ranks); the
// KV cache is the mean over them. Absent where the engine does not export it.
struct EngineSignals {
  bool operator==(const EngineSignals&) const = default;
  std::optional<double> running;   // requests in the running batch
  std::optional<double> waiting;   // requests queued inside the engine
  std::optional<double> kv_cache;  // share of the KV cache in use, 0..1
};

// The metric names `kind` exports, as documented above.
struct EngineNames {
  std::string_view running;
  std::string_view waiting;
  std::vector<std::string_view> kv_cache;  // first present wins
};
const EngineNames& engine_names(EngineKind kind);

// `signals`, or `error`: the page could not be read, it has neither the running nor the waiting
// family of `kind` (the wrong kind, or not a model server's page), or a figure is out of range
// (running and waiting: 0 to 1e9; the KV cache: 0 to 1).
struct EngineScan {
  std::optional<EngineSignals> signals;
  std::string error;
};
EngineScan read_engine_signals(std::string_view page, EngineKind kind, size_t max_bytes);

// A page as `kind` writes it, with `signals` (each family present only where set) and the
// engine's labels (vLLM: engine="0" and model_name; SGLang: model_name; TGI: none). For
// `tide demo-model`, which emulates these servers.
std::string engine_page(EngineKind kind, const EngineSignals& signals, std::string_view model_name);

}  // namespace tide::metrics
