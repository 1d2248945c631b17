// Reading YAML nodes with messages a user can act on. Internal to tide_config: config.h must
// stay free of yaml-cpp, so only the .cc files of this directory include this header.
//
// A Reader collects problems ("path: problem") instead of throwing; a Map wraps one YAML map
// with its path and reads typed fields from it. Every read leaves its output untouched unless a
// valid value was found, so a parse carries on past a bad field with the default in place.
// Only non-throwing yaml-cpp calls are used on nodes; its own conversions (`as<T>`) are avoided
// because they accept too much ("0x10", "yes") and throw on the rest.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tide/common/time.h"

namespace tide::config::detail {

using Node = YAML::Node;
using Keys = std::span<const std::string_view>;

// "a.b", "a[3]" (a key of the root is just "b").
std::string key_path(std::string_view path, std::string_view key);
std::string index_path(std::string_view path, size_t i);
std::string join(Keys words, std::string_view sep);

// The candidate a typo most likely meant (edit distance, then containment), if any.
std::optional<std::string_view> closest(std::string_view word, Keys candidates);
// " (did you mean X?)" or "".
std::string did_you_mean(std::string_view word, Keys candidates);

std::optional<int64_t> parse_int(std::string_view s);
std::optional<double> parse_double(std::string_view s);  // finite only
std::string quote(std::string_view s);
// A node as a message shows it after "got": numbers and booleans bare, other text quoted,
// "a list", "a map", "nothing".
std::string show(const Node& n);
std::string show_number(double v);

// A numeric range; absent bounds are unbounded.
struct Range {
  std::optional<double> lo;
  bool lo_open = false;
  std::optional<double> hi;
  bool hi_open = false;
};
inline Range any() { return {}; }
inline Range at_least(double v) { return {v, false, std::nullopt, false}; }
inline Range above(double v) { return {v, true, std::nullopt, false}; }
inline Range at_most(double v) { return {std::nullopt, false, v, false}; }
inline Range between(double lo, bool lo_open, double hi, bool hi_open) {
  return {lo, lo_open, hi, hi_open};
}
// "must be >= 1", "must be > 0 and < 1", or nullopt when `v` is in range.
std::optional<std::string> range_problem(const Range& r, double v);

// One accepted spelling of an enum value.
template <class E>
struct Choice {
  std::string_view name;
  E value;
};

template <class E, size_t N>
std::vector<std::string_view> choice_names(const Choice<E> (&options)[N]) {
  std::vector<std::string_view> names;
  for (const auto& o : options) names.push_back(o.name);
  return names;
}

// Collects problems and converts scalars, reporting each failure under its path.
class Reader {
 public:
  // Records "path: message" (just the message when the path is empty).
  void fail(std::string_view path, std::string_view message);
  bool ok() const { return problems_.empty(); }
  std::vector<std::string> take() { return std::move(problems_); }

  // `like` is appended to "expected a map", e.g. " like {max_wait: 2s}".
  bool expect_map(const Node& n, std::string_view path, std::string_view like = "");
  bool expect_list(const Node& n, std::string_view path);

  std::optional<int64_t> integer(const Node& n, std::string_view path);
  // An integer that fits an int and lies in `r`.
  std::optional<int> int_value(const Node& n, std::string_view path, const Range& r);
  std::optional<double> number(const Node& n, std::string_view path);
  // "30s", "2h30m", "0"; a bare number is refused (which unit would it be?).
  std::optional<Duration> duration(const Node& n, std::string_view path);
  std::optional<std::string> string(const Node& n, std::string_view path);
  std::optional<bool> boolean(const Node& n, std::string_view path);

  template <class E, size_t N>
  std::optional<E> choice(const Node& n, std::string_view path, const Choice<E> (&options)[N]) {
    const std::vector<std::string_view> names = choice_names(options);
    if (n.IsScalar()) {
      for (const auto& o : options) {
        if (o.name == n.Scalar()) return o.value;
      }
      fail_choice(path, n, names, did_you_mean(n.Scalar(), names));
    } else {
      fail_choice(path, n, names, "");
    }
    return std::nullopt;
  }

  // Reports "<range problem>, got <as written>" unless `v` is in `r`.
  bool in_range(double v, const Range& r, const Node& n, std::string_view path);

 private:
  void fail_choice(std::string_view path, const Node& n, Keys names, std::string_view hint);

  std::vector<std::string> problems_;
};

// A YAML map with its path: looks keys up, reports unknown and duplicate keys, reads fields.
// A node that is not a map reads as an empty one (the caller has reported it).
class Map {
 public:
  Map(Reader& r, const Node& node, std::string path);

  const std::string& path() const { return path_; }
  std::string at(std::string_view key) const { return key_path(path_, key); }
  const std::vector<std::pair<std::string, Node>>& entries() const { return entries_; }
  const Node* get(std::string_view key) const;

  // Reports every key not in `known`.
  void allow(Keys known) const;
  // Reports `key` as unknown, with a did-you-mean or the list of known keys.
  void unknown(std::string_view key, Keys known) const;
  // Reports a missing key ("required (hint)"); returns whether it is present.
  bool required(std::string_view key, std::string_view hint = "") const;

  // Each returns true when `key` is present and valid (and then sets `out`).
  bool read(std::string_view key, int& out, Range range = any()) const;
  bool read(std::string_view key, double& out, Range range = any()) const;
  bool read(std::string_view key, std::optional<double>& out, Range range = any()) const;
  // Durations can never be negative; `range` is for "> 0".
  bool read(std::string_view key, Duration& out, Range range = any()) const;
  bool read(std::string_view key, std::optional<Duration>& out, Range range = any()) const;
  bool read(std::string_view key, std::string& out) const;
  bool read(std::string_view key, bool& out) const;

  template <class E, size_t N>
  bool read(std::string_view key, E& out, const Choice<E> (&options)[N]) const {
    const Node* n = get(key);
    if (n == nullptr) return false;
    const auto v = r_.choice(*n, at(key), options);
    if (!v) return false;
    out = *v;
    return true;
  }

 private:
  Reader& r_;
  std::string path_;
  std::vector<std::pair<std::string, Node>> entries_;
};

// Parses text holding one YAML document (empty text is a null node). A syntax error is reported
// as "line L, column C: invalid YAML: ..." (1-based) and gives nullopt.
std::optional<Node> load_yaml(Reader& r, std::string_view text);

}  // namespace tide::config::detail
