// hoistfs: the FUSE daemon, one process per mount.
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
// Readiness: without -f the process forks at once (before any thread, LMDB environment or curl
// handle exists); the child builds the mount and, once fuse_session_mount has succeeded, tells
// the parent through a pipe. The parent exits 0 then, or 1 after printing the child's one-line
// error, so `hoistfs IMG /mnt && ls /mnt` works. The child detaches (setsid, stdio to /dev/null
// or -o log_file=) and serves until unmounted (`fusermount3 -u`, `hoist umount`) or signalled
// (SIGTERM, SIGINT, SIGHUP: clean unmount). With -f everything happens in the foreground.
#include <fcntl.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "base/log.h"
#include "base/sd_notify.h"
#include "fusefs/mount.h"
#include "fusefs/mount_options.h"
#include "tools/hoistfs/layers_mode.h"

namespace {

constexpr char kReady[] = "ready\n";

// The readiness pipe to the parent: if the parent is gone there is nobody to tell, so a failed
// write is dropped on purpose.
void TellParent(int fd, const std::string& s) {
  (void)hoist::WriteAll(fd, s, "the readiness pipe");
}

// Parent side: waits for the child's verdict.
int AwaitReadiness(int fd, pid_t child) {
  std::string msg;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    msg.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (msg == kReady) return 0;
  // Warnings the daemon wants the caller to see come before the ready line.
  const std::string ready = kReady;
  if (msg.size() > ready.size() && msg.ends_with("\n" + ready)) {
    std::fputs(msg.substr(0, msg.size() - ready.size()).c_str(), stderr);
    return 0;
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  if (msg.empty()) {
    if (WIFSIGNALED(status)) {
      std::fprintf(stderr, "hoistfs: the daemon died (signal %d) before the mount was ready\n",
                   WTERMSIG(status));
    } else {
      std::fprintf(stderr, "hoistfs: the daemon exited before the mount was ready\n");
    }
  } else {
    std::fputs(msg.c_str(), stderr);
  }
  return 1;
}

// Child side: stdio away from the caller's terminal or pipes.
void Detach(const std::string& log_file) {
  ::setsid();
  int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  int log_fd = -1;
  if (!log_file.empty())
    log_fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (null_fd >= 0) {
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(null_fd, STDOUT_FILENO);
    ::dup2(log_fd >= 0 ? log_fd : null_fd, STDERR_FILENO);
  }
  if (log_fd >= 0) ::close(log_fd);
  if (null_fd > STDERR_FILENO) ::close(null_fd);
}

}  // namespace

int main(int argc, char** argv) {
  // A fixed mmap threshold: glibc otherwise raises it to the largest block freed so far (up to
  // 32 MiB), after which the multi-MB buffers of indexing a layer (TOC, index record) come from
  // the heap and stay resident for the mount's lifetime once freed.
  mallopt(M_MMAP_THRESHOLD, 256 << 10);
  hoist::MountOptions options;
  std::vector<std::string> option_lists;
  std::string cache_flag;
  CLI::App app{
      "hoistfs: mount a container image read-only, straight from its registry, fetching file "
      "contents lazily"};
  app.add_flag("-f,--foreground", options.foreground, "stay in the foreground");
  app.add_flag("-d,--debug", options.fuse_debug, "FUSE debug output (implies -f)");
  app.add_option("-o", option_lists,
                 "mount options: timeout=S, prefetch=none|priority|all, bandwidth=B, cache=DIR, "
                 "cache_size=B, insecure_registry=HOST, platform=P, log_level=L, log_file=F, "
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

  int ready_fd = -1;
  if (!options.foreground) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      std::perror("hoistfs: pipe");
      return 1;
    }
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      std::perror("hoistfs: fork");
      return 1;
    }
    if (pid > 0) {
      ::close(fds[1]);
      return AwaitReadiness(fds[0], pid);
    }
    ::close(fds[0]);
    ready_fd = fds[1];
    Detach(options.log_file);
  }

  if (layers) {
    hoist::LogLevel level;
    if (!hoist::ParseLogLevel(options.log_level, &level)) {
      const std::string line = "hoistfs: unknown log level \"" + options.log_level + "\"\n";
      if (ready_fd >= 0) {
        TellParent(ready_fd, line);
      } else {
        std::fputs(line.c_str(), stderr);
      }
      return 1;
    }
    hoist::SetLogLevel(level);
    return hoist::RunLayerStoreDaemon(options, mount_per_layer, ready_fd);
  }

  auto mount = hoist::Mount::Create(options);
  if (!mount) {
    const std::string line = "hoistfs: " + mount.error().message() + "\n";
    if (ready_fd >= 0) {
      TellParent(ready_fd, line);
      ::close(ready_fd);
    } else {
      std::fputs(line.c_str(), stderr);
    }
    return 1;
  }
  if (!(*mount)->warning().empty()) {
    const std::string line = "hoistfs: warning: " + (*mount)->warning() + "\n";
    if (ready_fd >= 0) {
      TellParent(ready_fd, line);
    } else {
      std::fputs(line.c_str(), stderr);
    }
  }
  HOIST_LOG(kInfo) << "mount ready: " << options.image << " at " << options.mountpoint;
  if (ready_fd >= 0) {
    TellParent(ready_fd, kReady);
    ::close(ready_fd);
  }
  if (options.foreground) {
    // Under systemd (Type=notify, hoistfs -f): the mount is ready. A no-op elsewhere.
    if (auto s = hoist::SdNotify("READY=1"); !s)
      std::fprintf(stderr, "hoistfs: %s\n", s.error().message().c_str());
  }
  if (::chdir("/") != 0) {
    // Not fatal: only keeps the daemon from pinning a directory.
  }
  hoist::Status run = (*mount)->Run();
  mount->reset();  // unmount, final state-file write, teardown in order
  if (!run) {
    std::fprintf(stderr, "hoistfs: %s\n", run.error().message().c_str());
    return 1;
  }
  return 0;
}
