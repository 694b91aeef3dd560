#include "index/lmdb_env.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <set>
#include <utility>

#include "base/file_util.h"
#include "base/log.h"
#include "base/mutex.h"
#include "base/scoped_fd.h"
#include "index/lmdb_file_check.h"
#include "index/map_fault_guard.h"

namespace hoist {
namespace {

constexpr const char* kTableNames[] = {"meta",       "layers",    "chunk_meta",
                                       "chunk_body", "chunk_lru", "refs",
                                       "blobs",      "snapshots", "snapshot_children"};
static_assert(std::size(kTableNames) == static_cast<size_t>(Table::kCount));

}  // namespace

const char* TableName(Table t) { return kTableNames[static_cast<int>(t)]; }

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

namespace {

constexpr const char* kDataFile = "data.mdb";
constexpr const char* kLockFile = "lock.mdb";
constexpr const char* kOpenLockFile = "open.lock";
constexpr const char* kUsersLockFile = "users.lock";
constexpr const char* kCompactDir = "compact.tmp";
constexpr const char* kMarkerFile = "data.mdb.damage-report";
constexpr const char* kAsidePrefix = "data.mdb.damaged-";

// An LMDB return code that means the data file is damaged (not a busy or full environment).
bool IsDamageCode(int rc) {
  return rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_PANIC || rc == MDB_INVALID ||
         rc == MDB_VERSION_MISMATCH || rc == MDB_INCOMPATIBLE;
}

// The damage marker: "<dev> <ino>\n<reason>\n". Returns the reason if it names `data`'s inode.
std::optional<std::string> ReadMarker(const std::string& marker, const struct stat& data) {
  Result<std::string> text = ReadFile(marker);
  if (!text) return std::nullopt;
  unsigned long long dev = 0, ino = 0;
  int consumed = 0;
  if (std::sscanf(text->c_str(), "%llu %llu\n%n", &dev, &ino, &consumed) != 2) return std::nullopt;
  if (dev != data.st_dev || ino != data.st_ino) return std::nullopt;  // about an older file
  std::string reason = text->substr(consumed);
  while (!reason.empty() && reason.back() == '\n') reason.pop_back();
  return "marked damaged at run time: " + reason;
}

// Why data.mdb in `dir` must be set aside, or nullopt. A failing header is read again a few
// times: another process's commit rewrites the meta page's txnid and last page, and a read that
// races with it could see a torn copy; real damage stays.
Result<std::optional<std::string>> PreOpenCheck(const std::string& dir) {
  const std::string data = dir + "/" + kDataFile;
  const std::string marker = dir + "/" + kMarkerFile;
  struct stat st {};
  if (::stat(data.c_str(), &st) != 0) {
    if (errno != ENOENT) return Fail(ErrnoError("stat " + data));
    ::unlink(marker.c_str());
    return std::optional<std::string>();
  }
  if (std::optional<std::string> marked = ReadMarker(marker, st)) return marked;
  ::unlink(marker.c_str());  // absent, or about a file already set aside
  std::optional<std::string> reason;
  for (int attempt = 0; attempt < 3; ++attempt) {
    Result<std::optional<std::string>> r = CheckLmdbDataFile(data);
    if (!r) {
      if (r.error().code() == ENOENT) return std::optional<std::string>();
      return Fail(r.error());
    }
    reason = std::move(*r);
    if (!reason) return reason;
  }
  return reason;
}

std::string UtcStamp() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm {};
  ::gmtime_r(&ts.tv_sec, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

struct SetAsideResult {
  std::string path;
  std::string removed;  // older set-aside files deleted to keep the bound, space-separated
};

// Renames data.mdb aside, removes lock.mdb and the marker, and keeps at most kKeptDamagedFiles
// set-aside files.
Result<SetAsideResult> SetAside(const std::string& dir, const std::string& reason) {
  const std::string data = dir + "/" + kDataFile;
  std::string aside = dir + "/" + kAsidePrefix + UtcStamp();
  for (int n = 1; ::access(aside.c_str(), F_OK) == 0; ++n) {
    aside = dir + "/" + kAsidePrefix + UtcStamp() + "-" + std::to_string(n);
  }
  if (::rename(data.c_str(), aside.c_str()) != 0) {
    return Fail(ErrnoError("cache " + dir + ": data.mdb is damaged (" + reason +
                           ") and could not be moved aside"));
  }
  // The lock file describes the old data file (its txnid, its readers): a fresh one goes with the
  // fresh data file. Processes still using the old pair keep their open descriptors.
  ::unlink((dir + "/" + kLockFile).c_str());
  ::unlink((dir + "/" + kMarkerFile).c_str());
  std::vector<std::string> kept;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (struct dirent* e = ::readdir(d)) {
      if (std::string_view(e->d_name).starts_with(kAsidePrefix)) kept.emplace_back(e->d_name);
    }
    ::closedir(d);
  }
  // Names sort by time (the stamp); suffixes -1, -2 sort after the plain name of the same second.
  std::sort(kept.begin(), kept.end());
  SetAsideResult result{.path = aside, .removed = ""};
  for (size_t i = 0; i + kKeptDamagedFiles < kept.size(); ++i) {
    if (::unlink((dir + "/" + kept[i]).c_str()) == 0) {
      result.removed += (result.removed.empty() ? "" : " ") + kept[i];
    }
  }
  return result;
}

void OnLmdbAssert(MDB_env* env, const char* msg) {
  // liblmdb calls abort() after this; the marker makes the next Open set the file aside instead
  // of failing the same way again.
  if (auto* self = static_cast<const LmdbEnv*>(mdb_env_get_userctx(env))) {
    self->MarkDamaged(std::string("liblmdb assertion failed: ") + msg);
  }
}

}  // namespace

Result<std::optional<std::string>> LmdbEnv::OpenEnv(const LmdbEnvOptions& options) {
  int rc = mdb_env_create(&env_);
  if (rc != 0) return Fail(MdbError(rc, "creating LMDB environment"));
  mdb_env_set_userctx(env_, this);
  mdb_env_set_assert(env_, OnLmdbAssert);
  if ((rc = mdb_env_set_maxdbs(env_, static_cast<MDB_dbi>(Table::kCount))) != 0 ||
      (rc = mdb_env_set_maxreaders(env_, options.max_readers)) != 0 ||
      (rc = mdb_env_set_mapsize(env_, options.map_size)) != 0) {
    return Fail(MdbError(rc, "configuring LMDB environment " + dir_));
  }
  rc = mdb_env_open(env_, dir_.c_str(), MDB_NOTLS | MDB_NOMETASYNC, 0644);
  if (IsDamageCode(rc)) return std::optional<std::string>(mdb_strerror(rc));
  if (rc != 0) return Fail(MdbError(rc, "opening LMDB environment " + dir_));
  // The map: found by the data file's inode in /proc/self/maps (liblmdb does not export it).
  int fd = -1;
  struct stat st {};
  MDB_envinfo info;
  if (mdb_env_get_fd(env_, &fd) == 0 && ::fstat(fd, &st) == 0 && mdb_env_info(env_, &info) == 0) {
    data_dev_ = st.st_dev;
    data_ino_ = st.st_ino;
    if (FILE* maps = std::fopen("/proc/self/maps", "re")) {
      char line[4096];
      while (std::fgets(line, sizeof line, maps) != nullptr) {
        unsigned long long begin = 0, end = 0, offset = 0, ino = 0;
        char perms[8];
        if (std::sscanf(line, "%llx-%llx %7s %llx %*s %llu", &begin, &end, perms, &offset, &ino) !=
            5) {
          continue;
        }
        if (ino == st.st_ino && offset == 0 && end - begin == info.me_mapsize &&
            std::string_view(line).find("/data.mdb") != std::string_view::npos) {
          map_begin_ = begin;
          map_end_ = end;
        }
      }
      std::fclose(maps);
    }
  }
  if (map_begin_ != 0) {
    fault_slot_ = RegisterMappedRange(map_begin_, map_end_, &map_faults_, dir_ + "/" + kMarkerFile,
                                      std::to_string(data_dev_) + " " + std::to_string(data_ino_) +
                                          "\nliblmdb crashed reading it (a damaged page)\n");
  }
  if (fault_slot_ < 0) {
    HOIST_LOG(kWarning) << "cache " << dir_
                        << ": could not guard the map against a truncated data file";
  }
  return std::optional<std::string>();
}

std::optional<std::string> LmdbEnv::Walk() const {
  MapUse use(fault_slot_);
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc != 0)
    return IsDamageCode(rc) ? std::optional<std::string>(mdb_strerror(rc)) : std::nullopt;
  std::optional<std::string> bad;
  // `whole`: visit every record, and check their number against the count the table's record
  // keeps (which also bounds the walk: a damaged branch page that points back up the tree
  // cannot keep it going); else the first and last leaf only.
  auto walk = [&](MDB_dbi dbi, const char* name, bool whole) {
    MDB_stat st{};
    int rc = mdb_stat(txn, dbi, &st);
    MDB_cursor* cur = nullptr;
    if (rc == 0) rc = mdb_cursor_open(txn, dbi, &cur);
    MDB_val k, v;
    const MDB_cursor_op last = whole ? MDB_NEXT : MDB_LAST;
    uint64_t seen = 0;
    for (MDB_cursor_op op = MDB_FIRST; rc == 0;) {
      rc = mdb_cursor_get(cur, &k, &v, op);
      if (rc == 0 && (!InMap(k) || !InMap(v))) rc = MDB_CORRUPTED;
      if (rc == 0 && whole && ++seen > st.ms_entries) rc = MDB_CORRUPTED;
      if (rc != 0 || (!whole && op == MDB_LAST)) break;
      op = last;
    }
    if (cur != nullptr) mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND && whole && seen != st.ms_entries) rc = MDB_CORRUPTED;
    if (rc != 0 && rc != MDB_NOTFOUND && !bad) {
      bad = std::string("table ") + name + ": " + mdb_strerror(rc);
    }
  };
  walk(0, "free pages", true);  // FREE_DBI
  walk(1, "main", true);        // MAIN_DBI: one record per named table
  for (int i = 0; i < static_cast<int>(Table::kCount) && !bad; ++i) {
    MDB_dbi dbi = 0;
    rc = mdb_dbi_open(txn, kTableNames[i], 0, &dbi);
    if (rc == MDB_NOTFOUND) continue;
    if (rc != 0) {
      bad = std::string("table ") + kTableNames[i] + ": " + mdb_strerror(rc);
      break;
    }
    // Chunk tables hold one record per chunk (hundreds of thousands): walking them whole took
    // 50 ms warm / 170 ms cold for 200,000 chunks, too much for every mount start, so only their
    // first and last leaves are read; damage deeper in them is found at run time.
    const Table t = static_cast<Table>(i);
    const bool chunks = t == Table::kChunkMeta || t == Table::kChunkBody || t == Table::kChunkLru;
    walk(dbi, kTableNames[i], !chunks);
  }
  mdb_txn_abort(txn);
  if (!bad && map_faults() != 0) bad = "the file ends inside a page it references";
  return bad;
}

namespace {

// The environments this process has open, by directory identity (see Open's contract).
struct OpenEnvs {
  Mutex mu;
  std::set<std::pair<dev_t, ino_t>> dirs HOIST_GUARDED_BY(mu);
};

OpenEnvs& TheOpenEnvs() {
  static OpenEnvs* envs = new OpenEnvs;
  return *envs;
}

}  // namespace

Result<std::unique_ptr<LmdbEnv>> LmdbEnv::Open(const std::string& dir,
                                               const LmdbEnvOptions& options) {
  HOIST_RETURN_IF_ERROR(MakeDirs(dir, 0755));
  struct stat dir_st {};
  if (::stat(dir.c_str(), &dir_st) != 0) return Fail(ErrnoError("stat " + dir));
  const std::pair<dev_t, ino_t> identity{dir_st.st_dev, dir_st.st_ino};
  {
    OpenEnvs& envs = TheOpenEnvs();
    MutexLock lock(envs.mu);
    if (!envs.dirs.insert(identity).second)
      return Fail(EBUSY, "the LMDB environment " + dir + " is already open in this process");
  }
  auto opened = OpenUnregistered(dir, options);
  if (!opened) {
    OpenEnvs& envs = TheOpenEnvs();
    MutexLock lock(envs.mu);
    envs.dirs.erase(identity);
    return opened;
  }
  (*opened)->dir_dev_ = identity.first;
  (*opened)->dir_ino_ = identity.second;
  return opened;
}

Result<std::unique_ptr<LmdbEnv>> LmdbEnv::OpenUnregistered(const std::string& dir,
                                                           const LmdbEnvOptions& options) {
  // Check and set aside under one lock, so a second process starting now waits and then finds
  // the fresh file, instead of judging (or moving) a file the first one is creating.
  const std::string lock_path = dir + "/" + kOpenLockFile;
  ScopedFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock.valid()) return Fail(ErrnoError("opening " + lock_path));
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return Fail(ErrnoError("locking " + lock_path));
  }

  // Shared for the environment's life: Compact runs only when nobody holds it.
  const std::string users_path = dir + "/" + kUsersLockFile;
  ScopedFd users(::open(users_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!users.valid()) return Fail(ErrnoError("opening " + users_path));
  while (::flock(users.get(), LOCK_SH) != 0) {
    if (errno != EINTR) return Fail(ErrnoError("locking " + users_path));
  }

  std::optional<SetAsideResult> set_aside;
  std::string set_aside_reason;
  for (int attempt = 0;; ++attempt) {
    std::optional<std::string> reason;
    if (attempt == 0) {
      HOIST_ASSIGN_OR_RETURN(reason, PreOpenCheck(dir));
    }
    std::unique_ptr<LmdbEnv> self;
    if (!reason) {
      self.reset(new LmdbEnv());
      self->dir_ = dir;
      HOIST_ASSIGN_OR_RETURN(reason, self->OpenEnv(options));
      if (!reason) reason = self->Walk();
    }
    if (reason) {
      self.reset();  // unmaps the damaged file before it is moved
      if (attempt > 0) {
        return Fail(EIO, "cache " + dir + ": a fresh data file is damaged too (" + *reason + ")");
      }
      HOIST_ASSIGN_OR_RETURN(set_aside, SetAside(dir, *reason));
      set_aside_reason = *reason;
      continue;
    }
    if (set_aside) {
      self->set_aside_at_open_ = set_aside->path;
      self->set_aside_reason_ = set_aside_reason;
      self->set_aside_removed_ = set_aside->removed;
      if (options.log_set_aside) {
        HOIST_LOG(kWarning) << self->SetAsideMessage("");
      }
    }
    HOIST_RETURN_IF_ERROR(self->OpenTables());
    self->users_lock_fd_ = users.Release();
    return self;
  }
}

Status LmdbEnv::OpenTables() {
  MapUse use(fault_slot_);
  int dead = 0;
  int rc = mdb_reader_check(env_, &dead);
  if (rc != 0) return Fail(MdbError(rc, "checking stale readers in " + dir_));
  stale_at_open_ = dead;
  if (dead > 0) {
    HOIST_LOG(kInfo) << "cache " << dir_ << ": cleared " << dead << " stale readers";
  }

  MDB_txn* txn = nullptr;
  rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != 0) return Fail(MdbError(rc, "opening tables in " + dir_));
  for (int i = 0; i < static_cast<int>(Table::kCount); ++i) {
    rc = mdb_dbi_open(txn, kTableNames[i], MDB_CREATE, &dbis_[i]);
    if (rc != 0) {
      mdb_txn_abort(txn);
      return Fail(MdbError(rc, std::string("opening table ") + kTableNames[i] + " in " + dir_));
    }
  }
  rc = mdb_txn_commit(txn);
  if (rc != 0) return Fail(MdbError(rc, "opening tables in " + dir_));
  return Ok();
}

std::string LmdbEnv::SetAsideMessage(std::string_view recovered) const {
  if (set_aside_at_open_.empty()) return "";
  std::string line = "cache " + dir_ + ": data.mdb is damaged (" + set_aside_reason_ +
                     "); moved it to " + set_aside_at_open_ + " and started an empty cache: ";
  if (recovered.empty()) {
    line +=
        "chunks and layer indexes are fetched again, images from hoist pull/load must be "
        "pulled again";
  } else {
    line += std::string(recovered);
  }
  if (!set_aside_removed_.empty()) line += "; removed older damaged copies: " + set_aside_removed_;
  return line;
}

void LmdbEnv::MarkDamaged(std::string_view what) const {
  // A SIGBUS in the map explains whatever error followed it.
  const std::string reason = map_faults() != 0
                                 ? std::string("data.mdb was truncated under a running process")
                                 : std::string(what);
  {
    MutexLock lock(damage_mu_);
    if (!damage_reason_.empty()) return;
    damage_reason_ = reason;
  }
  damaged_.store(true, std::memory_order_release);
  const std::string marker = dir_ + "/" + kMarkerFile;
  const std::string text =
      std::to_string(data_dev_) + " " + std::to_string(data_ino_) + "\n" + reason + "\n";
  Status wrote = WriteFileAtomic(marker, text);
  HOIST_LOG(kWarning) << "cache " << dir_ << ": data.mdb is damaged (" << reason
                      << "); this process stops using it and fetches instead, the next start "
                      << (wrote ? "sets it aside" : "checks it (" + wrote.error().message() + ")");
}

Error LmdbEnv::DamagedError() const {
  std::string reason;
  {
    MutexLock lock(damage_mu_);
    reason = damage_reason_;
  }
  if (reason.empty()) {
    MarkDamaged("data.mdb was truncated under a running process");
    MutexLock lock(damage_mu_);
    reason = damage_reason_;
  }
  return Error(EIO, "cache " + dir_ + " is damaged (" + reason + ")");
}

Error LmdbEnv::Check(int rc, std::string_view what) const {
  if (IsDamageCode(rc)) MarkDamaged(std::string(what) + ": " + mdb_strerror(rc));
  return MdbError(rc, what);
}

bool LmdbEnv::InMap(const MDB_val& v) const {
  if (map_begin_ == 0) return true;  // map unknown: nothing to compare with
  const auto p = reinterpret_cast<uintptr_t>(v.mv_data);
  if (v.mv_size == 0) return true;
  return p >= map_begin_ && p < map_end_ && v.mv_size <= map_end_ - p;
}

LmdbEnv::~LmdbEnv() {
  {
    MutexLock lock(pool_mu_);
    for (MDB_txn* txn : pool_) mdb_txn_abort(txn);
    pool_.clear();
  }
  // Before the unmap: no txn is left, and the range may be reused by another mapping after it.
  UnregisterMappedRange(fault_slot_);
  if (env_ != nullptr) mdb_env_close(env_);
  if (users_lock_fd_ >= 0) ::close(users_lock_fd_);  // after the unmap: then Compact may run
  if (dir_dev_ != 0 || dir_ino_ != 0) {
    OpenEnvs& envs = TheOpenEnvs();
    MutexLock lock(envs.mu);
    envs.dirs.erase({dir_dev_, dir_ino_});
  }
}

Result<LmdbEnv::ReadTxn> LmdbEnv::BeginRead() const {
  if (damaged()) return Fail(DamagedError());
  MDB_txn* txn = nullptr;
  {
    MutexLock lock(pool_mu_);
    if (!pool_.empty()) {
      txn = pool_.back();
      pool_.pop_back();
    }
  }
  if (txn != nullptr) {
    int rc = mdb_txn_renew(txn);
    if (rc == 0) {
      EnterMapUse(fault_slot_);
      return ReadTxn(this, txn);
    }
    mdb_txn_abort(txn);
    return Fail(Check(rc, "renewing read transaction"));
  }
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc != 0) return Fail(Check(rc, "beginning read transaction"));
  EnterMapUse(fault_slot_);
  return ReadTxn(this, txn);
}

void LmdbEnv::ReturnReadTxn(MDB_txn* txn) const {
  mdb_txn_reset(txn);
  MutexLock lock(pool_mu_);
  if (pool_.size() < kMaxPooledReadTxns) {
    pool_.push_back(txn);
    return;
  }
  mdb_txn_abort(txn);
}

LmdbEnv::ReadTxn::~ReadTxn() {
  if (txn_ == nullptr) return;
  env_->ReturnReadTxn(txn_);
  LeaveMapUse();
}

// `read_only`: a read txn, whose values all lie in the map (a write txn's own dirty pages are
// on the heap, so its values are not checked against the map).
static Result<std::optional<std::string_view>> TxnGet(const LmdbEnv& env, MDB_txn* txn, Table t,
                                                      std::string_view key, bool read_only) {
  MDB_val k = MdbVal(key);
  MDB_val v;
  int rc = mdb_get(txn, env.dbi(t), &k, &v);
  if (rc == MDB_NOTFOUND) return std::nullopt;
  if (rc != 0) return Fail(env.Check(rc, "reading cache record"));
  if (read_only && !env.InMap(v)) {
    env.MarkDamaged("a record points outside the file");
    return Fail(EIO, "reading cache record: it points outside the file");
  }
  return MdbView(v);
}

Result<std::optional<std::string_view>> LmdbEnv::ReadTxn::Get(Table t, std::string_view key) const {
  return TxnGet(*env_, txn_, t, key, true);
}

Result<LmdbEnv::WriteTxn> LmdbEnv::BeginWrite() const {
  if (damaged()) return Fail(DamagedError());
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != 0) return Fail(Check(rc, "beginning write transaction"));
  EnterMapUse(fault_slot_);
  return WriteTxn(this, txn);
}

LmdbEnv::WriteTxn::~WriteTxn() {
  if (txn_ != nullptr) mdb_txn_abort(txn_);
  if (env_ != nullptr) LeaveMapUse();
}

Result<std::optional<std::string_view>> LmdbEnv::WriteTxn::Get(Table t,
                                                               std::string_view key) const {
  return TxnGet(*env_, txn_, t, key, false);
}

Status LmdbEnv::WriteTxn::Put(Table t, std::string_view key, std::string_view value) {
  MDB_val k = MdbVal(key);
  MDB_val v = MdbVal(value);
  int rc = mdb_put(txn_, env_->dbi(t), &k, &v, 0);
  if (rc != 0) return Fail(env_->Check(rc, "writing cache record"));
  return Ok();
}

Result<std::span<char>> LmdbEnv::WriteTxn::Reserve(Table t, std::string_view key, size_t size) {
  MDB_val k = MdbVal(key);
  MDB_val v{size, nullptr};
  int rc = mdb_put(txn_, env_->dbi(t), &k, &v, MDB_RESERVE);
  if (rc != 0) return Fail(env_->Check(rc, "writing cache record"));
  return std::span<char>(static_cast<char*>(v.mv_data), v.mv_size);
}

Result<bool> LmdbEnv::WriteTxn::Del(Table t, std::string_view key) {
  MDB_val k = MdbVal(key);
  int rc = mdb_del(txn_, env_->dbi(t), &k, nullptr);
  if (rc == MDB_NOTFOUND) return false;
  if (rc != 0) return Fail(env_->Check(rc, "deleting cache record"));
  return true;
}

Status LmdbEnv::WriteTxn::Commit() {
  int rc = mdb_txn_commit(txn_);  // (the map use ends with this object)
  txn_ = nullptr;                 // freed by commit whatever the outcome
  if (rc != 0) return Fail(env_->Check(rc, "committing cache transaction"));
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

Result<LmdbEnv::CompactResult> LmdbEnv::Compact(const std::string& dir,
                                                const LmdbEnvOptions& options) {
  CompactResult out;
  const std::string data = dir + "/" + kDataFile;
  struct stat st {};
  if (::stat(data.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      out.not_compacted = "no data file";
      return out;
    }
    return Fail(ErrnoError("stat " + data));
  }
  out.bytes_before = out.bytes_after = static_cast<uint64_t>(st.st_size);
  const std::string lock_path = dir + "/" + kOpenLockFile;
  ScopedFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock.valid()) return Fail(ErrnoError("opening " + lock_path));
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return Fail(ErrnoError("locking " + lock_path));
  }
  const std::string users_path = dir + "/" + kUsersLockFile;
  ScopedFd users(::open(users_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!users.valid()) return Fail(ErrnoError("opening " + users_path));
  if (::flock(users.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return Fail(ErrnoError("locking " + users_path));
    out.not_compacted = "in use by another process (a mount or a daemon)";
    return out;
  }
  const std::string scratch = dir + "/" + kCompactDir;
  (void)RemoveTree(scratch);  // a compaction that died
  if (::mkdir(scratch.c_str(), 0700) != 0) return Fail(ErrnoError("mkdir " + scratch));
  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc != 0) return Fail(MdbError(rc, "mdb_env_create"));
  const uint64_t map = std::max<uint64_t>(options.map_size, out.bytes_before);
  if ((rc = mdb_env_set_maxdbs(env, static_cast<MDB_dbi>(Table::kCount))) == 0 &&
      (rc = mdb_env_set_mapsize(env, map)) == 0 &&
      (rc = mdb_env_open(env, dir.c_str(), MDB_NOTLS | MDB_RDONLY, 0644)) == 0) {
    rc = mdb_env_copy2(env, scratch.c_str(), MDB_CP_COMPACT);
  }
  mdb_env_close(env);
  if (rc != 0) {
    (void)RemoveTree(scratch);
    return Fail(MdbError(rc, "compacting " + data));
  }
  const std::string copy = scratch + "/" + kDataFile;
  if (::rename(copy.c_str(), data.c_str()) != 0) {
    Error e = ErrnoError("renaming " + copy + " over " + data);
    (void)RemoveTree(scratch);
    return Fail(e);
  }
  // The lock file describes the old data file: a fresh one goes with the new.
  (void)::unlink((dir + "/" + kLockFile).c_str());
  (void)RemoveTree(scratch);
  if (::stat(data.c_str(), &st) == 0) out.bytes_after = static_cast<uint64_t>(st.st_size);
  out.compacted = true;
  return out;
}

}  // namespace hoist
