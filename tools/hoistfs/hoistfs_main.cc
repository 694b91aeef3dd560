// hoistfs: the FUSE daemon of one mount.
//
//   hoistfs [-f] [-d] [--cache DIR] [-o opt,...] IMAGE MOUNTPOINT
//   hoistfs --layers [--mount-per-layer] [...] IMAGE MOUNTPOINT
//
// --layers: not the merged image but every layer as an overlayfs lower layer, at
// MOUNTPOINT/<hex of the layer digest>/ (the layer store, fusefs/layer_store.h;
// tools/hoistfs/layers_mode.h). Same options and readiness.
//
// Option syntax is mount.fuse's, so `mount -t fuse.hoistfs IMAGE /mnt -o opts` and fstab lines
// (`IMAGE /mnt fuse.hoistfs prefetch=all,timeout=10 0 0`) work: mount(8) runs mount.fuse3, which
// runs `hoistfs IMAGE /mnt -o opts` (hoistfs must be in PATH). See fusefs/mount_options.h.
//
// Processes. Without -f the command forks at once (before any thread, LMDB environment or curl
// handle exists) and waits for the mount to be ready: it exits 0 then, or 1 after printing the
// one-line error, so `hoistfs IMG /mnt && ls /mnt` works. The forked child detaches (setsid,
// stdio to /dev/null or -o log_file=) and becomes the mount's supervisor (tools/supervisor):
// it runs this binary again as the worker that builds and serves the mount, keeps the FUSE
// connection in its fd store, and starts a new worker that takes the live connection over
// when the worker dies (kill -9, crash) or on an upgrade (SIGUSR2 to the supervisor, `hoist
// upgrade`). The worker's pid is the one in the state file (`hoist stats --json`).
// With -f everything happens in this process: under systemd (Type=notify, NOTIFY_SOCKET) the
// connection goes to the unit's fd store (FileDescriptorStoreMax=) and a restarted unit takes it
// over; without a fd store the mount dies with the process.
// Signals to the worker: SIGTERM, SIGINT, SIGHUP unmount cleanly; SIGUSR1 hands over (stop
// serving, do not unmount, exit 0).
#include <fcntl.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/fd_store.h"
#include "base/file_util.h"
#include "base/log.h"
#include "base/readiness.h"
#include "base/sd_notify.h"
#include "fusefs/mount.h"
#include "fusefs/mount_options.h"
#include "metrics/http_server.h"
#include "tools/hoistfs/layers_mode.h"
#include "tools/supervisor/supervisor.h"
#include "tools/supervisor/worker_env.h"

namespace {

// The readiness pipe to the parent (base/readiness.h).
void TellParent(int fd, const std::string& s) { hoist::TellReadiness(fd, s); }

// A line for the user: through the readiness pipe while the parent waits for it, else stderr.
void Say(int ready_fd, const std::string& line) {
  if (ready_fd >= 0) {
    TellParent(ready_fd, line);
  } else {
    std::fputs(line.c_str(), stderr);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // A fixed mmap threshold: glibc otherwise raises it to the largest block freed so far (up to
  // 32 MiB), after which the multi-MB buffers of indexing a layer (TOC, index record) come from
  // the heap and stay resident for the mount's lifetime once freed.
  mallopt(M_MMAP_THRESHOLD, 256 << 10);
  // A connection kept for this process by a fd store (systemd or the supervisor).
  std::vector<hoist::ListenFd> inherited = hoist::TakeListenFds();
  // A worker resolves relative arguments where the user ran hoistfs (the supervisor itself
  // sits in "/").
  if (const char* cwd = std::getenv("HOIST_ORIGINAL_CWD"); cwd != nullptr) {
    if (::chdir(cwd) != 0) std::perror("hoistfs: chdir to the original directory");
    ::unsetenv("HOIST_ORIGINAL_CWD");
  }
  // Started by the supervisor (the variable stays: the state file reports it).
  const bool worker = std::getenv(hoist::kEnvSupervisorPid) != nullptr;
  hoist::MountOptions options;
  std::vector<std::string> option_lists;
  std::string cache_flag;
  CLI::App app{
      "hoistfs: mount a container image read-only, straight from its registry, fetching file "
      "contents lazily"};
  app.add_flag("-f,--foreground", options.foreground, "stay in the foreground");
  app.add_flag("-d,--debug", options.fuse_debug, "FUSE debug output (implies -f)");
  app.add_option("-o", option_lists,
                 "mount options: timeout=S, prefetch=none|priority|all, elf_prefetch=0|1, "
                 "dir_prefetch=0|1, "
                 "prefetch_trace=auto|off|F, bandwidth=B, cache=DIR, cache_size=B, "
                 "insecure_registry=HOST, hosts_dir=DIR, registries_conf=F, "
                 "mirror_connect_timeout=MS, platform=P, log_level=L, log_file=F, trace=F, "
                 "metrics=HOST:PORT|unix:PATH, "
                 "allow_other, suid")
      ->allow_extra_args(false)
      ->take_all();
  app.add_option("--cache", cache_flag, "the host store directory (env HOIST_CACHE)");
  app.add_flag("--offline", options.offline, "no registry: mount the image from the local store");
  bool layers = false;
  bool mount_per_layer = false;
  app.add_flag("--layers", layers,
               "mount every layer as an overlayfs lower layer at MOUNTPOINT/<layer digest hex>");
  app.add_flag("--mount-per-layer", mount_per_layer,
               "with --layers: one FUSE mount per layer (for benchmarks)");
  app.add_option("image", options.image, "the image reference (registry/repo:tag or @digest)")
      ->required();
  app.add_option("mountpoint", options.mountpoint, "an empty directory")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (const std::string& list : option_lists) {
    if (auto s = hoist::ApplyMountOptionList(list, &options); !s) {
      std::fprintf(stderr, "hoistfs: %s\n", s.error().message().c_str());
      return 1;
    }
  }
  if (!cache_flag.empty()) options.cache_dir = cache_flag;
  if (options.fuse_debug) options.foreground = true;
  if (mount_per_layer && !layers) {
    std::fprintf(stderr, "hoistfs: --mount-per-layer needs --layers\n");
    return 1;
  }
  // Later chdir("/") must not change what a relative mountpoint or cache means.
  auto absolute = [](std::string& path) {
    if (path.empty() || path[0] == '/') return;
    char cwd[PATH_MAX];
    if (::getcwd(cwd, sizeof(cwd)) != nullptr) path = std::string(cwd) + "/" + path;
  };
  absolute(options.mountpoint);
  absolute(options.cache_dir);
  absolute(options.log_file);
  if (options.hosts_dir != "none") absolute(options.hosts_dir);
  if (options.registries_conf != "none") absolute(options.registries_conf);
  absolute(options.trace_file);

  int ready_fd = -1;
  int lifeline_fd = -1;  // held for the worker's whole life (the supervisor's reaper)
  if (worker) {
    ready_fd = hoist::InheritedFdFromEnv(hoist::kEnvReadyFd);
    lifeline_fd = hoist::InheritedFdFromEnv(hoist::kEnvLifelineFd);
    options.foreground = true;
  } else if (!options.foreground) {
    if (auto parent_exit =
            hoist::ForkAwaitingReady("hoistfs", "the mount", options.log_file, &ready_fd)) {
      return *parent_exit;
    }
    if (!layers) {
      // The supervisor: this binary again, as the worker, with the same arguments.
      char cwd[PATH_MAX];
      std::string original_cwd = ::getcwd(cwd, sizeof(cwd)) != nullptr ? cwd : "/";
      char exe[PATH_MAX];
      const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
      if (n <= 0) {
        TellParent(ready_fd, "hoistfs: cannot find its own binary (/proc/self/exe)\n");
        return 1;
      }
      hoist::SupervisorOptions so;
      so.worker_argv.emplace_back(exe, static_cast<size_t>(n));
      for (int i = 1; i < argc; ++i) so.worker_argv.emplace_back(argv[i]);
      so.worker_env.push_back("HOIST_ORIGINAL_CWD=" + original_cwd);
      so.ready_fd = ready_fd;
      so.cleanup_mountpoint = options.mountpoint;
      so.name = "hoistfs";
      if (::chdir("/") != 0) {
        // Not fatal: only keeps the supervisor from pinning a directory.
      }
      hoist::LogLevel level;
      if (hoist::ParseLogLevel(options.log_level, &level)) hoist::SetLogLevel(level);
      return hoist::RunSupervisor(so);
    }
  }

  if (layers) {
    hoist::LogLevel level;
    if (!hoist::ParseLogLevel(options.log_level, &level)) {
      const std::string line = "hoistfs: unknown log level \"" + options.log_level + "\"\n";
      Say(ready_fd, line);
      return 1;
    }
    hoist::SetLogLevel(level);
    std::unique_ptr<hoist::metrics::MetricsEndpoint> metrics;
    if (!options.metrics_address.empty()) {
      auto endpoint = hoist::metrics::MetricsEndpoint::Start(options.metrics_address, false);
      if (!endpoint) {
        const std::string line = "hoistfs: " + endpoint.error().message() + "\n";
        Say(ready_fd, line);
        return 1;
      }
      metrics = std::move(*endpoint);
    }
    return hoist::RunLayerStoreDaemon(options, mount_per_layer, ready_fd);
  }

  hoist::MountHandoff handoff;
  for (hoist::ListenFd& l : inherited) {
    if (l.name == hoist::kFuseFdName) handoff.fuse_fd = std::move(l.fd);
    if (l.name == hoist::kStateFdName) handoff.state_fd = std::move(l.fd);
  }
  inherited.clear();
  const bool takeover = handoff.fuse_fd.valid() && handoff.state_fd.valid();
  handoff.previous_pid = hoist::InheritedPidFromEnv(hoist::kEnvPreviousPid);
  if (takeover) {
    hoist::LogLevel level;
    if (hoist::ParseLogLevel(options.log_level, &level)) hoist::SetLogLevel(level);
    HOIST_LOG(kWarning) << "taking over the live mount at " << options.mountpoint
                        << (handoff.previous_pid > 0
                                ? " from pid " + std::to_string(handoff.previous_pid)
                                : std::string());
  }
  // The metrics endpoint (-o metrics=ADDR) serves from before the mount is built, so a scrape
  // sees the image being resolved; a worker taking over waits for its predecessor's address.
  std::unique_ptr<hoist::metrics::MetricsEndpoint> metrics;
  if (!options.metrics_address.empty()) {
    auto endpoint = hoist::metrics::MetricsEndpoint::Start(options.metrics_address, takeover);
    if (!endpoint) {
      const std::string line = "hoistfs: " + endpoint.error().message() + "\n";
      Say(ready_fd, line);
      if (ready_fd >= 0) ::close(ready_fd);
      return 1;
    }
    metrics = std::move(*endpoint);
  }
  auto mount = hoist::Mount::Create(options, takeover ? &handoff : nullptr);
  if (!mount) {
    const std::string line = "hoistfs: " + mount.error().message() + "\n";
    Say(ready_fd, line);
    if (ready_fd >= 0) ::close(ready_fd);
    return 1;
  }
  if (!(*mount)->warning().empty()) {
    const std::string line = "hoistfs: warning: " + (*mount)->warning() + "\n";
    Say(ready_fd, line);
  }
  if (::chdir("/") != 0) {
    // Not fatal: only keeps the daemon from pinning a directory.
  }
  (*mount)->EnableHandoverSignal();
  // Ready once requests are served and the connection is kept where a fd store exists.
  auto on_serving = [&] {
    HOIST_LOG(kInfo) << "mount ready: " << options.image << " at " << options.mountpoint;
    if (ready_fd >= 0) {
      TellParent(ready_fd, hoist::kReadyLine);
      ::close(ready_fd);
      ready_fd = -1;
    }
    // Under systemd (Type=notify) or the supervisor: the mount is ready. A no-op elsewhere.
    if (auto s = hoist::SdNotify("READY=1"); !s) {
      HOIST_LOG(kWarning) << s.error().message();
    }
  };
  hoist::Status run = (*mount)->Run(on_serving);
  (void)lifeline_fd;
  if (run && (*mount)->handed_over()) {
    // The next daemon serves the mount and resends, once this process is gone, whatever it
    // read and did not answer: leave now rather than after an orderly teardown (nothing is
    // unmounted; the store's committed data is safe from an exit at any point).
    HOIST_LOG(kInfo) << "handed the mount over; exiting";
    std::fflush(nullptr);
    ::_exit(0);
  }
  mount->reset();  // unmount, final state-file write, teardown in order
  if (!run) {
    std::fprintf(stderr, "hoistfs: %s\n", run.error().message().c_str());
    return 1;
  }
  return 0;
}
