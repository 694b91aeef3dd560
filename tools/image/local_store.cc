#include "tools/image/local_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <set>

#include "base/file_util.h"
#include "base/scoped_fd.h"
#include "fusefs/chunk_reader.h"
#include "fusefs/local_image.h"
#include "index/layer_index.h"
#include "tools/image/image_impl.h"

namespace hoist {

Result<std::unique_ptr<LocalStore>> LocalStore::Open(const std::string& cache_flag) {
  std::unique_ptr<LocalStore> ls(new LocalStore());
  HOIST_ASSIGN_OR_RETURN(ls->cache_dir_, ResolveCacheDir(cache_flag));
  auto store = Store::Open(ls->cache_dir_);
  if (!store) return Fail(store.error().Context("opening the local store " + ls->cache_dir_));
  ls->store_ = std::move(*store);
  return ls;
}

Result<std::string> LocalStore::NormalizeName(std::string_view text) {
  HOIST_ASSIGN_OR_RETURN(Reference ref, Reference::Parse(text));
  return ref.String();
}

Result<std::optional<LocalImage>> LocalStore::Find(std::string_view text) {
  HOIST_ASSIGN_OR_RETURN(Reference ref, Reference::Parse(text));
  HOIST_ASSIGN_OR_RETURN(std::optional<ResolvedImage> r,
                         ResolveLocal(*store_, ref, Platform::Host()));
  if (!r) return std::optional<LocalImage>();
  LocalImage img;
  img.name = ref.String();
  img.reference = ref;
  img.manifest_digest = r->manifest_bytes.digest;
  img.manifest_bytes = std::move(r->manifest_bytes.bytes);
  img.media_type = std::move(r->manifest_bytes.media_type);
  img.manifest = std::move(r->manifest);
  img.config = std::move(r->config);
  return std::optional<LocalImage>(std::move(img));
}

Result<LocalImage> LocalStore::Get(std::string_view text) {
  HOIST_ASSIGN_OR_RETURN(std::optional<LocalImage> img, Find(text));
  if (!img) {
    HOIST_ASSIGN_OR_RETURN(std::string name, NormalizeName(text));
    return Fail(ENOENT, "no such local image: " + name);
  }
  return std::move(*img);
}

Result<std::vector<LocalImage>> LocalStore::List() {
  HOIST_ASSIGN_OR_RETURN(auto refs, store_->ListRefs());
  std::vector<LocalImage> out;
  for (const auto& [name, digest] : refs) {
    HOIST_ASSIGN_OR_RETURN(LocalImage img, Get(name));
    out.push_back(std::move(img));
  }
  return out;
}

std::string LocalStore::BlobFilePath(const Digest& digest) const {
  return LocalBlobPath(cache_dir_, digest);
}

bool LocalStore::HasBlobFile(const Digest& digest) const {
  struct stat st {};
  return ::stat(BlobFilePath(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool LocalStore::HasBlobFile(const Descriptor& blob) const {
  struct stat st {};
  if (::stat(BlobFilePath(blob.digest).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  return blob.size < 0 || static_cast<uint64_t>(st.st_size) == static_cast<uint64_t>(blob.size);
}

Result<bool> LocalStore::WriteBlobFile(const Descriptor& blob, ByteReader& reader) {
  if (HasBlobFile(blob)) return false;
  HOIST_RETURN_IF_ERROR(MakeDirs(LocalBlobDir(cache_dir_), 0755));
  HOIST_RETURN_IF_ERROR(hoist::WriteBlobFile(BlobFilePath(blob.digest), blob, reader));
  return true;
}

Status LocalStore::PutImage(std::string_view manifest_bytes, std::string_view config_bytes,
                            const std::vector<std::string>& names) {
  const Digest manifest_digest = Digest::Of(manifest_bytes);
  HOIST_RETURN_IF_ERROR(store_->PutBlob(Digest::Of(config_bytes), config_bytes));
  HOIST_RETURN_IF_ERROR(store_->PutBlob(manifest_digest, manifest_bytes));
  for (const std::string& name : names) {
    HOIST_RETURN_IF_ERROR(store_->PutRef(name, manifest_digest));
  }
  return Ok();
}

namespace {

class LocalImageSource : public ImageSource {
 public:
  LocalImageSource(LocalStore* store, LocalImage image, RegistryOptions registry)
      : store_(store), image_(std::move(image)), registry_(std::move(registry)) {}

  std::string name() const override { return "local:" + image_.name; }

  Result<RawManifest> TopManifest() override {
    return RawManifest{image_.manifest_bytes, image_.media_type, image_.manifest_digest};
  }

  Result<RawManifest> Manifest(const Digest& digest) override {
    HOIST_ASSIGN_OR_RETURN(std::optional<std::string> b, store_->store().GetBlob(digest));
    if (!b) return Fail(ENOENT, name() + ": manifest " + digest.str() + " is not stored");
    HOIST_ASSIGN_OR_RETURN(std::string type, ManifestMediaType("", *b));
    return RawManifest{std::move(*b), std::move(type), digest};
  }

  Result<std::string> ReadBlob(const Descriptor& blob) override {
    HOIST_ASSIGN_OR_RETURN(std::optional<std::string> b, store_->store().GetBlob(blob.digest));
    if (b) return std::move(*b);
    if (store_->HasBlobFile(blob.digest)) return ReadFile(store_->BlobFilePath(blob.digest));
    HOIST_ASSIGN_OR_RETURN(ImageSource * remote, Remote());
    return remote->ReadBlob(blob);
  }

  Result<std::unique_ptr<ByteReader>> OpenBlob(const Descriptor& blob) override {
    if (store_->HasBlobFile(blob.digest)) {
      HOIST_ASSIGN_OR_RETURN(auto reader, FileReader::Open(store_->BlobFilePath(blob.digest)));
      return std::unique_ptr<ByteReader>(std::move(reader));
    }
    if (blob.digest == image_.manifest.config.digest) {
      HOIST_ASSIGN_OR_RETURN(std::string b, ReadBlob(blob));
      return std::unique_ptr<ByteReader>(new StringReader(std::move(b)));
    }
    auto remote = Remote();
    if (!remote) {
      return Fail(remote.error().code(),
                  name() + ": layer " + blob.digest.str() +
                      " is cached only as chunks and its registry is unavailable (" +
                      remote.error().message() + ")");
    }
    return (*remote)->OpenBlob(blob);
  }

  Result<std::string> ReadBlobRange(const Descriptor& blob, uint64_t offset,
                                    uint64_t length) override {
    if (store_->HasBlobFile(blob.digest)) {
      LocalBlobSource files(store_->cache_dir(), nullptr);
      return files.ReadAt(blob.digest, offset, length);
    }
    HOIST_ASSIGN_OR_RETURN(ImageSource * remote, Remote());
    return remote->ReadBlobRange(blob, offset, length);
  }

  bool VerifiesBlobs() const override { return false; }
  std::string registry_repository() const override { return image_.reference.Name(); }

 private:
  Result<ImageSource*> Remote() {
    if (!remote_) {
      Reference r = image_.reference.WithDigest(image_.manifest_digest);
      HOIST_ASSIGN_OR_RETURN(remote_, NewDockerSource(r.String(), registry_));
    }
    return remote_.get();
  }

  LocalStore* store_;
  LocalImage image_;
  const RegistryOptions registry_;
  std::unique_ptr<ImageSource> remote_;
};

Status CopyBlob(ImageSource& source, ImageDestination& destination, const Descriptor& blob) {
  HOIST_ASSIGN_OR_RETURN(bool have, destination.EnsureBlob(blob, &source));
  if (have) return Ok();
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<ByteReader> reader, source.OpenBlob(blob));
  return destination.PutBlob(blob, *reader);
}

Status CopyImageBlobs(ImageSource& source, ImageDestination& destination, const RawManifest& m) {
  HOIST_ASSIGN_OR_RETURN(ImageManifest im, ParseImageManifest(m.bytes, m.media_type));
  for (size_t i = 0; i < im.layers.size(); ++i) {
    Status st = CopyBlob(source, destination, im.layers[i]);
    if (!st) {
      return Fail(st.error().Context(LayerLabel(i, im.layers.size(), im.layers[i].digest.str())));
    }
  }
  Status st = CopyBlob(source, destination, im.config);
  if (!st) return Fail(st.error().Context("config " + im.config.digest.str()));
  return Ok();
}

}  // namespace

Result<std::unique_ptr<ImageSource>> NewLocalImageSource(LocalStore* store, LocalImage image,
                                                         RegistryOptions registry) {
  return std::unique_ptr<ImageSource>(
      new LocalImageSource(store, std::move(image), std::move(registry)));
}

Result<Digest> CopyImage(ImageSource& source, ImageDestination& destination,
                         const RawManifest& top) {
  auto run = [&]() -> Status {
    if (IsIndexMediaType(top.media_type)) {
      HOIST_ASSIGN_OR_RETURN(ImageIndex index, ParseImageIndex(top.bytes, top.media_type));
      for (const Descriptor& d : index.manifests) {
        HOIST_ASSIGN_OR_RETURN(RawManifest child, source.Manifest(d.digest));
        if (IsIndexMediaType(child.media_type)) {
          return Fail(ENOTSUP, "nested image indexes are not supported");
        }
        HOIST_RETURN_IF_ERROR(CopyImageBlobs(source, destination, child));
        HOIST_RETURN_IF_ERROR(destination.PutManifest(child, /*top_level=*/false));
      }
    } else {
      HOIST_RETURN_IF_ERROR(CopyImageBlobs(source, destination, top));
    }
    HOIST_RETURN_IF_ERROR(destination.PutManifest(top, /*top_level=*/true));
    return destination.Commit();
  };
  Status st = run();
  if (!st) {
    destination.Abort();
    return Fail(st.error());
  }
  return top.digest;
}

Result<RawManifest> SelectManifest(ImageSource& source, const Platform& platform) {
  HOIST_ASSIGN_OR_RETURN(RawManifest top, source.TopManifest());
  if (!IsIndexMediaType(top.media_type)) return top;
  HOIST_ASSIGN_OR_RETURN(ImageIndex index, ParseImageIndex(top.bytes, top.media_type));
  HOIST_ASSIGN_OR_RETURN(Descriptor d, SelectPlatform(index, platform));
  return source.Manifest(d.digest);
}

bool LayerNeedsBlobFile(const LayerIndex& index) {
  for (const Entry& e : index.entries) {
    for (const Chunk& c : e.chunks) {
      if (NeedsStreamFetch(c)) return true;
    }
  }
  return false;
}

std::vector<Chunk> DistinctCachedChunks(const LayerIndex& index) {
  std::vector<Chunk> out;
  std::set<Digest> seen;
  for (const Entry& e : index.entries) {
    for (const Chunk& c : e.chunks) {
      if (c.encoding == ChunkEncoding::kZeros || NeedsStreamFetch(c) || c.digest.empty()) continue;
      if (seen.insert(c.digest).second) out.push_back(c);
    }
  }
  return out;
}

std::string HumanSize(uint64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof(buf), "%.3g %s", v, units[u]);
  }
  return buf;
}

}  // namespace hoist
