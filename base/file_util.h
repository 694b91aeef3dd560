// Small file helpers built on POSIX calls. Errors carry the errno and name the path.
//
// WriteFileAtomic writes to a temporary file in the same directory, fsyncs it and renames it
// over `path`, so readers see either the old or the new content, never a partial file.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/scoped_fd.h"
#include "base/status.h"

namespace hoist {

Result<std::string> ReadFile(const std::string& path);
// Writes all of `data` to `fd` (short writes continued, EINTR retried). Errors carry the errno and
// name `what` ("writing <what>: ..."); a write that makes no progress is EIO, never a spin.
Status WriteAll(int fd, std::string_view data, std::string_view what);
// The same at `offset` with pwrite(2).
Status PWriteAll(int fd, std::string_view data, uint64_t offset, std::string_view what);
Status WriteFileAtomic(const std::string& path, std::string_view data, int mode = 0644);
// An unlinked temporary file in `dir`: O_TMPFILE, so it never has a name a crash or a signal
// could leave behind; where the filesystem lacks O_TMPFILE, mkostemp + unlink at once.
[[nodiscard]] Result<ScopedFd> OpenUnlinkedTempFile(const std::string& dir);
// mkdir -p.
Status MakeDirs(const std::string& path, int mode = 0755);
// rm -rf (no error if absent). Does not follow symlinks.
Status RemoveTree(const std::string& path);

// A new private directory PARENT/PREFIX-PID-XXXXXX (mkdtemp; PARENT made first), removed with all
// it holds when the ScratchDir is destroyed, or on a signal once InstallSignalCleanup ran
// (base/cleanup_on_signal.h). Create first sweeps PARENT/PREFIX-<pid>-* of dead processes.
// A verb's working space.
class ScratchDir {
 public:
  ScratchDir() = default;
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  [[nodiscard]] Status Create(const std::string& parent, std::string_view prefix);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace hoist
