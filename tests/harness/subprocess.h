// Running real tools from tests: one-shot commands with captured output (RunCommand) and
// long-running children such as a registry or a token server (ChildProcess).
//
// Both start the program with execvp (PATH lookup) in its own process group, with every other
// descriptor of the test process closed (all pipes are O_CLOEXEC). A timed-out command is killed
// with SIGKILL sent to its whole process group, so helpers it started die too.
//
// Thread-safety: RunCommand may be called from several threads at once. A ChildProcess object
// is used from one thread at a time.
// Errors: a Result error means the program could not be run at all (fork/exec/pipe failure or
// "not found in PATH": ENOENT). A program that ran and failed is a CommandResult with ok() false;
// RunChecked turns that into an error whose message holds the command and its stderr.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace hoist::harness {

struct CommandOptions {
  // Killed (SIGKILL to the process group) when it runs longer; CommandResult::timed_out is set.
  std::chrono::milliseconds timeout{std::chrono::seconds(120)};
  // Data written to the child's stdin (ignored when stdin_path is set). Empty: /dev/null.
  std::string stdin_data;
  // Files to connect instead of pipes (stdout_path is created/truncated).
  std::string stdin_path;
  std::string stdout_path;
  // Extra environment entries "KEY=VALUE", added to (or overriding) the test's environment.
  std::vector<std::string> env;
  // Working directory of the child; empty: the test's.
  std::string cwd;
};

struct CommandResult {
  int exit_code = -1;   // valid when term_signal == 0 and !timed_out
  int term_signal = 0;  // the signal that ended the child, or 0
  bool timed_out = false;
  std::string stdout_text;  // empty when CommandOptions::stdout_path was given
  std::string stderr_text;

  bool ok() const { return !timed_out && term_signal == 0 && exit_code == 0; }
  // "exit 1", "killed by signal 9", "timed out".
  std::string Describe() const;
};

// Runs argv[0] (PATH lookup) with the arguments, waits for it, returns what happened.
[[nodiscard]] Result<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                               const CommandOptions& options = {});

// RunCommand for tests that assert on the outcome: a program that could not be run at all comes
// back as a CommandResult with exit_code -1 and the reason in stderr_text, so ok() is false and
// the reason shows in the test's failure message.
CommandResult RunForResult(const std::vector<std::string>& argv,
                           const CommandOptions& options = {});

// Like RunCommand, but a non-zero exit, a signal or a timeout is an error (EIO, or ETIMEDOUT)
// whose one-line message names the command and quotes the last line(s) of its stderr.
// Returns the captured stdout.
[[nodiscard]] Result<std::string> RunChecked(const std::vector<std::string>& argv,
                                             const CommandOptions& options = {});

// Whether `program` is found in PATH (or is an existing executable path).
bool HaveProgram(const std::string& program);

// Returns an error (ENOENT) naming the first program in `programs` that is not installed and
// telling to run scripts/setup.sh. Tests use it to FAIL loudly rather than skip.
[[nodiscard]] Status RequirePrograms(const std::vector<std::string>& programs);

// A long-running child process, owned: the destructor terminates it (SIGTERM, then SIGKILL after
// the grace period) and reaps it. Move-only.
class ChildProcess {
 public:
  struct Options {
    // stdout and stderr are appended to these files (O_APPEND; may be the same path).
    std::string stdout_path = "/dev/null";
    std::string stderr_path = "/dev/null";
    std::vector<std::string> env;  // extra "KEY=VALUE"
    std::string cwd;
    // PR_SET_PDEATHSIG(SIGKILL): the child dies if the *thread* that started it exits, so a
    // crashed test leaves no registry behind. Start children from a long-lived thread.
    bool die_with_parent = true;
  };

  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  [[nodiscard]] static Result<ChildProcess> Start(const std::vector<std::string>& argv,
                                                  const Options& options);

  pid_t pid() const { return pid_; }
  // True while the child has not exited (reaps it if it has).
  bool Running();
  // The wait status once the child has exited and been reaped.
  std::optional<int> wait_status() const { return wait_status_; }
  // SIGTERM, wait up to `grace`, then SIGKILL the process group; always reaps. Idempotent.
  void Terminate(std::chrono::milliseconds grace = std::chrono::seconds(5));
  // SIGKILL without grace (a crash, as seen by clients).
  void Kill() { Terminate(std::chrono::milliseconds(0)); }

 private:
  pid_t pid_ = -1;
  std::optional<int> wait_status_;
};

}  // namespace hoist::harness
