#include "tide/os/child_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace tide::os {
namespace {

// Runs `spec` with its stdout into a pipe; returns what it wrote and sets its wait status.
std::string output_of(ChildSpec spec, int& status) {
  int out[2];
  EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
  spec.stdout_fd = out[1];
  const StartedChild c = start_child(spec);
  ::close(out[1]);
  EXPECT_GT(c.pid, 0);
  EXPECT_EQ(c.error, 0) << c.step;
  std::string text;
  char buf[256];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) text.append(buf, size_t(n));
  ::close(out[0]);
  EXPECT_EQ(::waitpid(c.pid, &status, 0), c.pid);
  return text;
}

TEST(ResolveProgram, LooksInEachDirectoryOfPath) {
  EXPECT_EQ(resolve_program("./x", "/nowhere"), "./x");  // a slash: as it is
  EXPECT_EQ(resolve_program("sh", "/nowhere:/bin"), "/bin/sh");
  EXPECT_FALSE(resolve_program("no-such-program-of-tide", "/bin:/usr/bin"));
}

TEST(StartChild, RunsAProgramFoundInPathWithItsOutputRedirected) {
  int status = 0;
  EXPECT_EQ(output_of(ChildSpec("sh", {"sh", "-c", "echo hello"}), status), "hello\n");
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(StartChild, GivesTheEnvironmentAsked) {
  int status = 0;
  ChildSpec spec("/bin/sh", {"sh", "-c", "echo \"$A,$HOME\""});
  spec.env = std::vector<std::string>{"A=1"};
  EXPECT_EQ(output_of(spec, status), "1,\n");
}

// As execvp: the child exits 127 and the parent learns why.
void expect_exec_failure(const ChildSpec& spec, int error) {
  const StartedChild c = start_child(spec);
  ASSERT_GT(c.pid, 0);
  EXPECT_EQ(c.error, error);
  EXPECT_STREQ(c.step, "exec");
  int status = 0;
  ASSERT_EQ(::waitpid(c.pid, &status, 0), c.pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 127);
}

TEST(StartChild, AProgramNotFoundIsReportedAndTheChildExits127) {
  expect_exec_failure(ChildSpec("no-such-program-of-tide", {"x"}), ENOENT);
}

TEST(StartChild, AFailedExecIsReportedAndTheChildExits127) {
  expect_exec_failure(ChildSpec("/dev/null", {"null"}), EACCES);
}

TEST(StartChild, LeadsAProcessGroupOfItsOwnWithSignalsReset) {
  // Ignored and blocked here; the child must see neither.
  signal(SIGUSR1, SIG_IGN);
  sigset_t usr2;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  sigprocmask(SIG_BLOCK, &usr2, nullptr);
  int in[2];
  ASSERT_EQ(::pipe2(in, O_CLOEXEC), 0);
  ChildSpec spec("sh", {"sh", "-c", "read line"});
  spec.stdin_fd = in[0];
  spec.reset_signals = true;
  spec.own_process_group = true;
  const StartedChild c = start_child(spec);
  ::close(in[0]);
  ASSERT_GT(c.pid, 0);
  EXPECT_EQ(::getpgid(c.pid), c.pid);     // set by the parent too, before start_child returns
  ASSERT_EQ(::kill(-c.pid, SIGUSR1), 0);  // default action: terminate
  int status = 0;
  ASSERT_EQ(::waitpid(c.pid, &status, 0), c.pid);
  ::close(in[1]);
  signal(SIGUSR1, SIG_DFL);
  sigprocmask(SIG_UNBLOCK, &usr2, nullptr);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGUSR1);
}

TEST(StartChild, ClosesOtherDescriptorsWhenAsked) {
  const int fd = ::open("/dev/null", O_RDONLY);  // not close-on-exec
  ASSERT_GE(fd, 3);
  const std::string probe = "test -e /proc/self/fd/" + std::to_string(fd) + " && echo open";
  int status = 0;
  EXPECT_EQ(output_of(ChildSpec("sh", {"sh", "-c", probe}), status), "open\n");
  ChildSpec closing("sh", {"sh", "-c", probe + " || echo closed"});
  closing.close_other_fds = true;
  EXPECT_EQ(output_of(closing, status), "closed\n");
  ::close(fd);
}

}  // namespace
}  // namespace tide::os
