// hoist's own supervisor: what keeps a FUSE mount alive across a crash or an upgrade of its
// daemon when systemd is not there to do it. A FUSE mount dies (ENOTCONN) when the last fd of
// its /dev/fuse connection closes; the worker (hoistfs) stores that fd here with systemd's fd
// store protocol (base/fd_store.h), and the supervisor hands it to the next worker.
//
// RunSupervisor starts the worker (argv[0] exec'd anew at every start), then loops on one thread
// (signalfd + the notify socket in poll()):
//   - notifications, accepted only from the current worker or the one upgrading it (sender pid
//     from SO_PASSCRED): READY=1, STATUS= (logged), FDSTORE=1 + FDNAME= with fds (replaces
//     the set of that name; at most 64 fds in all), FDSTOREREMOVE=1 + FDNAME=;
//   - a worker exiting 0: the service ended (unmounted, or SIGTERM handled): exit 0;
//   - a worker killed or exiting non-zero: restarted at once with the stored fds; given up on
//     (exit 1) when nothing is stored, or after max_quick_failures workers in a row died before
//     READY=1. Giving up lazily unmounts cleanup_mountpoint (never a hung mount);
//   - the first worker ending before READY=1 is not restarted: the supervisor exits with its
//     code (1 if killed); the original parent sees that on its readiness pipe;
//   - SIGTERM, SIGINT, SIGHUP: SIGTERM to the worker(s); exit with the worker's code once gone;
//   - SIGUSR2: upgrade: a new worker (the binary at argv[0] now) with the stored fds and
//     HOIST_PREVIOUS_PID; once it sends READY=1 the old one gets SIGUSR1 (finish what it holds,
//     exit 0 without unmounting). A new worker ending before READY=1 leaves the old serving.
// Before the first worker it forks a reaper (tools/supervisor/reaper.h) that lazily unmounts a
// dead mount if the supervisor and every worker are killed.
// The worker's side of the environment protocol: tools/supervisor/worker_env.h.
//
// Thread-safety: call from a process that has one thread (it forks, blocks signals, and owns
// SIGCHLD: it reaps every child of the process). It blocks SIGCHLD, SIGTERM, SIGINT, SIGHUP,
// SIGUSR2 and SIGPIPE while it runs and restores the mask on return.
// Errors: none returned; they are logged (HOIST_LOG, prefixed with `name`) and become the exit
// code. A failure before the first worker runs is also written to ready_fd as one line.
#pragma once

#include <string>
#include <vector>

namespace hoist {

struct SupervisorOptions {
  // argv[0]: an absolute path, exec'd anew at every start, so an upgrade picks up a binary
  // replaced at that path.
  std::vector<std::string> worker_argv;
  // Extra KEY=VALUE for workers, on top of this process's environment.
  std::vector<std::string> worker_env;
  // The original parent's readiness pipe (write end), or -1. Owned by the supervisor from the
  // call on: passed to the first worker as HOIST_READY_FD, then closed here.
  int ready_fd = -1;
  // Absolute; unmounted (MNT_DETACH) when the supervisor gives up, or when it or the reaper
  // finds it dead (ENOTCONN). Empty: none.
  std::string cleanup_mountpoint;
  // The log prefix, the notify socket's name hint and the reaper's process name ("<name>-reaper").
  std::string name = "hoistfs";
  // Workers in a row that may die before READY=1 before the supervisor gives up (at least 1).
  int max_quick_failures = 3;
};

// Blocks until the supervised service ends; returns the supervisor's exit code: 0 when the
// worker ended the service, the worker's code on SIGTERM or when the first worker failed, 1 when
// the supervisor gave up.
int RunSupervisor(const SupervisorOptions& options);

}  // namespace hoist
