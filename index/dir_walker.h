// Directory walker: streams a rootfs directory as a tar (for `hoist convert dir:ROOTFS`).
//
// Order: depth first, the entries of each directory sorted bytewise by name (GNU tar
// --sort=name), so the same tree always gives the same bytes. The root itself is not emitted.
// Names are relative, without "./" ("etc/passwd", directories "etc/").
// Types: regular files, directories, symlinks, char/block devices, fifos. A non-directory whose
// (st_dev, st_ino) was already emitted becomes a hardlink to the first name. Sockets (and any
// other type) are skipped with a warning. Mode bits (incl. setuid/setgid/sticky), uid, gid and
// mtime (with nanoseconds) are copied exactly; uname/gname are left empty (host names mean
// nothing for a rootfs). Xattrs are read with llistxattr/lgetxattr (never following a symlink),
// sorted by name, all namespaces except "system." (ACLs are not carried); security.capability
// is kept. Symlinks are never followed: each directory is opened with openat(O_NOFOLLOW) relative
// to its parent's fd, so nothing outside the root is read.
// With `normalize`, uid/gid become 0 and every mtime becomes `normalized_mtime`.
//
// Streaming: Read() produces tar bytes on demand; file contents are read from the file while
// they are emitted. Memory: one open fd and the sorted name list per directory level, the
// hardlink table (files with st_nlink > 1 only), and one header.
//
// Errors: errno of the failing syscall with the path in the message (e.g. EACCES opening a file);
// EIO when a file shrinks while it is read; ENAMETOOLONG for names the tar reader would reject.
// After an error the stream is unusable. Thread-safety: one thread at a time.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/scoped_fd.h"
#include "base/status.h"
#include "index/byte_stream.h"
#include "index/tar_writer.h"

namespace hoist {

struct DirWalkerOptions {
  bool normalize = false;        // uid/gid 0 and mtime = normalized_mtime for every entry
  int64_t normalized_mtime = 0;  // e.g. SOURCE_DATE_EPOCH
  // Called for each skipped entry (socket, unknown type); null = HOIST_LOG(kWarning).
  std::function<void(std::string_view message)> warn;
};

struct DirWalkStats {
  uint64_t entries = 0;
  uint64_t hardlinks = 0;
  uint64_t skipped = 0;
  uint64_t payload_bytes = 0;
};

class DirTarStream {
 public:
  // Opens `root` (must be a directory; a symlink to one is followed for the root only).
  [[nodiscard]] static Result<std::unique_ptr<DirTarStream>> Open(const std::string& root,
                                                                  DirWalkerOptions options = {});
  DirTarStream(const DirTarStream&) = delete;
  DirTarStream& operator=(const DirTarStream&) = delete;

  // Fills up to n bytes with the next tar bytes; 0 at the end of the archive.
  [[nodiscard]] Result<size_t> Read(char* buf, size_t n);

  // A ReadCallback over this stream. REQUIRES: *this outlives the callback.
  ReadCallback AsReadCallback() {
    return [this](char* buf, size_t n) { return Read(buf, n); };
  }

  const DirWalkStats& stats() const { return stats_; }

 private:
  struct Level {
    ScopedFd fd;
    std::string prefix;  // "" for the root, else "a/b/"
    std::vector<std::string> names;
    size_t next = 0;
  };
  DirTarStream(std::string root, DirWalkerOptions options)
      : root_(std::move(root)), options_(std::move(options)) {}

  Status Advance();  // produces the next header into pending_ (or the trailer)
  Status ListDir(Level& level);
  Result<std::vector<Xattr>> ReadXattrs(int dir_fd, const std::string& name,
                                        const std::string& rel);
  void Warn(std::string_view message);

  std::string root_;
  DirWalkerOptions options_;
  std::vector<Level> stack_;
  std::string pending_;  // header / padding / trailer bytes not yet returned
  size_t pending_pos_ = 0;
  ScopedFd file_;           // regular file whose payload is being emitted
  std::string file_path_;   // for messages
  uint64_t file_left_ = 0;  // payload bytes still to read from file_
  uint64_t file_pad_ = 0;   // padding after it
  bool done_ = false;
  bool failed_ = false;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
  DirWalkStats stats_;
};

}  // namespace hoist
