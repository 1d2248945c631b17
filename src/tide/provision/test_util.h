// Helpers shared by the provisioner tests: an event recorder and a way to run the io_context
// until something happened (never a fixed sleep).
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tide/control/provisioner.h"
#include "tide/provision/provision.h"

namespace tide::provision::testing {

using namespace std::chrono_literals;

struct Event {
  enum class Kind { kStarting, kReady, kFailed };
  Kind kind;
  uint64_t id;
  Time time;
  std::string text;  // address or error
};

// Records events; checks they arrive one at a time and never inside launch() or stop().
class Recorder : public control::ReplicaEvents {
 public:
  void on_replica_starting(uint64_t id, Time now) override {
    add({Event::Kind::kStarting, id, now, ""});
  }
  void on_replica_ready(uint64_t id, Time now, std::string address) override {
    add({Event::Kind::kReady, id, now, std::move(address)});
  }
  void on_replica_failed(uint64_t id, Time now, std::string error) override {
    add({Event::Kind::kFailed, id, now, std::move(error)});
  }
  void on_replica_handle(uint64_t id, std::string handle) override { handles[id] = handle; }
  std::map<uint64_t, std::string> handles;
  const Event* find(uint64_t id, Event::Kind kind) const {
    for (const auto& e : events) {
      if (e.id == id && e.kind == kind) return &e;
    }
    return nullptr;
  }
  bool has(uint64_t id, Event::Kind kind) const { return find(id, kind) != nullptr; }
  std::vector<Event::Kind> kinds(uint64_t id) const {
    std::vector<Event::Kind> out;
    for (const auto& e : events) {
      if (e.id == id) out.push_back(e.kind);
    }
    return out;
  }

  std::vector<Event> events;
  bool in_call = false;  // set by the test around launch() and stop()

 private:
  void add(Event e) {
    EXPECT_FALSE(in_call) << "event reported synchronously from launch() or stop()";
    events.push_back(std::move(e));
  }
};

inline const char* kind_name(Event::Kind k) {
  switch (k) {
    case Event::Kind::kStarting:
      return "starting";
    case Event::Kind::kReady:
      return "ready";
    case Event::Kind::kFailed:
      return "failed";
  }
  return "?";
}

inline void PrintTo(Event::Kind k, std::ostream* os) { *os << kind_name(k); }

inline std::string describe(const std::vector<Event>& events) {
  std::string s;
  for (const auto& e : events)
    s += std::to_string(e.id) + " " + kind_name(e.kind) + " " + e.text + "\n";
  return s;
}

// Runs `io` until `done()` or `limit` has passed; returns done().
inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                      Duration limit = 10s) {
  SteadyClock clock;
  const Time deadline = clock.now() + limit;
  auto guard = boost::asio::make_work_guard(io);
  while (!done()) {
    if (clock.now() >= deadline) return false;
    io.restart();
    io.run_one_for(std::chrono::milliseconds(10));
  }
  return true;
}

inline control::Replica replica(uint64_t id) {
  control::Replica r;
  r.id = id;
  r.name = "ep/g/" + std::to_string(id);
  return r;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string make_temp_dir() {
  std::string pattern = ::testing::TempDir() + "tide_provision_XXXXXX";
  char* dir = ::mkdtemp(pattern.data());
  EXPECT_NE(dir, nullptr);
  return pattern;
}

// A port nothing listens on right now.
inline uint16_t unused_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace tide::provision::testing
