#include "base/file_util.h"

#include "base/cleanup_on_signal.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/scoped_fd.h"

namespace hoist {

Result<std::string> ReadFile(const std::string& path) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Fail(ErrnoError(path));
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrnoError(path));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Status WriteAll(int fd, std::string_view data, std::string_view what) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(ErrnoError("writing " + std::string(what)));
    if (n == 0) return Fail(EIO, "writing " + std::string(what) + ": no progress");
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Ok();
}

Status PWriteAll(int fd, std::string_view data, uint64_t offset, std::string_view what) {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(ErrnoError("writing " + std::string(what)));
    if (n == 0) return Fail(EIO, "writing " + std::string(what) + ": no progress");
    data.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return Ok();
}

Status WriteFileAtomic(const std::string& path, std::string_view data, int mode) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  ScopedFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd.valid()) return Fail(ErrnoError(tmp));
  if (auto written = WriteAll(fd.get(), data, tmp); !written) {
    ::unlink(tmp.c_str());
    return Fail(written.error());
  }
  if (::fsync(fd.get()) != 0 || ::fchmod(fd.get(), mode) != 0) {
    Error e = ErrnoError(tmp);
    ::unlink(tmp.c_str());
    return Fail(e);
  }
  fd.Reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Error e = ErrnoError(path);
    ::unlink(tmp.c_str());
    return Fail(e);
  }
  return Ok();
}

Result<ScopedFd> OpenUnlinkedTempFile(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return ScopedFd(fd);
  std::string path = dir + "/hoist-stream-XXXXXX";
  fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) return Fail(ErrnoError("creating a temporary file in " + dir));
  ::unlink(path.c_str());
  return ScopedFd(fd);
}

Status MakeDirs(const std::string& path, int mode) {
  if (path.empty()) return Ok();
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    cur = path.substr(0, pos);
    if (cur.empty() || cur == "/") continue;
    if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) return Fail(ErrnoError(cur));
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Fail(ErrnoError(path));
  if (!S_ISDIR(st.st_mode)) return Fail(ENOTDIR, path + ": not a directory");
  return Ok();
}

Status RemoveTree(const std::string& path) {
  auto rm = [](const char* p, const struct stat*, int, struct FTW*) -> int {
    return ::remove(p) == 0 || errno == ENOENT ? 0 : -1;
  };
  if (::nftw(path.c_str(), rm, 64, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT) {
    return Fail(ErrnoError(path));
  }
  return Ok();
}

ScratchDir::~ScratchDir() {
  if (path_.empty()) return;
  (void)RemoveTree(path_);
  KeepOnSignal(path_);
}

Status ScratchDir::Create(const std::string& parent, std::string_view prefix) {
  HOIST_RETURN_IF_ERROR(MakeDirs(parent));
  const std::string stem = std::string(prefix) + "-";
  (void)SweepStale(parent, stem);
  std::string templ = parent + "/" + stem + std::to_string(::getpid()) + "-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return Fail(ErrnoError("mkdtemp in " + parent));
  path_ = templ;
  RemoveOnSignal(path_);
  return Ok();
}

}  // namespace hoist
