#include "tools/snapshotter/snapshotter.h"

#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <set>

#include "base/file_util.h"
#include "base/log.h"
#include "tools/snapshotter/filter.h"

namespace hoist {
namespace {

constexpr char kRemoteLabelValue[] = "remote snapshot";

// DiskUsage's accumulator (nftw has no user pointer; one walk per thread at a time).
struct DuState {
  std::set<std::pair<dev_t, ino_t>> inodes;
  int64_t size = 0;
};
thread_local DuState* tls_du = nullptr;

int DuVisit(const char*, const struct stat* st, int type, struct FTW*) {
  if (type == FTW_NS) return 0;  // vanished while walking: nothing to count
  if (tls_du->inodes.emplace(st->st_dev, st->st_ino).second) tls_du->size += st->st_blocks * 512;
  return 0;
}

std::string DescribeLayer(const RemoteLayerRequest& req) {
  std::string d = "layer " + req.chain_id;
  const std::string digest = req.LayerDigest();
  if (!digest.empty()) d += " (" + digest + ")";
  return d;
}

std::optional<std::string> SnapshotField(const SnapshotInfo& info,
                                         const std::vector<std::string>& path) {
  if (path.empty()) return std::nullopt;
  const std::string& f = path[0];
  if (f == "kind") {
    if (info.kind == SnapshotKind::kUnknown) return std::nullopt;
    return std::string(SnapshotKindName(info.kind));
  }
  if (f == "name") return info.name;
  if (f == "parent") return info.parent;
  if (f == "labels") {
    if (info.labels.empty()) return std::nullopt;
    std::string key;
    for (size_t i = 1; i < path.size(); ++i) {
      if (i > 1) key += '.';
      key += path[i];
    }
    auto it = info.labels.find(key);
    if (it == info.labels.end()) return std::nullopt;
    return it->second;
  }
  return std::nullopt;
}

}  // namespace

std::string RemoteLayerRequest::ImageRef() const {
  for (const char* k : {kLabelCriImageRef, kLabelStargzReference}) {
    auto it = labels.find(k);
    if (it != labels.end() && !it->second.empty()) return it->second;
  }
  return "";
}

std::string RemoteLayerRequest::LayerDigest() const {
  for (const char* k : {kLabelCriLayerDigest, kLabelStargzDigest}) {
    auto it = labels.find(k);
    if (it != labels.end() && !it->second.empty()) return it->second;
  }
  return "";
}

Result<SnapshotUsage> DiskUsage(const std::string& path) {
  DuState state;
  tls_du = &state;
  const int rc = ::nftw(path.c_str(), DuVisit, 64, FTW_PHYS);
  const int err = errno;
  tls_du = nullptr;
  if (rc != 0) return Fail(ErrnoError("measuring the usage of " + path, err));
  return SnapshotUsage{.size = state.size, .inodes = static_cast<int64_t>(state.inodes.size())};
}

Result<std::unique_ptr<Snapshotter>> Snapshotter::Open(const SnapshotterOptions& options) {
  if (options.root.empty() || options.root[0] != '/') {
    return Fail(EINVAL,
                "the snapshotter root must be an absolute path, not '" + options.root + "'");
  }
  auto s = std::unique_ptr<Snapshotter>(new Snapshotter());
  s->root_ = options.root;
  while (s->root_.size() > 1 && s->root_.back() == '/') s->root_.pop_back();
  s->remote_ = options.remote;
  HOIST_RETURN_IF_ERROR(MakeDirs(s->root_, 0700));
  HOIST_RETURN_IF_ERROR(MakeDirs(s->root_ + "/snapshots", 0700));
  HOIST_ASSIGN_OR_RETURN(s->meta_, SnapshotMeta::Open(s->root_ + "/metadata"));
  struct stat st;
  s->index_off_ = ::stat("/sys/module/overlay/parameters/index", &st) == 0;

  // Restore the trees of remote snapshots.
  HOIST_ASSIGN_OR_RETURN(std::vector<SnapshotRecord> all, s->meta_->List());
  size_t remote = 0;
  for (const SnapshotRecord& r : all) {
    if (r.remote_path.empty()) continue;
    ++remote;
    if (!s->remote_) continue;
    RemoteLayerRequest req{
        .chain_id = r.info.name, .parent = r.info.parent, .labels = r.info.labels};
    Result<std::string> path = s->remote_->Resolve(req);
    if (!path) {
      HOIST_LOG(kWarning) << DescribeLayer(req)
                          << ": restoring the lazy tree failed: " << path.error().message();
      continue;
    }
    if (*path != r.remote_path) HOIST_RETURN_IF_ERROR(s->meta_->SetRemotePath(r.info.name, *path));
  }
  if (remote > 0 && !s->remote_) {
    HOIST_LOG(kWarning) << remote
                        << " remote snapshots are on record but no remote layer source is "
                           "configured; their mounts will fail";
  }
  if (s->remote_) HOIST_RETURN_IF_ERROR(s->remote_->Restored());
  return s;
}

Snapshotter::~Snapshotter() = default;

std::string Snapshotter::SnapshotDir(uint64_t id) const {
  return root_ + "/snapshots/" + std::to_string(id);
}

std::string Snapshotter::TreePath(const SnapshotRecord& r) const {
  if (!r.remote_path.empty()) return r.remote_path;
  return SnapshotDir(r.id) + "/fs";
}

bool Snapshotter::TryRemote(const std::string& key, const std::string& parent,
                            const SnapshotLabels& labels) {
  auto ref = labels.find(kLabelSnapshotRef);
  if (!remote_ || ref == labels.end() || ref->second.empty()) return false;
  RemoteLayerRequest req{.chain_id = ref->second, .parent = parent, .labels = labels};
  const auto t0 = std::chrono::steady_clock::now();
  Result<std::string> path = remote_->Resolve(req);
  const auto ms = [t0] {
    using std::chrono::milliseconds;
    return std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count();
  };
  if (!path) {
    HOIST_LOG(kInfo) << DescribeLayer(req)
                     << ": not lazy, containerd unpacks it: " << path.error().message();
    return false;
  }
  SnapshotLabels remote_labels = labels;
  remote_labels[kLabelRemote] = kRemoteLabelValue;
  MutexLock lock(mu_);
  Result<uint64_t> id = meta_->NewId();
  Result<SnapshotRecord> r =
      id ? meta_->CreateRemote(req.chain_id, parent, remote_labels, *path, *id)
         : Result<SnapshotRecord>(Fail(id.error()));
  if (r) {
    HOIST_LOG(kInfo) << DescribeLayer(req) << ": mounted lazily from " << *path << " (for " << key
                     << ") in " << ms() << " ms";
    return true;
  }
  if (r.error().code() == EEXIST) {
    // Served before: containerd looks it up by the chain ID label and the parent, so it answers
    // only for the same parent (another parent, e.g. from another namespace: the ordinary path).
    Result<SnapshotRecord> existing = meta_->Get(req.chain_id);
    if (existing && existing->info.parent == parent && !existing->remote_path.empty()) {
      HOIST_LOG(kInfo) << DescribeLayer(req) << ": already served lazily (for " << key << ")";
      return true;
    }
  }
  HOIST_LOG(kWarning) << DescribeLayer(req)
                      << ": recording the lazy snapshot failed, containerd unpacks it: "
                      << r.error().message();
  return false;
}

Result<std::vector<SnapshotMount>> Snapshotter::Prepare(const std::string& key,
                                                        const std::string& parent,
                                                        const SnapshotLabels& labels) {
  if (TryRemote(key, parent, labels)) {
    return Fail(EEXIST, "target snapshot " + labels.at(kLabelSnapshotRef) + ": already exists");
  }
  return Create(SnapshotKind::kActive, key, parent, labels);
}

Result<std::vector<SnapshotMount>> Snapshotter::View(const std::string& key,
                                                     const std::string& parent,
                                                     const SnapshotLabels& labels) {
  return Create(SnapshotKind::kView, key, parent, labels);
}

Result<std::vector<SnapshotMount>> Snapshotter::Create(SnapshotKind kind, const std::string& key,
                                                       const std::string& parent,
                                                       const SnapshotLabels& labels) {
  MutexLock lock(mu_);
  HOIST_ASSIGN_OR_RETURN(uint64_t id, meta_->NewId());
  std::string td = root_ + "/snapshots/new-XXXXXX";
  if (::mkdtemp(td.data()) == nullptr) {
    return Fail(ErrnoError("creating a temporary snapshot directory in " + root_));
  }
  const std::string dir = SnapshotDir(id);
  auto undo_dir = [&](const std::string& d) { (void)RemoveTree(d); };  // best effort
  if (::mkdir((td + "/fs").c_str(), 0755) != 0 ||
      (kind == SnapshotKind::kActive && ::mkdir((td + "/work").c_str(), 0711) != 0) ||
      ::rename(td.c_str(), dir.c_str()) != 0) {
    Error e = ErrnoError("preparing snapshot directory " + dir);
    undo_dir(td);
    return Fail(e);
  }
  Result<SnapshotRecord> r = meta_->Create(kind, key, parent, labels, id);
  if (!r) {
    undo_dir(dir);
    return Fail(r.error());
  }
  auto undo = [&](const Error& e) {
    (void)meta_->Remove(key);  // best effort: the record we just made, without children
    undo_dir(dir);
    return Fail(e);
  };
  Result<std::vector<SnapshotRecord>> ancestors = meta_->Ancestors(key);
  if (!ancestors) return undo(ancestors.error());
  if (!ancestors->empty()) {
    // The new tree's root takes the owner of the parent's tree (as containerd does).
    struct stat st;
    const std::string parent_tree = TreePath(ancestors->front());
    if (::stat(parent_tree.c_str(), &st) != 0)
      return undo(ErrnoError("stat of parent " + parent_tree));
    if (::lchown((dir + "/fs").c_str(), st.st_uid, st.st_gid) != 0) {
      return undo(ErrnoError("chown of " + dir + "/fs"));
    }
  }
  return MountsOf(*r);
}

Result<std::vector<SnapshotMount>> Snapshotter::MountsOf(const SnapshotRecord& r) {
  if (r.info.kind != SnapshotKind::kActive && r.info.kind != SnapshotKind::kView) {
    return Fail(EBUSY, "snapshot " + r.info.name + " is not active or view");
  }
  HOIST_ASSIGN_OR_RETURN(std::vector<SnapshotRecord> parents, meta_->Ancestors(r.info.name));
  const bool active = r.info.kind == SnapshotKind::kActive;
  if (parents.empty()) {
    return std::vector<SnapshotMount>{
        {.type = "bind", .source = TreePath(r), .options = {active ? "rw" : "ro", "rbind"}}};
  }
  if (!active && parents.size() == 1) {
    return std::vector<SnapshotMount>{
        {.type = "bind", .source = TreePath(parents[0]), .options = {"ro", "rbind"}}};
  }
  SnapshotMount m{.type = "overlay", .source = "overlay", .options = {}};
  if (index_off_) m.options.push_back("index=off");
  if (active) {
    m.options.push_back("workdir=" + SnapshotDir(r.id) + "/work");
    m.options.push_back("upperdir=" + SnapshotDir(r.id) + "/fs");
  }
  std::string lower = "lowerdir=";
  for (size_t i = 0; i < parents.size(); ++i) {
    if (i > 0) lower += ':';
    lower += TreePath(parents[i]);
  }
  m.options.push_back(std::move(lower));
  return std::vector<SnapshotMount>{std::move(m)};
}

Result<std::vector<SnapshotMount>> Snapshotter::Mounts(const std::string& key) {
  HOIST_ASSIGN_OR_RETURN(SnapshotRecord r, meta_->Get(key));
  return MountsOf(r);
}

Status Snapshotter::Commit(const std::string& name, const std::string& key,
                           const SnapshotLabels& labels) {
  MutexLock lock(mu_);
  HOIST_ASSIGN_OR_RETURN(SnapshotRecord r, meta_->Get(key));
  SnapshotUsage usage;
  if (r.info.kind == SnapshotKind::kActive) {
    HOIST_ASSIGN_OR_RETURN(usage, DiskUsage(TreePath(r)));
  }
  return meta_->Commit(key, name, labels, usage);
}

Status Snapshotter::Remove(const std::string& key) {
  MutexLock lock(mu_);
  HOIST_ASSIGN_OR_RETURN(SnapshotRecord r, meta_->Remove(key));
  if (!r.remote_path.empty() && remote_) remote_->Forget(r.info.name, r.remote_path);
  // As containerd's overlay snapshotter (synchronous removal): the record is gone, so a failure
  // to delete directories is only logged; Cleanup retries.
  if (Status s = CleanupLocked(); !s) {
    HOIST_LOG(kWarning) << "removing the directory of snapshot " << key
                        << " failed: " << s.error().message();
  }
  return Ok();
}

Result<SnapshotInfo> Snapshotter::Stat(const std::string& key) {
  HOIST_ASSIGN_OR_RETURN(SnapshotRecord r, meta_->Get(key));
  return r.info;
}

Result<SnapshotInfo> Snapshotter::Update(const SnapshotInfo& info,
                                         const std::vector<std::string>& field_paths) {
  return meta_->Update(info, field_paths);
}

Result<std::vector<SnapshotInfo>> Snapshotter::List(const std::vector<std::string>& filters) {
  HOIST_ASSIGN_OR_RETURN(Filter filter, Filter::ParseAll(filters));
  HOIST_ASSIGN_OR_RETURN(std::vector<SnapshotRecord> all, meta_->List());
  std::vector<SnapshotInfo> out;
  for (SnapshotRecord& r : all) {
    const SnapshotInfo& info = r.info;
    if (filter.Match(
            [&](const std::vector<std::string>& path) { return SnapshotField(info, path); })) {
      out.push_back(std::move(r.info));
    }
  }
  return out;
}

Result<SnapshotUsage> Snapshotter::Usage(const std::string& key) {
  HOIST_ASSIGN_OR_RETURN(SnapshotRecord r, meta_->Get(key));
  if (r.info.kind == SnapshotKind::kActive) return DiskUsage(TreePath(r));
  return r.usage;
}

Status Snapshotter::Cleanup() {
  MutexLock lock(mu_);
  return CleanupLocked();
}

Status Snapshotter::CleanupLocked() {
  HOIST_ASSIGN_OR_RETURN(std::vector<SnapshotRecord> all, meta_->List());
  std::set<std::string> ids;
  for (const SnapshotRecord& r : all) ids.insert(std::to_string(r.id));
  const std::string dir = root_ + "/snapshots";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return Fail(ErrnoError("opening " + dir));
  std::vector<std::string> doomed;
  while (struct dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == ".." || ids.count(name) > 0) continue;
    doomed.push_back(dir + "/" + name);
  }
  ::closedir(d);
  // As containerd's overlay snapshotter: a directory that cannot be removed is logged, not an
  // error (the next Cleanup tries again).
  for (const std::string& path : doomed) {
    if (Status s = RemoveTree(path); !s) {
      HOIST_LOG(kWarning) << "cleanup: removing " << path << " failed: " << s.error().message();
    }
  }
  return Ok();
}

}  // namespace hoist
