// `hoistfs --layers IMAGE MNT`: the layer store (fusefs/layer_store.h) as a daemon, for testing
// and debugging the per-layer view without the snapshotter. Every layer of IMAGE is added, so
// MNT/<64 hex of the layer digest>/ is that layer as an overlayfs lower layer, and the root lists
// the layers lowest first (`ls -f MNT`). Stack them with
//   mount -t overlay overlay -o ro,lowerdir=MNT/<top>:...:MNT/<bottom> TARGET
// An image with a layer that cannot be lazy (plain gzip/zstd) fails with that layer's reason.
//
// `--mount-per-layer` (for bench/layer_store only): instead of one mount, one LayerStore (one
// FUSE session) per layer, mounted on MNT/<hex> (created), the layer at MNT/<hex>/<hex>.
//
// Signals: SIGTERM, SIGINT, SIGHUP unmount and end the daemon; so does `fusermount3 -u MNT`.
// Thread-safety: called once from main.
#pragma once

#include <string>

#include "fusefs/mount_options.h"

namespace hoist {

// Builds the store(s) and adds the layers, then writes "ready\n" (or "hoistfs: <error>\n") to
// `ready_fd` (-1: to stderr on error only) and serves until a signal or an unmount. Returns the
// exit code.
int RunLayerStoreDaemon(const MountOptions& options, bool mount_per_layer, int ready_fd);

}  // namespace hoist
