// What this binary was built from: the project's version and the git commit of the source tree,
// both fixed when CMake configured the build (`tide --version`, `tide_build_info` in /metrics).
#pragma once

#include <string_view>

namespace tide {

// The project's version (CMakeLists.txt's project(VERSION)), e.g. "0.1.0".
std::string_view build_version();
// The short git commit of the source tree at configure time, with "-dirty" when it had
// uncommitted changes; "unknown" outside a git checkout.
std::string_view build_commit();

}  // namespace tide
