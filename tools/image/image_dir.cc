// dir:DIR — skopeo's directory layout (containers/image "dir" transport, version 1.1):
//   DIR/version            "Directory Transport Version: 1.1\n"
//   DIR/manifest.json      the top manifest (or index) bytes
//   DIR/<hex>              every blob (layers, configs), named by its sha256 hex digest
//   DIR/<hex>.manifest.json  a child manifest of an index, by its digest
//
// The source reads the layout as an untrusted tree (RootDir: nothing outside DIR, regular files
// only, manifests capped at 8 MiB) and refuses a directory without the version file: that
// is a plain tree, which rootfs:DIR reads.
//
// The destination writes a new layout into a sibling temporary directory and puts it in place at
// Commit (renameat2 RENAME_EXCHANGE over an existing layout, which is then removed), so a reader
// sees the old layout or the whole new one. Like skopeo, it replaces an existing dir: layout; it
// refuses a non-empty directory that is not one (nothing is overwritten). The temporary directory
// (DIR.hoist-tmp-PID) is removed on SIGINT/SIGTERM/SIGHUP once the verb installed the cleanup
// (base/cleanup_on_signal.h), and a killed run's is swept by the next write to DIR.
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include "base/cleanup_on_signal.h"
#include "base/file_util.h"
#include "base/root_dir.h"
#include "tools/image/image_impl.h"
#include "tools/image/image_manifest.h"

namespace hoist {
namespace {

constexpr char kVersionFile[] = "version";
constexpr char kVersion[] = "Directory Transport Version: 1.1\n";
constexpr std::string_view kVersionPrefix = "Directory Transport Version: 1.";

std::string BlobName(const Digest& d) { return std::string(d.hex()); }
std::string ChildManifestName(const Digest& d) { return std::string(d.hex()) + ".manifest.json"; }

class SkopeoDirSource : public TreeBlobSource {
 public:
  SkopeoDirSource(RootDir root, std::string dir)
      : TreeBlobSource(std::move(root), std::move(dir)) {}

  std::string name() const override { return "dir:" + dir_; }

  Result<RawManifest> TopManifest() override {
    HOIST_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                           root_.ReadRegularFile("manifest.json", kMaxJsonBytes));
    if (!bytes) return Fail(ENOENT, dir_ + " is not a dir: image layout (no manifest.json)");
    return Typed(std::move(*bytes), Digest::Of(*bytes));
  }

  Result<RawManifest> Manifest(const Digest& digest) override {
    HOIST_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                           root_.ReadRegularFile(ChildManifestName(digest), kMaxJsonBytes));
    if (!bytes) return Fail(ENOENT, "manifest " + digest.str() + " is missing from " + dir_);
    if (Digest::Of(*bytes) != digest) {
      return Fail(EIO, "manifest " + digest.str() + " in " + dir_ + " does not match its digest");
    }
    return Typed(std::move(*bytes), digest);
  }

 private:
  std::string BlobName(const Digest& d) const override { return hoist::BlobName(d); }

  static Result<RawManifest> Typed(std::string bytes, Digest digest) {
    HOIST_ASSIGN_OR_RETURN(std::string type, ManifestMediaType("", bytes));
    return RawManifest{std::move(bytes), std::move(type), std::move(digest)};
  }
};

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// 1: an empty directory, 0: not empty, -1: cannot be read.
int IsEmptyDir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return -1;
  int empty = 1;
  while (struct dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") {
      empty = 0;
      break;
    }
  }
  ::closedir(d);
  return empty;
}

class SkopeoDirDestination : public ImageDestination {
 public:
  SkopeoDirDestination(std::string dir, std::string root)
      : dir_(std::move(dir)), root_(std::move(root)) {}
  ~SkopeoDirDestination() override {
    if (!committed_) Abort();
  }

  std::string name() const override { return "dir:" + dir_; }

  Result<bool> EnsureBlob(const Descriptor& blob, const ImageSource*) override {
    return Exists(root_ + "/" + BlobName(blob.digest));
  }

  Status PutBlob(const Descriptor& blob, ByteReader& reader) override {
    const std::string path = root_ + "/" + BlobName(blob.digest);
    if (Exists(path)) return Drain(reader);
    return WriteBlobFile(path, blob, reader);
  }

  Status PutBlobFile(const Descriptor& blob, const std::string& file) override {
    const std::string path = root_ + "/" + BlobName(blob.digest);
    if (Exists(path)) return Ok();
    if (::rename(file.c_str(), path.c_str()) == 0) {
      ::chmod(path.c_str(), 0644);
      return Ok();
    }
    if (errno != EXDEV) return Fail(ErrnoError("rename " + file + " to " + path));
    return ImageDestination::PutBlobFile(blob, file);
  }

  Status PutManifest(const RawManifest& m, bool top_level) override {
    if (top_level) {
      top_ = m;
      return Ok();
    }
    return WriteFileAtomic(root_ + "/" + ChildManifestName(m.digest), m.bytes, 0644);
  }

  Status Commit() override {
    if (!top_) return Fail(EINVAL, "no manifest was written to " + dir_);
    HOIST_RETURN_IF_ERROR(WriteFileAtomic(root_ + "/manifest.json", top_->bytes, 0644));
    HOIST_RETURN_IF_ERROR(WriteFileAtomic(root_ + "/" + kVersionFile, kVersion, 0644));
    if (Exists(dir_)) {
      // dir_ was checked at open: an empty directory or an old dir: layout.
      if (::renameat2(AT_FDCWD, root_.c_str(), AT_FDCWD, dir_.c_str(), RENAME_EXCHANGE) != 0) {
        return Fail(ErrnoError("exchange " + root_ + " with " + dir_));
      }
      committed_ = true;
      (void)RemoveTree(root_);  // now the old layout; a leftover is only disk space
      KeepOnSignal(root_);
      return Ok();
    }
    HOIST_RETURN_IF_ERROR(RenameRegistered(root_, dir_));
    committed_ = true;
    return Ok();
  }

  void Abort() override {
    if (committed_) return;
    committed_ = true;  // idempotent
    (void)RemoveTree(root_);
    KeepOnSignal(root_);
  }

 private:
  std::string dir_;
  std::string root_;  // the temporary sibling the layout is written into
  bool committed_ = false;
  std::optional<RawManifest> top_;
};

}  // namespace

Result<std::unique_ptr<ImageSource>> NewSkopeoDirSource(const std::string& dir) {
  auto root = RootDir::Open(dir, "dir: layout " + dir);
  if (!root) {
    if (root.error().code() == ENOENT || root.error().code() == ENOTDIR) {
      return Fail(ENOENT, dir + " is not a dir: image layout (no such directory)");
    }
    return Fail(root.error());
  }
  HOIST_ASSIGN_OR_RETURN(std::optional<std::string> version,
                         root->ReadRegularFile(kVersionFile, 4096));
  if (!version) {
    return Fail(EINVAL, dir +
                            " is not a dir: image layout (no version file); a root filesystem "
                            "is read with rootfs:" +
                            dir);
  }
  if (!version->starts_with(kVersionPrefix)) {
    return Fail(EINVAL, dir + "/version: not a dir: layout version this hoist reads (" +
                            std::string(kVersion, sizeof(kVersion) - 2) + ")");
  }
  return std::unique_ptr<ImageSource>(new SkopeoDirSource(std::move(*root), dir));
}

Result<std::unique_ptr<ImageDestination>> NewSkopeoDirDestination(const std::string& dir) {
  struct stat st;
  if (::lstat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return Fail(EEXIST, dir + " exists and is not a directory");
    if (!Exists(dir + "/" + kVersionFile)) {
      const int empty = IsEmptyDir(dir);
      if (empty < 0) return Fail(ErrnoError("open " + dir));
      if (empty == 0) {
        return Fail(EEXIST, dir +
                                " exists and is not a dir: image layout (no version file); "
                                "refusing to overwrite it");
      }
    }
  }
  // A killed run's temporary layout is swept; this run's goes on a signal.
  const size_t slash = dir.rfind('/');
  (void)SweepStale(slash == std::string::npos ? "."
                   : slash == 0               ? "/"
                                              : dir.substr(0, slash),
                   dir.substr(slash + 1) + ".hoist-tmp-");
  const std::string root = dir + ".hoist-tmp-" + std::to_string(::getpid());
  (void)RemoveTree(root);
  RemoveOnSignal(root);  // base/cleanup_on_signal.h: gone on SIGINT/SIGTERM/SIGHUP
  if (Status st = MakeDirs(root); !st) {
    KeepOnSignal(root);
    return Fail(st.error());
  }
  return std::unique_ptr<ImageDestination>(new SkopeoDirDestination(dir, root));
}

}  // namespace hoist
