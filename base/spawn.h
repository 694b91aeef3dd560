// Starting other programs: the one spawner of the project (credential helpers, the hoistfs
// daemon, the OCI runtime, fusermount3).
//
// Spawn() starts argv[0] with posix_spawn: glibc starts the child with clone(CLONE_VM|
// CLONE_VFORK), so nothing of a large multithreaded parent is copied and none of our code runs
// in the child. What the child gets:
//   - argv[0] as a path, or looked up in PATH (the caller's PATH) with SpawnOptions::search_path;
//   - each standard stream inherited, /dev/null, a descriptor of the caller's (dup'ed; the
//     caller keeps its own), or a pipe whose other end the caller gets in Process;
//   - no other descriptor: everything above 2 is closed in the child, close-on-exec or not;
//   - the environment given, or the caller's;
//   - an empty signal mask (or the one given) and SIGPIPE at its default action;
//   - optionally a new process group of its own (pgid == pid).
// A program that cannot be started (missing, not executable, out of processes) is an error
// value with the errno and a one-line message naming it: "runc: No such file or directory".
//
// RunAndCapture() spawns, feeds stdin, captures stdout/stderr (each up to a cap; the rest is read
// and dropped, so the child never blocks on a full pipe), optionally kills the child at a deadline,
// and waits.
//
// Thread-safety: Spawn and RunAndCapture may be called from any thread at once. A Process is used
// by one thread at a time. Process's destructor kills (SIGKILL) and reaps a child it has not
// reaped.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/scoped_fd.h"
#include "base/status.h"

namespace hoist {

// Where one standard stream of the child goes.
struct Stdio {
  enum class Kind { kInherit, kNull, kFd, kPipe, kCapture };
  Kind kind = Kind::kInherit;
  int fd = -1;  // kFd only

  static Stdio Inherit() { return {}; }
  static Stdio Null() { return {Kind::kNull, -1}; }
  // The caller's descriptor `fd` (it stays the caller's; the child gets a copy).
  static Stdio Fd(int fd) { return {Kind::kFd, fd}; }
  // A pipe; the caller's end is Process::stdin_pipe / stdout_pipe / stderr_pipe.
  static Stdio Pipe() { return {Kind::kPipe, -1}; }
  // RunAndCapture(): read into RunResult::stdout_text / stderr_text. Spawn(): the same as Pipe().
  static Stdio Capture() { return {Kind::kCapture, -1}; }
};

struct SpawnOptions {
  // Look argv[0] up in PATH when it has no '/' (as execvp does).
  bool search_path = false;
  Stdio stdin_to;
  Stdio stdout_to;
  Stdio stderr_to;
  // The child's whole environment ("KEY=VALUE" each); unset: the caller's.
  std::optional<std::vector<std::string>> env;
  // Put the child in a new process group of its own (pgid == its pid).
  bool new_process_group = false;
  // The child's signal mask; unset: empty.
  std::optional<sigset_t> signal_mask;
};

// How a child ended: an exit code, or the signal that killed it.
struct ExitStatus {
  int code = 0;    // when signal == 0
  int signal = 0;  // the terminating signal, or 0

  bool ok() const { return signal == 0 && code == 0; }
  // The shell's convention: the exit code, or 128 + N for death by signal N.
  int ShellCode() const { return signal != 0 ? 128 + signal : code; }
  // "exit 3", "killed by signal 9".
  std::string Describe() const;
  // From a waitpid() status.
  static ExitStatus FromWaitStatus(int status);
};

class Process {
 public:
  Process() = default;
  ~Process();
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // The child's pid; -1 once it has been reaped (or for a default-constructed Process).
  pid_t pid() const { return pid_; }
  const std::string& program() const { return program_; }

  // Blocks until the child exits and reaps it.
  [[nodiscard]] Result<ExitStatus> Wait();
  // Reaps the child if it has exited; nullopt while it runs.
  [[nodiscard]] Result<std::optional<ExitStatus>> TryWait();
  // Sends `sig` to the child (to its process group with `group`). A no-op once reaped.
  [[nodiscard]] Status Signal(int sig, bool group = false);

  // The caller's ends of Stdio::Pipe() / Capture() streams (invalid otherwise). Close
  // stdin_pipe to give the child end-of-file.
  ScopedFd stdin_pipe;
  ScopedFd stdout_pipe;
  ScopedFd stderr_pipe;

 private:
  friend Result<Process> Spawn(const std::vector<std::string>& argv, const SpawnOptions& options);
  void KillAndReap();

  pid_t pid_ = -1;
  std::string program_;
};

// Starts argv[0] with argv as its arguments. EINVAL for an empty argv.
[[nodiscard]] Result<Process> Spawn(const std::vector<std::string>& argv,
                                    const SpawnOptions& options = {});

struct RunOptions {
  // Written to the child's stdin (which must then be Stdio::Pipe()), which is then closed. A
  // child that exits without reading it is not an error (no SIGPIPE reaches the caller).
  std::string stdin_data;
  // Bytes kept of each captured stream; what comes after is read and dropped.
  size_t max_capture = 1 << 20;
  // Killed with SIGKILL (its process group too, with new_process_group) when it runs longer;
  // RunResult::timed_out is then set. Unset: no limit.
  std::optional<std::chrono::milliseconds> timeout;
};

struct RunResult {
  ExitStatus status;
  bool timed_out = false;
  std::string stdout_text;  // Stdio::Capture() only
  std::string stderr_text;
  bool stdout_truncated = false;  // more than max_capture bytes came
  bool stderr_truncated = false;
};

// Spawns, feeds RunOptions::stdin_data, captures, waits. Pipe() streams other than stdin are
// not allowed here (nobody would read them): EINVAL.
[[nodiscard]] Result<RunResult> RunAndCapture(const std::vector<std::string>& argv,
                                              const SpawnOptions& spawn,
                                              const RunOptions& run = {});

}  // namespace hoist
