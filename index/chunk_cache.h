// ChunkCache: verified chunk bodies keyed by chunk digest, in the host's LMDB store, shared by
// every hoistfs process on the host. Identical chunks of different layers and images are stored
// once. A byte quota with high/low watermarks evicts least recently used chunks.
//
// Integrity: Put takes bytes whose sha256 the caller has ALREADY verified against `digest`
// (commit-or-abort: a chunk that failed verification is simply never Put). The cache stores an
// XXH3_64bits checksum beside each body and checks it on EVERY read; a mismatch (a flipped bit on
// disk) deletes the record and is reported as a miss, so the caller refetches. Bad bytes are
// never served.
//
// Writes are batched: Put copies the bytes into an in-memory queue and returns; one writer
// thread per process commits the queue in group commits (one write txn per batch), so FUSE
// threads never wait on LMDB's single writer lock. Until committed, a queued chunk is served from
// memory by Get/Read. Flush() waits until everything queued so far is committed. Put blocks only
// when more than `max_pending_bytes` are queued (back-pressure). A chunk becomes visible to other
// processes when its batch commits; after a crash a chunk is either fully there or absent.
//
// LRU: a hit is recorded in memory and written with the next batch (or after
// `access_flush_interval`), never by a write txn on the read path. Eviction order is the order of
// the last access (put or hit) as committed; layer indexes, refs and blobs are never evicted.
//
// A damaged store is not an error either (lmdb_env.h "Damage"): once the environment is marked
// damaged, Get/Read are misses (counted in read_errors, not logged per read), Put drops the chunk
// (counted in dropped), and the writer thread drops what is queued; the caller fetches as for
// any miss. A SIGBUS in the map during a lookup makes it a miss whatever it read.
//
// Cache full is not an error: MDB_MAP_FULL (or ENOSPC) aborts the txn, evicts LRU chunks, and
// retries; a chunk that cannot fit even in an empty cache is dropped (counted in `dropped`).
// Readers never see ENOSPC.
//
// Thread-safety: all methods are thread-safe. Owned by Store; must not outlive it.
//
// Caveats:
//  - NEVER hold a read txn across a network fetch: Get/Read take one short read txn each and
//    end it before returning; callers fetch on a miss with no cache state held.
//  - The quota counts chunk body bytes only. It may be exceeded by one batch before eviction.
//  - Do not use a ChunkCache inherited through fork(); open a new Store in the child.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/digest.h"
#include "base/mutex.h"
#include "base/status.h"
#include "index/lmdb_env.h"

namespace hoist {

struct ChunkCacheOptions {
  uint64_t quota_bytes = 10ull << 30;
  // Eviction starts when chunk bytes exceed quota*high and stops at quota*low.
  double high_watermark = 0.95;
  double low_watermark = 0.85;
  // Bodies are split into LMDB values of at most this many bytes (0: one value per chunk).
  // Measured (bench/store_bench.cc, 16 KiB-1 MiB chunks, 40 fill/evict cycles): segments did
  // not beat whole values on inserts (freelist reuse was not the bottleneck; fsync was) and cost
  // ~12% on reads, so whole values are the default. Disk use settles at the chunk bytes plus a
  // roughly constant ~70 MiB (one in-flight batch, pages freed by the last eviction not yet
  // reusable), and never exceeds the map size.
  uint32_t segment_bytes = 0;
  uint64_t max_pending_bytes = 64ull << 20;
  std::chrono::milliseconds access_flush_interval{1000};
};

struct ChunkCacheStats {
  // Persistent, shared by every process using the store:
  uint64_t chunk_bytes = 0;  // total body bytes stored
  uint64_t chunk_count = 0;
  uint64_t evicted_chunks = 0;  // since the store was created
  uint64_t evicted_bytes = 0;
  // This process only:
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t corrupt = 0;  // checksum mismatches found on read (each also a miss)
  uint64_t puts = 0;     // chunks committed by this process
  uint64_t dedup = 0;    // puts of a chunk already stored
  uint64_t dropped = 0;  // puts given up (larger than the cache, or a store error)
  uint64_t map_full_retries = 0;
  uint64_t read_errors = 0;    // lookups that failed in LMDB, served as misses
  uint64_t batches = 0;        // write txns committed by the writer thread
  uint64_t pending_bytes = 0;  // queued, not yet committed
};

// One chunk as listed (LRU order, oldest first).
struct ChunkInfo {
  Digest digest;
  uint64_t size = 0;
  uint64_t lru_seq = 0;
  int64_t atime_sec = 0;
};

class ChunkCache {
 public:
  // Starts the writer thread. `env` must outlive the cache.
  ChunkCache(const LmdbEnv* env, const ChunkCacheOptions& options);
  // Commits everything queued, then stops the writer thread.
  ~ChunkCache();
  ChunkCache(const ChunkCache&) = delete;
  ChunkCache& operator=(const ChunkCache&) = delete;

  // The whole chunk, or nullopt on a miss (absent; found corrupt and dropped; or the store could
  // not be read, which is logged and counted in read_errors). Errors: EINVAL (empty digest) only.
  [[nodiscard]] Result<std::optional<std::string>> Get(const Digest& digest);
  // Copies bytes [offset, offset + out.size()) of the chunk (clipped to its size) into `out`,
  // after checking the checksum of the whole chunk, with one copy out of LMDB's map. Returns the
  // bytes copied, or nullopt on a miss (as for Get). Errors: EINVAL (empty digest) only.
  [[nodiscard]] Result<std::optional<size_t>> Read(const Digest& digest, uint64_t offset,
                                                   std::span<char> out);
  // Whether the chunk is stored or queued (no checksum check, no LRU update).
  [[nodiscard]] Result<bool> Contains(const Digest& digest);

  // Queues a chunk. REQUIRES: sha256(verified_bytes) == digest, checked by the caller.
  // A chunk already stored or queued is not stored again. Never fails for lack of space.
  // Errors: EINVAL for an empty digest.
  [[nodiscard]] Status Put(const Digest& digest, std::string_view verified_bytes);
  // Waits until everything queued and every recorded access before this call is committed.
  [[nodiscard]] Status Flush();

  // Evicts LRU chunks until at most `target_bytes` remain. Returns the number evicted.
  [[nodiscard]] Result<uint64_t> Evict(uint64_t target_bytes);
  // Deletes these chunks (absent ones are skipped), counted as evictions; `hoist prune` frees
  // chunks no local image references this way. A chunk queued but not yet committed by this
  // process is not affected. Returns the number of chunks and bytes removed.
  [[nodiscard]] Result<std::pair<uint64_t, uint64_t>> Remove(const std::vector<Digest>& digests);
  [[nodiscard]] Result<ChunkCacheStats> Stats() const;
  // Every stored chunk, oldest access first.
  [[nodiscard]] Result<std::vector<ChunkInfo>> List() const;
  // Checks every chunk: meta, LRU entry, segments, checksum and (deep) sha256; and the counters.
  // Errors: EIO naming the first inconsistency.
  [[nodiscard]] Status Check(bool deep) const;

  // Runs `body` in a write txn and commits; on ENOSPC (MDB_MAP_FULL, disk full) evicts and
  // retries. For the Store's own writes. Errors: body's error, or ENOSPC if the store is empty
  // and it still does not fit.
  [[nodiscard]] Status WriteWithRoom(const std::function<Status(LmdbEnv::WriteTxn&)>& body);

 private:
  enum class OpKind { kPut, kTouch, kDropIfCorrupt };
  struct Op {
    OpKind kind;
    std::string key;                           // 32 raw digest bytes
    std::shared_ptr<const std::string> bytes;  // kPut only
  };
  struct Counters;

  void WriterLoop() HOIST_EXCLUDES(mu_);
  void Enqueue(Op op, bool wake) HOIST_EXCLUDES(mu_);
  // Applies a batch in one txn, with ENOSPC handling; splits it if it cannot fit whole.
  void CommitBatch(std::vector<Op>& ops);
  Status ApplyOps(LmdbEnv::WriteTxn& txn, const std::vector<Op>& ops, size_t begin, size_t end,
                  uint64_t* committed_puts, uint64_t* dedup);
  // Frees room after ENOSPC. Returns false if there was nothing left to evict.
  bool MakeRoom(uint64_t wanted_bytes);
  Status EvictInTxn(LmdbEnv::WriteTxn& txn, Counters& c, uint64_t target_bytes, size_t max_chunks,
                    uint64_t* evicted);
  void EvictToWatermarks();
  // Looks up a chunk in one read txn, checks its checksum, and calls `copy` with its segments.
  enum class Lookup { kHit, kMiss, kCorrupt };
  Result<Lookup> LookupAndCopy(const std::string& key,
                               const std::function<void(uint64_t size)>& on_size,
                               const std::function<void(uint64_t pos, std::string_view)>& copy);
  // Counts the outcome of a lookup; a store error becomes a miss.
  Lookup Settle(const Digest& digest, const std::string& key, Result<Lookup> result);
  void RecordHit(const std::string& key);

  const LmdbEnv* env_;
  const ChunkCacheOptions options_;

  mutable Mutex mu_;
  CondVar work_cv_;  // writer waits for work
  CondVar done_cv_;  // Put (back-pressure) and Flush wait for the writer
  std::deque<Op> queue_ HOIST_GUARDED_BY(mu_);
  std::unordered_map<std::string, std::shared_ptr<const std::string>> pending_
      HOIST_GUARDED_BY(mu_);
  uint64_t pending_bytes_ HOIST_GUARDED_BY(mu_) = 0;
  size_t queued_touches_ HOIST_GUARDED_BY(mu_) = 0;
  uint64_t flush_requested_ HOIST_GUARDED_BY(mu_) = 0;
  uint64_t flush_done_ HOIST_GUARDED_BY(mu_) = 0;
  bool stop_ HOIST_GUARDED_BY(mu_) = false;

  std::atomic<uint64_t> hits_{0}, misses_{0}, corrupt_{0}, puts_{0}, dedup_{0}, dropped_{0},
      map_full_retries_{0}, batches_{0}, read_errors_{0};

  std::thread writer_;  // last: started after everything above is initialised
};

}  // namespace hoist
