#include "tools/supervisor/reaper.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "base/mountinfo.h"

namespace hoist {
namespace {

// The reaper's whole life, in the forked child.
[[noreturn]] void RunReaper(int lifeline_read, int lifeline_write, const std::string& name,
                            const std::string& mountpoint) {
  // Nothing of the parent's but the lifeline's read end and stdio: no fuse fd, no notify
  // socket, and above all not the write end (even if it got a number below 3).
  ::close(lifeline_write);
  if (lifeline_read > 3) {
    ::close_range(3, static_cast<unsigned>(lifeline_read) - 1, 0);
  }
  ::close_range(static_cast<unsigned>(lifeline_read) + 1, ~0U, 0);
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  ::setsid();  // out of the terminal's process group: a ^C meant for the daemon is not for us
  if (::chdir("/") != 0) {
    // Not fatal: only keeps the reaper from pinning a directory.
  }
  ::signal(SIGPIPE, SIG_IGN);
  const std::string comm = (name + "-reaper").substr(0, 15);
  ::prctl(PR_SET_NAME, comm.c_str(), 0, 0, 0);
  char buf[64];
  while (true) {
    const ssize_t n = ::read(lifeline_read, buf, sizeof(buf));
    if (n == 0) break;
    if (n < 0 && errno != EINTR) break;
  }
  if (!mountpoint.empty()) {
    UnmountIfDead(name, mountpoint, "the daemon and its supervisor are gone");
  }
  _exit(0);
}

}  // namespace

bool UnmountIfDead(const std::string& name, const std::string& mountpoint, const std::string& why) {
  if (!IsDeadFuseMount(mountpoint)) return false;
  if (::umount2(mountpoint.c_str(), MNT_DETACH) != 0) {
    const int err = errno;
    HOIST_LOG(kWarning) << name << ": " << why << "; unmounting the dead mount " << mountpoint
                        << " failed: " << std::strerror(err);
    return false;
  }
  HOIST_LOG(kWarning) << name << ": " << why << "; lazily unmounted " << mountpoint;
  return true;
}

Result<Reaper> StartReaper(const std::string& name, const std::string& mountpoint) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Fail(ErrnoError("lifeline pipe"));
  ScopedFd read_end(fds[0]);
  Reaper reaper;
  reaper.lifeline.Reset(fds[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return Fail(ErrnoError("fork for the reaper"));
  if (pid == 0) RunReaper(read_end.get(), reaper.lifeline.get(), name, mountpoint);
  reaper.pid = pid;
  return reaper;
}

}  // namespace hoist
