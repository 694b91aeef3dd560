#include "index/lmdb_env.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file_util.h"
#include "base/log.h"

namespace hoist {
namespace {

constexpr const char* kTableNames[] = {"meta",      "layers", "chunk_meta", "chunk_body",
                                       "chunk_lru", "refs",   "blobs"};
static_assert(std::size(kTableNames) == static_cast<size_t>(Table::kCount));

}  // namespace

Error MdbError(int rc, std::string_view what) {
  int code = EIO;
  switch (rc) {
    case MDB_NOTFOUND:
      code = ENOENT;
      break;
    case MDB_MAP_FULL:
      code = ENOSPC;
      break;
    case MDB_READERS_FULL:
    case MDB_MAP_RESIZED:
    case MDB_TXN_FULL:
      code = EAGAIN;
      break;
    case MDB_VERSION_MISMATCH:
    case MDB_INVALID:
      code = EPROTO;
      break;
    default:
      if (rc > 0) code = rc;  // a system errno
      break;
  }
  return Error(code, std::string(what) + ": " + mdb_strerror(rc));
}

Result<std::unique_ptr<LmdbEnv>> LmdbEnv::Open(const std::string& dir,
                                               const LmdbEnvOptions& options) {
  HOIST_RETURN_IF_ERROR(MakeDirs(dir, 0755));
  std::unique_ptr<LmdbEnv> self(new LmdbEnv());
  self->dir_ = dir;
  int rc = mdb_env_create(&self->env_);
  if (rc != 0) return Fail(MdbError(rc, "creating LMDB environment"));
  if ((rc = mdb_env_set_maxdbs(self->env_, static_cast<MDB_dbi>(Table::kCount))) != 0 ||
      (rc = mdb_env_set_maxreaders(self->env_, options.max_readers)) != 0 ||
      (rc = mdb_env_set_mapsize(self->env_, options.map_size)) != 0) {
    return Fail(MdbError(rc, "configuring LMDB environment " + dir));
  }
  rc = mdb_env_open(self->env_, dir.c_str(), MDB_NOTLS | MDB_NOMETASYNC, 0644);
  if (rc != 0) return Fail(MdbError(rc, "opening LMDB environment " + dir));

  int dead = 0;
  rc = mdb_reader_check(self->env_, &dead);
  if (rc != 0) return Fail(MdbError(rc, "checking stale readers in " + dir));
  self->stale_at_open_ = dead;
  if (dead > 0) {
    HOIST_LOG(kInfo) << "cache " << dir << ": cleared " << dead << " stale readers";
  }

  MDB_txn* txn = nullptr;
  rc = mdb_txn_begin(self->env_, nullptr, 0, &txn);
  if (rc != 0) return Fail(MdbError(rc, "opening tables in " + dir));
  for (int i = 0; i < static_cast<int>(Table::kCount); ++i) {
    rc = mdb_dbi_open(txn, kTableNames[i], MDB_CREATE, &self->dbis_[i]);
    if (rc != 0) {
      mdb_txn_abort(txn);
      return Fail(MdbError(rc, std::string("opening table ") + kTableNames[i] + " in " + dir));
    }
  }
  rc = mdb_txn_commit(txn);
  if (rc != 0) return Fail(MdbError(rc, "opening tables in " + dir));
  return self;
}

LmdbEnv::~LmdbEnv() {
  {
    std::lock_guard lock(pool_mu_);
    for (MDB_txn* txn : pool_) mdb_txn_abort(txn);
    pool_.clear();
  }
  if (env_ != nullptr) mdb_env_close(env_);
}

Result<LmdbEnv::ReadTxn> LmdbEnv::BeginRead() const {
  MDB_txn* txn = nullptr;
  {
    std::lock_guard lock(pool_mu_);
    if (!pool_.empty()) {
      txn = pool_.back();
      pool_.pop_back();
    }
  }
  if (txn != nullptr) {
    int rc = mdb_txn_renew(txn);
    if (rc == 0) return ReadTxn(this, txn);
    mdb_txn_abort(txn);
    return Fail(MdbError(rc, "renewing read transaction"));
  }
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc != 0) return Fail(MdbError(rc, "beginning read transaction"));
  return ReadTxn(this, txn);
}

void LmdbEnv::ReturnReadTxn(MDB_txn* txn) const {
  mdb_txn_reset(txn);
  std::lock_guard lock(pool_mu_);
  if (pool_.size() < kMaxPooledReadTxns) {
    pool_.push_back(txn);
    return;
  }
  mdb_txn_abort(txn);
}

LmdbEnv::ReadTxn::~ReadTxn() {
  if (txn_ != nullptr) env_->ReturnReadTxn(txn_);
}

static Result<std::optional<std::string_view>> TxnGet(MDB_txn* txn, MDB_dbi dbi,
                                                      std::string_view key) {
  MDB_val k = MdbVal(key);
  MDB_val v;
  int rc = mdb_get(txn, dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return std::nullopt;
  if (rc != 0) return Fail(MdbError(rc, "reading cache record"));
  return MdbView(v);
}

Result<std::optional<std::string_view>> LmdbEnv::ReadTxn::Get(Table t, std::string_view key) const {
  return TxnGet(txn_, env_->dbi(t), key);
}

Result<LmdbEnv::WriteTxn> LmdbEnv::BeginWrite() const {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != 0) return Fail(MdbError(rc, "beginning write transaction"));
  return WriteTxn(this, txn);
}

LmdbEnv::WriteTxn::~WriteTxn() {
  if (txn_ != nullptr) mdb_txn_abort(txn_);
}

Result<std::optional<std::string_view>> LmdbEnv::WriteTxn::Get(Table t,
                                                               std::string_view key) const {
  return TxnGet(txn_, env_->dbi(t), key);
}

Status LmdbEnv::WriteTxn::Put(Table t, std::string_view key, std::string_view value) {
  MDB_val k = MdbVal(key);
  MDB_val v = MdbVal(value);
  int rc = mdb_put(txn_, env_->dbi(t), &k, &v, 0);
  if (rc != 0) return Fail(MdbError(rc, "writing cache record"));
  return Ok();
}

Result<std::span<char>> LmdbEnv::WriteTxn::Reserve(Table t, std::string_view key, size_t size) {
  MDB_val k = MdbVal(key);
  MDB_val v{size, nullptr};
  int rc = mdb_put(txn_, env_->dbi(t), &k, &v, MDB_RESERVE);
  if (rc != 0) return Fail(MdbError(rc, "writing cache record"));
  return std::span<char>(static_cast<char*>(v.mv_data), v.mv_size);
}

Result<bool> LmdbEnv::WriteTxn::Del(Table t, std::string_view key) {
  MDB_val k = MdbVal(key);
  int rc = mdb_del(txn_, env_->dbi(t), &k, nullptr);
  if (rc == MDB_NOTFOUND) return false;
  if (rc != 0) return Fail(MdbError(rc, "deleting cache record"));
  return true;
}

Status LmdbEnv::WriteTxn::Commit() {
  int rc = mdb_txn_commit(txn_);
  txn_ = nullptr;  // freed by commit whatever the outcome
  if (rc != 0) return Fail(MdbError(rc, "committing cache transaction"));
  return Ok();
}

Result<int> LmdbEnv::ClearStaleReaders() const {
  int dead = 0;
  int rc = mdb_reader_check(env_, &dead);
  if (rc != 0) return Fail(MdbError(rc, "checking stale readers in " + dir_));
  return dead;
}

Status LmdbEnv::Sync() const {
  int rc = mdb_env_sync(env_, 1);
  if (rc != 0) return Fail(MdbError(rc, "syncing cache " + dir_));
  return Ok();
}

Result<LmdbEnv::SpaceInfo> LmdbEnv::Space() const {
  MDB_envinfo info;
  MDB_stat st;
  int rc = mdb_env_info(env_, &info);
  if (rc == 0) rc = mdb_env_stat(env_, &st);
  if (rc != 0) return Fail(MdbError(rc, "reading cache environment info"));
  return SpaceInfo{.used_bytes = (static_cast<uint64_t>(info.me_last_pgno) + 1) * st.ms_psize,
                   .map_size = info.me_mapsize};
}

void ReleaseMappedPages(std::string_view value) {
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(value.data());
  const uintptr_t first = (begin + page - 1) & ~(page - 1);
  const uintptr_t last = (begin + value.size()) & ~(page - 1);
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

}  // namespace hoist
