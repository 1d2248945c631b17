// Agent reports as the control plane reads them (POST /v1/agent/report): parse_report never
// throws, and a report it accepts survives encode_report and a second parse unchanged.
#include <cstdint>
#include <string_view>

#include "tide/agent/report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const tide::agent::ParsedReport parsed = tide::agent::parse_report(text);
  if (!parsed.report) {
    if (parsed.error.empty()) __builtin_trap();  // a refusal says why
    return 0;
  }
  const std::string again = tide::agent::encode_report(*parsed.report);
  const tide::agent::ParsedReport reparsed = tide::agent::parse_report(again);
  if (!reparsed.report) __builtin_trap();
  if (tide::agent::encode_report(*reparsed.report) != again) __builtin_trap();
  return 0;
}
