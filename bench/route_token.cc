// What a two-step route costs in cryptography: issuing a token at the control plane
// (KeyRing::issue: claims encoded, Ed25519 signature) and admitting it at the agent
// (TokenVerifier::verify: decode, signature, expiry, replica, replay cache), against the bare
// libsodium sign and verify of a message of the same length, measured in the same run.
//
// Usage: bench_route_token [N]   (N tokens, default 20000)
#include <fmt/format.h>
#include <sodium.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tide/auth/keys.h"
#include "tide/auth/token.h"
#include "tide/common/time.h"

namespace {

using namespace tide;

double micros_per(std::chrono::steady_clock::duration d, size_t n) {
  return std::chrono::duration<double, std::micro>(d).count() / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  const size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 20000;
  if (n == 0 || sodium_init() < 0) {
    std::fprintf(stderr, "usage: bench_route_token [N > 0]\n");
    return 2;
  }
  const Time now = time_at_seconds(1.8e9);
  const auth::KeyRing ring = auth::KeyRing::ephemeral(now);
  auth::TokenVerifier verifier("chat", 7);
  verifier.set_keys(ring.public_keys(now));

  using Clock = std::chrono::steady_clock;
  std::vector<std::string> tokens;
  tokens.reserve(n);
  auto t0 = Clock::now();
  for (size_t i = 0; i < n; ++i) {
    auth::Claims c;
    c.endpoint = "chat";
    c.replica_id = 7;
    c.expires_at = now + std::chrono::seconds(30);
    c.request = i + 1;
    tokens.push_back(ring.issue(std::move(c)));
  }
  const double issue_us = micros_per(Clock::now() - t0, n);
  size_t accepted = 0;
  t0 = Clock::now();
  for (const auto& t : tokens) accepted += verifier.verify(t, now).ok ? 1 : 0;
  const double verify_us = micros_per(Clock::now() - t0, n);
  if (accepted != n) {
    std::fprintf(stderr, "only %zu of %zu tokens were accepted\n", accepted, n);
    return 1;
  }

  // Baseline: libsodium alone on a message as long as a token's payload.
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  const std::string message(tokens.front().size() * 3 / 4, 'x');
  std::vector<unsigned char> sigs(n * crypto_sign_BYTES);
  t0 = Clock::now();
  for (size_t i = 0; i < n; ++i)
    crypto_sign_detached(&sigs[i * crypto_sign_BYTES], nullptr,
                         reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                         sk);
  const double sign_us = micros_per(Clock::now() - t0, n);
  size_t good = 0;
  t0 = Clock::now();
  for (size_t i = 0; i < n; ++i)
    good += crypto_sign_verify_detached(&sigs[i * crypto_sign_BYTES],
                                        reinterpret_cast<const unsigned char*>(message.data()),
                                        message.size(), pk) == 0
                ? 1
                : 0;
  const double bare_verify_us = micros_per(Clock::now() - t0, n);
  if (good != n) return 1;

  std::printf("route tokens: %zu issued and admitted, one thread\n", n);
  std::printf("%-44s %10s\n", "", "us each");
  std::printf("%-44s %10.1f\n", "issue (KeyRing::issue)", issue_us);
  std::printf("%-44s %10.1f\n", "baseline: crypto_sign_detached", sign_us);
  std::printf("%-44s %10.1f\n", "admit (TokenVerifier::verify, replay cache)", verify_us);
  std::printf("%-44s %10.1f\n", "baseline: crypto_sign_verify_detached", bare_verify_us);
  std::printf("token length: %zu bytes\n", tokens.front().size());
  return 0;
}
