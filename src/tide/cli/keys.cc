#include "tide/cli/keys.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <string_view>

namespace tide::cli {
namespace {

std::string endpoints_text(const json& list) {
  if (!list.is_array() || list.empty()) return "all";
  std::string out;
  for (const json& e : list) {
    if (e.is_string()) out += (out.empty() ? "" : ",") + e.get<std::string>();
  }
  return out;
}

// "10/s, 4 at once", "none".
std::string limits_text(const json& key) {
  std::string out;
  if (key.contains("rate") && key["rate"].is_number())
    out = fmt::format("{}/s", key["rate"].get<double>());
  if (key.contains("concurrency") && key["concurrency"].is_number())
    out += fmt::format("{}{} at once", out.empty() ? "" : ", ", key["concurrency"].get<int>());
  return out.empty() ? "none" : out;
}

void add(const AdminApi& api, const KeysOptions& o, std::ostream& out, std::ostream& err) {
  json body = {{"name", o.name}};
  if (!o.endpoints.empty()) body["endpoints"] = o.endpoints;
  if (o.rate > 0) body["rate"] = o.rate;
  if (o.concurrency > 0) body["concurrency"] = o.concurrency;
  const json r = api.send("POST", "/v1/keys", body.dump());
  if (o.json) {
    out << r.dump(2) << "\n";
    return;
  }
  if (!r.contains("key") || !r["key"].is_string())
    throw CliError(fmt::format("tide at {} answered POST /v1/keys without a key", api.url()));
  out << r["key"].get<std::string>() << "\n";
  err << fmt::format(
      "key {} for {} endpoints: shown this once (tide keeps only its SHA-256); clients send "
      "Authorization: Bearer <key>\n",
      o.name,
      o.endpoints.empty() ? std::string("all") : fmt::format("{}", fmt::join(o.endpoints, ",")));
}

void list(const AdminApi& api, const KeysOptions& o, std::ostream& out) {
  const json r = api.get("/v1/keys");
  if (o.json) {
    out << r.dump(2) << "\n";
    return;
  }
  const json keys = r.contains("keys") && r["keys"].is_array() ? r["keys"] : json::array();
  size_t width = 4;
  for (const json& k : keys) width = std::max(width, k.value("name", std::string()).size());
  out << fmt::format("{:<{}}  {:>9}  {:>9}  {:<22}  {}\n", "NAME", width, "REQUESTS", "LIMITED",
                     "LIMITS", "ENDPOINTS");
  for (const json& k : keys) {
    out << fmt::format("{:<{}}  {:>9}  {:>9}  {:<22}  {}\n", k.value("name", std::string()), width,
                       k.value("requests", uint64_t{0}), k.value("limited", uint64_t{0}),
                       limits_text(k), endpoints_text(k.value("endpoints", json())));
  }
  if (keys.empty()) out << "(no keys: `tide keys add NAME` adds one)\n";
}

}  // namespace

int run_keys(const AdminApi& api, const KeysOptions& o, std::ostream& out, std::ostream& err) {
  try {
    switch (o.action) {
      case KeysOptions::Action::kAdd:
        add(api, o, out, err);
        break;
      case KeysOptions::Action::kList:
        list(api, o, out);
        break;
      case KeysOptions::Action::kRevoke: {
        const json r = api.send("DELETE", "/v1/keys/" + path_segment(o.name), "");
        out << (o.json ? r.dump(2) : fmt::format("revoked {}", o.name)) << "\n";
        break;
      }
    }
  } catch (const CliError& e) {
    err << "tide: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace tide::cli
