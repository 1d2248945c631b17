#include "tide/sim/trace.h"

#include <zstd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace tide::sim {
namespace {

constexpr int64_t kNanosPerSecond = 1'000'000'000;
constexpr int64_t kNanosPerMinute = 60 * kNanosPerSecond;
// A line longer than this is not a trace (probably a binary file): refuse instead of eating RAM.
constexpr size_t kMaxLineBytes = size_t{64} << 20;
constexpr uint64_t kMaxPerMinute = 10'000'000;

// ---------------------------------------------------------------------------------------------
// Small text helpers

// A message quotes at most this much of what it complains about (names, values, the JSON
// parser's "last read"): a 50 MB line gives a short message.
constexpr size_t kMaxProblemBytes = 400;

[[noreturn]] void fail(const std::string& path, uint64_t line, std::string_view problem) {
  if (problem.size() > kMaxProblemBytes) {
    throw TraceError(fmt::format("{}:{}: {}...", path, line, problem.substr(0, kMaxProblemBytes)));
  }
  throw TraceError(fmt::format("{}:{}: {}", path, line, problem));
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool ends_with_ci(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && iequals(s.substr(s.size() - suffix.size()), suffix);
}

// How a value appears in an error message: quoted (CSV fields, JSON strings) or raw (JSON
// numbers, null, true), shortened so a garbage line does not flood the terminal.
struct Cell {
  std::string_view text;
  bool quoted = true;
};

std::string show(Cell cell) {
  constexpr size_t kMax = 60;
  std::string text(cell.text.substr(0, kMax));
  if (cell.text.size() > kMax) text += "...";
  return cell.quoted ? fmt::format("\"{}\"", text) : text;
}

// "a, b, c", cut short for per-minute files with 1,443 columns (and each name too).
std::string list_names(const std::vector<std::string>& names) {
  constexpr size_t kMax = 12;
  std::string out;
  for (size_t i = 0; i < names.size() && i < kMax; ++i) {
    if (i > 0) out += ", ";
    out += show(Cell{names[i], false});
  }
  if (names.size() > kMax) out += fmt::format(", ... ({} in all)", names.size());
  return out;
}

// Exact match first, then case-insensitive (first one wins).
std::optional<size_t> find_name(const std::vector<std::string>& names, std::string_view want) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == want) return i;
  }
  for (size_t i = 0; i < names.size(); ++i) {
    if (iequals(names[i], want)) return i;
  }
  return std::nullopt;
}

std::optional<uint64_t> parse_uint(std::string_view s) {
  s = trim(s);
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return value;
}

std::optional<double> parse_double(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

// A decimal number scaled by 10^digits to an exact integer: "1.5" with digits 3 -> 1500.
// Digits beyond the scale are rounded half up. Exponent notation goes through a double.
std::optional<int64_t> parse_scaled(std::string_view s, int digits) {
  s = trim(s);
  int64_t scale = 1;
  for (int i = 0; i < digits; ++i) scale *= 10;
  if (s.find_first_of("eE") != std::string_view::npos) {
    std::optional<double> value = parse_double(s);
    if (!value) return std::nullopt;
    const double scaled = *value * static_cast<double>(scale);
    if (!(std::fabs(scaled) < 9.2e18)) return std::nullopt;
    return static_cast<int64_t>(std::llround(scaled));
  }
  bool negative = false;
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  const size_t dot = s.find('.');
  std::string_view whole = s.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? std::string_view{} : s.substr(dot + 1);
  if (whole.empty() && frac.empty()) return std::nullopt;
  int64_t value = 0;
  for (char c : whole) {
    if (c < '0' || c > '9') return std::nullopt;
    if (__builtin_mul_overflow(value, 10, &value) || __builtin_add_overflow(value, c - '0', &value))
      return std::nullopt;
  }
  if (__builtin_mul_overflow(value, scale, &value)) return std::nullopt;
  int64_t frac_value = 0;
  int64_t place = scale;
  bool round_up = false;
  for (size_t i = 0; i < frac.size(); ++i) {
    const char c = frac[i];
    if (c < '0' || c > '9') return std::nullopt;
    if (place > 1) {
      place /= 10;
      frac_value += (c - '0') * place;
    } else if (i == static_cast<size_t>(digits)) {
      round_up = c >= '5';
    }
  }
  if (round_up) ++frac_value;
  if (__builtin_add_overflow(value, frac_value, &value)) return std::nullopt;
  return negative ? -value : value;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// "YYYY-MM-DD HH:MM:SS[.fffffffff][Z]" (or a 'T' separator) to nanoseconds since 1970, exactly.
std::optional<int64_t> parse_datetime(std::string_view s) {
  s = trim(s);
  if (!s.empty() && (s.back() == 'Z' || s.back() == 'z')) s.remove_suffix(1);
  if (s.size() < 19) return std::nullopt;
  auto digits = [&](size_t pos, size_t n) -> std::optional<int64_t> {
    int64_t v = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  if (s[4] != '-' || s[7] != '-' || (s[10] != ' ' && s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  auto year = digits(0, 4), month = digits(5, 2), day = digits(8, 2);
  auto hour = digits(11, 2), minute = digits(14, 2), second = digits(17, 2);
  if (!year || !month || !day || !hour || !minute || !second) return std::nullopt;
  constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (*month < 1 || *month > 12 || *day < 1) return std::nullopt;
  const int64_t month_days = kDays[*month - 1] + (*month == 2 && is_leap(*year) ? 1 : 0);
  if (*day > month_days || *hour > 23 || *minute > 59 || *second > 59) return std::nullopt;
  int64_t frac = 0;
  if (s.size() > 19) {
    const size_t n = s.size() - 20;
    if (s[19] != '.' || n < 1 || n > 9) return std::nullopt;
    auto f = digits(20, n);
    if (!f) return std::nullopt;
    frac = *f;
    for (size_t i = n; i < 9; ++i) frac *= 10;
  }
  const int64_t seconds =
      days_from_civil(*year, *month, *day) * 86400 + *hour * 3600 + *minute * 60 + *second;
  int64_t nanos = 0;
  // int64 nanoseconds cover 1677..2262; outside that the timestamp is refused.
  if (__builtin_mul_overflow(seconds, kNanosPerSecond, &nanos) ||
      __builtin_add_overflow(nanos, frac, &nanos)) {
    return std::nullopt;
  }
  return nanos;
}

// ---------------------------------------------------------------------------------------------
// Reading lines from a plain or zstd-compressed file, in chunks (a file is read once).

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
struct DctxFree {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

class LineReader {
 public:
  explicit LineReader(std::string path) : path_(std::move(path)) {
    file_.reset(std::fopen(path_.c_str(), "rb"));
    if (!file_) throw TraceError(fmt::format("{}: cannot open: {}", path_, std::strerror(errno)));
    if (ends_with_ci(path_, ".zst")) {
      dctx_.reset(ZSTD_createDCtx());
      if (!dctx_) throw TraceError(fmt::format("{}: cannot create a zstd context", path_));
      in_.resize(ZSTD_DStreamInSize());
    }
    // Grows by doubling for longer lines; small to start, so that opening a file stays cheap.
    buf_.resize(size_t{1} << 16);
  }

  const std::string& path() const { return path_; }
  // Number of the line last returned (1-based).
  uint64_t line_no() const { return line_no_; }

  // The next line without its "\n" / "\r\n"; valid until the next call. False at the end.
  bool next(std::string_view& line) {
    while (true) {
      const char* base = buf_.data();
      const void* nl = std::memchr(base + scan_, '\n', end_ - scan_);
      if (nl != nullptr) {
        const size_t pos = static_cast<size_t>(static_cast<const char*>(nl) - base);
        line = std::string_view(base + begin_, pos - begin_);
        begin_ = scan_ = pos + 1;
        return finish(line);
      }
      scan_ = end_;
      if (eof_) {
        if (begin_ == end_) return false;
        line = std::string_view(base + begin_, end_ - begin_);
        begin_ = scan_ = end_;
        return finish(line);
      }
      refill();
    }
  }

 private:
  bool finish(std::string_view& line) {
    ++line_no_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return true;
  }

  void refill() {
    // Keep the unfinished line, make room behind it.
    if (begin_ > 0) {
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      scan_ -= begin_;
      begin_ = 0;
    }
    if (end_ == buf_.size()) {
      if (buf_.size() >= kMaxLineBytes) {
        fail(path_, line_no_ + 1, fmt::format("line longer than {} MiB", kMaxLineBytes >> 20));
      }
      buf_.resize(buf_.size() * 2);
    }
    const size_t got = dctx_ ? read_zstd(buf_.data() + end_, buf_.size() - end_)
                             : read_plain(buf_.data() + end_, buf_.size() - end_);
    if (got == 0) eof_ = true;
    end_ += got;
  }

  size_t read_plain(char* dst, size_t cap) {
    const size_t got = std::fread(dst, 1, cap, file_.get());
    if (got == 0 && std::ferror(file_.get())) {
      fail(path_, line_no_ + 1, fmt::format("read error: {}", std::strerror(errno)));
    }
    return got;
  }

  // Decompresses into dst; 0 only at the true end of the data.
  size_t read_zstd(char* dst, size_t cap) {
    while (true) {
      if (in_pos_ == in_size_ && !output_pending_) {
        in_size_ = read_plain(in_.data(), in_.size());
        in_pos_ = 0;
        if (in_size_ == 0) {
          if (frame_open_) fail(path_, line_no_ + 1, "truncated zstd data");
          return 0;
        }
      }
      ZSTD_outBuffer out{dst, cap, 0};
      ZSTD_inBuffer in{in_.data(), in_size_, in_pos_};
      const size_t ret = ZSTD_decompressStream(dctx_.get(), &out, &in);
      if (ZSTD_isError(ret)) {
        fail(path_, line_no_ + 1, fmt::format("corrupt zstd data: {}", ZSTD_getErrorName(ret)));
      }
      in_pos_ = in.pos;
      frame_open_ = ret != 0;
      // A full output buffer may leave decoded bytes inside zstd: ask again before reading.
      output_pending_ = out.pos == cap;
      if (out.pos > 0) return out.pos;
    }
  }

  std::string path_;
  std::unique_ptr<std::FILE, FileCloser> file_;
  std::unique_ptr<ZSTD_DCtx, DctxFree> dctx_;
  std::vector<char> in_;
  size_t in_pos_ = 0;
  size_t in_size_ = 0;
  bool frame_open_ = false;
  bool output_pending_ = false;
  std::vector<char> buf_;
  size_t begin_ = 0;  // start of the unread data
  size_t scan_ = 0;   // searched for '\n' up to here
  size_t end_ = 0;    // end of the data in buf_
  bool eof_ = false;
  uint64_t line_no_ = 0;
};

// ---------------------------------------------------------------------------------------------
// CSV records (RFC 4180 quoting: "a,b", "" for a quote, newlines inside quotes).

enum class SplitResult { kOk, kOpenQuote, kBadQuote };

// Splits `line` into views of `line` or of `scratch` (unescaped quoted fields). `scratch` is
// reserved to the line's size first, so it never reallocates under the views.
SplitResult split_csv(std::string_view line, std::vector<std::string_view>& fields,
                      std::string& scratch) {
  fields.clear();
  scratch.clear();
  scratch.reserve(line.size());
  size_t i = 0;
  const size_t n = line.size();
  while (true) {
    if (i < n && line[i] == '"') {
      const size_t start = scratch.size();
      ++i;
      while (true) {
        const size_t q = line.find('"', i);
        if (q == std::string_view::npos) return SplitResult::kOpenQuote;
        scratch.append(line.data() + i, q - i);
        if (q + 1 < n && line[q + 1] == '"') {
          scratch += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      fields.emplace_back(scratch.data() + start, scratch.size() - start);
      if (i == n) return SplitResult::kOk;
      if (line[i] != ',') return SplitResult::kBadQuote;
      ++i;
    } else {
      const size_t comma = line.find(',', i);
      if (comma == std::string_view::npos) {
        fields.push_back(line.substr(i));
        return SplitResult::kOk;
      }
      fields.push_back(line.substr(i, comma - i));
      i = comma + 1;
    }
  }
}

class CsvReader {
 public:
  explicit CsvReader(const std::string& path) : lines_(path) {}

  const std::string& path() const { return lines_.path(); }
  uint64_t line_no() const { return record_line_; }
  uint64_t last_line_no() const { return lines_.line_no(); }

  // The next non-blank record; the views stay valid until the next call.
  bool next(std::vector<std::string_view>& fields) {
    std::string_view line;
    do {
      if (!lines_.next(line)) return false;
      if (lines_.line_no() == 1 && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);
    } while (line.empty());
    record_line_ = lines_.line_no();
    SplitResult result = split_csv(line, fields, scratch_);
    if (result == SplitResult::kOpenQuote) {
      // A quoted field spans lines: gather them (the reader's buffer moves, so copy).
      record_.assign(line);
      while (result == SplitResult::kOpenQuote) {
        if (!lines_.next(line)) fail(path(), record_line_, "unterminated quoted field");
        record_ += '\n';
        record_ += line;
        result = split_csv(record_, fields, scratch_);
      }
    }
    if (result == SplitResult::kBadQuote) {
      fail(path(), record_line_, "malformed quoted field (text after the closing quote)");
    }
    return true;
  }

  // The header row as owned strings.
  std::vector<std::string> header() {
    std::vector<std::string_view> fields;
    if (!next(fields)) fail(path(), 1, "empty file (expected a header row)");
    std::vector<std::string> names;
    for (std::string_view f : fields) names.emplace_back(trim(f));
    return names;
  }

 private:
  LineReader lines_;
  std::string scratch_;
  std::string record_;
  uint64_t record_line_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Request logs: rows of (time, duration?, tokens?, stream?) for CSV and JSONL alike.

struct LogColumns {
  std::string time;
  std::optional<std::string> duration, input_tokens, output_tokens, stream;
};

// Resolves the option names against the header (CSV) or the first object's keys (JSONL).
LogColumns resolve_columns(const TraceOptions& o, const std::vector<std::string>& names,
                           const std::string& path, uint64_t line, std::string_view what) {
  auto required = [&](const std::string& want) {
    std::optional<size_t> i = find_name(names, want);
    if (!i) {
      fail(path, line, fmt::format("no {} \"{}\" ({}s: {})", what, want, what, list_names(names)));
    }
    return names[*i];
  };
  auto detect =
      [&](std::initializer_list<std::string_view> candidates) -> std::optional<std::string> {
    for (std::string_view c : candidates) {
      if (std::optional<size_t> i = find_name(names, c)) return names[*i];
    }
    return std::nullopt;
  };
  LogColumns cols;
  cols.time = required(o.time_col);
  if (!o.duration_col.empty()) cols.duration = required(o.duration_col);
  cols.input_tokens = !o.input_tokens_col.empty()
                          ? required(o.input_tokens_col)
                          : detect({"ContextTokens", "input_tokens", "prompt_tokens"});
  cols.output_tokens = !o.output_tokens_col.empty()
                           ? required(o.output_tokens_col)
                           : detect({"GeneratedTokens", "output_tokens", "completion_tokens"});
  if (!o.stream_col.empty()) cols.stream = required(o.stream_col);
  return cols;
}

class LogBuilder {
 public:
  LogBuilder(const TraceOptions& o, std::string path, LogColumns cols, std::string_view what)
      : options_(o), path_(std::move(path)), cols_(std::move(cols)), what_(what) {
    trace_.has_duration = cols_.duration.has_value();
    trace_.has_tokens = cols_.input_tokens.has_value() || cols_.output_tokens.has_value();
    if (!cols_.stream) trace_.streams.emplace_back("all");
  }

  const LogColumns& columns() const { return cols_; }

  void add(uint64_t line, Cell time, std::optional<Cell> duration, std::optional<Cell> input,
           std::optional<Cell> output, std::optional<Cell> stream) {
    TraceRequest r;
    r.arrival = Time{Duration{parse_time(line, time)}};
    if (duration) {
      std::optional<double> d = parse_double(duration->text);
      if (!d || *d < 0 || *d > kMaxServiceSeconds) {
        bad(line, *cols_.duration,
            fmt::format("a number of seconds from 0 to {:g}", kMaxServiceSeconds), *duration);
      }
      r.duration_s = *d;
    }
    if (input) r.input_tokens = parse_tokens(line, *cols_.input_tokens, *input);
    if (output) r.output_tokens = parse_tokens(line, *cols_.output_tokens, *output);
    if (stream) r.stream = stream_index(stream->text);
    note_time(line, r.arrival.time_since_epoch().count());
    trace_.requests.push_back(r);
  }

  Trace finish(uint64_t last_line) && {
    if (trace_.requests.empty()) fail(path_, last_line, "no requests (only a header)");
    check_span();
    for (TraceRequest& r : trace_.requests) {
      r.arrival = Time{Duration{r.arrival.time_since_epoch().count() - min_ns_}};
    }
    std::stable_sort(
        trace_.requests.begin(), trace_.requests.end(),
        [](const TraceRequest& a, const TraceRequest& b) { return a.arrival < b.arrival; });
    apply_limit(trace_, options_.limit);
    return std::move(trace_);
  }

  static void apply_limit(Trace& trace, Duration limit) {
    if (limit > Duration{0}) {
      auto end = std::lower_bound(trace.requests.begin(), trace.requests.end(), Time{limit},
                                  [](const TraceRequest& r, Time t) { return r.arrival < t; });
      trace.requests.erase(end, trace.requests.end());
    }
    trace.span =
        trace.requests.empty() ? Duration{0} : trace.requests.back().arrival.time_since_epoch();
  }

 private:
  [[noreturn]] void bad(uint64_t line, const std::string& col, std::string_view expected,
                        Cell got) const {
    fail(path_, line,
         fmt::format("{} \"{}\": expected {}, got {}", what_, col, expected, show(got)));
  }

  // Nanoseconds since the epoch, never negative (a time before 1970 is a corrupt row).
  int64_t parse_time(uint64_t line, Cell cell) const {
    std::optional<int64_t> ns;
    std::string_view expected;
    switch (options_.time_unit) {
      case TimeUnit::kDatetime:
        ns = parse_datetime(cell.text);
        expected = "a datetime from 1970 on like \"2023-11-16 18:15:46.68\"";
        break;
      case TimeUnit::kSeconds:
        ns = parse_scaled(cell.text, 9);
        expected = "a non-negative number of seconds";
        break;
      case TimeUnit::kMillis:
        ns = parse_scaled(cell.text, 6);
        expected = "a non-negative number of milliseconds";
        break;
      case TimeUnit::kMicros:
        ns = parse_scaled(cell.text, 3);
        expected = "a non-negative number of microseconds";
        break;
    }
    if (!ns || *ns < 0) bad(line, cols_.time, expected, cell);
    return *ns;
  }

  // Keeps the earliest and latest times with their lines, and counts rows out of order.
  void note_time(uint64_t line, int64_t ns) {
    if (ns < max_ns_) {
      if (trace_.unordered_rows++ == 0) trace_.first_unordered_line = line;
    }
    if (ns < min_ns_) {
      min_ns_ = ns;
      min_line_ = line;
    }
    if (ns >= max_ns_) {
      max_ns_ = ns;
      max_line_ = line;
    }
  }

  // Without a limit, the latest row must lie within kMaxSpan of the earliest (times are
  // non-negative: no overflow). A limit (<= kMaxSpan, checked by load) bounds the span itself.
  void check_span() const {
    if (options_.limit > Duration{0} || max_ns_ - min_ns_ <= kMaxSpan.count()) return;
    fail(path_, max_line_,
         fmt::format("{} \"{}\": this row comes {:.0f} s after the earliest one (line {}); a "
                     "workload spans at most {} days (cut the trace with a limit)",
                     what_, cols_.time, static_cast<double>(max_ns_ - min_ns_) * 1e-9, min_line_,
                     kMaxSpan / std::chrono::hours(24)));
  }

  int32_t parse_tokens(uint64_t line, const std::string& col, Cell cell) const {
    std::optional<uint64_t> v = parse_uint(cell.text);
    if (!v || *v > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
      bad(line, col, "a non-negative integer", cell);
    }
    return static_cast<int32_t>(*v);
  }

  uint32_t stream_index(std::string_view name) {
    key_.assign(name);  // reuses its capacity: no allocation per row
    auto [it, inserted] =
        stream_ids_.try_emplace(key_, static_cast<uint32_t>(trace_.streams.size()));
    if (inserted) trace_.streams.push_back(key_);
    return it->second;
  }

  const TraceOptions& options_;
  std::string path_;
  LogColumns cols_;
  std::string_view what_;
  Trace trace_;
  int64_t min_ns_ = std::numeric_limits<int64_t>::max();
  int64_t max_ns_ = 0;
  uint64_t min_line_ = 0, max_line_ = 0;
  std::unordered_map<std::string, uint32_t> stream_ids_;
  std::string key_;
};

// CSV request log: the rows after the header.
Trace load_csv_log(const TraceOptions& o, CsvReader& reader,
                   const std::vector<std::string>& names) {
  LogColumns cols = resolve_columns(o, names, o.path, reader.line_no(), "column");
  auto index = [&](const std::optional<std::string>& name) -> std::optional<size_t> {
    if (!name) return std::nullopt;
    return find_name(names, *name);
  };
  const size_t time_i = *find_name(names, cols.time);
  const std::optional<size_t> dur_i = index(cols.duration), in_i = index(cols.input_tokens),
                              out_i = index(cols.output_tokens), stream_i = index(cols.stream);
  LogBuilder builder(o, o.path, std::move(cols), "column");
  std::vector<std::string_view> fields;
  fields.reserve(names.size());
  auto cell = [&](std::optional<size_t> i) -> std::optional<Cell> {
    if (!i) return std::nullopt;
    return Cell{fields[*i]};
  };
  while (reader.next(fields)) {
    if (fields.size() != names.size()) {
      fail(o.path, reader.line_no(),
           fmt::format("expected {} fields, got {}", names.size(), fields.size()));
    }
    builder.add(reader.line_no(), Cell{fields[time_i]}, cell(dur_i), cell(in_i), cell(out_i),
                cell(stream_i));
  }
  return std::move(builder).finish(reader.last_line_no());
}

// ---------------------------------------------------------------------------------------------
// JSONL request logs. A SAX handler keeps the top-level values as text, so numbers keep their
// exact digits (a double would round a nanosecond epoch timestamp).

class TopLevelFields final : public nlohmann::json_sax<nlohmann::json> {
 public:
  struct Field {
    std::string key;
    std::string text;
    bool is_string = false;
  };

  // Parses one line; returns an error message or "" on success.
  std::string parse(std::string_view line) {
    count_ = 0;
    depth_ = 0;
    want_value_ = false;
    not_object_ = false;
    error_.clear();
    const bool ok = nlohmann::json::sax_parse(line.data(), line.data() + line.size(), this);
    if (not_object_) return "expected a JSON object";
    if (!ok) return error_.empty() ? std::string("invalid JSON") : error_;
    return {};
  }

  std::optional<Cell> find(std::string_view key) const {
    for (size_t i = 0; i < count_; ++i) {
      if (fields_[i].key == key) return Cell{fields_[i].text, fields_[i].is_string};
    }
    return std::nullopt;
  }

  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (size_t i = 0; i < count_; ++i) out.push_back(fields_[i].key);
    return out;
  }

  bool null() override { return value("null", false); }
  bool boolean(bool val) override { return value(val ? "true" : "false", false); }
  bool number_integer(number_integer_t val) override { return value(std::to_string(val), false); }
  bool number_unsigned(number_unsigned_t val) override { return value(std::to_string(val), false); }
  bool number_float(number_float_t, const string_t& s) override { return value(s, false); }
  bool string(string_t& val) override { return value(val, true); }
  bool binary(binary_t&) override { return value("<binary>", false); }
  bool start_object(std::size_t) override {
    if (depth_ == 1) value("{...}", false);
    ++depth_;
    return true;
  }
  bool key(string_t& val) override {
    if (depth_ == 1) {
      if (count_ == fields_.size()) fields_.emplace_back();
      fields_[count_].key = val;
      want_value_ = true;
    }
    return true;
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    if (depth_ == 0) {
      not_object_ = true;
      return false;
    }
    if (depth_ == 1) value("[...]", false);
    ++depth_;
    return true;
  }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    // "[json.exception.parse_error.101] parse error at line 1, column 5: ..." -> the useful part.
    std::string_view what = ex.what();
    if (size_t p = what.find("] "); p != std::string_view::npos) what.remove_prefix(p + 2);
    std::string msg(what);
    if (size_t p = msg.find("line 1, "); p != std::string::npos) msg.erase(p, 8);
    error_ = "invalid JSON: " + msg;
    return false;
  }

 private:
  bool value(std::string_view text, bool is_string) {
    if (depth_ == 0) {
      not_object_ = true;
      return false;
    }
    if (depth_ == 1 && want_value_) {
      fields_[count_].text.assign(text);
      fields_[count_].is_string = is_string;
      ++count_;
      want_value_ = false;
    }
    return true;
  }

  std::vector<Field> fields_;  // reused across lines: no allocation once warmed up
  size_t count_ = 0;
  int depth_ = 0;
  bool want_value_ = false;
  bool not_object_ = false;
  std::string error_;
};

Trace load_jsonl(const TraceOptions& o) {
  LineReader lines(o.path);
  TopLevelFields fields;
  std::optional<LogBuilder> builder;
  std::string_view line;
  auto cell = [&](uint64_t line_no, const std::optional<std::string>& key) -> std::optional<Cell> {
    if (!key) return std::nullopt;
    std::optional<Cell> c = fields.find(*key);
    if (!c) fail(o.path, line_no, fmt::format("no key \"{}\"", *key));
    return c;
  };
  while (lines.next(line)) {
    if (lines.line_no() == 1 && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);
    if (trim(line).empty()) continue;
    const uint64_t n = lines.line_no();
    if (std::string error = fields.parse(line); !error.empty()) fail(o.path, n, error);
    if (!builder)
      builder.emplace(o, o.path, resolve_columns(o, fields.keys(), o.path, n, "key"), "key");
    const LogColumns& cols = builder->columns();
    builder->add(n, *cell(n, cols.time), cell(n, cols.duration), cell(n, cols.input_tokens),
                 cell(n, cols.output_tokens), cell(n, cols.stream));
  }
  if (!builder) fail(o.path, 1, "empty file (expected JSON objects)");
  return std::move(*builder).finish(lines.line_no());
}

// ---------------------------------------------------------------------------------------------
// Per-minute matrices (Azure Functions 2019 / invitro).

// Minute number of a column named "17" or "17_minute"; nullopt for label columns.
std::optional<int64_t> minute_of(std::string_view name) {
  if (ends_with_ci(name, "_minute")) name.remove_suffix(7);
  if (name.empty() || name.size() > 9) return std::nullopt;
  int64_t v = 0;
  for (char c : name) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

struct MinuteColumns {
  std::vector<std::pair<size_t, int64_t>> minutes;  // (column index, minute number >= 1)
};

// Whether minute m (from 1) starts before the limit (none: <= 0). Exact, without overflowing
// for minute numbers up to 999,999,999.
bool minute_kept(int64_t m, Duration limit) {
  if (limit <= Duration{0}) return true;
  const int64_t limit_minutes = (limit.count() + kNanosPerMinute - 1) / kNanosPerMinute;
  return m - 1 < limit_minutes;
}

std::optional<MinuteColumns> find_minute_columns(const std::vector<std::string>& names) {
  MinuteColumns out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (std::optional<int64_t> m = minute_of(names[i])) out.minutes.emplace_back(i, *m);
  }
  if (out.minutes.empty()) return std::nullopt;
  return out;
}

// Service-time distribution of one function: execution-time percentiles in milliseconds.
constexpr std::array<double, 7> kPercentiles = {0, 1, 25, 50, 75, 99, 100};
using PercentilePoints = std::array<double, 7>;

// Inverse CDF, linear between the given percentiles. Returns seconds.
double sample_duration(const PercentilePoints& v, Random& rng) {
  const double p = rng.uniform() * 100.0;
  size_t k = 0;
  while (k + 2 < kPercentiles.size() && p >= kPercentiles[k + 1]) ++k;
  const double frac = (p - kPercentiles[k]) / (kPercentiles[k + 1] - kPercentiles[k]);
  const double ms = v[k] + (v[k + 1] - v[k]) * std::min(1.0, std::max(0.0, frac));
  return ms / 1000.0;
}

struct DurationRows {
  std::vector<PercentilePoints> rows;
  std::vector<std::string> functions;  // HashFunction per row when the file has it
  uint64_t last_line = 0;
};

DurationRows load_duration_rows(const std::string& path) {
  CsvReader reader(path);
  const std::vector<std::string> names = reader.header();
  std::array<size_t, 7> cols{};
  std::array<std::string, 7> col_names;
  for (size_t k = 0; k < kPercentiles.size(); ++k) {
    const std::string want = fmt::format("percentile_Average_{}", kPercentiles[k]);
    std::optional<size_t> i = find_name(names, want);
    if (!i) {
      fail(path, reader.line_no(),
           fmt::format("no column \"{}\" (columns: {})", want, list_names(names)));
    }
    cols[k] = *i;
    col_names[k] = names[*i];
  }
  const std::optional<size_t> function_col = find_name(names, "HashFunction");
  DurationRows out;
  std::vector<std::string_view> fields;
  while (reader.next(fields)) {
    const uint64_t n = reader.line_no();
    if (fields.size() != names.size()) {
      fail(path, n, fmt::format("expected {} fields, got {}", names.size(), fields.size()));
    }
    PercentilePoints points{};
    for (size_t k = 0; k < points.size(); ++k) {
      std::optional<double> v = parse_double(fields[cols[k]]);
      if (!v || *v < 0 || *v > kMaxServiceSeconds * 1e3) {
        fail(path, n,
             fmt::format("column \"{}\": expected a number of milliseconds from 0 to {:g}, got {}",
                         col_names[k], kMaxServiceSeconds * 1e3, show(Cell{fields[cols[k]]})));
      }
      points[k] = *v;
      if (k > 0 && points[k] < points[k - 1]) {
        fail(path, n,
             fmt::format("column \"{}\": percentiles must not decrease ({} < {} of \"{}\")",
                         col_names[k], points[k], points[k - 1], col_names[k - 1]));
      }
    }
    out.rows.push_back(points);
    if (function_col) out.functions.emplace_back(trim(fields[*function_col]));
  }
  out.last_line = reader.last_line_no();
  return out;
}

// The minute columns of a per-minute trace: numbered from 1, within kMaxSpan where kept, each
// minute once.
void check_minute_columns(const TraceOptions& o, const CsvReader& reader,
                          const std::vector<std::string>& names,
                          const std::vector<std::pair<size_t, int64_t>>& minutes) {
  std::vector<int64_t> sorted;
  const int64_t max_minute = kMaxSpan / std::chrono::minutes(1);
  for (const auto& [col, m] : minutes) {
    if (m < 1) {
      fail(o.path, reader.line_no(),
           fmt::format("column \"{}\": minutes are numbered from 1", names[col]));
    }
    if (m > max_minute && minute_kept(m, o.limit)) {
      fail(o.path, reader.line_no(),
           fmt::format("column \"{}\": minute {} is beyond the {} minutes ({} days) a workload "
                       "may span (cut the trace with a limit)",
                       names[col], m, max_minute, kMaxSpan / std::chrono::hours(24)));
    }
    sorted.push_back(m);
  }
  std::sort(sorted.begin(), sorted.end());
  if (auto dup = std::adjacent_find(sorted.begin(), sorted.end()); dup != sorted.end()) {
    fail(o.path, reader.line_no(), fmt::format("minute {} appears in two columns", *dup));
  }
}

// The bucket of each minute column: its rank by minute number.
std::vector<size_t> minute_buckets(const std::vector<std::pair<size_t, int64_t>>& minutes) {
  const size_t ncols = minutes.size();
  std::vector<size_t> bucket_of(ncols);
  std::vector<size_t> order(ncols);
  for (size_t k = 0; k < ncols; ++k) order[k] = k;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return minutes[a].second < minutes[b].second; });
  for (size_t b = 0; b < ncols; ++b) bucket_of[order[b]] = b;
  return bucket_of;
}

// Pass 1 of a per-minute trace: every count read and checked, row by row (with the row's line
// in the durations file), and the arrivals each bucket will hold.
struct MinuteCounts {
  std::vector<uint32_t> counts;  // row-major: rows x minute columns
  std::vector<uint64_t> bucket_size;
  uint32_t rows = 0;
};
MinuteCounts read_minute_counts(const TraceOptions& o, CsvReader& reader,
                                const std::vector<std::string>& names,
                                const std::vector<std::pair<size_t, int64_t>>& minutes,
                                const std::vector<size_t>& bucket_of,
                                const std::optional<DurationRows>& durations, Trace& trace) {
  const size_t ncols = minutes.size();
  const bool first_is_label = minutes.front().first != 0;
  const std::optional<size_t> function_col = find_name(names, "HashFunction");
  MinuteCounts mc;
  mc.bucket_size.assign(ncols, 0);
  std::vector<std::string_view> fields;
  fields.reserve(names.size());
  while (reader.next(fields)) {
    const uint64_t n = reader.line_no();
    if (fields.size() != names.size()) {
      fail(o.path, n, fmt::format("expected {} fields, got {}", names.size(), fields.size()));
    }
    if (durations) {
      if (mc.rows >= durations->rows.size()) {
        fail(o.path, n,
             fmt::format("row {} has no line in the durations file {} ({} rows)", mc.rows + 1,
                         o.durations_path, durations->rows.size()));
      }
      if (function_col && !durations->functions.empty() &&
          trim(fields[*function_col]) != durations->functions[mc.rows]) {
        fail(o.path, n,
             fmt::format("HashFunction differs from row {} of the durations file {}", mc.rows + 1,
                         o.durations_path));
      }
    }
    if (!o.sum_rows) {
      trace.streams.push_back(first_is_label ? std::string(trim(fields[0]))
                                             : fmt::format("row {}", mc.rows + 1));
    }
    for (size_t k = 0; k < ncols; ++k) {
      const size_t col = minutes[k].first;
      std::optional<uint64_t> count = parse_uint(fields[col]);
      if (!count) {
        fail(o.path, n,
             fmt::format("column \"{}\": expected a non-negative integer, got {}", names[col],
                         show(Cell{fields[col]})));
      }
      // A sanity bound (the real traces peak far below): a typo must not ask for terabytes.
      if (*count > kMaxPerMinute) {
        fail(o.path, n,
             fmt::format("column \"{}\": {} arrivals in one minute is more than the {} allowed",
                         names[col], *count, kMaxPerMinute));
      }
      mc.counts.push_back(static_cast<uint32_t>(*count));
      mc.bucket_size[bucket_of[k]] += *count;
    }
    ++mc.rows;
  }
  return mc;
}

// Where each bucket's arrivals start in trace.requests (one past the last at [ncols]); buckets
// that start at or after the limit hold none (`kept` false).
std::vector<size_t> bucket_starts(const TraceOptions& o, const MinuteCounts& mc,
                                  const std::vector<std::pair<size_t, int64_t>>& minutes,
                                  const std::vector<size_t>& bucket_of, std::vector<bool>& kept) {
  const size_t ncols = minutes.size();
  size_t total = 0;
  kept.assign(ncols, false);
  for (size_t k = 0; k < ncols; ++k) kept[bucket_of[k]] = minute_kept(minutes[k].second, o.limit);
  std::vector<size_t> bucket_begin(ncols + 1, 0);
  for (size_t b = 0; b < ncols; ++b) {
    bucket_begin[b] = total;
    if (kept[b]) total += mc.bucket_size[b];
  }
  bucket_begin[ncols] = total;
  if (total > kMaxRequests) {
    throw TraceError(fmt::format("{}: {} arrivals is more than the {} allowed (use a limit)",
                                 o.path, total, kMaxRequests));
  }
  return bucket_begin;
}

// Pass 2: draw in file order (rows, then minute columns as they appear). Arrivals and service
// times use separate generators, so adding a durations file leaves the arrivals unchanged. The
// draws of buckets not kept still happen, so a limit truncates the very same trace.
void draw_arrivals(const TraceOptions& o, const MinuteCounts& mc,
                   const std::vector<std::pair<size_t, int64_t>>& minutes,
                   const std::vector<size_t>& bucket_of, const std::vector<bool>& kept,
                   const std::vector<size_t>& bucket_begin,
                   const std::optional<DurationRows>& durations, Trace& trace) {
  const size_t ncols = minutes.size();
  std::vector<size_t> cursor(ncols, 0);
  for (size_t b = 0; b < ncols; ++b) cursor[b] = bucket_begin[b];
  Random arrival_rng(o.seed);
  Random duration_rng(o.seed ^ 0x5eed'd0a7'1043'0001ULL);
  for (uint32_t row = 0; row < mc.rows; ++row) {
    const PercentilePoints* points = durations ? &durations->rows[row] : nullptr;
    const uint32_t stream = o.sum_rows ? 0 : row;
    for (size_t k = 0; k < ncols; ++k) {
      const uint32_t count = mc.counts[size_t{row} * ncols + k];
      const size_t b = bucket_of[k];
      // Only kept minutes are within kMaxSpan: no overflow.
      const int64_t start = kept[b] ? (minutes[k].second - 1) * kNanosPerMinute : 0;
      for (uint32_t c = 0; c < count; ++c) {
        // Uniform within the minute; the product can round up to a whole minute: clamp.
        const auto offset = std::min(
            static_cast<int64_t>(arrival_rng.uniform() * static_cast<double>(kNanosPerMinute)),
            kNanosPerMinute - 1);
        const double duration = points ? sample_duration(*points, duration_rng)
                                       : std::numeric_limits<double>::quiet_NaN();
        if (!kept[b]) continue;
        TraceRequest& r = trace.requests[cursor[b]++];
        r.arrival = Time{Duration{start + offset}};
        r.stream = stream;
        r.duration_s = duration;
      }
    }
  }
}

// A per-minute count matrix (Azure Functions format): arrivals spread uniformly within each
// minute, placed straight into per-minute buckets (counting sort), so only a minute's worth of
// them needs sorting.
Trace load_per_minute(const TraceOptions& o, CsvReader& reader,
                      const std::vector<std::string>& names, const MinuteColumns& minute_cols) {
  const std::vector<std::pair<size_t, int64_t>>& minutes = minute_cols.minutes;
  check_minute_columns(o, reader, names, minutes);
  std::optional<DurationRows> durations;
  if (!o.durations_path.empty()) durations = load_duration_rows(o.durations_path);
  Trace trace;
  trace.has_duration = durations.has_value();
  if (o.sum_rows) trace.streams.emplace_back("all");
  const std::vector<size_t> bucket_of = minute_buckets(minutes);
  const MinuteCounts mc =
      read_minute_counts(o, reader, names, minutes, bucket_of, durations, trace);
  if (mc.rows == 0) fail(o.path, reader.last_line_no(), "no rows (only a header)");
  if (durations && durations->rows.size() != mc.rows) {
    fail(o.durations_path, durations->last_line,
         fmt::format("{} rows, but {} has {} (rows must align)", durations->rows.size(), o.path,
                     mc.rows));
  }
  std::vector<bool> kept;
  const std::vector<size_t> bucket_begin = bucket_starts(o, mc, minutes, bucket_of, kept);
  trace.requests.resize(bucket_begin.back());
  draw_arrivals(o, mc, minutes, bucket_of, kept, bucket_begin, durations, trace);
  const size_t ncols = minutes.size();
  for (size_t b = 0; b < ncols; ++b) {
    std::stable_sort(
        trace.requests.begin() + static_cast<std::ptrdiff_t>(bucket_begin[b]),
        trace.requests.begin() + static_cast<std::ptrdiff_t>(bucket_begin[b + 1]),
        [](const TraceRequest& x, const TraceRequest& y) { return x.arrival < y.arrival; });
  }
  LogBuilder::apply_limit(trace, o.limit);
  return trace;
}

std::string_view strip_zst(std::string_view path) {
  if (ends_with_ci(path, ".zst")) path.remove_suffix(4);
  return path;
}

Trace load(const TraceOptions& o) {
  using Format = TraceOptions::Format;
  if (o.limit > kMaxSpan) {
    throw TraceError(fmt::format("{}: a limit of {} is more than the {} days a workload may span",
                                 o.path, format_duration(o.limit),
                                 kMaxSpan / std::chrono::hours(24)));
  }
  Format format = o.format;
  if (format == Format::kAuto) {
    const std::string_view base = strip_zst(o.path);
    format = ends_with_ci(base, ".jsonl") || ends_with_ci(base, ".ndjson") ? Format::kJsonl
                                                                           : Format::kCsv;
  }
  if (format == Format::kJsonl) return load_jsonl(o);

  CsvReader reader(o.path);
  const std::vector<std::string> names = reader.header();
  if (format == Format::kPerMinute) {
    std::optional<MinuteColumns> minutes = find_minute_columns(names);
    if (!minutes) {
      fail(o.path, reader.line_no(),
           fmt::format("no per-minute count columns (\"1\", \"2\", ... or \"1_minute\", ...) "
                       "(columns: {})",
                       list_names(names)));
    }
    return load_per_minute(o, reader, names, *minutes);
  }
  // Auto-detected CSV without the time column but with minute columns: a per-minute matrix.
  if (o.format == Format::kAuto && !find_name(names, o.time_col)) {
    if (std::optional<MinuteColumns> minutes = find_minute_columns(names)) {
      return load_per_minute(o, reader, names, *minutes);
    }
  }
  return load_csv_log(o, reader, names);
}

}  // namespace

Trace load_trace(const TraceOptions& options) {
  try {
    return load(options);
  } catch (const TraceError&) {
    throw;
  } catch (const std::exception& e) {
    // bad_alloc and the like: keep the promise that only TraceError leaves.
    throw TraceError(fmt::format("{}: {}", options.path, e.what()));
  }
}

std::string find_trace_file(const std::string& name, const std::string& repo_root) {
  namespace fs = std::filesystem;
  std::vector<fs::path> dirs{fs::path(repo_root) / "data" / "traces"};
  if (const char* env = std::getenv("TIDE_TRACES"); env != nullptr && *env != '\0')
    dirs.emplace_back(env);
  dirs.push_back(fs::path(repo_root) / ".." / "shared" / "traces");
  std::error_code ec;
  for (const auto& d : dirs)
    if (fs::exists(d / name, ec)) return (d / name).lexically_normal().string();
  return "";
}

bool PoissonSource::next(TraceRequest& out) {
  if (!(rate_ > 0) || !std::isfinite(rate_) || t_ >= end_) return false;
  const double gap_s = rng_.exponential(1.0 / rate_);
  // Compare in seconds first: a huge gap would overflow the nanosecond conversion.
  if (gap_s >= to_seconds(end_ - t_)) {
    t_ = end_;
    return false;
  }
  t_ += from_seconds(gap_s);
  if (t_ >= end_) return false;
  out = TraceRequest{};
  out.arrival = t_;
  return true;
}

}  // namespace tide::sim
