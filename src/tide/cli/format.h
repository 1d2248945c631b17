// What `tide status` and `tide history` print, made from the admin API's JSON. Pure functions of
// their arguments (no I/O, no clock: times come in the JSON), so tests feed them canned answers.
// Fields the JSON lacks or has in another type print as "-": an answer of another shape never
// throws here.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace tide::cli {

using json = nlohmann::json;

struct FormatOptions {
  bool color = false;  // ANSI colours: only when writing to a terminal
  bool utc = false;    // times in UTC instead of the local time zone
  int width = 80;      // terminal columns, for the chart
};

// Columns aligned by padding with spaces; numbers right-aligned, text left.
class Table {
 public:
  enum class Align { kLeft, kRight };
  struct Column {
    std::string title;
    Align align = Align::kLeft;
    bool hide_if_empty = false;  // dropped when every cell is empty
  };
  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}
  // One cell per column; `colors` (ANSI codes, "" for none) apply only when rendered in colour.
  void add_row(std::vector<std::string> cells, std::vector<std::string> colors = {});
  size_t rows() const { return rows_.size(); }
  // Every line starts with `indent` and ends with '\n', without trailing spaces.
  std::string render(std::string_view indent, bool color) const;

 private:
  struct Row {
    std::vector<std::string> cells;
    std::vector<std::string> colors;
  };
  std::vector<Column> columns_;
  std::vector<Row> rows_;
};

// A latency: "850us", "12ms", "0.51s", "12.3s", "2m03s"; "-" for a negative value.
std::string format_seconds(double s);
// An age: "42s", "3m12s", "2h05m", "3d04h".
std::string format_age(double s);
// A Unix time as "HH:MM:SS", or "MM-DD HH:MM" with `with_date`.
std::string format_clock(double unix_s, bool with_date, bool utc);

// `tide status`: a block per endpoint, each the answer of GET /v1/endpoints/{name}.
std::string format_status(const std::vector<json>& endpoints, const FormatOptions& o);

// `tide history`: per group a chart of replicas and a table over time, from the answer of
// GET /v1/endpoints/{name}/history; then the decisions (the answer of GET .../decisions asked
// for at most `decisions_limit`; null for none).
std::string format_history(const json& history, const json& decisions, int decisions_limit,
                           const FormatOptions& o);

// Replicas over time as rows of characters: '#' ready, '+' starting, '.' desired but neither,
// one column per `step_s` (at most `max_columns`, several points to a column then taking the
// maximum), the count on the left and the times of the first and the last sample below.
std::string replica_chart(const json& points, double step_s, int max_columns,
                          const FormatOptions& o);

}  // namespace tide::cli
