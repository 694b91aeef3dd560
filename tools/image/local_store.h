// The local image store for `hoist pull / images / rm / prune / tag / push / save / load /
// history / inspect`: images kept in the host store (index/store.h) beside the chunk cache.
// What is kept where is described in fusefs/local_image.h (refs -> manifest digest; manifests
// and configs as store blobs; layer indexes; chunks; layer blob files under
// <cache_dir>/blobs/sha256 for layers that cannot live as chunks).
//
// A mount records the image it resolved online the same way (fusefs/local_image.h,
// RecordMountedImage): such an image is listed too, usually partial (not every chunk local).
//
// Names: every name is normalised with Reference::Parse(...).String() ("x" is
// "docker.io/library/x:latest"), so `hoist images` shows full references.
//
// Write order (so an interrupted pull or load never leaves a dangling reference): layer blob
// files (verified, fsync'd, renamed into place), layer indexes and chunks, then the config and
// manifest blobs, and the refs last.
//
// Thread-safety: one LocalStore per process, used from one thread (the verbs are
// single-threaded), except the blob-file methods (BlobFilePath, HasBlobFile, WriteBlobFile),
// which touch only the file system and may run on several threads at once (`hoist pull` writes
// layer blobs in parallel); the Store inside is thread-safe. Ownership: LocalStore owns the
// Store.
// Errors: ENOENT "no such local image: NAME" for names the store does not have; EIO for refs
// whose manifest or config is missing or corrupt; errnos of the store and the file system.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/digest.h"
#include "base/status.h"
#include "fetcher/manifest.h"
#include "fetcher/reference.h"
#include "fetcher/registry.h"
#include "index/layer_index.h"
#include "index/store.h"
#include "tools/image/image_stream.h"
#include "tools/image/image_transport.h"

namespace hoist {

struct LocalImage {
  std::string name;  // normalised reference string (the ref's key)
  Reference reference;
  Digest manifest_digest;
  std::string manifest_bytes;
  std::string media_type;
  ImageManifest manifest;
  ImageConfig config;  // config.raw holds the exact bytes
};

class LocalStore {
 public:
  // `cache_flag`: the --cache value ("" = HOIST_CACHE, then the per-user default).
  [[nodiscard]] static Result<std::unique_ptr<LocalStore>> Open(const std::string& cache_flag);

  Store& store() { return *store_; }
  const std::string& cache_dir() const { return cache_dir_; }

  // Reference::Parse(text)->String(). EINVAL for a malformed name.
  [[nodiscard]] static Result<std::string> NormalizeName(std::string_view text);

  // The image, or nullopt if the store has no such name.
  [[nodiscard]] Result<std::optional<LocalImage>> Find(std::string_view text);
  // The image, or ENOENT "no such local image: NAME".
  [[nodiscard]] Result<LocalImage> Get(std::string_view text);
  // Every local image, by name. A ref whose data is broken is reported as an error.
  [[nodiscard]] Result<std::vector<LocalImage>> List();

  // Layer blob files.
  std::string BlobFilePath(const Digest& digest) const;
  bool HasBlobFile(const Digest& digest) const;
  // Whether blob's file is there with blob.size bytes (blob.size < 0: any size). A file is only
  // ever renamed into place once its digest was checked (WriteBlobFile), so its name vouches
  // for its content; the size catches a file cut short behind the store's back.
  bool HasBlobFile(const Descriptor& blob) const;
  // Writes blob.digest's file from `reader`, checking digest and size (blob.size < 0: any);
  // temp file + fsync + rename. Returns true if the file was created, false if it existed
  // (HasBlobFile(blob); a file of the wrong size is replaced).
  // On any error nothing is left behind.
  [[nodiscard]] Result<bool> WriteBlobFile(const Descriptor& blob, ByteReader& reader);

  // Stores the config and manifest blobs, then points every name at the manifest.
  // REQUIRES: the layers are already local (blob files or chunks).
  [[nodiscard]] Status PutImage(std::string_view manifest_bytes, std::string_view config_bytes,
                                const std::vector<std::string>& names);

 private:
  LocalStore() = default;
  std::string cache_dir_;
  std::unique_ptr<Store> store_;
};

// An ImageSource over a local image: the manifest and config from the store, layers from their
// blob files, or else streamed from the registry the image's name points to (a pulled image whose
// layers live only as cached chunks). registry_repository() is the image's repository, so a
// push to the same registry cross-mounts instead of uploading.
// `registry`: options for that registry client (--insecure-registry).
[[nodiscard]] Result<std::unique_ptr<ImageSource>> NewLocalImageSource(
    LocalStore* store, LocalImage image, RegistryOptions registry = {});

// Copies an image (a manifest, or an index with its children) from `source` to `destination`
// without changing a byte: blobs the destination has or can cross-mount are skipped, the rest
// streamed; child manifests, then the top-level one, then Commit. On failure the destination is
// aborted. Returns the digest of the top-level manifest.
[[nodiscard]] Result<Digest> CopyImage(ImageSource& source, ImageDestination& destination,
                                       const RawManifest& top);

// The top manifest of `source`, down to `platform` if it is an index (the child's bytes).
[[nodiscard]] Result<RawManifest> SelectManifest(ImageSource& source, const Platform& platform);

// Whether a layer's content can only be served from its whole blob (unconverted tar+gzip /
// tar+zstd: kStream chunks, or kRaw chunks without a digest), so a local copy is a blob file.
bool LayerNeedsBlobFile(const LayerIndex& index);
// The distinct chunks of a layer the chunk cache holds (by digest; no kZeros, no stream chunks).
std::vector<Chunk> DistinctCachedChunks(const LayerIndex& index);

// "12.3 MB" style sizes (powers of 1000, like docker).
std::string HumanSize(uint64_t bytes);

}  // namespace hoist
