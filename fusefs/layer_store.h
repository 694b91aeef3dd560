// LayerStore: ONE read-only FUSE mount whose root holds a directory per layer, each directory the
// layer's view as an overlayfs lower layer (MergedView::BuildLayer, merged_view.h "Layer
// views"), for containerd's remote snapshotter (tools/snapshotter/) to stack with kernel
// overlayfs. Layers are added and removed while the mount serves.
//
//   MountOptions options;  options.mountpoint = "/var/lib/hoist-snapshotter/store";
//   auto store = LayerStore::Start(options);            // mounted, serving on its own threads
//   Result<std::string> dir = (*store)->AddLayer("registry/repo:tag", layer_digest, manifest);
//   // *dir == "<mountpoint>/<hex of the layer digest>"; stack: lowerdir=<dirN>:...:<dir1>
//   (*store)->RemoveLayer(layer_digest);
//
// Layout: <mountpoint>/<64 hex digits of the layer's sha256>/... . The name depends on the digest
// only, so it is the same after a restart. Overlayfs takes at most one page (4 KiB) of mount
// options, and each absolute path is the mountpoint's length + 66 bytes: about 40 layers with a
// 30-byte mountpoint. Relative to the store's directory (containerd compacts long lowerdir
// lists that way) a layer takes 65 bytes, about 60 layers; for more, bind the directories to
// shorter paths.
//
// AddLayer(image_ref, layer_digest, manifest_digest):
//   1. The image: `image_ref` ("host/repo:tag", "host/repo@sha256:...", docker.io names
//      normalised), pinned to `manifest_digest` when that is not empty (the repository's manifest
//      by digest, so a moved tag cannot change what is served). Resolved like a hoistfs mount
//      (local_image.h ResolveMountImage: the registry with credentials from the docker config,
//      the local store when the registry cannot be reached or options.offline). An image pinned
//      by digest is resolved once and remembered (a few dozen at most). One named by tag is
//      reused for options.tag_reuse (10 s), so the Prepare calls of one pull resolve it once; a
//      reused tag whose manifest lacks `layer_digest` is resolved again (the tag may have moved).
//   2. The layer: the manifest's descriptor with `layer_digest` (ENOENT if it has none), which
//      must be lazy (Admit): zstd:chunked or eStargz (CheckLazyLayer, layer_loader.h), or an
//      unconverted tar+gzip / tar+zstd layer whose index, with a usable checkpoint index
//      (LayerIndex::stream_index), is in the host store already (a hoistfs mount or `hoist pull`
//      of the image built it) or published next to the image (`hoist index`,
//      fusefs/published_indexes.h: looked up once per resolved image, not offline nor for an
//      image served from the local store; the index is then stored): its files are then read by
//      span (ZranReader, zran_reader.h; StreamLayers falls back to the layer's full fetch for a
//      file over 64 MiB, its copy under CACHE/tmp within cache_size). Any other layer fails with
//      ENOTSUP and a line saying why: the snapshotter then lets containerd download and unpack it.
//   3. Its index: from the host store (LMDB) when known, else its TOC read and verified and
//      the index stored (layer_loader.h). Then its layer view, and (options.prefetch) a
//      Prefetcher of its own, whose whole-layer pass (prefetch all) starts 2 s after the layer
//      is added and waits for 1 s without on-demand fetches (at most 5 s) before each request,
//      so a container started right after the pull reads first (docs/BENCHMARKS.md).
//   A layer already in the store (any image) is not loaded again: AddLayer counts a reference
//   and returns the same directory; its blobs keep coming from the repository of the image that
//   added it first. Concurrent AddLayers of one digest load it once (the others wait).
// Preload(image_ref, layer_digests, manifest_digest): in the background, loads the index of each
//   listed layer that is neither in the store, nor loading, nor in the host store already (steps
//   1-3 up to storing the index in the host store; no directory, no reference, no prefetch), up to
//   4 at a time, so that the later AddLayers of those layers find their indexes local. For the
//   first Prepare of an image, whose labels list all its layers: containerd Prepares layers one
//   after the other. A layer being preloaded counts as loading (an AddLayer of it waits, then reads
//   the stored index); a digest is preloaded once per store (a second Preload of it does nothing).
//   Failures are only logged (debug): the AddLayer that follows says what is wrong. Returns at once
//   (the image is resolved in the background too, beside the caller's own AddLayer).
// RemoveLayer(layer_digest): drops one reference; at zero the directory disappears (the kernel's
//   cached name is invalidated), its prefetcher stops, and its inodes answer ESTALE. ENOENT for
//   a layer the store does not hold. Requests already running on the layer finish first.
//   Remove only layers no mounted overlay stacks: overlayfs asks every layer of a lookup, so
//   every uncached path of such an overlay then fails with ESTALE.
//
// File contents: one ChunkReader for all layers (the same read path as a hoistfs mount: host
// chunk cache, single-flight, coalesced Range reads, verification, -o timeout; StreamLayers and
// a ZranReader for unconverted layers), blob requests routed to the source of the layer's image.
// A layer's prefetcher completes an unconverted layer span by span (prefetcher.h). MountStats for
// the whole store, written every stats_interval to the mountpoint's state file (stats_file.h), so
// `hoist stats MNT` shows the store's counters (image "layers").
//
// Options used (MountOptions, mount_options.h): mountpoint, cache_dir, cache_size, timeout,
// insecure_registries, platform, offline, prefetch, bandwidth, allow_other, suid, max_threads,
// fuse_debug, state_dir, stats_interval, tag_reuse (the process's log level is the caller's). The
// FUSE options are those of FuseMountOptionString (ro, nodev, default_permissions, nosuid unless
// suid) with fsname "hoist:layers". The snapshotter wants allow_other (containers run as other
// users) and suid: a bind mount of one layer keeps the store's nosuid (overlayfs itself ignores its
// lower layers' mount flags).
//
// Inodes: the store's root is 1; layer slot S (counted from 1, never given to another layer:
// slot_log.h) numbers its view inode i as (S << 32) | i, so an inode number never changes meaning
// (forget is a no-op, as in the merged mount), also across a takeover. A layer removed and added
// again gets its old slot back (the same layer, the same inodes). The root lists the layers in
// slot order.
//
// Surviving the process (fuse_handoff.h, slot_log.h; docs/ARCHITECTURE.md "The layer store's
// handoff"): the session runs on ConnectionIo. A fresh Start waits (at most 10 s) until the
// kernel's INIT request is recorded and, when a fd store exists (FdStoreAvailable: systemd or
// hoist's supervisor), stores a HandoffState memfd ("layers-state"), the SlotLog memfd
// ("layers-slots") and the /dev/fuse fd ("layers-fuse"), in that order, before it returns. Every
// slot is recorded in the SlotLog before its layer is published. Start with a LayerStoreHandoff
// takes such a connection over instead: nothing is mounted and the mountpoint is never touched (a
// stat of it would wait for this very process), the recorded INIT is replayed, and the store does
// NOT serve yet: the caller adds the layers it had (AddLayer gives each its recorded slot, and
// builds its image from the recorded manifest: no registry request; the index comes from the host
// store) and then calls Serve(). Until then the kernel queues every request, so none is answered
// for a slot not restored yet. Serve starts the loop and, once the previous process is gone
// (WaitForExit), sends FUSE_NOTIFY_RESEND so the requests it had read are answered here. A slot
// the caller did not restore answers ESTALE (never another layer's data). There is no
// in-process handover: a process giving the connection up (an upgrade) exits without destroying
// the store; the connection lives on in the fd store and in the next process.
//
// Lifetime: the destructor unmounts with MNT_FORCE, which ends the FUSE connection even while
// an overlay still stacks a layer (that overlay's uncached requests then fail ENOTCONN), joins
// the threads and tears down in reverse order. Known gap: if the store was unmounted from
// outside while an overlay still holds it, only /sys/fs/fuse/connections (fusectl, when
// mounted) can end the connection; without it the destructor waits until the overlay goes.
// Start installs no signal handlers: the caller owns signals.
//
// Thread-safety: AddLayer, AddImage, RemoveLayer, Preload, WaitPrefetched, LayerPath and
// layer_count may be called from any number of threads at once; FUSE requests run concurrently with
// them. Start and the destructor are not concurrent with anything. Errors: one line naming what
// failed; Start: the mountpoint's (CheckMountpoint), the store's, EIO when mounting fails.
// AddLayer: EINVAL (bad reference or digest), the registry's error, ENOENT (no such layer in the
// image), ENOTSUP (not lazy), the TOC's (EBADMSG, EIO, EPERM), EINVAL for a layer that breaks the
// layer rules.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/digest.h"
#include "base/mutex.h"
#include "base/scoped_fd.h"
#include "base/status.h"
#include "fetcher/registry.h"
#include "fusefs/byte_budget.h"
#include "fusefs/chunk_reader.h"
#include "fusefs/fuse_ops.h"
#include "fusefs/handoff_state.h"
#include "fusefs/merged_view.h"
#include "fusefs/mount_metrics.h"
#include "fusefs/mount_options.h"
#include "fusefs/mount_stats.h"
#include "fusefs/prefetcher.h"
#include "fusefs/slot_log.h"
#include "fusefs/stats_file.h"
#include "fusefs/stream_layer.h"
#include "fusefs/zran_reader.h"
#include "index/layer_index.h"
#include "index/store.h"

namespace hoist {

// A live connection handed to this process (LISTEN_FDS from the fd store).
struct LayerStoreHandoff {
  ScopedFd fuse_fd;
  ScopedFd state_fd;       // the HandoffState memfd
  ScopedFd slots_fd;       // the SlotLog memfd
  pid_t previous_pid = 0;  // the process being replaced, if it may still be running (upgrade)
};

// The fd store names of the layer store's connection, state and slot log.
inline constexpr char kLayersFuseFdName[] = "layers-fuse";
inline constexpr char kLayersStateFdName[] = "layers-state";
inline constexpr char kLayersSlotsFdName[] = "layers-slots";

// True when the handed-over fuse fd's connection has ended (POLLERR: unmounted or aborted), so a
// takeover is pointless and a fresh mount is needed.
bool HandedOverConnectionIsDead(int fuse_fd);

class LayerStore {
 public:
  // Resolves nothing yet: opens the host store, mounts the empty root and starts serving.
  // With `handoff` (its fds are consumed): takes that connection over and waits for Serve().
  [[nodiscard]] static Result<std::unique_ptr<LayerStore>> Start(
      const MountOptions& options, LayerStoreHandoff* handoff = nullptr);
  ~LayerStore();
  LayerStore(const LayerStore&) = delete;
  LayerStore& operator=(const LayerStore&) = delete;

  // See the file comment. Returns the layer's directory, "<mountpoint>/<hex>".
  [[nodiscard]] Result<std::string> AddLayer(std::string_view image_ref, const Digest& layer_digest,
                                             const Digest& manifest_digest = Digest());
  [[nodiscard]] Status RemoveLayer(const Digest& layer_digest);
  void Preload(std::string_view image_ref, const std::vector<Digest>& layer_digests,
               const Digest& manifest_digest = Digest());
  // True once no Preload is running (false at the timeout). For tests.
  bool WaitPreloads(std::chrono::milliseconds timeout);

  // Every layer of `image_ref` (AddLayer of each, pinned to the manifest resolved once), lowest
  // first: what to stack as lowerdir=<last>:...:<first>. On an error, the layers this call added
  // are removed again. For `hoistfs --layers` and tests.
  [[nodiscard]] Result<std::vector<std::string>> AddImage(std::string_view image_ref);

  // Waits until the layer's prefetcher (options.prefetch) has made everything it asks for
  // local. True then; false at the timeout, for a layer not in the store, or with prefetch none.
  // The store-wide MountStats add up the layers' fetches, but their image_bytes/local_bytes are
  // not per layer (each layer's scan sets them); use this for one layer's state.
  bool WaitPrefetched(const Digest& layer_digest, std::chrono::milliseconds timeout) const;

  // "<mountpoint>/<hex>" whether or not the layer is in the store.
  std::string LayerPath(const Digest& layer_digest) const;
  // Layers currently served.
  size_t layer_count() const;
  const std::string& mountpoint() const { return mountpoint_; }
  const MountStats& stats() const { return stats_; }
  // The host store this layer store holds open: other users in this process must use it rather
  // than open the same LMDB environment again (local_image.h ResolveMountImage).
  Store* host_store() const { return store_.get(); }

  // Starts serving a taken-over connection (see above). A fresh store serves from Start on;
  // then, and on a second call, nothing happens.
  [[nodiscard]] Status Serve();
  // True when the connection is kept in a fd store (fresh: stored by Start; taken over: it came
  // from one).
  bool kept() const { return kept_; }

  // False once the FUSE loop has ended (the mount was unmounted from outside, e.g.
  // `fusermount3 -u`). For `hoistfs --layers`, which polls it between signals.
  bool Serving() const;

  // The FUSE handlers (layer_store.cc) reach the store through the session's userdata.
  struct Layer;
  std::shared_ptr<const Layer> FindSlot(uint64_t slot) const;
  std::shared_ptr<const Layer> FindName(std::string_view name) const;
  // Layers with slot > after, in slot order, at most `max`.
  std::vector<std::shared_ptr<const Layer>> ListAfter(uint64_t after, size_t max) const;
  ChunkReader* reader() const { return reader_.get(); }
  ReadFailureMemo* failures() { return &read_failures_; }

 private:
  class RoutingSource;
  struct Image;
  explicit LayerStore(MountOptions options);
  Status Build(LayerStoreHandoff* handoff);
  // Fresh mount: waits for INIT, then keeps the connection in the fd store (if there is one).
  void KeepConnection();
  void StartLoop();
  void Teardown();
  // Steps 1-3 of AddLayer, outside the lock.
  Result<std::shared_ptr<Layer>> Load(std::string_view image_ref, const Digest& layer_digest,
                                      const Digest& manifest_digest);
  // Step 2's check (see the file comment): Ok, or ENOTSUP with the reason.
  // `published`: set to the layer's published index when the store has none and one is found.
  Status Admit(const Descriptor& layer, const Image& image, std::optional<LayerIndex>* published);
  // The image a slot record names, as recorded (no registry request).
  Result<std::shared_ptr<const Image>> RecordedImage(const SlotRecord& record);
  // `fresh`: ask the registry even when a resolution of the same tag is still being reused.
  Result<std::shared_ptr<const Image>> ResolveImage(std::string_view image_ref,
                                                    const Digest& manifest_digest, bool fresh);

  const MountOptions options_;
  std::string mountpoint_;  // canonical
  std::string connection_;  // the FUSE connection's number (/sys/fs/fuse/connections/N)

  std::unique_ptr<RegistryClient> client_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<RoutingSource> source_;
  MountStats stats_;
  std::unique_ptr<ByteBudget> stream_space_;  // full-fetch copies of unconverted layers
  std::unique_ptr<ZranReader> zran_;
  std::unique_ptr<StreamLayers> streams_;
  std::unique_ptr<ChunkReader> reader_;
  ReadFailureMemo read_failures_;
  fuse_session* session_ = nullptr;
  bool mounted_ = false;
  bool takeover_ = false;   // the connection was handed over to this process
  bool kept_ = false;       // the connection is in a fd store
  int fuse_fd_ = -1;        // the session's fd (owned by the session)
  pid_t previous_pid_ = 0;  // takeover: the process to outlive before FUSE_NOTIFY_RESEND
  HandoffState handoff_state_;
  std::unique_ptr<SlotLog> slots_;
  Mutex init_mu_;
  CondVar init_cv_;
  bool init_recorded_ HOIST_GUARDED_BY(init_mu_) = false;
  std::thread resend_thread_;
  std::thread loop_;
  mutable Mutex loop_mu_;
  std::unique_ptr<StatsFileWriter> stats_writer_;
  std::unique_ptr<MountMetrics> metrics_;  // the scrape's view of stats_ (mount_metrics.h)
  bool loop_done_ HOIST_GUARDED_BY(loop_mu_) = false;

  mutable SharedMutex mu_;
  std::map<uint64_t, std::shared_ptr<Layer>> by_slot_ HOIST_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Layer>, std::less<>> by_name_ HOIST_GUARDED_BY(mu_);
  std::set<std::string> loading_ HOIST_GUARDED_BY(mu_);
  SharedCondVar loaded_cv_;                                // signalled when loading_ shrinks
  std::set<std::string> preloaded_ HOIST_GUARDED_BY(mu_);  // names Preload took (bounded)

  // Preload threads (detached): the destructor waits for them.
  Mutex preload_mu_;
  CondVar preload_cv_;
  int preloads_running_ HOIST_GUARDED_BY(preload_mu_) = 0;
  bool stopping_ HOIST_GUARDED_BY(preload_mu_) = false;

  Mutex images_mu_;
  std::map<std::string, std::shared_ptr<const Image>> images_ HOIST_GUARDED_BY(images_mu_);
};

// One layer of the store. Immutable once published, except `refs` (guarded by the store's mu_).
struct LayerStore::Layer {
  uint64_t slot = 0;
  Digest digest;
  std::string name;  // hex of the digest, NUL-terminated in .c_str() for readdir
  std::shared_ptr<const LayerIndex> index;
  MergedView view;
  std::unique_ptr<Prefetcher> prefetcher;
  int refs = 0;

  Layer(MergedView v) : view(std::move(v)) {}  // NOLINT
  ~Layer();
};

}  // namespace hoist
