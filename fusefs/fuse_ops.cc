#include "fusefs/fuse_ops.h"

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "base/log.h"
#include "fusefs/mount_metrics.h"

namespace hoist {
namespace {

FuseOpsContext& Ctx(fuse_req_t req) {
  return *static_cast<FuseOpsContext*>(fuse_req_userdata(req));
}

ViewRequest View(fuse_req_t req) {
  const FuseOpsContext& ctx = Ctx(req);
  return ViewRequest{.view = ctx.view,
                     .slot = 0,
                     .reader = ctx.reader,
                     .failures = ctx.failures,
                     .on_open = ctx.on_open};
}

void ReplyError(fuse_req_t req, const Error& error) { fuse_reply_err(req, FuseErrno(error)); }

Result<fuse_entry_param> EntryFor(const ViewRequest& v, InodeNumber ino) {
  HOIST_ASSIGN_OR_RETURN(struct stat st, v.view->GetAttr(ino));
  fuse_entry_param e{};
  e.ino = v.ToFuse(ino);
  st.st_ino = e.ino;
  e.generation = 0;
  e.attr = st;
  e.attr_timeout = kCacheSeconds;
  e.entry_timeout = kCacheSeconds;
  return e;
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ViewLookup(req, View(req), parent, name);
}

void OpForget(fuse_req_t req, fuse_ino_t, uint64_t) { fuse_reply_none(req); }
void OpForgetMulti(fuse_req_t req, size_t, fuse_forget_data*) { fuse_reply_none(req); }

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  ViewGetattr(req, View(req), ino);
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) { ViewReadlink(req, View(req), ino); }

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  ViewOpen(req, View(req), ino, fi);
}

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  ViewRead(req, View(req), ino, size, off);
}

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  ViewOpendir(req, View(req), ino, fi);
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  ViewReadDir(req, View(req), ino, size, off, false);
}
void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  ViewReadDir(req, View(req), ino, size, off, true);
}
void OpReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  struct statvfs st = Ctx(req).view->StatFs();
  fuse_reply_statfs(req, &st);
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  ViewGetxattr(req, View(req), ino, name, size);
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  ViewListxattr(req, View(req), ino, size);
}

// Write-type operations: the filesystem is read-only.
void RoSetattr(fuse_req_t req, fuse_ino_t, struct stat*, int, fuse_file_info*) {
  fuse_reply_err(req, EROFS);
}
void RoMknod(fuse_req_t req, fuse_ino_t, const char*, mode_t, dev_t) { fuse_reply_err(req, EROFS); }
void RoMkdir(fuse_req_t req, fuse_ino_t, const char*, mode_t) { fuse_reply_err(req, EROFS); }
void RoUnlink(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void RoSymlink(fuse_req_t req, const char*, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void RoRename(fuse_req_t req, fuse_ino_t, const char*, fuse_ino_t, const char*, unsigned) {
  fuse_reply_err(req, EROFS);
}
void RoLink(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void RoWrite(fuse_req_t req, fuse_ino_t, const char*, size_t, off_t, fuse_file_info*) {
  fuse_reply_err(req, EROFS);
}
void RoSetxattr(fuse_req_t req, fuse_ino_t, const char*, const char*, size_t, int) {
  fuse_reply_err(req, EROFS);
}
void RoRemovexattr(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EROFS); }
void RoCreate(fuse_req_t req, fuse_ino_t, const char*, mode_t, fuse_file_info*) {
  fuse_reply_err(req, EROFS);
}
void RoFallocate(fuse_req_t req, fuse_ino_t, int, off_t, off_t, fuse_file_info*) {
  fuse_reply_err(req, EROFS);
}

fuse_lowlevel_ops MakeOps() {
  fuse_lowlevel_ops ops{};
  SetReadOnlyOps(ops);
  ops.init = HoistFuseInit;
  ops.lookup = OpLookup;
  ops.forget = OpForget;
  ops.forget_multi = OpForgetMulti;
  ops.getattr = OpGetattr;
  ops.readlink = OpReadlink;
  ops.open = OpOpen;
  ops.read = OpRead;
  ops.release = OpRelease;
  ops.opendir = OpOpendir;
  ops.readdir = OpReaddir;
  ops.readdirplus = OpReaddirplus;
  ops.releasedir = OpReleasedir;
  ops.statfs = OpStatfs;
  ops.getxattr = OpGetxattr;
  ops.listxattr = OpListxattr;
  return ops;
}

}  // namespace

void ReadFailureMemo::Record(uint64_t ino, uint64_t offset, uint64_t length, int err) {
  MutexLock lock(mu_);
  if (failures_.size() > 4096) failures_.clear();
  failures_[ino] = Failure{offset, length, err, std::chrono::steady_clock::now()};
}

int ReadFailureMemo::RecentFailure(uint64_t ino, uint64_t offset) {
  MutexLock lock(mu_);
  auto it = failures_.find(ino);
  if (it == failures_.end()) return 0;
  const Failure& f = it->second;
  if (std::chrono::steady_clock::now() - f.when >= window_) {
    failures_.erase(it);
    return 0;
  }
  if (offset < f.offset || offset >= f.offset + f.length) return 0;
  const int err = f.err;
  failures_.erase(it);  // one-shot: only the kernel's immediate retry is answered
  return err;
}

void HoistFuseInit(void* /*userdata*/, fuse_conn_info* conn) {
  // Must equal the max_read mount option (mount.cc passes -o max_read=kMaxRead).
  conn->max_read = kMaxRead;
  // libfuse derives max_pages (the largest request the kernel sends) from max_write.
  conn->max_write = kMaxRead;
  // The kernel offers its limit; ask for up to kMaxRead of it.
  conn->max_readahead = std::min(conn->max_readahead, kMaxRead);
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;  // always plus: attributes are free here
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  conn->want &= ~FUSE_CAP_SPLICE_WRITE;  // not measured to help; a copy from our buffer is cheap
}

void ViewLookup(fuse_req_t req, const ViewRequest& v, InodeNumber parent, const char* name) {
  FuseOpTimer timer(FuseOp::kLookup);
  auto ino = v.view->Lookup(parent, name);
  if (!ino) return ReplyError(req, ino.error());
  auto e = EntryFor(v, *ino);
  if (!e) return ReplyError(req, e.error());
  fuse_reply_entry(req, &*e);
}

void ViewGetattr(fuse_req_t req, const ViewRequest& v, InodeNumber ino) {
  FuseOpTimer timer(FuseOp::kGetattr);
  auto st = v.view->GetAttr(ino);
  if (!st) return ReplyError(req, st.error());
  st->st_ino = v.ToFuse(ino);
  fuse_reply_attr(req, &*st, kCacheSeconds);
}

void ViewReadlink(fuse_req_t req, const ViewRequest& v, InodeNumber ino) {
  FuseOpTimer timer(FuseOp::kReadlink);
  auto target = v.view->ReadLink(ino);
  if (!target) return ReplyError(req, target.error());
  fuse_reply_readlink(req, target->data());  // NUL-terminated (merged_view.h)
}

void ViewOpen(fuse_req_t req, const ViewRequest& v, InodeNumber ino, fuse_file_info* fi) {
  FuseOpTimer timer(FuseOp::kOpen);
  const int acc = fi->flags & O_ACCMODE;
  if (acc == O_WRONLY || acc == O_RDWR || (fi->flags & (O_TRUNC | O_APPEND | O_CREAT)))
    return (void)fuse_reply_err(req, EROFS);
  auto file = v.view->OpenFile(ino);
  if (!file) return ReplyError(req, file.error());
  fi->keep_cache = 1;
  fi->fh = 0;
  // Before the reply: the observers see the cache as the opener found it (the directory prefetch
  // asks whether the file was local; after the reply the opener's first read may have fetched it).
  if (v.on_open != nullptr) v.on_open->OnOpen(*file);
  fuse_reply_open(req, fi);
}

void ViewRead(fuse_req_t req, const ViewRequest& v, InodeNumber ino, size_t size, off_t off) {
  FuseOpTimer timer(FuseOp::kRead);
  auto file = v.view->OpenFile(ino);
  if (!file) return ReplyError(req, file.error());
  if (off < 0) return (void)fuse_reply_err(req, EINVAL);
  const uint64_t offset = static_cast<uint64_t>(off);
  if (offset >= file->entry->size || size == 0) return (void)fuse_reply_buf(req, nullptr, 0);
  size = static_cast<size_t>(std::min<uint64_t>(size, file->entry->size - offset));
  size = std::min<size_t>(size, size_t{16} << 20);
  const uint64_t fuse_ino = v.ToFuse(ino);
  if (v.failures != nullptr) {
    if (int err = v.failures->RecentFailure(fuse_ino, offset); err != 0)
      return (void)fuse_reply_err(req, err);
  }
  thread_local std::vector<char> buffer;
  if (buffer.size() < size) buffer.resize(size);
  // Timed only at debug level (bench/pull_run_profile.sh counts reads and their latency).
  const bool timed = GetLogLevel() <= LogLevel::kDebug;
  const auto t0 =
      timed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
  auto n = v.reader->Read(*file->index, *file->entry, offset, std::span<char>(buffer.data(), size));
  if (timed) {
    HOIST_LOG(kDebug) << "FUSE read of " << file->entry->path << " at " << offset << ", " << size
                      << " bytes: "
                      << std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::steady_clock::now() - t0)
                             .count()
                      << " us";
  }
  if (!n) {
    HOIST_LOG(kWarning) << "read of inode " << fuse_ino << " at " << offset << ": "
                        << n.error().message();
    if (v.failures != nullptr) v.failures->Record(fuse_ino, offset, size, FuseErrno(n.error()));
    return ReplyError(req, n.error());
  }
  fuse_reply_buf(req, buffer.data(), *n);
}

void ViewOpendir(fuse_req_t req, const ViewRequest& v, InodeNumber ino, fuse_file_info* fi) {
  FuseOpTimer timer(FuseOp::kOpendir);
  auto listing = v.view->OpenDir(ino);
  if (!listing) return ReplyError(req, listing.error());
  fi->keep_cache = 1;
  fi->cache_readdir = 1;
  fi->fh = 0;
  fuse_reply_open(req, fi);
}

// readdir and readdirplus: entries from `off` on, each with next offset off + 1.
void ViewReadDir(fuse_req_t req, const ViewRequest& v, InodeNumber ino, size_t size, off_t off,
                 bool plus) {
  FuseOpTimer timer(plus ? FuseOp::kReaddirplus : FuseOp::kReaddir);
  auto listing = v.view->OpenDir(ino);
  if (!listing) return ReplyError(req, listing.error());
  if (off < 0) return (void)fuse_reply_err(req, EINVAL);
  std::vector<char> buf(size);
  size_t used = 0;
  for (uint64_t pos = static_cast<uint64_t>(off); pos < listing->size(); ++pos) {
    const DirEntry d = (*listing)[pos];
    size_t need = 0;
    const off_t next = static_cast<off_t>(pos + 1);
    // ".." of a view's root is the mount's root.
    const uint64_t fuse_ino = (pos == 1 && ino == kRootInode) ? kRootInode : v.ToFuse(d.ino);
    if (plus && pos >= 2) {
      auto e = EntryFor(v, d.ino);
      if (!e) return ReplyError(req, e.error());
      need = fuse_add_direntry_plus(req, buf.data() + used, size - used, d.name.data(), &*e, next);
    } else if (plus) {
      // "." and "..": the kernel takes no attributes from these.
      fuse_entry_param e{};
      e.attr.st_ino = fuse_ino;
      e.attr.st_mode = d.type;
      need = fuse_add_direntry_plus(req, buf.data() + used, size - used, d.name.data(), &e, next);
    } else {
      struct stat st {};
      st.st_ino = fuse_ino;
      st.st_mode = d.type;
      need = fuse_add_direntry(req, buf.data() + used, size - used, d.name.data(), &st, next);
    }
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void ReplyXattrValue(fuse_req_t req, std::string_view value, size_t size) {
  if (size == 0) return (void)fuse_reply_xattr(req, value.size());
  if (size < value.size()) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, value.data(), value.size());
}

void ViewGetxattr(fuse_req_t req, const ViewRequest& v, InodeNumber ino, const char* name,
                  size_t size) {
  FuseOpTimer timer(FuseOp::kGetxattr);
  auto value = v.view->GetXattr(ino, name);
  if (!value) return ReplyError(req, value.error());
  ReplyXattrValue(req, *value, size);
}

void ViewListxattr(fuse_req_t req, const ViewRequest& v, InodeNumber ino, size_t size) {
  FuseOpTimer timer(FuseOp::kListxattr);
  auto names = v.view->ListXattr(ino);
  if (!names) return ReplyError(req, names.error());
  ReplyXattrValue(req, *names, size);
}

void SetReadOnlyOps(fuse_lowlevel_ops& ops) {
  ops.setattr = RoSetattr;
  ops.mknod = RoMknod;
  ops.mkdir = RoMkdir;
  ops.unlink = RoUnlink;
  ops.rmdir = RoUnlink;
  ops.symlink = RoSymlink;
  ops.rename = RoRename;
  ops.link = RoLink;
  ops.write = RoWrite;
  ops.setxattr = RoSetxattr;
  ops.removexattr = RoRemovexattr;
  ops.create = RoCreate;
  ops.fallocate = RoFallocate;
}

int FuseErrno(const Error& error) {
  const int code = error.code();
  if (code == ETIMEDOUT || code == ECANCELED) return EIO;
  return code;
}

const fuse_lowlevel_ops& HoistFuseOps() {
  static const fuse_lowlevel_ops ops = MakeOps();
  return ops;
}

}  // namespace hoist
