// The two live backends behind LiveProvisioner. Internal to src/tide/provision.
//
// Each backend's methods run on Core::strand, except where a comment says otherwise.
#pragma once

#include <boost/asio/posix/stream_descriptor.hpp>

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tide/provision/internal.h"

namespace tide::provision::detail {

// Owns a file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset();

 private:
  int fd_ = -1;
};

// The local children not reaped yet, by pid. Thread-safe: the spawner thread adds, the strand
// reaps, children() lists and the destructor kills from the caller's thread. A pid is signalled
// only under the lock and while it is registered (not reaped), so never a recycled pid.
class ChildRegistry {
 public:
  void add(const ChildProcess& child);
  // If `pid` has exited: SIGKILLs what is left of its process group, reaps it, stores its wait
  // status and returns true. With `block`, waits for it to exit.
  bool reap(int pid, int& status, bool block);
  // Sends `sig` to the process group of a registered child; false if it is not registered.
  bool signal_group(int pid, int sig);
  // SIGKILLs every registered process group and reaps the children (blocks until they exit).
  void kill_all();
  std::vector<ChildProcess> list() const;

 private:
  mutable std::mutex mu_;
  std::map<int, ChildProcess> children_;
};

// What the spawner thread runs: argv and environment built beforehand, so that nothing but
// async-signal-safe calls happen between fork and exec.
struct SpawnRequest {
  uint64_t replica_id = 0;
  std::string name;
  std::string path;  // the program, resolved against PATH
  std::vector<std::string> argv;
  std::vector<std::string> env;
  bool die_with_parent = true;  // PR_SET_PDEATHSIG; false: it may outlive tide (adoptable)
  std::string log_path;         // non-empty: its output goes to this file instead of a pipe
};
struct SpawnResult {
  int pid = -1;
  UniqueFd pidfd;   // -1 where pidfd_open is unavailable: the exit is then polled
  UniqueFd output;  // read end of the child's stdout + stderr, non-blocking
  std::string error;
};

// A thread that lives as long as the local backend and forks every child: PR_SET_PDEATHSIG
// fires when the thread that forked a child exits, so forking from a caller's or an io_context
// thread would kill replicas when that thread ends. `done` is called on the spawner thread.
class Spawner {
 public:
  explicit Spawner(ChildRegistry& registry);
  ~Spawner();
  void submit(SpawnRequest request, std::function<void(SpawnResult)> done);
  // Finishes the fork in progress, drops queued requests and joins the thread. Any thread.
  void close();

 private:
  void loop();
  SpawnResult spawn(const SpawnRequest& request);

  ChildRegistry& registry_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<SpawnRequest, std::function<void(SpawnResult)>>> queue_;
  bool closing_ = false;
  std::thread thread_;
};

class LocalBackend : public std::enable_shared_from_this<LocalBackend> {
 public:
  explicit LocalBackend(std::shared_ptr<Core> core);
  ~LocalBackend();
  void launch(Launch launch);
  // Takes over the process of `handle` (as reported by on_spawned), started by an earlier run.
  void adopt(Launch launch, const std::string& handle);
  void stop(const std::string& key);
  // Stops every child; `done` once none is left.
  void shutdown(std::function<void()> done);
  // Any thread (see LiveProvisioner::~LiveProvisioner): joins the spawner, SIGKILLs and reaps
  // every child and posts the release of the rest.
  void close();
  std::vector<ChildProcess> children() const { return registry_.list(); }

 private:
  struct Child;
  void fail(const Launch& launch, std::string error);
  void on_spawned(const std::shared_ptr<Child>& child, SpawnResult result);
  // Probes it until ready, then for liveness.
  void watch(const std::shared_ptr<Child>& child);
  void poll_log(const std::shared_ptr<Child>& child);
  void wait_exit(const std::shared_ptr<Child>& child);
  void wait_output(const std::shared_ptr<Child>& child);
  void drain_output(Child& child);
  void take_output(Child& child, std::string_view data);
  void emit_line(Child& child, std::string_view line);
  void terminate(const std::shared_ptr<Child>& child);
  void on_exit(const std::shared_ptr<Child>& child, int status);
  void forget(const std::shared_ptr<Child>& child);
  // Deletes a replica's log file once the replica is gone (only a file in replica_log_dir).
  void remove_log(const std::string& path) const;
  void report_failed(Child& child, std::string error);

  std::shared_ptr<Core> core_;
  ChildRegistry registry_;
  Spawner spawner_;
  std::unordered_map<std::string, std::shared_ptr<Child>> children_;  // by key
  std::set<int> gpus_in_use_;
  std::set<uint16_t> ports_in_use_;
  bool shutting_down_ = false;
  std::vector<std::function<void()>> shutdown_done_;
};

class StaticBackend : public std::enable_shared_from_this<StaticBackend> {
 public:
  explicit StaticBackend(std::shared_ptr<Core> core) : core_(std::move(core)) {}
  void launch(Launch launch);
  void stop(const std::string& key);
  void shutdown();

 private:
  struct Held {
    uint64_t id = 0;
    control::ReplicaEvents* events = nullptr;
    std::string url;
    std::shared_ptr<Watch> watch;
  };
  void release(const std::string& key);

  std::shared_ptr<Core> core_;
  std::unordered_map<std::string, Held> held_;  // by key
  std::set<std::string> urls_in_use_;
  bool shutting_down_ = false;
};

}  // namespace tide::provision::detail
