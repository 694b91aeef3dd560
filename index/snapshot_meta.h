// SnapshotMeta: hoist-snapshotter's snapshot records, in an LMDB environment of their own (the
// directory given to Open; the daemon uses <root>/metadata). It keeps what containerd's
// snapshots/storage keeps in bolt, with the same semantics:
//   - key -> record: kind (view, active, committed), parent key, labels, created/updated times,
//     usage (committed snapshots), an internal id (the name of <root>/snapshots/<id>), and for a
//     remote (lazy) snapshot the directory that holds its tree;
//   - a children index (parent id, child id -> child key), so that a snapshot with children
//     cannot be removed, as in containerd.
// Ids are never reused (a counter in the meta table), so a directory left over from a removed
// snapshot can never be taken for a live one.
//
// Errors (errno values; the gRPC layer maps them to containerd's errdefs codes):
//   ENOENT  NotFound: no such key, or a parent that does not exist;
//   EEXIST  AlreadyExists: the key (or commit name) is taken;
//   EINVAL  InvalidArgument: an empty or too long key (LMDB keys are at most 511 bytes), a parent
//           that is not committed, a label over 4096 bytes, an immutable field in Update;
//   EBUSY   FailedPrecondition: removing a snapshot that has children, committing a snapshot
//           that is not active;
//   EIO     a record that fails to decode (damage); others as LmdbEnv.
//
// Durability: every write is forced to disk (LmdbEnv::Sync) before it returns: snapshot records
// cannot be refetched. A damaged data file is set aside by LmdbEnv at Open and the store starts
// empty (one warning line saying the records are lost).
// Thread-safety: every method is thread-safe; each is one LMDB transaction. Open a directory at
// most once per process.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace hoist {

class LmdbEnv;

// The values are containerd's (snapshots.proto's Kind).
enum class SnapshotKind : uint8_t { kUnknown = 0, kView = 1, kActive = 2, kCommitted = 3 };
// "view", "active", "committed" (the names containerd's filters use), "unknown".
const char* SnapshotKindName(SnapshotKind kind);

using SnapshotLabels = std::map<std::string, std::string>;

struct SnapshotUsage {
  int64_t size = 0;    // bytes (allocated blocks * 512, as containerd's du)
  int64_t inodes = 0;  // distinct inodes
};

struct SnapshotInfo {
  std::string name;  // the key
  std::string parent;
  SnapshotKind kind = SnapshotKind::kUnknown;
  int64_t created_ns = 0;  // since the epoch, UTC
  int64_t updated_ns = 0;
  SnapshotLabels labels;
};

struct SnapshotRecord {
  SnapshotInfo info;
  uint64_t id = 0;
  SnapshotUsage usage;      // stored for committed snapshots
  std::string remote_path;  // non-empty: a remote snapshot whose tree is this directory
};

// The record codec (exposed for tests and the fuzz target). Decode: EIO "corrupt snapshot
// record (why)" for anything malformed; never reads out of bounds.
std::string EncodeSnapshotRecord(const SnapshotRecord& record);
[[nodiscard]] Result<SnapshotRecord> DecodeSnapshotRecord(std::string_view name,
                                                          std::string_view bytes);

// The most bytes a label's key and value may have together (containerd's labels.Validate).
inline constexpr size_t kMaxLabelBytes = 4096;

class SnapshotMeta {
 public:
  [[nodiscard]] static Result<std::unique_ptr<SnapshotMeta>> Open(const std::string& dir);
  ~SnapshotMeta();
  SnapshotMeta(const SnapshotMeta&) = delete;
  SnapshotMeta& operator=(const SnapshotMeta&) = delete;

  // A fresh id, never handed out before (the caller makes <root>/snapshots/<id> before the
  // record exists, so a crash in between leaves only a directory that Cleanup removes).
  [[nodiscard]] Result<uint64_t> NewId();

  // Creates a view or active snapshot `key` on `parent` ("" for none) with id `id` (from
  // NewId). Checks, in containerd's order: kind (EINVAL), parent exists (ENOENT) and is
  // committed (EINVAL), key is new (EEXIST).
  [[nodiscard]] Result<SnapshotRecord> Create(SnapshotKind kind, const std::string& key,
                                              const std::string& parent,
                                              const SnapshotLabels& labels, uint64_t id);
  // Creates the committed remote snapshot `name` on `parent`, whose tree is `remote_path`.
  // EEXIST if `name` exists; parent checks as Create.
  [[nodiscard]] Result<SnapshotRecord> CreateRemote(const std::string& name,
                                                    const std::string& parent,
                                                    const SnapshotLabels& labels,
                                                    const std::string& remote_path, uint64_t id);

  // The record of `key`; ENOENT if absent.
  [[nodiscard]] Result<SnapshotRecord> Get(const std::string& key);
  // The records of `key`'s ancestors, its parent first (empty for a snapshot without parent).
  // ENOENT if `key` or an ancestor is missing.
  [[nodiscard]] Result<std::vector<SnapshotRecord>> Ancestors(const std::string& key);

  // Commits the active snapshot `key` as `name`: same id, kind committed, created = updated =
  // now, labels replaced by `labels` (not inherited), usage stored; `key` is gone afterwards.
  // Errors in containerd's order: EEXIST (name taken), ENOENT (key), EBUSY (not active).
  [[nodiscard]] Status Commit(const std::string& key, const std::string& name,
                              const SnapshotLabels& labels, const SnapshotUsage& usage);

  // Removes `key`; returns its record. ENOENT if absent, EBUSY if it has children.
  [[nodiscard]] Result<SnapshotRecord> Remove(const std::string& key);

  // containerd's UpdateInfo: with no field paths the labels are replaced by info.labels; with
  // paths, "labels" replaces them and "labels.K" sets K to info.labels[K] ("" if absent); any
  // other path is EINVAL. Labels with an empty value are dropped. updated = now.
  [[nodiscard]] Result<SnapshotInfo> Update(const SnapshotInfo& info,
                                            const std::vector<std::string>& field_paths);

  // Every record, by key in byte order.
  [[nodiscard]] Result<std::vector<SnapshotRecord>> List();
  // Replaces the remote path of a remote snapshot (after the layer source moved it at restart).
  [[nodiscard]] Status SetRemotePath(const std::string& key, const std::string& path);

  // The data file set aside at Open as damaged ("" if none).
  const std::string& set_aside_at_open() const;

 private:
  SnapshotMeta() = default;
  std::unique_ptr<LmdbEnv> env_;
};

}  // namespace hoist
