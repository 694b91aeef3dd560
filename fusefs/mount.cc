#include "fusefs/mount.h"

#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <sstream>
#include <vector>

#include "base/file_util.h"
#include "base/log.h"
#include "base/mountinfo.h"
#include "base/thread_priority.h"
#include "fetcher/reference.h"
#include "fusefs/local_image.h"

namespace hoist {
namespace {

Result<bool> IsMountPoint(const std::string& canonical) {
  HOIST_ASSIGN_OR_RETURN(std::vector<MountInfoEntry> table, ReadMountInfo());
  for (const MountInfoEntry& e : table) {
    if (e.mount_point == canonical) return true;
  }
  return false;
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
                                ": a dead FUSE mount is still there (run fusermount3 -u " + path +
                                ")");
    return Fail(ErrnoError("mountpoint " + path, err));
  }
  if (!S_ISDIR(st.st_mode)) return Fail(ENOTDIR, "mountpoint " + path + ": not a directory");
  std::string canonical = RealPath(path);
  if (canonical.empty()) return Fail(ErrnoError("mountpoint " + path + ": realpath"));
  HOIST_ASSIGN_OR_RETURN(bool busy, IsMountPoint(canonical));
  if (busy) return Fail(EBUSY, "mountpoint " + path + ": already a mount point (busy)");
  return canonical;
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

Result<std::unique_ptr<Mount>> Mount::Create(const MountOptions& options) {
  std::unique_ptr<Mount> m(new Mount(options));
  if (Status s = m->Build(); !s) {
    m->Teardown();
    return Fail(s.error());
  }
  return m;
}

Status Mount::Build() {
  const MountOptions& o = options_;
  if (o.image.empty()) return Fail(EINVAL, "no image given");
  // Every thread started from here on (curl, LMDB writer, fetch pool, prefetcher, stats writer)
  // inherits a mask blocking the unmount signals, so they reach libfuse's threads (whose blocking
  // read or wait the signal interrupts) and the loop ends at once. Run() unblocks them.
  sigset_t unmount_signals;
  sigemptyset(&unmount_signals);
  sigaddset(&unmount_signals, SIGTERM);
  sigaddset(&unmount_signals, SIGINT);
  sigaddset(&unmount_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &unmount_signals, &saved_sigmask_);
  sigmask_saved_ = true;
  // The mountpoint is checked first (cheap), and again right before mounting.
  HOIST_ASSIGN_OR_RETURN(mountpoint_, CheckMountpoint(o.mountpoint));
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
  if (!o.platform.empty()) {
    HOIST_ASSIGN_OR_RETURN(ro.platform, Platform::Parse(o.platform));
  }
  ro.request_timeout = o.timeout;
  ro.retry.total_budget = o.timeout;
  HOIST_ASSIGN_OR_RETURN(client_, RegistryClient::CreateDefault(ro));

  // 2. The image: from the registry, or from the local store with -o offline or when the
  //    registry cannot be reached (fusefs/local_image.h).
  HOIST_ASSIGN_OR_RETURN(Reference ref, Reference::Parse(o.image));
  HOIST_ASSIGN_OR_RETURN(MountImage resolved, ResolveMountImage(*client_, ref, o));
  image_ = std::move(resolved.image);
  warning_ = std::move(resolved.warning);

  // 3. Its blobs (local blob files first, then the registry unless offline).
  source_ = std::move(resolved.source);
  const auto image_ms = lap();

  // 4. The host store.
  HOIST_ASSIGN_OR_RETURN(std::string cache_dir, ResolveCacheDir(o.cache_dir));
  StoreOptions so;
  if (o.cache_size > 0) so.cache.quota_bytes = o.cache_size;
  {
    auto store = Store::Open(cache_dir, so);
    if (!store) return Fail(store.error().Context("opening the cache " + cache_dir));
    store_ = std::move(*store);
  }
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
  HOIST_ASSIGN_OR_RETURN(
      layers_, LoadLayers(*source_, store_.get(), image_->manifest.layers, loader_options));
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
  streams_ = std::make_unique<StreamLayers>(source_.get(), &stats_, stream_options);
  for (size_t i = 0; i < layers_.layers.size(); ++i) {
    if (streams_->Adopt(*layers_.layers[i], std::move(layers_.streams[i]))) {
      HOIST_LOG(kInfo) << LayerLabel(i, layers_.layers.size(), "")
                       << ": served from the stream it was indexed from";
    }
  }
  ChunkReaderOptions reader_options;
  reader_options.timeout = o.timeout;
  reader_ = std::make_unique<ChunkReader>(source_.get(), &store_->chunks(), &stats_, reader_options,
                                          streams_.get());
  ops_context_ = FuseOpsContext{&*view_, reader_.get(), &stats_, &read_failures_};

  // 8. State file path (computed while touching the mountpoint is still safe).
  const std::string state_dir = o.state_dir.empty() ? DefaultStateDir() : o.state_dir;
  state_file_ = StateFileForCanonicalMountpoint(mountpoint_, state_dir);
  HOIST_ASSIGN_OR_RETURN(mountpoint_, CheckMountpoint(o.mountpoint));

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

  // 10. Mount.
  if (fuse_session_mount(session_, mountpoint_.c_str()) != 0)
    return Fail(EIO, "mounting on " + mountpoint_ + " failed (is /dev/fuse available?)");
  mounted_ = true;
  HOIST_LOG(kInfo) << "mount built in " << lap() + image_ms + store_ms + layers_ms + tree_ms
                   << " ms: image " << image_ms << " ms, cache " << store_ms
                   << " ms, layer indexes " << layers_ms << " ms, merged tree " << tree_ms
                   << " ms (" << view_->inode_count() << " inodes)";

  // 11. Background work.
  index_store_thread_ = std::thread([this] {
    LowerThisThreadPriority();
    StoreFreshIndexes(*store_, layers_);
    malloc_trim(0);  // encoding and committing the records freed what the mount does not keep
  });
  PrefetcherOptions po;
  po.mode = o.prefetch;
  po.bandwidth_bytes_per_sec = o.bandwidth_bytes_per_sec;
  prefetcher_ = std::make_unique<Prefetcher>(reader_.get(), layers_.layers, po);
  prefetcher_->Start();
  stats_writer_ = std::make_unique<StatsFileWriter>(&stats_, state_file_, mountpoint_, o.image,
                                                    o.stats_interval);
  return Ok();
}

Status Mount::Run() {
  if (session_ == nullptr || !mounted_) return Fail(EINVAL, "not mounted");
  // Unblock (not restore): a daemon started with these signals blocked must still unmount on
  // SIGTERM/SIGINT/SIGHUP.
  if (sigmask_saved_) {
    sigset_t unmount_signals;
    sigemptyset(&unmount_signals);
    sigaddset(&unmount_signals, SIGTERM);
    sigaddset(&unmount_signals, SIGINT);
    sigaddset(&unmount_signals, SIGHUP);
    pthread_sigmask(SIG_UNBLOCK, &unmount_signals, nullptr);
  }
  fuse_loop_config* config = fuse_loop_cfg_create();
  if (config == nullptr) return Fail(ENOMEM, "fuse_loop_cfg_create failed");
  fuse_loop_cfg_set_clone_fd(config, 0);
  fuse_loop_cfg_set_max_threads(config, options_.max_threads);
  fuse_loop_cfg_set_idle_threads(config, 8);
  const int rc = fuse_session_loop_mt(session_, config);
  fuse_loop_cfg_destroy(config);
  HOIST_LOG(kInfo) << "FUSE loop ended (" << rc << ")";
  if (rc < 0) return Fail(-rc, std::string("FUSE loop failed: ") + std::strerror(-rc));
  return Ok();
}

void Mount::Teardown() {
  const auto start = std::chrono::steady_clock::now();
  auto step = [&](const char* what) {
    HOIST_LOG(kDebug) << "teardown: " << what << " after "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - start)
                             .count()
                      << " ms";
  };
  if (session_ != nullptr) {
    if (mounted_) fuse_session_unmount(session_);
    mounted_ = false;
    if (signal_handlers_) fuse_remove_signal_handlers(session_);
    signal_handlers_ = false;
    fuse_session_destroy(session_);
    session_ = nullptr;
    step("session");
  }
  if (prefetcher_) prefetcher_->Stop();
  prefetcher_.reset();
  step("prefetcher");
  if (index_store_thread_.joinable()) index_store_thread_.join();
  step("index store");
  stats_writer_.reset();  // final state-file write
  step("stats writer");
  reader_.reset();
  streams_.reset();
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
