#include "tide/auth/token.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "tide/auth/sodium.h"

namespace tide::auth {

using json = nlohmann::json;
using detail::ensure_sodium;

namespace {

constexpr std::string_view kPrefix = "t1.";
constexpr size_t kMaxTokenBytes = 2048;

int64_t to_ms(Time t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
Time from_ms(int64_t ms) { return Time{std::chrono::milliseconds(ms)}; }

Verdict reject(Rejection r, std::string message) {
  Verdict v;
  v.ok = false;
  v.reason = r;
  v.message = std::move(message);
  return v;
}

// Splits "t1.<payload>.<signature>"; false if the shape is wrong.
bool split(std::string_view token, std::string_view& signed_part, std::string_view& payload,
           std::string_view& signature) {
  if (token.size() > kMaxTokenBytes || !token.starts_with(kPrefix)) return false;
  const size_t dot = token.rfind('.');
  if (dot < kPrefix.size()) return false;
  signed_part = token.substr(0, dot);
  payload = token.substr(kPrefix.size(), dot - kPrefix.size());
  signature = token.substr(dot + 1);
  return !payload.empty() && !signature.empty();
}

std::optional<Claims> parse_payload(std::string_view payload_b64, std::string& error) {
  const auto text = from_base64url(payload_b64);
  if (!text) {
    error = "payload is not base64url";
    return std::nullopt;
  }
  const json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    error = "payload is not a JSON object";
    return std::nullopt;
  }
  Claims c;
  auto str = [&](const char* key, std::string& out) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) {
      error = fmt::format("payload field {} missing or not a string", key);
      return false;
    }
    out = it->get<std::string>();
    return true;
  };
  auto uint = [&](const char* key, uint64_t& out) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_unsigned()) {
      error = fmt::format("payload field {} missing or not a non-negative integer", key);
      return false;
    }
    out = it->get<uint64_t>();
    return true;
  };
  std::string request_hex;
  uint64_t expires_ms = 0;
  if (!str("k", c.key_id) || !str("e", c.endpoint) || !uint("r", c.replica_id) ||
      !uint("x", expires_ms) || !str("n", request_hex))
    return std::nullopt;
  if (request_hex.size() != 16 || !std::all_of(request_hex.begin(), request_hex.end(), [](char ch) {
        return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
      })) {
    error = "payload field n must be 16 lowercase hex digits";
    return std::nullopt;
  }
  c.request = std::stoull(request_hex, nullptr, 16);
  if (expires_ms > static_cast<uint64_t>(INT64_MAX / 1'000'000)) {
    error = "payload field x is out of range";
    return std::nullopt;
  }
  c.expires_at = from_ms(static_cast<int64_t>(expires_ms));
  if (auto it = j.find("w"); it != j.end()) {
    if (!it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < 0) {
      error = "payload field w must be a number >= 0";
      return std::nullopt;
    }
    c.work = it->get<double>();
  }
  return c;
}

}  // namespace

std::string base64url(std::string_view bytes) {
  ensure_sodium();
  const int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
  std::string out(sodium_base64_encoded_len(bytes.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), variant);
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::optional<std::string> from_base64url(std::string_view text) {
  ensure_sodium();
  std::string out(text.size() * 3 / 4 + 3, '\0');
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      end != text.data() + text.size())
    return std::nullopt;
  out.resize(len);
  return out;
}

std::string sign_token(const Claims& claims, std::string_view secret_key) {
  ensure_sodium();
  if (secret_key.size() != crypto_sign_SECRETKEYBYTES)
    throw std::invalid_argument("sign_token: the secret key must be 64 bytes");
  json p = {{"k", claims.key_id},
            {"e", claims.endpoint},
            {"r", claims.replica_id},
            {"x", static_cast<uint64_t>(std::max<int64_t>(0, to_ms(claims.expires_at)))},
            {"n", fmt::format("{:016x}", claims.request)}};
  if (claims.work) p["w"] = *claims.work;
  std::string signed_part = std::string(kPrefix) + base64url(p.dump());
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(signed_part.data()),
                       signed_part.size(),
                       reinterpret_cast<const unsigned char*>(secret_key.data()));
  return signed_part + "." +
         base64url(std::string_view(reinterpret_cast<const char*>(sig), sizeof sig));
}

std::optional<Claims> peek_token(std::string_view token) {
  std::string_view signed_part, payload, signature;
  if (!split(token, signed_part, payload, signature)) return std::nullopt;
  std::string error;
  return parse_payload(payload, error);
}

std::string_view rejection_name(Rejection r) {
  switch (r) {
    case Rejection::kMissing:
      return "missing_token";
    case Rejection::kMalformed:
      return "malformed_token";
    case Rejection::kUnknownKey:
      return "unknown_key";
    case Rejection::kBadSignature:
      return "bad_signature";
    case Rejection::kExpired:
      return "expired";
    case Rejection::kTooLong:
      return "expiry_too_far";
    case Rejection::kWrongEndpoint:
      return "wrong_endpoint";
    case Rejection::kWrongReplica:
      return "wrong_replica";
    case Rejection::kReplayed:
      return "replayed";
    case Rejection::kReplayCacheFull:
      return "replay_cache_full";
  }
  return "unknown";
}

int rejection_status(Rejection r) {
  switch (r) {
    case Rejection::kWrongEndpoint:
    case Rejection::kWrongReplica:
    case Rejection::kReplayed:
      return 403;
    case Rejection::kReplayCacheFull:
      return 503;
    default:
      return 401;
  }
}

// ---- ReplayCache --------------------------------------------------------------------------------

void ReplayCache::evict(Time now) {
  auto later = [](const auto& a, const auto& b) { return a.first > b.first; };
  while (!heap_.empty() && heap_.front().first < now) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    expiry_.erase(heap_.back().second);
    heap_.pop_back();
  }
}

ReplayCache::Result ReplayCache::use(uint64_t request, Time expires_at, Time now) {
  evict(now);
  if (expiry_.count(request) > 0) return Result::kReplayed;
  if (expiry_.size() >= capacity_) return Result::kFull;
  expiry_.emplace(request, expires_at);
  heap_.emplace_back(expires_at, request);
  std::push_heap(heap_.begin(), heap_.end(),
                 [](const auto& a, const auto& b) { return a.first > b.first; });
  return Result::kFresh;
}

// ---- TokenVerifier ------------------------------------------------------------------------------

TokenVerifier::TokenVerifier(std::string endpoint, uint64_t replica_id, Options options)
    : endpoint_(std::move(endpoint)),
      replica_id_(replica_id),
      options_(options),
      replay_(options.replay_capacity) {}

void TokenVerifier::set_keys(std::vector<PublicKey> keys) { keys_ = std::move(keys); }

const PublicKey* TokenVerifier::find_key(std::string_view id) const {
  for (const PublicKey& k : keys_) {
    if (k.id == id) return &k;
  }
  return nullptr;
}

bool TokenVerifier::unknown_key(std::string_view token) const {
  const auto claims = peek_token(token);
  return claims && find_key(claims->key_id) == nullptr;
}

Verdict TokenVerifier::verify(std::string_view token, Time now) {
  ensure_sodium();
  if (token.empty()) return reject(Rejection::kMissing, "no Tide-Route-Token header");
  std::string_view signed_part, payload, signature;
  if (!split(token, signed_part, payload, signature))
    return reject(Rejection::kMalformed, "not a tide route token (expected t1.<payload>.<sig>)");
  std::string error;
  auto claims = parse_payload(payload, error);
  if (!claims) return reject(Rejection::kMalformed, error);
  const PublicKey* key = find_key(claims->key_id);
  if (key == nullptr)
    return reject(
        Rejection::kUnknownKey,
        fmt::format("signed by key {}, which this replica does not trust", claims->key_id));
  if (key->valid_until && *key->valid_until + options_.leeway < now)
    return reject(Rejection::kUnknownKey,
                  fmt::format("key {} was rotated out and is no longer trusted", key->id));
  const auto sig = from_base64url(signature);
  if (!sig || sig->size() != crypto_sign_BYTES || key->bytes.size() != crypto_sign_PUBLICKEYBYTES ||
      crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig->data()),
                                  reinterpret_cast<const unsigned char*>(signed_part.data()),
                                  signed_part.size(),
                                  reinterpret_cast<const unsigned char*>(key->bytes.data())) != 0)
    return reject(Rejection::kBadSignature, "the signature does not match the token");
  if (claims->expires_at + options_.leeway < now)
    return reject(Rejection::kExpired,
                  fmt::format("expired {} ago", format_duration(now - claims->expires_at)));
  if (claims->expires_at > now + options_.max_ttl + options_.leeway)
    return reject(
        Rejection::kTooLong,
        fmt::format("expires in {}, more than the {} a route token may live",
                    format_duration(claims->expires_at - now), format_duration(options_.max_ttl)));
  if (claims->endpoint != endpoint_)
    return reject(
        Rejection::kWrongEndpoint,
        fmt::format("token for endpoint {}, this replica serves {}", claims->endpoint, endpoint_));
  if (claims->replica_id != replica_id_)
    return reject(Rejection::kWrongReplica, fmt::format("token for replica {}, this is replica {}",
                                                        claims->replica_id, replica_id_));
  switch (replay_.use(claims->request, claims->expires_at + options_.leeway, now)) {
    case ReplayCache::Result::kReplayed:
      return reject(Rejection::kReplayed,
                    fmt::format("request number {:016x} was already used", claims->request));
    case ReplayCache::Result::kFull:
      return reject(Rejection::kReplayCacheFull,
                    "too many unexpired tokens in use; retry in a moment");
    case ReplayCache::Result::kFresh:
      break;
  }
  Verdict v;
  v.ok = true;
  v.claims = std::move(*claims);
  return v;
}

}  // namespace tide::auth
