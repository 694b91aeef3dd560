// LmdbEnv: the RAII owner of one LMDB environment (a directory holding data.mdb and lock.mdb)
// and its named tables, plus pooled short read transactions and one-shot write transactions.
// Internal to index/: Store and ChunkCache are built on it; nothing above index/ sees LMDB.
//
// The environment is opened with MDB_NOTLS (a read txn is not tied to a thread, so FUSE thread
// pools can share a small pool of reset txns and never exhaust reader slots) and MDB_NOMETASYNC
// (each commit fsyncs the data pages but not the meta page: a process crash or kill -9 loses
// nothing, a power loss loses at most the last commit(s) and never corrupts the file; for a cache
// whose every record can be refetched that halves the fsyncs per commit). Metadata that cannot be
// refetched (refs) is forced to disk with Sync() by the Store.
//
// Thread-safety: LmdbEnv is thread-safe. A ReadTxn or WriteTxn is used by one thread at a time.
// Write transactions of all threads and processes are serialised by LMDB's writer lock.
//
// Caveats (as in lmdb.h):
//  - NEVER hold a read txn across a network fetch or any other unbounded wait: it pins the
//    snapshot, so freed pages cannot be reused and the map fills. Take one per operation.
//  - Do not open the same directory twice in one process (POSIX fcntl locks are per process).
//  - Do not use an LmdbEnv in a child after fork(); open a new one there.
//  - The map size is fixed at open (mdb_env_set_mapsize needs no txn open in the process, which a
//    thread pool cannot promise); MDB_MAP_FULL is handled by evicting, see ChunkCache.
//
// Damage (a cache is a cache: losing it costs refetches, never a crash; docs/RELIABILITY.md):
//  - At open, under an flock of <dir>/open.lock (so two processes starting at once cannot both
//    set a file aside): data.mdb is checked against its meta pages (lmdb_file_check.h) before it
//    is mapped, then opened, then walked (every named table's first and last leaf, the small
//    tables whole). A damaged file (or one a process marked damaged at run time, see below) is
//    renamed to data.mdb.damaged-<UTC time>, lock.mdb is removed, an empty environment is
//    created and one warning line names the file and the reason. At most kKeptDamagedFiles (2) such
//    files are kept (older ones are deleted, newest kept).
//  - At run time: MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_PANIC, a record outside the map, a
//    liblmdb assertion, or a SIGBUS in the map (data.mdb truncated under us, see
//    map_fault_guard.h) mark the environment damaged: one warning line, a marker file
//    (<dir>/data.mdb.damage-report, naming the file's inode) so the next Open sets it aside, and
//    from then on every BeginRead/BeginWrite in this process fails with EIO without touching the
//    map (ChunkCache turns that into misses and dropped puts; the read path fetches instead).
#pragma once

#include <sys/types.h>

#include <lmdb.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/mutex.h"
#include "base/status.h"

namespace hoist {

// Maps an LMDB return code to an Error: MDB_NOTFOUND -> ENOENT, MDB_MAP_FULL -> ENOSPC,
// MDB_READERS_FULL / MDB_MAP_RESIZED -> EAGAIN, MDB_VERSION_MISMATCH / MDB_INVALID -> EPROTO,
// corruption codes -> EIO, system errnos as they are. Message: "what: mdb_strerror(rc)".
Error MdbError(int rc, std::string_view what);

inline MDB_val MdbVal(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
inline std::string_view MdbView(const MDB_val& v) {
  return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

enum class Table : int {
  kMeta = 0,   // counters and schema version: ascii key -> u64 LE
  kLayers,     // raw layer digest (32) -> EncodeLayerIndex record
  kChunkMeta,  // raw chunk digest (32) -> ChunkMeta record (size, xxh3, lru seq, atime)
  kChunkBody,  // raw chunk digest (32) + u32 BE segment -> body bytes
  kChunkLru,   // u64 BE lru seq + raw chunk digest (32) -> "" (eviction order)
  kRefs,       // image reference name -> "sha256:..." manifest digest
  kBlobs,      // raw digest (32) -> manifest/config bytes
  // hoist-snapshotter's own environment (snapshot_meta.h); empty in the hoist store.
  kSnapshots,         // snapshot key -> EncodeSnapshotRecord record
  kSnapshotChildren,  // u64 BE parent id + u64 BE child id -> child key
  kCount,
};

// The table's LMDB database name ("refs", "blobs", ...).
const char* TableName(Table t);

struct LmdbEnvOptions {
  uint64_t map_size = 1ull << 30;
  unsigned max_readers = 510;
  // Log the set-aside line at Open (off: the caller logs SetAsideMessage itself, with more).
  bool log_set_aside = true;
};

class LmdbEnv {
 public:
  // Creates `dir` if needed, checks the data file (setting a damaged one aside, see above), opens
  // the environment and every table, and clears stale reader slots left by dead processes
  // (mdb_reader_check). Errors: the errno of the failing step (never for a damaged file, unless
  // the fresh one made in its place fails too); EBUSY when this process already has `dir` open
  // (LMDB forbids two environments on one file in a process: closing either drops the other's
  // locks and reader slots, and the second one's open-time check would read pages the first is
  // writing).
  static Result<std::unique_ptr<LmdbEnv>> Open(const std::string& dir,
                                               const LmdbEnvOptions& options);
  ~LmdbEnv();
  LmdbEnv(const LmdbEnv&) = delete;
  LmdbEnv& operator=(const LmdbEnv&) = delete;

  MDB_dbi dbi(Table t) const { return dbis_[static_cast<int>(t)]; }
  MDB_env* env() const { return env_; }
  const std::string& dir() const { return dir_; }
  int stale_readers_cleared_at_open() const { return stale_at_open_; }
  // The damaged data files set aside by this Open ("" if none): the path it was moved to.
  const std::string& set_aside_at_open() const { return set_aside_at_open_; }
  // The one warning line about the file set aside by this Open ("" if none). `recovered`
  // replaces the default "chunks and layer indexes are fetched again, ..." tail.
  std::string SetAsideMessage(std::string_view recovered) const;

  // Whether this process found the environment damaged (see the header comment).
  bool damaged() const {
    return damaged_.load(std::memory_order_acquire) ||
           map_faults_.load(std::memory_order_acquire) != 0;
  }
  // SIGBUS faults in this environment's map so far. A reader that copied bytes out of the map
  // compares it before and after: a change means some bytes may be zeros, not data.
  uint64_t map_faults() const { return map_faults_.load(std::memory_order_acquire); }
  // Marks the environment damaged: the first call logs one warning line and writes the marker
  // for the next Open. Thread-safe; later calls do nothing.
  void MarkDamaged(std::string_view reason) const;
  // MdbError, and MarkDamaged for the codes that mean a damaged file (MDB_CORRUPTED,
  // MDB_PAGE_NOTFOUND, MDB_PANIC, MDB_INVALID).
  Error Check(int rc, std::string_view what) const;
  // Whether `v` (from a get or cursor in a txn of this environment) lies inside the map. A value
  // outside it comes from a damaged page; the caller must not read it (and marks damage).
  bool InMap(const MDB_val& v) const;
  // EIO "cache DIR is damaged (reason)"; marks the environment damaged if a map fault is not yet
  // accounted for.
  Error DamagedError() const;

  // A read-only snapshot. Returned to the pool (reset, keeping its reader slot) on destruction.
  class ReadTxn {
   public:
    ReadTxn(ReadTxn&& o) noexcept : env_(o.env_), txn_(o.txn_) { o.txn_ = nullptr; }
    ReadTxn& operator=(ReadTxn&&) = delete;
    ~ReadTxn();
    MDB_txn* get() const { return txn_; }
    const LmdbEnv& env() const { return *env_; }
    // mdb_get: the value (pointing into the map, valid while this txn lives), nullopt if absent.
    Result<std::optional<std::string_view>> Get(Table t, std::string_view key) const;

   private:
    friend class LmdbEnv;
    ReadTxn(const LmdbEnv* env, MDB_txn* txn) : env_(env), txn_(txn) {}
    const LmdbEnv* env_;
    MDB_txn* txn_;
  };
  [[nodiscard]] Result<ReadTxn> BeginRead() const;

  // A write transaction; aborted on destruction unless Commit() succeeded.
  class WriteTxn {
   public:
    WriteTxn(WriteTxn&& o) noexcept : env_(o.env_), txn_(o.txn_) {
      o.txn_ = nullptr;
      o.env_ = nullptr;
    }
    WriteTxn& operator=(WriteTxn&&) = delete;
    ~WriteTxn();
    MDB_txn* get() const { return txn_; }
    const LmdbEnv& env() const { return *env_; }
    Result<std::optional<std::string_view>> Get(Table t, std::string_view key) const;
    // Errors: ENOSPC for MDB_MAP_FULL (the txn must then be dropped), others as MdbError.
    Status Put(Table t, std::string_view key, std::string_view value);
    // Makes room for a `size`-byte value under `key` and returns it to be filled before the txn
    // ends (MDB_RESERVE: the value is written in place, never held whole elsewhere). Errors as
    // Put.
    Result<std::span<char>> Reserve(Table t, std::string_view key, size_t size);
    // Returns false if the key was absent.
    Result<bool> Del(Table t, std::string_view key);
    [[nodiscard]] Status Commit();

   private:
    friend class LmdbEnv;
    WriteTxn(const LmdbEnv* env, MDB_txn* txn) : env_(env), txn_(txn) {}
    const LmdbEnv* env_;
    MDB_txn* txn_;
  };
  // Blocks while another thread or process holds the writer lock.
  [[nodiscard]] Result<WriteTxn> BeginWrite() const;

  // Clears reader slots of dead processes; returns how many were cleared.
  [[nodiscard]] Result<int> ClearStaleReaders() const;
  // Forces data and meta pages to disk (after records that cannot be refetched).
  [[nodiscard]] Status Sync() const;
  // Bytes of the data file in use (last page + 1) and the map size.
  struct SpaceInfo {
    uint64_t used_bytes = 0;
    uint64_t map_size = 0;
  };
  [[nodiscard]] Result<SpaceInfo> Space() const;

  // Compaction (hoist prune): rewrites dir's data.mdb without its free pages
  // (mdb_env_copy2 MDB_CP_COMPACT into a scratch directory, then renamed over data.mdb, with a
  // fresh lock.mdb), so the file shrinks to what is in use. Only when no process has the
  // environment open: every LmdbEnv holds a shared flock on <dir>/users.lock for its life, and
  // this takes it exclusively without waiting (under open.lock, so nobody opens meanwhile).
  // The caller must not have dir open itself. compacted=false (with the reason) when another
  // process holds it: a file in use cannot give pages back (LMDB reuses them, never returns
  // them), and replacing it under a live mapping would split the processes' views.
  struct CompactResult {
    bool compacted = false;
    std::string not_compacted;  // why not, when !compacted
    uint64_t bytes_before = 0;  // data.mdb size
    uint64_t bytes_after = 0;
  };
  [[nodiscard]] static Result<CompactResult> Compact(const std::string& dir,
                                                     const LmdbEnvOptions& options);

 private:
  LmdbEnv() = default;
  void ReturnReadTxn(MDB_txn* txn) const;
  // Opens the environment in dir_. Returns a reason if liblmdb finds the file damaged. Errors:
  // MdbError of the failing call otherwise.
  Result<std::optional<std::string>> OpenEnv(const LmdbEnvOptions& options);
  // Clears stale readers and opens (creating) every table.
  Status OpenTables();
  // Read-only structural walk after open; returns a reason if the file is damaged.
  std::optional<std::string> Walk() const;

  // Open without the process-wide once-per-directory check.
  static Result<std::unique_ptr<LmdbEnv>> OpenUnregistered(const std::string& dir,
                                                           const LmdbEnvOptions& options);
  std::string dir_;
  int users_lock_fd_ = -1;  // shared flock on <dir>/users.lock while open (see Compact)
  dev_t dir_dev_ = 0;       // identity of dir_ in the process-wide table of open environments
  ino_t dir_ino_ = 0;
  MDB_env* env_ = nullptr;
  MDB_dbi dbis_[static_cast<int>(Table::kCount)] = {};
  int stale_at_open_ = 0;
  std::string set_aside_at_open_;
  std::string set_aside_reason_;
  std::string set_aside_removed_;
  // The data file's identity (for the damage marker) and the map's range (for InMap).
  uint64_t data_dev_ = 0, data_ino_ = 0;
  uintptr_t map_begin_ = 0, map_end_ = 0;
  int fault_slot_ = -1;  // map_fault_guard registration
  std::atomic<uint64_t> map_faults_{0};
  mutable std::atomic<bool> damaged_{false};
  mutable Mutex damage_mu_;
  mutable std::string damage_reason_ HOIST_GUARDED_BY(damage_mu_);

  static constexpr size_t kMaxPooledReadTxns = 64;
  mutable Mutex pool_mu_;
  mutable std::vector<MDB_txn*> pool_ HOIST_GUARDED_BY(pool_mu_);  // reset read txns
};

// Drops the whole pages of a value read from the map out of this process's resident set, once
// the caller has copied or decoded what it needs. The environment is opened without
// MDB_WRITEMAP, so the map is a read-only shared file mapping: the pages stay in the page cache
// and a later access faults them back in, so this is only ever a hint (errors are ignored).
// REQUIRES: `value` points into the map (a ReadTxn::Get result) and is not used afterwards in a
// way that matters for speed.
void ReleaseMappedPages(std::string_view value);

// At most this many set-aside damaged data files are kept in a cache directory.
inline constexpr int kKeptDamagedFiles = 2;

}  // namespace hoist
