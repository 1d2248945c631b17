#include "tide/common/errors.h"

#include <fmt/format.h>

#include <cstdio>

namespace tide {

void TaskEnd::operator()(const std::exception_ptr& e) const {
  if (!e) return;
  if (count_ != nullptr) count_->fetch_add(1, std::memory_order_relaxed);
  std::string why;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    why = x.what();
  } catch (...) {
    why = "an exception of unknown type";
  }
  const std::string line = fmt::format("{} ended by an exception: {}", what_, why);
  if (log_) {
    log_(line);
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

}  // namespace tide
