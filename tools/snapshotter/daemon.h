// The hoist-snapshotter daemon's main, shared by the real binary and by test builds that plug a
// fake RemoteLayerSource into the seam:
//
//   hoist-snapshotter --address SOCKET --root DIR [--cache DIR] [--insecure-registry HOST]...
//                     [--prefetch none|priority|all] [--log-level LEVEL] [--no-supervisor]
//                     [--metrics-address HOST:PORT|unix:PATH]
//
// Process model: without systemd (no NOTIFY_SOCKET) and without --no-supervisor the process
// becomes hoist's supervisor (tools/supervisor/supervisor.h; cleanup mountpoint DIR/layers) and
// runs this binary again as the worker, which does everything below; the supervisor keeps the
// fds the worker stores and starts a new worker with them when it dies (kill -9) or on SIGUSR2
// (upgrade). Under systemd, or with --no-supervisor, this process is the worker. The worker takes
// LISTEN_FDS before any thread (DaemonConfig::inherited_fds; the real factory takes the layer
// store's connection over from them), HOIST_PREVIOUS_PID (an upgrade: the old worker's live
// socket is replaced), holds HOIST_LIFELINE_FD, writes its pid to DIR/snapshotter.pid once it
// serves (removed at a clean stop), and on SIGUSR1 finishes its gRPC calls and exits 0 without
// unmounting (the new worker serves the store's connection).
//
// Serves containerd.services.snapshots.v1.Snapshots on the unix socket SOCKET (its directory is
// created; a stale socket left by a killed daemon is replaced; a live one is an error), with
// snapshots under DIR (snapshotter.h). The lazy layer source is made by `factory` from the
// DaemonConfig (after the flags are checked and the stop signals blocked, before the snapshotter
// opens, so its threads inherit the mask and restored snapshots can be resolved); a factory error
// is one line and exit 1. --cache (default DIR/cache), --insecure-registry and --prefetch are the
// source's (the real one: layer_store_source.h). At a stop the snapshotter, then the source, is
// destroyed (the real source's store unmounts). Logs go to
// stderr, one line per event. Under systemd it sends READY=1 to $NOTIFY_SOCKET once the socket
// serves (base/sd_notify.h). SIGTERM, SIGINT and SIGHUP stop it cleanly (in-flight calls
// finish, the socket is removed); exit 0. --metrics-address serves Prometheus metrics at
// /metrics (metrics/http_server.h; a loopback address or a unix socket, checked before the
// supervisor starts) from the worker, from before the layer source is made. A bad flag or a
// start-up failure is one line on stderr and exit 1.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/fd_store.h"
#include "base/status.h"
#include "tools/snapshotter/remote_layer_source.h"

namespace hoist {

struct DaemonConfig {
  std::string root;   // absolute, no trailing slash
  std::string cache;  // --cache, or root + "/cache"
  std::vector<std::string> insecure_registries;
  std::string hosts_dir;              // --hosts-dir ("" = the default; fetcher/mirror_resolver.h)
  std::string registries_conf;        // --registries-conf ("" = the default)
  int mirror_connect_timeout_ms = 0;  // --mirror-connect-timeout (0 = the default, 3000)
  std::string prefetch;               // as given ("" = the default)
  // Fds handed to this process by a fd store (LISTEN_FDS: systemd, or hoist's supervisor); the
  // factory takes what it kept there (the layer store's connection).
  std::vector<ListenFd> inherited_fds;
  // An upgrade: the worker this one replaces (still running until this one is ready), or 0.
  pid_t previous_pid = 0;
};

// Makes the lazy layer source; a null pointer means none (every layer is ordinary).
using RemoteSourceFactory =
    std::function<Result<std::shared_ptr<RemoteLayerSource>>(DaemonConfig&)>;

int SnapshotterMain(int argc, char** argv, const RemoteSourceFactory& factory);

}  // namespace hoist
