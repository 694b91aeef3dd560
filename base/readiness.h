// The readiness protocol of hoist's forking daemons (hoistfs, hoist-store): the command forks at
// once (before any thread exists); the child detaches and, once it serves, writes "ready\n" --
// or its one-line error -- to a pipe; the parent exits 0, or prints the child's error and exits
// 1, so `hoistfs IMG /mnt && ls /mnt` works. Warning lines the child wants the caller to see
// come before "ready\n".
//
// Thread-safety: AwaitReadiness and DetachFromCaller belong to a process with one thread (right
// after fork); TellReadiness is reentrant.
// Errors: none returned; what goes wrong is what the parent prints.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace hoist {

inline constexpr char kReadyLine[] = "ready\n";

// Parent side: reads `fd` to EOF (then closes it). "ready\n", alone or after warning lines
// (printed to stderr), gives 0. Otherwise the child's lines are printed, or, when it wrote
// nothing, one line "<program>: the daemon died (signal N) / exited before <what> was ready";
// 1.
int AwaitReadiness(int fd, pid_t child, std::string_view program, std::string_view what);

// Child side: a new session, stdin and stdout on /dev/null, stderr on `log_file` (appended) or
// /dev/null.
void DetachFromCaller(const std::string& log_file);

// The whole fork: makes the pipe and forks. In the parent, waits (AwaitReadiness) and returns
// the exit code the command should exit with (1 also when pipe or fork fail, with one line). In
// the child, detaches (DetachFromCaller), sets *ready_fd to the pipe's write end and returns
// nullopt: the child goes on to serve.
std::optional<int> ForkAwaitingReady(std::string_view program, std::string_view what,
                                     const std::string& log_file, int* ready_fd);

// Writes `line` to the readiness pipe `fd`; without a pipe (fd < 0: the foreground), prints it
// to stderr unless it is the ready line. A parent that is gone is nobody to tell: a failed write
// is dropped on purpose.
void TellReadiness(int fd, std::string_view line);

}  // namespace hoist
