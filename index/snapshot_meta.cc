#include "index/snapshot_meta.h"

#include <lmdb.h>

#include <chrono>
#include <cstring>

#include "base/log.h"
#include "index/lmdb_env.h"

namespace hoist {
namespace {

constexpr uint8_t kRecordVersion = 1;
constexpr uint64_t kSchemaVersion = 1;
constexpr char kSchemaKey[] = "snapshot_schema";
constexpr char kNextIdKey[] = "snapshot_next_id";
// LMDB's compiled-in key limit (mdb_env_get_maxkeysize with the default MDB_MAXKEYSIZE).
constexpr size_t kMaxKeyBytes = 511;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutStr(std::string* out, std::string_view s) {
  PutU64(out, s.size());
  out->append(s);
}

// A bounds-checked reader over a record.
class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool U8(uint8_t* v) {
    if (b_.empty()) return false;
    *v = static_cast<uint8_t>(b_[0]);
    b_.remove_prefix(1);
    return true;
  }
  bool U64(uint64_t* v) {
    if (b_.size() < 8) return false;
    *v = 0;
    for (int i = 0; i < 8; ++i) *v |= static_cast<uint64_t>(static_cast<uint8_t>(b_[i])) << (8 * i);
    b_.remove_prefix(8);
    return true;
  }
  bool I64(int64_t* v) {
    uint64_t u;
    if (!U64(&u)) return false;
    *v = static_cast<int64_t>(u);
    return true;
  }
  bool Str(std::string* s) {
    uint64_t n;
    if (!U64(&n) || n > b_.size()) return false;
    s->assign(b_.substr(0, n));
    b_.remove_prefix(n);
    return true;
  }
  bool done() const { return b_.empty(); }

 private:
  std::string_view b_;
};

std::string ChildKey(uint64_t parent_id, uint64_t child_id) {
  std::string k(16, '\0');
  for (int i = 0; i < 8; ++i) {
    k[i] = static_cast<char>(parent_id >> (56 - 8 * i));
    k[8 + i] = static_cast<char>(child_id >> (56 - 8 * i));
  }
  return k;
}

Status CheckKey(std::string_view what, std::string_view key) {
  if (key.empty()) return Fail(EINVAL, std::string(what) + " is empty");
  if (key.size() > kMaxKeyBytes) {
    return Fail(EINVAL, std::string(what) + " is " + std::to_string(key.size()) +
                            " bytes, more than " + std::to_string(kMaxKeyBytes));
  }
  return Ok();
}

Status CheckLabels(const SnapshotLabels& labels) {
  for (const auto& [k, v] : labels) {
    if (k.size() + v.size() > kMaxLabelBytes) {
      return Fail(EINVAL, "label " + k.substr(0, 64) + " is longer than " +
                              std::to_string(kMaxLabelBytes) + " bytes with its value");
    }
  }
  return Ok();
}

void DropEmptyLabels(SnapshotLabels* labels) {
  std::erase_if(*labels, [](const auto& kv) { return kv.second.empty(); });
}

// Txn is LmdbEnv::ReadTxn or LmdbEnv::WriteTxn (their Get checks the value's bounds).
template <class Txn>
Result<std::optional<SnapshotRecord>> GetIn(const Txn& txn, const std::string& key) {
  HOIST_ASSIGN_OR_RETURN(std::optional<std::string_view> v, txn.Get(Table::kSnapshots, key));
  if (!v) return std::optional<SnapshotRecord>();
  HOIST_ASSIGN_OR_RETURN(SnapshotRecord r, DecodeSnapshotRecord(key, *v));
  return std::optional<SnapshotRecord>(std::move(r));
}

template <class Txn>
Result<SnapshotRecord> MustGetIn(const Txn& txn, const std::string& key) {
  HOIST_ASSIGN_OR_RETURN(std::optional<SnapshotRecord> r, GetIn(txn, key));
  if (!r) return Fail(ENOENT, "snapshot " + key + " does not exist");
  return std::move(*r);
}

Status PutRecord(LmdbEnv::WriteTxn& txn, const SnapshotRecord& r) {
  return txn.Put(Table::kSnapshots, r.info.name, EncodeSnapshotRecord(r));
}

// The parent checks of Create and CreateRemote: ENOENT if missing, EINVAL if not committed.
Result<std::optional<SnapshotRecord>> CheckParent(const LmdbEnv::WriteTxn& txn,
                                                  const std::string& parent) {
  if (parent.empty()) return std::optional<SnapshotRecord>();
  HOIST_ASSIGN_OR_RETURN(std::optional<SnapshotRecord> p, GetIn(txn, parent));
  if (!p) return Fail(ENOENT, "parent snapshot " + parent + " does not exist");
  if (p->info.kind != SnapshotKind::kCommitted) {
    return Fail(EINVAL, "parent " + parent + " is not a committed snapshot");
  }
  return p;
}

}  // namespace

const char* SnapshotKindName(SnapshotKind kind) {
  switch (kind) {
    case SnapshotKind::kView:
      return "view";
    case SnapshotKind::kActive:
      return "active";
    case SnapshotKind::kCommitted:
      return "committed";
    case SnapshotKind::kUnknown:
      break;
  }
  return "unknown";
}

std::string EncodeSnapshotRecord(const SnapshotRecord& r) {
  std::string out;
  out.push_back(static_cast<char>(kRecordVersion));
  PutU64(&out, r.id);
  out.push_back(static_cast<char>(r.info.kind));
  PutU64(&out, static_cast<uint64_t>(r.info.created_ns));
  PutU64(&out, static_cast<uint64_t>(r.info.updated_ns));
  PutU64(&out, static_cast<uint64_t>(r.usage.size));
  PutU64(&out, static_cast<uint64_t>(r.usage.inodes));
  PutStr(&out, r.info.parent);
  PutStr(&out, r.remote_path);
  PutU64(&out, r.info.labels.size());
  for (const auto& [k, v] : r.info.labels) {
    PutStr(&out, k);
    PutStr(&out, v);
  }
  return out;
}

Result<SnapshotRecord> DecodeSnapshotRecord(std::string_view name, std::string_view bytes) {
  auto corrupt = [&](const char* why) {
    return Fail(EIO,
                "corrupt snapshot record " + std::string(name.substr(0, 100)) + " (" + why + ")");
  };
  Reader in(bytes);
  SnapshotRecord r;
  r.info.name = std::string(name);
  uint8_t version = 0, kind = 0;
  if (!in.U8(&version)) return corrupt("empty");
  if (version != kRecordVersion) return corrupt("unknown version");
  uint64_t nlabels = 0;
  if (!in.U64(&r.id) || !in.U8(&kind) || !in.I64(&r.info.created_ns) ||
      !in.I64(&r.info.updated_ns) || !in.I64(&r.usage.size) || !in.I64(&r.usage.inodes) ||
      !in.Str(&r.info.parent) || !in.Str(&r.remote_path) || !in.U64(&nlabels)) {
    return corrupt("truncated");
  }
  if (kind < 1 || kind > 3) return corrupt("bad kind");
  r.info.kind = static_cast<SnapshotKind>(kind);
  for (uint64_t i = 0; i < nlabels; ++i) {
    std::string k, v;
    if (!in.Str(&k) || !in.Str(&v)) return corrupt("truncated label");
    r.info.labels[std::move(k)] = std::move(v);
  }
  if (!in.done()) return corrupt("trailing bytes");
  return r;
}

Result<std::unique_ptr<SnapshotMeta>> SnapshotMeta::Open(const std::string& dir) {
  auto meta = std::unique_ptr<SnapshotMeta>(new SnapshotMeta());
  LmdbEnvOptions options;
  options.map_size = 1ull << 30;
  options.max_readers = 126;
  options.log_set_aside = false;  // the line below says what is lost
  HOIST_ASSIGN_OR_RETURN(meta->env_, LmdbEnv::Open(dir, options));
  if (!meta->env_->set_aside_at_open().empty()) {
    HOIST_LOG(kWarning) << meta->env_->SetAsideMessage(
        "the snapshot records are lost: containerd's images on this snapshotter must be "
        "removed and pulled again");
  }
  HOIST_ASSIGN_OR_RETURN(auto txn, meta->env_->BeginWrite());
  HOIST_ASSIGN_OR_RETURN(auto v, txn.Get(Table::kMeta, kSchemaKey));
  if (v) {
    uint64_t schema = 0;
    if (v->size() == 8) std::memcpy(&schema, v->data(), 8);
    if (v->size() != 8 || schema != kSchemaVersion) {
      return Fail(EPROTO, "snapshot metadata " + dir + " has schema " + std::to_string(schema) +
                              ", this hoist-snapshotter reads schema " +
                              std::to_string(kSchemaVersion));
    }
    return meta;
  }
  uint64_t schema = kSchemaVersion;
  HOIST_RETURN_IF_ERROR(
      txn.Put(Table::kMeta, kSchemaKey, std::string_view(reinterpret_cast<char*>(&schema), 8)));
  HOIST_RETURN_IF_ERROR(txn.Commit());
  HOIST_RETURN_IF_ERROR(meta->env_->Sync());
  return meta;
}

SnapshotMeta::~SnapshotMeta() = default;

const std::string& SnapshotMeta::set_aside_at_open() const { return env_->set_aside_at_open(); }

Result<uint64_t> SnapshotMeta::NewId() {
  HOIST_ASSIGN_OR_RETURN(auto txn, env_->BeginWrite());
  HOIST_ASSIGN_OR_RETURN(auto v, txn.Get(Table::kMeta, kNextIdKey));
  uint64_t next = 1;
  if (v) {
    if (v->size() != 8) return Fail(EIO, "corrupt snapshot id counter");
    std::memcpy(&next, v->data(), 8);
  }
  const uint64_t after = next + 1;
  HOIST_RETURN_IF_ERROR(txn.Put(Table::kMeta, kNextIdKey,
                                std::string_view(reinterpret_cast<const char*>(&after), 8)));
  HOIST_RETURN_IF_ERROR(txn.Commit());
  HOIST_RETURN_IF_ERROR(env_->Sync());
  return next;
}

Result<SnapshotRecord> SnapshotMeta::Create(SnapshotKind kind, const std::string& key,
                                            const std::string& parent, const SnapshotLabels& labels,
                                            uint64_t id) {
  if (kind != SnapshotKind::kActive && kind != SnapshotKind::kView) {
    return Fail(EINVAL, std::string("snapshot kind ") + SnapshotKindName(kind) +
                            " invalid; only active or view snapshots can be created");
  }
  HOIST_RETURN_IF_ERROR(CheckKey("snapshot key", key));
  HOIST_RETURN_IF_ERROR(CheckLabels(labels));
  HOIST_ASSIGN_OR_RETURN(auto txn, env_->BeginWrite());
  HOIST_ASSIGN_OR_RETURN(std::optional<SnapshotRecord> p, CheckParent(txn, parent));
  HOIST_ASSIGN_OR_RETURN(std::optional<SnapshotRecord> existing, GetIn(txn, key));
  if (existing) return Fail(EEXIST, "snapshot " + key + " already exists");
  SnapshotRecord r;
  r.id = id;
  r.info.name = key;
  r.info.parent = parent;
  r.info.kind = kind;
  r.info.created_ns = r.info.updated_ns = NowNs();
  r.info.labels = labels;
  DropEmptyLabels(&r.info.labels);
  HOIST_RETURN_IF_ERROR(PutRecord(txn, r));
  if (p) HOIST_RETURN_IF_ERROR(txn.Put(Table::kSnapshotChildren, ChildKey(p->id, id), key));
  HOIST_RETURN_IF_ERROR(txn.Commit());
  HOIST_RETURN_IF_ERROR(env_->Sync());
  return r;
}

Result<SnapshotRecord> SnapshotMeta::CreateRemote(const std::string& name,
                                                  const std::string& parent,
                                                  const SnapshotLabels& labels,
                                                  const std::string& remote_path, uint64_t id) {
  HOIST_RETURN_IF_ERROR(CheckKey("snapshot name", name));
  HOIST_RETURN_IF_ERROR(CheckLabels(labels));
  if (remote_path.empty()) return Fail(EINVAL, "remote snapshot " + name + " has no path");
  HOIST_ASSIGN_OR_RETURN(auto txn, env_->BeginWrite());
  HOIST_ASSIGN_OR_RETURN(std::optional<SnapshotRecord> existing, GetIn(txn, name));
  if (existing) return Fail(EEXIST, "snapshot " + name + " already exists");
  HOIST_ASSIGN_OR_RETURN(std::optional<SnapshotRecord> p, CheckParent(txn, parent));
  SnapshotRecord r;
  r.id = id;
  r.info.name = name;
  r.info.parent = parent;
  r.info.kind = SnapshotKind::kCommitted;
  r.info.created_ns = r.info.updated_ns = NowNs();
  r.info.labels = labels;
  DropEmptyLabels(&r.info.labels);
  r.remote_path = remote_path;
  HOIST_RETURN_IF_ERROR(PutRecord(txn, r));
  if (p) HOIST_RETURN_IF_ERROR(txn.Put(Table::kSnapshotChildren, ChildKey(p->id, id), name));
  HOIST_RETURN_IF_ERROR(txn.Commit());
  HOIST_RETURN_IF_ERROR(env_->Sync());
  return r;
}

Result<SnapshotRecord> SnapshotMeta::Get(const std::string& key) {
  HOIST_ASSIGN_OR_RETURN(auto txn, env_->BeginRead());
  return MustGetIn(txn, key);
}

Result<std::vector<SnapshotRecord>> SnapshotMeta::Ancestors(const std::string& key) {
  HOIST_ASSIGN_OR_RETURN(auto txn, env_->BeginRead());
  HOIST_ASSIGN_OR_RETURN(SnapshotRecord r, MustGetIn(txn, key));
  std::vector<SnapshotRecord> out;
  std::string parent = r.info.parent;
  while (!parent.empty()) {
    auto p = MustGetIn(txn, parent);
    if (!p && p.error().code() == ENOENT) {
      return Fail(ENOENT, "parent " + parent + " of snapshot " + key + " is missing");
    }
    if (!p) return Fail(p.error());
    // A cycle can only come from a damaged file; bound the walk.
    if (out.size() > 100000) return Fail(EIO, "snapshot " + key + " has a parent cycle");
    parent = p->info.parent;
    out.push_back(std::move(*p));
  }
  return out;
}

Status SnapshotMeta::Commit(const std::string& key, const std::string& name,
                            const SnapshotLabels& labels, const SnapshotUsage& usage) {
  HOIST_RETURN_IF_ERROR(CheckKey("snapshot name", name));
  HOIST_RETURN_IF_ERROR(CheckLabels(labels));
  HOIST_ASSIGN_OR_RETURN(auto txn, env_->BeginWrite());
  HOIST_ASSIGN_OR_RETURN(std::optional<SnapshotRecord> taken, GetIn(txn, name));
  if (taken) return Fail(EEXIST, "committed snapshot " + name + " already exists");
  HOIST_ASSIGN_OR_RETURN(std::optional<SnapshotRecord> active, GetIn(txn, key));
  if (!active) return Fail(ENOENT, "active snapshot " + key + " does not exist");
  if (active->info.kind != SnapshotKind::kActive) {
    return Fail(EBUSY, "snapshot " + key + " is not active");
  }
  SnapshotRecord r = std::move(*active);
  r.info.name = name;
  r.info.kind = SnapshotKind::kCommitted;
  r.info.created_ns = r.info.updated_ns = NowNs();
  r.info.labels = labels;
  DropEmptyLabels(&r.info.labels);
  r.usage = usage;
  HOIST_RETURN_IF_ERROR(PutRecord(txn, r));
  HOIST_ASSIGN_OR_RETURN(bool deleted, txn.Del(Table::kSnapshots, key));
  (void)deleted;  // read above in this txn
  if (!r.info.parent.empty()) {
    HOIST_ASSIGN_OR_RETURN(std::optional<SnapshotRecord> p, GetIn(txn, r.info.parent));
    if (!p) return Fail(ENOENT, "parent " + r.info.parent + " of snapshot " + key + " is missing");
    HOIST_RETURN_IF_ERROR(txn.Put(Table::kSnapshotChildren, ChildKey(p->id, r.id), name));
  }
  HOIST_RETURN_IF_ERROR(txn.Commit());
  return env_->Sync();
}

Result<SnapshotRecord> SnapshotMeta::Remove(const std::string& key) {
  HOIST_ASSIGN_OR_RETURN(auto txn, env_->BeginWrite());
  HOIST_ASSIGN_OR_RETURN(SnapshotRecord r, MustGetIn(txn, key));
  {
    MDB_cursor* cur = nullptr;
    int rc = mdb_cursor_open(txn.get(), env_->dbi(Table::kSnapshotChildren), &cur);
    if (rc != 0) return Fail(env_->Check(rc, "opening the children index"));
    const std::string prefix = ChildKey(r.id, 0).substr(0, 8);
    MDB_val k = MdbVal(prefix), v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    const bool has_child = rc == 0 && MdbView(k).substr(0, 8) == prefix;
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
      return Fail(env_->Check(rc, "reading the children index"));
    }
    if (has_child) return Fail(EBUSY, "cannot remove snapshot " + key + " with child");
  }
  if (!r.info.parent.empty()) {
    HOIST_ASSIGN_OR_RETURN(std::optional<SnapshotRecord> p, GetIn(txn, r.info.parent));
    if (p) HOIST_RETURN_IF_ERROR(txn.Del(Table::kSnapshotChildren, ChildKey(p->id, r.id)));
  }
  HOIST_RETURN_IF_ERROR(txn.Del(Table::kSnapshots, key));
  HOIST_RETURN_IF_ERROR(txn.Commit());
  HOIST_RETURN_IF_ERROR(env_->Sync());
  return r;
}

Result<SnapshotInfo> SnapshotMeta::Update(const SnapshotInfo& info,
                                          const std::vector<std::string>& field_paths) {
  HOIST_RETURN_IF_ERROR(CheckLabels(info.labels));
  HOIST_ASSIGN_OR_RETURN(auto txn, env_->BeginWrite());
  HOIST_ASSIGN_OR_RETURN(SnapshotRecord r, MustGetIn(txn, info.name));
  if (field_paths.empty()) {
    r.info.labels = info.labels;
  } else {
    for (const std::string& path : field_paths) {
      if (path.starts_with("labels.")) {
        const std::string key = path.substr(7);
        auto it = info.labels.find(key);
        r.info.labels[key] = it == info.labels.end() ? "" : it->second;
      } else if (path == "labels") {
        r.info.labels = info.labels;
      } else {
        return Fail(EINVAL, "cannot update " + path + " field on snapshot " + info.name);
      }
    }
  }
  DropEmptyLabels(&r.info.labels);
  r.info.updated_ns = NowNs();
  HOIST_RETURN_IF_ERROR(PutRecord(txn, r));
  HOIST_RETURN_IF_ERROR(txn.Commit());
  HOIST_RETURN_IF_ERROR(env_->Sync());
  return r.info;
}

Result<std::vector<SnapshotRecord>> SnapshotMeta::List() {
  HOIST_ASSIGN_OR_RETURN(auto txn, env_->BeginRead());
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(txn.get(), env_->dbi(Table::kSnapshots), &cur);
  if (rc != 0) return Fail(env_->Check(rc, "listing snapshots"));
  std::vector<SnapshotRecord> out;
  MDB_val k, v;
  Status status = Ok();
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (!env_->InMap(k) || !env_->InMap(v)) {
      status = Fail(env_->DamagedError());
      break;
    }
    auto r = DecodeSnapshotRecord(MdbView(k), MdbView(v));
    if (!r) {
      status = Fail(r.error());
      break;
    }
    out.push_back(std::move(*r));
  }
  mdb_cursor_close(cur);
  if (!status) return Fail(status.error());
  if (rc != MDB_NOTFOUND) return Fail(env_->Check(rc, "listing snapshots"));
  return out;
}

Status SnapshotMeta::SetRemotePath(const std::string& key, const std::string& path) {
  HOIST_ASSIGN_OR_RETURN(auto txn, env_->BeginWrite());
  HOIST_ASSIGN_OR_RETURN(SnapshotRecord r, MustGetIn(txn, key));
  if (r.remote_path.empty()) return Fail(EINVAL, "snapshot " + key + " is not remote");
  r.remote_path = path;
  HOIST_RETURN_IF_ERROR(PutRecord(txn, r));
  HOIST_RETURN_IF_ERROR(txn.Commit());
  return env_->Sync();
}

}  // namespace hoist
