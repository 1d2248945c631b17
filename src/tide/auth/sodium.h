// libsodium set-up shared by the .cc files of src/tide/auth only.
#pragma once

#include <sodium.h>

#include <stdexcept>

namespace tide::auth::detail {

// sodium_init() once per process; thread-safe.
inline void ensure_sodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) throw std::runtime_error("libsodium failed to initialize");
}

}  // namespace tide::auth::detail
