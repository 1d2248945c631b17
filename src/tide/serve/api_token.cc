#include "tide/serve/api_token.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "tide/store/store.h"

namespace tide::serve {

namespace {

std::unique_ptr<store::Store> open_state(const std::string& state_path, bool create) {
  std::error_code ec;
  if (state_path.empty() || state_path == ":memory:")
    throw std::runtime_error("--state: a state file is needed (\":memory:\" keeps no token)");
  if (!create && !std::filesystem::is_regular_file(state_path, ec))
    throw std::runtime_error(fmt::format(
        "{}: no such state file (tide serve creates it at its first start, at state.path of the "
        "config, default tide-state.db in the directory it runs in)",
        state_path));
  try {
    return store::Store::open(state_path);
  } catch (const store::StoreError& e) {
    if (std::string(e.what()).find("in use by another tide") != std::string::npos)
      throw std::runtime_error(fmt::format(
          "{}: a running tide serve holds it: stop it, rotate, and start it again (it reads the "
          "token at start)",
          state_path));
    throw std::runtime_error(e.what());
  }
}

}  // namespace

std::string new_api_token() {
  std::ifstream in("/dev/urandom", std::ios::binary);
  unsigned char bytes[32] = {};
  in.read(reinterpret_cast<char*>(bytes), sizeof bytes);
  if (!in) throw std::runtime_error("cannot read /dev/urandom to make an API token");
  std::string hex;
  for (unsigned char b : bytes) hex += fmt::format("{:02x}", b);
  return hex;
}

std::optional<std::string> stored_api_token(const std::string& state_path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(state_path, ec)) open_state(state_path, false);  // why
  try {
    return store::read_meta(state_path, kApiTokenKey);
  } catch (const store::StoreError& e) {
    throw std::runtime_error(fmt::format("{}: {}", state_path, e.what()));
  }
}

std::string rotate_api_token(const std::string& state_path) {
  auto store = open_state(state_path, true);
  std::string token = new_api_token();
  store->set_meta(kApiTokenKey, token);
  store->flush();
  if (store->write_errors() > 0)
    throw std::runtime_error(fmt::format("{}: could not write the new token", state_path));
  return token;
}

}  // namespace tide::serve
