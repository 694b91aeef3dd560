// hoist mount [flags] IMAGE MOUNTPOINT: runs hoistfs (the binary next to `hoist`, else from
//   PATH) with the flags turned into -o options; returns once the mount is ready.
// hoist umount MOUNTPOINT: `fusermount3 -u MOUNTPOINT`, then waits (up to --wait seconds) for
//   the daemon named in the mount's state file to finish its clean exit (final stats write),
//   and for its supervisor. A dead mount (ENOTCONN: its daemon and supervisor are gone) is
//   unmounted lazily. Works whether the daemon is serving, restarting or gone.
// hoist upgrade MOUNTPOINT: hands the mount to a new daemon started from the hoistfs binary on
//   disk now (SIGUSR2 to the supervisor; tools/supervisor), without a gap in service, and
//   waits (up to --wait seconds) until the new daemon serves and the old one has exited.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/file_util.h"
#include "base/mountinfo.h"
#include "base/process.h"
#include "base/spawn.h"
#include "fusefs/mount.h"
#include "fusefs/stats_file.h"
#include "tools/cli/registry_flags.h"
#include "tools/cli/verbs.h"
#include "tools/image/image_transport.h"

namespace hoist {
namespace {

struct MountArgs {
  RegistryFlags registry;
  std::string image;
  std::string mountpoint;
  bool foreground = false;
  int timeout = 0;
  std::string prefetch;
  std::string bandwidth;
  std::string cache;
  std::string cache_size;
  bool allow_other = false;
  std::vector<std::string> extra;
};

struct UmountArgs {
  std::string mountpoint;
  int wait_seconds = 10;
};

struct UpgradeArgs {
  std::string mountpoint;
  int wait_seconds = 60;
};

std::string SelfDir() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string path(buf, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

// Runs argv (PATH lookup) with our stdio, waits, returns the exit code (128 + signal if killed,
// 127 if it could not be started).
int RunAndWait(const std::vector<std::string>& args) {
  SpawnOptions spawn;
  spawn.search_path = true;
  auto child = Spawn(args, spawn);
  if (!child) {
    std::fprintf(stderr, "hoist: cannot run %s\n", child.error().message().c_str());
    return 127;
  }
  auto status = child->Wait();
  if (!status) {
    std::fprintf(stderr, "hoist: %s\n", status.error().message().c_str());
    return 127;
  }
  return status->ShellCode();
}

int RunMount(const MountArgs& a) {
  std::vector<std::string> opts;
  if (a.timeout > 0) opts.push_back("timeout=" + std::to_string(a.timeout));
  if (!a.prefetch.empty()) opts.push_back("prefetch=" + a.prefetch);
  if (!a.bandwidth.empty()) opts.push_back("bandwidth=" + a.bandwidth);
  if (!a.cache_size.empty()) opts.push_back("cache_size=" + a.cache_size);
  if (a.allow_other) opts.push_back("allow_other");
  for (const std::string& h : a.registry.insecure_registries)
    opts.push_back("insecure_registry=" + h);
  if (!a.registry.hosts_dir.empty()) opts.push_back("hosts_dir=" + a.registry.hosts_dir);
  if (!a.registry.registries_conf.empty())
    opts.push_back("registries_conf=" + a.registry.registries_conf);
  if (a.registry.mirror_connect_timeout_ms > 0)
    opts.push_back("mirror_connect_timeout=" +
                   std::to_string(a.registry.mirror_connect_timeout_ms));
  if (!a.registry.platform.empty()) opts.push_back("platform=" + a.registry.platform);
  if (!a.registry.log_level.empty()) opts.push_back("log_level=" + a.registry.log_level);
  for (const std::string& e : a.extra) opts.push_back(e);
  std::string hoistfs = SelfDir() + "/hoistfs";
  if (::access(hoistfs.c_str(), X_OK) != 0) hoistfs = "hoistfs";
  std::vector<std::string> argv = {hoistfs};
  if (a.foreground) argv.push_back("-f");
  if (!a.cache.empty()) {
    argv.push_back("--cache");
    argv.push_back(a.cache);
  }
  if (!opts.empty()) {
    std::string joined;
    for (const std::string& o : opts) joined += (joined.empty() ? "" : ",") + o;
    argv.push_back("-o");
    argv.push_back(joined);
  }
  auto image = RegistryReferenceText(a.image);
  if (!image) return ReportError("mount", image.error().message());
  argv.push_back(*image);
  argv.push_back(a.mountpoint);
  return RunAndWait(argv);
}

Result<MountStateFile> StateOf(const std::string& mountpoint) {
  HOIST_ASSIGN_OR_RETURN(std::string canonical, CanonicalMountpointNoFollow(mountpoint));
  return ReadMountStateFile(StateFileForCanonicalMountpoint(canonical, DefaultStateDir()));
}

// Polls `done` every 20 ms until it holds or `seconds` pass; true if it held.
template <typename F>
bool PollUntil(F done, int seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

int RunUmount(const UmountArgs& a) {
  int64_t pid = 0;
  int64_t supervisor = 0;
  if (auto state = StateOf(a.mountpoint)) {
    pid = state->pid;
    supervisor = state->supervisor_pid;
  }
  // Not a mount point at all: one line of our own, not fusermount3's and then ours.
  auto canonical = CanonicalMountpointNoFollow(a.mountpoint);
  auto table = ReadMountInfo();
  if (canonical && table) {
    bool mounted = false;
    for (const MountInfoEntry& e : *table) mounted = mounted || e.mount_point == *canonical;
    if (!mounted) return ReportError("umount", a.mountpoint + ": not mounted");
  }
  int rc = RunAndWait({"fusermount3", "-u", a.mountpoint});
  if (rc != 0) {
    // A dead mount (its daemon gone): fusermount3 -u refuses what it cannot stat; detach it.
    if (IsDeadFuseMount(a.mountpoint)) rc = RunAndWait({"fusermount3", "-u", "-z", a.mountpoint});
  }
  if (rc != 0) return ReportError("umount", "fusermount3 -u " + a.mountpoint + " failed");
  auto gone = [&] { return !ProcessAlive(pid) && !ProcessAlive(supervisor); };
  if (!PollUntil(gone, a.wait_seconds)) {
    const int64_t left = ProcessAlive(pid) ? pid : supervisor;
    return ReportError(
        "umount", "unmounted, but hoistfs (pid " + std::to_string(left) + ") is still running");
  }
  return 0;
}

int RunUpgrade(const UpgradeArgs& a) {
  auto state = StateOf(a.mountpoint);
  if (!state)
    return ReportError("upgrade",
                       a.mountpoint + ": not a hoist mount (" + state.error().message() + ")");
  const int64_t old_pid = state->pid;
  const int64_t supervisor = state->supervisor_pid;
  if (supervisor <= 0 || !ProcessAlive(supervisor))
    return ReportError("upgrade", a.mountpoint +
                                      ": the mount has no supervisor (mounted with -f?); "
                                      "restart its service instead");
  if (::kill(static_cast<pid_t>(supervisor), SIGUSR2) != 0)
    return ReportError("upgrade", "signalling the supervisor (pid " + std::to_string(supervisor) +
                                      "): " + std::strerror(errno));
  int64_t new_pid = 0;
  auto done = [&] {
    auto now = StateOf(a.mountpoint);
    if (!now || now->pid == old_pid || !ProcessAlive(now->pid)) return false;
    new_pid = now->pid;
    return !ProcessAlive(old_pid);
  };
  if (!PollUntil(done, a.wait_seconds))
    return ReportError("upgrade", a.mountpoint + ": no new daemon took over within " +
                                      std::to_string(a.wait_seconds) +
                                      " s (the old one keeps serving; see its log)");
  std::printf("upgraded %s: pid %lld -> %lld\n", a.mountpoint.c_str(),
              static_cast<long long>(old_pid), static_cast<long long>(new_pid));
  return 0;
}

}  // namespace

void RegisterMount(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<MountArgs>();
  CLI::App* sub = app.add_subcommand(
      "mount", "Mount an image read-only at MOUNTPOINT (runs hoistfs; returns once ready)");
  args->registry.Add(sub);
  sub->add_option("IMAGE", args->image, "Image reference")->required();
  sub->add_option("MOUNTPOINT", args->mountpoint, "An empty directory")->required();
  sub->add_flag("-f,--foreground", args->foreground, "Stay in the foreground");
  sub->add_option("--timeout", args->timeout, "Seconds a read may wait for the network");
  sub->add_option("--prefetch", args->prefetch, "none, priority or all (default all)");
  sub->add_option("--bandwidth", args->bandwidth, "Prefetch cap in bytes/s (k/m/g suffixes)");
  sub->add_option("--cache", args->cache, "Host store directory (env HOIST_CACHE)");
  sub->add_option("--cache-size", args->cache_size, "Chunk cache quota in bytes (k/m/g)");
  sub->add_flag("--allow-other", args->allow_other, "Let other users see the mount");
  sub->add_option("-o", args->extra, "More hoistfs -o options")->allow_extra_args(false);
  sub->callback([args, run] { *run = [args] { return RunMount(*args); }; });
}

void RegisterUpgrade(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<UpgradeArgs>();
  CLI::App* sub = app.add_subcommand(
      "upgrade", "Hand a mount to a new hoistfs daemon (the binary on disk now) without a gap");
  sub->add_option("MOUNTPOINT", args->mountpoint, "A hoist mount")->required();
  sub->add_option("--wait", args->wait_seconds, "Seconds to wait for the new daemon (60)");
  sub->callback([args, run] { *run = [args] { return RunUpgrade(*args); }; });
}

void RegisterUmount(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<UmountArgs>();
  CLI::App* sub = app.add_subcommand("umount", "Unmount a hoist mount and wait for its daemon");
  sub->add_option("MOUNTPOINT", args->mountpoint, "The mountpoint")->required();
  sub->add_option("--wait", args->wait_seconds, "Seconds to wait for the daemon to exit")
      ->capture_default_str();
  sub->callback([args, run] { *run = [args] { return RunUmount(*args); }; });
}

}  // namespace hoist
