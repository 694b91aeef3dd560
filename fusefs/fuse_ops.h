// The libfuse3 low-level operations of a hoist mount: a thin layer that answers each request
// from the MergedView (metadata) and the ChunkReader (file contents), translating a Status into
// its errno once, here. Every request is replied to exactly once (forget/forget_multi with
// fuse_reply_none).
//
// Read-only: every write-type op (setattr, mknod, mkdir, unlink, rmdir, symlink, rename, link,
// setxattr, removexattr, create, write) replies EROFS, and open with O_WRONLY/O_RDWR/O_TRUNC
// (or O_APPEND/O_CREAT) does too. Images are immutable, so entries and attributes carry long
// timeouts (kCacheSeconds), open sets keep_cache, and init asks for large reads.
//
// No lookup counting: MergedView's inode numbers are never reused for the mount's life (see
// merged_view.h), so forget is a no-op and readdirplus needs no bookkeeping.
//
// Thread-safety: ops are called from fuse_session_loop_mt's threads concurrently; they touch
// only the immutable view and the thread-safe reader/stats. Read uses a thread-local buffer.
// Ownership: FuseOpsContext is borrowed (the session's userdata) and must outlive the session.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <unordered_map>

#include "base/mutex.h"
#include "fusefs/chunk_reader.h"
#include "fusefs/merged_view.h"
#include "fusefs/mount_stats.h"

namespace hoist {

inline constexpr double kCacheSeconds = 86400.0;
inline constexpr unsigned kMaxRead = 1u << 20;  // max_read, max_write (max_pages) and readahead

// When a read fails, the kernel retries at once: a failed readahead is followed by a synchronous
// read of the same page, which would wait a second full timeout (2x the bound). The memo keeps
// each inode's last failed range for `window`, and ONE read starting inside it within that time
// (the retry) fails at once with the same errno. Nothing else is remembered: any other read tries
// the network again. Thread-safe.
class ReadFailureMemo {
 public:
  explicit ReadFailureMemo(std::chrono::milliseconds window = std::chrono::milliseconds(50))
      : window_(window) {}
  void Record(uint64_t ino, uint64_t offset, uint64_t length, int err);
  // The errno of a failure covering `offset` recorded less than `window` ago (consuming it),
  // else 0.
  int RecentFailure(uint64_t ino, uint64_t offset);

 private:
  struct Failure {
    uint64_t offset = 0;
    uint64_t length = 0;
    int err = 0;
    std::chrono::steady_clock::time_point when;
  };
  const std::chrono::milliseconds window_;
  Mutex mu_;
  std::unordered_map<uint64_t, Failure> failures_ HOIST_GUARDED_BY(mu_);
};

// Told of every successful open of a regular file: the mount's access-trace recorder and its ELF
// prefetch. Called on a FUSE thread before the open is answered, so OnOpen must return quickly
// (record, queue or a cache lookup; never fetch). Must be thread-safe.
class OpenObserver {
 public:
  virtual ~OpenObserver() = default;
  virtual void OnOpen(const FileRef& file) = 0;
};

struct FuseOpsContext {
  const MergedView* view = nullptr;
  ChunkReader* reader = nullptr;
  MountStats* stats = nullptr;
  ReadFailureMemo* failures = nullptr;  // optional
  OpenObserver* on_open = nullptr;      // optional
};

// The operation table; pass a FuseOpsContext* as fuse_session_new's userdata.
const fuse_lowlevel_ops& HoistFuseOps();

// ---- Per-view handlers, shared with the layer store (layer_store.h) ----
// A FUSE mount may serve several views: the layer store numbers the inodes of the view in slot
// S (S >= 1) as (S << kViewSlotShift) | view inode, and its own root is 1. Slot 0 is the identity
// (the merged mount: FUSE inode = view inode). The ".." of a view's root is FUSE inode 1 either
// way. Each handler replies to `req` exactly once; `ino`/`parent` are view inode numbers.
inline constexpr int kViewSlotShift = 32;

struct ViewRequest {
  const MergedView* view = nullptr;
  uint64_t slot = 0;
  ChunkReader* reader = nullptr;
  ReadFailureMemo* failures = nullptr;  // optional
  OpenObserver* on_open = nullptr;      // optional

  uint64_t ToFuse(InodeNumber ino) const {
    return slot == 0 ? ino : (slot << kViewSlotShift) | ino;
  }
};

// The libfuse init callback every hoist session uses (max_read, readdirplus, async read).
void HoistFuseInit(void* userdata, fuse_conn_info* conn);

void ViewLookup(fuse_req_t req, const ViewRequest& v, InodeNumber parent, const char* name);
void ViewGetattr(fuse_req_t req, const ViewRequest& v, InodeNumber ino);
void ViewReadlink(fuse_req_t req, const ViewRequest& v, InodeNumber ino);
void ViewOpen(fuse_req_t req, const ViewRequest& v, InodeNumber ino, fuse_file_info* fi);
void ViewRead(fuse_req_t req, const ViewRequest& v, InodeNumber ino, size_t size, off_t off);
void ViewOpendir(fuse_req_t req, const ViewRequest& v, InodeNumber ino, fuse_file_info* fi);
void ViewReadDir(fuse_req_t req, const ViewRequest& v, InodeNumber ino, size_t size, off_t off,
                 bool plus);
void ViewGetxattr(fuse_req_t req, const ViewRequest& v, InodeNumber ino, const char* name,
                  size_t size);
void ViewListxattr(fuse_req_t req, const ViewRequest& v, InodeNumber ino, size_t size);
// Replies to getxattr/listxattr with `value` under the size-query and ERANGE rules.
void ReplyXattrValue(fuse_req_t req, std::string_view value, size_t size);

// The read-only write-type handlers (EROFS), for any hoist operation table.
void SetReadOnlyOps(fuse_lowlevel_ops& ops);

// The errno fuse_reply_err gets for an error (timeouts become EIO; never 0).
int FuseErrno(const Error& error);

}  // namespace hoist
