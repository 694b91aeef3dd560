#include "tools/snapshotter/layer_store_source.h"

#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <string_view>

#include "base/file_util.h"
#include "base/log.h"
#include "base/mountinfo.h"
#include "fusefs/mount.h"
#include "fusefs/mount_options.h"

namespace hoist {

Result<LayerStoreSourceOptions> LayerStoreSourceOptionsFor(const DaemonConfig& config) {
  LayerStoreSourceOptions o;
  o.mountpoint = config.root + "/layers";
  o.cache_dir = config.cache;
  o.insecure_registries = config.insecure_registries;
  o.hosts_dir = config.hosts_dir;
  o.registries_conf = config.registries_conf;
  o.mirror_connect_timeout_ms = config.mirror_connect_timeout_ms;
  if (!config.prefetch.empty()) {
    auto mode = ParsePrefetchMode(config.prefetch);
    if (!mode) {
      return Fail(EINVAL, "--prefetch " + config.prefetch + ": expected none, priority or all");
    }
    o.prefetch = *mode;
  }
  return o;
}

MountOptions LayerStoreMountOptions(const LayerStoreSourceOptions& options) {
  MountOptions mo;
  mo.mountpoint = options.mountpoint;
  mo.cache_dir = options.cache_dir;
  mo.insecure_registries = options.insecure_registries;
  mo.hosts_dir = options.hosts_dir;
  mo.registries_conf = options.registries_conf;
  mo.mirror_connect_timeout_ms = options.mirror_connect_timeout_ms;
  mo.prefetch = options.prefetch;
  mo.allow_other = true;
  mo.suid = true;
  mo.state_dir = options.state_dir;
  return mo;
}

Result<std::shared_ptr<LayerStoreSource>> LayerStoreSource::Start(
    const LayerStoreSourceOptions& options, LayerStoreHandoff* handoff) {
  if (handoff != nullptr && HandedOverConnectionIsDead(handoff->fuse_fd.get())) {
    HOIST_LOG(kWarning) << "the handed-over layer store connection has ended; mounting a new store";
    handoff = nullptr;
  }
  if (handoff == nullptr) {
    // Never on a handed-over live mount: a stat would wait for this process to serve it.
    HOIST_ASSIGN_OR_RETURN(bool detached, DetachDeadMounts(options.mountpoint));
    if (detached) {
      HOIST_LOG(kInfo) << "detached the dead layer store mount at " << options.mountpoint
                       << " (left by an earlier run)";
    }
    HOIST_RETURN_IF_ERROR(MakeDirs(options.mountpoint, 0755));
  }
  if (!options.cache_dir.empty()) HOIST_RETURN_IF_ERROR(MakeDirs(options.cache_dir, 0700));
  const MountOptions mo = LayerStoreMountOptions(options);
  auto store = LayerStore::Start(mo, handoff);
  if (!store) return Fail(store.error().Context("starting the layer store"));
  return std::shared_ptr<LayerStoreSource>(new LayerStoreSource(std::move(*store)));
}

Result<std::string> LayerStoreSource::Resolve(const RemoteLayerRequest& request) {
  const std::string image_ref = request.ImageRef();
  if (image_ref.empty()) {
    return Fail(EINVAL,
                "no image reference label (plain `ctr image pull` sends none: pull with "
                "`ctr-remote image rpull` or through the CRI plugin)");
  }
  const std::string digest_text = request.LayerDigest();
  if (digest_text.empty()) return Fail(EINVAL, "no layer digest label");
  auto digest = Digest::Parse(digest_text);
  if (!digest) return Fail(digest.error().Context("layer digest label"));
  Digest manifest;
  if (auto it = request.labels.find(kLabelCriManifestDigest);
      it != request.labels.end() && !it->second.empty()) {
    auto m = Digest::Parse(it->second);
    if (!m) return Fail(m.error().Context("manifest digest label"));
    manifest = *m;
  }
  {
    MutexLock lock(mu_);
    // One chain ID, one layer: the same content may come in another compression (another
    // digest), but the snapshot is recorded once per chain ID.
    if (auto it = chains_.find(request.chain_id); it != chains_.end()) {
      return store_->LayerPath(it->second);
    }
  }
  // containerd Prepares an image's layers one after the other: while this one loads, load the
  // indexes of the others the labels list (their Prepares then find them local).
  for (const char* key : {kLabelCriImageLayers, kLabelStargzLayers}) {
    auto it = request.labels.find(key);
    if (it == request.labels.end() || it->second.empty()) continue;
    std::vector<Digest> others;
    std::string_view list = it->second;
    while (!list.empty()) {
      const size_t comma = std::min(list.find(','), list.size());
      auto d = Digest::Parse(list.substr(0, comma));
      if (d && *d != *digest) others.push_back(*d);
      list.remove_prefix(std::min(comma + 1, list.size()));
    }
    store_->Preload(image_ref, others, manifest);
    break;
  }
  HOIST_ASSIGN_OR_RETURN(std::string dir, store_->AddLayer(image_ref, *digest, manifest));
  MutexLock lock(mu_);
  auto [it, inserted] = chains_.emplace(request.chain_id, *digest);
  if (!inserted) {
    // Another thread resolved the same chain meanwhile: keep one reference per chain ID.
    (void)store_->RemoveLayer(*digest);
    return store_->LayerPath(it->second);
  }
  return dir;
}

Status LayerStoreSource::Restored() { return store_->Serve(); }

void LayerStoreSource::Forget(const std::string& chain_id, const std::string& path) {
  Digest digest;
  {
    MutexLock lock(mu_);
    auto it = chains_.find(chain_id);
    if (it == chains_.end()) {
      HOIST_LOG(kWarning) << "layer " << chain_id << ": removed, but no layer of the store ("
                          << path << ") was held for it";
      return;
    }
    digest = it->second;
    chains_.erase(it);
  }
  if (Status s = store_->RemoveLayer(digest); !s) {
    HOIST_LOG(kWarning) << "layer " << chain_id << ": " << s.error().message();
  }
}

size_t LayerStoreSource::chain_count() const {
  MutexLock lock(mu_);
  return chains_.size();
}

}  // namespace hoist
