// Store: the host's persistent hoist store, one LMDB environment per host shared by every
// hoistfs and hoist process. It holds
//   - layer indexes, keyed by layer digest (a mount of an image whose layers are known skips the
//     TOC fetch);
//   - the chunk cache (see chunk_cache.h), keyed by chunk digest, under a byte quota;
//   - local image references (name -> manifest digest) and small blobs (manifests, configs) by
//     digest, for `hoist images / rm / prune / pull / load`.
// Only chunks are evicted. Layer indexes, refs and blobs stay until deleted explicitly.
//
// Thread-safety: every method is thread-safe; several processes may open the same directory at
// once (LMDB's multi-process locking; one writer at a time across processes).
// Ownership: Open returns the only owner; chunks() is valid while the Store lives.
// Errors: values with an errno. A stored record that fails validation is EIO ("corrupt ...") for
// layer indexes and refs; a corrupt chunk or blob is a miss (deleted; the caller refetches).
// ENOSPC is returned only by Put* of non-chunk records that cannot fit even with every chunk
// evicted.
//
// Caveats:
//  - NEVER hold a read transaction across a network fetch. No method here returns with a txn
//    open; keep it that way when adding one.
//  - Open a directory at most once per process, and never use a Store across fork() (open a new
//    one in the child).
//  - Every process should use the same map size for a directory (the default derives it from
//    the quota): a process whose map is smaller than the data file another process grew gets
//    EAGAIN (MDB_MAP_RESIZED) until it reopens.
//  - Durability: commits fsync data pages but not the meta page (MDB_NOMETASYNC). kill -9 loses
//    nothing committed; a power loss may roll back the last commits, never corrupts. PutRef,
//    DeleteRef and PutBlob force a full sync because they cannot be refetched by themselves.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/digest.h"
#include "base/status.h"
#include "index/chunk_cache.h"
#include "index/layer_index.h"
#include "index/lmdb_env.h"

namespace hoist {

struct StoreOptions {
  ChunkCacheOptions cache;
  // 0: max(2 * quota + 256 MiB, 1 GiB). The data file grows only as pages are used; the map is
  // only address space. It is fixed for the life of the process.
  uint64_t map_size = 0;
  // Reader slots in the lock file (fixed by the first process that creates it): one per
  // concurrent read in every process.
  unsigned max_readers = 4096;
};

struct StoreStats {
  ChunkCacheStats chunks;
  uint64_t layer_indexes = 0;
  uint64_t refs = 0;
  uint64_t blobs = 0;
  uint64_t file_bytes = 0;  // data file pages in use
  uint64_t map_size = 0;
  int stale_readers_cleared_at_open = 0;
};

// Where the store lives when neither --cache nor HOIST_CACHE says: /var/lib/hoist for root,
// else $XDG_CACHE_HOME/hoist, else $HOME/.cache/hoist. The inputs are explicit for testing.
struct CacheDirInputs {
  unsigned euid = 0;
  std::string hoist_cache;     // $HOIST_CACHE ("" if unset)
  std::string xdg_cache_home;  // $XDG_CACHE_HOME
  std::string home;            // $HOME
};
// `flag` is the --cache value ("" if not given); it wins, then HOIST_CACHE, then the default.
// Errors: ENOENT if no directory can be derived (non-root, no XDG_CACHE_HOME, no HOME).
[[nodiscard]] Result<std::string> ResolveCacheDir(std::string_view flag,
                                                  const CacheDirInputs& inputs);
// The same, reading geteuid() and the process environment.
[[nodiscard]] Result<std::string> ResolveCacheDir(std::string_view flag);

class Store {
 public:
  // Opens (creating if needed) the store in `dir`; clears stale readers. A damaged data file is
  // set aside (lmdb_env.h) and a fresh store started, into which the image references, blobs
  // and layer indexes of the damaged file that verify are copied back (store_salvage.h); one
  // warning line says so. Errors: EPROTO for a store written by an incompatible schema, else the
  // errno of the failing step (never for a damaged file, unless its fresh replacement fails too).
  [[nodiscard]] static Result<std::unique_ptr<Store>> Open(const std::string& dir,
                                                           const StoreOptions& options = {});
  // Gives the free pages of dir's data file back to the filesystem when no process has the store
  // open (LmdbEnv::Compact; the caller must not have it open either).
  [[nodiscard]] static Result<LmdbEnv::CompactResult> Compact(const std::string& dir,
                                                              const StoreOptions& options = {});
  // Commits queued chunks, then closes the environment.
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Layer indexes. REQUIRES: !index.layer_digest.empty() (else EINVAL). Replaces any old one.
  [[nodiscard]] Status PutLayerIndex(const LayerIndex& index);
  // nullopt if absent; EIO if the record is corrupt (the caller may delete and rebuild it).
  [[nodiscard]] Result<std::optional<LayerIndex>> GetLayerIndex(const Digest& layer);
  // Whether an index record is stored (not decoded, not verified).
  [[nodiscard]] Result<bool> HasLayerIndex(const Digest& layer);
  [[nodiscard]] Result<bool> DeleteLayerIndex(const Digest& layer);  // false if absent
  [[nodiscard]] Result<std::vector<Digest>> ListLayerIndexes();      // sorted by raw digest

  // Image references: name ("registry/repo:tag" or "...@sha256:...", at most 500 bytes, else
  // ENAMETOOLONG; empty is EINVAL) -> manifest digest.
  [[nodiscard]] Status PutRef(std::string_view name, const Digest& manifest);
  [[nodiscard]] Result<std::optional<Digest>> GetRef(std::string_view name);
  [[nodiscard]] Result<bool> DeleteRef(std::string_view name);                   // false if absent
  [[nodiscard]] Result<std::vector<std::pair<std::string, Digest>>> ListRefs();  // by name

  // Small blobs (manifests, configs). PutBlob checks sha256(bytes) == digest (EINVAL if not).
  // GetBlob re-checks it: a mismatching record is deleted and reported as nullopt.
  [[nodiscard]] Status PutBlob(const Digest& digest, std::string_view bytes);
  [[nodiscard]] Result<std::optional<std::string>> GetBlob(const Digest& digest);
  [[nodiscard]] Result<bool> DeleteBlob(const Digest& digest);
  [[nodiscard]] Result<std::vector<Digest>> ListBlobs();

  ChunkCache& chunks() { return *chunks_; }

  [[nodiscard]] Result<StoreStats> Stats();
  // Clears reader slots of dead processes (also done at Open); returns how many.
  [[nodiscard]] Result<int> ClearStaleReaders();
  // Full consistency check of every table (deep: also sha256 of every chunk). EIO names the
  // first problem found.
  [[nodiscard]] Status Check(bool deep);

  const std::string& dir() const { return env_->dir(); }
  // Whether this process found the store's file damaged at run time (see lmdb_env.h): reads
  // are then misses, chunk puts are dropped, other calls fail with EIO, and the next open sets
  // the file aside.
  bool damaged() const { return env_->damaged(); }
  // The path the damaged data file was moved to by this Open ("" if none).
  const std::string& set_aside_at_open() const { return env_->set_aside_at_open(); }

 private:
  Store() = default;
  Status DeleteCorruptBlob(const std::string& key);
  // Copies the verified refs, blobs and layer indexes of a set-aside damaged file into this
  // (fresh) store (store_salvage.h). Returns the log line's tail ("" if nothing was recovered).
  std::string RecoverFrom(const std::string& damaged_file);

  std::unique_ptr<LmdbEnv> env_;
  std::unique_ptr<ChunkCache> chunks_;  // after env_: destroyed first
};

}  // namespace hoist
