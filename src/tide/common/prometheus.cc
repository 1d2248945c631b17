#include "tide/common/prometheus.h"

#include <fmt/format.h>

#include <cmath>

namespace tide {

namespace {

void append_escaped(std::string& out, std::string_view value, bool help) {
  for (char ch : value) {
    if (ch == '\\') {
      out += "\\\\";
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '"' && !help) {
      out += "\\\"";
    } else {
      out += ch;
    }
  }
}

void append_value(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    fmt::format_to(std::back_inserter(out), "{}", v);
  }
}

}  // namespace

void PrometheusText::family(std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out_), "# HELP {} ", name);
  append_escaped(out_, help, /*help=*/true);
  fmt::format_to(std::back_inserter(out_), "\n# TYPE {} {}\n", name, type);
}

void PrometheusText::series(std::string_view name, std::string_view suffix, Labels labels,
                            std::string_view le) {
  out_ += name;
  out_ += suffix;
  if (labels.empty() && le.empty()) {
    out_ += ' ';
    return;
  }
  out_ += '{';
  bool first = true;
  for (const Label& l : labels) {
    if (!first) out_ += ',';
    first = false;
    out_ += l.name;
    out_ += "=\"";
    append_escaped(out_, l.value, /*help=*/false);
    out_ += '"';
  }
  if (!le.empty()) {
    if (!first) out_ += ',';
    out_ += "le=\"";
    out_ += le;
    out_ += '"';
  }
  out_ += "} ";
}

void PrometheusText::sample(std::string_view name, Labels labels, double value) {
  series(name, "", labels);
  append_value(out_, value);
  out_ += '\n';
}

void PrometheusText::sample(std::string_view name, Labels labels, uint64_t value) {
  series(name, "", labels);
  fmt::format_to(std::back_inserter(out_), "{}\n", value);
}

void PrometheusText::histogram(std::string_view name, Labels labels, const LogLinearHistogram& h,
                               std::span<const double> bounds) {
  std::string le;
  for (double bound : bounds) {
    le.clear();
    append_value(le, bound);
    series(name, "_bucket", labels, le);
    fmt::format_to(std::back_inserter(out_), "{}\n", h.count_at_or_below(bound));
  }
  series(name, "_bucket", labels, "+Inf");
  fmt::format_to(std::back_inserter(out_), "{}\n", h.count());
  series(name, "_sum", labels);
  append_value(out_, h.sum());
  out_ += '\n';
  series(name, "_count", labels);
  fmt::format_to(std::back_inserter(out_), "{}\n", h.count());
}

}  // namespace tide
