#include "fusefs/local_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/log.h"

namespace hoist {

std::string LocalBlobDir(const std::string& cache_dir) { return cache_dir + "/blobs/sha256"; }

std::string LocalBlobPath(const std::string& cache_dir, const Digest& digest) {
  return LocalBlobDir(cache_dir) + "/" + std::string(digest.hex());
}

namespace {

Result<ManifestBytes> LoadManifest(Store& store, const Digest& digest, std::string_view what) {
  HOIST_ASSIGN_OR_RETURN(std::optional<std::string> bytes, store.GetBlob(digest));
  if (!bytes) {
    return Fail(EIO, std::string(what) + ": manifest " + digest.str() +
                         " is missing from the local store; pull the image again (hoist pull " +
                         std::string(what) + ") or remove it (hoist rm " + std::string(what) + ")");
  }
  HOIST_ASSIGN_OR_RETURN(std::string type, ManifestMediaType("", *bytes));
  return ManifestBytes{std::move(type), digest, std::move(*bytes)};
}

}  // namespace

Result<std::optional<ResolvedImage>> ResolveLocal(Store& store, const Reference& ref,
                                                  const Platform& platform) {
  const std::string name = ref.String();
  HOIST_ASSIGN_OR_RETURN(std::optional<Digest> target, store.GetRef(name));
  if (!target && !ref.digest.empty()) {
    HOIST_ASSIGN_OR_RETURN(std::optional<std::string> b, store.GetBlob(ref.digest));
    if (b) target = ref.digest;
  }
  if (!target) return std::optional<ResolvedImage>();
  ResolvedImage img;
  img.reference = ref;
  HOIST_ASSIGN_OR_RETURN(ManifestBytes top, LoadManifest(store, *target, name));
  if (IsIndexMediaType(top.media_type)) {
    HOIST_ASSIGN_OR_RETURN(ImageIndex index, ParseImageIndex(top.bytes, top.media_type));
    HOIST_ASSIGN_OR_RETURN(Descriptor d, SelectPlatform(index, platform));
    HOIST_ASSIGN_OR_RETURN(ManifestBytes child, LoadManifest(store, d.digest, name));
    img.index = std::move(top);
    img.manifest_bytes = std::move(child);
  } else {
    img.manifest_bytes = std::move(top);
  }
  HOIST_ASSIGN_OR_RETURN(
      img.manifest, ParseImageManifest(img.manifest_bytes.bytes, img.manifest_bytes.media_type));
  HOIST_ASSIGN_OR_RETURN(std::optional<std::string> config,
                         store.GetBlob(img.manifest.config.digest));
  if (!config) {
    return Fail(EIO, name + ": config " + img.manifest.config.digest.str() +
                         " is missing from the local store; pull the image again (hoist pull " +
                         name + ") or remove it (hoist rm " + name + ")");
  }
  HOIST_ASSIGN_OR_RETURN(img.config, ParseImageConfig(*config));
  return std::optional<ResolvedImage>(std::move(img));
}

LocalBlobSource::LocalBlobSource(std::string cache_dir, std::unique_ptr<BlobSource> fallback)
    : cache_dir_(std::move(cache_dir)), fallback_(std::move(fallback)) {}

std::shared_ptr<ScopedFd> LocalBlobSource::Open(const Digest& blob) {
  MutexLock lock(mu_);
  auto it = files_.find(blob);
  if (it != files_.end()) return it->second;
  const std::string path = LocalBlobPath(cache_dir_, blob);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  auto file = std::make_shared<ScopedFd>(fd);
  files_.emplace(blob, file);
  return file;
}

Result<std::string> LocalBlobSource::ReadAt(const Digest& blob, uint64_t offset, uint64_t length) {
  std::shared_ptr<ScopedFd> file = Open(blob);
  if (file == nullptr) {
    if (fallback_ != nullptr) return fallback_->ReadAt(blob, offset, length);
    return Fail(EIO, "blob " + blob.str() + " is not stored locally (offline)");
  }
  std::string out(length, '\0');
  uint64_t done = 0;
  while (done < length) {
    ssize_t n =
        ::pread(file->get(), out.data() + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrnoError("reading local blob " + blob.str()));
    }
    if (n == 0) {
      return Fail(EIO, "local blob " + blob.str() + ": range [" + std::to_string(offset) + ", " +
                           std::to_string(offset + length) + ") is past its end");
    }
    done += static_cast<uint64_t>(n);
  }
  return out;
}

Result<uint64_t> LocalBlobSource::Size(const Digest& blob) {
  std::shared_ptr<ScopedFd> file = Open(blob);
  if (file == nullptr) {
    if (fallback_ != nullptr) return fallback_->Size(blob);
    return Fail(EIO, "blob " + blob.str() + " is not stored locally (offline)");
  }
  struct stat st {};
  if (::fstat(file->get(), &st) != 0) return Fail(ErrnoError("stat local blob " + blob.str()));
  return static_cast<uint64_t>(st.st_size);
}

Result<MountImage> ResolveMountImage(RegistryClient& client, const Reference& ref,
                                     const MountOptions& options, Store* open_store,
                                     ConfigFetch config) {
  HOIST_ASSIGN_OR_RETURN(std::string cache_dir, ResolveCacheDir(options.cache_dir));
  std::optional<Error> registry_error;
  if (!options.offline) {
    Result<ResolvedImage> remote = client.Resolve(ref, std::nullopt, config);
    if (remote) {
      MountImage m;
      m.image = std::move(*remote);
      m.source = std::make_unique<LocalBlobSource>(cache_dir, client.OpenBlobSource(ref));
      return m;
    }
    registry_error = remote.error();
  }
  std::optional<ResolvedImage> local;
  if (open_store != nullptr) {
    auto found = ResolveLocal(*open_store, ref, client.options().platform);
    if (!found) return Fail(found.error());
    local = std::move(*found);
  } else {
    StoreOptions so;
    if (options.cache_size > 0) so.cache.quota_bytes = options.cache_size;
    auto store = Store::Open(cache_dir, so);
    if (!store) {
      if (registry_error) return Fail(*registry_error);
      return Fail(store.error().Context("opening the local store " + cache_dir));
    }
    auto found = ResolveLocal(**store, ref, client.options().platform);
    if (!found) return Fail(found.error());
    local = std::move(*found);
  }
  if (!local) {
    if (registry_error) return Fail(*registry_error);
    return Fail(ENOENT, ref.String() + ": not in the local store (offline)");
  }
  MountImage m;
  if (registry_error) {
    m.warning = "registry unavailable (" + registry_error->message() +
                "); mounting the local copy of " + ref.String();
    HOIST_LOG(kWarning) << m.warning;
  }
  m.image = std::move(*local);
  m.from_local_store = true;
  m.source = std::make_unique<LocalBlobSource>(
      cache_dir, options.offline ? nullptr : client.OpenBlobSource(ref));
  return m;
}

Result<MountImage> HandedOverImage(RegistryClient& client, const Reference& ref,
                                   const HandoffState& state, const MountOptions& options) {
  HOIST_ASSIGN_OR_RETURN(std::string cache_dir, ResolveCacheDir(options.cache_dir));
  MountImage m;
  m.image.reference = ref;
  m.image.manifest_bytes.media_type = state.manifest_media_type;
  m.image.manifest_bytes.bytes = state.manifest;
  m.image.manifest_bytes.digest = Digest::Of(state.manifest);
  auto manifest = ParseImageManifest(state.manifest, state.manifest_media_type);
  if (!manifest) return Fail(manifest.error().Context("the handed-over mount's manifest"));
  m.image.manifest = std::move(*manifest);
  m.from_local_store = state.from_local_store;
  m.source = std::make_unique<LocalBlobSource>(
      cache_dir, options.offline ? nullptr : client.OpenBlobSource(ref));
  return m;
}

}  // namespace hoist
