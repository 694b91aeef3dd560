#include "index/chunk_cache.h"

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <ctime>
#include <type_traits>
#include <unordered_set>

#include "base/log.h"

namespace hoist {
namespace {

constexpr size_t kDigestBytes = 32;
constexpr size_t kMaxQueuedTouches = 1 << 16;
constexpr uint64_t kMaxBatchBytes = 32ull << 20;
constexpr size_t kMaxBatchOps = 4096;
constexpr int kMaxRoomAttempts = 8;
constexpr size_t kEvictChunksPerTxn = 1024;

std::string KeyOf(const Digest& d) {
  auto raw = d.raw();
  return std::string(reinterpret_cast<const char*>(raw.data()), raw.size());
}

Digest DigestOfKey(std::string_view key) {
  std::array<uint8_t, 32> raw;
  std::memcpy(raw.data(), key.data(), raw.size());
  return Digest::FromSha256(raw);
}

void PutU64Le(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t GetU64Le(std::string_view in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(in[i])) << (8 * i);
  return v;
}
void PutBe(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t GetBe(std::string_view in, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

std::string BodyKey(std::string_view key, uint32_t segment) {
  std::string k(key);
  PutBe(k, segment, 4);
  return k;
}
std::string LruKey(std::string_view key, uint64_t seq) {
  std::string k;
  PutBe(k, seq, 8);
  k.append(key);
  return k;
}

// chunk_meta value: u32 version, u32 segment_bytes, u64 size, u64 xxh3, u64 lru seq, i64 atime,
// then u64 XXH3 of the 40 bytes before it. All little-endian.
struct ChunkMeta {
  static constexpr uint32_t kVersion = 1;
  static constexpr size_t kBytes = 48;
  uint32_t segment_bytes = 0;
  uint64_t size = 0;
  uint64_t xxh3 = 0;
  uint64_t seq = 0;
  int64_t atime = 0;

  uint32_t segments() const {
    if (segment_bytes == 0 || size == 0) return 1;
    return static_cast<uint32_t>((size + segment_bytes - 1) / segment_bytes);
  }
  uint64_t segment_size(uint32_t i) const {
    if (segment_bytes == 0) return size;
    return std::min<uint64_t>(segment_bytes, size - static_cast<uint64_t>(i) * segment_bytes);
  }
  std::string Encode() const {
    std::string out;
    out.reserve(kBytes);
    PutU64Le(out, kVersion | (static_cast<uint64_t>(segment_bytes) << 32));
    PutU64Le(out, size);
    PutU64Le(out, xxh3);
    PutU64Le(out, seq);
    PutU64Le(out, static_cast<uint64_t>(atime));
    PutU64Le(out, XXH3_64bits(out.data(), out.size()));
    return out;
  }
  static std::optional<ChunkMeta> Decode(std::string_view v) {
    if (v.size() != kBytes) return std::nullopt;
    if (XXH3_64bits(v.data(), kBytes - 8) != GetU64Le(v.substr(kBytes - 8))) return std::nullopt;
    uint64_t word = GetU64Le(v);
    if (static_cast<uint32_t>(word) != kVersion) return std::nullopt;
    ChunkMeta m;
    m.segment_bytes = static_cast<uint32_t>(word >> 32);
    m.size = GetU64Le(v.substr(8));
    m.xxh3 = GetU64Le(v.substr(16));
    m.seq = GetU64Le(v.substr(24));
    m.atime = static_cast<int64_t>(GetU64Le(v.substr(32)));
    if (m.segment_bytes != 0 && m.size / m.segment_bytes >= UINT32_MAX) return std::nullopt;
    return m;
  }
};

class XxhState {
 public:
  XxhState() : s_(XXH3_createState()) { XXH3_64bits_reset(s_); }
  ~XxhState() { XXH3_freeState(s_); }
  XxhState(const XxhState&) = delete;
  XxhState& operator=(const XxhState&) = delete;
  void Update(std::string_view d) { XXH3_64bits_update(s_, d.data(), d.size()); }
  uint64_t Digest() const { return XXH3_64bits_digest(s_); }

 private:
  XXH3_state_t* s_;
};

class Cursor {
 public:
  Cursor() = default;
  ~Cursor() {
    if (c_ != nullptr) mdb_cursor_close(c_);
  }
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  template <class Txn>
  Status Open(const Txn& txn, MDB_dbi dbi) {
    env_ = &txn.env();
    check_map_ = std::is_same_v<Txn, LmdbEnv::ReadTxn>;  // a write txn's dirty pages are not
    int rc = mdb_cursor_open(txn.get(), dbi, &c_);
    if (rc != 0) return Fail(env_->Check(rc, "opening cache cursor"));
    return Ok();
  }
  // Returns false at the end; an error for anything but MDB_NOTFOUND (and for a record outside
  // the map: a damaged page).
  Result<bool> Get(MDB_val* k, MDB_val* v, MDB_cursor_op op) {
    int rc = mdb_cursor_get(c_, k, v, op);
    if (rc == MDB_NOTFOUND) return false;
    if (rc != 0) return Fail(env_->Check(rc, "reading cache cursor"));
    if (check_map_ && (!env_->InMap(*k) || !env_->InMap(*v))) {
      env_->MarkDamaged("a record points outside the file");
      return Fail(EIO, "reading cache cursor: a record points outside the file");
    }
    return true;
  }

 private:
  const LmdbEnv* env_ = nullptr;
  bool check_map_ = false;  // a read txn: every record lies in the map
  MDB_cursor* c_ = nullptr;
};

int64_t NowSec() { return static_cast<int64_t>(::time(nullptr)); }

}  // namespace

// The persistent counters in the meta table, read at txn start and written before commit.
struct ChunkCache::Counters {
  uint64_t chunk_bytes = 0, chunk_count = 0, evicted_chunks = 0, evicted_bytes = 0, lru_seq = 0;

  static constexpr const char* kNames[] = {"chunk_bytes", "chunk_count", "evicted_chunks",
                                           "evicted_bytes", "lru_seq"};
  uint64_t* field(int i) {
    uint64_t* f[] = {&chunk_bytes, &chunk_count, &evicted_chunks, &evicted_bytes, &lru_seq};
    return f[i];
  }
  template <class Txn>
  static Result<Counters> Load(const Txn& txn) {
    Counters c;
    for (int i = 0; i < 5; ++i) {
      HOIST_ASSIGN_OR_RETURN(auto v, txn.Get(Table::kMeta, kNames[i]));
      if (!v) continue;
      if (v->size() != 8) {
        return Fail(EIO, std::string("corrupt cache counter ") + kNames[i]);
      }
      *c.field(i) = GetU64Le(*v);
    }
    return c;
  }
  Status Save(LmdbEnv::WriteTxn& txn) {
    for (int i = 0; i < 5; ++i) {
      std::string v;
      PutU64Le(v, *field(i));
      HOIST_RETURN_IF_ERROR(txn.Put(Table::kMeta, kNames[i], v));
    }
    return Ok();
  }
};

namespace {

// Deletes every body segment of `key` (whatever their number) and returns their total size.
Result<uint64_t> DeleteSegments(LmdbEnv::WriteTxn& txn, MDB_dbi body_dbi, std::string_view key) {
  uint64_t bytes = 0;
  for (uint32_t i = 0;; ++i) {
    std::string bk = BodyKey(key, i);
    HOIST_ASSIGN_OR_RETURN(auto v, txn.Get(Table::kChunkBody, bk));
    if (!v) break;
    bytes += v->size();
    HOIST_RETURN_IF_ERROR(txn.Del(Table::kChunkBody, bk));
  }
  (void)body_dbi;
  return bytes;
}

// Removes LRU entries for `key` whose meta record is unreadable (a full scan; rare path).
Status DeleteLruEntriesOf(LmdbEnv::WriteTxn& txn, MDB_dbi lru_dbi, std::string_view key) {
  std::vector<std::string> doomed;
  {
    Cursor cur;
    HOIST_RETURN_IF_ERROR(cur.Open(txn, lru_dbi));
    MDB_val k, v;
    for (MDB_cursor_op op = MDB_FIRST;; op = MDB_NEXT) {
      HOIST_ASSIGN_OR_RETURN(bool more, cur.Get(&k, &v, op));
      if (!more) break;
      std::string_view kv = MdbView(k);
      if (kv.size() == 8 + kDigestBytes && kv.substr(8) == key) doomed.emplace_back(kv);
    }
  }
  for (const std::string& d : doomed) HOIST_RETURN_IF_ERROR(txn.Del(Table::kChunkLru, d));
  return Ok();
}

}  // namespace

ChunkCache::ChunkCache(const LmdbEnv* env, const ChunkCacheOptions& options)
    : env_(env), options_(options) {
  writer_ = std::thread([this] { WriterLoop(); });
}

ChunkCache::~ChunkCache() {
  {
    MutexLock lock(mu_);
    stop_ = true;
    ++flush_requested_;
  }
  work_cv_.NotifyAll();
  writer_.join();
}

Result<ChunkCache::Lookup> ChunkCache::LookupAndCopy(
    const std::string& key, const std::function<void(uint64_t)>& on_size,
    const std::function<void(uint64_t, std::string_view)>& copy) {
  // A SIGBUS in the map (data.mdb truncated under us) turns the pages past the end into zeros
  // (map_fault_guard.h): a fault during this lookup means what was checked or copied may be
  // zeros, so it is a failed lookup (a miss to the caller), whatever the checksum said.
  const uint64_t faults_before = env_->map_faults();
  auto faulted = [&] { return env_->map_faults() != faults_before; };
  HOIST_ASSIGN_OR_RETURN(LmdbEnv::ReadTxn txn, env_->BeginRead());
  HOIST_ASSIGN_OR_RETURN(auto mv, txn.Get(Table::kChunkMeta, key));
  if (!mv) return Lookup::kMiss;
  std::optional<ChunkMeta> meta = ChunkMeta::Decode(*mv);
  if (!meta) return Lookup::kCorrupt;
  uint32_t n = meta->segments();
  std::vector<std::string_view> segs;
  segs.reserve(n);
  XxhState xxh;
  for (uint32_t i = 0; i < n; ++i) {
    HOIST_ASSIGN_OR_RETURN(auto sv, txn.Get(Table::kChunkBody, BodyKey(key, i)));
    if (!sv || sv->size() != meta->segment_size(i)) return Lookup::kCorrupt;
    xxh.Update(*sv);
    segs.push_back(*sv);
  }
  if (xxh.Digest() != meta->xxh3) {
    if (faulted()) return Fail(env_->DamagedError());
    return Lookup::kCorrupt;
  }
  // The snapshot's pages are immutable while `txn` lives, so what was checked is what is copied
  // (unless the file was truncated meanwhile: checked below).
  on_size(meta->size);
  uint64_t pos = 0;
  for (std::string_view s : segs) {
    copy(pos, s);
    pos += s.size();
  }
  if (faulted()) return Fail(env_->DamagedError());
  return Lookup::kHit;
}

void ChunkCache::Enqueue(Op op, bool wake) {
  {
    MutexLock lock(mu_);
    if (op.kind == OpKind::kTouch) {
      ++queued_touches_;
      // The first touch lets an idle writer arm its flush timer; a full buffer flushes now.
      wake = wake || queued_touches_ == 1 || queued_touches_ >= kMaxQueuedTouches;
    }
    queue_.push_back(std::move(op));
  }
  if (wake) work_cv_.NotifyOne();
}

void ChunkCache::RecordHit(const std::string& key) {
  hits_.fetch_add(1, std::memory_order_relaxed);
  Enqueue(Op{OpKind::kTouch, key, nullptr}, false);
}

Result<std::optional<std::string>> ChunkCache::Get(const Digest& digest) {
  if (digest.empty()) return Fail(EINVAL, "chunk cache: empty digest");
  std::string key = KeyOf(digest);
  std::shared_ptr<const std::string> queued;
  {
    MutexLock lock(mu_);
    auto it = pending_.find(key);
    if (it != pending_.end()) queued = it->second;
  }
  if (queued) {
    RecordHit(key);
    return std::optional<std::string>(*queued);
  }
  std::string out;
  Lookup l = Settle(digest, key,
                    LookupAndCopy(
                        key, [&](uint64_t size) { out.resize(size); },
                        [&](uint64_t pos, std::string_view s) {
                          std::memcpy(out.data() + pos, s.data(), s.size());
                        }));
  if (l != Lookup::kHit) return std::optional<std::string>();
  return std::optional<std::string>(std::move(out));
}

ChunkCache::Lookup ChunkCache::Settle(const Digest& digest, const std::string& key,
                                      Result<Lookup> result) {
  if (!result) {
    // The cache is an optimisation: a store that cannot be read is a miss (the caller fetches),
    // counted and logged, never an error for the reader. A damaged store was logged once.
    read_errors_.fetch_add(1, std::memory_order_relaxed);
    misses_.fetch_add(1, std::memory_order_relaxed);
    if (env_->damaged()) return Lookup::kMiss;
    HOIST_LOG(kWarning) << "chunk cache " << env_->dir() << ": reading " << digest.str() << ": "
                        << result.error().message();
    return Lookup::kMiss;
  }
  if (*result == Lookup::kHit) {
    RecordHit(key);
    return Lookup::kHit;
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  if (*result == Lookup::kCorrupt) {
    corrupt_.fetch_add(1, std::memory_order_relaxed);
    HOIST_LOG(kWarning) << "chunk " << digest.str() << " failed its cache checksum; dropping it";
    Enqueue(Op{OpKind::kDropIfCorrupt, key, nullptr}, true);
  }
  return *result;
}

Result<std::optional<size_t>> ChunkCache::Read(const Digest& digest, uint64_t offset,
                                               std::span<char> out) {
  if (digest.empty()) return Fail(EINVAL, "chunk cache: empty digest");
  std::string key = KeyOf(digest);
  auto copy_slice = [&](uint64_t pos, std::string_view s, size_t* copied) {
    // Intersect [pos, pos+s.size()) with [offset, offset+out.size()).
    uint64_t lo = std::max<uint64_t>(pos, offset);
    uint64_t hi = std::min<uint64_t>(pos + s.size(), offset + out.size());
    if (lo >= hi) return;
    std::memcpy(out.data() + (lo - offset), s.data() + (lo - pos), hi - lo);
    *copied += hi - lo;
  };
  std::shared_ptr<const std::string> queued;
  {
    MutexLock lock(mu_);
    auto it = pending_.find(key);
    if (it != pending_.end()) queued = it->second;
  }
  size_t copied = 0;
  if (queued) {
    copy_slice(0, *queued, &copied);
    RecordHit(key);
    return std::optional<size_t>(copied);
  }
  Lookup l = Settle(digest, key,
                    LookupAndCopy(
                        key, [](uint64_t) {},
                        [&](uint64_t pos, std::string_view s) { copy_slice(pos, s, &copied); }));
  if (l != Lookup::kHit) return std::optional<size_t>();
  return std::optional<size_t>(copied);
}

Result<bool> ChunkCache::Contains(const Digest& digest) {
  if (digest.empty()) return Fail(EINVAL, "chunk cache: empty digest");
  std::string key = KeyOf(digest);
  {
    MutexLock lock(mu_);
    if (pending_.contains(key)) return true;
  }
  HOIST_ASSIGN_OR_RETURN(LmdbEnv::ReadTxn txn, env_->BeginRead());
  HOIST_ASSIGN_OR_RETURN(auto mv, txn.Get(Table::kChunkMeta, key));
  return mv.has_value();
}

Status ChunkCache::Put(const Digest& digest, std::string_view verified_bytes) {
  if (digest.empty()) return Fail(EINVAL, "chunk cache: empty digest");
  if (verified_bytes.size() > options_.quota_bytes * options_.low_watermark) {
    dropped_.fetch_add(1, std::memory_order_relaxed);  // could never stay cached
    return Ok();
  }
  std::string key = KeyOf(digest);
  {
    MutexLock lock(mu_);
    if (pending_.contains(key)) {
      dedup_.fetch_add(1, std::memory_order_relaxed);
      return Ok();
    }
  }
  if (env_->damaged()) {
    dropped_.fetch_add(1, std::memory_order_relaxed);  // the store is not written any more
    return Ok();
  }
  {
    // Cheap check first, so a chunk already stored (by any process) is not copied and queued.
    // A store that cannot be read (damaged) takes no chunks: the caller serves them anyway.
    Result<LmdbEnv::ReadTxn> txn = env_->BeginRead();
    Result<std::optional<std::string_view>> mv = Fail(EIO, "");
    if (txn) mv = txn->Get(Table::kChunkMeta, key);
    if (!mv) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return Ok();
    }
    if (*mv && ChunkMeta::Decode(**mv)) {
      dedup_.fetch_add(1, std::memory_order_relaxed);
      Enqueue(Op{OpKind::kTouch, key, nullptr}, false);
      return Ok();
    }
  }
  auto bytes = std::make_shared<const std::string>(verified_bytes);
  {
    MutexLock lock(mu_);
    while (pending_bytes_ > options_.max_pending_bytes && !stop_) done_cv_.Wait(mu_);
    if (!pending_.emplace(key, bytes).second) {
      dedup_.fetch_add(1, std::memory_order_relaxed);
      return Ok();
    }
    pending_bytes_ += bytes->size();
    queue_.push_back(Op{OpKind::kPut, key, bytes});
  }
  work_cv_.NotifyOne();
  return Ok();
}

Status ChunkCache::Flush() {
  MutexLock lock(mu_);
  uint64_t target = ++flush_requested_;
  work_cv_.NotifyOne();
  while (flush_done_ < target) done_cv_.Wait(mu_);
  return Ok();
}

void ChunkCache::WriterLoop() {
  MutexLock lock(mu_);
  auto next_touch_flush = std::chrono::steady_clock::now() + options_.access_flush_interval;
  while (true) {
    bool has_work = queue_.size() > queued_touches_;
    bool flush = flush_requested_ > flush_done_;
    bool touches_due =
        queued_touches_ > 0 && (queued_touches_ >= kMaxQueuedTouches ||
                                std::chrono::steady_clock::now() >= next_touch_flush);
    if (!has_work && !flush && !touches_due && !stop_) {
      if (queued_touches_ > 0) {
        work_cv_.WaitUntil(mu_, next_touch_flush);
      } else {
        work_cv_.Wait(mu_);
      }
      continue;
    }
    if (queue_.empty() && stop_) {
      flush_done_ = flush_requested_;
      done_cv_.NotifyAll();
      break;
    }
    uint64_t flush_target = flush_requested_;
    std::vector<Op> batch;
    uint64_t batch_bytes = 0;
    while (!queue_.empty() && batch_bytes < kMaxBatchBytes && batch.size() < kMaxBatchOps) {
      Op& op = queue_.front();
      if (op.kind == OpKind::kTouch) --queued_touches_;
      if (op.bytes) batch_bytes += op.bytes->size();
      batch.push_back(std::move(op));
      queue_.pop_front();
    }
    bool drained = queue_.empty();
    lock.Unlock();

    bool had_puts = false;
    if (!batch.empty()) {
      CommitBatch(batch);
      for (const Op& op : batch) had_puts = had_puts || op.kind == OpKind::kPut;
    }
    if (had_puts) EvictToWatermarks();

    lock.Lock();
    for (const Op& op : batch) {
      if (op.kind != OpKind::kPut) continue;
      auto it = pending_.find(op.key);
      if (it != pending_.end() && it->second == op.bytes) pending_.erase(it);
      pending_bytes_ -= op.bytes->size();
    }
    if (drained) flush_done_ = std::max(flush_done_, flush_target);
    next_touch_flush = std::chrono::steady_clock::now() + options_.access_flush_interval;
    done_cv_.NotifyAll();
  }
}

Status ChunkCache::ApplyOps(LmdbEnv::WriteTxn& txn, const std::vector<Op>& ops, size_t begin,
                            size_t end, uint64_t* committed_puts, uint64_t* dedup) {
  HOIST_ASSIGN_OR_RETURN(Counters c, Counters::Load(txn));
  // Only the last touch of a key in the batch matters.
  std::unordered_map<std::string_view, size_t> last_touch;
  for (size_t i = begin; i < end; ++i) {
    if (ops[i].kind == OpKind::kTouch) last_touch[ops[i].key] = i;
  }
  int64_t now = NowSec();
  uint32_t seg_bytes = options_.segment_bytes;
  for (size_t i = begin; i < end; ++i) {
    const Op& op = ops[i];
    HOIST_ASSIGN_OR_RETURN(auto mv, txn.Get(Table::kChunkMeta, op.key));
    std::optional<ChunkMeta> meta;
    if (mv) meta = ChunkMeta::Decode(*mv);
    bool corrupt_meta = mv && !meta;

    if (op.kind == OpKind::kDropIfCorrupt || corrupt_meta) {
      bool corrupt = corrupt_meta;
      if (meta) {
        // Verify again inside the write txn: another process may have replaced the record.
        XxhState xxh;
        for (uint32_t s = 0; s < meta->segments() && !corrupt; ++s) {
          HOIST_ASSIGN_OR_RETURN(auto sv, txn.Get(Table::kChunkBody, BodyKey(op.key, s)));
          if (!sv || sv->size() != meta->segment_size(s)) {
            corrupt = true;
          } else {
            xxh.Update(*sv);
          }
        }
        corrupt = corrupt || xxh.Digest() != meta->xxh3;
      }
      if (corrupt) {
        HOIST_ASSIGN_OR_RETURN(uint64_t seg_total,
                               DeleteSegments(txn, env_->dbi(Table::kChunkBody), op.key));
        uint64_t size = meta ? meta->size : seg_total;
        HOIST_RETURN_IF_ERROR(txn.Del(Table::kChunkMeta, op.key));
        if (meta) {
          HOIST_RETURN_IF_ERROR(txn.Del(Table::kChunkLru, LruKey(op.key, meta->seq)));
        } else {
          HOIST_RETURN_IF_ERROR(DeleteLruEntriesOf(txn, env_->dbi(Table::kChunkLru), op.key));
        }
        c.chunk_bytes -= std::min(c.chunk_bytes, size);
        c.chunk_count -= std::min<uint64_t>(c.chunk_count, 1);
        meta.reset();
      }
      if (op.kind == OpKind::kDropIfCorrupt) continue;
    }

    if (op.kind == OpKind::kTouch || (op.kind == OpKind::kPut && meta)) {
      if (op.kind == OpKind::kPut) ++*dedup;
      if (!meta) continue;  // evicted meanwhile
      if (op.kind == OpKind::kTouch && last_touch[op.key] != i) continue;
      if (meta->seq == c.lru_seq) continue;  // already the most recent
      HOIST_RETURN_IF_ERROR(txn.Del(Table::kChunkLru, LruKey(op.key, meta->seq)));
      meta->seq = ++c.lru_seq;
      meta->atime = now;
      HOIST_RETURN_IF_ERROR(txn.Put(Table::kChunkLru, LruKey(op.key, meta->seq), ""));
      HOIST_RETURN_IF_ERROR(txn.Put(Table::kChunkMeta, op.key, meta->Encode()));
      continue;
    }

    // A new chunk.
    const std::string& body = *op.bytes;
    ChunkMeta m;
    m.segment_bytes = seg_bytes;
    m.size = body.size();
    m.xxh3 = XXH3_64bits(body.data(), body.size());
    m.seq = ++c.lru_seq;
    m.atime = now;
    for (uint32_t s = 0; s < m.segments(); ++s) {
      uint64_t off = seg_bytes == 0 ? 0 : static_cast<uint64_t>(s) * seg_bytes;
      HOIST_RETURN_IF_ERROR(txn.Put(Table::kChunkBody, BodyKey(op.key, s),
                                    std::string_view(body).substr(off, m.segment_size(s))));
    }
    HOIST_RETURN_IF_ERROR(txn.Put(Table::kChunkMeta, op.key, m.Encode()));
    HOIST_RETURN_IF_ERROR(txn.Put(Table::kChunkLru, LruKey(op.key, m.seq), ""));
    c.chunk_bytes += m.size;
    c.chunk_count += 1;
    ++*committed_puts;
  }
  return c.Save(txn);
}

void ChunkCache::CommitBatch(std::vector<Op>& ops) {
  auto run = [&](size_t begin, size_t end) -> Status {
    uint64_t puts = 0, dedup = 0;
    Status s = WriteWithRoom([&](LmdbEnv::WriteTxn& txn) {
      puts = 0;
      dedup = 0;
      return ApplyOps(txn, ops, begin, end, &puts, &dedup);
    });
    if (s) {
      puts_.fetch_add(puts, std::memory_order_relaxed);
      dedup_.fetch_add(dedup, std::memory_order_relaxed);
      batches_.fetch_add(1, std::memory_order_relaxed);
    }
    return s;
  };
  auto count_puts = [&](size_t begin, size_t end) {
    uint64_t n = 0;
    for (size_t i = begin; i < end; ++i) n += ops[i].kind == OpKind::kPut;
    return n;
  };
  Status s = run(0, ops.size());
  if (s) return;
  if (s.error().code() == ENOSPC && ops.size() > 1) {
    // The batch does not fit even after evicting: commit what fits, one op at a time.
    for (size_t i = 0; i < ops.size(); ++i) {
      Status one = run(i, i + 1);
      if (!one) dropped_.fetch_add(count_puts(i, i + 1), std::memory_order_relaxed);
    }
    return;
  }
  if (!env_->damaged()) {  // a damaged store was logged once
    HOIST_LOG(kWarning) << "chunk cache " << env_->dir() << ": dropping "
                        << count_puts(0, ops.size()) << " queued chunks: " << s.error().message();
  }
  dropped_.fetch_add(count_puts(0, ops.size()), std::memory_order_relaxed);
}

Status ChunkCache::WriteWithRoom(const std::function<Status(LmdbEnv::WriteTxn&)>& body) {
  Status last = Ok();
  for (int attempt = 0; attempt < kMaxRoomAttempts; ++attempt) {
    {
      HOIST_ASSIGN_OR_RETURN(LmdbEnv::WriteTxn txn, env_->BeginWrite());
      last = body(txn);
      if (last) last = txn.Commit();
      if (last) return Ok();
      if (last.error().code() != ENOSPC) return last;
    }  // the failed txn is aborted here, before evicting
    map_full_retries_.fetch_add(1, std::memory_order_relaxed);
    // Evict 1/8, 1/4, 1/2, then everything.
    if (!MakeRoom(attempt)) return last;
  }
  return last;
}

bool ChunkCache::MakeRoom(uint64_t attempt) {
  (void)env_->ClearStaleReaders();  // a dead reader pins old pages
  Result<LmdbEnv::ReadTxn> rtxn = env_->BeginRead();
  if (!rtxn) return false;
  Result<Counters> c = Counters::Load(*rtxn);
  { LmdbEnv::ReadTxn done = std::move(*rtxn); }
  if (!c || c->chunk_count == 0) return false;
  uint64_t target = attempt >= 3 ? 0 : c->chunk_bytes - (c->chunk_bytes >> (3 - attempt));
  // Small txns first: on a full map even a delete needs a few fresh pages.
  uint64_t evicted_total = 0;
  size_t per_txn = 8;
  while (true) {
    Result<LmdbEnv::WriteTxn> txn = env_->BeginWrite();
    if (!txn) return evicted_total > 0;
    Result<Counters> wc = Counters::Load(*txn);
    if (!wc) return evicted_total > 0;
    uint64_t evicted = 0;
    Status s = EvictInTxn(*txn, *wc, target, per_txn, &evicted);
    if (s) s = wc->Save(*txn);
    if (s) s = txn->Commit();
    if (!s) {
      if (per_txn > 1) {
        per_txn = 1;
        continue;
      }
      break;
    }
    evicted_total += evicted;
    if (evicted == 0 || wc->chunk_bytes <= target) break;
    per_txn = std::min<size_t>(per_txn * 4, kEvictChunksPerTxn);
  }
  // Pages freed by a txn become reusable only once a later txn has committed.
  for (int i = 0; i < 2; ++i) {
    Result<LmdbEnv::WriteTxn> txn = env_->BeginWrite();
    if (!txn) break;
    Result<Counters> wc = Counters::Load(*txn);
    if (!wc || !wc->Save(*txn) || !txn->Commit()) break;
  }
  return evicted_total > 0;
}

Status ChunkCache::EvictInTxn(LmdbEnv::WriteTxn& txn, Counters& c, uint64_t target_bytes,
                              size_t max_chunks, uint64_t* evicted) {
  *evicted = 0;
  while (c.chunk_bytes > target_bytes && *evicted < max_chunks) {
    std::string lru_key;
    {
      Cursor cur;
      HOIST_RETURN_IF_ERROR(cur.Open(txn, env_->dbi(Table::kChunkLru)));
      MDB_val k, v;
      HOIST_ASSIGN_OR_RETURN(bool any, cur.Get(&k, &v, MDB_FIRST));
      if (!any) break;
      lru_key = std::string(MdbView(k));
    }
    HOIST_RETURN_IF_ERROR(txn.Del(Table::kChunkLru, lru_key));
    if (lru_key.size() != 8 + kDigestBytes) continue;  // junk entry: just drop it
    std::string key = lru_key.substr(8);
    HOIST_ASSIGN_OR_RETURN(auto mv, txn.Get(Table::kChunkMeta, key));
    if (!mv) continue;
    std::optional<ChunkMeta> meta = ChunkMeta::Decode(*mv);
    if (meta && meta->seq != GetBe(lru_key, 8)) continue;  // stale entry; the chunk is newer
    HOIST_ASSIGN_OR_RETURN(uint64_t seg_total,
                           DeleteSegments(txn, env_->dbi(Table::kChunkBody), key));
    uint64_t size = meta ? meta->size : seg_total;
    HOIST_RETURN_IF_ERROR(txn.Del(Table::kChunkMeta, key));
    c.chunk_bytes -= std::min(c.chunk_bytes, size);
    c.chunk_count -= std::min<uint64_t>(c.chunk_count, 1);
    c.evicted_chunks += 1;
    c.evicted_bytes += size;
    ++*evicted;
  }
  return Ok();
}

Result<uint64_t> ChunkCache::Evict(uint64_t target_bytes) {
  uint64_t total = 0;
  while (true) {
    HOIST_ASSIGN_OR_RETURN(LmdbEnv::WriteTxn txn, env_->BeginWrite());
    HOIST_ASSIGN_OR_RETURN(Counters c, Counters::Load(txn));
    if (c.chunk_bytes <= target_bytes) break;
    uint64_t evicted = 0;
    HOIST_RETURN_IF_ERROR(EvictInTxn(txn, c, target_bytes, kEvictChunksPerTxn, &evicted));
    HOIST_RETURN_IF_ERROR(c.Save(txn));
    HOIST_RETURN_IF_ERROR(txn.Commit());
    total += evicted;
    if (evicted < kEvictChunksPerTxn) break;
  }
  return total;
}

Result<std::pair<uint64_t, uint64_t>> ChunkCache::Remove(const std::vector<Digest>& digests) {
  uint64_t removed = 0, removed_bytes = 0;
  for (size_t begin = 0; begin < digests.size(); begin += kEvictChunksPerTxn) {
    const size_t end = std::min(digests.size(), begin + kEvictChunksPerTxn);
    HOIST_ASSIGN_OR_RETURN(LmdbEnv::WriteTxn txn, env_->BeginWrite());
    HOIST_ASSIGN_OR_RETURN(Counters c, Counters::Load(txn));
    uint64_t n = 0, bytes = 0;
    for (size_t i = begin; i < end; ++i) {
      if (digests[i].empty()) continue;
      const std::string key = KeyOf(digests[i]);
      HOIST_ASSIGN_OR_RETURN(auto mv, txn.Get(Table::kChunkMeta, key));
      if (!mv) continue;
      std::optional<ChunkMeta> meta = ChunkMeta::Decode(*mv);
      HOIST_ASSIGN_OR_RETURN(uint64_t seg_total,
                             DeleteSegments(txn, env_->dbi(Table::kChunkBody), key));
      const uint64_t size = meta ? meta->size : seg_total;
      HOIST_RETURN_IF_ERROR(txn.Del(Table::kChunkMeta, key));
      if (meta) {
        HOIST_RETURN_IF_ERROR(txn.Del(Table::kChunkLru, LruKey(key, meta->seq)));
      } else {
        HOIST_RETURN_IF_ERROR(DeleteLruEntriesOf(txn, env_->dbi(Table::kChunkLru), key));
      }
      c.chunk_bytes -= std::min(c.chunk_bytes, size);
      c.chunk_count -= std::min<uint64_t>(c.chunk_count, 1);
      c.evicted_chunks += 1;
      c.evicted_bytes += size;
      ++n;
      bytes += size;
    }
    HOIST_RETURN_IF_ERROR(c.Save(txn));
    HOIST_RETURN_IF_ERROR(txn.Commit());
    removed += n;
    removed_bytes += bytes;
  }
  return std::make_pair(removed, removed_bytes);
}

void ChunkCache::EvictToWatermarks() {
  Result<LmdbEnv::ReadTxn> txn = env_->BeginRead();
  if (!txn) return;
  Result<Counters> c = Counters::Load(*txn);
  { LmdbEnv::ReadTxn done = std::move(*txn); }
  if (!c) return;
  auto high = static_cast<uint64_t>(options_.quota_bytes * options_.high_watermark);
  if (c->chunk_bytes <= high) return;
  auto low = static_cast<uint64_t>(options_.quota_bytes * options_.low_watermark);
  Result<uint64_t> n = Evict(low);
  if (!n) {
    HOIST_LOG(kWarning) << "chunk cache " << env_->dir()
                        << ": eviction failed: " << n.error().message();
  }
}

Result<ChunkCacheStats> ChunkCache::Stats() const {
  HOIST_ASSIGN_OR_RETURN(LmdbEnv::ReadTxn txn, env_->BeginRead());
  HOIST_ASSIGN_OR_RETURN(Counters c, Counters::Load(txn));
  ChunkCacheStats s;
  s.chunk_bytes = c.chunk_bytes;
  s.chunk_count = c.chunk_count;
  s.evicted_chunks = c.evicted_chunks;
  s.evicted_bytes = c.evicted_bytes;
  s.hits = hits_.load();
  s.misses = misses_.load();
  s.corrupt = corrupt_.load();
  s.puts = puts_.load();
  s.dedup = dedup_.load();
  s.dropped = dropped_.load();
  s.map_full_retries = map_full_retries_.load();
  s.read_errors = read_errors_.load();
  s.batches = batches_.load();
  {
    MutexLock lock(mu_);
    s.pending_bytes = pending_bytes_;
  }
  return s;
}

Result<std::vector<ChunkInfo>> ChunkCache::List() const {
  HOIST_ASSIGN_OR_RETURN(LmdbEnv::ReadTxn txn, env_->BeginRead());
  std::vector<ChunkInfo> out;
  Cursor cur;
  HOIST_RETURN_IF_ERROR(cur.Open(txn, env_->dbi(Table::kChunkLru)));
  MDB_val k, v;
  for (MDB_cursor_op op = MDB_FIRST;; op = MDB_NEXT) {
    HOIST_ASSIGN_OR_RETURN(bool more, cur.Get(&k, &v, op));
    if (!more) break;
    std::string_view lk = MdbView(k);
    if (lk.size() != 8 + kDigestBytes) continue;
    HOIST_ASSIGN_OR_RETURN(auto mv, txn.Get(Table::kChunkMeta, lk.substr(8)));
    if (!mv) continue;
    std::optional<ChunkMeta> meta = ChunkMeta::Decode(*mv);
    if (!meta || meta->seq != GetBe(lk, 8)) continue;
    out.push_back(ChunkInfo{DigestOfKey(lk.substr(8)), meta->size, meta->seq, meta->atime});
  }
  return out;
}

Status ChunkCache::Check(bool deep) const {
  HOIST_ASSIGN_OR_RETURN(LmdbEnv::ReadTxn txn, env_->BeginRead());
  HOIST_ASSIGN_OR_RETURN(Counters c, Counters::Load(txn));
  uint64_t bytes = 0, count = 0, segments = 0;
  Cursor cur;
  HOIST_RETURN_IF_ERROR(cur.Open(txn, env_->dbi(Table::kChunkMeta)));
  MDB_val k, v;
  for (MDB_cursor_op op = MDB_FIRST;; op = MDB_NEXT) {
    HOIST_ASSIGN_OR_RETURN(bool more, cur.Get(&k, &v, op));
    if (!more) break;
    std::string key(MdbView(k));
    if (key.size() != kDigestBytes) return Fail(EIO, "chunk cache check: bad chunk key");
    std::string name = DigestOfKey(key).str();
    std::optional<ChunkMeta> meta = ChunkMeta::Decode(MdbView(v));
    if (!meta) return Fail(EIO, "chunk cache check: corrupt meta for " + name);
    HOIST_ASSIGN_OR_RETURN(auto lru, txn.Get(Table::kChunkLru, LruKey(key, meta->seq)));
    if (!lru) return Fail(EIO, "chunk cache check: no LRU entry for " + name);
    XxhState xxh;
    Sha256 sha;
    for (uint32_t s = 0; s < meta->segments(); ++s) {
      HOIST_ASSIGN_OR_RETURN(auto sv, txn.Get(Table::kChunkBody, BodyKey(key, s)));
      if (!sv || sv->size() != meta->segment_size(s)) {
        return Fail(EIO, "chunk cache check: missing or short segment " + std::to_string(s) +
                             " of " + name);
      }
      xxh.Update(*sv);
      if (deep) sha.Update(*sv);
    }
    if (xxh.Digest() != meta->xxh3) return Fail(EIO, "chunk cache check: checksum of " + name);
    if (deep && Digest::FromSha256(sha.Final()).str() != name) {
      return Fail(EIO, "chunk cache check: sha256 of " + name);
    }
    bytes += meta->size;
    count += 1;
    segments += meta->segments();
  }
  MDB_stat lru_stat, body_stat;
  mdb_stat(txn.get(), env_->dbi(Table::kChunkLru), &lru_stat);
  mdb_stat(txn.get(), env_->dbi(Table::kChunkBody), &body_stat);
  if (lru_stat.ms_entries != count) {
    return Fail(EIO, "chunk cache check: " + std::to_string(lru_stat.ms_entries) +
                         " LRU entries for " + std::to_string(count) + " chunks");
  }
  if (body_stat.ms_entries != segments) {
    return Fail(EIO, "chunk cache check: " + std::to_string(body_stat.ms_entries) +
                         " body segments, expected " + std::to_string(segments));
  }
  if (c.chunk_bytes != bytes || c.chunk_count != count) {
    return Fail(EIO, "chunk cache check: counters say " + std::to_string(c.chunk_count) +
                         " chunks / " + std::to_string(c.chunk_bytes) + " bytes, found " +
                         std::to_string(count) + " / " + std::to_string(bytes));
  }
  return Ok();
}

}  // namespace hoist
