// rootfs:DIR — a one-layer image built from a root filesystem tree. A directory that is an image
// layout instead (skopeo's dir: — version file and manifest.json — or OCI's — oci-layout and
// index.json) is refused with a line naming the transport that reads it. The layer is the
// deterministic tar of ROOTFS (index/dir_walker.h), spooled once to the work dir while it is hashed
// (the tar is uncompressed, so its sha256 is both the layer digest and the diff_id); the converter
// then reads the spooled file. The config is written here: the host's os/architecture (or the
// options'), `created` fixed to the epoch (or SOURCE_DATE_EPOCH) so the same tree gives the same
// image, the
// --cmd/--entrypoint/--env/--workdir/--label fields, rootfs.diff_ids and one history entry.
#include <fcntl.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>

#include "base/rfc3339.h"
#include "base/scoped_fd.h"
#include "index/dir_walker.h"
#include "tools/image/docker_archive.h"
#include "tools/image/image_impl.h"

namespace hoist {
namespace {

// RFC 3339 UTC time of SOURCE_DATE_EPOCH, or of the epoch.
Result<std::string> CreatedTime() {
  int64_t seconds = 0;
  if (const char* env = ::getenv("SOURCE_DATE_EPOCH"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(env, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0) {
      return Fail(EINVAL, std::string("SOURCE_DATE_EPOCH \"") + env + "\" is not a number");
    }
    seconds = v;
  }
  return FormatRfc3339(seconds);
}

std::string BuildConfig(const SourceOptions& o, const std::string& created, const Digest& diff_id) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  auto str = [&w](std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  };
  auto list = [&](std::string_view key, const std::vector<std::string>& v) {
    if (v.empty()) return;
    str(key);
    w.StartArray();
    for (const auto& s : v) str(s);
    w.EndArray();
  };
  Platform host = Platform::Host();
  w.StartObject();
  str("created");
  str(created);
  str("architecture");
  str(o.architecture.empty() ? host.architecture : o.architecture);
  if (o.architecture.empty() && !host.variant.empty()) {
    str("variant");
    str(host.variant);
  }
  str("os");
  str(o.os.empty() ? "linux" : o.os);
  str("config");
  w.StartObject();
  list("Env", o.env);
  list("Entrypoint", o.entrypoint);
  list("Cmd", o.cmd);
  if (!o.workdir.empty()) {
    str("WorkingDir");
    str(o.workdir);
  }
  if (!o.labels.empty()) {
    str("Labels");
    w.StartObject();
    for (const auto& [k, v] : o.labels) {
      str(k);
      str(v);
    }
    w.EndObject();
  }
  w.EndObject();
  str("rootfs");
  w.StartObject();
  str("type");
  str("layers");
  str("diff_ids");
  w.StartArray();
  str(diff_id.str());
  w.EndArray();
  w.EndObject();
  str("history");
  w.StartArray();
  w.StartObject();
  str("created");
  str(created);
  str("created_by");
  str("hoist convert rootfs:DIR");
  w.EndObject();
  w.EndArray();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

// Writes the tar of `rootfs` to `path`; returns its digest and size.
Result<std::pair<Digest, uint64_t>> SpoolTar(const std::string& rootfs, const std::string& path) {
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<DirTarStream> tar, DirTarStream::Open(rootfs));
  ScopedFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return Fail(ErrnoError("create " + path));
  Sha256 sha;
  uint64_t total = 0;
  std::vector<char> buf(1 << 20);
  for (;;) {
    HOIST_ASSIGN_OR_RETURN(size_t got, tar->Read(buf.data(), buf.size()));
    if (got == 0) break;
    sha.Update(buf.data(), got);
    total += got;
    size_t off = 0;
    while (off < got) {
      ssize_t n = ::write(fd.get(), buf.data() + off, got - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Fail(ErrnoError("write " + path));
      }
      off += static_cast<size_t>(n);
    }
  }
  if (::close(fd.Release()) != 0) return Fail(ErrnoError("write " + path));
  return std::make_pair(Digest::FromSha256(sha.Final()), total);
}

class DirSource : public ImageSource {
 public:
  DirSource(std::string name, std::string config, Descriptor layer, std::string layer_path)
      : name_(std::move(name)),
        config_(std::move(config)),
        layer_(std::move(layer)),
        layer_path_(std::move(layer_path)) {
    Descriptor cd;
    cd.media_type = kMediaTypeOciConfig;
    cd.digest = Digest::Of(config_);
    cd.size = static_cast<int64_t>(config_.size());
    config_digest_ = cd.digest;
    std::string bytes = SynthesizeManifest(kMediaTypeOciManifest, cd, {layer_});
    const Digest d = Digest::Of(bytes);
    manifest_ = RawManifest{std::move(bytes), std::string(kMediaTypeOciManifest), d};
  }
  ~DirSource() override { ::unlink(layer_path_.c_str()); }

  std::string name() const override { return name_; }
  Result<RawManifest> TopManifest() override { return manifest_; }
  Result<RawManifest> Manifest(const Digest& digest) override {
    if (digest != manifest_.digest) return Fail(ENOENT, "no manifest " + digest.str());
    return manifest_;
  }
  Result<std::string> ReadBlob(const Descriptor& blob) override {
    if (blob.digest != config_digest_) {
      return Fail(ENOENT, "no small blob " + blob.digest.str() + " in " + name_);
    }
    return config_;
  }
  Result<std::unique_ptr<ByteReader>> OpenBlob(const Descriptor& blob) override {
    if (blob.digest == config_digest_) {
      return std::unique_ptr<ByteReader>(std::make_unique<StringReader>(config_));
    }
    if (blob.digest != layer_.digest) return Fail(ENOENT, "no blob " + blob.digest.str());
    HOIST_ASSIGN_OR_RETURN(auto reader, FileReader::Open(layer_path_));
    return std::unique_ptr<ByteReader>(std::move(reader));
  }
  Result<std::string> ReadBlobRange(const Descriptor& blob, uint64_t offset,
                                    uint64_t length) override {
    if (blob.digest != layer_.digest) return Fail(ENOENT, "no blob " + blob.digest.str());
    if (offset > static_cast<uint64_t>(layer_.size) ||
        length > static_cast<uint64_t>(layer_.size) - offset) {
      return Fail(EINVAL, "range beyond the end of " + blob.digest.str());
    }
    HOIST_ASSIGN_OR_RETURN(auto reader, FileReader::Open(layer_path_, offset, length));
    std::string out(length, '\0');
    HOIST_ASSIGN_OR_RETURN(size_t got, ReadFull(*reader, out.data(), length));
    if (got != length) return Fail(EIO, layer_path_ + " is shorter than expected");
    return out;
  }

 private:
  std::string name_;
  std::string config_;
  Digest config_digest_;
  Descriptor layer_;
  std::string layer_path_;
  RawManifest manifest_;
};

}  // namespace

Result<std::unique_ptr<ImageSource>> NewRootfsSource(const std::string& rootfs,
                                                     const SourceOptions& options) {
  const std::string name = "rootfs:" + rootfs;
  auto fail = [&](const Error& e) { return Fail(e.Context(name)); };
  struct stat st;
  if (::stat(rootfs.c_str(), &st) != 0) return fail(ErrnoError("stat " + rootfs));
  if (!S_ISDIR(st.st_mode)) return fail(Error{ENOTDIR, rootfs + " is not a directory"});
  auto has = [&](const char* file) {
    struct stat f;
    return ::lstat((rootfs + "/" + file).c_str(), &f) == 0 && S_ISREG(f.st_mode);
  };
  if (has("version") && has("manifest.json")) {
    return fail(Error{EINVAL, rootfs +
                                  " is a skopeo dir: image layout, not a root filesystem "
                                  "(name it dir:" +
                                  rootfs + ")"});
  }
  if (has("oci-layout") && has("index.json")) {
    return fail(Error{EINVAL, rootfs +
                                  " is an OCI image layout, not a root filesystem (name it "
                                  "oci:" +
                                  rootfs + ")"});
  }
  auto created = CreatedTime();
  if (!created) return fail(created.error());
  const std::string spool = (options.work_dir.empty() ? std::string("/tmp") : options.work_dir) +
                            "/dir-layer-" + std::to_string(::getpid()) + ".tar";
  auto spooled = SpoolTar(rootfs, spool);
  if (!spooled) {
    ::unlink(spool.c_str());
    return fail(spooled.error());
  }
  Descriptor layer;
  layer.media_type = kMediaTypeOciLayerTar;
  layer.digest = spooled->first;
  layer.size = static_cast<int64_t>(spooled->second);
  std::string config = BuildConfig(options, *created, layer.digest);
  return std::unique_ptr<ImageSource>(
      std::make_unique<DirSource>(name, std::move(config), std::move(layer), spool));
}

}  // namespace hoist
