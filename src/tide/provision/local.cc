// The local provisioner: replicas as child processes of tide.
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "tide/os/child_process.h"
#include "tide/provision/backends.h"

extern char** environ;

namespace tide::provision::detail {

using boost::system::error_code;

namespace {

constexpr size_t kMaxLine = 4096;     // a longer line is forwarded in pieces
constexpr int kErrorLines = 5;        // lines of output quoted in a failure
constexpr size_t kErrorChars = 1000;  // at most this much of them
constexpr Duration kExitPoll = 50ms;
constexpr Duration kLogPoll = 200ms;  // how often a replica's log file is read  // without
                                      // pidfd_open, how often to look for an exit

std::string errno_text(int err) { return std::strerror(err); }

std::string signal_text(int sig) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  if (const char* abbrev = sigabbrev_np(sig)) return fmt::format("{} (SIG{})", sig, abbrev);
#endif
  return std::to_string(sig);
}

std::string describe_exit(int status, bool ready, std::string_view output) {
  std::string s;
  if (status < 0)
    s = "exited (its status was collected elsewhere)";
  else if (WIFEXITED(status))
    s = fmt::format("exited with status {}", WEXITSTATUS(status));
  else if (WIFSIGNALED(status))
    s = fmt::format("killed by signal {}", signal_text(WTERMSIG(status)));
  else
    s = fmt::format("ended with wait status {}", status);
  s += ready ? " after ready" : " before ready";
  if (std::string tail = last_lines(output); !tail.empty()) s += ": " + tail;
  return s;
}

// A port nobody listens on now: bind 127.0.0.1:0, read the port, close. Another process may
// take it before the replica binds it; the replica then fails and is replaced.
std::optional<uint16_t> free_port(std::string& error) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    error = "socket: " + errno_text(errno);
    return std::nullopt;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    error = "cannot find a free port on 127.0.0.1: " + errno_text(errno);
    return std::nullopt;
  }
  return ntohs(addr.sin_port);
}

std::string join_ints(const std::vector<int>& v, std::string_view sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? std::string(sep) : "") + std::to_string(v[i]);
  return s;
}

std::optional<int64_t> parse_int64(std::string_view text) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

// The start time of a process (clock ticks after boot, field 22 of /proc/PID/stat): with the pid,
// it names one process for good, since a recycled pid starts later.
std::optional<uint64_t> process_start(int pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat;
  if (!std::getline(in, stat)) return std::nullopt;
  const size_t paren = stat.rfind(')');  // the command name may hold spaces and parentheses
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 22) {
      const auto v = parse_int64(field);
      return v && *v >= 0 ? std::optional<uint64_t>(static_cast<uint64_t>(*v)) : std::nullopt;
    }
  }
  return std::nullopt;
}

// "local pid=1 start=2 port=3 gpus=0,1 log=/a b/c.log": key=value words; log= takes the rest.
std::map<std::string, std::string> parse_handle(std::string_view handle) {
  std::map<std::string, std::string> out;
  while (!handle.empty()) {
    const size_t space = handle.find(' ');
    std::string_view word = handle.substr(0, space);
    if (word.starts_with("log=")) {
      out["log"] = std::string(handle.substr(4));
      break;
    }
    if (const size_t eq = word.find('='); eq != std::string_view::npos)
      out[std::string(word.substr(0, eq))] = std::string(word.substr(eq + 1));
    handle = space == std::string_view::npos ? std::string_view() : handle.substr(space + 1);
  }
  return out;
}

std::optional<int64_t> int_field(const std::map<std::string, std::string>& fields,
                                 const std::string& key) {
  const auto it = fields.find(key);
  return it == fields.end() ? std::nullopt : parse_int64(it->second);
}

}  // namespace

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

namespace {

// The GPUs for a replica of `spec` (its gpus_per_replica of spec.gpus, none of `in_use`):
// nullopt with `error` set when too few are free; none when it needs none.
std::optional<std::vector<int>> free_gpus(const config::ProvisionerSpec& spec,
                                          const std::set<int>& in_use, std::string& error) {
  std::vector<int> gpus;
  if (spec.gpus_per_replica <= 0) return gpus;
  const auto wanted = static_cast<size_t>(spec.gpus_per_replica);
  for (int g : spec.gpus) {
    if (gpus.size() < wanted && !in_use.count(g)) gpus.push_back(g);
  }
  if (gpus.size() < wanted) {
    std::vector<int> busy;
    for (int g : spec.gpus) {
      if (in_use.count(g)) busy.push_back(g);
    }
    error = fmt::format("no free GPU: needs {} of gpus [{}], [{}] in use", spec.gpus_per_replica,
                        join_ints(spec.gpus, ","), join_ints(busy, ","));
    return std::nullopt;
  }
  return gpus;
}

// The replica's command line: `tide agent` in front of it where it has one, then the configured
// command with {port} and {replica_id} filled in.
std::vector<std::string> replica_argv(const Launch& l, const std::string& port_text,
                                      const std::string& id_text, uint16_t port,
                                      std::optional<uint16_t> agent_port) {
  std::vector<std::string> argv;
  if (l.agent_argv) {
    argv = *l.agent_argv;
    for (const std::string& arg :
         {std::string("--listen"), fmt::format("127.0.0.1:{}", *agent_port),
          std::string("--upstream"), fmt::format("127.0.0.1:{}", port), std::string("--")})
      argv.push_back(arg);
  }
  for (const std::string& arg : l.spec.command)
    argv.push_back(replace_all(replace_all(arg, "{port}", port_text), "{replica_id}", id_text));
  return argv;
}

// The replica's environment into `env`: this process's, less tide's own variables (and
// CUDA_VISIBLE_DEVICES where tide assigns GPUs), then the replica's. Returns the PATH its program
// is looked up in.
std::string replica_environment(const Launch& l, const std::string& port_text,
                                const std::string& id_text, const std::vector<int>& gpus,
                                const std::string& replica_log_dir, std::vector<std::string>& env) {
  const bool set_gpus = l.spec.gpus_per_replica > 0;
  std::string path_var = "/usr/local/bin:/usr/bin:/bin";
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view kv(*e);
    const std::string_view key = kv.substr(0, kv.find('='));
    if (key == "TIDE_REPLICA_ID" || key == "TIDE_REPLICA_NAME" || key == "TIDE_PORT" ||
        key == "TIDE_REPLICAS" || (set_gpus && key == "CUDA_VISIBLE_DEVICES"))
      continue;
    if (key == "PATH") path_var = std::string(kv.substr(5));
    env.emplace_back(kv);
  }
  env.push_back("TIDE_REPLICA_ID=" + id_text);
  env.push_back("TIDE_REPLICA_NAME=" + l.name);
  env.push_back("TIDE_PORT=" + port_text);
  // Marks the replica as this state's, for kill_unrecorded() after a crash.
  if (!replica_log_dir.empty()) env.push_back("TIDE_REPLICAS=" + replica_log_dir);
  if (set_gpus) env.push_back("CUDA_VISIBLE_DEVICES=" + join_ints(gpus, ","));
  env.insert(env.end(), l.agent_env.begin(), l.agent_env.end());
  return path_var;
}

}  // namespace

std::string last_lines(std::string_view output) {
  while (!output.empty() && (output.back() == '\n' || output.back() == '\r' ||
                             output.back() == ' ' || output.back() == '\t'))
    output.remove_suffix(1);
  size_t start = output.size();
  for (int lines = 0; start > 0 && lines < kErrorLines;) {
    --start;
    if (output[start] == '\n' && ++lines == kErrorLines) {
      ++start;
      break;
    }
  }
  if (output.size() - start > kErrorChars) start = output.size() - kErrorChars;
  return std::string(output.substr(start));
}

// ---------------------------------------------------------------------------------------------
UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = o.release();
  }
  return *this;
}

void UniqueFd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

// ---------------------------------------------------------------------------------------------
void ChildRegistry::add(const ChildProcess& child) {
  std::lock_guard lock(mu_);
  children_[child.pid] = child;
}

bool ChildRegistry::reap(int pid, int& status, bool block) {
  std::lock_guard lock(mu_);
  if (children_.find(pid) == children_.end()) {  // reaped by kill_all()
    status = -1;
    return true;
  }
  siginfo_t info{};
  int r;
  do {
    r = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT | (block ? 0 : WNOHANG));
  } while (r != 0 && errno == EINTR);
  if (r != 0) {  // ECHILD: someone else reaped it
    children_.erase(pid);
    status = -1;
    return true;
  }
  if (info.si_pid == 0) return false;  // still running
  // The leader is a zombie, so its process group id cannot have been recycled: clear out
  // whatever it left running in its group, then reap it.
  ::kill(-pid, SIGKILL);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  children_.erase(pid);
  status = st;
  return true;
}

bool ChildRegistry::signal_group(int pid, int sig) {
  std::lock_guard lock(mu_);
  if (children_.find(pid) == children_.end()) return false;
  ::kill(-pid, sig);
  return true;
}

void ChildRegistry::kill_all() {
  std::lock_guard lock(mu_);
  for (const auto& [pid, child] : children_) ::kill(-pid, SIGKILL);
  for (const auto& [pid, child] : children_) {
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
  children_.clear();
}

std::vector<ChildProcess> ChildRegistry::list() const {
  std::lock_guard lock(mu_);
  std::vector<ChildProcess> out;
  for (const auto& [pid, child] : children_) out.push_back(child);
  return out;
}

// ---------------------------------------------------------------------------------------------
Spawner::Spawner(ChildRegistry& registry) : registry_(registry), thread_([this] { loop(); }) {}

Spawner::~Spawner() { close(); }

void Spawner::submit(SpawnRequest request, std::function<void(SpawnResult)> done) {
  {
    std::lock_guard lock(mu_);
    if (closing_) return;
    queue_.emplace_back(std::move(request), std::move(done));
  }
  cv_.notify_one();
}

void Spawner::close() {
  {
    std::lock_guard lock(mu_);
    closing_ = true;
    queue_.clear();
  }
  cv_.notify_one();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void Spawner::loop() {
  // Process-directed signals go to other threads; children reset their mask before exec.
  sigset_t all;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
  for (;;) {
    std::pair<SpawnRequest, std::function<void(SpawnResult)>> job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return closing_ || !queue_.empty(); });
      if (closing_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job.second(spawn(job.first));
  }
}

SpawnResult Spawner::spawn(const SpawnRequest& request) {
  SpawnResult result;
  int out[2];
  if (!request.log_path.empty()) {
    out[1] = ::open(request.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    out[0] = out[1] < 0 ? -1 : ::open(request.log_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (out[0] < 0) {
      result.error = fmt::format("{}: {}", request.log_path, errno_text(errno));
      if (out[1] >= 0) ::close(out[1]);
      return result;
    }
    ::lseek(out[0], 0, SEEK_END);
  } else if (::pipe2(out, O_CLOEXEC) != 0) {
    result.error = "pipe: " + errno_text(errno);
    return result;
  }
  UniqueFd out_r(out[0]), out_w(out[1]);
  UniqueFd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null_fd.get() < 0) {
    result.error = "/dev/null: " + errno_text(errno);
    return result;
  }
  os::ChildSpec spec(request.path, request.argv);
  spec.env = request.env;
  spec.stdin_fd = null_fd.get();
  spec.stdout_fd = spec.stderr_fd = out_w.get();
  spec.reset_signals = true;
  spec.own_process_group = true;
  spec.die_with_parent = request.die_with_parent;
  spec.close_other_fds = true;  // nothing else of tide's (sockets, files) reaches the replica
  const os::StartedChild child = os::start_child(spec);
  if (child.pid < 0) {
    result.error = fmt::format("{}: {}", child.step, errno_text(child.error));
    return result;
  }
  const pid_t pid = child.pid;
  registry_.add({request.replica_id, request.name, pid});
  out_w.reset();
  null_fd.reset();
  if (child.error != 0) {
    int ignored = 0;
    registry_.reap(pid, ignored, /*block=*/true);
    result.error = fmt::format("cannot run {}: {}", request.path, errno_text(child.error));
    return result;
  }
  ::fcntl(out_r.get(), F_SETFL, ::fcntl(out_r.get(), F_GETFL) | O_NONBLOCK);
  result.pid = pid;
  result.output = std::move(out_r);
  result.pidfd = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  return result;
}

// ---------------------------------------------------------------------------------------------
struct LocalBackend::Child {
  Child(const Strand& strand, Launch l)
      : launch(std::move(l)), grace_timer(strand), poll_timer(strand), log_timer(strand) {}
  Launch launch;
  uint16_t port = 0;
  uint16_t agent_port = 0;  // with an agent: where it listens (the replica's address)
  std::vector<int> gpus;
  int pid = -1;  // -1 while the spawner is at it
  std::optional<asio::posix::stream_descriptor> pidfd;
  std::optional<asio::posix::stream_descriptor> output;  // a pipe
  UniqueFd log;  // or its log file (replica_log_dir), read every kLogPoll
  std::string log_path;
  off_t log_freed = 0;      // the log file's start freed on disk so far
  bool log_warned = false;  // said once that it could not be freed
  asio::steady_timer grace_timer;
  asio::steady_timer poll_timer;
  asio::steady_timer log_timer;
  bool adopted = false;  // started by an earlier run of tide: not our child
  std::shared_ptr<Watch> watch;
  bool stopping = false;  // stopped, shut down or failed: report nothing more
  bool terminating = false;
  bool ready = false;
  bool exited = false;
  bool forgotten = false;
  std::string tail;  // the last output_tail_bytes of its output
  std::string line;  // the line being received

  // Cancels its timers and health watch and closes its descriptors: nothing more will fire.
  void release_io() {
    if (watch) watch->cancel();
    grace_timer.cancel();
    poll_timer.cancel();
    log_timer.cancel();
    log.reset();
    error_code ec;
    if (pidfd) pidfd->close(ec);
    if (output) output->close(ec);
  }
};

LocalBackend::LocalBackend(std::shared_ptr<Core> core)
    : core_(std::move(core)), spawner_(registry_) {}

LocalBackend::~LocalBackend() {
  spawner_.close();
  if (core_->options.replica_log_dir.empty()) registry_.kill_all();
}

void LocalBackend::fail(const Launch& launch, std::string error) {
  if (core_->closed) return;
  launch.events->on_replica_failed(launch.id, core_->clock.now(), std::move(error));
}

void LocalBackend::report_failed(Child& child, std::string error) {
  if (core_->closed) return;
  child.launch.events->on_replica_failed(child.launch.id, core_->clock.now(), std::move(error));
}

void LocalBackend::launch(Launch l) {
  if (core_->closed) return;
  if (shutting_down_) return fail(l, "provisioner is shutting down");
  if (children_.count(l.key)) {
    std::fprintf(stderr, "tide: replica %s launched twice; ignored\n", l.name.c_str());
    return;
  }
  const config::ProvisionerSpec& spec = l.spec;
  if (spec.command.empty())
    return fail(l, "provisioner.command is empty: nothing to run (kind local)");
  if (l.agent_argv && l.agent_argv->empty())
    return fail(l, "agent.enabled, but this provisioner was given no way to start `tide agent`");

  std::string error;
  const std::optional<std::vector<int>> gpus = free_gpus(spec, gpus_in_use_, error);
  if (!gpus) return fail(l, error);
  auto pick_port = [&](std::optional<uint16_t> other) {
    std::optional<uint16_t> p;
    for (int attempt = 0; attempt < 8; ++attempt) {
      p = free_port(error);
      if (!p || (!ports_in_use_.count(*p) && p != other)) break;
    }
    return p;
  };
  const std::optional<uint16_t> port = pick_port(std::nullopt);
  if (!port) return fail(l, error);
  // With an agent: it listens on agent_port and reaches the model server on `port`.
  std::optional<uint16_t> agent_port;
  if (l.agent_argv) {
    agent_port = pick_port(port);
    if (!agent_port) return fail(l, error);
  }

  const std::string port_text = std::to_string(*port);
  const std::string id_text = std::to_string(l.id);
  SpawnRequest request;
  request.replica_id = l.id;
  request.name = l.name;
  request.argv = replica_argv(l, port_text, id_text, *port, agent_port);
  const std::string path_var = replica_environment(l, port_text, id_text, *gpus,
                                                   core_->options.replica_log_dir, request.env);
  auto path = os::resolve_program(request.argv.front(), path_var);
  if (!path) return fail(l, fmt::format("command not found: {}", request.argv.front()));
  request.path = *path;

  if (!core_->options.replica_log_dir.empty()) {
    request.die_with_parent = false;
    std::string file = l.name;
    std::replace(file.begin(), file.end(), '/', '.');
    request.log_path = core_->options.replica_log_dir + "/" + file + ".log";
  }
  auto child = std::make_shared<Child>(core_->strand, std::move(l));
  child->log_path = request.log_path;
  child->port = *port;
  child->agent_port = agent_port.value_or(0);
  child->gpus = *gpus;
  gpus_in_use_.insert(gpus->begin(), gpus->end());
  ports_in_use_.insert(*port);
  if (agent_port) ports_in_use_.insert(*agent_port);
  children_[child->launch.key] = child;

  // Called on the spawner thread: hand the result to the strand and keep nothing here.
  spawner_.submit(std::move(request),
                  [core = core_, self = weak_from_this(),
                   weak_child = std::weak_ptr<Child>(child)](SpawnResult result) {
                    asio::post(core->strand, [self, weak_child, r = std::move(result)]() mutable {
                      auto backend = self.lock();
                      auto c = weak_child.lock();
                      if (backend && c) backend->on_spawned(c, std::move(r));
                    });
                  });
}

void LocalBackend::on_spawned(const std::shared_ptr<Child>& child, SpawnResult result) {
  if (core_->closed) return;  // close() has killed and reaped it
  if (!result.error.empty()) {
    forget(child);
    if (!child->stopping) report_failed(*child, result.error);
    return;
  }
  child->pid = result.pid;
  if (child->log_path.empty()) {
    child->output.emplace(core_->strand, result.output.release());
    wait_output(child);
  } else {
    child->log = std::move(result.output);
    poll_log(child);
  }
  if (result.pidfd.get() >= 0) child->pidfd.emplace(core_->strand, result.pidfd.release());
  wait_exit(child);
  if (child->stopping) return terminate(child);

  std::string handle =
      fmt::format("local pid={} start={} port={} gpus={}", child->pid,
                  process_start(child->pid).value_or(0), child->port, join_ints(child->gpus, ","));
  if (child->agent_port != 0) handle += fmt::format(" agent={}", child->agent_port);
  if (!child->log_path.empty()) handle += " log=" + child->log_path;
  child->launch.events->on_replica_handle(child->launch.id, std::move(handle));
  child->launch.events->on_replica_starting(child->launch.id, core_->clock.now());
  watch(child);
}

void LocalBackend::watch(const std::shared_ptr<Child>& child) {
  // The address the gateway uses, and where readiness is asked: the agent, when there is one
  // (it answers for the model server at /tide/health).
  const uint16_t serving_port = child->agent_port != 0 ? child->agent_port : child->port;
  ProbeTarget target{"127.0.0.1", serving_port, child->launch.spec.ready,
                     core_->options.liveness_interval, core_->options.liveness_failures};
  if (child->agent_port != 0) target.ready.path = "/tide/health";
  child->watch = std::make_shared<Watch>(core_->strand, std::move(target));
  read_engine_metrics(*child->watch, child->launch, core_);
  std::weak_ptr<Child> weak_child = child;
  std::weak_ptr<LocalBackend> weak_self = weak_from_this();
  child->watch->start(
      [weak_child, weak_self] {
        auto c = weak_child.lock();
        auto self = weak_self.lock();
        if (!c || !self || c->stopping || c->exited || self->core_->closed) return;
        c->ready = true;
        c->launch.events->on_replica_ready(
            c->launch.id, self->core_->clock.now(),
            fmt::format("127.0.0.1:{}", c->agent_port != 0 ? c->agent_port : c->port));
      },
      [weak_child, weak_self](std::string error) {
        auto c = weak_child.lock();
        auto self = weak_self.lock();
        if (!c || !self || c->stopping || c->exited) return;
        c->stopping = true;
        self->report_failed(*c, std::move(error));
        self->terminate(c);
      });
}

void LocalBackend::adopt(Launch l, const std::string& handle) {
  if (core_->closed) return;
  if (shutting_down_) return fail(l, "provisioner is shutting down");
  const auto fields = parse_handle(handle);
  const auto pid = int_field(fields, "pid");
  const auto start = int_field(fields, "start");
  const auto port = int_field(fields, "port");
  if (!pid || !start || !port || *pid <= 1 || *port <= 0 || *port > 65535)
    return fail(l, fmt::format("cannot adopt: not a local replica's handle: {}", handle));
  if (children_.count(l.key) || ports_in_use_.count(static_cast<uint16_t>(*port)))
    return fail(l, fmt::format("cannot adopt: {} or its port {} is taken", l.name, *port));
  if (process_start(static_cast<int>(*pid)) != static_cast<uint64_t>(*start)) {
    if (auto it = fields.find("log"); it != fields.end()) remove_log(it->second);
    return fail(l, fmt::format("gone while tide was not running (process {} has exited)", *pid));
  }
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, static_cast<pid_t>(*pid), 0)));
  if (pidfd.get() < 0)
    return fail(l, fmt::format("cannot adopt process {}: pidfd_open: {}", *pid, errno_text(errno)));
  std::vector<int> gpus;
  if (auto it = fields.find("gpus"); it != fields.end()) {
    for (std::string_view rest = it->second; !rest.empty();) {
      const size_t comma = rest.find(',');
      if (auto g = parse_int64(rest.substr(0, comma))) gpus.push_back(static_cast<int>(*g));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  auto child = std::make_shared<Child>(core_->strand, std::move(l));
  child->adopted = true;
  child->pid = static_cast<int>(*pid);
  child->port = static_cast<uint16_t>(*port);
  if (const auto agent = int_field(fields, "agent"); agent && *agent > 0 && *agent <= 65535)
    child->agent_port = static_cast<uint16_t>(*agent);
  child->gpus = gpus;
  if (auto it = fields.find("log"); it != fields.end()) {
    child->log_path = it->second;
    child->log = UniqueFd(::open(child->log_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (child->log.get() >= 0) {
      // Its recent output explains a failure; it was shown by the earlier run already.
      const off_t end = ::lseek(child->log.get(), 0, SEEK_END);
      const auto tail = static_cast<off_t>(core_->options.output_tail_bytes);
      ::lseek(child->log.get(), end > tail ? end - tail : 0, SEEK_SET);
      char buf[4096];
      ssize_t n;
      while ((n = ::read(child->log.get(), buf, sizeof buf)) > 0)
        child->tail.append(buf, static_cast<size_t>(n));
      if (child->tail.size() > core_->options.output_tail_bytes)
        child->tail.erase(0, child->tail.size() - core_->options.output_tail_bytes);
      poll_log(child);
    }
  }
  gpus_in_use_.insert(gpus.begin(), gpus.end());
  ports_in_use_.insert(child->port);
  if (child->agent_port != 0) ports_in_use_.insert(child->agent_port);
  children_[child->launch.key] = child;
  registry_.add({child->launch.id, child->launch.name, child->pid});
  child->pidfd.emplace(core_->strand, pidfd.release());
  wait_exit(child);
  watch(child);
}

void LocalBackend::poll_log(const std::shared_ptr<Child>& child) {
  child->log_timer.expires_after(kLogPoll);
  child->log_timer.async_wait([self = shared_from_this(), child](const error_code& ec) {
    if (ec || self->core_->closed || child->log.get() < 0) return;
    self->drain_output(*child);
    self->poll_log(child);
  });
}

void LocalBackend::wait_exit(const std::shared_ptr<Child>& child) {
  auto on_event = [self = shared_from_this(), child](const error_code& ec) {
    if (ec == asio::error::operation_aborted || self->core_->closed || child->exited) return;
    int status = 0;
    if (self->registry_.reap(child->pid, status, /*block=*/false))
      self->on_exit(child, status);
    else
      self->wait_exit(child);
  };
  if (child->pidfd) {
    child->pidfd->async_wait(asio::posix::descriptor_base::wait_read, std::move(on_event));
  } else {
    child->poll_timer.expires_after(kExitPoll);
    child->poll_timer.async_wait(std::move(on_event));
  }
}

void LocalBackend::wait_output(const std::shared_ptr<Child>& child) {
  child->output->async_wait(asio::posix::descriptor_base::wait_read,
                            [self = shared_from_this(), child](const error_code& ec) {
                              if (ec || self->core_->closed || !child->output->is_open()) return;
                              self->drain_output(*child);
                              if (child->output->is_open()) self->wait_output(child);
                            });
}

void LocalBackend::drain_output(Child& child) {
  char buf[4096];
  if (child.log.get() >= 0) {  // a file: read to its current end, keep it open
    ssize_t n;
    while ((n = ::read(child.log.get(), buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
      if (n > 0) take_output(child, std::string_view(buf, static_cast<size_t>(n)));
    }
    // Every byte up to here has been relayed: past the limit, free it on disk. A punched hole
    // (unlike a truncation) cannot race the replica's appends.
    const off_t at = ::lseek(child.log.get(), 0, SEEK_CUR);
    const off_t freed = at / 4096 * 4096;
    if (freed > child.log_freed &&
        static_cast<uint64_t>(freed - child.log_freed) > core_->options.replica_log_max_bytes) {
      UniqueFd w(::open(child.log_path.c_str(), O_WRONLY | O_CLOEXEC));
      if (w.get() >= 0 &&
          ::fallocate(w.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, freed) == 0) {
        child.log_freed = freed;
      } else if (!child.log_warned) {
        child.log_warned = true;
        emit_line(child, fmt::format("tide: cannot free the start of {} as it grows: {}",
                                     child.log_path, errno_text(errno)));
      }
    }
    return;
  }
  if (!child.output || !child.output->is_open()) return;
  for (;;) {
    const ssize_t n = ::read(child.output->native_handle(), buf, sizeof buf);
    if (n > 0) {
      take_output(child, std::string_view(buf, static_cast<size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    error_code ec;  // EOF or error: every writer is gone
    child.output->close(ec);
    return;
  }
}

void LocalBackend::take_output(Child& child, std::string_view data) {
  const size_t cap = core_->options.output_tail_bytes;
  child.tail.append(data);
  if (child.tail.size() > cap) child.tail.erase(0, child.tail.size() - cap);
  while (!data.empty()) {
    const size_t nl = data.find('\n');
    child.line.append(data.substr(0, nl));
    if (nl == std::string_view::npos) {
      if (child.line.size() >= kMaxLine) {
        emit_line(child, child.line);
        child.line.clear();
      }
      return;
    }
    emit_line(child, child.line);
    child.line.clear();
    data.remove_prefix(nl + 1);
  }
}

void LocalBackend::emit_line(Child& child, std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (core_->options.output) {
    core_->options.output(child.launch.name, line);
  } else {
    std::fprintf(stderr, "[%s] %.*s\n", child.launch.name.c_str(), static_cast<int>(line.size()),
                 line.data());
  }
}

void LocalBackend::terminate(const std::shared_ptr<Child>& child) {
  if (child->exited || child->terminating || child->pid < 0) return;
  child->terminating = true;
  registry_.signal_group(child->pid, SIGTERM);
  registry_.signal_group(child->pid, SIGCONT);  // a stopped process could not act on SIGTERM
  child->grace_timer.expires_after(core_->options.stop_grace);
  child->grace_timer.async_wait([self = shared_from_this(), child](const error_code& ec) {
    if (ec || child->exited || self->core_->closed) return;
    self->registry_.signal_group(child->pid, SIGKILL);
  });
}

void LocalBackend::on_exit(const std::shared_ptr<Child>& child, int status) {
  child->exited = true;
  drain_output(*child);
  if (!child->line.empty()) {
    emit_line(*child, child->line);
    child->line.clear();
  }
  child->release_io();
  remove_log(child->log_path);  // relayed, and its tail kept: one file per live replica
  const bool report = !child->stopping;
  child->stopping = true;
  forget(child);
  if (report && child->adopted && status < 0) {
    std::string what = fmt::format(
        "exited (status unknown: process {} was started by an earlier "
        "run of tide)",
        child->pid);
    if (std::string tail = last_lines(child->tail); !tail.empty()) what += ": " + tail;
    report_failed(*child, std::move(what));
  } else if (report) {
    report_failed(*child, describe_exit(status, child->ready, child->tail));
  }
}

void LocalBackend::remove_log(const std::string& path) const {
  const std::string& dir = core_->options.replica_log_dir;
  // Only a file of ours: the path comes from a handle in the state file.
  if (path.empty() || dir.empty() || !path.starts_with(dir + "/") || !path.ends_with(".log") ||
      path.find("/..") != std::string::npos)
    return;
  ::unlink(path.c_str());
}

void LocalBackend::forget(const std::shared_ptr<Child>& child) {
  if (child->forgotten) return;
  child->forgotten = true;
  for (int g : child->gpus) gpus_in_use_.erase(g);
  ports_in_use_.erase(child->port);
  ports_in_use_.erase(child->agent_port);
  if (auto it = children_.find(child->launch.key); it != children_.end() && it->second == child)
    children_.erase(it);
  if (shutting_down_ && children_.empty()) {
    auto done = std::move(shutdown_done_);
    shutdown_done_.clear();
    for (auto& d : done) d();
  }
}

void LocalBackend::stop(const std::string& key) {
  auto it = children_.find(key);
  if (it == children_.end()) return;
  std::shared_ptr<Child> child = it->second;
  if (child->stopping) return;
  child->stopping = true;
  if (child->watch) child->watch->cancel();
  terminate(child);  // still spawning (pid -1): on_spawned terminates it
}

void LocalBackend::shutdown(std::function<void()> done) {
  shutting_down_ = true;
  if (children_.empty()) {
    done();
    return;
  }
  shutdown_done_.push_back(std::move(done));
  std::vector<std::string> keys;
  for (const auto& [key, child] : children_) keys.push_back(key);
  for (const auto& key : keys) stop(key);
}

void LocalBackend::close() {
  spawner_.close();
  // Replicas meant to outlive tide are left running (as after a crash), for the next run.
  if (core_->options.replica_log_dir.empty()) registry_.kill_all();
  asio::post(core_->strand, [self = shared_from_this()] {
    for (auto& [key, child] : self->children_) child->release_io();
    self->children_.clear();
  });
}

}  // namespace tide::provision::detail

namespace tide::provision {

// Beside the local backend: it reads /proc as the adoption of a local handle does.
std::vector<std::string> LiveProvisioner::kill_unrecorded(
    const std::string& replica_log_dir, const std::vector<std::string>& recorded) {
  std::vector<std::string> killed;
  if (replica_log_dir.empty()) return killed;
  const std::string mark = "TIDE_REPLICAS=" + replica_log_dir;
  std::vector<pid_t> groups;  // killed already
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string pid_text = entry.path().filename().string();
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
    const int pid = std::stoi(pid_text);
    if (pid == ::getpid()) continue;
    std::ifstream in(entry.path() / "environ", std::ios::binary);  // our own processes only
    if (!in) continue;
    bool marked = false;
    std::string name;
    for (std::string var; std::getline(in, var, '\0');) {
      if (var == mark) marked = true;
      if (var.starts_with("TIDE_REPLICA_NAME=")) name = var.substr(18);
    }
    if (!marked || std::find(recorded.begin(), recorded.end(), name) != recorded.end()) continue;
    const pid_t group = ::getpgid(pid);
    if (group > 1 && group != ::getpgid(0)) {
      if (std::find(groups.begin(), groups.end(), group) != groups.end()) continue;
      groups.push_back(group);
      if (::kill(-group, SIGKILL) == 0)
        killed.push_back(fmt::format("{} (process group {})", name, group));
    } else if (::kill(pid, SIGKILL) == 0) {
      killed.push_back(fmt::format("{} (process {})", name, pid));
    }
  }
  return killed;
}

}  // namespace tide::provision
