#include "fusefs/mount.h"

#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <sstream>
#include <vector>

#include "base/fd_store.h"
#include "base/file_util.h"
#include "base/log.h"
#include "base/mountinfo.h"
#include "base/spawn.h"
#include "base/thread_priority.h"
#include "fetcher/curl_transport.h"
#include "fetcher/mirror_resolver.h"
#include "fetcher/reference.h"
#include "fetcher/request_log.h"
#include "fusefs/fuse_handoff.h"
#include "fusefs/local_image.h"
#include "fusefs/published_indexes.h"

namespace hoist {
namespace {

// The layer loader's view of the mount's blobs: reads of the blobs in `counted` (unconverted
// layers, which indexing reads whole, and which the mount then serves from what it read) go to
// the mount's counters like the read path's; TOC reads do not.
class IndexingBlobSource : public BlobSource {
 public:
  IndexingBlobSource(BlobSource* inner, MountStats* stats, std::vector<Digest> counted)
      : inner_(inner), stats_(stats), counted_(std::move(counted)) {}

  Result<std::string> ReadAt(const Digest& blob, uint64_t offset, uint64_t length) override {
    ReadRoute route;
    return ReadAtRouted(blob, offset, length, route);
  }
  Result<std::string> ReadAtRouted(const Digest& blob, uint64_t offset, uint64_t length,
                                   ReadRoute& route) override {
    if (std::find(counted_.begin(), counted_.end(), blob) == counted_.end()) {
      return inner_->ReadAtRouted(blob, offset, length, route);
    }
    const BlobOrigin origin =
        inner_->IsLocal(blob) ? BlobOrigin::kLocalStore : BlobOrigin::kNetwork;
    const auto t0 = std::chrono::steady_clock::now();
    auto data = inner_->ReadAtRouted(blob, offset, length, route);
    stats_->RecordFetch(blob, origin, data ? data->size() : 0,
                        std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - t0),
                        /*prefetch=*/false);
    return data;
  }
  Result<uint64_t> Size(const Digest& blob) override { return inner_->Size(blob); }
  bool IsLocal(const Digest& blob) override { return inner_->IsLocal(blob); }

 private:
  BlobSource* inner_;
  MountStats* stats_;
  const std::vector<Digest> counted_;
};

Result<bool> IsMountPoint(const std::string& canonical) {
  HOIST_ASSIGN_OR_RETURN(std::vector<MountInfoEntry> table, ReadMountInfo());
  for (const MountInfoEntry& e : table) {
    if (e.mount_point == canonical) return true;
  }
  return false;
}

// Unmounts a mount this process took over (libfuse only unmounts what it mounted): lazily, as
// libfuse does for root, unless the connection is already gone (POLLERR: unmounted or aborted).
void UnmountTakenOver(const std::string& mountpoint, int fuse_fd) {
  pollfd p{fuse_fd, 0, 0};
  if (::poll(&p, 1, 0) == 1 && (p.revents & POLLERR)) return;
  if (::umount2(mountpoint.c_str(), MNT_DETACH) == 0) return;
  if (errno == EPERM) {
    SpawnOptions so;
    so.search_path = true;
    auto child = Spawn({"fusermount3", "-u", "-z", mountpoint}, so);
    if (child) {
      auto st = child->Wait();
      if (st && st->ShellCode() == 0) return;
    }
  }
  HOIST_LOG(kWarning) << "unmounting " << mountpoint << ": " << std::strerror(errno);
}

// The trace a previous daemon wrote when it handed this mount over, if any.
void SeedTrace(TraceRecorder& recorder, const std::string& path) {
  auto bytes = ReadFile(path);
  if (!bytes) return;
  auto trace = ParseAccessTrace(*bytes);
  Status s = trace ? recorder.Seed(*trace) : Status(Fail(trace.error()));
  if (!s) {
    HOIST_LOG(kWarning) << "not carrying on the trace " << path << ": " << s.error().message();
  }
}

std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) return "";
  return buf;
}

}  // namespace

Result<std::string> CheckMountpoint(const std::string& path) {
  if (path.empty()) return Fail(EINVAL, "mountpoint: empty path");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) return Fail(ENOENT, "mountpoint " + path + ": does not exist");
    if (err == ENOTCONN)
      return Fail(ENOTCONN, "mountpoint " + path +
                                ": a dead FUSE mount is still there (run hoist umount " + path +
                                ")");
    return Fail(ErrnoError("mountpoint " + path, err));
  }
  if (!S_ISDIR(st.st_mode)) return Fail(ENOTDIR, "mountpoint " + path + ": not a directory");
  std::string canonical = RealPath(path);
  if (canonical.empty()) return Fail(ErrnoError("mountpoint " + path + ": realpath"));
  HOIST_ASSIGN_OR_RETURN(bool busy, IsMountPoint(canonical));
  if (busy && IsDeadFuseMount(canonical))
    return Fail(ENOTCONN, "mountpoint " + path +
                              ": a dead FUSE mount is still there (run hoist umount " + path + ")");
  if (busy) return Fail(EBUSY, "mountpoint " + path + ": already a mount point (busy)");
  return canonical;
}

Result<bool> DetachDeadMounts(const std::string& path) {
  bool detached = false;
  for (int i = 0; i < 64; ++i) {
    // Not realpath: that would stat the dead mount itself.
    auto no_follow = CanonicalMountpointNoFollow(path);
    if (!no_follow) return detached;  // CheckMountpoint names the problem
    const std::string& canonical = *no_follow;
    HOIST_ASSIGN_OR_RETURN(bool busy, IsMountPoint(canonical));
    if (!busy || !IsDeadFuseMount(canonical)) return detached;
    if (::umount2(canonical.c_str(), MNT_DETACH) != 0)
      return Fail(ErrnoError("detaching the dead FUSE mount at " + path));
    detached = true;
  }
  return Fail(EBUSY, "mountpoint " + path + ": more than 64 dead mounts are stacked there");
}

Result<std::string> CanonicalMountpointNoFollow(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (p.empty()) return Fail(EINVAL, "empty mountpoint");
  const size_t slash = p.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : p.substr(0, slash));
  std::string base = slash == std::string::npos ? p : p.substr(slash + 1);
  if (base == "." || base == ".." || base.empty()) {
    std::string whole = RealPath(p);
    if (whole.empty()) return Fail(ErrnoError("realpath " + p));
    return whole;
  }
  std::string real_dir = RealPath(dir);
  if (real_dir.empty()) return Fail(ErrnoError("realpath " + dir));
  return real_dir == "/" ? "/" + base : real_dir + "/" + base;
}

Result<std::unique_ptr<Mount>> Mount::Create(const MountOptions& options, MountHandoff* handoff) {
  std::unique_ptr<Mount> m(new Mount(options));
  if (Status s = m->Build(handoff); !s) {
    m->Teardown();
    return Fail(s.error());
  }
  return m;
}

Status Mount::Build(MountHandoff* handoff) {
  const MountOptions& o = options_;
  takeover_ = handoff != nullptr;
  if (o.image.empty()) return Fail(EINVAL, "no image given");
  // Every thread started from here on (curl, LMDB writer, fetch pool, prefetcher, stats writer)
  // inherits a mask blocking the unmount signals, so they reach libfuse's threads (whose blocking
  // read or wait the signal interrupts) and the loop ends at once. Run() unblocks them.
  sigset_t unmount_signals;
  sigemptyset(&unmount_signals);
  sigaddset(&unmount_signals, SIGTERM);
  sigaddset(&unmount_signals, SIGINT);
  sigaddset(&unmount_signals, SIGHUP);
  sigaddset(&unmount_signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &unmount_signals, &saved_sigmask_);
  sigmask_saved_ = true;
  // The mountpoint is checked first (cheap), and again right before mounting. A taken-over
  // mount is live and served by nobody until this process serves it: it is never touched, and
  // the state names it.
  if (takeover_) {
    HOIST_ASSIGN_OR_RETURN(handoff_state_, ReadHandoffMemfd(handoff->state_fd.get()));
    HOIST_ASSIGN_OR_RETURN(std::string asked, CanonicalMountpointNoFollow(o.mountpoint));
    if (asked != handoff_state_.mountpoint)
      return Fail(EINVAL, "the handed-over connection is the mount at " +
                              handoff_state_.mountpoint + ", not " + asked);
    mountpoint_ = handoff_state_.mountpoint;
    previous_pid_ = handoff->previous_pid;
  } else {
    // A mount whose daemon, supervisor and reaper are gone: nothing can use it any more, so
    // this mount replaces it (and says so).
    HOIST_ASSIGN_OR_RETURN(bool detached, DetachDeadMounts(o.mountpoint));
    if (detached) notice_ = "detached a dead FUSE mount left at " + o.mountpoint;
    HOIST_ASSIGN_OR_RETURN(mountpoint_, CheckMountpoint(o.mountpoint));
  }
  // Phase timings for the "mount built" log line.
  const auto t0 = std::chrono::steady_clock::now();
  auto lap = [last = t0]() mutable {
    const auto now = std::chrono::steady_clock::now();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - last).count();
    last = now;
    return ms;
  };

  // 1. The registry client: every request bounded by the mount's read timeout.
  LogLevel level;
  if (!ParseLogLevel(o.log_level, &level))
    return Fail(EINVAL, "unknown log level \"" + o.log_level + "\"");
  SetLogLevel(level);
  RegistryOptions ro;
  ro.insecure_registries = o.insecure_registries;
  HOIST_RETURN_IF_ERROR(UseMirrors(&ro, o.hosts_dir, o.registries_conf,
                                   std::chrono::milliseconds(o.mirror_connect_timeout_ms)));
  if (!o.platform.empty()) {
    HOIST_ASSIGN_OR_RETURN(ro.platform, Platform::Parse(o.platform));
  }
  ro.request_timeout = o.timeout;
  ro.retry.total_budget = o.timeout;
  // Counts the requests on the way to "mounted" (and how many had to wait for one another).
  auto request_log = std::make_shared<RequestLog>();
  ro.request_log = request_log;
  HOIST_ASSIGN_OR_RETURN(client_, RegistryClient::CreateDefault(ro));

  // 2. The image: from the registry, or from the local store with -o offline or when the
  //    registry cannot be reached (fusefs/local_image.h).
  HOIST_ASSIGN_OR_RETURN(Reference ref, Reference::Parse(o.image));
  if (takeover_) {
    // Exactly the image the first daemon mounted, whatever the tag says now.
    HOIST_ASSIGN_OR_RETURN(MountImage resolved, HandedOverImage(*client_, ref, handoff_state_, o));
    image_ = std::move(resolved.image);
    source_ = std::move(resolved.source);
  } else {
    HOIST_ASSIGN_OR_RETURN(MountImage resolved,
                           ResolveMountImage(*client_, ref, o, nullptr, ConfigFetch::kSkip));
    image_ = std::move(resolved.image);
    warning_ = std::move(resolved.warning);
    // 3. Its blobs (local blob files first, then the registry unless offline).
    source_ = std::move(resolved.source);
    handoff_state_.reference = o.image;
    handoff_state_.manifest_media_type = image_->manifest_bytes.media_type;
    handoff_state_.manifest = image_->manifest_bytes.bytes;
    handoff_state_.from_local_store = resolved.from_local_store;
    record_image_ = !resolved.from_local_store;
    handoff_state_.mountpoint = mountpoint_;
    // The access trace published for this image (or given as a file), looked up while the
    // layers' TOCs are fetched.
    if (o.prefetch != PrefetchMode::kNone && o.prefetch_trace != "off" &&
        (o.prefetch_trace != "auto" || !resolved.from_local_store)) {
      trace_prefetch_ = std::make_unique<TracePrefetch>(
          client_.get(), ref, image_->manifest_bytes.digest,
          o.prefetch_trace == "auto" ? std::string() : o.prefetch_trace);
    }
  }
  const auto image_ms = lap();
  WarmConnections(o, ref);

  // 4. The host store.
  HOIST_ASSIGN_OR_RETURN(std::string cache_dir, ResolveCacheDir(o.cache_dir));
  StoreOptions so;
  if (o.cache_size > 0) so.cache.quota_bytes = o.cache_size;
  {
    auto store = Store::Open(cache_dir, so);
    if (!store) return Fail(store.error().Context("opening the cache " + cache_dir));
    store_ = std::move(*store);
  }
  metrics_ = std::make_unique<MountMetrics>(&stats_, &store_->chunks(), so.cache.quota_bytes);
  const auto store_ms = lap();

  // 5. Layer indexes.
  // Fresh indexes are stored once the mount is up (step 11), not on the way to it. An
  // unconverted layer indexed from its blob keeps the decompressed stream for step 7.
  const std::string stream_dir = cache_dir + "/tmp";
  HOIST_RETURN_IF_ERROR(MakeDirs(stream_dir, 0700));
  // Stream files count against the cache quota: as much disk again as the chunk cache may use.
  stream_space_ = std::make_unique<ByteBudget>(so.cache.quota_bytes);
  LayerLoaderOptions loader_options;
  loader_options.defer_store = true;
  loader_options.stream_temp_dir = stream_dir;
  loader_options.stream_space = stream_space_.get();
  std::vector<Digest> layer_digests, unconverted;
  for (const Descriptor& d : image_->manifest.layers) {
    layer_digests.push_back(d.digest);
    if (Status lazy = CheckLazyLayer(d); !lazy && lazy.error().code() == ENOTSUP) {
      unconverted.push_back(d.digest);
    }
  }
  stats_.SetLayers(layer_digests);
  // Indexes published next to the image (`hoist index`): an unconverted layer the store lacks
  // is then lazy from its first read; looked up by the first such layer's loader thread.
  std::unique_ptr<PublishedIndexes> published;
  if (!o.offline && !handoff_state_.from_local_store) {
    published =
        std::make_unique<PublishedIndexes>(client_.get(), ref, image_->manifest_bytes.digest);
    loader_options.published = [&published](const Descriptor& layer, LayerFormat format) {
      return published->Get(layer, format);
    };
  }
  IndexingBlobSource indexing_source(source_.get(), &stats_, std::move(unconverted));
  HOIST_ASSIGN_OR_RETURN(
      layers_, LoadLayers(indexing_source, store_.get(), image_->manifest.layers, loader_options));
  for (size_t i = 0; i < layers_.layers.size(); ++i) {
    HOIST_LOG(kInfo) << LayerLabel(i, layers_.layers.size(), layers_.layers[i]->layer_digest.str())
                     << ": index from " << LayerOriginName(layers_.origins[i]);
  }

  const auto layers_ms = lap();

  // 6. The merged view.
  HOIST_ASSIGN_OR_RETURN(view_, MergedView::Build(layers_.layers));
  // Parsing TOCs and building the tree freed far more heap than the mount keeps; hand it back
  // to the kernel now rather than carry it for the mount's lifetime.
  malloc_trim(0);
  const auto tree_ms = lap();

  // 7. Read path.
  StreamLayerOptions stream_options;
  stream_options.temp_dir = stream_dir;
  stream_options.space = stream_space_.get();
  zran_ = std::make_unique<ZranReader>(source_.get(), &store_->chunks(), &stats_);
  streams_ = std::make_unique<StreamLayers>(source_.get(), &stats_, stream_options, zran_.get());
  for (size_t i = 0; i < layers_.layers.size(); ++i) {
    const LayerIndex& layer = *layers_.layers[i];
    if (streams_->Adopt(layer, std::move(layers_.streams[i]))) {
      HOIST_LOG(kInfo) << LayerLabel(i, layers_.layers.size(), "")
                       << ": served from the stream it was indexed from";
    } else if (streams_->Lazy(layer) && source_->IsLocal(layer.layer_digest)) {
      // Read by range from its local blob file (a pulled image): all of it is on this host.
      stats_.MarkLayerLocal(layer.layer_digest);
    }
  }
  ChunkReaderOptions reader_options;
  reader_options.timeout = o.timeout;
  reader_ = std::make_unique<ChunkReader>(source_.get(), &store_->chunks(), &stats_, reader_options,
                                          streams_.get());
  if (!o.trace_file.empty()) {
    trace_recorder_ = std::make_unique<TraceRecorder>(image_->manifest_bytes.digest);
    if (takeover_) SeedTrace(*trace_recorder_, o.trace_file);
    open_observers_.Add(trace_recorder_.get());
  }
  if (o.elf_prefetch) {
    elf_prefetch_ = std::make_unique<ElfPrefetch>(&*view_, reader_.get());
    open_observers_.Add(elf_prefetch_.get());
  }
  if (o.dir_prefetch) {
    dir_prefetch_ = std::make_unique<DirPrefetch>(&*view_, reader_.get());
    open_observers_.Add(dir_prefetch_.get());
  }
  ops_context_ = FuseOpsContext{&*view_, reader_.get(), &stats_, &read_failures_,
                                open_observers_.empty() ? nullptr : &open_observers_};

  // 8. State file path (computed while touching the mountpoint is still safe).
  const std::string state_dir = o.state_dir.empty() ? DefaultStateDir() : o.state_dir;
  state_file_ = StateFileForCanonicalMountpoint(mountpoint_, state_dir);
  if (takeover_) {
    // The counters go on from where the previous daemon last wrote them (up to one
    // stats_interval is lost with a killed daemon).
    if (auto earlier = ReadMountStateFile(state_file_);
        earlier && earlier->mountpoint == mountpoint_) {
      stats_.Carry(earlier->stats);
    }
  }
  if (!takeover_) {
    HOIST_ASSIGN_OR_RETURN(mountpoint_, CheckMountpoint(o.mountpoint));
  }

  // 9. The FUSE session.
  std::vector<std::string> args = {"hoistfs", "-o", FuseMountOptionString(o)};
  if (o.fuse_debug) args.push_back("-d");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  session_ = fuse_session_new(&fargs, &HoistFuseOps(), sizeof(fuse_lowlevel_ops), &ops_context_);
  fuse_opt_free_args(&fargs);
  if (session_ == nullptr) return Fail(EINVAL, "fuse_session_new failed (bad FUSE options)");
  if (fuse_set_signal_handlers(session_) != 0)
    return Fail(EIO, "installing the FUSE signal handlers failed");
  signal_handlers_ = true;

  // 10. Mount, or take the connection over.
  if (takeover_) {
    // The state is stored only once INIT was recorded (OnInitRecorded), so it is there.
    fuse_fd_ = handoff->fuse_fd.Release();
    if (Status s = TakeOverConnection(session_, fuse_fd_, handoff_state_.init); !s) {
      fuse_fd_ = -1;
      return s;
    }
  } else {
    if (fuse_session_mount(session_, mountpoint_.c_str()) != 0)
      return Fail(EIO, "mounting on " + mountpoint_ + " failed (is /dev/fuse available?)");
    mounted_ = true;
    fuse_fd_ = fuse_session_fd(session_);
    HOIST_RETURN_IF_ERROR(ConnectionIo::Install(
        session_, fuse_fd_, [this](std::string_view init) { OnInitRecorded(init); }));
  }
  HOIST_LOG(kInfo) << "mount built in " << lap() + image_ms + store_ms + layers_ms + tree_ms
                   << " ms: image " << image_ms << " ms, cache " << store_ms
                   << " ms, layer indexes " << layers_ms << " ms, merged tree " << tree_ms
                   << " ms (" << view_->inode_count() << " inodes)";
  {
    const RequestSummary requests = request_log->Summary();
    request_log->Stop();
    if (requests.sequential > 0) reader_->NoteLatency(requests.elapsed / requests.sequential);
    HOIST_LOG(kInfo) << "registry requests before mounting: " << requests.requests << " ("
                     << requests.sequential << " one after another), " << requests.body_bytes
                     << " bytes in " << requests.elapsed.count() << " ms";
  }

  // 11. Background work.
  index_store_thread_ = std::thread([this] {
    LowerThisThreadPriority();
    StoreFreshIndexes(*store_, layers_);
    // What an offline remount needs besides the indexes (fusefs/local_image.h).
    if (record_image_) {
      if (Status s = RecordMountedImage(*store_, *client_, *image_, options_.connect_timeout); !s) {
        HOIST_LOG(kWarning) << "not recorded for offline remounts: " << s.error().message();
      }
    }
    malloc_trim(0);  // encoding and committing the records freed what the mount does not keep
  });
  PrefetcherOptions po;
  po.mode = o.prefetch;
  po.bandwidth_bytes_per_sec = o.bandwidth_bytes_per_sec;
  prefetcher_ = std::make_unique<Prefetcher>(reader_.get(), layers_.layers, po);
  prefetcher_->Start();
  if (trace_prefetch_) trace_prefetch_->Begin(prefetcher_.get(), &layers_.layers);
  stats_writer_ = std::make_unique<StatsFileWriter>(&stats_, state_file_, mountpoint_, o.image,
                                                    o.stats_interval);
  return Ok();
}

// A start's first reads come in a burst (the loader, its libraries, the prefetches), and a read
// that finds no idle connection pays a TCP (and TLS) handshake first: one more round trip on the
// critical path. HEAD requests of the largest layer's blob (no body, nothing in a blob log),
// each on its own thread and on a new connection (never one the TOC fetches would reuse), open
// `warm_connections` connections while the TOCs load, so they are idle in the transport's shared
// cache (curl_transport.h keeps up to 64) when the first reads come. They are not counted among
// the requests before mounting: nothing waits for them.
void Mount::WarmConnections(const MountOptions& o, const Reference& ref) {
  if (o.offline || o.warm_connections <= 0 || handoff_state_.from_local_store) return;
  const Descriptor* largest = nullptr;
  for (const Descriptor& d : image_->manifest.layers) {
    if (d.size > 0 && (largest == nullptr || d.size > largest->size)) largest = &d;
  }
  if (largest == nullptr) return;
  for (int i = 0; i < o.warm_connections; ++i) {
    warm_threads_.emplace_back([this, ref, blob = largest->digest] {
      UnrecordedRequests quiet;
      FreshConnections fresh;
      if (auto r = client_->BlobExists(ref, blob); !r) {
        HOIST_LOG(kDebug) << "warming a registry connection: " << r.error().message();
      }
    });
  }
}

void Mount::OnInitRecorded(std::string_view init) {
  handoff_state_.init.assign(init);
  if (FdStoreAvailable()) {
    auto memfd = WriteHandoffMemfd(handoff_state_);
    if (!memfd) {
      HOIST_LOG(kWarning) << "this mount will not survive its daemon: " << memfd.error().message();
    } else {
      const int fds[] = {fuse_fd_};
      const int state[] = {memfd->get()};
      // The state first: a store holding a connection always has its state.
      Status s = StoreFds(kStateFdName, state);
      if (s) s = StoreFds(kFuseFdName, fds);
      if (!s) {
        HOIST_LOG(kWarning) << "this mount will not survive its daemon: " << s.error().message();
      } else {
        HOIST_LOG(kInfo) << "the FUSE connection is kept in the fd store";
      }
    }
  }
  if (!serving_announced_.exchange(true) && on_serving_) on_serving_();
}

void Mount::HandOver() {
  handed_over_.store(true);
  if (session_ != nullptr) fuse_session_exit(session_);
}

namespace {
std::atomic<Mount*> g_handover_mount{nullptr};
void HandoverSignalHandler(int) {
  if (Mount* m = g_handover_mount.load()) m->HandOver();
}
}  // namespace

void Mount::EnableHandoverSignal() {
  g_handover_mount.store(this);
  struct sigaction sa {};
  sa.sa_handler = HandoverSignalHandler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: the loop's sem_wait must see EINTR
  sigaction(SIGUSR1, &sa, nullptr);
}

Status Mount::Run(std::function<void()> on_serving) {
  if (session_ == nullptr || fuse_fd_ < 0) return Fail(EINVAL, "not mounted");
  on_serving_ = std::move(on_serving);
  // Unblock (not restore): a daemon started with these signals blocked must still unmount on
  // SIGTERM/SIGINT/SIGHUP.
  if (sigmask_saved_) {
    sigset_t unmount_signals;
    sigemptyset(&unmount_signals);
    sigaddset(&unmount_signals, SIGTERM);
    sigaddset(&unmount_signals, SIGINT);
    sigaddset(&unmount_signals, SIGHUP);
    sigaddset(&unmount_signals, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &unmount_signals, nullptr);
  }
  if (takeover_) {
    // Requests the previous daemon read and never answered are queued again once it is gone.
    resend_thread_ = std::thread([this] { ResendAfterExit(previous_pid_, fuse_fd_, "the mount"); });
    if (!serving_announced_.exchange(true) && on_serving_) on_serving_();
  }
  fuse_loop_config* config = fuse_loop_cfg_create();
  if (config == nullptr) return Fail(ENOMEM, "fuse_loop_cfg_create failed");
  fuse_loop_cfg_set_clone_fd(config, 0);
  fuse_loop_cfg_set_max_threads(config, options_.max_threads);
  fuse_loop_cfg_set_idle_threads(config, 8);
  const int rc = fuse_session_loop_mt(session_, config);
  fuse_loop_cfg_destroy(config);
  HOIST_LOG(kInfo) << "FUSE loop ended (" << rc << ")";
  if (trace_recorder_) {
    if (Status s = trace_recorder_->WriteTo(options_.trace_file); !s) {
      HOIST_LOG(kError) << s.error().message();
    }
  }
  if (rc < 0) return Fail(-rc, std::string("FUSE loop failed: ") + std::strerror(-rc));
  return Ok();
}

void Mount::Teardown() {
  metrics_.reset();  // first: a scrape reads the stats and the store
  const auto start = std::chrono::steady_clock::now();
  auto step = [&](const char* what) {
    HOIST_LOG(kDebug) << "teardown: " << what << " after "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - start)
                             .count()
                      << " ms";
  };
  if (resend_thread_.joinable()) resend_thread_.join();
  if (session_ != nullptr) {
    if (handed_over_.load()) {
      HOIST_LOG(kInfo) << "handed the mount over; not unmounting";
    } else if (mounted_) {
      fuse_session_unmount(session_);
    } else if (takeover_ && fuse_fd_ >= 0) {
      UnmountTakenOver(mountpoint_, fuse_fd_);
    }
    mounted_ = false;
    if (fuse_fd_ >= 0) ConnectionIo::Uninstall(fuse_fd_);
    if (signal_handlers_) fuse_remove_signal_handlers(session_);
    signal_handlers_ = false;
    fuse_session_destroy(session_);
    session_ = nullptr;
    step("session");
  }
  if (prefetcher_) prefetcher_->Stop();
  trace_prefetch_.reset();  // after the prefetcher's Stop: a FetchFiles in progress returns
  prefetcher_.reset();
  elf_prefetch_.reset();
  dir_prefetch_.reset();
  step("prefetcher");
  if (index_store_thread_.joinable()) index_store_thread_.join();
  for (std::thread& t : warm_threads_) t.join();
  warm_threads_.clear();
  step("index store");
  if (handed_over_.load() && stats_writer_) stats_writer_->SkipFinalWrite();
  stats_writer_.reset();  // final state-file write (unless the next daemon writes it now)
  step("stats writer");
  reader_.reset();
  streams_.reset();
  zran_.reset();
  step("reader");
  view_.reset();
  layers_ = LoadedLayers{};
  store_.reset();
  step("store");
  source_.reset();
  image_.reset();
  client_.reset();
  step("client");
}

Mount::~Mount() { Teardown(); }

}  // namespace hoist
