// The worker's side of hoist's supervisor (tools/supervisor/supervisor.h): the names of the
// variables the supervisor puts in each worker's environment, and the helpers a worker reads
// them with. Besides these, a worker sees NOTIFY_SOCKET (where READY=1, STATUS= and FDSTORE=1
// go: base/sd_notify.h, base/fd_store.h) and, when fds were stored, LISTEN_FDS, LISTEN_PID and
// LISTEN_FDNAMES (taken with TakeListenFds, base/fd_store.h).
//   HOIST_SUPERVISOR_PID  the supervisor's pid.
//   HOIST_READY_FD        the first worker only: the original parent's readiness pipe; write
//                         "ready\n" (or a one-line error) to it, then close it.
//   HOIST_LIFELINE_FD     every worker: the write end of the reaper's lifeline; keep it open
//                         for the worker's whole life, never write to it.
//   HOIST_PREVIOUS_PID    an upgrade only: the worker being replaced (alive, still serving
//                         until this one sends READY=1; it then gets SIGUSR1).
//
// Thread-safety: the helpers edit the environment (unsetenv): call them early, before threads.
// Errors: none; a variable that is unset or does not name an open fd (or a pid) gives -1 (0).
#pragma once

#include <sys/types.h>

namespace hoist {

inline constexpr char kEnvSupervisorPid[] = "HOIST_SUPERVISOR_PID";
inline constexpr char kEnvReadyFd[] = "HOIST_READY_FD";
inline constexpr char kEnvLifelineFd[] = "HOIST_LIFELINE_FD";
inline constexpr char kEnvPreviousPid[] = "HOIST_PREVIOUS_PID";

// The fd named by the variable `var` (HOIST_READY_FD, HOIST_LIFELINE_FD), now close-on-exec
// (the worker's own children do not inherit it); the variable is removed from the environment.
// The caller owns the fd. -1 when unset, malformed, or not an open fd.
int InheritedFdFromEnv(const char* var);

// The pid named by the variable `var` (HOIST_PREVIOUS_PID, HOIST_SUPERVISOR_PID); the
// variable is removed from the environment. 0 when unset or malformed.
pid_t InheritedPidFromEnv(const char* var);

}  // namespace hoist
