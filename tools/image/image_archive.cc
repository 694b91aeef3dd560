// docker-archive:FILE[:REF] — a `docker save` / `skopeo copy ... docker-archive:` tar as a
// convert source. The archive (decompressed into an unlinked scratch file of the work dir first
// when it is gzip/zstd, tools/image/image_impl.h PlainArchive) is
// scanned once (tools/image/docker_archive.h); the image is the only one in manifest.json or the
// one whose RepoTags holds REF. Each layer member is read once here to learn its digest, size,
// compression and diff_id (checked against the config); the source then serves a synthesised OCI
// manifest whose layers point at the members (media type from the actual compression) and whose
// config is the archive's config bytes unchanged. Blobs are read from the archive with pread.
#include <sys/stat.h>

#include <map>

#include "index/layer_index.h"
#include "tools/image/docker_archive.h"
#include "tools/image/image_impl.h"
#include "tools/image/image_manifest.h"

namespace hoist {
namespace {

std::string_view OciLayerType(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return kMediaTypeOciLayerGzip;
    case Compression::kZstd:
      return kMediaTypeOciLayerZstd;
    case Compression::kNone:
      break;
  }
  return kMediaTypeOciLayerTar;
}

// "docker.io/library/x:y", "docker.io/x:y" and "x:y" name the same image; a missing tag is
// "latest".
std::string NormalizeRef(std::string r) {
  if (r.starts_with("docker.io/")) r = r.substr(10);
  if (r.starts_with("library/")) r = r.substr(8);
  size_t slash = r.rfind('/');
  size_t colon = r.rfind(':');
  if ((colon == std::string::npos || (slash != std::string::npos && colon < slash)) &&
      r.find('@') == std::string::npos) {
    r += ":latest";
  }
  return r;
}

class DockerArchiveSource : public ImageSource {
 public:
  DockerArchiveSource(std::string name, ScopedFd spool, TarArchive archive)
      : name_(std::move(name)), spool_(std::move(spool)), archive_(std::move(archive)) {}

  std::string name() const override { return name_; }

  // Picks the image and describes its layers (reads each layer member once).
  Status Init(const std::string& ref) {
    HOIST_ASSIGN_OR_RETURN(std::string mj, archive_.Read("manifest.json"));
    HOIST_ASSIGN_OR_RETURN(std::vector<DockerArchiveEntry> entries, ParseDockerArchiveManifest(mj));
    const DockerArchiveEntry* image = nullptr;
    if (ref.empty()) {
      if (entries.size() != 1) {
        return Fail(EINVAL, "the archive holds " + std::to_string(entries.size()) +
                                " images; name one with docker-archive:FILE:NAME:TAG");
      }
      image = &entries[0];
    } else {
      const std::string want = NormalizeRef(ref);
      for (const auto& e : entries) {
        for (const auto& t : e.repo_tags) {
          if (NormalizeRef(t) == want) image = &e;
        }
      }
      if (image == nullptr) return Fail(ENOENT, "no image tagged \"" + ref + "\" in the archive");
    }
    HOIST_ASSIGN_OR_RETURN(std::string config_bytes, archive_.Read(image->config));
    auto config = ParseImageConfig(config_bytes);
    if (!config) return Fail(config.error().Context(image->config));
    if (config->diff_ids.size() != image->layers.size()) {
      return Fail(EINVAL, image->config + ": " + std::to_string(config->diff_ids.size()) +
                              " diff_ids for " + std::to_string(image->layers.size()) + " layers");
    }
    Descriptor cd;
    cd.media_type = kMediaTypeOciConfig;
    cd.digest = Digest::Of(config_bytes);
    cd.size = static_cast<int64_t>(config_bytes.size());
    members_[cd.digest.str()] = image->config;
    std::vector<Descriptor> layers;
    for (size_t i = 0; i < image->layers.size(); ++i) {
      const std::string& member = image->layers[i];
      auto what = [&](const Error& e) {
        return e.Context(LayerLabel(i, image->layers.size(), member));
      };
      auto layer = DescribeArchiveLayer(archive_, member);
      if (!layer) return Fail(what(layer.error()));
      if (layer->diff_id != config->diff_ids[i]) {
        return Fail(what(Error{EIO, "content " + layer->diff_id.str() +
                                        " does not match the config's diff_id " +
                                        config->diff_ids[i].str() + " (corrupt archive)"}));
      }
      Descriptor d;
      d.media_type = OciLayerType(layer->compression);
      d.digest = layer->digest;
      d.size = static_cast<int64_t>(layer->size);
      members_[d.digest.str()] = member;
      layers.push_back(std::move(d));
    }
    std::string bytes = SynthesizeManifest(kMediaTypeOciManifest, cd, layers);
    const Digest digest = Digest::Of(bytes);
    manifest_ = RawManifest{std::move(bytes), std::string(kMediaTypeOciManifest), digest};
    return Ok();
  }

  Result<RawManifest> TopManifest() override { return manifest_; }

  Result<RawManifest> Manifest(const Digest& digest) override {
    if (digest != manifest_.digest) {
      return Fail(ENOENT, "no manifest " + digest.str() + " in " + name_);
    }
    return manifest_;
  }

  Result<std::string> ReadBlob(const Descriptor& blob) override {
    HOIST_ASSIGN_OR_RETURN(std::string member, Member(blob.digest));
    HOIST_ASSIGN_OR_RETURN(std::string bytes, archive_.Read(member));
    if (Digest::Of(bytes) != blob.digest) {
      return Fail(EIO, member + " in " + name_ + " does not match " + blob.digest.str());
    }
    return bytes;
  }

  Result<std::unique_ptr<ByteReader>> OpenBlob(const Descriptor& blob) override {
    HOIST_ASSIGN_OR_RETURN(std::string member, Member(blob.digest));
    return archive_.Open(member);
  }

  Result<std::string> ReadBlobRange(const Descriptor& blob, uint64_t offset,
                                    uint64_t length) override {
    HOIST_ASSIGN_OR_RETURN(std::string member, Member(blob.digest));
    HOIST_ASSIGN_OR_RETURN(auto reader, archive_.Open(member, offset, length));
    std::string out(length, '\0');
    HOIST_ASSIGN_OR_RETURN(size_t got, ReadFull(*reader, out.data(), length));
    if (got != length) return Fail(EIO, member + " in " + name_ + " is shorter than expected");
    return out;
  }

 private:
  Result<std::string> Member(const Digest& digest) const {
    auto it = members_.find(digest.str());
    if (it == members_.end()) return Fail(ENOENT, "no blob " + digest.str() + " in " + name_);
    return it->second;
  }

  std::string name_;
  ScopedFd spool_;  // the decompressed copy (unlinked), or invalid
  TarArchive archive_;
  std::map<std::string, std::string> members_;  // digest -> member name
  RawManifest manifest_;
};

bool IsFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode);
}

}  // namespace

Result<std::unique_ptr<ImageSource>> NewDockerArchiveSource(const std::string& spec,
                                                            const SourceOptions& options) {
  // docker-archive:FILE[:REF]: like skopeo, the first ':' separates REF (unless the whole spec
  // names an existing file).
  std::string file = spec;
  std::string ref;
  if (!IsFile(spec)) {
    if (auto colon = spec.find(':'); colon != std::string::npos) {
      file = spec.substr(0, colon);
      ref = spec.substr(colon + 1);
    }
  }
  const std::string name = "docker-archive:" + file;
  auto fail = [&](const Error& e) { return Fail(e.Context(name)); };
  struct stat st;
  if (::stat(file.c_str(), &st) != 0) return fail(ErrnoError("stat " + file));
  if (S_ISDIR(st.st_mode)) return fail(Error{EISDIR, file + " is a directory, not an archive"});
  ScopedFd spool;
  auto path = PlainArchive(file, options.work_dir, &spool);
  if (!path) return fail(path.error());
  auto archive = TarArchive::Scan(*path);
  if (!archive) return fail(archive.error());
  if (!archive->Has("manifest.json")) {
    return fail(Error{EINVAL, "not a docker-archive (no manifest.json)"});
  }
  auto source = std::make_unique<DockerArchiveSource>(name, std::move(spool), std::move(*archive));
  if (Status st2 = source->Init(ref); !st2) return fail(st2.error());
  return std::unique_ptr<ImageSource>(std::move(source));
}

}  // namespace hoist
