#include "index/store.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <set>

#include "base/log.h"
#include "index/layer_index_codec.h"
#include "index/store_salvage.h"

namespace hoist {
namespace {

constexpr uint64_t kSchemaVersion = 1;
constexpr size_t kMaxRefName = 500;  // LMDB keys are at most 511 bytes

std::string KeyOf(const Digest& d) {
  auto raw = d.raw();
  return std::string(reinterpret_cast<const char*>(raw.data()), raw.size());
}

Result<Digest> DigestOfKey(std::string_view key, const char* table) {
  if (key.size() != 32) return Fail(EIO, std::string("corrupt key in cache table ") + table);
  std::array<uint8_t, 32> raw;
  std::memcpy(raw.data(), key.data(), raw.size());
  return Digest::FromSha256(raw);
}

Status CheckRefName(std::string_view name) {
  if (name.empty()) return Fail(EINVAL, "image reference name is empty");
  if (name.size() > kMaxRefName) {
    return Fail(ENAMETOOLONG, "image reference name is " + std::to_string(name.size()) +
                                  " bytes, the limit is " + std::to_string(kMaxRefName));
  }
  return Ok();
}

// Visits every key/value of a table in key order.
template <class Fn>
Status ForEach(const LmdbEnv& env, Table table, Fn&& fn) {
  HOIST_ASSIGN_OR_RETURN(LmdbEnv::ReadTxn txn, env.BeginRead());
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(txn.get(), env.dbi(table), &cur);
  if (rc != 0) return Fail(env.Check(rc, "opening cache cursor"));
  MDB_val k, v;
  Status status = Ok();
  for (MDB_cursor_op op = MDB_FIRST;; op = MDB_NEXT) {
    rc = mdb_cursor_get(cur, &k, &v, op);
    if (rc == MDB_NOTFOUND) break;
    if (rc != 0) {
      status = Fail(env.Check(rc, "reading cache cursor"));
      break;
    }
    if (!env.InMap(k) || !env.InMap(v)) {
      env.MarkDamaged("a record points outside the file");
      status = Fail(EIO, "reading cache cursor: a record points outside the file");
      break;
    }
    status = fn(MdbView(k), MdbView(v));
    if (!status) break;
  }
  mdb_cursor_close(cur);
  return status;
}

std::string CorruptRef(std::string_view name) {
  return "corrupt image reference record " + std::string(name) + "; remove it (hoist rm " +
         std::string(name) + ") and pull the image again";
}

// Reads the schema record (writing it into a new store). EPROTO for another schema.
Status CheckSchema(const LmdbEnv& env) {
  HOIST_ASSIGN_OR_RETURN(LmdbEnv::WriteTxn txn, env.BeginWrite());
  HOIST_ASSIGN_OR_RETURN(auto v, txn.Get(Table::kMeta, "schema"));
  if (v) {
    uint64_t schema = 0;
    if (v->size() == 8) std::memcpy(&schema, v->data(), 8);
    if (v->size() != 8 || schema != kSchemaVersion) {
      return Fail(EPROTO, "cache " + env.dir() + " has schema " + std::to_string(schema) +
                              ", this hoist reads schema " + std::to_string(kSchemaVersion) +
                              "; remove the directory to start afresh");
    }
    return Ok();
  }
  uint64_t schema = kSchemaVersion;
  HOIST_RETURN_IF_ERROR(
      txn.Put(Table::kMeta, "schema", std::string_view(reinterpret_cast<char*>(&schema), 8)));
  return txn.Commit();
}

}  // namespace

Result<std::string> ResolveCacheDir(std::string_view flag, const CacheDirInputs& in) {
  if (!flag.empty()) return std::string(flag);
  if (!in.hoist_cache.empty()) return in.hoist_cache;
  if (in.euid == 0) return std::string("/var/lib/hoist");
  if (!in.xdg_cache_home.empty()) return in.xdg_cache_home + "/hoist";
  if (!in.home.empty()) return in.home + "/.cache/hoist";
  return Fail(ENOENT, "no cache directory: set --cache, HOIST_CACHE, XDG_CACHE_HOME or HOME");
}

Result<std::string> ResolveCacheDir(std::string_view flag) {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v == nullptr ? "" : v);
  };
  return ResolveCacheDir(flag, CacheDirInputs{.euid = static_cast<unsigned>(::geteuid()),
                                              .hoist_cache = env("HOIST_CACHE"),
                                              .xdg_cache_home = env("XDG_CACHE_HOME"),
                                              .home = env("HOME")});
}

namespace {

LmdbEnvOptions EnvOptionsFor(const StoreOptions& options) {
  LmdbEnvOptions env_options;
  env_options.log_set_aside = false;  // Open logs it, with what was recovered
  env_options.max_readers = options.max_readers;
  env_options.map_size = options.map_size;
  if (env_options.map_size == 0) {
    env_options.map_size =
        std::max<uint64_t>(2 * options.cache.quota_bytes + (256ull << 20), 1ull << 30);
  }
  return env_options;
}

}  // namespace

Result<LmdbEnv::CompactResult> Store::Compact(const std::string& dir, const StoreOptions& options) {
  return LmdbEnv::Compact(dir, EnvOptionsFor(options));
}

Result<std::unique_ptr<Store>> Store::Open(const std::string& dir, const StoreOptions& options) {
  const LmdbEnvOptions env_options = EnvOptionsFor(options);
  std::unique_ptr<Store> store(new Store());
  // The schema record is the first read of a table's records. If the environment turns out to
  // be damaged there (past what LmdbEnv::Open checks), it is marked, and a second open sets the
  // file aside and starts afresh.
  for (int attempt = 0;; ++attempt) {
    auto env = LmdbEnv::Open(dir, env_options);
    if (!env) return Fail(env.error().Context("opening cache " + dir));
    store->env_ = std::move(*env);
    Status schema = CheckSchema(*store->env_);
    if (schema) break;
    if (!store->env_->damaged() || attempt > 0) return Fail(schema.error());
    store->env_.reset();
  }
  store->chunks_ = std::make_unique<ChunkCache>(store->env_.get(), options.cache);
  if (!store->env_->set_aside_at_open().empty()) {
    HOIST_LOG(kWarning) << store->env_->SetAsideMessage(
        store->RecoverFrom(store->env_->set_aside_at_open()));
  }
  return store;
}

std::string Store::RecoverFrom(const std::string& damaged_file) {
  Result<std::vector<SalvagedRecord>> records =
      ReadDamagedStore(damaged_file, {Table::kBlobs, Table::kLayers, Table::kRefs}, {});
  if (!records) return "";
  // Every record is checked as if it came from the network: blobs against their digest, layer
  // indexes by their decoder (checksum trailer) and digest, references only if the manifest
  // they name was recovered.
  std::set<Digest> blobs;
  std::vector<const SalvagedRecord*> keep, refs;
  for (const SalvagedRecord& r : *records) {
    switch (r.table) {
      case Table::kBlobs: {
        Result<Digest> d = DigestOfKey(r.key, "blobs");
        if (d && Digest::Of(r.value) == *d) {
          blobs.insert(*d);
          keep.push_back(&r);
        }
        break;
      }
      case Table::kLayers: {
        Result<Digest> d = DigestOfKey(r.key, "layers");
        Result<LayerIndex> index = DecodeLayerIndex(r.value);
        if (d && index && index->layer_digest == *d) keep.push_back(&r);
        break;
      }
      case Table::kRefs: {
        Result<Digest> target = Digest::Parse(r.value);
        if (CheckRefName(r.key) && target) refs.push_back(&r);
        break;
      }
      default:
        break;
    }
  }
  size_t n_refs = 0, n_blobs = blobs.size(), n_layers = keep.size() - blobs.size();
  for (const SalvagedRecord* r : refs) {
    if (blobs.contains(*Digest::Parse(r->value))) {
      keep.push_back(r);
      ++n_refs;
    }
  }
  if (keep.empty()) return "";
  Status put = chunks_->WriteWithRoom([&](LmdbEnv::WriteTxn& txn) -> Status {
    for (const SalvagedRecord* r : keep) HOIST_RETURN_IF_ERROR(txn.Put(r->table, r->key, r->value));
    return Ok();
  });
  if (put) put = env_->Sync();
  if (!put) return "recovering records from it failed (" + put.error().message() + ")";
  return "recovered from it " + std::to_string(n_refs) + " image references, " +
         std::to_string(n_blobs) + " manifests/configs and " + std::to_string(n_layers) +
         " layer indexes (chunks are fetched again; images not recovered must be pulled or "
         "loaded again)";
}

Store::~Store() = default;

Status Store::PutLayerIndex(const LayerIndex& index) {
  if (index.layer_digest.empty()) return Fail(EINVAL, "layer index has no layer digest");
  std::string key = KeyOf(index.layer_digest);
  // Encoded in place (MDB_RESERVE): a 100,000-file index is ~7 MB, and holding it once more
  // beside the transaction's own pages showed in the peak RSS of a cold mount.
  const size_t size = EncodedLayerIndexSize(index);
  return chunks_->WriteWithRoom([&](LmdbEnv::WriteTxn& txn) -> Status {
    HOIST_ASSIGN_OR_RETURN(std::span<char> value, txn.Reserve(Table::kLayers, key, size));
    EncodeLayerIndexInto(index, value);
    return Ok();
  });
}

Result<std::optional<LayerIndex>> Store::GetLayerIndex(const Digest& layer) {
  if (layer.empty()) return Fail(EINVAL, "empty layer digest");
  HOIST_ASSIGN_OR_RETURN(LmdbEnv::ReadTxn txn, env_->BeginRead());
  HOIST_ASSIGN_OR_RETURN(auto v, txn.Get(Table::kLayers, KeyOf(layer)));
  if (!v) return std::optional<LayerIndex>();
  Result<LayerIndex> index = DecodeLayerIndex(*v);
  // The record is decoded: its pages (about 100 bytes a file) need not stay resident.
  ReleaseMappedPages(*v);
  if (!index) return Fail(index.error().Context("layer " + layer.str()));
  if (index->layer_digest != layer) {
    return Fail(EIO, "layer " + layer.str() + ": corrupt layer index record: it describes " +
                         index->layer_digest.str());
  }
  return std::optional<LayerIndex>(std::move(*index));
}

Result<bool> Store::HasLayerIndex(const Digest& layer) {
  if (layer.empty()) return Fail(EINVAL, "empty layer digest");
  HOIST_ASSIGN_OR_RETURN(LmdbEnv::ReadTxn txn, env_->BeginRead());
  HOIST_ASSIGN_OR_RETURN(auto v, txn.Get(Table::kLayers, KeyOf(layer)));
  return v.has_value();
}

Result<bool> Store::DeleteLayerIndex(const Digest& layer) {
  if (layer.empty()) return Fail(EINVAL, "empty layer digest");
  bool found = false;
  HOIST_RETURN_IF_ERROR(chunks_->WriteWithRoom([&](LmdbEnv::WriteTxn& txn) -> Status {
    HOIST_ASSIGN_OR_RETURN(found, txn.Del(Table::kLayers, KeyOf(layer)));
    return Ok();
  }));
  return found;
}

Result<std::vector<Digest>> Store::ListLayerIndexes() {
  std::vector<Digest> out;
  HOIST_RETURN_IF_ERROR(
      ForEach(*env_, Table::kLayers, [&](std::string_view k, std::string_view) -> Status {
        HOIST_ASSIGN_OR_RETURN(Digest d, DigestOfKey(k, "layers"));
        out.push_back(std::move(d));
        return Ok();
      }));
  return out;
}

Status Store::PutRef(std::string_view name, const Digest& manifest) {
  HOIST_RETURN_IF_ERROR(CheckRefName(name));
  if (manifest.empty())
    return Fail(EINVAL, "image reference " + std::string(name) + ": empty digest");
  HOIST_RETURN_IF_ERROR(chunks_->WriteWithRoom(
      [&](LmdbEnv::WriteTxn& txn) { return txn.Put(Table::kRefs, name, manifest.str()); }));
  return env_->Sync();
}

Result<std::optional<Digest>> Store::GetRef(std::string_view name) {
  HOIST_RETURN_IF_ERROR(CheckRefName(name));
  HOIST_ASSIGN_OR_RETURN(LmdbEnv::ReadTxn txn, env_->BeginRead());
  HOIST_ASSIGN_OR_RETURN(auto v, txn.Get(Table::kRefs, name));
  if (!v) return std::optional<Digest>();
  Result<Digest> d = Digest::Parse(*v);
  if (!d) return Fail(EIO, CorruptRef(name));
  return std::optional<Digest>(std::move(*d));
}

Result<bool> Store::DeleteRef(std::string_view name) {
  HOIST_RETURN_IF_ERROR(CheckRefName(name));
  bool found = false;
  HOIST_RETURN_IF_ERROR(chunks_->WriteWithRoom([&](LmdbEnv::WriteTxn& txn) -> Status {
    HOIST_ASSIGN_OR_RETURN(found, txn.Del(Table::kRefs, name));
    return Ok();
  }));
  HOIST_RETURN_IF_ERROR(env_->Sync());
  return found;
}

Result<std::vector<std::pair<std::string, Digest>>> Store::ListRefs() {
  std::vector<std::pair<std::string, Digest>> out;
  HOIST_RETURN_IF_ERROR(
      ForEach(*env_, Table::kRefs, [&](std::string_view k, std::string_view v) -> Status {
        Result<Digest> d = Digest::Parse(v);
        if (!d) return Fail(EIO, CorruptRef(k));
        out.emplace_back(std::string(k), std::move(*d));
        return Ok();
      }));
  return out;
}

Status Store::PutBlob(const Digest& digest, std::string_view bytes) {
  if (digest.empty()) return Fail(EINVAL, "blob: empty digest");
  if (Digest::Of(bytes) != digest) {
    return Fail(EINVAL, "blob " + digest.str() + ": content has digest " + Digest::Of(bytes).str());
  }
  HOIST_RETURN_IF_ERROR(chunks_->WriteWithRoom(
      [&](LmdbEnv::WriteTxn& txn) { return txn.Put(Table::kBlobs, KeyOf(digest), bytes); }));
  return env_->Sync();
}

Status Store::DeleteCorruptBlob(const std::string& key) {
  return chunks_->WriteWithRoom([&](LmdbEnv::WriteTxn& txn) -> Status {
    HOIST_ASSIGN_OR_RETURN(auto v, txn.Get(Table::kBlobs, key));
    HOIST_ASSIGN_OR_RETURN(Digest d, DigestOfKey(key, "blobs"));
    if (v && Digest::Of(*v) != d) HOIST_RETURN_IF_ERROR(txn.Del(Table::kBlobs, key));
    return Ok();
  });
}

Result<std::optional<std::string>> Store::GetBlob(const Digest& digest) {
  if (digest.empty()) return Fail(EINVAL, "blob: empty digest");
  std::string key = KeyOf(digest);
  std::string bytes;
  {
    HOIST_ASSIGN_OR_RETURN(LmdbEnv::ReadTxn txn, env_->BeginRead());
    HOIST_ASSIGN_OR_RETURN(auto v, txn.Get(Table::kBlobs, key));
    if (!v) return std::optional<std::string>();
    bytes = std::string(*v);
  }
  if (Digest::Of(bytes) != digest) {
    HOIST_RETURN_IF_ERROR(DeleteCorruptBlob(key));
    return std::optional<std::string>();
  }
  return std::optional<std::string>(std::move(bytes));
}

Result<bool> Store::DeleteBlob(const Digest& digest) {
  if (digest.empty()) return Fail(EINVAL, "blob: empty digest");
  bool found = false;
  HOIST_RETURN_IF_ERROR(chunks_->WriteWithRoom([&](LmdbEnv::WriteTxn& txn) -> Status {
    HOIST_ASSIGN_OR_RETURN(found, txn.Del(Table::kBlobs, KeyOf(digest)));
    return Ok();
  }));
  return found;
}

Result<std::vector<Digest>> Store::ListBlobs() {
  std::vector<Digest> out;
  HOIST_RETURN_IF_ERROR(
      ForEach(*env_, Table::kBlobs, [&](std::string_view k, std::string_view) -> Status {
        HOIST_ASSIGN_OR_RETURN(Digest d, DigestOfKey(k, "blobs"));
        out.push_back(std::move(d));
        return Ok();
      }));
  return out;
}

Result<StoreStats> Store::Stats() {
  StoreStats s;
  HOIST_ASSIGN_OR_RETURN(s.chunks, chunks_->Stats());
  {
    HOIST_ASSIGN_OR_RETURN(LmdbEnv::ReadTxn txn, env_->BeginRead());
    MDB_stat st;
    mdb_stat(txn.get(), env_->dbi(Table::kLayers), &st);
    s.layer_indexes = st.ms_entries;
    mdb_stat(txn.get(), env_->dbi(Table::kRefs), &st);
    s.refs = st.ms_entries;
    mdb_stat(txn.get(), env_->dbi(Table::kBlobs), &st);
    s.blobs = st.ms_entries;
  }
  HOIST_ASSIGN_OR_RETURN(LmdbEnv::SpaceInfo space, env_->Space());
  s.file_bytes = space.used_bytes;
  s.map_size = space.map_size;
  s.stale_readers_cleared_at_open = env_->stale_readers_cleared_at_open();
  return s;
}

Result<int> Store::ClearStaleReaders() { return env_->ClearStaleReaders(); }

Status Store::Check(bool deep) {
  HOIST_RETURN_IF_ERROR(chunks_->Check(deep));
  HOIST_RETURN_IF_ERROR(
      ForEach(*env_, Table::kLayers, [&](std::string_view k, std::string_view v) -> Status {
        HOIST_ASSIGN_OR_RETURN(Digest d, DigestOfKey(k, "layers"));
        Result<LayerIndex> index = DecodeLayerIndex(v);
        if (!index) return Fail(index.error().Context("layer " + d.str()));
        if (index->layer_digest != d)
          return Fail(EIO, "layer " + d.str() + ": record describes another layer");
        return Ok();
      }));
  HOIST_RETURN_IF_ERROR(ListRefs());
  return ForEach(*env_, Table::kBlobs, [&](std::string_view k, std::string_view v) -> Status {
    HOIST_ASSIGN_OR_RETURN(Digest d, DigestOfKey(k, "blobs"));
    if (deep && Digest::Of(v) != d)
      return Fail(EIO, "blob " + d.str() + ": content does not match");
    return Ok();
  });
}

}  // namespace hoist
