// oci:DIR[:TAG] — the OCI image layout (image-spec image-layout.md): DIR/oci-layout,
// DIR/index.json, DIR/blobs/<alg>/<hex>.
//
// Destination atomicity: a new layout is written into a sibling temporary directory that is
// renamed to DIR at Commit. In an existing layout, blobs are written under temporary names and
// renamed (so a blob file is always complete), index.json is replaced atomically at Commit, and
// Abort removes the blobs this run added.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdio>
#include <vector>

#include "base/cleanup_on_signal.h"
#include "base/file_util.h"
#include "base/mutex.h"
#include "base/root_dir.h"
#include "base/scoped_fd.h"
#include "tools/image/image_impl.h"
#include "tools/image/image_manifest.h"

namespace hoist {
namespace {

constexpr char kLayoutFile[] = "{\"imageLayoutVersion\":\"1.0.0\"}";

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string BlobPath(const std::string& dir, const Digest& d) {
  return dir + "/blobs/sha256/" + std::string(d.hex());
}

// A layout is read as an untrusted tree: every file is resolved inside DIR (a symlinked blob
// cannot point at a host file), must be a regular file, and is read no further than its
// descriptor's size (manifests and index.json, whose size is not known up front, up to
// kMaxLayoutJsonBytes, the registry client's manifest limit).
constexpr size_t kMaxLayoutJsonBytes = 8 << 20;

class OciSource : public TreeBlobSource {
 public:
  OciSource(RootDir layout, std::string dir, std::string tag)
      : TreeBlobSource(std::move(layout), std::move(dir)), tag_(std::move(tag)) {}

  std::string name() const override { return "oci:" + dir_ + (tag_.empty() ? "" : ":" + tag_); }

  Result<RawManifest> TopManifest() override {
    HOIST_ASSIGN_OR_RETURN(std::optional<struct stat> marker, root_.Stat("oci-layout"));
    if (!marker) return Fail(ENOENT, dir_ + " is not an OCI image layout (no oci-layout file)");
    HOIST_ASSIGN_OR_RETURN(std::optional<std::string> index_bytes,
                           root_.ReadRegularFile("index.json", kMaxLayoutJsonBytes));
    if (!index_bytes) return Fail(ENOENT, dir_ + " is not an OCI image layout (no index.json)");
    return LayoutTopManifest(*this, *index_bytes, tag_, dir_, "oci:DIR:TAG");
  }

  Result<RawManifest> Manifest(const Digest& digest) override {
    return ManifestFromBlob(*this, digest);
  }

 private:
  std::string BlobName(const Digest& d) const override {
    return "blobs/sha256/" + std::string(d.hex());
  }

  std::string tag_;
};

class OciDestination : public ImageDestination {
 public:
  OciDestination(std::string dir, std::string tag, std::string root, bool fresh)
      : dir_(std::move(dir)), tag_(std::move(tag)), root_(std::move(root)), fresh_(fresh) {}
  ~OciDestination() override {
    if (!committed_) Abort();
  }

  std::string name() const override { return "oci:" + dir_ + (tag_.empty() ? "" : ":" + tag_); }

  Result<bool> EnsureBlob(const Descriptor& blob, const ImageSource*) override {
    return Exists(BlobPath(root_, blob.digest));
  }

  Status PutBlob(const Descriptor& blob, ByteReader& reader) override {
    std::string path = BlobPath(root_, blob.digest);
    if (Exists(path)) return Drain(reader);
    HOIST_RETURN_IF_ERROR(WriteBlobFile(path, blob, reader));
    Added(path);
    return Ok();
  }

  Status PutBlobFile(const Descriptor& blob, const std::string& file) override {
    std::string path = BlobPath(root_, blob.digest);
    if (Exists(path)) return Ok();
    if (::rename(file.c_str(), path.c_str()) == 0) {
      ::chmod(path.c_str(), 0644);
      Added(path);
      return Ok();
    }
    if (errno != EXDEV) return Fail(ErrnoError("rename " + file + " to " + path));
    return ImageDestination::PutBlobFile(blob, file);
  }

  Status PutManifest(const RawManifest& m, bool top_level) override {
    std::string path = BlobPath(root_, m.digest);
    if (!Exists(path)) {
      HOIST_RETURN_IF_ERROR(WriteFileAtomic(path, m.bytes, 0644));
      Added(path);
    }
    if (top_level) top_ = m;
    return Ok();
  }

  Status Commit() override {
    if (!top_) return Fail(EINVAL, "no manifest was written to " + dir_);
    std::string index_path = root_ + "/index.json";
    rapidjson::Document doc;
    if (!fresh_ && Exists(index_path)) {
      HOIST_ASSIGN_OR_RETURN(std::string bytes, ReadFile(index_path));
      doc.Parse(bytes.data(), bytes.size());
      if (doc.HasParseError() || !doc.IsObject()) {
        return Fail(EINVAL, index_path + " is not valid JSON");
      }
    } else {
      doc.SetObject();
      doc.AddMember("schemaVersion", 2, doc.GetAllocator());
      doc.AddMember("mediaType", rapidjson::Value(kMediaTypeOciIndex.data(), doc.GetAllocator()),
                    doc.GetAllocator());
    }
    auto& a = doc.GetAllocator();
    if (!doc.HasMember("manifests") || !doc["manifests"].IsArray()) {
      doc.RemoveMember("manifests");
      doc.AddMember("manifests", rapidjson::Value(rapidjson::kArrayType), a);
    }
    rapidjson::Value& list = doc["manifests"];
    rapidjson::Value kept(rapidjson::kArrayType);
    for (auto& e : list.GetArray()) {
      bool same_tag = false;
      if (e.IsObject() && e.HasMember("annotations") && e["annotations"].IsObject()) {
        auto& ann = e["annotations"];
        auto it = ann.FindMember(kRefNameAnnotation.data());
        same_tag = !tag_.empty() && it != ann.MemberEnd() && it->value.IsString() &&
                   tag_ == it->value.GetString();
      }
      if (!same_tag) kept.PushBack(rapidjson::Value(e, a), a);
    }
    rapidjson::Value desc(rapidjson::kObjectType);
    desc.AddMember("mediaType", rapidjson::Value(top_->media_type.c_str(), a), a);
    desc.AddMember("digest", rapidjson::Value(top_->digest.str().c_str(), a), a);
    desc.AddMember("size", rapidjson::Value().SetUint64(top_->bytes.size()), a);
    if (!tag_.empty()) {
      rapidjson::Value ann(rapidjson::kObjectType);
      ann.AddMember(rapidjson::Value(kRefNameAnnotation.data(), a),
                    rapidjson::Value(tag_.c_str(), a), a);
      desc.AddMember("annotations", ann, a);
    }
    kept.PushBack(desc, a);
    list = kept;
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buf);
    doc.Accept(writer);
    HOIST_RETURN_IF_ERROR(
        WriteFileAtomic(index_path, std::string_view(buf.GetString(), buf.GetSize())));
    if (fresh_) {
      HOIST_RETURN_IF_ERROR(WriteFileAtomic(root_ + "/oci-layout", kLayoutFile));
      HOIST_RETURN_IF_ERROR(RenameRegistered(root_, dir_));
    }
    committed_ = true;
    return Ok();
  }

  void Abort() override {
    if (committed_) return;
    committed_ = true;  // idempotent
    if (fresh_) {
      (void)RemoveTree(root_);
      KeepOnSignal(root_);
      return;
    }
    MutexLock lock(mu_);
    for (const auto& p : added_) ::unlink(p.c_str());
  }

 private:
  void Added(const std::string& path) {
    MutexLock lock(mu_);
    added_.push_back(path);
  }

  std::string dir_;
  std::string tag_;
  std::string root_;  // where files are written: dir_ or a temporary sibling
  bool fresh_;
  bool committed_ = false;
  std::optional<RawManifest> top_;
  Mutex mu_;
  std::vector<std::string> added_ HOIST_GUARDED_BY(mu_);
};

}  // namespace

Result<RawManifest> ManifestFromBlob(ImageSource& source, const Digest& digest) {
  Descriptor b;
  b.digest = digest;
  b.size = -1;
  HOIST_ASSIGN_OR_RETURN(std::string bytes, source.ReadBlob(b));
  HOIST_ASSIGN_OR_RETURN(std::string type, ManifestMediaType("", bytes));
  return RawManifest{std::move(bytes), std::move(type), digest};
}

Result<RawManifest> LayoutTopManifest(ImageSource& source, std::string_view index_bytes,
                                      const std::string& tag, const std::string& where,
                                      std::string_view syntax) {
  HOIST_ASSIGN_OR_RETURN(Descriptor found, SelectLayoutEntry(index_bytes, tag, where, syntax));
  HOIST_ASSIGN_OR_RETURN(RawManifest m, ManifestFromBlob(source, found.digest));
  HOIST_ASSIGN_OR_RETURN(m.media_type, ManifestMediaType(found.media_type, m.bytes));
  return m;
}

Result<Descriptor> SelectLayoutEntry(std::string_view index_bytes, const std::string& tag,
                                     const std::string& where, std::string_view syntax) {
  auto index = ParseImageIndex(index_bytes, kMediaTypeOciIndex);
  if (!index) return Fail(index.error().Context(where + "/index.json"));
  const Descriptor* found = nullptr;
  int candidates = 0;
  for (const auto& e : index->manifests) {
    auto ref = e.annotations.find(std::string(kRefNameAnnotation));
    if (tag.empty()) {
      ++candidates;
      found = &e;
    } else if (ref != e.annotations.end() && ref->second == tag) {
      found = &e;
    }
  }
  if (tag.empty() && candidates > 1) {
    return Fail(EINVAL, where + " holds " + std::to_string(candidates) + " images; name one with " +
                            std::string(syntax));
  }
  if (found == nullptr) {
    return Fail(ENOENT, tag.empty() ? where + " holds no image"
                                    : "no image tagged \"" + tag + "\" in " + where);
  }
  return *found;
}

Status ImageDestination::PutBlobFile(const Descriptor& blob, const std::string& path) {
  HOIST_ASSIGN_OR_RETURN(auto reader, FileReader::Open(path));
  return PutBlob(blob, *reader);
}

Status WriteBlobFile(const std::string& final_path, const Descriptor& blob, ByteReader& reader) {
  // ".tmp-" first: `hoist prune` leaves such files alone for an hour (a pull may be writing).
  // The PID next: the next WriteBlobFile in this directory sweeps those of dead processes.
  const size_t slash = final_path.rfind('/');
  const std::string dir = final_path.substr(0, slash + 1);
  (void)SweepStale(dir.empty() ? "." : dir.substr(0, dir.size() - 1), ".tmp-");
  std::string tmp =
      dir + ".tmp-" + std::to_string(::getpid()) + "-" + final_path.substr(slash + 1) + "-XXXXXX";
  ScopedFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (!fd.valid()) return Fail(ErrnoError("creating a temporary file for " + final_path));
  RemoveOnSignal(tmp);
  auto fail = [&](Error e) {
    ::unlink(tmp.c_str());
    KeepOnSignal(tmp);
    return Fail(std::move(e));
  };
  Sha256 sha;
  uint64_t total = 0;
  std::vector<char> buf(1 << 20);
  for (;;) {
    auto got = reader.Read(buf.data(), buf.size());
    if (!got) return fail(got.error().Context("reading blob " + blob.digest.str()));
    if (*got == 0) break;
    sha.Update(buf.data(), *got);
    total += *got;
    if (auto w = WriteAll(fd.get(), std::string_view(buf.data(), *got), tmp); !w) {
      return fail(w.error());
    }
  }
  const Digest got_digest = Digest::FromSha256(sha.Final());
  if (got_digest != blob.digest) {
    return fail(Error(
        EIO, "blob " + blob.digest.str() + ": digest mismatch (got " + got_digest.str() + ")"));
  }
  if (blob.size >= 0 && total != static_cast<uint64_t>(blob.size)) {
    return fail(Error(EIO, "blob " + blob.digest.str() + ": size " + std::to_string(total) +
                               ", expected " + std::to_string(blob.size)));
  }
  // Durable before it is visible under its final name: a crash leaves the old state or the
  // whole blob, never a short one.
  if (::fchmod(fd.get(), 0644) != 0 || ::fsync(fd.get()) != 0) {
    return fail(ErrnoError("syncing " + tmp));
  }
  fd.Reset();
  if (Status st = RenameRegistered(tmp, final_path); !st) return fail(st.error());
  return Ok();
}

Result<std::unique_ptr<ImageSource>> NewOciSource(const std::string& dir, const std::string& tag) {
  auto layout = RootDir::Open(dir, "OCI layout " + dir);
  if (!layout) {
    if (layout.error().code() == ENOENT || layout.error().code() == ENOTDIR) {
      return Fail(ENOENT, dir + " is not an OCI image layout (no such directory)");
    }
    return Fail(layout.error());
  }
  return std::unique_ptr<ImageSource>(new OciSource(std::move(*layout), dir, tag));
}

Result<std::unique_ptr<ImageDestination>> NewOciDestination(const std::string& dir,
                                                            const std::string& tag) {
  bool fresh = !Exists(dir + "/oci-layout");
  std::string root = dir;
  if (fresh) {
    if (Exists(dir)) {
      // An existing non-layout path: only an empty directory may be replaced.
      if (::rmdir(dir.c_str()) != 0) {
        return Fail(EEXIST, dir + " exists and is not an OCI image layout");
      }
      if (::mkdir(dir.c_str(), 0755) != 0) return Fail(ErrnoError("mkdir " + dir));
    }
    const size_t slash = dir.rfind('/');
    (void)SweepStale(slash == std::string::npos ? "."
                     : slash == 0               ? "/"
                                                : dir.substr(0, slash),
                     dir.substr(slash + 1) + ".hoist-tmp-");  // a killed run's
    root = dir + ".hoist-tmp-" + std::to_string(::getpid());
    (void)RemoveTree(root);
    RemoveOnSignal(root);  // base/cleanup_on_signal.h: gone on SIGINT/SIGTERM/SIGHUP
  }
  HOIST_RETURN_IF_ERROR(MakeDirs(root + "/blobs/sha256"));
  return std::unique_ptr<ImageDestination>(new OciDestination(dir, tag, root, fresh));
}

}  // namespace hoist
