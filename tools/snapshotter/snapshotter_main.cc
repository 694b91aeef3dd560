// hoist-snapshotter: see tools/snapshotter/daemon.h. Its lazy layer source is a LayerStore
// mounted at ROOT/layers (layer_store_source.h).
#include "fusefs/prefetcher.h"
#include "tools/snapshotter/daemon.h"
#include "tools/snapshotter/layer_store_source.h"

int main(int argc, char** argv) {
  return hoist::SnapshotterMain(
      argc, argv,
      [](const hoist::DaemonConfig& config)
          -> hoist::Result<std::shared_ptr<hoist::RemoteLayerSource>> {
        hoist::LayerStoreSourceOptions o;
        o.mountpoint = config.root + "/layers";
        o.cache_dir = config.cache;
        o.insecure_registries = config.insecure_registries;
        if (!config.prefetch.empty()) {
          auto mode = hoist::ParsePrefetchMode(config.prefetch);
          if (!mode) {
            return hoist::Fail(
                EINVAL, "--prefetch " + config.prefetch + ": expected none, priority or all");
          }
          o.prefetch = *mode;
        }
        HOIST_ASSIGN_OR_RETURN(std::shared_ptr<hoist::LayerStoreSource> source,
                               hoist::LayerStoreSource::Start(o));
        return std::shared_ptr<hoist::RemoteLayerSource>(std::move(source));
      });
}
