// The file descriptor store: how a daemon's open files (a FUSE connection, a state memfd)
// outlive the daemon's process. The protocol is systemd's, so one worker serves under systemd
// and under hoist's own supervisor (tools/supervisor) alike:
//   - store: sd_notify(3) "FDSTORE=1\nFDNAME=<name>" with the fds as SCM_RIGHTS, to the
//     AF_UNIX datagram socket named by $NOTIFY_SOCKET (a unit needs FileDescriptorStoreMax=);
//   - get back: the next start of the service receives them as fds 3, 4, ... with
//     LISTEN_FDS=<count>, LISTEN_PID=<its pid> and LISTEN_FDNAMES=<name>:<name>:...
//     (sd_listen_fds_with_names(3)).
// NotifyListener is the receiving end for hoist's supervisor: it binds a socket, reads the
// datagrams (state text, the fds passed with it, the sender's pid from SO_PASSCRED).
//
// Thread-safety: StoreFds and TakeListenFds are reentrant, but TakeListenFds edits the
// environment (call it early, before threads). NotifyListener is one-thread.
// Errors: StoreFds returns ENOTSUP when NOTIFY_SOCKET is unset (nobody keeps the fds), EINVAL
// for a bad name; TakeListenFds returns nothing when LISTEN_PID is not this process.
#pragma once

#include <sys/types.h>

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/scoped_fd.h"
#include "base/status.h"

namespace hoist {

// Sends "FDSTORE=1\nFDNAME=<name>" with `fds` to $NOTIFY_SOCKET. The fds stay open here too.
// `name`: 1-255 characters of [A-Za-z0-9_.-].
[[nodiscard]] Status StoreFds(std::string_view name, std::span<const int> fds);

// True when $NOTIFY_SOCKET names a socket: someone may keep stored fds.
bool FdStoreAvailable();

struct ListenFd {
  ScopedFd fd;  // close-on-exec set
  std::string name;
};

// The fds passed by the service manager (LISTEN_*), owned by the caller; the LISTEN_*
// variables are removed from the environment, so children do not see them.
std::vector<ListenFd> TakeListenFds();

// A received notification.
struct Notification {
  std::string text;  // "READY=1\nSTATUS=..." as sent
  std::vector<ScopedFd> fds;
  pid_t sender = 0;  // from the kernel's credentials, 0 if none came
};

// The value of KEY in a notification's text ("READY" -> "1"), or "" when absent.
std::string NotificationValue(std::string_view text, std::string_view key);

class NotifyListener {
 public:
  // Binds a datagram socket in the abstract namespace; address() is what NOTIFY_SOCKET names.
  [[nodiscard]] static Result<NotifyListener> Create(std::string_view name_hint);
  int fd() const { return fd_.get(); }
  const std::string& address() const { return address_; }
  // One datagram; EAGAIN when none is waiting (the socket is non-blocking).
  [[nodiscard]] Result<Notification> Receive();

 private:
  ScopedFd fd_;
  std::string address_;
};

}  // namespace hoist
