// SpawnWorker: how the supervisor starts one worker. fork + execve of argv[0] (an absolute path,
// read from disk at every start, so an upgrade runs the binary there now), with:
//   - the stored fds as fds 3, 4, ... and LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID (the
//     child's own pid, written in the child between fork and exec) when there are any;
//   - then the readiness pipe (first worker only) and the lifeline, inherited (not
//     close-on-exec), named by HOIST_READY_FD and HOIST_LIFELINE_FD
//     (tools/supervisor/worker_env.h);
//   - no other fd above 2, an empty signal mask;
//   - the environment given (the caller builds it: WorkerEnvironment).
// fork without exec in between is fine only because the supervisor is single-threaded.
//
// Thread-safety: call from a single-threaded process (fork).
// Errors: a worker that cannot be started (fork fails, execve fails: missing, not executable)
// is an error value naming the program, "/usr/bin/hoistfs: No such file or directory"; the
// failed child has then already been reaped.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/status.h"

namespace hoist {

struct WorkerSpec {
  std::vector<std::string> argv;          // argv[0]: absolute path
  std::vector<std::string> env;           // KEY=VALUE; LISTEN_* and HOIST_*_FD in it are replaced
  std::vector<int> listen_fds;            // become 3, 4, ...
  std::vector<std::string> listen_names;  // one per listen fd
  int ready_fd = -1;                      // -1: none
  int lifeline_fd = -1;                   // -1: none
};

[[nodiscard]] Result<pid_t> SpawnWorker(const WorkerSpec& spec);

// `base` (KEY=VALUE each, e.g. the supervisor's environ) with every variable of `overrides`
// replacing one of the same name, and the variables of the worker protocol (LISTEN_PID,
// LISTEN_FDS, LISTEN_FDNAMES, NOTIFY_SOCKET and the HOIST_* of worker_env.h) removed from `base`
// first: a supervisor started under systemd must not pass its own on.
std::vector<std::string> WorkerEnvironment(const std::vector<std::string>& base,
                                           const std::vector<std::string>& overrides);

}  // namespace hoist
