#include "tide/serve/keys_api.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "tide/common/text.h"
#include "tide/net/error_body.h"

namespace tide::serve {

namespace {

using json = nlohmann::json;

gateway::ApiResponse answer(int status, const json& j) {
  return {status, "application/json", j.dump(2) + "\n"};
}

gateway::ApiResponse refuse(int status, std::string_view type, const std::string& message) {
  return {status, "application/json", net::error_body(type, clip(message, 1000)) + "\n"};
}

// The endpoints of a POST: each a string naming an endpoint; `problem` says what is wrong.
std::vector<std::string> read_endpoints(const json& body, const std::vector<std::string>& known,
                                        std::string& problem) {
  std::vector<std::string> out;
  if (!body.contains("endpoints")) return out;
  const json& list = body["endpoints"];
  if (!list.is_array()) {
    problem = "endpoints: expected a list of endpoint names (leave it out for every endpoint)";
    return out;
  }
  for (size_t i = 0; i < list.size() && problem.empty(); ++i) {
    if (!list[i].is_string()) {
      problem = fmt::format("endpoints[{}]: expected an endpoint name", i);
    } else if (std::find(known.begin(), known.end(), list[i].get<std::string>()) == known.end()) {
      problem = fmt::format("endpoints[{}]: no endpoint named {} (endpoints: {})", i,
                            clip(list[i].get<std::string>()), fmt::join(known, ", "));
    } else if (std::find(out.begin(), out.end(), list[i].get<std::string>()) == out.end()) {
      out.push_back(list[i].get<std::string>());
    }
  }
  return out;
}

// An optional limit of a POST: a number in [lo, hi] (whole for `whole`); `problem` says why not.
double read_limit(const json& body, const char* field, double lo, double hi, bool whole,
                  std::string& problem) {
  if (!body.contains(field) || !problem.empty()) return 0;
  const json& v = body[field];
  if (!v.is_number() || v.get<double>() < lo || v.get<double>() > hi ||
      (whole && !v.is_number_integer()))
    problem = fmt::format("{}: expected {} from {} to {} (leave it out for no limit)", field,
                          whole ? "a whole number" : "a number", lo, hi);
  return problem.empty() ? v.get<double>() : 0;
}

// A key as the API shows it (never the key itself): its limits null where there are none.
json key_json(const store::ClientKeyRow& row) {
  return {{"name", row.name},
          {"endpoints", row.endpoints},
          {"created", row.created},
          {"rate", row.rate > 0 ? json(row.rate) : json(nullptr)},
          {"concurrency", row.concurrency > 0 ? json(row.concurrency) : json(nullptr)}};
}

constexpr std::string_view kAddShape =
    R"(expected a JSON object like {"name": "alice", "endpoints": ["chat"], "rate": 10, )"
    R"("concurrency": 4} (all but name optional))";

}  // namespace

std::optional<std::string> key_name_problem(std::string_view name) {
  if (name.empty() || name.size() > 64)
    return fmt::format("must have 1 to 64 characters, got {}", name.size());
  const bool ok = std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
  if (!ok) return fmt::format("must be letters, digits, '.', '_' and '-', got {}", clip(name));
  return std::nullopt;
}

KeysApi::KeysApi(store::Store& store, auth::ClientKeyRing& ring, std::function<double()> now_s,
                 std::function<std::vector<std::string>()> endpoint_names)
    : store_(store),
      ring_(ring),
      now_s_(std::move(now_s)),
      endpoint_names_(std::move(endpoint_names)) {}

void KeysApi::load() {
  std::vector<auth::ClientKey> keys;
  for (auto& row : store_.client_keys()) {
    keys.push_back({std::move(row.name), std::move(row.digest), std::move(row.endpoints), row.rate,
                    row.concurrency});
  }
  ring_.set(keys);
}

std::optional<gateway::ApiResponse> KeysApi::handle(const gateway::ApiRequest& req) {
  std::string_view path = req.target;
  path = path.substr(0, path.find('?'));
  constexpr std::string_view kKeys = "/v1/keys";
  if (path == kKeys || path == "/v1/keys/") {
    if (req.method == "POST") return add(req.body);
    if (req.method == "GET") return list();
    return refuse(405, "method_not_allowed", "GET or POST here");
  }
  if (!path.starts_with("/v1/keys/")) return std::nullopt;
  if (req.method != "DELETE") return refuse(405, "method_not_allowed", "only DELETE here");
  return revoke(std::string(path.substr(kKeys.size() + 1)));
}

std::optional<store::ClientKeyRow> KeysApi::read_add(const std::string& text,
                                                     std::string& problem) {
  const json body = json::parse(text, nullptr, false);
  if (!body.is_object() || !body.contains("name") || !body["name"].is_string()) {
    problem = kAddShape;
    return std::nullopt;
  }
  store::ClientKeyRow row;
  row.name = body["name"].get<std::string>();
  if (auto why = key_name_problem(row.name)) problem = "name: " + *why;
  if (problem.empty()) row.endpoints = read_endpoints(body, endpoint_names_(), problem);
  row.rate = read_limit(body, "rate", 0.001, 1e6, false, problem);
  row.concurrency = static_cast<int>(read_limit(body, "concurrency", 1, 1e6, true, problem));
  if (!problem.empty()) return std::nullopt;
  return row;
}

gateway::ApiResponse KeysApi::add(const std::string& text) {
  std::string problem;
  std::optional<store::ClientKeyRow> row = read_add(text, problem);
  if (!row) return refuse(400, "bad_request", problem);
  for (const auto& other : store_.client_keys()) {
    if (other.name == row->name)
      return refuse(409, "conflict",
                    fmt::format("a key named {} exists: revoke it first (DELETE /v1/keys/{})",
                                row->name, row->name));
  }
  const std::string key = auth::new_client_key();
  row->digest = auth::client_key_digest(key);
  row->created = now_s_();
  try {
    store_.put_client_key(*row);
  } catch (const store::StoreError& e) {
    return refuse(500, "state_file", e.what());
  }
  load();
  json answered = key_json(*row);
  answered["key"] = key;
  return answer(201, answered);
}

gateway::ApiResponse KeysApi::list() {
  std::map<std::string, auth::ClientKeyRing::Counts> counts;
  for (auto& c : ring_.request_counts()) counts[c.name] = c;
  json keys = json::array();
  for (const auto& row : store_.client_keys()) {
    json k = key_json(row);
    k["requests"] = counts[row.name].requests;
    k["limited"] = counts[row.name].limited;
    keys.push_back(std::move(k));
  }
  return answer(200, {{"keys", std::move(keys)}});
}

gateway::ApiResponse KeysApi::revoke(const std::string& name) {
  bool found = false;
  try {
    found = store_.delete_client_key(name);
  } catch (const store::StoreError& e) {
    return refuse(500, "state_file", e.what());
  }
  if (!found) return refuse(404, "unknown_key", fmt::format("no key named {}", clip(name)));
  load();
  return answer(200, {{"revoked", name}});
}

}  // namespace tide::serve
