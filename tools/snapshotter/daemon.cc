#include "tools/snapshotter/daemon.h"

#include <limits.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "base/fd_store.h"
#include "base/file_util.h"
#include "base/log.h"
#include "base/sd_notify.h"
#include "base/status.h"
#include "metrics/http_server.h"
#include "tools/snapshotter/grpc_service.h"
#include "tools/supervisor/supervisor.h"
#include "tools/supervisor/worker_env.h"

namespace hoist {
namespace {

// Makes `path` free for a new socket: absent is fine, a socket nobody answers on is removed. In
// an upgrade (`replace`) the previous worker's live socket is removed too: it keeps serving the
// connections it has, new ones reach this process.
Status ClaimSocketPath(const std::string& path, bool replace) {
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Fail(ENAMETOOLONG, "socket path " + path + " is longer than " +
                                  std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes");
  }
  const size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0)
    HOIST_RETURN_IF_ERROR(MakeDirs(path.substr(0, slash), 0755));
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Ok();
    return Fail(ErrnoError("stat of " + path));
  }
  if (!S_ISSOCK(st.st_mode)) return Fail(EEXIST, path + " exists and is not a socket");
  if (replace) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Fail(ErrnoError("removing the previous worker's socket " + path));
    }
    return Ok();
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Fail(ErrnoError("socket"));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::close(fd);
  if (rc == 0) return Fail(EADDRINUSE, "another process is serving " + path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Fail(ErrnoError("removing the stale socket " + path));
  }
  return Ok();
}

// ROOT/snapshotter.pid: the pid of the process serving (the worker), for tests and operators.
void WritePidFile(const std::string& root) {
  if (Status s = WriteFileAtomic(root + "/snapshotter.pid", std::to_string(::getpid()) + "\n");
      !s) {
    HOIST_LOG(kWarning) << "writing " << root << "/snapshotter.pid: " << s.error().message();
  }
}

void RemovePidFile(const std::string& root) {
  auto text = ReadFile(root + "/snapshotter.pid");
  if (text && *text == std::to_string(::getpid()) + "\n") {
    (void)::unlink((root + "/snapshotter.pid").c_str());
  }
}

}  // namespace

int SnapshotterMain(int argc, char** argv, const RemoteSourceFactory& factory) {
  CLI::App app{"hoist-snapshotter: containerd's snapshots API (a proxy snapshot plugin)",
               "hoist-snapshotter"};
  std::string address, root, log_level = "info";
  DaemonConfig config;
  app.add_option("--address", address, "unix socket to serve on")->required();
  app.add_option("--root", root, "directory for snapshots and their metadata")->required();
  app.add_option("--cache", config.cache, "hoist store for lazy layers (default: ROOT/cache)");
  app.add_option("--insecure-registry", config.insecure_registries,
                 "plain-http registry HOST[:PORT] (repeatable; loopback ones always are)");
  app.add_option("--hosts-dir", config.hosts_dir,
                 "containerd hosts.toml directory for mirrors (default /etc/containerd/certs.d)");
  app.add_option("--registries-conf", config.registries_conf,
                 "containers registries.conf for mirrors (default $CONTAINERS_REGISTRIES_CONF "
                 "or /etc/containers/registries.conf)");
  app.add_option("--mirror-connect-timeout", config.mirror_connect_timeout_ms,
                 "milliseconds to wait for a mirror's connection before the next host "
                 "(default 3000)")
      ->check(CLI::Range(0, 3600000));
  app.add_option("--prefetch", config.prefetch,
                 "background fetch of lazy layers: none, priority or all (default all)");
  app.add_option("--log-level", log_level, "debug, info, warn, error or off");
  std::string metrics_address;
  app.add_option("--metrics-address", metrics_address,
                 "serve Prometheus metrics at /metrics on a loopback HOST:PORT or unix:PATH");
  bool no_supervisor = false;
  app.add_flag("--no-supervisor", no_supervisor,
               "one process, no fd store: a kill ends the layer store's mount (see daemon.h)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "hoist-snapshotter: %s\n", e.what());
    return 1;
  }
  LogLevel level;
  if (!ParseLogLevel(log_level, &level)) {
    std::fprintf(stderr, "hoist-snapshotter: unknown --log-level '%s'\n", log_level.c_str());
    return 1;
  }
  SetLogLevel(level);
  if (address.empty() || address[0] != '/') {
    std::fprintf(stderr, "hoist-snapshotter: --address must be an absolute socket path, not '%s'\n",
                 address.c_str());
    return 1;
  }

  if (root.empty() || root[0] != '/') {
    std::fprintf(stderr,
                 "hoist-snapshotter: the snapshotter root must be an absolute path, not '%s'\n",
                 root.c_str());
    return 1;
  }
  while (root.size() > 1 && root.back() == '/') root.pop_back();

  // Checked here too, so the supervisor refuses what its worker would (one line, exit 1).
  if (!config.prefetch.empty() && config.prefetch != "none" && config.prefetch != "priority" &&
      config.prefetch != "all") {
    std::fprintf(stderr, "hoist-snapshotter: --prefetch %s: expected none, priority or all\n",
                 config.prefetch.c_str());
    return 1;
  }

  if (!metrics_address.empty()) {
    if (auto a = metrics::ParseAddress(metrics_address); !a) {
      std::fprintf(stderr, "hoist-snapshotter: %s\n", a.error().message().c_str());
      return 1;
    }
  }

  // The process model: started by hoist's supervisor (a worker), by systemd (NOTIFY_SOCKET: its
  // fd store keeps the layer store's connection), or with --no-supervisor, this process serves;
  // otherwise it becomes the supervisor and runs this binary again as the worker.
  const bool worker = std::getenv(kEnvSupervisorPid) != nullptr;
  if (!worker && !no_supervisor && std::getenv("NOTIFY_SOCKET") == nullptr) {
    char exe[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
      std::fprintf(stderr, "hoist-snapshotter: cannot find its own binary (/proc/self/exe)\n");
      return 1;
    }
    if (Status s = ClaimSocketPath(address, /*replace=*/false); !s) {
      std::fprintf(stderr, "hoist-snapshotter: %s\n", s.error().message().c_str());
      return 1;
    }
    SupervisorOptions so;
    so.worker_argv.emplace_back(exe, static_cast<size_t>(n));
    for (int i = 1; i < argc; ++i) so.worker_argv.emplace_back(argv[i]);
    so.cleanup_mountpoint = root + "/layers";
    so.name = "hoist-snapshotter";
    return RunSupervisor(so);
  }
  // What a fd store handed over (before any thread: this edits the environment).
  config.inherited_fds = TakeListenFds();
  config.previous_pid = InheritedPidFromEnv(kEnvPreviousPid);
  // The supervisor's reaper waits for this end to close: held for the worker's whole life.
  [[maybe_unused]] const int lifeline_fd = InheritedFdFromEnv(kEnvLifelineFd);
  if (const int ready_fd = InheritedFdFromEnv(kEnvReadyFd); ready_fd >= 0) ::close(ready_fd);

  // Signals are taken synchronously by this thread; block them before gRPC starts threads.
  // SIGUSR1: hand over to the worker that replaces this one (an upgrade).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  sigaddset(&stop_signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  config.root = root;
  if (config.cache.empty()) config.cache = root + "/cache";
  if (Status s = ClaimSocketPath(address, config.previous_pid > 0); !s) {
    std::fprintf(stderr, "hoist-snapshotter: %s\n", s.error().message().c_str());
    return 1;
  }
  // Metrics (--metrics-address) from before the layer source starts; in an upgrade the new
  // worker binds once the old one has left.
  std::unique_ptr<metrics::MetricsEndpoint> metrics_endpoint;
  if (!metrics_address.empty()) {
    auto endpoint = metrics::MetricsEndpoint::Start(metrics_address, config.previous_pid > 0);
    if (!endpoint) {
      std::fprintf(stderr, "hoist-snapshotter: %s\n", endpoint.error().message().c_str());
      return 1;
    }
    metrics_endpoint = std::move(*endpoint);
  }
  std::shared_ptr<RemoteLayerSource> remote;
  if (factory) {
    if (Status s = MakeDirs(root, 0700); !s) {
      std::fprintf(stderr, "hoist-snapshotter: %s\n", s.error().message().c_str());
      return 1;
    }
    auto made = factory(config);
    if (!made) {
      std::fprintf(stderr, "hoist-snapshotter: %s\n", made.error().message().c_str());
      return 1;
    }
    remote = std::move(*made);
  }
  auto sn = Snapshotter::Open({.root = root, .remote = remote});
  if (!sn) {
    std::fprintf(stderr, "hoist-snapshotter: %s\n", sn.error().message().c_str());
    return 1;
  }
  SnapshotsService service(sn->get());
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + address, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    std::fprintf(stderr, "hoist-snapshotter: cannot serve on %s\n", address.c_str());
    return 1;
  }
  // systemd (Type=notify): ready once the socket serves. Not under systemd: nothing to do.
  if (Status s = SdNotify("READY=1"); !s) {
    HOIST_LOG(kWarning) << "telling systemd we are ready failed: " << s.error().message();
  }
  WritePidFile(root);
  HOIST_LOG(kInfo) << "serving containerd snapshots on " << address << ", root " << (*sn)->root()
                   << (remote ? ", lazy layers on"
                              : ", no lazy layer source: every layer is ordinary");
  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  if (sig == SIGUSR1) {
    // The worker replacing this one serves from now on (its socket replaced ours, the layer
    // store's connection is in the fd store and in that worker): finish the calls in flight and
    // leave without unmounting anything. Requests this process read from the store's connection
    // and did not answer are resent to the new worker once this process is gone.
    HOIST_LOG(kInfo) << "handing over to the new worker";
    server->Shutdown();
    server->Wait();
    std::fflush(nullptr);
    std::_Exit(0);
  }
  HOIST_LOG(kInfo) << "stopping on signal " << sig;
  RemovePidFile(root);
  server->Shutdown();
  server->Wait();
  (void)::unlink(address.c_str());  // best effort: a stale socket is replaced at the next start
  sn->reset();
  remote.reset();  // the lazy source's store unmounts here
  return 0;
}

}  // namespace hoist
