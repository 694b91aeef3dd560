// Local images for hoistfs: mounting an image from the host store instead of the registry
// (`hoistfs --offline` / `-o offline`, or automatically when the registry cannot be reached).
//
// What the host store holds for a local image (written by `hoist pull` / `hoist load`,
// tools/image/local_store.h, and by every mount that resolved its image online:
// RecordMountedImage):
//   - a ref (Store::PutRef): the normalised reference string (Reference::String()) -> the digest
//     of ONE image manifest (a platform's manifest, never an index);
//   - the manifest and the config as Store blobs (sha256-checked);
//   - the layer indexes (Store::PutLayerIndex) and the chunks in the chunk cache;
//   - layer blobs that cannot be served as cached chunks (unconverted tar/gzip/zstd layers, and
//     every layer of a loaded archive) as files <cache_dir>/blobs/sha256/<hex>, written
//     verified (temp file, fsync, rename). LocalBlobSource serves them.
//
// A mount-recorded image is "partial": only what that mount (and later ones) read or prefetched
// is local. `hoist images` shows its local share; an offline remount serves what is local and
// fails reads of the rest with EIO.
//
// ResolveMountImage is the mount's image-resolution hook (fusefs/mount.cc, step 2): registry
// first (unless offline), ONE attempt bounded by -o connect_timeout (QuickAttempt); on failure,
// or when offline, the local store; no local copy either: the registry again with the full
// retry budget. The BlobSource it returns always prefers local blob files and falls back to the
// registry: with the client's budget when online, with one attempt bounded by connect_timeout
// after a fallback (the registry was just unreachable), none when offline (a read that needs the
// network then fails with EIO at once instead of waiting).
//
// Thread-safety: LocalBlobSource is thread-safe; the functions are reentrant.
// Errors: ResolveLocal returns nullopt when the store has no such image, EIO for a ref whose
// manifest or config is missing or corrupt. ResolveMountImage returns the registry's error when
// there is no local copy either (offline: ENOENT "not in the local store").
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "base/digest.h"
#include "base/mutex.h"
#include "base/scoped_fd.h"
#include "base/status.h"
#include "fetcher/blob_source.h"
#include "fetcher/registry.h"
#include "fusefs/handoff_state.h"
#include "fusefs/mount_options.h"
#include "index/store.h"

namespace hoist {

// <cache_dir>/blobs/sha256 and the file of one blob in it.
std::string LocalBlobDir(const std::string& cache_dir);
std::string LocalBlobPath(const std::string& cache_dir, const Digest& digest);

// The image `ref` names in the store: by its normalised name, or (a digest reference) by the
// manifest digest itself when that manifest is stored. An index found by digest is resolved to
// `platform` if the chosen manifest is stored too.
[[nodiscard]] Result<std::optional<ResolvedImage>> ResolveLocal(Store& store, const Reference& ref,
                                                                const Platform& platform);

// Blob reads from local files first; `fallback` (may be null) for blobs that have none.
// Files are opened once and kept open, so a blob removed by `hoist prune` while a mount uses it
// stays readable for that mount.
class LocalBlobSource : public BlobSource {
 public:
  LocalBlobSource(std::string cache_dir, std::unique_ptr<BlobSource> fallback);
  Result<std::string> ReadAt(const Digest& blob, uint64_t offset, uint64_t length) override;
  // A local file is read as in ReadAt; a blob with none goes to `fallback` with the route.
  Result<std::string> ReadAtRouted(const Digest& blob, uint64_t offset, uint64_t length,
                                   ReadRoute& route) override;
  Result<uint64_t> Size(const Digest& blob) override;
  // True when the blob has a local file (opened, and kept open, by this call).
  bool IsLocal(const Digest& blob) override { return Open(blob) != nullptr; }

 private:
  // The open file of `blob`, or nullptr if there is none.
  std::shared_ptr<ScopedFd> Open(const Digest& blob);

  const std::string cache_dir_;
  std::unique_ptr<BlobSource> fallback_;
  Mutex mu_;
  std::map<Digest, std::shared_ptr<ScopedFd>> files_ HOIST_GUARDED_BY(mu_);
};

// An image resolved for a mount or a bundle: from the registry, or its local copy.
struct ImageChoice {
  ResolvedImage image;
  bool from_local_store = false;
  std::string warning;  // set when the registry failed and the local copy is used: one line
};

// The registry-or-local-store choice of ResolveMountImage (see the file comment), without the
// blob source: `hoist bundle` / `hoist run` resolve with it (config always fetched or loaded).
// `platform`: nullopt = the client's. Uses options.offline, connect_timeout, cache_dir and
// cache_size. The warning is not logged here.
[[nodiscard]] Result<ImageChoice> ResolveImageOrLocal(RegistryClient& client, const Reference& ref,
                                                      const std::optional<Platform>& platform,
                                                      const MountOptions& options,
                                                      Store* open_store = nullptr,
                                                      ConfigFetch config = ConfigFetch::kFetch);

struct MountImage {
  ResolvedImage image;
  std::unique_ptr<BlobSource> source;
  bool from_local_store = false;
  std::string warning;  // set when the registry failed and the local copy is used
};

// The mount's step 2+3: see the file comment. When it needs the local copy it uses `open_store`
// if given, else opens the store briefly (and closes it); the mount opens it again later. A
// process that holds the store open must pass it: LMDB forbids opening one environment twice in
// a process (closing the second copy drops the first one's locks, and the open-time check of
// the second can read pages the first is writing and set a healthy file aside).
// `config`: kSkip leaves image.config empty when it comes from the registry (a mount serves the
// layers and never reads the config: one round trip fewer on the way to mounted).
[[nodiscard]] Result<MountImage> ResolveMountImage(RegistryClient& client, const Reference& ref,
                                                   const MountOptions& options,
                                                   Store* open_store = nullptr,
                                                   ConfigFetch config = ConfigFetch::kFetch);

// Records an image a mount resolved from the registry, so a later mount (or `hoist run`) can
// start from the store with the registry down: the config (from the store if there, else
// fetched with one attempt bounded by `bound`), then the manifest as store blobs, then the ref
// image.reference.String() -> manifest digest last (the write order of pulls: no dangling ref).
// Does nothing when the ref already points at this manifest and both blobs are stored; a
// digest-only reference gets no ref of its own when another name points at the manifest. Call it
// after the layer indexes are stored. Errors: the store's, the registry's for the config.
[[nodiscard]] Status RecordMountedImage(Store& store, RegistryClient& client,
                                        const ResolvedImage& image,
                                        std::chrono::milliseconds bound);

// A taken-over mount's image (mount.h, handoff_state.h): the manifest exactly as the state
// holds it, parsed again; blobs as ResolveMountImage would read them. No registry request is
// made here. The config is not needed by a mount and is left empty.
[[nodiscard]] Result<MountImage> HandedOverImage(RegistryClient& client, const Reference& ref,
                                                 const HandoffState& state,
                                                 const MountOptions& options);

}  // namespace hoist
