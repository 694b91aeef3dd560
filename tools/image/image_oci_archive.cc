// oci-archive:FILE[:TAG] — a tar of an OCI image layout (oci-layout, index.json,
// blobs/sha256/<hex>), what `skopeo copy ... oci-archive:`, buildah and `hoist save --format
// oci-archive` write.
//
// Source: the archive is never extracted. Its headers are scanned once (TarArchive,
// tools/image/docker_archive.h) and members are read in place with pread, so a hostile member
// name ("../x", "/etc/passwd", a symlink member pointing anywhere) is only ever a key looked up in
// that table, never a path on the host. index.json and manifests are read up to 8 MiB (EFBIG
// beyond), a config blob up to its descriptor's size, and a blob member whose size differs from
// its descriptor's is refused (EIO) before it is read. A gzip/zstd-compressed archive is first
// decompressed into an unlinked file in the work dir (PlainArchive; gone when the source closes).
//
// Destination: the image is written as an OCI layout (tools/image/image_oci.cc) into a private
// directory beside FILE (".<name>.hoist-tmp-XXXXXX"); Commit tars it (oci-layout, index.json,
// blobs/, blobs/sha256/, the blobs sorted by name) into that directory, fsyncs it and renames it
// over FILE. The private directory is removed whatever happens (Commit, Abort, destruction; only
// a process killed outright leaves it), so FILE is either untouched or the whole new archive. An
// existing FILE is replaced (one image per archive, like skopeo).
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "base/cleanup_on_signal.h"
#include "base/file_util.h"
#include "base/scoped_fd.h"
#include "tools/image/archive_writer.h"
#include "tools/image/docker_archive.h"
#include "tools/image/image_impl.h"
#include "tools/image/image_manifest.h"

namespace hoist {
namespace {

std::string ArchiveName(const std::string& file, const std::string& tag) {
  return "oci-archive:" + file + (tag.empty() ? "" : ":" + tag);
}

std::string BlobMember(const Digest& d) { return "blobs/sha256/" + std::string(d.hex()); }

class OciArchiveSource : public ImageSource {
 public:
  OciArchiveSource(std::string file, std::string tag, ScopedFd spool, TarArchive archive)
      : file_(std::move(file)),
        tag_(std::move(tag)),
        spool_(std::move(spool)),
        archive_(std::move(archive)) {}

  std::string name() const override { return ArchiveName(file_, tag_); }

  Result<RawManifest> TopManifest() override {
    if (!archive_.Has("oci-layout")) {
      return Fail(ENOENT, file_ + " is not an OCI archive (no oci-layout member)");
    }
    if (!archive_.Has("index.json")) {
      return Fail(ENOENT, file_ + " is not an OCI archive (no index.json member)");
    }
    auto index_bytes = archive_.Read("index.json");
    if (!index_bytes) return Fail(index_bytes.error().Context(file_));
    return LayoutTopManifest(*this, *index_bytes, tag_, file_, "oci-archive:FILE:TAG");
  }

  Result<RawManifest> Manifest(const Digest& digest) override {
    return ManifestFromBlob(*this, digest);
  }

  Result<std::string> ReadBlob(const Descriptor& blob) override {
    HOIST_ASSIGN_OR_RETURN(std::string member, Member(blob));
    auto bytes = archive_.Read(member);
    if (!bytes) return Fail(bytes.error().Context(file_));
    if (Digest::Of(*bytes) != blob.digest) {
      return Fail(EIO, "blob " + blob.digest.str() + " in " + file_ + " does not match its digest");
    }
    return std::move(*bytes);
  }

  Result<std::unique_ptr<ByteReader>> OpenBlob(const Descriptor& blob) override {
    HOIST_ASSIGN_OR_RETURN(std::string member, Member(blob));
    return archive_.Open(member);
  }

  Result<std::string> ReadBlobRange(const Descriptor& blob, uint64_t offset,
                                    uint64_t length) override {
    HOIST_ASSIGN_OR_RETURN(std::string member, Member(blob));
    HOIST_ASSIGN_OR_RETURN(auto reader, archive_.Open(member, offset, length));
    std::string out(length, '\0');
    HOIST_ASSIGN_OR_RETURN(size_t got, ReadFull(*reader, out.data(), length));
    if (got != length) return Fail(EIO, "blob " + blob.digest.str() + " is shorter than expected");
    return out;
  }

 private:
  // The member holding `blob`, checked to exist and to have the descriptor's size.
  Result<std::string> Member(const Descriptor& blob) const {
    std::string member = BlobMember(blob.digest);
    if (!archive_.Has(member)) {
      return Fail(ENOENT, "blob " + blob.digest.str() + " is missing from " + file_);
    }
    HOIST_ASSIGN_OR_RETURN(uint64_t size, archive_.Size(member));
    if (blob.size >= 0 && size != static_cast<uint64_t>(blob.size)) {
      return Fail(EIO, "blob " + blob.digest.str() + " in " + file_ + " has " +
                           std::to_string(size) + " bytes, its descriptor says " +
                           std::to_string(blob.size));
    }
    return member;
  }

  std::string file_;
  std::string tag_;
  ScopedFd spool_;  // the decompressed copy (unlinked), or invalid
  TarArchive archive_;
};

// Tars the committed layout at `layout` into `out` (an open, empty file).
Status TarLayout(const std::string& layout, int out) {
  ArchiveWriter w(out);
  HOIST_ASSIGN_OR_RETURN(std::string marker, ReadFile(layout + "/oci-layout"));
  HOIST_ASSIGN_OR_RETURN(std::string index, ReadFile(layout + "/index.json"));
  HOIST_RETURN_IF_ERROR(w.File("oci-layout", marker));
  HOIST_RETURN_IF_ERROR(w.File("index.json", index));
  HOIST_RETURN_IF_ERROR(w.Dir("blobs/"));
  HOIST_RETURN_IF_ERROR(w.Dir("blobs/sha256/"));
  const std::string blobs = layout + "/blobs/sha256";
  std::vector<std::string> names;
  {
    DIR* d = ::opendir(blobs.c_str());
    if (d == nullptr) return Fail(ErrnoError("opendir " + blobs));
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    const std::string path = blobs + "/" + n;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return Fail(ErrnoError("stat " + path));
    if (!S_ISREG(st.st_mode)) return Fail(EIO, path + " is not a regular file");
    HOIST_ASSIGN_OR_RETURN(auto reader, FileReader::Open(path));
    HOIST_RETURN_IF_ERROR(
        w.Stream("blobs/sha256/" + n, static_cast<uint64_t>(st.st_size), *reader));
  }
  return w.Finish();
}

class OciArchiveDestination : public ImageDestination {
 public:
  OciArchiveDestination(std::string file, std::string tag, std::string private_dir,
                        std::unique_ptr<ImageDestination> layout)
      : file_(std::move(file)),
        tag_(std::move(tag)),
        private_dir_(std::move(private_dir)),
        layout_(std::move(layout)) {}
  ~OciArchiveDestination() override {
    if (!done_) Abort();
  }

  std::string name() const override { return ArchiveName(file_, tag_); }

  Result<bool> EnsureBlob(const Descriptor& blob, const ImageSource* source) override {
    return layout_->EnsureBlob(blob, source);
  }
  Status PutBlob(const Descriptor& blob, ByteReader& reader) override {
    return layout_->PutBlob(blob, reader);
  }
  Status PutBlobFile(const Descriptor& blob, const std::string& path) override {
    return layout_->PutBlobFile(blob, path);
  }
  Status PutManifest(const RawManifest& manifest, bool top_level) override {
    return layout_->PutManifest(manifest, top_level);
  }

  Status Commit() override {
    Status st = CommitArchive();
    done_ = true;
    (void)RemoveTree(private_dir_);
    KeepOnSignal(private_dir_);
    return st;
  }

  void Abort() override {
    if (done_) return;
    done_ = true;
    layout_->Abort();
    (void)RemoveTree(private_dir_);
    KeepOnSignal(private_dir_);
  }

 private:
  Status CommitArchive() {
    HOIST_RETURN_IF_ERROR(layout_->Commit());
    const std::string tar = private_dir_ + "/archive.tar";
    ScopedFd fd(::open(tar.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd.valid()) return Fail(ErrnoError("creating " + tar));
    HOIST_RETURN_IF_ERROR(TarLayout(private_dir_ + "/layout", fd.get()));
    if (::fsync(fd.get()) != 0) return Fail(ErrnoError("fsync " + tar));
    fd.Reset();
    if (::rename(tar.c_str(), file_.c_str()) != 0) {
      return Fail(ErrnoError("rename " + tar + " to " + file_));
    }
    return Ok();
  }

  std::string file_;
  std::string tag_;
  std::string private_dir_;  // removed at the end, always
  std::unique_ptr<ImageDestination> layout_;
  bool done_ = false;
};

std::string ParentDir(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

Result<std::string> PlainArchive(const std::string& file, const std::string& work_dir,
                                 ScopedFd* scratch) {
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<FileReader> head_reader, FileReader::Open(file));
  std::string head(4, '\0');
  HOIST_ASSIGN_OR_RETURN(size_t got, ReadFull(*head_reader, head.data(), head.size()));
  head.resize(got);
  if (DetectCompression(head) == Compression::kNone) return file;
  const char* tmp = ::getenv("TMPDIR");
  const std::string dir = !work_dir.empty() ? work_dir : tmp != nullptr && *tmp ? tmp : "/tmp";
  std::string templ = dir + "/hoist-archive-XXXXXX";
  *scratch = ScopedFd(::mkostemp(templ.data(), O_CLOEXEC));
  if (!scratch->valid()) return Fail(ErrnoError("creating a scratch file in " + dir));
  ::unlink(templ.c_str());
  const std::string path = "/proc/self/fd/" + std::to_string(scratch->get());
  HOIST_RETURN_IF_ERROR(UncompressedArchive(file, path));
  return path;
}

Result<std::unique_ptr<ImageSource>> NewOciArchiveSource(const std::string& file,
                                                         const std::string& tag,
                                                         const SourceOptions& options) {
  const std::string name = ArchiveName(file, tag);
  auto fail = [&](const Error& e) { return Fail(e.Context(name)); };
  struct stat st;
  if (::stat(file.c_str(), &st) != 0) return fail(ErrnoError("stat " + file));
  if (S_ISDIR(st.st_mode)) {
    return fail(Error{EISDIR, file + " is a directory, not an archive (use oci:" + file + ")"});
  }
  ScopedFd spool;
  auto path = PlainArchive(file, options.work_dir, &spool);
  if (!path) return fail(path.error());
  auto archive = TarArchive::Scan(*path);
  if (!archive) return fail(archive.error());
  return std::unique_ptr<ImageSource>(
      new OciArchiveSource(file, tag, std::move(spool), std::move(*archive)));
}

Result<std::unique_ptr<ImageDestination>> NewOciArchiveDestination(const std::string& file,
                                                                   const std::string& tag) {
  const std::string name = ArchiveName(file, tag);
  struct stat st;
  if (::stat(file.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return Fail(EISDIR, name + ": " + file + " is a directory, not an archive");
  }
  const std::string parent = ParentDir(file);
  std::string templ = parent + "/." + file.substr(file.rfind('/') + 1) + ".hoist-tmp-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    return Fail(ErrnoError("creating a temporary directory in " + parent).Context(name));
  }
  RemoveOnSignal(templ);  // base/cleanup_on_signal.h: gone on SIGINT/SIGTERM/SIGHUP
  auto layout = NewOciDestination(templ + "/layout", tag);
  if (!layout) {
    (void)RemoveTree(templ);
    return Fail(layout.error().Context(name));
  }
  return std::unique_ptr<ImageDestination>(
      new OciArchiveDestination(file, tag, templ, std::move(*layout)));
}

}  // namespace hoist
