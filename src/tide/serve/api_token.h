// The admin API's bearer token as the state file keeps it: `tide token show|rotate`, and the
// token `tide serve` generates at its first start.
#pragma once

#include <optional>
#include <string>

namespace tide::serve {

// The state file's meta key that holds the token.
inline constexpr const char* kApiTokenKey = "api_token";

// 32 random bytes from the kernel, as 64 hex digits.
std::string new_api_token();

// The token kept in the state file at `state_path`; nullopt when the file holds none. Reads
// beside a running tide serve (without its lock). Throws std::runtime_error naming the file when
// it does not exist or cannot be read (it is never created here).
std::optional<std::string> stored_api_token(const std::string& state_path);

// Replaces the state file's token with a new one and returns it; creates the state file when
// it does not exist yet (a token chosen before the first start). A running `tide serve` reads
// the token when it starts and holds the file: stop it first, rotate, start it again. Throws
// std::runtime_error naming the file (and saying so when a tide serve holds it).
std::string rotate_api_token(const std::string& state_path);

}  // namespace tide::serve
