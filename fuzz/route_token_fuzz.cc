// Route tokens (auth/token.h) as an agent checks them. The first byte picks the mode:
//  0: the rest is a token as a client sends it: verify and peek must answer, never crash;
//  1: the rest is a payload, signed here with the trusted key ("k": "fuzz" reaches the claim
//     checks): verify must answer, and accept only what peek reads as this endpoint and replica;
//  2: the rest makes claims: a token signed for them reads back the same and verifies.
#include <sodium.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "fuzz/fuzz_util.h"
#include "tide/auth/token.h"

namespace {

using namespace tide::auth;

constexpr tide::Time kNow{std::chrono::milliseconds(1'700'000'000'000)};

struct Key {
  std::string secret, public_key;
  Key() {
    if (sodium_init() < 0) __builtin_trap();
    unsigned char seed[crypto_sign_SEEDBYTES] = {42};
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_seed_keypair(pk, sk, seed);
    secret.assign(reinterpret_cast<char*>(sk), sizeof sk);
    public_key.assign(reinterpret_cast<char*>(pk), sizeof pk);
  }
};
const Key& key() {
  static const Key k;
  return k;
}

TokenVerifier verifier() {
  TokenVerifier v("chat", 7);
  v.set_keys({PublicKey{"fuzz", key().public_key, std::nullopt}});
  return v;
}

std::string sign_payload(std::string_view payload) {
  std::string token = "t1." + base64url(payload);
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(token.data()),
                       token.size(), reinterpret_cast<const unsigned char*>(key().secret.data()));
  return token + "." + base64url(std::string_view(reinterpret_cast<char*>(sig), sizeof sig));
}

void claims_round_trip(tide::fuzz::Input& in) {
  Claims c;
  c.key_id = "fuzz";
  c.replica_id = in.byte() % 9;
  c.expires_at = kNow + std::chrono::milliseconds(int{in.byte()} * 4000 - 20000);
  c.request = uint64_t{in.byte()} << 40 | in.byte();
  if (const uint8_t w = in.byte(); w & 1) c.work = w / 7.0;
  // Endpoint names as a config allows them (the control plane signs only those).
  for (char ch : in.rest())
    c.endpoint += "abcdefghijklmnopqrstuvwxyz0123456789-_"[uint8_t(ch) % 38];
  const std::string token = sign_token(c, key().secret);
  const std::optional<Claims> back = peek_token(token);
  if (token.size() > 2048) return;  // too long to be a token: refused, checked below
  if (!back || back->endpoint != c.endpoint || back->replica_id != c.replica_id ||
      back->request != c.request || back->expires_at != c.expires_at || back->work != c.work)
    __builtin_trap();
  TokenVerifier v = verifier();
  const Verdict verdict = v.verify(token, kNow);
  const bool should = c.endpoint == "chat" && c.replica_id == 7 &&
                      c.expires_at > kNow + std::chrono::seconds(5) &&
                      c.expires_at <= kNow + std::chrono::minutes(10);
  if (should && !verdict.ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tide::fuzz::Input in(data, size);
  const uint8_t mode = in.byte() % 3;
  if (mode == 2) {
    claims_round_trip(in);
    return 0;
  }
  const std::string token = mode == 0 ? std::string(in.rest()) : sign_payload(in.rest());
  TokenVerifier v = verifier();
  const Verdict verdict = v.verify(token, kNow);
  const std::optional<Claims> peeked = peek_token(token);
  if (verdict.ok && (!peeked || peeked->endpoint != "chat" || peeked->replica_id != 7))
    __builtin_trap();
  if (!verdict.ok && verdict.message.empty()) __builtin_trap();
  if (verdict.ok && v.verify(token, kNow).ok) __builtin_trap();  // one request per token
  (void)v.unknown_key(token);
  return 0;
}
