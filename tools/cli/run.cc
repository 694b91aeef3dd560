// hoist bundle [--rw] IMAGE DIR / hoist bundle --remove DIR: an OCI runtime bundle on a lazy
//   mount (tools/runtime/bundle.h).
// hoist run [--rm] [--rw] [--runtime PATH] [--name ID] IMAGE [CMD ARGS...]: makes a bundle and
//   runs it with `runc run --bundle DIR ID` in the foreground.
//
// hoist run's contract:
//   - stdin, stdout and stderr are the container's (runc passes them through; -t makes runc
//     allocate a terminal instead). hoist itself prints nothing on stdout, and on stderr only
//     errors, the --timing line, a note naming a kept bundle (without --rm), and one line when
//     the registry is unreachable and the image's local copy is used (fusefs/local_image.h).
//   - the exit code is the container's (runc's: 128+N when it died of signal N); 125 when hoist
//     could not start the container (docker's convention), 127 for a missing runtime.
//   - signals: SIGTERM, SIGHUP, SIGQUIT and SIGINT sent to hoist are forwarded to runc, which
//     forwards them to the container; a terminal's ^C reaches runc directly (same process
//     group), so hoist does not send it twice. hoist then waits for runc and cleans up.
//   - --rm removes the bundle (unmounts everything) after the container exited or after a
//     failed start; without --rm the bundle stays, mounted, for `hoist bundle --remove DIR`.
//   - bundles live in --bundle DIR, else <bundle root>/<ID>: /var/lib/hoist/bundles for root,
//     else $XDG_RUNTIME_DIR/hoist/bundles, else /tmp/hoist-<uid>/bundles.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "base/log.h"
#include "base/spawn.h"
#include "fusefs/stats_file.h"
#include "tools/cli/registry_flags.h"
#include "tools/cli/verbs.h"
#include "tools/image/image_transport.h"
#include "tools/runtime/bundle.h"

namespace hoist {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kStartFailed = 125;

struct CommonArgs {
  RegistryFlags registry;
  std::string image;
  bool rw = false;
  std::string cache;
  std::vector<std::string> mount_options;
  std::string user;
  std::string workdir;
  std::vector<std::string> env;
  std::string entrypoint;
  bool entrypoint_given = false;
  std::string hostname;
  std::string net = "host";
  bool terminal = false;
  std::vector<std::string> cmd;
};

struct BundleArgs {
  CommonArgs common;
  std::string dir;
  std::string remove_dir;
};

struct RunArgs {
  CommonArgs common;
  bool rm = false;
  std::string runtime = "runc";
  std::string name;
  std::string bundle_dir;
  bool timing = false;
};

void AddCommon(CLI::App* sub, CommonArgs* c) {
  c->registry.Add(sub);
  sub->add_flag("--rw", c->rw, "Writable rootfs: an overlay with its upper dir in the bundle");
  sub->add_option("--cache", c->cache, "Host store directory (env HOIST_CACHE)");
  sub->add_option("-o", c->mount_options, "More hoistfs -o options (e.g. prefetch=none)")
      ->allow_extra_args(false);
  sub->add_option("-u,--user", c->user, "User: name, uid, name:group or uid:gid");
  sub->add_option("-w,--workdir", c->workdir, "Working directory inside the container");
  sub->add_option("-e,--env", c->env, "Set an environment variable KEY=VALUE")
      ->allow_extra_args(false);
  sub->add_option("--entrypoint", c->entrypoint, "Replace the image's entrypoint (and its Cmd)");
  sub->add_option("--hostname", c->hostname, "Container host name (default hoist)");
  sub->add_option("--net", c->net, "host (share the host's network, default) or none")
      ->check(CLI::IsMember({"host", "none"}));
  sub->add_flag("-t,--tty", c->terminal, "Give the container a terminal");
}

BundleOptions ToBundleOptions(const CommonArgs& c, const std::string& dir) {
  BundleOptions o;
  o.image = RegistryReferenceText(c.image).value_or(c.image);  // checked by the runners
  o.dir = dir;
  o.rw = c.rw;
  o.cache_dir = c.cache;
  o.mount_options = c.mount_options;
  o.insecure_registries = c.registry.insecure_registries;
  o.hosts_dir = c.registry.hosts_dir;
  o.registries_conf = c.registry.registries_conf;
  o.platform = c.registry.platform;
  o.log_level = c.registry.log_level;
  o.cmd = c.cmd;
  if (!o.cmd.empty() && o.cmd.front() == "--") o.cmd.erase(o.cmd.begin());
  if (c.entrypoint_given) {
    o.entrypoint =
        c.entrypoint.empty() ? std::vector<std::string>{} : std::vector<std::string>{c.entrypoint};
  }
  o.user = c.user;
  o.workdir = c.workdir;
  o.env = c.env;
  o.terminal = c.terminal;
  o.isolated_network = c.net == "none";
  o.hostname = c.hostname;
  return o;
}

int RunBundle(const BundleArgs& a) {
  if (!a.remove_dir.empty()) {
    if (auto s = RemoveBundle(a.remove_dir); !s) return ReportError("bundle", s.error().message());
    return 0;
  }
  if (a.common.image.empty() || a.dir.empty()) {
    return ReportError("bundle",
                       "usage: hoist bundle [--rw] IMAGE DIR | hoist bundle --remove DIR");
  }
  if (auto ref = ParseRegistryReference(a.common.image); !ref) {
    return ReportError("bundle", ref.error().message());
  }
  auto client = a.common.registry.MakeClient();
  if (!client) return ReportError("bundle", client.error().message());
  auto bundle = CreateBundle(**client, ToBundleOptions(a.common, a.dir));
  if (!bundle) return ReportError("bundle", bundle.error().message());
  return 0;
}

// The runtime's path: as given if it has a '/', else looked up in PATH. ENOENT if none.
Result<std::string> FindRuntime(const std::string& runtime) {
  auto executable = [](const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
  };
  if (runtime.find('/') != std::string::npos) {
    if (executable(runtime)) return runtime;
    return Fail(ENOENT, "container runtime " + runtime + " not found (or not executable)");
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    if (dir.empty()) dir = ".";
    if (executable(dir + "/" + runtime)) return dir + "/" + runtime;
    start = end + 1;
  }
  return Fail(ENOENT, "container runtime " + runtime +
                          " not found in PATH (install runc or pass --runtime PATH)");
}

std::string DefaultBundleRoot() {
  if (::geteuid() == 0) return "/var/lib/hoist/bundles";
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/hoist/bundles";
  }
  return "/tmp/hoist-" + std::to_string(::geteuid()) + "/bundles";
}

std::string RandomId() {
  std::random_device rd;
  std::string id = "hoist-";
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 12; ++i) id.push_back(kHex[rd() % 16]);
  return id;
}

bool ValidId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      return false;
    }
  }
  return id[0] != '.' && id[0] != '-';
}

long long Millis(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// Runs the runtime with `forward` blocked in hoist and unblocked in the child; forwards those
// signals (unless the kernel sent them from a terminal to the whole process group) until the
// runtime exits. Returns its exit code (128+N if it died of signal N).
int RunRuntime(const std::vector<std::string>& args, const sigset_t& forward,
               const sigset_t& old_mask) {
  SpawnOptions spawn;  // stdio passed through
  spawn.signal_mask = old_mask;
  auto child = Spawn(args, spawn);
  if (!child) {
    std::fprintf(stderr, "hoist run: cannot run %s\n", child.error().message().c_str());
    // Out of processes or memory: hoist could not start it. Anything else: exec failed.
    const int err = child.error().code();
    return err == EAGAIN || err == ENOMEM ? kStartFailed : 127;
  }
  while (true) {
    auto ended = child->TryWait();
    if (!ended) return kStartFailed;
    if (*ended) return (*ended)->ShellCode();
    siginfo_t info;
    const timespec tick{0, 20 * 1000 * 1000};
    const int sig = ::sigtimedwait(&forward, &info, &tick);
    if (sig > 0 && info.si_code != SI_KERNEL) (void)child->Signal(sig);
  }
}

int RunRun(const RunArgs& a) {
  const auto t0 = Clock::now();
  LogLevel level;
  if (!ParseLogLevel(a.common.registry.log_level, &level)) {
    return ReportError("run", "unknown log level \"" + a.common.registry.log_level + "\"",
                       kStartFailed);
  }
  auto runtime = FindRuntime(a.runtime);
  if (!runtime) return ReportError("run", runtime.error().message(), 127);
  const std::string id = a.name.empty() ? RandomId() : a.name;
  if (!ValidId(id)) {
    return ReportError("run", "container name \"" + id + "\": use letters, digits, '_', '-', '.'",
                       kStartFailed);
  }
  std::string dir = a.bundle_dir;
  if (dir.empty()) {
    const std::string root = DefaultBundleRoot();
    if (auto s = MakeDirs(root, 0700); !s) return ReportError("run", s.error().message(), 125);
    dir = root + "/" + id;
  }

  // Signals wait (pending) while the bundle is made; checked before the container starts.
  sigset_t forward, old_mask;
  sigemptyset(&forward);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&forward, sig);
  ::sigprocmask(SIG_BLOCK, &forward, &old_mask);
  struct MaskRestore {
    sigset_t mask;
    ~MaskRestore() { ::sigprocmask(SIG_SETMASK, &mask, nullptr); }
  } restore{old_mask};

  if (auto ref = ParseRegistryReference(a.common.image); !ref) {
    return ReportError("run", ref.error().message(), kStartFailed);
  }
  auto client = a.common.registry.MakeClient();
  if (!client) return ReportError("run", client.error().message(), kStartFailed);
  auto bundle = CreateBundle(**client, ToBundleOptions(a.common, dir));
  if (!bundle) return ReportError("run", bundle.error().message(), kStartFailed);
  const auto t_mounted = Clock::now();

  auto remove = [&]() -> bool {
    if (auto s = RemoveBundle(bundle->dir); !s) {
      ReportError("run", s.error().message());
      return false;
    }
    return true;
  };

  sigset_t pending;
  sigemptyset(&pending);
  ::sigpending(&pending);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
    if (sigismember(&pending, sig)) {
      remove();
      return 128 + sig;
    }
  }

  int code = RunRuntime({*runtime, "run", "--bundle", bundle->dir, id}, forward, old_mask);
  const auto t_exited = Clock::now();
  if (code == 127 || code == 128 + SIGKILL) {
    // The runtime did not run, or died without cleaning up: drop its container state.
    SpawnOptions quiet;
    quiet.stdin_to = Stdio::Null();
    quiet.stdout_to = Stdio::Null();
    quiet.stderr_to = Stdio::Null();
    quiet.signal_mask = old_mask;
    if (auto del = Spawn({*runtime, "delete", "--force", id}, quiet)) (void)del->Wait();
  }
  if (a.rm) {
    if (!remove() && code == 0) code = 1;
  } else {
    std::fprintf(stderr, "hoist run: kept bundle %s (remove it with: hoist bundle --remove %s)\n",
                 bundle->dir.c_str(), bundle->dir.c_str());
  }

  if (a.timing || level == LogLevel::kDebug) {
    std::string fetched = "fetched ? bytes";
    if (auto state = ReadMountStateFile(bundle->mount_state_file)) {
      const auto& s = state->stats;
      char buf[256];
      const double share = bundle->image_bytes > 0 ? 100.0 * static_cast<double>(s.bytes_fetched) /
                                                         static_cast<double>(bundle->image_bytes)
                                                   : 0.0;
      std::snprintf(buf, sizeof(buf),
                    "fetched %llu bytes (%.1f%% of the image's %llu), %llu of them by prefetch",
                    static_cast<unsigned long long>(s.bytes_fetched), share,
                    static_cast<unsigned long long>(bundle->image_bytes),
                    static_cast<unsigned long long>(s.prefetch_bytes));
      fetched = buf;
    }
    char line[512];
    std::snprintf(line, sizeof(line),
                  "hoist run: mounted in %lld ms, container exited %d after %lld ms, %s",
                  Millis(t_mounted - t0), code, Millis(t_exited - t_mounted), fetched.c_str());
    if (a.timing) {
      std::fprintf(stderr, "%s\n", line);
    } else {
      HOIST_LOG(kDebug) << line;
    }
  }
  return code;
}

}  // namespace

void RegisterBundle(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<BundleArgs>();
  CLI::App* sub = app.add_subcommand(
      "bundle", "Make an OCI runtime bundle (config.json + lazily mounted rootfs) in DIR");
  AddCommon(sub, &args->common);
  sub->add_option("--remove", args->remove_dir, "Unmount and delete a bundle made by hoist bundle");
  sub->add_option("IMAGE", args->common.image, "Image reference");
  sub->add_option("DIR", args->dir, "The bundle directory (must not exist)");
  sub->add_option("CMD", args->common.cmd, "Command and arguments (replace the image's Cmd)");
  sub->positionals_at_end();
  sub->prefix_command();
  // --entrypoint "" must count as given: CLI11's count tells.
  CLI::Option* ep = sub->get_option("--entrypoint");
  sub->callback([args, run, ep] {
    args->common.entrypoint_given = ep->count() > 0;
    *run = [args] { return RunBundle(*args); };
  });
}

void RegisterRun(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* sub = app.add_subcommand("run", "Run a container from an image, lazily mounted (runc)");
  AddCommon(sub, &args->common);
  sub->add_flag("--rm", args->rm, "Remove the bundle (unmount everything) when it exits");
  sub->add_option("--runtime", args->runtime, "OCI runtime (default runc from PATH)");
  sub->add_option("--name", args->name, "Container id (default hoist-<random>)");
  sub->add_option("--bundle", args->bundle_dir, "Bundle directory (must not exist)");
  sub->add_flag("--timing", args->timing, "Print mount time, run time and bytes fetched to stderr");
  sub->add_option("IMAGE", args->common.image, "Image reference")->required();
  sub->add_option("CMD", args->common.cmd, "Command and arguments (replace the image's Cmd)");
  sub->positionals_at_end();
  sub->prefix_command();
  CLI::Option* ep = sub->get_option("--entrypoint");
  sub->callback([args, run, ep] {
    args->common.entrypoint_given = ep->count() > 0;
    *run = [args] { return RunRun(*args); };
  });
}

}  // namespace hoist
