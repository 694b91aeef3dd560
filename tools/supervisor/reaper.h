// The reaper: the last line of defence against a dead mount when the supervisor itself dies
// (kill -9, OOM). A tiny process forked before the first worker that holds only the read end of
// a "lifeline" pipe; the supervisor and every worker hold its write end (workers inherit it as
// HOIST_LIFELINE_FD). When the reaper reads end-of-file, all of them are gone: if the
// mountpoint is a dead FUSE mount (statfs fails with ENOTCONN) it is lazily unmounted with one log
// line; a mount that still answers, or none, is left alone. Then the reaper exits.
//
// UnmountIfDead is the same check, for the supervisor's own exit.
//
// Thread-safety: StartReaper forks without exec: call it while the process has one thread.
// Errors: StartReaper returns the errno of pipe or fork.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/scoped_fd.h"
#include "base/status.h"

namespace hoist {

struct Reaper {
  pid_t pid = -1;
  ScopedFd lifeline;  // the write end (close-on-exec): keep it open while workers may run
};

// `name`: the log prefix; the reaper's process name is "<name>-reaper" (at most 15 bytes kept).
// `mountpoint`: absolute, or empty for none (the reaper then only waits and exits).
[[nodiscard]] Result<Reaper> StartReaper(const std::string& name, const std::string& mountpoint);

// Lazily unmounts `mountpoint` if it is a dead FUSE mount (statfs: ENOTCONN, base/mountinfo.h
// IsDeadFuseMount), logging one line
// "<name>: <why>; lazily unmounted <mountpoint>". True if it did. Never stat a FUSE mount whose
// connection is still open but unserved with this: that stat would wait for a reply.
bool UnmountIfDead(const std::string& name, const std::string& mountpoint, const std::string& why);

}  // namespace hoist
