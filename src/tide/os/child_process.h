// The one seam between tide and the operating system for child processes (as LevelDB's Env is
// for files): how the local backend starts replicas, the Slurm backend runs sbatch/squeue/
// scancel, and the agent starts its model server. One fork/exec with every option a caller may
// need; signalling is ::kill (a pid or a process group), waiting is the caller's.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tide::os {

// Resolves a program name like execvp would (`path_var` being PATH): a name with a slash is
// returned as it is; nullopt if no directory holds an executable file of that name.
std::optional<std::string> resolve_program(const std::string& program, const std::string& path_var);

struct ChildSpec {
  ChildSpec(std::string program_, std::vector<std::string> argv_)
      : program(std::move(program_)), argv(std::move(argv_)) {}
  // The program: a path, or a name looked up in this process's PATH before the fork
  // (execvp's rule; /bin:/usr/bin without PATH).
  std::string program;
  std::vector<std::string> argv;
  std::optional<std::vector<std::string>> env;  // nullopt: this process's environment
  // Descriptors of this process that become the child's 0, 1 and 2 (-1: inherited as they are).
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  bool reset_signals = false;      // no blocked signal, every disposition back to SIG_DFL
  bool own_process_group = false;  // the child leads a new process group (pgid = pid)
  // PR_SET_PDEATHSIG SIGKILL: it dies with the *thread* that forked it; a child whose parent
  // died before this was armed exits (127) at once.
  bool die_with_parent = false;
  bool close_other_fds = false;  // every descriptor from 3 on closes at exec
};

struct StartedChild {
  // The child's pid; -1 if there is none (a pipe or the fork failed). Where the child's set-up
  // or exec failed (a program not found included) it has exited with status 127 and is not
  // reaped: the caller waits for it like for any other child.
  int pid = -1;
  int error = 0;          // errno of the step that failed; 0: the program runs
  const char* step = "";  // what failed: "fork", "pipe" or "exec" (set-up included); "" if nothing
};

// Forks and execs `spec`, and returns once the program runs (or failed to). Between the fork
// and the exec the child makes async-signal-safe calls only, so any thread may call this.
StartedChild start_child(const ChildSpec& spec);

}  // namespace tide::os
