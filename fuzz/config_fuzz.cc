// The configuration reader: a whole YAML file (tide serve --config, tide sim --config), and one
// endpoint as the body of PUT /v1/endpoints/{name} (JSON or YAML). The first byte picks which.
// Anything but a Config or a ConfigError is a finding (a crash, another exception, a hang).
#include <cstdint>
#include <string_view>

#include "fuzz/fuzz_util.h"
#include "tide/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tide::fuzz::Input in(data, size);
  const bool endpoint_body = (in.byte() & 1) != 0;
  try {
    if (endpoint_body) {
      (void)tide::config::parse_endpoint(in.rest(), "body");
    } else {
      (void)tide::config::parse_config(in.rest(), "fuzz.yaml");
    }
  } catch (const tide::config::ConfigError& e) {
    if (e.problems().empty()) __builtin_trap();
  }
  return 0;
}
