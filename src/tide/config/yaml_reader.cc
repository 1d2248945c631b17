#include "tide/config/yaml_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <sstream>

#include <yaml-cpp/eventhandler.h>

namespace tide::config::detail {

std::string key_path(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return fmt::format("{}.{}", path, key);
}

std::string index_path(std::string_view path, size_t i) { return fmt::format("{}[{}]", path, i); }

std::string join(Keys words, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out += sep;
    out += words[i];
  }
  return out;
}

namespace {

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::optional<std::string_view> closest(std::string_view word, Keys candidates) {
  const size_t limit = std::clamp<size_t>(word.size() / 3, 1, 3);
  std::optional<std::string_view> best;
  size_t best_distance = limit + 1;
  for (std::string_view c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  if (best) return best;
  // A part of the name ("wait" for max_wait) or a longer spelling ("maximum" for max).
  for (std::string_view c : candidates) {
    const std::string_view shorter = c.size() < word.size() ? c : word;
    const std::string_view longer = c.size() < word.size() ? word : c;
    if (shorter.size() >= 3 && longer.find(shorter) != std::string_view::npos) return c;
  }
  return std::nullopt;
}

std::string did_you_mean(std::string_view word, Keys candidates) {
  if (auto c = closest(word, candidates)) return fmt::format(" (did you mean {}?)", *c);
  return "";
}

std::optional<int64_t> parse_int(std::string_view s) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<double> parse_double(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || s.empty() || !std::isfinite(v))
    return std::nullopt;
  return v;
}

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// A node as a message shows it after "got": numbers and booleans bare, other text quoted.
std::string show(const Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "nothing";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a map";
  const std::string& s = n.Scalar();
  if (parse_double(s) || s == "true" || s == "false") return s;
  return quote(s);
}

std::string show_number(double v) { return fmt::format("{}", v); }

// "must be >= 1", "must be > 0 and < 1", or nullopt when `v` is in range.
std::optional<std::string> range_problem(const Range& r, double v) {
  const bool lo_ok = !r.lo || (r.lo_open ? v > *r.lo : v >= *r.lo);
  const bool hi_ok = !r.hi || (r.hi_open ? v < *r.hi : v <= *r.hi);
  if (lo_ok && hi_ok) return std::nullopt;
  std::string out = "must be";
  if (r.lo) out += fmt::format(" {} {}", r.lo_open ? ">" : ">=", show_number(*r.lo));
  if (r.lo && r.hi) out += " and";
  if (r.hi) out += fmt::format(" {} {}", r.hi_open ? "<" : "<=", show_number(*r.hi));
  return out;
}

void Reader::fail(std::string_view path, std::string_view message) {
  if (path.empty()) {
    problems_.emplace_back(message);
  } else {
    problems_.push_back(fmt::format("{}: {}", path, message));
  }
}

bool Reader::expect_map(const Node& n, std::string_view path, std::string_view like) {
  if (n.IsMap()) return true;
  fail(path, fmt::format("expected a map{}, got {}", like, show(n)));
  return false;
}

bool Reader::expect_list(const Node& n, std::string_view path) {
  if (n.IsSequence()) return true;
  fail(path, fmt::format("expected a list, got {}", show(n)));
  return false;
}

std::optional<int64_t> Reader::integer(const Node& n, std::string_view path) {
  if (n.IsScalar()) {
    if (auto v = parse_int(n.Scalar())) return v;
  }
  fail(path, fmt::format("expected an integer, got {}", show(n)));
  return std::nullopt;
}

std::optional<int> Reader::int_value(const Node& n, std::string_view path, const Range& r) {
  const auto v = integer(n, path);
  if (!v) return std::nullopt;
  const Range fits = *v < 0 ? at_least(INT_MIN) : at_most(INT_MAX);
  if (!in_range(static_cast<double>(*v), fits, n, path) ||
      !in_range(static_cast<double>(*v), r, n, path))
    return std::nullopt;
  return static_cast<int>(*v);
}

std::optional<double> Reader::number(const Node& n, std::string_view path) {
  if (n.IsScalar()) {
    if (auto v = parse_double(n.Scalar())) return v;
  }
  fail(path, fmt::format("expected a number, got {}", show(n)));
  return std::nullopt;
}

std::optional<Duration> Reader::duration(const Node& n, std::string_view path) {
  if (!n.IsScalar()) {
    fail(path, fmt::format("expected a duration like 30s, got {}", show(n)));
    return std::nullopt;
  }
  const std::string& s = n.Scalar();
  if (auto d = parse_duration(s)) return d;
  if (parse_double(s)) {
    // A bare number is ambiguous (seconds? milliseconds?): make the unit explicit.
    fail(path, fmt::format("a duration needs a unit, e.g. {0}s or {0}ms, got {0}", s));
  } else if (!s.empty() && s.front() == '-' && parse_duration(std::string_view(s).substr(1))) {
    fail(path, fmt::format("must be >= 0, got {}", s));
  } else {
    fail(path, fmt::format("expected a duration like 500ms, 30s, 3m or 2h30m, got {}", show(n)));
  }
  return std::nullopt;
}

std::optional<std::string> Reader::string(const Node& n, std::string_view path) {
  if (n.IsScalar()) return n.Scalar();
  fail(path, fmt::format("expected a string, got {}", show(n)));
  return std::nullopt;
}

std::optional<bool> Reader::boolean(const Node& n, std::string_view path) {
  if (n.IsScalar()) {
    const std::string& s = n.Scalar();
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
  }
  fail(path, fmt::format("expected true or false, got {}", show(n)));
  return std::nullopt;
}

bool Reader::in_range(double v, const Range& r, const Node& n, std::string_view path) {
  if (auto problem = range_problem(r, v)) {
    fail(path, fmt::format("{}, got {}", *problem, n.IsScalar() ? n.Scalar() : show(n)));
    return false;
  }
  return true;
}

void Reader::fail_choice(std::string_view path, const Node& n, Keys names, std::string_view hint) {
  fail(path, fmt::format("expected one of {}, got {}{}", join(names, "|"), show(n), hint));
}

Map::Map(Reader& r, const Node& node, std::string path) : r_(r), path_(std::move(path)) {
  if (!node.IsMap()) return;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) {
      r_.fail(path_, fmt::format("keys must be names, got {}", show(it->first)));
      continue;
    }
    const std::string key = it->first.Scalar();
    if (get(key) != nullptr) {
      r_.fail(at(key), "duplicate key");
      continue;
    }
    entries_.emplace_back(key, it->second);
  }
}

const Node* Map::get(std::string_view key) const {
  for (const auto& [k, v] : entries_) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Map::allow(Keys known) const {
  for (const auto& entry : entries_) {
    if (std::find(known.begin(), known.end(), entry.first) == known.end())
      unknown(entry.first, known);
  }
}

void Map::unknown(std::string_view key, Keys known) const {
  if (auto c = closest(key, known)) {
    r_.fail(at(key), fmt::format("unknown key (did you mean {}?)", *c));
  } else {
    r_.fail(at(key), fmt::format("unknown key (known keys: {})", join(known, ", ")));
  }
}

bool Map::required(std::string_view key, std::string_view hint) const {
  if (get(key) != nullptr) return true;
  r_.fail(at(key), hint.empty() ? std::string("required") : fmt::format("required ({})", hint));
  return false;
}

bool Map::read(std::string_view key, int& out, Range range) const {
  const Node* n = get(key);
  if (n == nullptr) return false;
  const auto v = r_.int_value(*n, at(key), range);
  if (!v) return false;
  out = *v;
  return true;
}

bool Map::read(std::string_view key, double& out, Range range) const {
  const Node* n = get(key);
  if (n == nullptr) return false;
  const auto v = r_.number(*n, at(key));
  if (!v || !r_.in_range(*v, range, *n, at(key))) return false;
  out = *v;
  return true;
}

bool Map::read(std::string_view key, std::optional<double>& out, Range range) const {
  double v = 0;
  if (!read(key, v, range)) return false;
  out = v;
  return true;
}

bool Map::read(std::string_view key, Duration& out, Range range) const {
  const Node* n = get(key);
  if (n == nullptr) return false;
  const auto v = r_.duration(*n, at(key));
  if (!v || !r_.in_range(to_seconds(*v), range, *n, at(key))) return false;
  out = *v;
  return true;
}

bool Map::read(std::string_view key, std::optional<Duration>& out, Range range) const {
  Duration v{0};
  if (!read(key, v, range)) return false;
  out = v;
  return true;
}

bool Map::read(std::string_view key, std::string& out) const {
  const Node* n = get(key);
  if (n == nullptr) return false;
  auto v = r_.string(*n, at(key));
  if (!v) return false;
  out = std::move(*v);
  return true;
}

bool Map::read(std::string_view key, bool& out) const {
  const Node* n = get(key);
  if (n == nullptr) return false;
  const auto v = r_.boolean(*n, at(key));
  if (!v) return false;
  out = *v;
  return true;
}

namespace {

// The documents of a YAML stream, counted up to `most`. Not YAML::LoadAll: on some malformed text
// (a lone ",") it never returns, each call yielding one more empty document (found by
// fuzz/config_fuzz.cc). Throws YAML::Exception on a syntax error.
size_t count_documents(const std::string& text, size_t most) {
  struct Ignore final : YAML::EventHandler {
    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
  } ignore;
  std::istringstream in(text);
  YAML::Parser parser(in);
  size_t n = 0;
  while (n < most && parser.HandleNextDocument(ignore)) ++n;
  return n;
}

}  // namespace

std::optional<Node> load_yaml(Reader& r, std::string_view text) {
  try {
    const std::string yaml(text);
    const size_t docs = count_documents(yaml, 2);
    if (docs == 0) return Node(YAML::NodeType::Null);
    if (docs > 1) {
      r.fail("", "expected one YAML document, got 2 or more");
      return std::nullopt;
    }
    return YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) {
      r.fail("", fmt::format("invalid YAML: {}", e.msg));
    } else {
      r.fail("", fmt::format("line {}, column {}: invalid YAML: {}", e.mark.line + 1,
                             e.mark.column + 1, e.msg));
    }
    return std::nullopt;
  }
}

}  // namespace tide::config::detail
