#include "index/dir_walker.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "index/tar_path.h"

namespace hoist {
namespace {

Error SysError(std::string_view what, const std::string& path) {
  const int e = errno;
  return Error{e, std::string(what) + " " + QuoteName(path) + ": " + std::strerror(e)};
}

}  // namespace

Result<std::unique_ptr<DirTarStream>> DirTarStream::Open(const std::string& root,
                                                         DirWalkerOptions options) {
  ScopedFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Fail(SysError("open rootfs directory", root));
  std::unique_ptr<DirTarStream> s(new DirTarStream(root, std::move(options)));
  Level top;
  top.fd = std::move(fd);
  HOIST_RETURN_IF_ERROR(s->ListDir(top));
  s->stack_.push_back(std::move(top));
  return s;
}

void DirTarStream::Warn(std::string_view message) {
  ++stats_.skipped;
  if (options_.warn) {
    options_.warn(message);
  } else {
    HOIST_LOG(kWarning) << message;
  }
}

Status DirTarStream::ListDir(Level& level) {
  const std::string where = level.prefix.empty() ? root_ : root_ + "/" + level.prefix;
  int dup_fd = ::fcntl(level.fd.get(), F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return Fail(SysError("dup directory fd of", where));
  DIR* dir = ::fdopendir(dup_fd);
  if (!dir) {
    Error err = SysError("fdopendir", where);
    ::close(dup_fd);
    return Fail(err);
  }
  std::unique_ptr<DIR, int (*)(DIR*)> closer(dir, ::closedir);
  for (;;) {
    errno = 0;
    struct dirent* d = ::readdir(dir);
    if (!d) {
      if (errno) return Fail(SysError("read directory", where));
      break;
    }
    if (std::strcmp(d->d_name, ".") == 0 || std::strcmp(d->d_name, "..") == 0) continue;
    level.names.emplace_back(d->d_name);
  }
  std::sort(level.names.begin(), level.names.end());
  return Ok();
}

Result<std::vector<Xattr>> DirTarStream::ReadXattrs(int dir_fd, const std::string& name,
                                                    const std::string& rel) {
  // The directory fd is trusted; the l* calls do not follow `name` if it is a symlink.
  const std::string path = "/proc/self/fd/" + std::to_string(dir_fd) + "/" + name;
  std::vector<Xattr> out;
  std::string list;
  for (;;) {
    ssize_t n = ::llistxattr(path.c_str(), nullptr, 0);
    if (n < 0) {
      if (errno == ENOTSUP || errno == ENODATA) return out;
      return Fail(SysError("list xattrs of", rel));
    }
    list.assign(static_cast<size_t>(n), '\0');
    n = ::llistxattr(path.c_str(), list.data(), list.size());
    if (n < 0 && errno == ERANGE) continue;
    if (n < 0) return Fail(SysError("list xattrs of", rel));
    list.resize(static_cast<size_t>(n));
    break;
  }
  for (size_t pos = 0; pos < list.size();) {
    size_t end = list.find('\0', pos);
    if (end == std::string::npos) end = list.size();
    std::string key = list.substr(pos, end - pos);
    pos = end + 1;
    if (key.empty() || key.starts_with("system.")) continue;
    std::string value;
    for (;;) {
      ssize_t n = ::lgetxattr(path.c_str(), key.c_str(), nullptr, 0);
      if (n < 0 && errno == ENODATA) break;  // removed meanwhile
      if (n < 0) return Fail(SysError("read xattr " + key + " of", rel));
      value.assign(static_cast<size_t>(n), '\0');
      n = ::lgetxattr(path.c_str(), key.c_str(), value.data(), value.size());
      if (n < 0 && errno == ERANGE) continue;
      if (n < 0) return Fail(SysError("read xattr " + key + " of", rel));
      value.resize(static_cast<size_t>(n));
      out.push_back(Xattr{std::move(key), std::move(value)});
      break;
    }
  }
  std::sort(out.begin(), out.end(), [](const Xattr& a, const Xattr& b) { return a.name < b.name; });
  return out;
}

Status DirTarStream::Advance() {
  pending_.clear();
  pending_pos_ = 0;
  while (!stack_.empty()) {
    Level& lv = stack_.back();
    if (lv.next == lv.names.size()) {
      stack_.pop_back();
      continue;
    }
    const std::string name = lv.names[lv.next++];
    const std::string rel = lv.prefix + name;
    const int dir_fd = lv.fd.get();
    struct stat st;
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return Fail(SysError("stat", rel));
    if (auto clean = CleanEntryPath(rel); !clean)
      return Fail(clean.error().Context("in rootfs " + QuoteName(root_)));

    TarWriteEntry w;
    Entry& e = w.entry;
    e.path = rel;
    e.mode = st.st_mode & 07777;
    e.uid = options_.normalize ? 0 : st.st_uid;
    e.gid = options_.normalize ? 0 : st.st_gid;
    e.mtime_sec = options_.normalize ? options_.normalized_mtime : st.st_mtim.tv_sec;
    e.mtime_nsec = options_.normalize ? 0 : static_cast<uint32_t>(st.st_mtim.tv_nsec);

    if (S_ISSOCK(st.st_mode) ||
        !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode) || S_ISLNK(st.st_mode) ||
          S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode))) {
      Warn("dir walker: skipping " + QuoteName(rel) +
           (S_ISSOCK(st.st_mode) ? ": sockets cannot be stored in a layer"
                                 : ": unsupported file type"));
      continue;
    }

    if (S_ISDIR(st.st_mode)) {
      Level child;
      child.fd.Reset(
          ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!child.fd.valid()) return Fail(SysError("open directory", rel));
      child.prefix = rel + "/";
      e.type = EntryType::kDirectory;
      HOIST_ASSIGN_OR_RETURN(e.xattrs, ReadXattrs(dir_fd, name, rel));
      HOIST_ASSIGN_OR_RETURN(pending_, EncodeTarHeader(w));
      HOIST_RETURN_IF_ERROR(ListDir(child));
      stack_.push_back(std::move(child));  // invalidates lv
      ++stats_.entries;
      return Ok();
    }

    if (st.st_nlink > 1) {
      auto [it, inserted] = links_.try_emplace({st.st_dev, st.st_ino}, rel);
      if (!inserted) {
        e.type = EntryType::kHardlink;
        e.link_name = it->second;
        HOIST_ASSIGN_OR_RETURN(pending_, EncodeTarHeader(w));
        ++stats_.entries;
        ++stats_.hardlinks;
        return Ok();
      }
    }

    HOIST_ASSIGN_OR_RETURN(e.xattrs, ReadXattrs(dir_fd, name, rel));
    if (S_ISREG(st.st_mode)) {
      e.type = EntryType::kRegular;
      e.size = static_cast<uint64_t>(st.st_size);
      if (e.size > 0) {
        // O_NONBLOCK: should the name have become a FIFO since the stat, the open must not
        // block; the fstat then refuses anything but the file that was stat'ed.
        file_.Reset(::openat(dir_fd, name.c_str(),
                             O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
        if (!file_.valid()) return Fail(SysError("open file", rel));
        struct stat opened;
        if (::fstat(file_.get(), &opened) != 0) return Fail(SysError("stat", rel));
        if (!S_ISREG(opened.st_mode) || opened.st_dev != st.st_dev || opened.st_ino != st.st_ino) {
          return Fail(EAGAIN, "rootfs file " + QuoteName(rel) + " changed while it was read");
        }
        file_left_ = e.size;
        file_pad_ = TarPadding(e.size);
        file_path_ = rel;
        stats_.payload_bytes += e.size;
      }
    } else if (S_ISLNK(st.st_mode)) {
      e.type = EntryType::kSymlink;
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      for (;;) {
        ssize_t n = ::readlinkat(dir_fd, name.c_str(), target.data(), target.size());
        if (n < 0) return Fail(SysError("read symlink", rel));
        if (static_cast<size_t>(n) < target.size()) {
          target.resize(static_cast<size_t>(n));
          break;
        }
        target.resize(target.size() * 2);
      }
      if (target.empty() || target.size() > kMaxPathLength)
        return Fail(ENAMETOOLONG, "symlink " + QuoteName(rel) + " has an unusable target");
      e.link_name = std::move(target);
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      e.type = S_ISCHR(st.st_mode) ? EntryType::kCharDevice : EntryType::kBlockDevice;
      e.dev_major = major(st.st_rdev);
      e.dev_minor = minor(st.st_rdev);
    } else {
      e.type = EntryType::kFifo;
    }
    HOIST_ASSIGN_OR_RETURN(pending_, EncodeTarHeader(w));
    ++stats_.entries;
    return Ok();
  }
  pending_.assign(TarEndOfArchive());
  done_ = true;
  return Ok();
}

Result<size_t> DirTarStream::Read(char* buf, size_t n) {
  if (failed_) return Fail(EIO, "dir walker of " + QuoteName(root_) + " already failed");
  size_t out = 0;
  while (out < n) {
    if (pending_pos_ < pending_.size()) {
      const size_t k = std::min(n - out, pending_.size() - pending_pos_);
      std::memcpy(buf + out, pending_.data() + pending_pos_, k);
      pending_pos_ += k;
      out += k;
      continue;
    }
    if (file_left_ > 0) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(n - out, file_left_));
      ssize_t r = ::read(file_.get(), buf + out, want);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        failed_ = true;
        return Fail(SysError("read file", file_path_));
      }
      if (r == 0) {
        failed_ = true;
        return Fail(EIO, "file " + QuoteName(file_path_) + " shrank while it was being read");
      }
      out += static_cast<size_t>(r);
      file_left_ -= static_cast<uint64_t>(r);
      if (file_left_ == 0) {
        file_.Reset();
        pending_.assign(file_pad_, '\0');
        pending_pos_ = 0;
      }
      continue;
    }
    if (done_) break;
    if (Status st = Advance(); !st) {
      failed_ = true;
      return Fail(st.error());
    }
  }
  return out;
}

}  // namespace hoist
