// RootDir: a directory that host-side code treats as the root of an untrusted tree (an image's
// rootfs, a bundle's lower mount, an OCI layout), so that no path inside it can reach the host.
//
// Every path given to a RootDir is resolved as if the directory were "/": ".." at the top stays
// at the top, an absolute symlink starts again at the directory, and nothing ever resolves to a
// file outside it. The kernel does this with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
// (Linux 5.6+); on older kernels (ENOSYS) a component-by-component walk with O_NOFOLLOW does the
// same, following at most 40 symlinks. A rename racing the resolution gives EAGAIN from the
// kernel; it is retried a few times, then reported.
//
// ReadRegularFile is the one way host code reads an image file's bytes: the file must be a regular
// file (a FIFO, a device or a directory is refused without being read, so it cannot block or
// stream forever) and at most `max_bytes` long (a larger one is refused with EFBIG, not
// truncated). An absent file (ENOENT, or ENOTDIR on the way) is nullopt, not an error.
//
// Errors name the path as seen inside the tree ("/etc/passwd") with the tree's `label` before it.
// Thread-safety: const methods are safe to call concurrently; the object owns one directory fd.
#pragma once

#include <sys/stat.h>

#include <optional>
#include <string>
#include <string_view>

#include "base/scoped_fd.h"
#include "base/status.h"

namespace hoist {

class RootDir {
 public:
  enum class Resolver {
    kKernel,  // openat2 RESOLVE_IN_ROOT, falling back to kWalk where the kernel lacks it
    kWalk,    // the component walk alone (tests run both)
  };

  // Opens `dir` (a host path chosen by the caller, so it is followed as given). `label` names the
  // tree in errors, e.g. "image docker.io/library/busybox:latest".
  static Result<RootDir> Open(const std::string& dir, std::string label,
                              Resolver resolver = Resolver::kKernel);

  // An fd for `path` resolved inside the tree; `flags` as for open(2) (O_CLOEXEC is added).
  // The last component is followed if it is a symlink, unless `flags` has O_NOFOLLOW.
  Result<ScopedFd> OpenAt(std::string_view path, int flags) const;

  enum class Follow { kYes, kNo };
  // stat(2) (or, with Follow::kNo, lstat(2)) of `path` inside the tree, following symlinks only
  // inside it; nullopt if it is absent.
  Result<std::optional<struct stat>> Stat(std::string_view path,
                                          Follow follow = Follow::kYes) const;

  // The whole content of the regular file at `path`; nullopt if absent. Refuses a non-regular
  // file (EINVAL) and a file longer than `max_bytes` (EFBIG).
  Result<std::optional<std::string>> ReadRegularFile(std::string_view path, size_t max_bytes) const;

  // An fd open for reading on the regular file at `path` (not optional: absent is ENOENT).
  Result<ScopedFd> OpenRegularFile(std::string_view path) const;

  const std::string& label() const { return label_; }

 private:
  RootDir(ScopedFd fd, std::string label, Resolver resolver)
      : fd_(std::move(fd)), label_(std::move(label)), resolver_(resolver) {}

  Result<ScopedFd> Resolve(std::string_view path, int flags) const;
  Result<ScopedFd> Walk(std::string_view path, int flags) const;
  Error PathError(std::string_view path, std::string_view what, int err) const;

  ScopedFd fd_;
  std::string label_;
  Resolver resolver_;
};

}  // namespace hoist
