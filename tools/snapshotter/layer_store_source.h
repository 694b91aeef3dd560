// LayerStoreSource: the real RemoteLayerSource of hoist-snapshotter, backed by ONE LayerStore
// (fusefs/layer_store.h) mounted at a directory of the snapshotter's root.
//
//   auto source = LayerStoreSource::Start({.mountpoint = root + "/layers", ...});
//   Snapshotter::Open({.root = root, .remote = *source});
//
// Start: creates the mountpoint; a dead FUSE mount left there by a killed daemon (stat answers
// ENOTCONN) is detached first (MNT_DETACH, repeatedly: one per earlier kill), so a restart mounts
// a NEW store on the same path; the layer directories are named by digest, so the paths the
// snapshotter recorded stay valid once Resolve has added the layers again. Where a fd store
// exists (systemd's, or hoist's supervisor), the store keeps its connection there (layer_store.h)
// and Start with the handed-over fds (a restart or an upgrade of the daemon) takes that live
// mount over instead: the mountpoint is not touched, Resolve re-adds each layer at its old slot,
// and Restored() (called by the snapshotter once every remote snapshot on record was resolved)
// starts serving it, so running containers' overlays keep working. A handed-over connection that
// has already ended (POLLERR) is dropped and a new store mounted as above. The store is mounted
// with allow_other (containers run as other users) and suid (a single-layer bind mount keeps the
// store's flags), read-only and nodev as every hoist mount.
//
// Resolve(request): the image reference (cri.image-ref, else stargz.reference) and the layer
// digest (cri.layer-digest, else stargz.digest), pinned to cri.manifest-digest when present, go
// to LayerStore::AddLayer; the answer is the layer's directory. Errors (one line each): EINVAL
// "no image reference label ..." / "no layer digest label ..." / a bad digest; anything AddLayer
// says (ENOTSUP for a layer that cannot be lazy, e.g. gzip; the registry's error; ENOENT for a
// layer the image does not have). The snapshotter then logs the line and containerd unpacks the
// layer. A chain ID that is already served answers its directory again without a new reference
// (containerd may ask twice for one chain), so each chain ID holds exactly one reference on its
// layer; two chain IDs of one layer (the same layer at different depths) hold two. A chain ID
// already served by another digest (the same tar in another compression) keeps its layer.
// When the labels list the image's layers (cri.image-layers, else stargz.layers), Resolve first
// hands the others to LayerStore::Preload, so their indexes load while this layer's does
// (containerd Prepares the layers of an image one after the other).
// Forget(chain_id): drops that chain ID's reference (LayerStore::RemoveLayer); the layer's
// directory goes with its last one.
//
// Registries: plain HTTP for loopback hosts (as every hoist client) and for
// options.insecure_registries; credentials from the docker config, read at each registry
// authentication (fetcher/credentials.h), so a new `docker login` is seen by the next pull.
//
// Thread-safety: Resolve and Forget from any number of threads. Destruction unmounts the store
// (LayerStore's destructor) and must not race with Resolve.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/mutex.h"
#include "base/status.h"
#include "fusefs/layer_store.h"
#include "fusefs/mount_options.h"
#include "fusefs/prefetcher.h"
#include "tools/snapshotter/daemon.h"
#include "tools/snapshotter/remote_layer_source.h"

namespace hoist {

struct LayerStoreSourceOptions {
  std::string mountpoint;  // created if missing
  std::string cache_dir;   // the hoist store ("" = ResolveCacheDir's default)
  std::vector<std::string> insecure_registries;
  std::string hosts_dir;              // mirrors ("" = the default; fetcher/mirror_resolver.h)
  std::string registries_conf;        // likewise
  int mirror_connect_timeout_ms = 0;  // 0 = the default (RegistryOptions)
  PrefetchMode prefetch = PrefetchMode::kAll;
  std::string state_dir;  // for `hoist stats MOUNTPOINT` ("" = DefaultStateDir())
};

// hoist-snapshotter's flags as the source's options (mountpoint ROOT/layers); EINVAL for a bad
// --prefetch.
[[nodiscard]] Result<LayerStoreSourceOptions> LayerStoreSourceOptionsFor(
    const DaemonConfig& config);
// The layer store's mount options for `options` (allow_other and suid on).
MountOptions LayerStoreMountOptions(const LayerStoreSourceOptions& options);

class LayerStoreSource : public RemoteLayerSource {
 public:
  [[nodiscard]] static Result<std::shared_ptr<LayerStoreSource>> Start(
      const LayerStoreSourceOptions& options, LayerStoreHandoff* handoff = nullptr);

  Result<std::string> Resolve(const RemoteLayerRequest& request) override;
  Status Restored() override;
  void Forget(const std::string& chain_id, const std::string& path) override;

  LayerStore& store() { return *store_; }
  // Chain IDs currently holding a layer.
  size_t chain_count() const;

 private:
  explicit LayerStoreSource(std::unique_ptr<LayerStore> store) : store_(std::move(store)) {}

  std::unique_ptr<LayerStore> store_;
  mutable Mutex mu_;
  std::map<std::string, Digest> chains_ HOIST_GUARDED_BY(mu_);  // chain ID -> its layer
};

}  // namespace hoist
