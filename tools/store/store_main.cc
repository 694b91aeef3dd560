// hoist-store: containers/storage's additional layer store (tools/store/additional_store.h) as
// a daemon, for podman and CRI-O.
//
//   hoist-store [-f] [-d] [--cache DIR] [--layers-dir DIR] [--metrics-address ADDR]
//               [-o opt,...] MOUNTPOINT
//   storage.conf: [storage.options] additionallayerstores = ["MOUNTPOINT:ref"]
//
// The layer views are served by a LayerStore mounted on --layers-dir (default
// "MOUNTPOINT.layers", created if missing); MOUNTPOINT/<base64 ref>/<key>/diff links into it.
// Options are hoistfs's (fusefs/mount_options.h: timeout, prefetch, cache, cache_size,
// insecure_registry, platform, log_level, log_file, ...); the layer store is always mounted
// allow_other,suid like hoist-snapshotter's (containers run as other users).
//
// Processes: without -f the command forks, and exits 0 once both mounts serve (1 after printing
// the one-line error); the child detaches (setsid, stdio to /dev/null or -o log_file=). With -f
// it stays in the foreground and tells systemd READY=1 (Type=notify). Not supervised: a killed
// daemon leaves both mounts dead (ENOTCONN) until it is started again (see docs/ARCHITECTURE.md
// "hoist-store"). SIGTERM, SIGINT and SIGHUP unmount and end it; so does an unmount from
// outside. --metrics-address (or -o metrics=ADDR) serves Prometheus metrics at /metrics on a
// loopback HOST:PORT or unix:PATH (metrics/http_server.h).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "base/log.h"
#include "base/readiness.h"
#include "base/sd_notify.h"
#include "fusefs/mount_options.h"
#include "metrics/http_server.h"
#include "tools/store/additional_store.h"

namespace {

void Tell(int fd, const std::string& line) { hoist::TellReadiness(fd, line); }

}  // namespace

int main(int argc, char** argv) {
  hoist::MountOptions options;
  std::vector<std::string> option_lists;
  std::string cache_flag;
  std::string layers_dir;
  CLI::App app{"hoist-store: containers/storage's additional layer store, served lazily by hoist"};
  app.add_flag("-f,--foreground", options.foreground, "stay in the foreground");
  app.add_flag("-d,--debug", options.fuse_debug, "FUSE debug output (implies -f)");
  app.add_option("-o", option_lists, "mount options, as hoistfs's")
      ->allow_extra_args(false)
      ->take_all();
  app.add_option("--cache", cache_flag, "the host store directory (env HOIST_CACHE)");
  app.add_option("--layers-dir", layers_dir,
                 "where the layer views are mounted (default MOUNTPOINT.layers)");
  std::string hosts_dir, registries_conf;
  app.add_option("--hosts-dir", hosts_dir,
                 "containerd hosts.toml directory for mirrors (also -o hosts_dir=DIR)");
  app.add_option("--registries-conf", registries_conf,
                 "containers registries.conf for mirrors (also -o registries_conf=FILE)");
  std::string metrics_address;
  app.add_option("--metrics-address", metrics_address,
                 "serve Prometheus metrics at /metrics on a loopback HOST:PORT or unix:PATH");
  app.add_option("mountpoint", options.mountpoint, "an empty directory")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (const std::string& list : option_lists) {
    if (auto s = hoist::ApplyMountOptionList(list, &options); !s) {
      std::fprintf(stderr, "hoist-store: %s\n", s.error().message().c_str());
      return 1;
    }
  }
  if (!cache_flag.empty()) options.cache_dir = cache_flag;
  if (!hosts_dir.empty()) options.hosts_dir = hosts_dir;
  if (!registries_conf.empty()) options.registries_conf = registries_conf;
  if (!metrics_address.empty()) {
    if (auto a = hoist::metrics::ParseAddress(metrics_address); !a) {
      std::fprintf(stderr, "hoist-store: %s\n", a.error().message().c_str());
      return 1;
    }
    options.metrics_address = metrics_address;
  }
  if (options.fuse_debug) options.foreground = true;
  options.allow_other = true;
  options.suid = true;
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
  while (options.mountpoint.size() > 1 && options.mountpoint.ends_with('/'))
    options.mountpoint.pop_back();
  if (layers_dir.empty()) layers_dir = options.mountpoint + ".layers";
  absolute(layers_dir);
  hoist::LogLevel level;
  if (!hoist::ParseLogLevel(options.log_level, &level)) {
    std::fprintf(stderr, "hoist-store: unknown log level \"%s\"\n", options.log_level.c_str());
    return 1;
  }

  int ready_fd = -1;
  if (!options.foreground) {
    if (auto parent_exit =
            hoist::ForkAwaitingReady("hoist-store", "the store", options.log_file, &ready_fd)) {
      return *parent_exit;
    }
  }
  hoist::SetLogLevel(level);

  // The stores' threads inherit a mask blocking the stop signals; this thread waits for them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  if (::mkdir(layers_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    Tell(ready_fd, "hoist-store: mkdir " + layers_dir + ": " + std::strerror(errno) + "\n");
    return 1;
  }
  std::unique_ptr<hoist::metrics::MetricsEndpoint> metrics;
  if (!options.metrics_address.empty()) {
    auto endpoint = hoist::metrics::MetricsEndpoint::Start(options.metrics_address, false);
    if (!endpoint) {
      Tell(ready_fd, "hoist-store: " + endpoint.error().message() + "\n");
      return 1;
    }
    metrics = std::move(*endpoint);
  }
  auto store = hoist::AdditionalStore::Start(options, layers_dir);
  if (!store) {
    Tell(ready_fd, "hoist-store: " + store.error().message() + "\n");
    return 1;
  }
  Tell(ready_fd, hoist::kReadyLine);
  if (ready_fd >= 0) ::close(ready_fd);
  if (auto s = hoist::SdNotify("READY=1"); !s) {
    HOIST_LOG(kWarning) << "hoist-store: " << s.error().message();
  }
  if (::chdir("/") != 0) {
    // Not fatal: only keeps the daemon from pinning a directory.
  }
  while (true) {
    const timespec tick{.tv_sec = 1, .tv_nsec = 0};
    const int sig = ::sigtimedwait(&stop, nullptr, &tick);
    if (sig > 0) {
      HOIST_LOG(kInfo) << "hoist-store: signal " << sig << ": unmounting";
      break;
    }
    if (!(*store)->Serving()) break;
  }
  store->reset();
  return 0;
}
