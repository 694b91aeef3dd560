#include "fusefs/layer_store.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "base/fd_store.h"
#include "base/file_util.h"
#include "base/log.h"
#include "base/mountinfo.h"
#include "base/parallel.h"
#include "fetcher/mirror_resolver.h"
#include "fetcher/reference.h"
#include "fusefs/fuse_handoff.h"
#include "fusefs/layer_loader.h"
#include "fusefs/layer_path.h"
#include "fusefs/local_image.h"
#include "fusefs/mount.h"
#include "fusefs/published_indexes.h"
#include "fusefs/stream_layer.h"
#include "fusefs/zran_reader.h"

namespace hoist {

// Blob reads routed to the source of the image each layer came from.
class LayerStore::RoutingSource : public BlobSource {
 public:
  void Route(const Digest& blob, std::shared_ptr<BlobSource> source) {
    WriterLock lock(mu_);
    routes_.try_emplace(blob, std::move(source));
  }
  void Unroute(const Digest& blob) {
    WriterLock lock(mu_);
    routes_.erase(blob);
  }
  Result<std::string> ReadAt(const Digest& blob, uint64_t offset, uint64_t length) override {
    HOIST_ASSIGN_OR_RETURN(std::shared_ptr<BlobSource> source, Find(blob));
    return source->ReadAt(blob, offset, length);
  }
  Result<std::string> ReadAtRouted(const Digest& blob, uint64_t offset, uint64_t length,
                                   ReadRoute& route) override {
    HOIST_ASSIGN_OR_RETURN(std::shared_ptr<BlobSource> source, Find(blob));
    return source->ReadAtRouted(blob, offset, length, route);
  }
  std::vector<Result<std::string>> ReadRanges(const Digest& blob,
                                              std::span<const ByteRange> ranges) override {
    auto source = Find(blob);
    if (!source) return std::vector<Result<std::string>>(ranges.size(), Fail(source.error()));
    return (*source)->ReadRanges(blob, ranges);
  }
  Result<uint64_t> Size(const Digest& blob) override {
    HOIST_ASSIGN_OR_RETURN(std::shared_ptr<BlobSource> source, Find(blob));
    return source->Size(blob);
  }
  bool IsLocal(const Digest& blob) override {
    auto source = Find(blob);
    return source && (*source)->IsLocal(blob);
  }

 private:
  Result<std::shared_ptr<BlobSource>> Find(const Digest& blob) {
    ReaderLock lock(mu_);
    auto it = routes_.find(blob);
    if (it == routes_.end()) return Fail(EIO, "blob " + blob.str() + ": not a layer of the store");
    return it->second;
  }
  SharedMutex mu_;
  std::map<Digest, std::shared_ptr<BlobSource>> routes_ HOIST_GUARDED_BY(mu_);
};

struct LayerStore::Image {
  ResolvedImage image;
  std::shared_ptr<BlobSource> source;
  std::chrono::steady_clock::time_point resolved_at;
  // The image's published layer indexes (null: offline, or the image came from the local store).
  std::shared_ptr<PublishedIndexes> published;
};

LayerStore::Layer::~Layer() {
  if (prefetcher) prefetcher->Stop();
}

namespace {

constexpr uint64_t kViewInodeMask = (uint64_t{1} << kViewSlotShift) - 1;
constexpr size_t kMaxRememberedImages = 64;
constexpr unsigned kRootMode = 0755;
constexpr auto kInitWait = std::chrono::seconds(10);
constexpr size_t kMaxPreloadedNames = 4096;
constexpr size_t kPreloadParallelism = 4;
// The whole-layer prefetch (options.prefetch all) waits this long after the layer is added, and
// then before each request until on-demand fetches have been quiet for kWholeLayerPrefetchQuiet
// (at most kWholeLayerPrefetchYieldMax per request).
constexpr std::chrono::milliseconds kWholeLayerPrefetchDelay{2000};
constexpr std::chrono::milliseconds kWholeLayerPrefetchQuiet{1000};
constexpr std::chrono::milliseconds kWholeLayerPrefetchYieldMax{5000};

LayerStore& StoreOf(fuse_req_t req) { return *static_cast<LayerStore*>(fuse_req_userdata(req)); }

void ReplyError(fuse_req_t req, const Error& error) { fuse_reply_err(req, FuseErrno(error)); }

// The layer serving FUSE inode `ino` (not the root) and the request for its view; nullptr (and
// ESTALE replied) when the layer is gone.
std::shared_ptr<const LayerStore::Layer> Resolve(fuse_req_t req, fuse_ino_t ino, ViewRequest* v,
                                                 InodeNumber* view_ino) {
  LayerStore& store = StoreOf(req);
  auto layer = store.FindSlot(ino >> kViewSlotShift);
  if (layer == nullptr) {
    fuse_reply_err(req, ESTALE);
    return nullptr;
  }
  *v = ViewRequest{.view = &layer->view,
                   .slot = layer->slot,
                   .reader = store.reader(),
                   .failures = store.failures()};
  *view_ino = ino & kViewInodeMask;
  return layer;
}

struct stat RootAttr(const LayerStore& store) {
  struct stat st {};
  st.st_ino = kRootInode;
  st.st_mode = S_IFDIR | kRootMode;
  st.st_nlink = static_cast<nlink_t>(2 + store.layer_count());
  st.st_blksize = 4096;
  return st;
}

Result<fuse_entry_param> LayerRootEntry(const LayerStore::Layer& layer) {
  HOIST_ASSIGN_OR_RETURN(struct stat st, layer.view.GetAttr(kRootInode));
  fuse_entry_param e{};
  e.ino = (layer.slot << kViewSlotShift) | kRootInode;
  st.st_ino = e.ino;
  e.attr = st;
  // RemoveLayer invalidates the name, so it may be cached as long as any other entry.
  e.attr_timeout = kCacheSeconds;
  e.entry_timeout = kCacheSeconds;
  return e;
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  if (parent == kRootInode) {
    auto layer = StoreOf(req).FindName(name);
    if (layer == nullptr) return (void)fuse_reply_err(req, ENOENT);
    auto e = LayerRootEntry(*layer);
    if (!e) return ReplyError(req, e.error());
    return (void)fuse_reply_entry(req, &*e);
  }
  ViewRequest v;
  InodeNumber ino;
  if (auto layer = Resolve(req, parent, &v, &ino)) ViewLookup(req, v, ino, name);
}

void OpForget(fuse_req_t req, fuse_ino_t, uint64_t) { fuse_reply_none(req); }
void OpForgetMulti(fuse_req_t req, size_t, fuse_forget_data*) { fuse_reply_none(req); }

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  if (ino == kRootInode) {
    struct stat st = RootAttr(StoreOf(req));
    return (void)fuse_reply_attr(req, &st, 0);  // nlink changes with every layer
  }
  ViewRequest v;
  InodeNumber view_ino;
  if (auto layer = Resolve(req, ino, &v, &view_ino)) ViewGetattr(req, v, view_ino);
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  if (ino == kRootInode) return (void)fuse_reply_err(req, EINVAL);
  ViewRequest v;
  InodeNumber view_ino;
  if (auto layer = Resolve(req, ino, &v, &view_ino)) ViewReadlink(req, v, view_ino);
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (ino == kRootInode) return (void)fuse_reply_err(req, EISDIR);
  ViewRequest v;
  InodeNumber view_ino;
  if (auto layer = Resolve(req, ino, &v, &view_ino)) ViewOpen(req, v, view_ino, fi);
}

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  if (ino == kRootInode) return (void)fuse_reply_err(req, EISDIR);
  ViewRequest v;
  InodeNumber view_ino;
  // `layer` keeps the view (and its index) alive while the read runs.
  if (auto layer = Resolve(req, ino, &v, &view_ino)) ViewRead(req, v, view_ino, size, off);
}

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (ino == kRootInode) {
    fi->keep_cache = 0;  // layers come and go
    fi->cache_readdir = 0;
    fi->fh = 0;
    return (void)fuse_reply_open(req, fi);
  }
  ViewRequest v;
  InodeNumber view_ino;
  if (auto layer = Resolve(req, ino, &v, &view_ino)) ViewOpendir(req, v, view_ino, fi);
}

// The root's listing: "." (offset 0), ".." (1), then each layer in slot order, the entry of the
// layer in slot S carrying next offset S + 2, so a listing resumes correctly whatever was added
// or removed in between.
void RootReadDir(fuse_req_t req, size_t size, off_t off, bool plus) {
  if (off < 0) return (void)fuse_reply_err(req, EINVAL);
  LayerStore& store = StoreOf(req);
  std::vector<char> buf(size);
  size_t used = 0;
  auto add = [&](const char* name, const fuse_entry_param& e, off_t next) {
    size_t need = plus
                      ? fuse_add_direntry_plus(req, buf.data() + used, size - used, name, &e, next)
                      : fuse_add_direntry(req, buf.data() + used, size - used, name, &e.attr, next);
    if (need > size - used) return false;
    used += need;
    return true;
  };
  fuse_entry_param dot{};
  dot.attr.st_ino = kRootInode;
  dot.attr.st_mode = S_IFDIR;
  if (off < 1 && !add(".", dot, 1)) return (void)fuse_reply_buf(req, buf.data(), used);
  if (off < 2 && !add("..", dot, 2)) return (void)fuse_reply_buf(req, buf.data(), used);
  uint64_t after = off >= 2 ? static_cast<uint64_t>(off) - 2 : 0;
  while (true) {
    auto batch = store.ListAfter(after, 64);
    if (batch.empty()) break;
    for (const auto& layer : batch) {
      fuse_entry_param e{};
      if (plus) {
        auto entry = LayerRootEntry(*layer);
        if (!entry) return ReplyError(req, entry.error());
        e = *entry;
      } else {
        e.attr.st_ino = (layer->slot << kViewSlotShift) | kRootInode;
        e.attr.st_mode = S_IFDIR;
      }
      if (!add(layer->name.c_str(), e, static_cast<off_t>(layer->slot + 2)))
        return (void)fuse_reply_buf(req, buf.data(), used);
      after = layer->slot;
    }
  }
  fuse_reply_buf(req, buf.data(), used);
}

void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  if (ino == kRootInode) return RootReadDir(req, size, off, plus);
  ViewRequest v;
  InodeNumber view_ino;
  if (auto layer = Resolve(req, ino, &v, &view_ino)) ViewReadDir(req, v, view_ino, size, off, plus);
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  ReadDir(req, ino, size, off, false);
}
void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  ReadDir(req, ino, size, off, true);
}
void OpReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void OpStatfs(fuse_req_t req, fuse_ino_t ino) {
  if (ino != kRootInode) {
    if (auto layer = StoreOf(req).FindSlot(ino >> kViewSlotShift)) {
      struct statvfs st = layer->view.StatFs();
      return (void)fuse_reply_statfs(req, &st);
    }
  }
  struct statvfs st {};
  st.f_bsize = kStatfsBlockSize;
  st.f_frsize = kStatfsBlockSize;
  st.f_files = 1 + StoreOf(req).layer_count();
  st.f_namemax = kMaxNameLength;
  st.f_flag = ST_RDONLY;
  fuse_reply_statfs(req, &st);
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  if (ino == kRootInode) return (void)fuse_reply_err(req, ENODATA);
  ViewRequest v;
  InodeNumber view_ino;
  if (auto layer = Resolve(req, ino, &v, &view_ino)) ViewGetxattr(req, v, view_ino, name, size);
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  if (ino == kRootInode) return ReplyXattrValue(req, "", size);
  ViewRequest v;
  InodeNumber view_ino;
  if (auto layer = Resolve(req, ino, &v, &view_ino)) ViewListxattr(req, v, view_ino, size);
}

const fuse_lowlevel_ops& LayerStoreOps() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o{};
    SetReadOnlyOps(o);
    o.init = HoistFuseInit;
    o.lookup = OpLookup;
    o.forget = OpForget;
    o.forget_multi = OpForgetMulti;
    o.getattr = OpGetattr;
    o.readlink = OpReadlink;
    o.open = OpOpen;
    o.read = OpRead;
    o.release = OpRelease;
    o.opendir = OpOpendir;
    o.readdir = OpReaddir;
    o.readdirplus = OpReaddirplus;
    o.releasedir = OpReleasedir;
    o.statfs = OpStatfs;
    o.getxattr = OpGetxattr;
    o.listxattr = OpListxattr;
    return o;
  }();
  return ops;
}

// The FUSE connection number of the mount at `mountpoint` (the minor of its device), "" if the
// mount table does not show it.
std::string ConnectionOf(const std::string& mountpoint) {
  auto table = ReadMountInfo();
  if (!table) return "";
  std::string dev;
  for (const MountInfoEntry& e : *table) {
    if (e.mount_point == mountpoint) dev = e.dev;  // the last one is on top
  }
  const size_t colon = dev.find(':');
  return colon == std::string::npos ? "" : dev.substr(colon + 1);
}

}  // namespace

bool HandedOverConnectionIsDead(int fuse_fd) {
  pollfd p{fuse_fd, 0, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLNVAL)) != 0;
}

LayerStore::LayerStore(MountOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<LayerStore>> LayerStore::Start(const MountOptions& options,
                                                      LayerStoreHandoff* handoff) {
  std::unique_ptr<LayerStore> store(new LayerStore(options));
  if (Status s = store->Build(handoff); !s) {
    store->Teardown();
    return Fail(s.error());
  }
  return store;
}

Status LayerStore::Build(LayerStoreHandoff* handoff) {
  const MountOptions& o = options_;
  takeover_ = handoff != nullptr;
  if (takeover_) {
    // The connection is live and served by nobody until this process serves it: the mountpoint
    // is never touched; the state names it.
    HOIST_ASSIGN_OR_RETURN(handoff_state_, ReadHandoffMemfd(handoff->state_fd.get()));
    HOIST_ASSIGN_OR_RETURN(std::string asked, CanonicalMountpointNoFollow(o.mountpoint));
    if (asked != handoff_state_.mountpoint) {
      return Fail(EINVAL, "the handed-over connection is the layer store at " +
                              handoff_state_.mountpoint + ", not " + asked);
    }
    mountpoint_ = handoff_state_.mountpoint;
    previous_pid_ = handoff->previous_pid;
    auto slots = SlotLog::Adopt(std::move(handoff->slots_fd));
    if (!slots) return Fail(slots.error().Context("the handed-over layer slot log"));
    slots_ = std::move(*slots);
  } else {
    HOIST_ASSIGN_OR_RETURN(mountpoint_, CheckMountpoint(o.mountpoint));
    HOIST_ASSIGN_OR_RETURN(slots_, SlotLog::Create());
    handoff_state_.mountpoint = mountpoint_;
  }

  RegistryOptions ro;
  ro.insecure_registries = o.insecure_registries;
  HOIST_RETURN_IF_ERROR(UseMirrors(&ro, o.hosts_dir, o.registries_conf,
                                   std::chrono::milliseconds(o.mirror_connect_timeout_ms)));
  if (!o.platform.empty()) {
    HOIST_ASSIGN_OR_RETURN(ro.platform, Platform::Parse(o.platform));
  }
  ro.request_timeout = o.timeout;
  ro.retry.total_budget = o.timeout;
  HOIST_ASSIGN_OR_RETURN(client_, RegistryClient::CreateDefault(ro));

  HOIST_ASSIGN_OR_RETURN(std::string cache_dir, ResolveCacheDir(o.cache_dir));
  StoreOptions so;
  if (o.cache_size > 0) so.cache.quota_bytes = o.cache_size;
  {
    auto store = Store::Open(cache_dir, so);
    if (!store) return Fail(store.error().Context("opening the cache " + cache_dir));
    store_ = std::move(*store);
  }
  metrics_ =
      std::make_unique<MountMetrics>(&stats_, &store_->chunks(), so.cache.quota_bytes,
                                     [this] { return static_cast<uint64_t>(layer_count()); });

  source_ = std::make_unique<RoutingSource>();
  // Unconverted tar+gzip / tar+zstd layers are read by span through their checkpoint index
  // (ZranReader); a file it does not serve (over 64 MiB) falls back to the layer's full fetch,
  // whose decompressed copy lives under CACHE/tmp within cache_size, as for a mount.
  const std::string stream_dir = cache_dir + "/tmp";
  HOIST_RETURN_IF_ERROR(MakeDirs(stream_dir, 0700));
  stream_space_ = std::make_unique<ByteBudget>(so.cache.quota_bytes);
  StreamLayerOptions stream_options;
  stream_options.temp_dir = stream_dir;
  stream_options.space = stream_space_.get();
  zran_ = std::make_unique<ZranReader>(source_.get(), &store_->chunks(), &stats_);
  streams_ = std::make_unique<StreamLayers>(source_.get(), &stats_, stream_options, zran_.get());
  ChunkReaderOptions reader_options;
  reader_options.timeout = o.timeout;
  reader_ = std::make_unique<ChunkReader>(source_.get(), &store_->chunks(), &stats_, reader_options,
                                          streams_.get());

  MountOptions fuse_options = o;
  fuse_options.image = "layers";
  std::vector<std::string> args = {"hoistfs", "-o", FuseMountOptionString(fuse_options)};
  if (o.fuse_debug) args.push_back("-d");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  session_ = fuse_session_new(&fargs, &LayerStoreOps(), sizeof(fuse_lowlevel_ops), this);
  fuse_opt_free_args(&fargs);
  if (session_ == nullptr) return Fail(EINVAL, "fuse_session_new failed (bad FUSE options)");
  const std::string state_dir = o.state_dir.empty() ? DefaultStateDir() : o.state_dir;
  if (takeover_) {
    fuse_fd_ = handoff->fuse_fd.Release();
    if (Status s = TakeOverConnection(session_, fuse_fd_, handoff_state_.init); !s) {
      fuse_fd_ = -1;
      return s;
    }
    // Ours to unmount at a stop (once serving), like a mount this process made.
    mounted_ = true;
    kept_ = true;
    connection_ = ConnectionOf(mountpoint_);
    stats_writer_ = std::make_unique<StatsFileWriter>(
        &stats_, StateFileForCanonicalMountpoint(mountpoint_, state_dir), mountpoint_, "layers",
        o.stats_interval);
    HOIST_LOG(kInfo) << "layer store at " << mountpoint_ << ": took the FUSE connection over ("
                     << slots_->record_count() << " layer slots on record)";
    return Ok();
  }
  HOIST_ASSIGN_OR_RETURN(mountpoint_, CheckMountpoint(o.mountpoint));
  if (fuse_session_mount(session_, mountpoint_.c_str()) != 0)
    return Fail(EIO, "mounting on " + mountpoint_ + " failed (is /dev/fuse available?)");
  mounted_ = true;
  connection_ = ConnectionOf(mountpoint_);
  fuse_fd_ = fuse_session_fd(session_);
  HOIST_RETURN_IF_ERROR(ConnectionIo::Install(session_, fuse_fd_, [this](std::string_view init) {
    MutexLock lock(init_mu_);
    handoff_state_.init.assign(init);
    init_recorded_ = true;
    init_cv_.NotifyAll();
  }));
  StartLoop();
  stats_writer_ = std::make_unique<StatsFileWriter>(
      &stats_, StateFileForCanonicalMountpoint(mountpoint_, state_dir), mountpoint_, "layers",
      o.stats_interval);
  HOIST_LOG(kInfo) << "layer store mounted at " << mountpoint_;
  KeepConnection();
  return Ok();
}

void LayerStore::KeepConnection() {
  {
    const auto deadline = std::chrono::steady_clock::now() + kInitWait;
    MutexLock lock(init_mu_);
    while (!init_recorded_) {
      if (!init_cv_.WaitUntil(init_mu_, deadline) && !init_recorded_) {
        HOIST_LOG(kWarning) << "layer store " << mountpoint_
                            << ": no FUSE INIT within 10 s; the store will not survive its process";
        return;
      }
    }
  }
  if (!FdStoreAvailable()) return;
  HandoffState state;
  {
    MutexLock lock(init_mu_);
    state = handoff_state_;
  }
  auto memfd = WriteHandoffMemfd(state);
  Status s = Ok();
  if (!memfd) s = Fail(memfd.error());
  if (s) {
    // The state and the slots first: a store holding a connection always has both.
    const int state_fds[] = {memfd->get()};
    const int slot_fds[] = {slots_->fd()};
    const int fuse_fds[] = {fuse_fd_};
    s = StoreFds(kLayersStateFdName, state_fds);
    if (s) s = StoreFds(kLayersSlotsFdName, slot_fds);
    if (s) s = StoreFds(kLayersFuseFdName, fuse_fds);
  }
  if (!s) {
    HOIST_LOG(kWarning) << "layer store " << mountpoint_
                        << ": will not survive its process: " << s.error().message();
    return;
  }
  kept_ = true;
  HOIST_LOG(kInfo) << "layer store " << mountpoint_
                   << ": the FUSE connection is kept in the fd store";
}

Status LayerStore::Serve() {
  if (session_ == nullptr) return Fail(EINVAL, "the layer store is not set up");
  if (!takeover_ || loop_.joinable()) return Ok();
  StartLoop();
  // Requests the previous process read and never answered are queued again once it is gone.
  resend_thread_ =
      std::thread([this] { ResendAfterExit(previous_pid_, fuse_fd_, "the layer store"); });
  HOIST_LOG(kInfo) << "layer store at " << mountpoint_ << ": serving the taken-over connection, "
                   << layer_count() << " layers";
  return Ok();
}

void LayerStore::StartLoop() {
  loop_ = std::thread([this] {
    fuse_loop_config* config = fuse_loop_cfg_create();
    if (config != nullptr) {
      fuse_loop_cfg_set_clone_fd(config, 0);
      fuse_loop_cfg_set_max_threads(config, options_.max_threads);
      fuse_loop_cfg_set_idle_threads(config, 8);
      const int rc = fuse_session_loop_mt(session_, config);
      fuse_loop_cfg_destroy(config);
      HOIST_LOG(kInfo) << "layer store " << mountpoint_ << ": FUSE loop ended (" << rc << ")";
    } else {
      HOIST_LOG(kError) << "layer store " << mountpoint_ << ": fuse_loop_cfg_create failed";
    }
    MutexLock lock(loop_mu_);
    loop_done_ = true;
  });
}

void LayerStore::Teardown() {
  metrics_.reset();  // first: a scrape reads the stats and the store
  {
    // Preloads use the client and the host store: let them finish (each stops at its next layer).
    MutexLock lock(preload_mu_);
    stopping_ = true;
    while (preloads_running_ > 0) preload_cv_.Wait(preload_mu_);
  }
  bool loop_running = false;
  {
    MutexLock lock(loop_mu_);
    loop_running = loop_.joinable() && !loop_done_;
  }
  // A loop that ended saw its connection go (ENODEV): nothing is ours to unmount or abort any
  // more, and the connection's number may already belong to another mount.
  if (mounted_ && loop_running) {
    if (connection_.empty()) {
      // The mount table did not show our connection: libfuse's own unmount (which checks the
      // connection first).
      fuse_session_unmount(session_);
    } else {
      // Only our own mount is unmounted: after an unmount from outside, something else may
      // already be mounted on the same path. MNT_FORCE first: FUSE aborts the connection on a
      // forced unmount (umount_begin) even when the unmount itself then fails because an
      // overlay still stacks a layer; every request then fails and the loop ends. Then
      // MNT_DETACH takes it out of the namespace whatever holds it.
      if (ConnectionOf(mountpoint_) == connection_ &&
          ::umount2(mountpoint_.c_str(), MNT_FORCE) != 0 &&
          ::umount2(mountpoint_.c_str(), MNT_DETACH) != 0) {
        HOIST_LOG(kWarning) << "layer store: umount " << mountpoint_ << ": "
                            << std::strerror(errno);
      }
      // Unmounted from outside while something (an overlay) still holds the superblock: only
      // the fusectl abort file can end the connection (if fusectl is mounted; it is gone
      // already when the superblock went).
      int fd = ::open(("/sys/fs/fuse/connections/" + connection_ + "/abort").c_str(),
                      O_WRONLY | O_CLOEXEC);
      if (fd >= 0) {
        (void)!::write(fd, "1", 1);
        ::close(fd);
      }
    }
  }
  mounted_ = false;
  if (loop_.joinable()) loop_.join();
  if (resend_thread_.joinable()) resend_thread_.join();
  if (session_ != nullptr) {
    if (fuse_fd_ >= 0) ConnectionIo::Uninstall(fuse_fd_);
    // The loop ended because the connection went, so this only closes the device and frees the
    // session's copy of the mountpoint (libfuse sees POLLERR and unmounts nothing).
    fuse_session_unmount(session_);
    fuse_session_destroy(session_);
    session_ = nullptr;
  }
  {
    WriterLock lock(mu_);
    by_name_.clear();
    by_slot_.clear();  // stops the prefetchers, before the reader goes
  }
  stats_writer_.reset();  // final state-file write
  reader_.reset();
  streams_.reset();
  zran_.reset();
  stream_space_.reset();
  source_.reset();
  store_.reset();
  {
    MutexLock lock(images_mu_);
    images_.clear();
  }
  client_.reset();
}

LayerStore::~LayerStore() { Teardown(); }

bool LayerStore::Serving() const {
  MutexLock lock(loop_mu_);
  return loop_.joinable() && !loop_done_;
}

bool LayerStore::WaitPrefetched(const Digest& layer_digest,
                                std::chrono::milliseconds timeout) const {
  auto layer = FindName(layer_digest.hex());
  if (layer == nullptr || layer->prefetcher == nullptr) return false;
  return layer->prefetcher->WaitDone(timeout);
}

std::string LayerStore::LayerPath(const Digest& layer_digest) const {
  return mountpoint_ + "/" + layer_digest.hex();
}

size_t LayerStore::layer_count() const {
  ReaderLock lock(mu_);
  return by_slot_.size();
}

std::shared_ptr<const LayerStore::Layer> LayerStore::FindSlot(uint64_t slot) const {
  ReaderLock lock(mu_);
  auto it = by_slot_.find(slot);
  return it == by_slot_.end() ? nullptr : it->second;
}

std::shared_ptr<const LayerStore::Layer> LayerStore::FindName(std::string_view name) const {
  ReaderLock lock(mu_);
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const LayerStore::Layer>> LayerStore::ListAfter(uint64_t after,
                                                                            size_t max) const {
  std::vector<std::shared_ptr<const Layer>> out;
  ReaderLock lock(mu_);
  for (auto it = by_slot_.upper_bound(after); it != by_slot_.end() && out.size() < max; ++it)
    out.push_back(it->second);
  return out;
}

Result<std::shared_ptr<const LayerStore::Image>> LayerStore::ResolveImage(
    std::string_view image_ref, const Digest& manifest_digest, bool fresh) {
  auto parsed = Reference::Parse(image_ref);
  if (!parsed) return Fail(parsed.error().Context("image reference"));
  Reference ref = *parsed;
  if (!manifest_digest.empty()) ref = ref.WithDigest(manifest_digest);
  const bool pinned = !ref.digest.empty();
  const std::string key = ref.String();
  const auto now = std::chrono::steady_clock::now();
  if (!fresh) {
    MutexLock lock(images_mu_);
    if (auto it = images_.find(key);
        it != images_.end() && (pinned || now - it->second->resolved_at < options_.tag_reuse)) {
      return it->second;
    }
  }
  HOIST_ASSIGN_OR_RETURN(MountImage resolved,
                         ResolveMountImage(*client_, ref, options_, store_.get()));
  if (!resolved.warning.empty()) {
    HOIST_LOG(kWarning) << key << ": " << resolved.warning;
  }
  auto image = std::make_shared<Image>();
  image->image = std::move(resolved.image);
  image->source = std::move(resolved.source);
  image->resolved_at = now;
  if (!options_.offline && !resolved.from_local_store) {
    image->published = std::make_shared<PublishedIndexes>(client_.get(), image->image.reference,
                                                          image->image.manifest_bytes.digest);
  }
  {
    MutexLock lock(images_mu_);
    if (images_.size() >= kMaxRememberedImages) images_.clear();
    images_.insert_or_assign(key, image);
  }
  return std::shared_ptr<const Image>(std::move(image));
}

Result<std::shared_ptr<const LayerStore::Image>> LayerStore::RecordedImage(
    const SlotRecord& record) {
  auto ref = Reference::Parse(record.reference);
  if (!ref) return Fail(ref.error().Context("the recorded image of " + record.layer.str()));
  HandoffState state;
  state.reference = record.reference;
  state.manifest_media_type = record.manifest_media_type;
  state.manifest = record.manifest;
  HOIST_ASSIGN_OR_RETURN(MountImage resolved, HandedOverImage(*client_, *ref, state, options_));
  auto image = std::make_shared<Image>();
  image->image = std::move(resolved.image);
  image->source = std::move(resolved.source);
  image->resolved_at = std::chrono::steady_clock::now();
  if (!options_.offline && !resolved.from_local_store) {
    image->published = std::make_shared<PublishedIndexes>(client_.get(), image->image.reference,
                                                          image->image.manifest_bytes.digest);
  }
  return std::shared_ptr<const Image>(std::move(image));
}

Result<std::shared_ptr<LayerStore::Layer>> LayerStore::Load(std::string_view image_ref,
                                                            const Digest& layer_digest,
                                                            const Digest& manifest_digest) {
  using Clock = std::chrono::steady_clock;
  const auto ms = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
  };
  const Clock::time_point t0 = Clock::now();
  // A layer this connection served before (this process or the one it took over from) comes
  // from the image recorded with its slot: no registry request, and the same blobs as before.
  std::optional<SlotRecord> recorded = slots_->Find(layer_digest);
  std::shared_ptr<const Image> image;
  if (recorded && !recorded->manifest.empty()) {
    HOIST_ASSIGN_OR_RETURN(image, RecordedImage(*recorded));
  } else {
    HOIST_ASSIGN_OR_RETURN(image, ResolveImage(image_ref, manifest_digest, /*fresh=*/false));
  }
  auto find_layer = [&] {
    const std::vector<Descriptor>& layers = image->image.manifest.layers;
    return std::find_if(layers.begin(), layers.end(),
                        [&](const Descriptor& d) { return d.digest == layer_digest; });
  };
  auto it = find_layer();
  if (it == image->image.manifest.layers.end() && manifest_digest.empty() && !recorded) {
    // A tag reused from an earlier resolution may have moved since: ask the registry again.
    HOIST_ASSIGN_OR_RETURN(image, ResolveImage(image_ref, manifest_digest, /*fresh=*/true));
    it = find_layer();
  }
  if (it == image->image.manifest.layers.end()) {
    return Fail(ENOENT, "image " + std::string(image_ref) + " has no layer " + layer_digest.str());
  }
  std::optional<LayerIndex> published;
  HOIST_RETURN_IF_ERROR(Admit(*it, *image, &published));
  const Clock::time_point t_resolved = Clock::now();
  LayerLoaderOptions loader_options;
  if (published) {
    loader_options.published = [&published](const Descriptor&, LayerFormat) {
      return std::exchange(published, std::nullopt);
    };
  }
  HOIST_ASSIGN_OR_RETURN(LoadedLayers loaded, LoadLayers(*image->source, store_.get(),
                                                         std::span(&*it, 1), loader_options));
  const Clock::time_point t_indexed = Clock::now();
  std::shared_ptr<const LayerIndex> index = loaded.layers.at(0);
  if (IsStreamFormat(index->format) && !zran_->HasIndex(*index)) {
    return Fail(ENOTSUP, "layer " + layer_digest.str() +
                             ": unconverted, and its index has no usable checkpoint index (one "
                             "zstd frame, or built by an older hoist): it can only be read whole");
  }
  auto view = MergedView::BuildLayer(index);
  if (!view) return Fail(view.error());
  auto layer = std::make_shared<Layer>(std::move(*view));
  layer->digest = layer_digest;
  layer->name = layer_digest.hex();
  layer->index = index;
  // The slot is on record before the layer is published (AddLayer), so a process taking the
  // connection over knows every slot the kernel may have seen.
  SlotRecord record{.layer = layer_digest,
                    .reference = image->image.reference.String(),
                    .manifest_media_type = image->image.manifest_bytes.media_type,
                    .manifest = image->image.manifest_bytes.bytes};
  auto slot = slots_->Assign(record);
  if (!slot) return Fail(slot.error().Context("layer " + layer_digest.str()));
  layer->slot = *slot;
  source_->Route(layer_digest, image->source);
  // A published index's external windows are read from their own blob, in the same repository.
  if (Digest windows = zran_->WindowsBlob(*index); !windows.empty())
    source_->Route(windows, image->source);
  if (options_.prefetch != PrefetchMode::kNone) {
    PrefetcherOptions po;
    po.mode = options_.prefetch;
    po.bandwidth_bytes_per_sec = options_.bandwidth_bytes_per_sec;
    // A container usually starts right after its pull: its reads go first (docs/BENCHMARKS.md,
    // "Where hoist's pull-to-output time goes").
    po.start_delay = kWholeLayerPrefetchDelay;
    po.yield_quiet = kWholeLayerPrefetchQuiet;
    po.yield_max = kWholeLayerPrefetchYieldMax;
    layer->prefetcher = std::make_unique<Prefetcher>(
        reader_.get(), std::vector<std::shared_ptr<const LayerIndex>>{index}, po);
    layer->prefetcher->Start();
  }
  HOIST_LOG(kInfo) << "layer " << layer_digest.str() << " of " << image_ref << ": index from "
                   << LayerOriginName(loaded.origins.at(0)) << ", " << layer->view.inode_count()
                   << " inodes (image " << ms(t0, t_resolved) << " ms, index "
                   << ms(t_resolved, t_indexed) << " ms, view " << ms(t_indexed, Clock::now())
                   << " ms)";
  return layer;
}

Status LayerStore::Admit(const Descriptor& layer, const Image& image,
                         std::optional<LayerIndex>* published) {
  Status lazy = CheckLazyLayer(layer);
  if (lazy || lazy.error().code() != ENOTSUP) return lazy;
  // Unconverted: lazy through its checkpoint index, when the host store has the layer's index.
  auto format = StreamFormatForMediaType(layer.media_type);
  if (!format || (*format != LayerFormat::kTarGzip && *format != LayerFormat::kTarZstd)) {
    return lazy;
  }
  auto stored = store_->HasLayerIndex(layer.digest);
  if (stored && *stored) return Ok();
  if (image.published != nullptr) {
    *published = image.published->Get(layer, *format);
    if (*published) return Ok();
  }
  return Fail(ENOTSUP, lazy.error().message() +
                           "; the host store has no checkpoint index of it and none is published "
                           "next to the image (a hoistfs mount or `hoist pull` of the image "
                           "builds one; `hoist index` publishes one)");
}

Result<std::string> LayerStore::AddLayer(std::string_view image_ref, const Digest& layer_digest,
                                         const Digest& manifest_digest) {
  if (layer_digest.empty()) return Fail(EINVAL, "AddLayer: no layer digest");
  const std::string name = layer_digest.hex();
  const std::string path = LayerPath(layer_digest);
  {
    WriterLock lock(mu_);
    while (true) {
      if (auto it = by_name_.find(name); it != by_name_.end()) {
        ++it->second->refs;
        return path;
      }
      if (!loading_.contains(name)) break;
      loaded_cv_.Wait(mu_);
    }
    loading_.insert(name);
  }
  auto layer = Load(image_ref, layer_digest, manifest_digest);
  WriterLock lock(mu_);
  loading_.erase(name);
  loaded_cv_.NotifyAll();
  if (!layer) return Fail(layer.error());
  (*layer)->refs = 1;
  by_slot_.emplace((*layer)->slot, *layer);
  by_name_.emplace(name, *layer);
  return path;
}

Result<std::vector<std::string>> LayerStore::AddImage(std::string_view image_ref) {
  HOIST_ASSIGN_OR_RETURN(std::shared_ptr<const Image> image,
                         ResolveImage(image_ref, Digest(), /*fresh=*/true));
  const Digest pinned = image->image.manifest_bytes.digest;
  std::vector<std::string> dirs;
  std::vector<Digest> added;
  for (const Descriptor& d : image->image.manifest.layers) {
    auto dir = AddLayer(image_ref, d.digest, pinned);
    if (!dir) {
      for (const Digest& a : added) (void)RemoveLayer(a);
      return Fail(dir.error());
    }
    added.push_back(d.digest);
    dirs.push_back(*dir);
  }
  return dirs;
}

void LayerStore::Preload(std::string_view image_ref, const std::vector<Digest>& layer_digests,
                         const Digest& manifest_digest) {
  std::vector<Digest> wanted;
  std::set<std::string> stored;  // indexes the host store has: their AddLayer reads them anyway
  for (const Digest& d : layer_digests) {
    if (auto has = d.empty() ? Result<bool>(false) : store_->HasLayerIndex(d); has && *has) {
      stored.insert(d.hex());
    }
  }
  {
    WriterLock lock(mu_);
    if (preloaded_.size() > kMaxPreloadedNames) preloaded_.clear();
    for (const Digest& d : layer_digests) {
      const std::string name = d.hex();
      if (d.empty() || stored.contains(name) || by_name_.contains(name) ||
          loading_.contains(name) || !preloaded_.insert(name).second) {
        continue;
      }
      loading_.insert(name);
      wanted.push_back(d);
    }
  }
  if (wanted.empty()) return;
  {
    MutexLock lock(preload_mu_);
    ++preloads_running_;
  }
  std::thread([this, ref = std::string(image_ref), wanted, manifest_digest] {
    // Every name in `wanted` leaves loading_ once its own index is stored (or failed).
    auto done = [this](const Digest& d) {
      WriterLock lock(mu_);
      loading_.erase(d.hex());
      loaded_cv_.NotifyAll();
    };
    // In this thread, beside the caller's own resolution for its AddLayer (a second manifest and
    // config GET when the image is not remembered yet): resolving first and then returning would
    // make a caller wait twice as long when the registry does not answer.
    auto image = ResolveImage(ref, manifest_digest, /*fresh=*/false);
    (void)ParallelFor(wanted.size(), kPreloadParallelism, [&](size_t i) -> Status {
      const Digest& d = wanted[i];
      bool stopping;
      {
        MutexLock lock(preload_mu_);
        stopping = stopping_;
      }
      if (stopping || !image) {
        done(d);
        return Ok();
      }
      const std::vector<Descriptor>& layers = (*image)->image.manifest.layers;
      auto it = std::find_if(layers.begin(), layers.end(),
                             [&](const Descriptor& l) { return l.digest == d; });
      std::optional<LayerIndex> published;
      Status s = it == layers.end() ? Status(Fail(ENOENT, "not a layer of " + ref))
                                    : Admit(*it, **image, &published);
      if (s) {
        LayerLoaderOptions o;
        if (published) {
          o.published = [&published](const Descriptor&, LayerFormat) {
            return std::exchange(published, std::nullopt);
          };
        }
        auto loaded = LoadLayers(*(*image)->source, store_.get(), std::span(&*it, 1), o);
        if (!loaded) s = Fail(loaded.error());
      }
      if (!s) {
        HOIST_LOG(kDebug) << "preload of layer " << d.str() << ": " << s.error().message();
      }
      done(d);
      return Ok();
    });
    MutexLock lock(preload_mu_);
    --preloads_running_;
    preload_cv_.NotifyAll();
  }).detach();
}

bool LayerStore::WaitPreloads(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  MutexLock lock(preload_mu_);
  while (preloads_running_ > 0) {
    if (!preload_cv_.WaitUntil(preload_mu_, deadline)) return preloads_running_ == 0;
  }
  return true;
}

Status LayerStore::RemoveLayer(const Digest& layer_digest) {
  const std::string name = layer_digest.hex();
  std::shared_ptr<Layer> gone;
  {
    WriterLock lock(mu_);
    auto it = by_name_.find(name);
    if (it == by_name_.end())
      return Fail(ENOENT, "RemoveLayer: layer " + layer_digest.str() + " is not in the store");
    if (--it->second->refs > 0) return Ok();
    gone = it->second;
    by_slot_.erase(gone->slot);
    by_name_.erase(it);
  }
  if (gone->prefetcher) gone->prefetcher->Stop();
  if (Digest windows = zran_->WindowsBlob(*gone->index); !windows.empty())
    source_->Unroute(windows);
  zran_->Forget(layer_digest);
  source_->Unroute(layer_digest);
  if (session_ != nullptr) {
    // The kernel may have the name cached for a day; ENOENT here means it had not.
    (void)fuse_lowlevel_notify_inval_entry(session_, kRootInode, name.data(), name.size());
  }
  HOIST_LOG(kInfo) << "layer " << layer_digest.str() << " removed from the store";
  return Ok();
}

}  // namespace hoist
