// Removing a command's temporary files when it is interrupted (SIGINT, SIGTERM, SIGHUP), and
// sweeping the ones a killed run left behind.
//
//   HOIST_RETURN_IF_ERROR(InstallSignalCleanup());
//   RemoveOnSignal(temp);                       // before (or right after) creating it
//   ... write temp ...
//   HOIST_RETURN_IF_ERROR(RenameRegistered(temp, final));  // no cleanup between the two
//
// How: the signal handler only writes the signal number to a self-pipe. A watcher thread reads
// it, removes every registered path (a directory with all it holds) under the registry's lock,
// then restores the default action and raises the signal again, so the process ends the
// conventional way (a shell sees 128+N). The lock is also held by RenameRegistered and
// KeepOnSignal, so a commit happens entirely before or entirely after the cleanup.
// A second signal during the cleanup waits for it (the handler is still installed).
//
// Stale sweep: temporary names carry the creating PID. SweepStale removes the entries of a
// directory named PREFIX<pid>, PREFIX<pid>-... or PREFIX<pid>.... whose <pid> is not a live process
// (kill(pid, 0) fails with ESRCH); a live process's files, this process's own, and names without a
// PID are left alone. A PID reused by an unrelated live process only delays the sweep.
//
// Thread-safety: every function may be called from any thread. InstallSignalCleanup is
// idempotent. Errors: the OS errno (pipe, sigaction, rename).
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace hoist {

// Installs the handlers for SIGINT, SIGTERM and SIGHUP and starts the watcher (once).
[[nodiscard]] Status InstallSignalCleanup();

// Registers `path` (file or directory) for removal on a signal; KeepOnSignal forgets it.
void RemoveOnSignal(const std::string& path);
void KeepOnSignal(const std::string& path);

// rename(from, to), then forgets `from`, with the cleanup held off in between.
[[nodiscard]] Status RenameRegistered(const std::string& from, const std::string& to);

// Removes DIR/PREFIX<pid>... entries of dead processes (see above). Returns how many went.
int SweepStale(const std::string& dir, std::string_view prefix);

}  // namespace hoist
