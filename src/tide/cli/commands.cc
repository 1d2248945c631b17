#include "tide/cli/commands.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "tide/config/config.h"

namespace tide::cli {
namespace {

// The server's message in {"error": {"message": ...}}, else the start of the body.
std::string server_message(const std::string& body) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    auto e = j.find("error");
    if (e != j.end() && e->is_object()) {
      auto m = e->find("message");
      if (m != e->end() && m->is_string() && !m->get<std::string>().empty())
        return m->get<std::string>();
    }
  }
  std::string text = body.substr(0, 200);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

// nlohmann's "[json.exception.parse_error.101] parse error at ...": without the bracket.
std::string json_error(const std::exception& e) {
  std::string what = e.what();
  if (what.starts_with("[json.exception.")) {
    if (const size_t close = what.find("] "); close != std::string::npos)
      what = what.substr(close + 2);
  }
  return what;
}

std::string names_of(const json& list) {
  std::string names;
  const auto eps = list.find("endpoints");
  if (eps == list.end() || !eps->is_array()) return names;
  for (const json& ep : *eps) {
    auto n = ep.is_object() ? ep.find("name") : ep.end();
    if (ep.is_object() && n != ep.end() && n->is_string())
      names += (names.empty() ? "" : ", ") + n->get<std::string>();
  }
  return names;
}

}  // namespace

Connection resolve_connection(const std::string& api_flag, const char* api_env,
                              const std::string& token_flag, const char* token_env,
                              const std::string& cacert_flag, const char* cacert_env) {
  std::string source = "--api";
  std::string address = api_flag;
  if (address.empty() && api_env != nullptr && *api_env != '\0') {
    source = "TIDE_API";
    address = api_env;
  }
  if (address.empty()) {
    source = "the default admin API address";
    address = config::ServerSpec{}.api;
  }
  std::string error;
  auto url = parse_api_url(address, error);
  if (!url) throw CliError(fmt::format("{}: {}", source, error));
  Connection c;
  c.url = *url;
  c.url.ca_file = !cacert_flag.empty() ? cacert_flag : cacert_env != nullptr ? cacert_env : "";
  c.token = !token_flag.empty() ? token_flag : token_env != nullptr ? token_env : "";
  return c;
}

Fetch http_fetch(const Connection& c, Duration timeout) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (!c.token.empty()) headers.emplace_back("Authorization", "Bearer " + c.token);
  return [url = c.url, headers, timeout](const std::string& target) {
    return http_get(url, target, headers, timeout);
  };
}

Send http_send(const Connection& c, Duration timeout) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (!c.token.empty()) headers.emplace_back("Authorization", "Bearer " + c.token);
  return [url = c.url, headers, timeout](const std::string& method, const std::string& target,
                                         const std::string& body) {
    return http_request(url, method, target, body, headers, timeout);
  };
}

void AdminApi::check_reached(const HttpResult& r) const {
  if (r.status == 0) throw CliError(fmt::format("cannot reach tide at {}: {}", url_, r.error));
  if (r.status == 401) {
    if (!has_token_) {
      throw CliError(fmt::format(
          "tide at {} needs an API token (401). Set TIDE_API_TOKEN or pass --token: the "
          "server's server.api_token, its TIDE_API_TOKEN, or the one in its state file: "
          "export TIDE_API_TOKEN=$(tide token show --state tide-state.db)",
          url_));
    }
    throw CliError(fmt::format(
        "tide at {} refused the API token (401: {}). Set TIDE_API_TOKEN or --token to the "
        "server's token.",
        url_, server_message(r.body)));
  }
}

json AdminApi::send(const std::string& method, const std::string& target,
                    const std::string& body) const {
  const HttpResult r = send_(method, target, body);
  check_reached(r);
  if (r.status < 200 || r.status > 299) {
    throw CliError(fmt::format("tide at {} answered {} to {} {}: {}", url_, r.status, method,
                               target, server_message(r.body)));
  }
  return parse_object(r, method + " " + target);
}

json AdminApi::get(const std::string& target, const std::string& endpoint) const {
  const HttpResult r = fetch_(target);
  check_reached(r);
  if (r.status == 404) {
    // Is the endpoint unknown, or is this not the admin API at all?
    const HttpResult list = endpoint.empty() ? r : fetch_("/v1/endpoints");
    if (list.status == 404 || list.status == 0) {
      throw CliError(
          fmt::format("{} answered 404 to GET {} ({}): is it tide's admin API (server.api, default "
                      "127.0.0.1:8081) and not the gateway?",
                      url_, endpoint.empty() ? target : "/v1/endpoints", server_message(r.body)));
    }
    std::string message = fmt::format("no endpoint named \"{}\" at {}", endpoint, url_);
    const json names = json::parse(list.body, nullptr, false);
    if (list.status == 200 && names.is_object()) {
      const std::string known = names_of(names);
      message += known.empty() ? " (it has none)" : " (endpoints: " + known + ")";
    }
    throw CliError(message);
  }
  if (r.status < 200 || r.status > 299) {
    throw CliError(fmt::format("tide at {} answered {} to GET {}: {}", url_, r.status, target,
                               server_message(r.body)));
  }
  return parse_object(r, "GET " + target);
}

json AdminApi::parse_object(const HttpResult& r, const std::string& what) const {
  json j;
  try {
    j = json::parse(r.body);
  } catch (const json::exception& e) {
    throw CliError(
        fmt::format("tide at {} sent malformed JSON for {}: {}", url_, what, json_error(e)));
  }
  if (!j.is_object()) {
    throw CliError(
        fmt::format("tide at {} sent an unexpected answer for {}: not a JSON object", url_, what));
  }
  return j;
}

std::string path_segment(std::string_view name) {
  std::string out;
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += ch;
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

int run_status(const AdminApi& api, const StatusOptions& o, std::ostream& out, std::ostream& err) {
  try {
    std::vector<std::string> names = o.endpoints;
    if (names.empty()) {
      const json list = api.get("/v1/endpoints");
      const auto eps = list.find("endpoints");
      if (eps == list.end() || !eps->is_array())
        throw CliError(fmt::format(
            "tide at {} sent an unexpected answer for GET /v1/endpoints: no \"endpoints\" list",
            api.url()));
      for (const json& ep : *eps) {
        auto n = ep.is_object() ? ep.find("name") : ep.end();
        if (!ep.is_object() || n == ep.end() || !n->is_string())
          throw CliError(fmt::format(
              "tide at {} sent an unexpected answer for GET /v1/endpoints: an endpoint without a "
              "name",
              api.url()));
        names.push_back(n->get<std::string>());
      }
    }
    std::vector<json> details;
    for (const std::string& name : names)
      details.push_back(api.get("/v1/endpoints/" + path_segment(name), name));
    if (o.json) {
      out << json{{"endpoints", details}}.dump(2) << "\n";
    } else {
      out << format_status(details, o.format);
    }
    return out.good() ? 0 : 1;
  } catch (const CliError& e) {
    err << "tide: " << e.what() << "\n";
    return 1;
  }
}

int run_history(const AdminApi& api, const HistoryOptions& o, std::ostream& out,
                std::ostream& err) {
  try {
    const Duration step = o.step.count() > 0 ? o.step : auto_step(o.since);
    const double to = o.now_s;
    const double from = to - to_seconds(o.since);
    const std::string base = "/v1/endpoints/" + path_segment(o.endpoint);
    const json history = api.get(
        fmt::format("{}/history?from={:.3f}&to={:.3f}&step={:g}", base, from, to, to_seconds(step)),
        o.endpoint);
    json decisions;
    if (o.decisions > 0) {
      decisions = api.get(
          fmt::format("{}/decisions?from={:.3f}&to={:.3f}&limit={}", base, from, to, o.decisions),
          o.endpoint);
    }
    if (o.json) {
      json both = history;
      if (auto d = decisions.find("decisions"); decisions.is_object() && d != decisions.end())
        both["decisions"] = *d;
      out << both.dump(2) << "\n";
    } else {
      out << format_history(history, decisions, o.decisions, o.format);
    }
    return out.good() ? 0 : 1;
  } catch (const CliError& e) {
    err << "tide: " << e.what() << "\n";
    return 1;
  }
}

Duration parse_since(const std::string& text) {
  const auto d = parse_duration(text);
  if (!d || d->count() <= 0)
    throw CliError(
        fmt::format("--since: expected a duration > 0 like 30m, 1h, 2d; got \"{}\"", text));
  return *d;
}

Duration parse_step(const std::string& text) {
  if (text.empty() || text == "auto") return Duration{0};
  const auto d = parse_duration(text);
  if (!d || d->count() <= 0)
    throw CliError(fmt::format(
        "--step: expected a duration > 0 like 5s, 60s, 5m (or auto); got \"{}\"", text));
  return *d;
}

Duration auto_step(Duration since) {
  using std::chrono::hours;
  using std::chrono::minutes;
  using std::chrono::seconds;
  constexpr std::array<Duration, 20> kSteps = {
      seconds(1), seconds(2), seconds(5),  seconds(10), seconds(15), seconds(30), minutes(1),
      minutes(2), minutes(5), minutes(10), minutes(15), minutes(30), hours(1),    hours(2),
      hours(3),   hours(6),   hours(12),   hours(24),   hours(48),   hours(168)};
  const Duration wanted = since / 40;
  for (const Duration s : kSteps) {
    if (s >= wanted) return s;
  }
  return kSteps.back();
}

void check_span(Duration since, Duration step) {
  if (step > since) {
    throw CliError(fmt::format("--step ({}) must not be longer than --since ({})",
                               format_duration(step), format_duration(since)));
  }
  if (to_seconds(since) / to_seconds(step) > 20000) {
    throw CliError(fmt::format(
        "--step {} over --since {} gives more than 20000 rows per group; choose a longer step",
        format_duration(step), format_duration(since)));
  }
}

}  // namespace tide::cli
