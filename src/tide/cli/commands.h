// `tide status` and `tide history`: read the admin API of a running `tide serve` and print what
// it says. Called from the CLI's main thread. The HTTP exchange sits behind `Fetch`, so tests
// give canned answers; the flag checks are here too, to be tested without a process.
#pragma once

#include <functional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tide/cli/format.h"
#include "tide/cli/http.h"
#include "tide/common/time.h"

namespace tide::cli {

// A message for the user (flag, connection, answer); the command exits non-zero.
class CliError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where the admin API is and the token to send.
struct Connection {
  ApiUrl url;
  std::string token;  // "" for none
};

// --api, else TIDE_API, else the admin API's default address (config::ServerSpec::api); --token,
// else TIDE_API_TOKEN; for https://, --cacert, else TIDE_CACERT, else the system's CAs. The
// `*_env` are the variables' values, null when unset. A bad address throws CliError naming where
// it came from.
Connection resolve_connection(const std::string& api_flag, const char* api_env,
                              const std::string& token_flag, const char* token_env,
                              const std::string& cacert_flag = {},
                              const char* cacert_env = nullptr);

// One GET of the admin API: a target (path and query) to its answer.
using Fetch = std::function<HttpResult(const std::string& target)>;
// GETs over HTTP with the token as `Authorization: Bearer`, each bounded by `timeout`.
Fetch http_fetch(const Connection& c, Duration timeout);

// A call of the admin API that changes something (`tide keys`): method, target, JSON body.
using Send = std::function<HttpResult(const std::string& method, const std::string& target,
                                      const std::string& body)>;
Send http_send(const Connection& c, Duration timeout);

// The admin API's JSON, or a CliError that says what went wrong in the user's words.
class AdminApi {
 public:
  AdminApi(std::string url_text, bool has_token, Fetch fetch, Send send = {})
      : url_(std::move(url_text)),
        has_token_(has_token),
        fetch_(std::move(fetch)),
        send_(std::move(send)) {}
  // The JSON object at `target`. `endpoint`: the endpoint the target names (a 404 is then
  // "no endpoint named ..."), or "".
  json get(const std::string& target, const std::string& endpoint = {}) const;
  // The JSON object answering `method` `target` with `body`; any status but 2xx is a CliError
  // with the server's message.
  json send(const std::string& method, const std::string& target, const std::string& body) const;
  const std::string& url() const { return url_; }

 private:
  // Throws the CliError for an answer that is no answer or a 401.
  void check_reached(const HttpResult& r) const;
  json parse_object(const HttpResult& r, const std::string& what) const;

  std::string url_;
  bool has_token_;
  Fetch fetch_;
  Send send_;
};

// An endpoint's name as a path segment (percent-encoded where needed).
std::string path_segment(std::string_view name);

struct StatusOptions {
  std::vector<std::string> endpoints;  // empty: every endpoint
  bool json = false;                   // the API's JSON: {"endpoints": [detail, ...]}
  FormatOptions format;
};
// Writes the status to `out`, or "tide: <why>" to `err`; returns the exit code (0, or 1).
int run_status(const AdminApi& api, const StatusOptions& o, std::ostream& out, std::ostream& err);

struct HistoryOptions {
  std::string endpoint;
  Duration since{};
  Duration step{};     // 0: auto_step(since)
  int decisions = 10;  // the last N scaling decisions below the tables; 0: none
  bool json = false;   // the history answer, with the decisions as "decisions"
  double now_s = 0;    // Unix seconds: the end of the span (the caller's wall clock)
  FormatOptions format;
};
int run_history(const AdminApi& api, const HistoryOptions& o, std::ostream& out, std::ostream& err);

// Flag checks: CliError naming the flag.
Duration parse_since(const std::string& text);  // a duration > 0: 30m, 1h, 2d
Duration parse_step(const std::string& text);   // a duration > 0, or "" / "auto" for 0
// A round step that gives about 40 rows over `since`: 1h -> 2m.
Duration auto_step(Duration since);
// The step fits the span and the server's limit of 20000 points per group.
void check_span(Duration since, Duration step);

}  // namespace tide::cli
