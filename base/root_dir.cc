#include "base/root_dir.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <deque>
#include <vector>

namespace hoist {
namespace {

constexpr int kMaxSymlinks = 40;  // as the kernel's own path walk (MAXSYMLINKS)
constexpr int kAgainRetries = 8;

std::string_view TypeName(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFDIR:
      return "a directory";
    case S_IFIFO:
      return "a FIFO";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    case S_IFSOCK:
      return "a socket";
    case S_IFLNK:
      return "a symlink";
    default:
      return "not a regular file";
  }
}

// Splits "a//b/./c" into {"a", "b", ".", "c"} (empty components dropped), appended in order
// before the components already queued.
void PushFront(std::deque<std::string>& queue, std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) parts.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  queue.insert(queue.begin(), parts.begin(), parts.end());
}

bool SameFile(int a, int b) {
  struct stat sa, sb;
  return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

}  // namespace

Result<RootDir> RootDir::Open(const std::string& dir, std::string label, Resolver resolver) {
  ScopedFd fd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Fail(ErrnoError(label + ": open " + dir));
  return RootDir(std::move(fd), std::move(label), resolver);
}

Error RootDir::PathError(std::string_view path, std::string_view what, int err) const {
  std::string shown(path);
  if (shown.empty() || shown[0] != '/') shown.insert(0, "/");
  return ErrnoError(label_ + ": " + std::string(what) + " " + shown, err);
}

Result<ScopedFd> RootDir::Resolve(std::string_view path, int flags) const {
  flags |= O_CLOEXEC;
  if (resolver_ == Resolver::kKernel) {
    const std::string p(path.empty() ? "." : path);
    struct open_how how = {};
    how.flags = static_cast<uint64_t>(flags);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    for (int attempt = 0;; ++attempt) {
      const long fd = ::syscall(SYS_openat2, fd_.get(), p.c_str(), &how, sizeof how);
      if (fd >= 0) return ScopedFd(static_cast<int>(fd));
      if (errno == EAGAIN && attempt < kAgainRetries) continue;
      if (errno == ENOSYS) break;  // before Linux 5.6: walk by hand
      return Fail(PathError(path, "open", errno));
    }
  }
  return Walk(path, flags);
}

// The component walk: each step opens one name with O_PATH | O_NOFOLLOW under the directory
// reached so far, so the kernel never follows a link by itself; symlinks are read and their
// targets spliced into the queue, an absolute one from the root again; ".." never goes above it.
Result<ScopedFd> RootDir::Walk(std::string_view path, int flags) const {
  const bool follow_last = (flags & O_NOFOLLOW) == 0;
  std::vector<ScopedFd> dirs;  // dirs[0] is the root; back() is where the walk stands
  dirs.emplace_back(::openat(fd_.get(), ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dirs.back().valid()) return Fail(PathError("", "open", errno));

  std::deque<std::string> queue;
  PushFront(queue, path);
  int links = 0;
  std::string last_name;  // the final component, opened under dirs.back()
  ScopedFd last;          // O_PATH fd of the final component, once reached
  while (!queue.empty()) {
    std::string name = std::move(queue.front());
    queue.pop_front();
    if (name == ".") continue;
    if (name == "..") {
      if (dirs.size() > 1) dirs.pop_back();
      continue;
    }
    ScopedFd fd(::openat(dirs.back().get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return Fail(PathError(path, "open", errno));
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return Fail(PathError(path, "stat", errno));
    const bool is_last = queue.empty();
    if (S_ISLNK(st.st_mode) && (!is_last || follow_last)) {
      if (++links > kMaxSymlinks) return Fail(PathError(path, "open", ELOOP));
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      const ssize_t n = ::readlinkat(fd.get(), "", target.data(), target.size());
      if (n < 0) return Fail(PathError(path, "read symlink in", errno));
      target.resize(static_cast<size_t>(n));
      if (!target.empty() && target[0] == '/') dirs.resize(1);
      PushFront(queue, target);
      continue;
    }
    if (is_last) {
      last = std::move(fd);
      last_name = std::move(name);
      break;
    }
    if (!S_ISDIR(st.st_mode)) return Fail(PathError(path, "open", ENOTDIR));
    dirs.push_back(std::move(fd));
  }
  if (!last.valid()) {  // the path ends at a directory the walk stands in (or the root)
    if ((flags & O_PATH) != 0) return ScopedFd(::fcntl(dirs.back().get(), F_DUPFD_CLOEXEC, 0));
    ScopedFd real(::openat(dirs.back().get(), ".", flags));
    if (!real.valid()) return Fail(PathError(path, "open", errno));
    return real;
  }
  if ((flags & O_PATH) != 0) return last;
  // Reopen the name for real I/O without following anything, and make sure it is still the file
  // the walk reached.
  ScopedFd real(::openat(dirs.back().get(), last_name.c_str(), flags | O_NOFOLLOW));
  if (!real.valid()) return Fail(PathError(path, "open", errno));
  if (!SameFile(real.get(), last.get())) {
    return Fail(PathError(path, "open", EAGAIN));
  }
  return real;
}

Result<ScopedFd> RootDir::OpenAt(std::string_view path, int flags) const {
  return Resolve(path, flags);
}

Result<std::optional<struct stat>> RootDir::Stat(std::string_view path, Follow follow) const {
  auto fd = Resolve(path, O_PATH | (follow == Follow::kNo ? O_NOFOLLOW : 0));
  if (!fd) {
    if (fd.error().code() == ENOENT || fd.error().code() == ENOTDIR) {
      return std::optional<struct stat>();
    }
    return Fail(fd.error());
  }
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return Fail(PathError(path, "stat", errno));
  return std::optional<struct stat>(st);
}

Result<ScopedFd> RootDir::OpenRegularFile(std::string_view path) const {
  // Look before opening for reading: opening a FIFO blocks, and opening some devices acts.
  HOIST_ASSIGN_OR_RETURN(ScopedFd probe, Resolve(path, O_PATH));
  struct stat st;
  if (::fstat(probe.get(), &st) != 0) return Fail(PathError(path, "stat", errno));
  if (!S_ISREG(st.st_mode)) {
    std::string shown(path);
    if (shown.empty() || shown[0] != '/') shown.insert(0, "/");
    return Fail(EINVAL, label_ + ": " + shown + " is " + std::string(TypeName(st.st_mode)) +
                            ", not a regular file");
  }
  HOIST_ASSIGN_OR_RETURN(ScopedFd fd, Resolve(path, O_RDONLY | O_NONBLOCK | O_NOCTTY));
  if (!SameFile(fd.get(), probe.get())) return Fail(PathError(path, "open", EAGAIN));
  const int fl = ::fcntl(fd.get(), F_GETFL);
  if (fl >= 0) ::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK);
  return fd;
}

Result<std::optional<std::string>> RootDir::ReadRegularFile(std::string_view path,
                                                            size_t max_bytes) const {
  auto fd = OpenRegularFile(path);
  if (!fd) {
    if (fd.error().code() == ENOENT || fd.error().code() == ENOTDIR) {
      return std::optional<std::string>();
    }
    return Fail(fd.error());
  }
  std::string shown(path);
  if (shown.empty() || shown[0] != '/') shown.insert(0, "/");
  auto too_big = [&] {
    return Fail(EFBIG,
                label_ + ": " + shown + " is larger than " + std::to_string(max_bytes) + " bytes");
  };
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return Fail(PathError(path, "stat", errno));
  if (static_cast<uint64_t>(st.st_size) > max_bytes) return too_big();
  // The size can lie (a file growing, a filesystem reporting 0): read to the end, but never
  // more than the cap.
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd->get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(PathError(path, "read", errno));
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max_bytes) return too_big();
    out.append(buf, static_cast<size_t>(n));
  }
  return std::optional<std::string>(std::move(out));
}

}  // namespace hoist
