// The default tide policy (see docs/policies.md). Built by make_decider for PolicyKind::kTide.
#pragma once

#include <memory>

#include "tide/config/config.h"
#include "tide/policy/decider.h"

namespace tide::policy {

std::unique_ptr<Decider> make_tide_policy(const config::GroupSpec& group);

}  // namespace tide::policy
