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

Result<std::string> LocalBlobSource::ReadAtRouted(const Digest& blob, uint64_t offset,
                                                  uint64_t length, ReadRoute& route) {
  if (fallback_ != nullptr && Open(blob) == nullptr) {
    return fallback_->ReadAtRouted(blob, offset, length, route);
  }
  return ReadAt(blob, offset, length);
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

namespace {

// Whether a failed resolution may succeed on a second try with the full retry budget (the first
// one was a QuickAttempt): not for answers the registry gave (unknown image, denied, bad input).
bool WorthRetrying(const Error& e) {
  return IsTransientNetworkError(e) || e.code() == EIO || e.code() == ETIMEDOUT;
}

// Reads the blobs a local copy lacks from the registry, each with one attempt bounded by
// `bound`: the registry was unreachable a moment ago, so a read must not wait out the whole
// retry budget for it.
std::unique_ptr<BlobSource> QuickBlobSource(RegistryClient& client, const Reference& ref,
                                            std::chrono::milliseconds bound) {
  RegistryOptions quick = client.options();
  quick.retry.max_attempts = 1;
  quick.retry.total_budget = bound;
  quick.request_timeout = bound;
  quick.request_log = nullptr;
  auto c = RegistryClient::CreateDefault(std::move(quick));
  if (!c) return client.OpenBlobSource(ref);
  return (*c)->OpenBlobSource(ref);  // the source shares the client's core: it outlives *c
}

}  // namespace

Result<ImageChoice> ResolveImageOrLocal(RegistryClient& client, const Reference& ref,
                                        const std::optional<Platform>& platform,
                                        const MountOptions& options, Store* open_store,
                                        ConfigFetch config) {
  HOIST_ASSIGN_OR_RETURN(std::string cache_dir, ResolveCacheDir(options.cache_dir));
  auto online = [](ResolvedImage image) {
    ImageChoice c;
    c.image = std::move(image);
    return c;
  };
  std::optional<Error> registry_error;
  if (!options.offline) {
    // One attempt, bounded by connect_timeout: a registry that is down or unknown to DNS must
    // not hold up a mount that has a local copy. Without one, the full retry budget follows.
    Result<ResolvedImage> remote = [&] {
      QuickAttempt quick(options.connect_timeout);
      return client.Resolve(ref, platform, config);
    }();
    if (remote) return online(std::move(*remote));
    registry_error = remote.error();
  }
  const Platform& wanted = platform ? *platform : client.options().platform;
  std::optional<ResolvedImage> local;
  if (open_store != nullptr) {
    auto found = ResolveLocal(*open_store, ref, wanted);
    if (!found) return Fail(found.error());
    local = std::move(*found);
  } else {
    StoreOptions so;
    if (options.cache_size > 0) so.cache.quota_bytes = options.cache_size;
    auto store = Store::Open(cache_dir, so);
    if (store) {
      auto found = ResolveLocal(**store, ref, wanted);
      if (!found) return Fail(found.error());
      local = std::move(*found);
    } else if (!registry_error) {
      return Fail(store.error().Context("opening the local store " + cache_dir));
    }
  }
  if (!local) {
    if (!registry_error) return Fail(ENOENT, ref.String() + ": not in the local store (offline)");
    if (!WorthRetrying(*registry_error)) return Fail(*registry_error);
    HOIST_ASSIGN_OR_RETURN(ResolvedImage remote, client.Resolve(ref, platform, config));
    return online(std::move(remote));
  }
  ImageChoice c;
  if (registry_error) {
    c.warning = "registry unavailable (" + registry_error->message() +
                "); using the local copy of " + ref.String();
  }
  c.image = std::move(*local);
  c.from_local_store = true;
  return c;
}

Result<MountImage> ResolveMountImage(RegistryClient& client, const Reference& ref,
                                     const MountOptions& options, Store* open_store,
                                     ConfigFetch config) {
  HOIST_ASSIGN_OR_RETURN(std::string cache_dir, ResolveCacheDir(options.cache_dir));
  HOIST_ASSIGN_OR_RETURN(
      ImageChoice c, ResolveImageOrLocal(client, ref, std::nullopt, options, open_store, config));
  MountImage m;
  m.image = std::move(c.image);
  m.from_local_store = c.from_local_store;
  if (!c.from_local_store) {
    m.source = std::make_unique<LocalBlobSource>(cache_dir, client.OpenBlobSource(ref));
    return m;
  }
  if (!c.warning.empty()) {
    m.warning = c.warning;
    HOIST_LOG(kWarning) << m.warning;
  }
  m.source = std::make_unique<LocalBlobSource>(
      cache_dir, options.offline ? nullptr : QuickBlobSource(client, ref, options.connect_timeout));
  return m;
}

Status RecordMountedImage(Store& store, RegistryClient& client, const ResolvedImage& image,
                          std::chrono::milliseconds bound) {
  const std::string name = image.reference.String();
  const Digest& manifest = image.manifest_bytes.digest;
  const Digest& config = image.manifest.config.digest;
  HOIST_ASSIGN_OR_RETURN(std::optional<Digest> current, store.GetRef(name));
  HOIST_ASSIGN_OR_RETURN(std::optional<std::string> config_bytes, store.GetBlob(config));
  if (current == manifest && config_bytes) {
    HOIST_ASSIGN_OR_RETURN(std::optional<std::string> stored, store.GetBlob(manifest));
    if (stored) return Ok();
  }
  if (!config_bytes) {
    if (!image.config.raw.empty()) {
      config_bytes = image.config.raw;
    } else {
      QuickAttempt quick(bound);
      HOIST_ASSIGN_OR_RETURN(config_bytes, client.GetBlob(image.reference, config,
                                                          client.options().max_manifest_size));
    }
  }
  HOIST_RETURN_IF_ERROR(store.PutBlob(config, *config_bytes));
  HOIST_RETURN_IF_ERROR(store.PutBlob(manifest, image.manifest_bytes.bytes));
  if (image.reference.tag.empty() && !current) {
    // A digest reference (the pinned one of a bundle) for a manifest another name already
    // records is not listed a second time.
    HOIST_ASSIGN_OR_RETURN(auto refs, store.ListRefs());
    for (const auto& [other, digest] : refs) {
      if (digest == manifest) return Ok();
    }
  }
  return store.PutRef(name, manifest);
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
