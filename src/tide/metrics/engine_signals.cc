#include "tide/metrics/engine_signals.h"

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <cmath>

#include "tide/common/prometheus.h"

namespace tide::metrics {

namespace {

bool name_char(char c, bool first) {
  const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
  return alpha || (!first && c >= '0' && c <= '9');
}

bool blank(char c) { return c == ' ' || c == '\t'; }

// Past the label set that starts at line[i] == '{': the index after its '}', or npos when it
// never closes. Label values are quoted and may hold escaped quotes, commas and braces.
size_t skip_labels(std::string_view line, size_t i) {
  bool quoted = false;
  for (++i; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted && c == '\\') {
      ++i;  // the escaped character, whatever it is
    } else if (c == '"') {
      quoted = !quoted;
    } else if (!quoted && c == '}') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

// The sample value of a line after its name and labels: " 3.0" or " 3.0 1712345678000". NaN and
// the infinities are read (from_chars knows them) and then refused as not finite.
std::optional<double> sample_value(std::string_view rest) {
  size_t i = 0;
  while (i < rest.size() && blank(rest[i])) ++i;
  if (i == 0) return std::nullopt;  // the value must be separated from the name
  size_t end = i;
  while (end < rest.size() && !blank(rest[end])) ++end;
  std::string_view token = rest.substr(i, end - i);
  if (!token.empty() && token[0] == '+') token.remove_prefix(1);  // "+Inf"; from_chars wants none
  double v = 0;
  const auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
  if (ec != std::errc{} || ptr != token.data() + token.size() || !std::isfinite(v))
    return std::nullopt;
  return v;
}

// Adds one line to the totals when it is a sample of a family asked for. Returns false when the
// line is not a sample at all (for PrometheusScan::skipped).
bool scan_line(std::string_view line, std::span<const std::string_view> families,
               std::vector<FamilyTotal>& totals) {
  size_t i = 0;
  while (i < line.size() && blank(line[i])) ++i;
  if (i == line.size() || line[i] == '#') return true;  // blank, comment, HELP, TYPE
  const size_t start = i;
  while (i < line.size() && name_char(line[i], i == start)) ++i;
  if (i == start) return false;
  const std::string_view name = line.substr(start, i - start);
  size_t which = 0;
  while (which < families.size() && families[which] != name) ++which;
  if (which == families.size()) return true;  // another family: not read further
  if (i < line.size() && line[i] == '{') {
    i = skip_labels(line, i);
    if (i == std::string_view::npos) return false;
  }
  const std::optional<double> v = sample_value(line.substr(i));
  if (!v) return false;
  totals[which].sum += *v;
  ++totals[which].series;
  return true;
}

}  // namespace

PrometheusScan scan_prometheus(std::string_view page, std::span<const std::string_view> families,
                               size_t max_bytes) {
  PrometheusScan out;
  if (page.size() > max_bytes) {
    out.error =
        fmt::format("metrics page is {} bytes, over the limit of {}", page.size(), max_bytes);
    return out;
  }
  if (page.find('\0') != std::string_view::npos) {
    out.error = "metrics page is not text (it holds a NUL byte)";
    return out;
  }
  out.totals.assign(families.size(), FamilyTotal{});
  while (!page.empty()) {
    const size_t eol = page.find('\n');
    std::string_view line = page.substr(0, eol);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!scan_line(line, families, out.totals)) ++out.skipped;
    if (eol == std::string_view::npos) break;
    page.remove_prefix(eol + 1);
  }
  return out;
}

std::optional<EngineKind> engine_kind(std::string_view name) {
  if (name == "vllm") return EngineKind::kVllm;
  if (name == "tgi") return EngineKind::kTgi;
  if (name == "sglang") return EngineKind::kSglang;
  return std::nullopt;
}

std::string_view engine_kind_name(EngineKind kind) {
  switch (kind) {
    case EngineKind::kVllm:
      return "vllm";
    case EngineKind::kTgi:
      return "tgi";
    case EngineKind::kSglang:
      return "sglang";
  }
  return "?";
}

const EngineNames& engine_names(EngineKind kind) {
  static const EngineNames vllm{"vllm:num_requests_running",
                                "vllm:num_requests_waiting",
                                {"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"}};
  static const EngineNames tgi{"tgi_batch_current_size", "tgi_queue_size", {}};
  static const EngineNames sglang{
      "sglang:num_running_reqs", "sglang:num_queue_reqs", {"sglang:token_usage"}};
  switch (kind) {
    case EngineKind::kTgi:
      return tgi;
    case EngineKind::kSglang:
      return sglang;
    case EngineKind::kVllm:
      break;
  }
  return vllm;
}

EngineScan read_engine_signals(std::string_view page, EngineKind kind, size_t max_bytes) {
  const EngineNames& names = engine_names(kind);
  std::vector<std::string_view> families{names.running, names.waiting};
  families.insert(families.end(), names.kv_cache.begin(), names.kv_cache.end());
  const PrometheusScan scan = scan_prometheus(page, families, max_bytes);
  EngineScan out;
  if (!scan.error.empty()) {
    out.error = scan.error;
    return out;
  }
  const auto sum = [&](size_t i) -> std::optional<double> {
    if (scan.totals[i].series == 0) return std::nullopt;
    return scan.totals[i].sum;
  };
  EngineSignals s;
  s.running = sum(0);
  s.waiting = sum(1);
  if (!s.running && !s.waiting) {
    out.error = fmt::format("metrics page has neither {} nor {} (is it a {} server?)",
                            names.running, names.waiting, engine_kind_name(kind));
    return out;
  }
  for (size_t i = 2; i < families.size() && !s.kv_cache; ++i)
    if (scan.totals[i].series > 0) s.kv_cache = scan.totals[i].sum / scan.totals[i].series;
  const auto bad = [](std::optional<double> v, double hi) {
    return v && !(std::isfinite(*v) && *v >= 0 && *v <= hi);
  };
  if (bad(s.running, 1e9) || bad(s.waiting, 1e9) || bad(s.kv_cache, 1)) {
    out.error = fmt::format("metrics page has a value out of range: {} {}, {} {}, KV cache {}",
                            names.running, s.running.value_or(0), names.waiting,
                            s.waiting.value_or(0), s.kv_cache.value_or(0));
    return out;
  }
  out.signals = s;
  return out;
}

std::string engine_page(EngineKind kind, const EngineSignals& signals,
                        std::string_view model_name) {
  const EngineNames& names = engine_names(kind);
  std::vector<PrometheusText::Label> labels;
  if (kind == EngineKind::kVllm) labels.push_back({"engine", "0"});
  if (kind != EngineKind::kTgi) labels.push_back({"model_name", model_name});
  PrometheusText p;
  const auto gauge = [&](std::string_view name, std::string_view help, std::optional<double> v) {
    if (!v) return;
    p.family(name, "gauge", help);
    p.sample(name, labels, *v);
  };
  gauge(names.running, "Number of requests in model execution batches.", signals.running);
  gauge(names.waiting, "Number of requests waiting to be processed.", signals.waiting);
  if (!names.kv_cache.empty())
    gauge(names.kv_cache.front(), "KV-cache usage. 1 means 100 percent usage.", signals.kv_cache);
  return p.text();
}

}  // namespace tide::metrics
