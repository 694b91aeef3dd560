#include "base/fd_store.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <random>

#include "base/sd_notify.h"

namespace hoist {
namespace {

constexpr int kListenFdsStart = 3;

bool ValidFdName(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::vector<std::string> SplitColons(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t colon = s.find(':', start);
    const size_t end = colon == std::string_view::npos ? s.size() : colon;
    out.emplace_back(s.substr(start, end - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  return out;
}

}  // namespace

bool FdStoreAvailable() {
  const char* name = std::getenv("NOTIFY_SOCKET");
  return name != nullptr && name[0] != '\0';
}

Status StoreFds(std::string_view name, std::span<const int> fds) {
  if (!ValidFdName(name))
    return Fail(EINVAL, "fd store name \"" + std::string(name) + "\": not 1-255 of [A-Za-z0-9_.-]");
  if (!FdStoreAvailable()) return Fail(ENOTSUP, "no fd store (NOTIFY_SOCKET is not set)");
  return SdNotifyWithFds("FDSTORE=1\nFDNAME=" + std::string(name), fds);
}

std::vector<ListenFd> TakeListenFds() {
  std::vector<ListenFd> out;
  const char* pid_text = std::getenv("LISTEN_PID");
  const char* count_text = std::getenv("LISTEN_FDS");
  const char* names_text = std::getenv("LISTEN_FDNAMES");
  const std::string names_copy = names_text == nullptr ? "" : names_text;
  const bool mine = pid_text != nullptr && count_text != nullptr &&
                    std::strtoll(pid_text, nullptr, 10) == static_cast<long long>(::getpid());
  const long count = count_text == nullptr ? 0 : std::strtol(count_text, nullptr, 10);
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (!mine || count <= 0 || count > 1024) return out;
  const std::vector<std::string> names = SplitColons(names_copy);
  for (long i = 0; i < count; ++i) {
    const int fd = kListenFdsStart + static_cast<int>(i);
    if (::fcntl(fd, F_GETFD) < 0) continue;  // not open after all
    (void)::fcntl(fd, F_SETFD, FD_CLOEXEC);
    ListenFd l;
    l.fd.Reset(fd);
    l.name = static_cast<size_t>(i) < names.size() ? names[static_cast<size_t>(i)] : "unknown";
    out.push_back(std::move(l));
  }
  return out;
}

std::string NotificationValue(std::string_view text, std::string_view key) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == '=')
      return std::string(line.substr(key.size() + 1));
    pos = end + 1;
  }
  return "";
}

Result<NotifyListener> NotifyListener::Create(std::string_view name_hint) {
  NotifyListener l;
  l.fd_.Reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!l.fd_.valid()) return Fail(ErrnoError("notify socket"));
  const int one = 1;
  if (::setsockopt(l.fd_.get(), SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0)
    return Fail(ErrnoError("notify socket SO_PASSCRED"));
  std::random_device rd;
  for (int attempt = 0; attempt < 16; ++attempt) {
    const std::string name = "@hoist-" + std::string(name_hint) + "-" + std::to_string(::getpid()) +
                             "-" + std::to_string(rd() % 1000000);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (name.size() >= sizeof(addr.sun_path)) return Fail(EINVAL, "notify socket name too long");
    std::memcpy(addr.sun_path, name.data(), name.size());
    addr.sun_path[0] = '\0';
    const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    if (::bind(l.fd_.get(), reinterpret_cast<const sockaddr*>(&addr), len) == 0) {
      l.address_ = name;
      return l;
    }
    if (errno != EADDRINUSE) return Fail(ErrnoError("binding the notify socket " + name));
  }
  return Fail(EADDRINUSE, "no free notify socket name");
}

Result<Notification> NotifyListener::Receive() {
  char text[4096];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 253) + CMSG_SPACE(sizeof(ucred))];
  iovec iov{text, sizeof(text)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  const ssize_t n = ::recvmsg(fd_.get(), &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0) return Fail(ErrnoError("receiving a notification"));
  Notification out;
  out.text.assign(text, static_cast<size_t>(n));
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET) continue;
    if (c->cmsg_type == SCM_RIGHTS) {
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        out.fds.emplace_back(fd);
      }
    } else if (c->cmsg_type == SCM_CREDENTIALS) {
      ucred cred;
      std::memcpy(&cred, CMSG_DATA(c), sizeof(cred));
      out.sender = cred.pid;
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) return Fail(EMSGSIZE, "a notification's passed fds were cut off");
  return out;
}

}  // namespace hoist
