// Snapshotter: hoist-snapshotter's semantics, independent of gRPC. It behaves as containerd's
// overlay snapshotter (snapshots/overlay, snapshots/storage in containerd 1.6) and adds the
// remote-layer seam (remote_layer_source.h).
//
// Layout under `root` (as containerd's overlay snapshotter):
//   root/metadata/             the LMDB environment of SnapshotMeta (index/snapshot_meta.h)
//   root/snapshots/<id>/fs     the snapshot's tree (upperdir of an active snapshot)
//   root/snapshots/<id>/work   overlay's workdir (active snapshots only)
// A remote snapshot has no directory here: its tree is the path its source returned.
//
// Mounts (as overlay.go):
//   active, no parent            bind <fs> [rw, rbind]
//   active, parents              overlay [index=off,] workdir=, upperdir=, lowerdir=P1:P2:..
//                                (parents newest first)
//   view, no parent              bind <fs> [ro, rbind]
//   view, one parent             bind <parent fs> [ro, rbind]
//   view, several parents        overlay [index=off,] lowerdir=P1:P2:..
// index=off is added when the kernel's overlay module has the index parameter.
//
// Errors: errno values as SnapshotMeta's (ENOENT NotFound, EEXIST AlreadyExists, EINVAL
// InvalidArgument, EBUSY FailedPrecondition); Mounts of a committed snapshot is EBUSY (as
// containerd's "not active or view"). Other errnos are internal failures.
// Thread-safety: every method is thread-safe. Operations that create or delete directories are
// serialised (as containerd's overlay snapshotter does with its bolt write transaction), so
// Cleanup never sees a half-made snapshot; a RemoteLayerSource is consulted outside that lock.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/mutex.h"
#include "base/status.h"
#include "index/snapshot_meta.h"
#include "tools/snapshotter/remote_layer_source.h"

namespace hoist {

struct SnapshotMount {
  std::string type;    // "bind" or "overlay"
  std::string source;  // a path, or "overlay"
  std::vector<std::string> options;
  bool operator==(const SnapshotMount&) const = default;
};

struct SnapshotterOptions {
  std::string root;
  // The lazy path; null: every layer is ordinary.
  std::shared_ptr<RemoteLayerSource> remote;
};

class Snapshotter {
 public:
  // Creates root, root/snapshots and opens root/metadata; then asks the remote source to
  // restore the trees of recorded remote snapshots (see remote_layer_source.h).
  [[nodiscard]] static Result<std::unique_ptr<Snapshotter>> Open(const SnapshotterOptions& options);
  ~Snapshotter();

  // An active snapshot on `parent`. With a remote source and a containerd.io/snapshot.ref label,
  // the source is asked first; if it serves the layer, the committed remote snapshot is recorded
  // under the label's value and EEXIST "target snapshot ...: already exists" is returned.
  [[nodiscard]] Result<std::vector<SnapshotMount>> Prepare(const std::string& key,
                                                           const std::string& parent,
                                                           const SnapshotLabels& labels);
  [[nodiscard]] Result<std::vector<SnapshotMount>> View(const std::string& key,
                                                        const std::string& parent,
                                                        const SnapshotLabels& labels);
  // The mounts of an active or view snapshot (EBUSY for a committed one).
  [[nodiscard]] Result<std::vector<SnapshotMount>> Mounts(const std::string& key);
  // Commits active `key` as `name` with `labels`; stores the usage of its tree.
  [[nodiscard]] Status Commit(const std::string& name, const std::string& key,
                              const SnapshotLabels& labels);
  // Removes `key` and its directory (and every other directory no longer on record).
  [[nodiscard]] Status Remove(const std::string& key);
  [[nodiscard]] Result<SnapshotInfo> Stat(const std::string& key);
  [[nodiscard]] Result<SnapshotInfo> Update(const SnapshotInfo& info,
                                            const std::vector<std::string>& field_paths);
  // Snapshots matching any of `filters` (containerd's syntax, filter.h); EINVAL for a bad one.
  [[nodiscard]] Result<std::vector<SnapshotInfo>> List(const std::vector<std::string>& filters);
  // Active: measured now (du of fs); otherwise the stored usage (0 for views).
  [[nodiscard]] Result<SnapshotUsage> Usage(const std::string& key);
  // Removes the directories under root/snapshots that belong to no recorded snapshot.
  [[nodiscard]] Status Cleanup();

  const std::string& root() const { return root_; }
  // The directory of a snapshot's tree: root/snapshots/<id>/fs, or its remote path.
  std::string TreePath(const SnapshotRecord& r) const;

 private:
  Snapshotter() = default;
  Result<std::vector<SnapshotMount>> Create(SnapshotKind kind, const std::string& key,
                                            const std::string& parent,
                                            const SnapshotLabels& labels);
  // The remote path for Prepare: true if a remote snapshot was recorded (answer EEXIST).
  bool TryRemote(const std::string& key, const std::string& parent, const SnapshotLabels& labels);
  Result<std::vector<SnapshotMount>> MountsOf(const SnapshotRecord& r);
  Status CleanupLocked() HOIST_REQUIRES(mu_);
  std::string SnapshotDir(uint64_t id) const;

  std::string root_;
  std::unique_ptr<SnapshotMeta> meta_;
  std::shared_ptr<RemoteLayerSource> remote_;
  bool index_off_ = false;
  Mutex mu_;  // held by directory-changing operations
};

// containerd's du (continuity fs.DiskUsage): distinct inodes under `path` and the sum of their
// allocated blocks * 512.
[[nodiscard]] Result<SnapshotUsage> DiskUsage(const std::string& path);

}  // namespace hoist
