#include "fusefs/fuse_handoff.h"

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <vector>

#include "base/log.h"
#include "base/mutex.h"
#include "base/scoped_fd.h"

namespace hoist {
namespace {

// Not in Debian 12's <linux/fuse.h> (protocol 7.38); the kernel's value since 6.9.
constexpr int kFuseNotifyResend = 7;

struct Recorders {
  Mutex mu;
  std::map<int, ConnectionIo::InitRecorder> by_fd HOIST_GUARDED_BY(mu);
};

Recorders& TheRecorders() {
  static Recorders* r = new Recorders;
  return *r;
}

void MaybeRecordInit(int fd, const char* buf, ssize_t n) {
  if (n < static_cast<ssize_t>(sizeof(fuse_in_header))) return;
  fuse_in_header h;
  std::memcpy(&h, buf, sizeof(h));
  if (h.opcode != FUSE_INIT) return;
  ConnectionIo::InitRecorder recorder;
  {
    Recorders& r = TheRecorders();
    MutexLock lock(r.mu);
    auto it = r.by_fd.find(fd);
    if (it == r.by_fd.end()) return;
    recorder = std::move(it->second);
    r.by_fd.erase(it);
  }
  if (recorder) recorder(std::string_view(buf, static_cast<size_t>(n)));
}

ssize_t IoRead(int fd, void* buf, size_t len, void* /*userdata*/) {
  const ssize_t n = ::read(fd, buf, len);
  if (n > 0) MaybeRecordInit(fd, static_cast<const char*>(buf), n);
  return n;
}

ssize_t IoWritev(int fd, iovec* iov, int count, void* /*userdata*/) {
  if (count > 0 && iov[0].iov_len >= sizeof(fuse_out_header)) {
    fuse_out_header h;
    std::memcpy(&h, iov[0].iov_base, sizeof(h));
    if (h.unique == kReplayedInitUnique) {
      ssize_t total = 0;
      for (int i = 0; i < count; ++i) total += static_cast<ssize_t>(iov[i].iov_len);
      return total;  // the reply to a replayed INIT: the kernel has had its answer long ago
    }
  }
  return ::writev(fd, iov, count);
}

}  // namespace

Status ConnectionIo::Install(fuse_session* se, int fd, InitRecorder recorder) {
  static const fuse_custom_io io = {
      .writev = IoWritev, .read = IoRead, .splice_receive = nullptr, .splice_send = nullptr};
  if (recorder) {
    Recorders& r = TheRecorders();
    MutexLock lock(r.mu);
    r.by_fd[fd] = std::move(recorder);
  }
  const int rc = fuse_session_custom_io(se, &io, fd);
  if (rc != 0) {
    Uninstall(fd);
    return Fail(-rc, "installing the FUSE connection I/O failed");
  }
  return Ok();
}

void ConnectionIo::Uninstall(int fd) {
  Recorders& r = TheRecorders();
  MutexLock lock(r.mu);
  r.by_fd.erase(fd);
}

Status ReplayInit(fuse_session* se, std::string_view init_request) {
  if (init_request.size() < sizeof(fuse_in_header) + sizeof(uint32_t) * 2)
    return Fail(EINVAL, "the recorded FUSE INIT request is too short");
  std::vector<char> mem(init_request.begin(), init_request.end());
  fuse_in_header h;
  std::memcpy(&h, mem.data(), sizeof(h));
  if (h.opcode != FUSE_INIT || h.len != mem.size())
    return Fail(EINVAL, "the recorded bytes are not a FUSE INIT request");
  h.unique = kReplayedInitUnique;
  std::memcpy(mem.data(), &h, sizeof(h));
  fuse_buf buf{};
  buf.size = mem.size();
  buf.mem = mem.data();
  fuse_session_process_buf(se, &buf);
  if (fuse_session_exited(se))
    return Fail(EPROTO, "libfuse refused the recorded FUSE INIT request");
  return Ok();
}

Status NotifyResend(int fd) {
  fuse_out_header h{};
  h.len = sizeof(h);
  h.error = kFuseNotifyResend;
  h.unique = 0;  // a notification
  if (::write(fd, &h, sizeof(h)) != static_cast<ssize_t>(sizeof(h)))
    return Fail(ErrnoError("FUSE_NOTIFY_RESEND"));
  return Ok();
}

Status WaitForExit(pid_t pid) {
  if (pid <= 0) return Ok();
  ScopedFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd.valid()) {
    if (errno == ESRCH) return Ok();
    return Fail(ErrnoError("pidfd_open " + std::to_string(pid)));
  }
  pollfd p{pidfd.get(), POLLIN, 0};
  while (::poll(&p, 1, -1) < 0) {
    if (errno != EINTR) return Fail(ErrnoError("poll on pidfd"));
  }
  return Ok();
}

Status TakeOverConnection(fuse_session* se, int fd, std::string_view init_request) {
  if (Status s = ConnectionIo::Install(se, fd, {}); !s) {
    ::close(fd);
    return s;
  }
  return ReplayInit(se, init_request);
}

void ResendAfterExit(pid_t previous_pid, int fd, std::string_view who) {
  if (Status s = WaitForExit(previous_pid); !s) {
    HOIST_LOG(kWarning) << who << ": waiting for the previous process: " << s.error().message();
  }
  if (Status s = NotifyResend(fd); !s) {
    HOIST_LOG(kWarning) << who << ": requests the previous process held cannot be resent: "
                        << s.error().message() << " (FUSE_NOTIFY_RESEND needs Linux 6.9)";
  } else {
    HOIST_LOG(kInfo) << who
                     << ": asked the kernel to resend the requests the previous process held";
  }
}

}  // namespace hoist
