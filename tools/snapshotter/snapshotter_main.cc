// hoist-snapshotter: see tools/snapshotter/daemon.h. Its lazy layer source is a LayerStore
// mounted at ROOT/layers (layer_store_source.h), taken over from the fd store when the daemon is
// restarted with the store's connection (LISTEN_FDS "layers-fuse", "layers-state",
// "layers-slots").
#include "base/log.h"
#include "fusefs/layer_store.h"
#include "fusefs/prefetcher.h"
#include "tools/snapshotter/daemon.h"
#include "tools/snapshotter/layer_store_source.h"

int main(int argc, char** argv) {
  return hoist::SnapshotterMain(
      argc, argv,
      [](hoist::DaemonConfig& config) -> hoist::Result<std::shared_ptr<hoist::RemoteLayerSource>> {
        HOIST_ASSIGN_OR_RETURN(hoist::LayerStoreSourceOptions o,
                               hoist::LayerStoreSourceOptionsFor(config));
        hoist::LayerStoreHandoff handoff;
        for (hoist::ListenFd& fd : config.inherited_fds) {
          if (fd.name == hoist::kLayersFuseFdName) handoff.fuse_fd = std::move(fd.fd);
          if (fd.name == hoist::kLayersStateFdName) handoff.state_fd = std::move(fd.fd);
          if (fd.name == hoist::kLayersSlotsFdName) handoff.slots_fd = std::move(fd.fd);
        }
        handoff.previous_pid = config.previous_pid;
        const bool complete =
            handoff.fuse_fd.valid() && handoff.state_fd.valid() && handoff.slots_fd.valid();
        if (!complete && (handoff.fuse_fd.valid() || handoff.state_fd.valid())) {
          HOIST_LOG(kWarning) << "the fd store holds an incomplete layer store handoff; "
                                 "mounting a new store";
        }
        HOIST_ASSIGN_OR_RETURN(std::shared_ptr<hoist::LayerStoreSource> source,
                               hoist::LayerStoreSource::Start(o, complete ? &handoff : nullptr));
        return std::shared_ptr<hoist::RemoteLayerSource>(std::move(source));
      });
}
