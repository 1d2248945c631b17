// The end of a detached task (a coroutine or callback that nobody awaits): an exception that
// escapes it is logged and counted, never lost. See "Errors" in docs/architecture.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>

namespace tide {

class TaskEnd {
 public:
  using Log = std::function<void(const std::string& line)>;
  // `what` names the task in the log line; `count` (may be null) counts the exceptions; `log`
  // (may be empty: stderr) gets "<what> ended by an exception: <message>".
  TaskEnd(std::string what, std::atomic<uint64_t>* count, Log log = nullptr)
      : what_(std::move(what)), count_(count), log_(std::move(log)) {}
  void operator()(const std::exception_ptr& e) const;

 private:
  std::string what_;
  std::atomic<uint64_t>* count_;
  Log log_;
};

}  // namespace tide
