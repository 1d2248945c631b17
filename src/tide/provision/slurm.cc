// The slurm provisioner: replicas as Slurm batch jobs, driven through sbatch, squeue, scancel and
// sinfo (see slurm_backend.h and docs/slurm.md).
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "tide/net/address.h"
#include "tide/os/child_process.h"
#include "tide/provision/slurm_backend.h"

namespace tide::provision::detail {

using boost::system::error_code;

namespace {

constexpr int kCancelAttempts = 5;         // scancel tries before giving up on a job
constexpr Duration kCancelRetry = 1s;      // between them
constexpr size_t kOutputTailBytes = 4096;  // of a job's output file, read on failure

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

std::string CommandResult::describe(std::string_view program) const {
  if (!error.empty()) return fmt::format("{}: {}", program, error);
  std::string_view why = trimmed(err);
  if (why.empty()) why = trimmed(out);
  return fmt::format("{}: exit {}{}{}", program, status, why.empty() ? "" : ": ", why);
}

// ---------------------------------------------------------------------------------------------
CommandRunner::CommandRunner(const Clock& clock, Duration timeout)
    : clock_(clock), timeout_(timeout), thread_([this] { loop(); }) {}

CommandRunner::~CommandRunner() { close(); }

uint64_t CommandRunner::submit(std::vector<std::string> argv, std::string input,
                               std::function<void(CommandResult)> done) {
  uint64_t seq = 0;
  {
    std::lock_guard lock(mu_);
    seq = next_seq_++;
    if (closing_) return seq;
    queue_.push_back({std::move(argv), std::move(input), std::move(done), seq});
  }
  cv_.notify_one();
  return seq;
}

void CommandRunner::close() {
  {
    std::lock_guard lock(mu_);
    closing_ = true;
    queue_.clear();
    if (running_pid_ > 0) ::kill(running_pid_, SIGKILL);  // not reaped yet: see run()
  }
  cv_.notify_one();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void CommandRunner::set_running(int pid) {
  std::lock_guard lock(mu_);
  running_pid_ = pid;
}

void CommandRunner::loop() {
  // Process-directed signals go to other threads; commands get a clean mask (run()).
  sigset_t all;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
  for (;;) {
    Command c;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return closing_ || !queue_.empty(); });
      if (closing_) return;
      c = std::move(queue_.front());
      queue_.pop_front();
    }
    CommandResult result = run(c);
    result.seq = c.seq;
    {
      std::lock_guard lock(mu_);
      if (closing_) return;
    }
    c.done(std::move(result));
  }
}

namespace {

// Starts `argv` with pipes for its stdin, stdout and stderr; returns its pid and the parent's
// ends of the pipes (`fds`: stdin write, stdout read, stderr read), or -1 with r.error set.
pid_t start_command(const std::vector<std::string>& argv, int (&fds)[3], CommandResult& r) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0) {
    r.error = fmt::format("pipe: {}", std::strerror(errno));
    return -1;
  }
  if (::pipe2(out, O_CLOEXEC) != 0) {
    r.error = fmt::format("pipe: {}", std::strerror(errno));
    ::close(in[0]);
    ::close(in[1]);
    return -1;
  }
  if (::pipe2(err, O_CLOEXEC) != 0) {
    r.error = fmt::format("pipe: {}", std::strerror(errno));
    for (int fd : {in[0], in[1], out[0], out[1]}) ::close(fd);
    return -1;
  }
  os::ChildSpec spec(argv.front(), argv);
  spec.stdin_fd = in[0];
  spec.stdout_fd = out[1];
  spec.stderr_fd = err[1];
  spec.reset_signals = true;
  const os::StartedChild child = os::start_child(spec);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (child.error != 0) {
    int ignored = 0;
    while (child.pid > 0 && ::waitpid(child.pid, &ignored, 0) < 0 && errno == EINTR) {
    }
    r.error = fmt::format("cannot run: {}", std::strerror(child.error));
    for (int fd : {in[1], out[0], err[0]}) ::close(fd);
    return -1;
  }
  fds[0] = in[1];
  fds[1] = out[0];
  fds[2] = err[0];
  return child.pid;
}

}  // namespace

CommandResult CommandRunner::run(const Command& c) {
  CommandResult r;
  int fds[3];
  const pid_t pid = start_command(c.argv, fds, r);
  if (pid < 0) return r;
  set_running(pid);
  exchange(pid, fds, c.input, r);
  reap(pid, r);
  return r;
}

void CommandRunner::exchange(int pid, const int (&pipes)[3], const std::string& input,
                             CommandResult& r) {
  // Feed its input, collect both outputs, until they close or the time is up.
  for (int fd : pipes) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  int in_fd = pipes[0];
  size_t written = 0;
  if (input.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  int open_outputs = 2;
  pollfd fds[3] = {{pipes[1], POLLIN, 0}, {pipes[2], POLLIN, 0}, {in_fd, POLLOUT, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  const Time deadline = clock_.now() + timeout_;
  while (open_outputs > 0) {
    const Duration left = deadline - clock_.now();
    if (left <= Duration{0}) {
      ::kill(pid, SIGKILL);
      r.error = fmt::format("timed out after {}", format_duration(timeout_));
      break;
    }
    fds[2].fd = in_fd;
    const int ms = static_cast<int>(std::min<int64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(left).count() + 1, 60'000));
    if (::poll(fds, 3, ms) < 0) {
      if (errno == EINTR) continue;
      ::kill(pid, SIGKILL);
      r.error = fmt::format("poll: {}", std::strerror(errno));
      break;
    }
    if (in_fd >= 0 && fds[2].revents != 0) {
      const ssize_t n = ::write(in_fd, input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (written == input.size() || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        ::close(in_fd);
        in_fd = -1;
      }
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_outputs;
      }
    }
  }
  if (in_fd >= 0) ::close(in_fd);
  for (int i = 0; i < 2; ++i) {
    if (fds[i].fd >= 0) ::close(fds[i].fd);
  }
}

void CommandRunner::reap(int pid, CommandResult& r) {
  // Wait for the exit without reaping, so that close() never signals a recycled pid.
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
  }
  int status = 0;
  {
    std::lock_guard lock(mu_);
    running_pid_ = -1;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (WIFEXITED(status)) {
    r.status = WEXITSTATUS(status);
  } else if (r.error.empty() && WIFSIGNALED(status)) {
    r.error = fmt::format("killed by signal {}", WTERMSIG(status));
  }
}

// ---------------------------------------------------------------------------------------------
struct SlurmBackend::Job {
  explicit Job(Launch l) : launch(std::move(l)) {}
  Launch launch;
  uint64_t id = 0;           // the Slurm job id; 0 while sbatch runs
  uint64_t known_after = 0;  // a squeue with a larger sequence number must list it
  Time since{};              // submitted (or adopted): pending time counts from here
  std::string node;          // batch host, once running
  std::optional<uint16_t> port;
  std::shared_ptr<Watch> watch;
  bool ended = false;  // failed or stopped: nothing more is reported
};

SlurmBackend::SlurmBackend(std::shared_ptr<Core> core)
    : core_(std::move(core)), runner_(core_->clock, 30s), poll_timer_(core_->strand) {}

SlurmBackend::~SlurmBackend() = default;

template <class F>
uint64_t SlurmBackend::run(std::vector<std::string> argv, std::string input, F f) {
  return runner_.submit(std::move(argv), std::move(input),
                        [core = core_, weak = weak_from_this(), f = std::move(f)](CommandResult r) {
                          asio::post(core->strand, [core, weak, f, r = std::move(r)]() mutable {
                            auto self = weak.lock();
                            if (self && !core->closed) f(*self, std::move(r));
                          });
                        });
}

void SlurmBackend::log_once(std::string message) {
  if (message == last_log_) return;
  std::fprintf(stderr, "tide: slurm: %s\n", message.c_str());
  last_log_ = std::move(message);
}

void SlurmBackend::launch(Launch l) {
  if (core_->closed) return;
  auto fail_now = [&](std::string error) {
    l.events->on_replica_failed(l.id, core_->clock.now(), std::move(error));
  };
  if (shutting_down_) return fail_now("provisioner is shutting down");
  if (jobs_.count(l.key)) return;  // launched twice: keep the first
  if (l.spec.command.empty())
    return fail_now("provisioner.command is empty: nothing to run (kind slurm)");
  std::string script = slurm_batch_script(l.id, l.name, l.spec.command);
  std::vector<std::string> argv = sbatch_argv(l.spec.slurm, "tide:" + l.name);
  auto job = std::make_shared<Job>(std::move(l));
  job->since = core_->clock.now();
  jobs_[job->launch.key] = job;
  ++commands_in_flight_;
  job->known_after =
      run(std::move(argv), std::move(script),
          [job](SlurmBackend& self, CommandResult r) { self.on_submitted(job, std::move(r)); });
}

void SlurmBackend::on_submitted(const std::shared_ptr<Job>& job, CommandResult r) {
  --commands_in_flight_;
  const auto id = r.status == 0 ? parse_sbatch_output(r.out) : std::nullopt;
  if (!id) {
    if (r.status == 0) r.error = fmt::format("no job id in its answer \"{}\"", trimmed(r.out));
    fail(job, r.describe("sbatch"), false);
  } else {
    job->id = *id;
    if (job->ended) {  // stopped while sbatch ran
      cancel(*id);
    } else {
      job->launch.events->on_replica_handle(job->launch.id, slurm_handle(*id));
      job->launch.events->on_replica_starting(job->launch.id, core_->clock.now());
      schedule_poll();
    }
  }
  command_done();
}

void SlurmBackend::adopt(Launch l, uint64_t id) {
  if (core_->closed) return;
  if (shutting_down_) {
    l.events->on_replica_failed(l.id, core_->clock.now(), "provisioner is shutting down");
    return;
  }
  if (jobs_.count(l.key)) return;
  auto job = std::make_shared<Job>(std::move(l));
  job->id = id;
  job->since = core_->clock.now();
  jobs_[job->launch.key] = job;
  job->launch.events->on_replica_starting(job->launch.id, job->since);
  schedule_poll();
}

void SlurmBackend::schedule_poll() {
  if (poll_scheduled_ || poll_running_ || jobs_.empty() || core_->closed) return;
  Duration interval = Duration::max();
  for (const auto& [key, job] : jobs_)
    interval = std::min(interval, job->launch.spec.slurm.poll_interval);
  poll_scheduled_ = true;
  poll_timer_.expires_after(interval);
  poll_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
    self->poll_scheduled_ = false;
    if (!ec) self->poll();
  });
}

void SlurmBackend::poll() {
  if (jobs_.empty() || core_->closed) return;
  poll_running_ = true;
  run({"squeue", "--noheader", "--me", "--states=all", "--format", std::string(kSqueueFormat)}, "",
      [](SlurmBackend& self, CommandResult r) { self.on_squeue(std::move(r)); });
}

void SlurmBackend::on_squeue(CommandResult r) {
  poll_running_ = false;
  if (r.status != 0) {
    // The controller may be restarting: keep the jobs, ask again.
    log_once(r.describe("squeue") + " (jobs are kept; asking again)");
    schedule_poll();
    return;
  }
  std::unordered_map<uint64_t, SqueueRow> rows;
  for (SqueueRow& row : parse_squeue(r.out)) rows.emplace(row.job, std::move(row));
  std::vector<std::shared_ptr<Job>> jobs;
  for (const auto& [key, job] : jobs_) jobs.push_back(job);
  for (const auto& job : jobs) {
    if (job->ended || job->id == 0 || job->known_after >= r.seq) continue;
    auto it = rows.find(job->id);
    if (it == rows.end()) {
      fail(job,
           fmt::format("job {} is no longer in Slurm's queue (ended and purged, or lost by the "
                       "controller)",
                       job->id),
           false);
    } else {
      follow(job, it->second);
    }
  }
  schedule_poll();
}

void SlurmBackend::follow(const std::shared_ptr<Job>& job, const SqueueRow& row) {
  const Time now = core_->clock.now();
  const Duration pending_timeout = job->launch.spec.pending_timeout;
  switch (job_phase(row.state)) {
    case JobPhase::kQueued:
      if (pending_timeout > Duration{0} && now - job->since >= pending_timeout) {
        fail(job,
             fmt::format("no capacity: job {} still {} after {} ({})", job->id, row.state,
                         format_duration(pending_timeout), row.reason),
             true);
      }
      return;
    case JobPhase::kStarted:
      if (job->watch || row.node.empty() || !row.port) return;  // probing, or no port yet
      job->node = row.node;
      job->port = row.port;
      if (node_addr_.count(row.node)) {
        start_probe(job);
      } else {
        lookup_node(row.node);
      }
      return;
    case JobPhase::kEnded: {
      // A job still COMPLETING has not told its final state yet, but it serves no more.
      std::string why = row.state == "COMPLETING"
                            ? fmt::format("job {} is ending (COMPLETING)", job->id)
                            : fmt::format("job {} {}", job->id, row.state);
      if (!row.reason.empty() && row.reason != "None") why += fmt::format(" ({})", row.reason);
      if (std::string tail = output_tail(*job); !tail.empty()) why += ": " + tail;
      fail(job, std::move(why), false);
      return;
    }
  }
}

void SlurmBackend::lookup_node(const std::string& node) {
  if (node_lookups_.count(node)) return;
  node_lookups_[node] = true;
  run({"sinfo", "--noheader", "--Node", "--nodes", node, "--format", std::string(kSinfoFormat)}, "",
      [node](SlurmBackend& self, CommandResult r) {
        self.node_lookups_.erase(node);
        for (auto& [name, addr] : parse_sinfo_nodes(r.out)) self.node_addr_[name] = addr;
        if (!self.node_addr_.count(node)) {
          // Fall back to the node's name: the cluster's DNS usually knows it.
          self.log_once(fmt::format("no NodeAddr for node {} ({}); probing it by name", node,
                                    r.status == 0 ? "sinfo listed none" : r.describe("sinfo")));
          self.node_addr_[node] = node;
        }
        std::vector<std::shared_ptr<Job>> waiting;
        for (const auto& [key, job] : self.jobs_) {
          if (!job->watch && job->node == node && job->port) waiting.push_back(job);
        }
        for (const auto& job : waiting) self.start_probe(job);
      });
}

void SlurmBackend::start_probe(const std::shared_ptr<Job>& job) {
  const std::string& host = node_addr_.at(job->node);
  const std::string address = net::join_host_port(host, *job->port);
  ProbeTarget target{host, *job->port, job->launch.spec.ready, core_->options.liveness_interval,
                     core_->options.liveness_failures};
  job->watch = std::make_shared<Watch>(core_->strand, std::move(target));
  read_engine_metrics(*job->watch, job->launch, core_);
  std::weak_ptr<SlurmBackend> weak_self = weak_from_this();
  std::weak_ptr<Job> weak_job = job;
  job->watch->start(
      [weak_self, weak_job, address] {
        auto self = weak_self.lock();
        auto j = weak_job.lock();
        if (!self || !j || j->ended || self->core_->closed) return;
        j->launch.events->on_replica_ready(j->launch.id, self->core_->clock.now(), address);
      },
      [weak_self, weak_job, address](std::string why) {
        auto self = weak_self.lock();
        auto j = weak_job.lock();
        if (!self || !j) return;
        self->fail(j, fmt::format("job {} at {}: {}", j->id, address, why), true);
      });
}

void SlurmBackend::fail(const std::shared_ptr<Job>& job, std::string error, bool cancel_job) {
  if (job->ended) return;
  forget(job);
  if (cancel_job && job->id != 0) cancel(job->id);
  if (!core_->closed)
    job->launch.events->on_replica_failed(job->launch.id, core_->clock.now(), std::move(error));
}

void SlurmBackend::forget(const std::shared_ptr<Job>& job) {
  job->ended = true;
  if (job->watch) job->watch->cancel();
  if (auto it = jobs_.find(job->launch.key); it != jobs_.end() && it->second == job)
    jobs_.erase(it);
}

void SlurmBackend::cancel(uint64_t id, int attempt) {
  ++commands_in_flight_;
  run({"scancel", std::to_string(id)}, "", [id, attempt](SlurmBackend& self, CommandResult r) {
    --self.commands_in_flight_;
    if (r.status != 0 && !scancel_found_nothing(r.err)) {
      if (attempt < kCancelAttempts) {
        ++self.commands_in_flight_;
        auto timer = std::make_shared<asio::steady_timer>(self.core_->strand, kCancelRetry);
        timer->async_wait(
            [backend = self.shared_from_this(), timer, id, attempt](const error_code&) {
              --backend->commands_in_flight_;
              backend->cancel(id, attempt + 1);
            });
        return;
      }
      self.log_once(fmt::format("job {} could not be cancelled: {}", id, r.describe("scancel")));
    }
    self.command_done();
  });
}

void SlurmBackend::command_done() {
  if (!shutting_down_ || commands_in_flight_ > 0) return;
  auto done = std::move(shutdown_done_);
  shutdown_done_.clear();
  for (auto& d : done) d();
}

void SlurmBackend::stop(const std::string& key) {
  auto it = jobs_.find(key);
  if (it == jobs_.end()) return;
  std::shared_ptr<Job> job = it->second;
  forget(job);
  if (job->id != 0) cancel(job->id);  // else on_submitted cancels it
}

void SlurmBackend::shutdown(std::function<void()> done) {
  shutting_down_ = true;
  shutdown_done_.push_back(std::move(done));
  std::vector<std::string> keys;
  for (const auto& [key, job] : jobs_) keys.push_back(key);
  for (const auto& key : keys) stop(key);
  command_done();
}

void SlurmBackend::close() {
  runner_.close();
  asio::post(core_->strand, [self = shared_from_this()] {
    for (auto& [key, job] : self->jobs_) {
      if (job->watch) job->watch->cancel();
    }
    self->jobs_.clear();
    self->poll_timer_.cancel();
  });
}

std::string SlurmBackend::output_tail(const Job& job) const {
  const std::string& pattern = job.launch.spec.slurm.output;
  if (pattern.empty()) return "";
  std::ifstream f(replace_all(pattern, "%j", std::to_string(job.id)), std::ios::binary);
  if (!f) return "";
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  const std::streamoff from = std::max<std::streamoff>(0, size - kOutputTailBytes);
  f.seekg(from);
  std::string text(static_cast<size_t>(size - from), '\0');
  f.read(text.data(), static_cast<std::streamsize>(text.size()));
  return last_lines(text);
}

}  // namespace tide::provision::detail
