#include "tide/auth/keys.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "tide/auth/sodium.h"

namespace tide::auth {

using json = nlohmann::json;
using detail::ensure_sodium;

namespace {

int64_t to_ms(Time t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
Time from_ms(int64_t ms) { return Time{std::chrono::milliseconds(ms)}; }

std::string key_id_of(std::string_view public_key) {
  unsigned char hash[9];
  crypto_generichash(hash, sizeof hash, reinterpret_cast<const unsigned char*>(public_key.data()),
                     public_key.size(), nullptr, 0);
  return base64url(std::string_view(reinterpret_cast<const char*>(hash), sizeof hash));
}

std::string random_bytes(size_t n) {
  std::string out(n, '\0');
  randombytes_buf(out.data(), n);
  return out;
}

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw std::runtime_error(fmt::format("key file {}: {}", path, problem));
}

}  // namespace

bool secrets_equal(std::string_view a, std::string_view b) {
  ensure_sodium();
  return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

uint64_t random_u64() {
  ensure_sodium();
  uint64_t v = 0;
  randombytes_buf(&v, sizeof v);
  return v;
}

KeyRing::Key KeyRing::generate(Time now) {
  ensure_sodium();
  Key k;
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  k.public_key.assign(reinterpret_cast<const char*>(pk), sizeof pk);
  k.secret.assign(reinterpret_cast<const char*>(sk), sizeof sk);
  sodium_memzero(sk, sizeof sk);
  k.id = key_id_of(k.public_key);
  k.created = now;
  return k;
}

KeyRing KeyRing::ephemeral(Time now) {
  ensure_sodium();
  KeyRing ring;
  ring.keys_.push_back(generate(now));
  ring.master_ = random_bytes(32);
  return ring;
}

KeyRing KeyRing::open(const std::string& path, Time now) {
  ensure_sodium();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) fail(path, std::strerror(errno));
    KeyRing ring = ephemeral(now);
    ring.path_ = path;
    ring.save();
    return ring;
  }
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  if ((st.st_mode & 077) != 0)
    fail(path, fmt::format("has mode {:04o}, but must be readable by its owner only (chmod 600 {})",
                           st.st_mode & 07777, path));
  if (st.st_uid != ::geteuid()) fail(path, "is owned by another user");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  const json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) fail(path, "not a JSON object (a tide key file)");
  KeyRing ring;
  ring.path_ = path;
  auto b64 = [&](const json& o, const char* field, size_t size) {
    auto it = o.find(field);
    std::optional<std::string> bytes;
    if (it != o.end() && it->is_string()) bytes = from_base64url(it->get<std::string>());
    if (!bytes || bytes->size() != size)
      fail(path, fmt::format("{}: expected {} bytes in base64url", field, size));
    return *bytes;
  };
  ring.master_ = b64(j, "agent_master", 32);
  auto keys = j.find("keys");
  if (keys == j.end() || !keys->is_array() || keys->empty())
    fail(path, "keys: expected a non-empty list");
  for (size_t i = 0; i < keys->size(); ++i) {
    const json& o = (*keys)[i];
    if (!o.is_object()) fail(path, fmt::format("keys[{}]: expected an object", i));
    Key k;
    k.secret = b64(o, "secret_key", crypto_sign_SECRETKEYBYTES);
    k.public_key = k.secret.substr(crypto_sign_SEEDBYTES);
    k.id = key_id_of(k.public_key);
    auto created = o.find("created_ms");
    if (created == o.end() || !created->is_number_integer())
      fail(path, fmt::format("keys[{}].created_ms: expected an integer", i));
    k.created = from_ms(created->get<int64_t>());
    if (auto until = o.find("valid_until_ms"); until != o.end() && !until->is_null()) {
      if (!until->is_number_integer())
        fail(path, fmt::format("keys[{}].valid_until_ms: expected an integer", i));
      k.valid_until = from_ms(until->get<int64_t>());
    }
    const bool last = i + 1 == keys->size();
    if (last == k.valid_until.has_value())
      fail(path,
           fmt::format("keys[{}]: only the last key (the current one) has no valid_until", i));
    ring.keys_.push_back(std::move(k));
  }
  ring.prune(now);
  return ring;
}

void KeyRing::save() const {
  if (path_.empty()) return;
  json keys = json::array();
  for (const Key& k : keys_) {
    json o = {{"id", k.id},
              {"public_key", base64url(k.public_key)},
              {"secret_key", base64url(k.secret)},
              {"created_ms", to_ms(k.created)}};
    if (k.valid_until) o["valid_until_ms"] = to_ms(*k.valid_until);
    keys.push_back(std::move(o));
  }
  const std::string text =
      json{{"version", 1}, {"agent_master", base64url(master_)}, {"keys", std::move(keys)}}.dump(
          2) +
      "\n";
  const std::string tmp = path_ + ".tmp";
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) fail(tmp, std::strerror(errno));
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail(tmp, std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced || ::rename(tmp.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(path_, std::strerror(err));
  }
}

void KeyRing::prune(Time now) {
  std::erase_if(keys_, [now](const Key& k) { return k.valid_until && *k.valid_until < now; });
}

std::string KeyRing::issue(Claims claims) const {
  const Key& k = keys_.back();
  claims.key_id = k.id;
  return sign_token(claims, k.secret);
}

std::vector<PublicKey> KeyRing::public_keys(Time now) const {
  std::vector<PublicKey> out;
  for (auto it = keys_.rbegin(); it != keys_.rend(); ++it) {
    if (it->valid_until && *it->valid_until < now) continue;
    out.push_back({it->id, it->public_key, it->valid_until});
  }
  return out;
}

const std::string& KeyRing::current_key_id() const { return keys_.back().id; }
Time KeyRing::current_created_at() const { return keys_.back().created; }

void KeyRing::rotate(Time now, Duration token_ttl) {
  std::vector<Key> before = keys_;
  keys_.back().valid_until = now + token_ttl;
  keys_.push_back(generate(now));
  prune(now);
  try {
    save();
  } catch (...) {
    keys_ = std::move(before);
    throw;
  }
}

std::string KeyRing::replica_secret(std::string_view replica_name) const {
  ensure_sodium();
  unsigned char out[32];
  crypto_generichash(out, sizeof out, reinterpret_cast<const unsigned char*>(replica_name.data()),
                     replica_name.size(), reinterpret_cast<const unsigned char*>(master_.data()),
                     master_.size());
  return base64url(std::string_view(reinterpret_cast<const char*>(out), sizeof out));
}

}  // namespace tide::auth
