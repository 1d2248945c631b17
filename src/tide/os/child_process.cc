#include "tide/os/child_process.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

extern char** environ;

namespace tide::os {
namespace {

bool executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// Between fork and exec: async-signal-safe calls only.
int move_fd(int from, int to) {
  if (from == to) return ::fcntl(to, F_SETFD, 0);  // keep it open across exec
  return ::dup2(from, to);
}

[[noreturn]] void report_and_exit(int status_fd, int err) {
  ssize_t ignored = ::write(status_fd, &err, sizeof err);
  (void)ignored;
  ::_exit(127);
}

[[noreturn]] void exec_child(const ChildSpec& spec, const char* path, char* const* argv,
                             char* const* envp, int status_fd, pid_t parent) {
  if (spec.reset_signals) {
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; ++s) {
      if (s != SIGKILL && s != SIGSTOP) ::sigaction(s, &dfl, nullptr);  // undo inherited SIG_IGN
    }
  }
  if (spec.own_process_group && ::setpgid(0, 0) != 0) report_and_exit(status_fd, errno);
  if (spec.die_with_parent) {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) report_and_exit(status_fd, errno);
    if (::getppid() != parent) ::_exit(127);  // the parent died before PDEATHSIG was armed
  }
  const int fds[3] = {spec.stdin_fd, spec.stdout_fd, spec.stderr_fd};
  for (int to = 0; to < 3; ++to) {
    if (fds[to] >= 0 && move_fd(fds[to], to) < 0) report_and_exit(status_fd, errno);
  }
  if (spec.close_other_fds) ::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  if (path == nullptr) report_and_exit(status_fd, ENOENT);
  ::execve(path, argv, envp);
  report_and_exit(status_fd, errno);
}

// Reads the child's report: EOF when the exec succeeded, else the errno of the failed step.
int read_child_errno(int status_fd) {
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(status_fd, &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof child_errno) ? child_errno : 0;
}

}  // namespace

std::optional<std::string> resolve_program(const std::string& program,
                                           const std::string& path_var) {
  if (program.find('/') != std::string::npos) return program;
  std::string_view dirs = path_var;
  while (true) {
    const size_t colon = dirs.find(':');
    const std::string_view dir = dirs.substr(0, colon);
    std::string candidate(dir.empty() ? std::string_view(".") : dir);
    candidate += '/';
    candidate += program;
    if (executable_file(candidate)) return candidate;
    if (colon == std::string_view::npos) break;
    dirs.remove_prefix(colon + 1);
  }
  return std::nullopt;
}

StartedChild start_child(const ChildSpec& spec) {
  const char* path_env = std::getenv("PATH");
  // Not found: the child reports ENOENT, as execvp would.
  const auto path = resolve_program(spec.program, path_env ? path_env : "/bin:/usr/bin");
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (spec.env) {
    for (const auto& e : *spec.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
  }
  int status[2];
  if (::pipe2(status, O_CLOEXEC) != 0) return {-1, errno, "pipe"};
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0)
    exec_child(spec, path ? path->c_str() : nullptr, argv.data(), spec.env ? envp.data() : environ,
               status[1], parent);
  const int fork_errno = errno;
  ::close(status[1]);
  if (pid < 0) {
    ::close(status[0]);
    return {-1, fork_errno, "fork"};
  }
  if (spec.own_process_group) ::setpgid(pid, pid);  // the child does it too; whichever is first
  const int child_errno = read_child_errno(status[0]);
  ::close(status[0]);
  return {pid, child_errno, child_errno != 0 ? "exec" : ""};
}

}  // namespace tide::os
