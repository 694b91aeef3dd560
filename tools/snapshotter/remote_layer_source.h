// RemoteLayerSource: the seam through which hoist-snapshotter serves a layer lazily.
//
// containerd's remote-snapshot protocol: when containerd unpacks an image it calls
// Prepare(key, parent) with the label containerd.io/snapshot.ref=<chainID> and the layer's
// annotations that start with containerd.io/snapshot/ (from the CRI plugin, or from stargz's
// `ctr-remote image rpull`). If the snapshotter can serve that layer without containerd
// downloading and unpacking it, it commits a snapshot named <chainID> on <parent> itself, labels
// it containerd.io/snapshot/remote, and answers ALREADY_EXISTS; containerd then skips the layer.
//
// A RemoteLayerSource decides, per layer, whether it can: given the request it returns the path
// of a directory that holds the layer's tree as an overlayfs lower layer (whiteouts as 0/0
// character devices, opaque directories with trusted.overlay.opaque=y), or an error whose
// message says why not ("not zstd:chunked", "no credentials for ..."). The snapshotter then
// records the committed snapshot with that directory as its tree (a lowerdir in the mounts of
// its children); on any error it logs one line and unpacks the ordinary way. The directory must
// stay valid while the snapshot exists; Forget is called once its snapshot is removed.
//
// At start-up the snapshotter calls Resolve again for every remote snapshot it has on record
// (with the labels the snapshot was recorded with), to restore the layer's directory after a
// restart; a changed path is recorded, an error is logged and the snapshot's mounts keep the old
// path (containerd sees the failure when it mounts). Then it calls Restored() once, before it
// serves anything: a source that took a live mount over starts answering it there, so no request
// of a running container meets a layer that is not restored yet.
//
// The labels a source may read (all optional; absent ones are simply not there):
//   containerd.io/snapshot.ref                       the chain ID (always set by containerd)
//   containerd.io/snapshot/cri.image-ref             image reference      (CRI plugin)
//   containerd.io/snapshot/cri.manifest-digest       manifest digest      (CRI plugin)
//   containerd.io/snapshot/cri.layer-digest          this layer's digest  (CRI plugin)
//   containerd.io/snapshot/cri.image-layers          comma-separated layer digests (CRI plugin)
//   containerd.io/snapshot/remote/stargz.reference   image reference      (ctr-remote rpull)
//   containerd.io/snapshot/remote/stargz.digest      this layer's digest  (ctr-remote rpull)
//   containerd.io/snapshot/remote/stargz.layers      comma-separated layer digests
// Plain `ctr image pull` of containerd 1.6 sends none of them, not even containerd.io/snapshot.ref
// (PullRunTreeRestartAndGc: the source is never asked).
//
// Thread-safety: Resolve and Forget may be called from several gRPC threads at once.
#pragma once

#include <map>
#include <string>

#include "base/status.h"

namespace hoist {

inline constexpr char kLabelSnapshotRef[] = "containerd.io/snapshot.ref";
inline constexpr char kLabelRemote[] = "containerd.io/snapshot/remote";
inline constexpr char kLabelCriImageRef[] = "containerd.io/snapshot/cri.image-ref";
inline constexpr char kLabelCriManifestDigest[] = "containerd.io/snapshot/cri.manifest-digest";
inline constexpr char kLabelCriLayerDigest[] = "containerd.io/snapshot/cri.layer-digest";
inline constexpr char kLabelCriImageLayers[] = "containerd.io/snapshot/cri.image-layers";
inline constexpr char kLabelStargzReference[] = "containerd.io/snapshot/remote/stargz.reference";
inline constexpr char kLabelStargzDigest[] = "containerd.io/snapshot/remote/stargz.digest";
inline constexpr char kLabelStargzLayers[] = "containerd.io/snapshot/remote/stargz.layers";

// What a source is asked: the layer's labels plus the two that identify it.
struct RemoteLayerRequest {
  std::string chain_id;  // the containerd.io/snapshot.ref label's value
  std::string parent;    // the parent snapshot's key in this snapshotter ("" for the base)
  std::map<std::string, std::string> labels;

  // The image reference and layer digest from the CRI labels, else stargz's ("" if neither).
  std::string ImageRef() const;
  std::string LayerDigest() const;
};

class RemoteLayerSource {
 public:
  virtual ~RemoteLayerSource() = default;
  // The directory holding the layer's tree (lazy), or why the layer is not served lazily.
  [[nodiscard]] virtual Result<std::string> Resolve(const RemoteLayerRequest& request) = 0;
  // Every remote snapshot on record was resolved again (see above). An error fails the
  // snapshotter's start. Default: nothing to do.
  [[nodiscard]] virtual Status Restored() { return Ok(); }
  // The snapshot of `chain_id` (served from `path`) was removed. Default: nothing to do.
  virtual void Forget(const std::string& chain_id, const std::string& path) {
    (void)chain_id;
    (void)path;
  }
};

}  // namespace hoist
