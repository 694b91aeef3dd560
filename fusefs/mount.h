// Mount: the ONE place that builds and owns every object of a hoist mount, in an explicit order.
//
// Construction (Create), each step using only what the steps before built:
//   1. RegistryClient (request timeout and retry budget bounded by -o timeout)
//   2. the image resolved to one platform (manifest + config)
//   3. the BlobSource of the image's repository
//   4. the host Store (LMDB; chunk cache quota from cache_size)
//   5. the layer indexes (layer_loader.h: all layers in parallel, from the store when known,
//      TOC digests checked) -- every check that can fail happens before step 11
//   6. the MergedView
//   7. MountStats, ZranReader + StreamLayers (unconverted layers), the ChunkReader
//   8. the mountpoint check (missing, not a directory, already a mount: errors, nothing mounted)
//   9. the FUSE session (signal handlers for SIGTERM/SIGINT/SIGHUP installed on it)
//  10. fuse_session_mount -- the mount exists from here on
//  11. the Prefetcher (started) and the StatsFileWriter (state file every stats_interval); fresh
//      layer indexes stored, then (an image resolved online) the image recorded for offline
//      remounts (RecordMountedImage, local_image.h), in the background
// With -o trace=FILE, a TraceRecorder observes every open from step 7 on; Run writes the trace
// to FILE when the FUSE loop ends (unmount, signal or HandOver). A taken-over mount seeds its
// recorder from FILE first (what the previous daemon wrote when it handed over).
// Destruction runs the other way: unmount and destroy the session (no request is in flight
// after the loop returned), stop the prefetcher (prompt), final state-file write, then the
// reader, streams, view, indexes, store, source and client.
//
// The daemon never stats or reads its own mountpoint after step 10.
//
// Surviving the daemon (fuse_handoff.h, handoff_state.h, docs/ARCHITECTURE.md): every session
// runs on ConnectionIo. A fresh mount records the kernel's INIT request, writes a HandoffState
// memfd and, where a fd store exists (NOTIFY_SOCKET: systemd or hoist's supervisor), stores the
// /dev/fuse fd and the memfd there ("hoistfs-fuse", "hoistfs-state") before it calls
// `on_serving`. Created with a MountHandoff instead, the mount takes that connection over:
// steps 2 and 8-10 become "the image as the state names it" and "replay INIT", nothing is
// mounted and the mountpoint is never touched; once the previous daemon is gone, Run sends
// FUSE_NOTIFY_RESEND so the requests it had read are answered here. Node ids are the view's
// inode numbers, the same for the same layers in every process; file handles carry nothing.
// HandOver() (async-signal-safe; SIGUSR1 with EnableHandoverSignal) ends Run without unmounting:
// the next daemon serves the connection, this one exits.
//
// Thread-safety: Create, Run and the destructor are called from one thread. Run blocks in
// fuse_session_loop_mt; libfuse's signal handlers (or `fusermount3 -u`) end it.
// Errors: one line naming what failed ("mountpoint /x: not a directory", "layer 2 (sha256:..):
// ...", the registry's error for an unknown image), errno as the failing step gave it; EBUSY
// for a mountpoint that is already a mount.
#pragma once

#include <signal.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "base/scoped_fd.h"
#include "base/status.h"
#include "fetcher/registry.h"
#include "fusefs/chunk_reader.h"
#include "fusefs/dir_prefetch.h"
#include "fusefs/elf_prefetch.h"
#include "fusefs/fuse_ops.h"
#include "fusefs/handoff_state.h"
#include "fusefs/layer_loader.h"
#include "fusefs/merged_view.h"
#include "fusefs/mount_metrics.h"
#include "fusefs/mount_options.h"
#include "fusefs/mount_stats.h"
#include "fusefs/open_observers.h"
#include "fusefs/prefetcher.h"
#include "fusefs/stats_file.h"
#include "fusefs/stream_layer.h"
#include "fusefs/trace_prefetch.h"
#include "fusefs/trace_recorder.h"
#include "fusefs/zran_reader.h"
#include "index/store.h"

namespace hoist {

// Checks `path` before mounting and returns its canonical form. Errors: ENOENT (missing),
// ENOTDIR, EBUSY (already a mount point), ENOTCONN (a dead FUSE mount), others from stat.
[[nodiscard]] Result<std::string> CheckMountpoint(const std::string& path);

// Lazily unmounts dead FUSE mounts (IsDeadFuseMount, base/mountinfo.h) stacked at `path`; true
// if there was one. A path that does not resolve is left to CheckMountpoint.
[[nodiscard]] Result<bool> DetachDeadMounts(const std::string& path);

// The canonical mountpoint `hoist stats` uses without touching the mount itself:
// realpath(dirname(path)) + "/" + basename(path).
[[nodiscard]] Result<std::string> CanonicalMountpointNoFollow(const std::string& path);

// A live connection handed to this process (LISTEN_FDS from the fd store).
struct MountHandoff {
  ScopedFd fuse_fd;
  ScopedFd state_fd;       // the HandoffState memfd
  pid_t previous_pid = 0;  // the daemon being replaced, if it may still be running (upgrade)
};

// The fd store names of a hoistfs mount's connection and state.
inline constexpr char kFuseFdName[] = "hoistfs-fuse";
inline constexpr char kStateFdName[] = "hoistfs-state";

class Mount {
 public:
  // Steps 1-11 above. On error nothing is mounted and everything built so far is torn down.
  // With `handoff`, the connection it carries is taken over (see above); its fds are consumed.
  [[nodiscard]] static Result<std::unique_ptr<Mount>> Create(const MountOptions& options,
                                                             MountHandoff* handoff = nullptr);
  ~Mount();
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;

  // Serves requests until the filesystem is unmounted or a signal ends the session.
  // `on_serving` (may be empty) is called once, from some thread, when the connection is kept
  // in the fd store (or there is none) and requests are being served: the moment to say ready.
  [[nodiscard]] Status Run(std::function<void()> on_serving = {});

  // Ends Run without unmounting. Async-signal-safe.
  void HandOver();
  // Installs a SIGUSR1 handler that calls HandOver() on this mount (one per process).
  void EnableHandoverSignal();
  bool handed_over() const { return handed_over_.load(); }

  const std::string& mountpoint() const { return mountpoint_; }
  const std::string& state_file() const { return state_file_; }
  const LoadedLayers& layers() const { return layers_; }
  const MountStats& stats() const { return stats_; }
  // Non-empty when the mount fell back to the local store because the registry failed, or
  // replaced a dead mount: lines for the user.
  std::string warning() const {
    if (notice_.empty()) return warning_;
    return warning_.empty() ? notice_ : warning_ + "\n" + notice_;
  }

 private:
  explicit Mount(MountOptions options) : options_(std::move(options)) {}
  Status Build(MountHandoff* handoff);
  void Teardown();
  void OnInitRecorded(std::string_view init);
  // Opens connections for the first reads while the layer indexes load (see mount.cc).
  void WarmConnections(const MountOptions& o, const Reference& ref);

  const MountOptions options_;
  std::string mountpoint_;  // canonical
  std::string state_file_;
  std::string warning_;
  std::string notice_;

  // In construction order (destroyed in reverse by Teardown).
  std::unique_ptr<RegistryClient> client_;
  std::optional<ResolvedImage> image_;
  std::unique_ptr<BlobSource> source_;
  std::unique_ptr<Store> store_;
  // Disk for unconverted layers' stream files (kept ones and fetched ones): the cache quota.
  // Declared before everything holding a share of it.
  std::unique_ptr<ByteBudget> stream_space_;
  LoadedLayers layers_;
  std::optional<MergedView> view_;
  MountStats stats_;
  std::unique_ptr<ZranReader> zran_;  // lazy unconverted gzip/zstd layers (used by streams_)
  std::unique_ptr<StreamLayers> streams_;
  std::unique_ptr<ChunkReader> reader_;
  ReadFailureMemo read_failures_;
  std::unique_ptr<TraceRecorder> trace_recorder_;  // -o trace=FILE
  std::unique_ptr<ElfPrefetch> elf_prefetch_;      // -o elf_prefetch (an open observer)
  std::unique_ptr<DirPrefetch> dir_prefetch_;      // -o dir_prefetch (an open observer)
  OpenObservers open_observers_;                   // filled before ops_context_ is set (step 7)
  FuseOpsContext ops_context_;
  fuse_session* session_ = nullptr;
  bool signal_handlers_ = false;
  bool mounted_ = false;       // by this process (libfuse unmounts it)
  bool takeover_ = false;      // the connection was handed over to this process
  bool record_image_ = false;  // resolved online: recorded in the store (RecordMountedImage)
  int fuse_fd_ = -1;           // the session's fd (owned by the session)
  pid_t previous_pid_ = 0;     // takeover: the daemon to outlive before FUSE_NOTIFY_RESEND
  std::atomic<bool> handed_over_{false};
  HandoffState handoff_state_;  // written to the state memfd once INIT is recorded
  std::function<void()> on_serving_;
  std::atomic<bool> serving_announced_{false};
  std::thread resend_thread_;
  sigset_t saved_sigmask_{};  // the caller's mask before Build blocked the unmount signals
  bool sigmask_saved_ = false;
  std::unique_ptr<Prefetcher> prefetcher_;
  // Started once the image is resolved, so the lookup overlaps the TOC fetches.
  std::unique_ptr<TracePrefetch> trace_prefetch_;
  std::thread index_store_thread_;         // stores freshly built layer indexes after mounting
  std::vector<std::thread> warm_threads_;  // WarmConnections
  std::unique_ptr<StatsFileWriter> stats_writer_;
  std::unique_ptr<MountMetrics> metrics_;  // the scrape's view of stats_ (mount_metrics.h)
};

}  // namespace hoist
