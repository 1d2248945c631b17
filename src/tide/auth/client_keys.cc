#include "tide/auth/client_keys.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "tide/auth/sodium.h"

namespace tide::auth {

namespace {

constexpr std::string_view kKeyPrefix = "sk-tide-";
constexpr std::string_view kBearer = "Bearer ";

std::string to_hex(const unsigned char* data, size_t n) {
  std::string hex(n * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), data, n);
  hex.pop_back();
  return hex;
}

std::array<unsigned char, crypto_hash_sha256_BYTES> sha256(std::string_view text) {
  detail::ensure_sodium();
  std::array<unsigned char, crypto_hash_sha256_BYTES> out{};
  crypto_hash_sha256(out.data(), reinterpret_cast<const unsigned char*>(text.data()), text.size());
  return out;
}

// The 32 bytes of a hex digest; empty when it is not one.
std::string digest_bytes(std::string_view hex) {
  std::string out(crypto_hash_sha256_BYTES, '\0');
  size_t n = 0;
  if (hex.size() != out.size() * 2 ||
      sodium_hex2bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), hex.data(),
                     hex.size(), nullptr, &n, nullptr) != 0 ||
      n != out.size())
    return {};
  return out;
}

}  // namespace

std::string new_client_key() {
  detail::ensure_sodium();
  std::array<unsigned char, 32> secret{};
  randombytes_buf(secret.data(), secret.size());
  return std::string(kKeyPrefix) + to_hex(secret.data(), secret.size());
}

std::string client_key_digest(std::string_view key) {
  const auto d = sha256(key);
  return to_hex(d.data(), d.size());
}

bool ClientKeyRing::Entry::allows(std::string_view endpoint) const {
  return endpoints.empty() ||
         std::find(endpoints.begin(), endpoints.end(), endpoint) != endpoints.end();
}

namespace {

// The rate limit as GCRA: each request moves the key's theoretical arrival time one interval on;
// a request may come up to a burst (one second's worth of requests, at least 1) before it.
Admission admit_rate(ClientKeyUsage& u, double rate, int64_t now_ns) {
  const auto interval = static_cast<int64_t>(1e9 / rate);
  const int64_t burst = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(rate)));
  const int64_t tolerance = (burst - 1) * interval;
  int64_t next = u.next_ns.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t start = std::max(next, now_ns);
    if (start - now_ns > tolerance) {
      const int64_t wait_ns = start - tolerance - now_ns;
      return {false,
              static_cast<int>(std::max<int64_t>(1, (wait_ns + 999'999'999) / 1'000'000'000)),
              "rate"};
    }
    if (u.next_ns.compare_exchange_weak(next, start + interval, std::memory_order_relaxed))
      return {};
  }
}

}  // namespace

Admission ClientKeyRing::Entry::admit(int64_t now_ns) const {
  usage->requests.fetch_add(1, std::memory_order_relaxed);
  Admission a;
  if (rate > 0) a = admit_rate(*usage, rate, now_ns);
  if (a.ok) {
    const int before = usage->in_flight.fetch_add(1, std::memory_order_relaxed);
    if (concurrency > 0 && before >= concurrency) {
      usage->in_flight.fetch_sub(1, std::memory_order_relaxed);
      a = {false, 1, "concurrency"};
    }
  }
  if (!a.ok) usage->limited.fetch_add(1, std::memory_order_relaxed);
  return a;
}

void ClientKeyRing::Entry::release() const {
  usage->in_flight.fetch_sub(1, std::memory_order_relaxed);
}

ClientKeyRing::ClientKeyRing() : table_(std::make_shared<const Table>()) {}

void ClientKeyRing::set(const std::vector<ClientKey>& keys) {
  auto table = std::make_shared<Table>();
  std::lock_guard lock(usage_mu_);
  for (const ClientKey& k : keys) {
    std::string bytes = digest_bytes(k.digest);
    if (bytes.empty()) continue;  // not a digest: matches nothing
    auto& usage = usage_[k.name];
    if (!usage) usage = std::make_unique<ClientKeyUsage>();
    table->push_back(
        Entry{k.name, std::move(bytes), k.endpoints, k.rate, k.concurrency, usage.get()});
  }
  table_.store(std::move(table));
}

std::shared_ptr<const ClientKeyRing::Entry> ClientKeyRing::find(
    std::string_view authorization) const {
  if (!authorization.starts_with(kBearer)) return nullptr;
  const auto digest = sha256(authorization.substr(kBearer.size()));
  std::shared_ptr<const Table> table = table_.load();
  const Entry* match = nullptr;
  for (const Entry& e : *table) {
    if (crypto_verify_32(reinterpret_cast<const unsigned char*>(e.digest.data()), digest.data()) ==
        0)
      match = &e;
  }
  if (match == nullptr) return nullptr;
  return std::shared_ptr<const Entry>(std::move(table), match);
}

std::vector<ClientKeyRing::Counts> ClientKeyRing::request_counts() const {
  std::lock_guard lock(usage_mu_);
  std::vector<Counts> out;
  for (const auto& [name, u] : usage_) out.push_back({name, u->requests.load(), u->limited.load()});
  return out;
}

}  // namespace tide::auth
