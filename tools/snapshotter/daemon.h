// The hoist-snapshotter daemon's main, shared by the real binary and by test builds that plug a
// fake RemoteLayerSource into the seam:
//
//   hoist-snapshotter --address SOCKET --root DIR [--cache DIR] [--log-level LEVEL]
//
// Serves containerd.services.snapshots.v1.Snapshots on the unix socket SOCKET (its directory is
// created; a stale socket left by a killed daemon is replaced; a live one is an error), with
// snapshots under DIR (snapshotter.h). --cache names the hoist store for the lazy layer source
// (the same resolution as every hoist tool; unused while no source is configured). Logs go to
// stderr, one line per event. Under systemd it sends READY=1 to $NOTIFY_SOCKET once the socket
// serves (base/sd_notify.h). SIGTERM, SIGINT and SIGHUP stop it cleanly (in-flight calls
// finish, the socket is removed); exit 0. A bad flag or a start-up failure is one line on
// stderr and exit 1.
#pragma once

#include <memory>

#include "tools/snapshotter/remote_layer_source.h"

namespace hoist {

int SnapshotterMain(int argc, char** argv, std::shared_ptr<RemoteLayerSource> remote);

}  // namespace hoist
