#include "tools/runtime/bundle.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <ctime>
#include <thread>

#include "base/file_util.h"
#include "base/log.h"
#include "base/mountinfo.h"
#include "base/process.h"
#include "base/root_dir.h"
#include "base/scoped_fd.h"
#include "base/spawn.h"
#include "fusefs/local_image.h"
#include "fusefs/mount.h"
#include "fusefs/mount_options.h"
#include "fusefs/stats_file.h"
#include "tools/runtime/runtime_spec.h"

namespace hoist {
namespace {

constexpr char kStateName[] = "hoist-bundle.json";

struct BundleMount {
  std::string type;  // "fuse.hoistfs" or "overlay"
  std::string target;
};

struct BundleState {
  std::string image;
  std::vector<BundleMount> mounts;  // in mount order
  std::string mount_state_file;
};

std::string StateToJson(const BundleState& s) {
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buffer);
  w.SetIndent(' ', 2);
  w.StartObject();
  w.Key("image");
  w.String(s.image.c_str());
  w.Key("mount_state_file");
  w.String(s.mount_state_file.c_str());
  w.Key("mounts");
  w.StartArray();
  for (const BundleMount& m : s.mounts) {
    w.StartObject();
    w.Key("type");
    w.String(m.type.c_str());
    w.Key("target");
    w.String(m.target.c_str());
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize()) + "\n";
}

Result<BundleState> StateFromJson(std::string_view text) {
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError() || !doc.IsObject()) return Fail(EINVAL, "malformed JSON");
  BundleState s;
  auto str = [&](const rapidjson::Value& obj, const char* key, std::string* out) {
    auto it = obj.FindMember(key);
    if (it == obj.MemberEnd() || !it->value.IsString()) return false;
    *out = std::string(it->value.GetString(), it->value.GetStringLength());
    return true;
  };
  str(doc, "image", &s.image);
  str(doc, "mount_state_file", &s.mount_state_file);
  auto mounts = doc.FindMember("mounts");
  if (mounts == doc.MemberEnd() || !mounts->value.IsArray()) {
    return Fail(EINVAL, "no \"mounts\" list");
  }
  for (const rapidjson::Value& m : mounts->value.GetArray()) {
    BundleMount bm;
    if (!m.IsObject() || !str(m, "type", &bm.type) || !str(m, "target", &bm.target) ||
        bm.target.empty() || bm.target[0] != '/') {
      return Fail(EINVAL, "malformed mount entry");
    }
    s.mounts.push_back(std::move(bm));
  }
  return s;
}

std::string SelfDir() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string path(buf, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

// "/a/b/" -> "/a/b"; relative paths are made absolute against the cwd; the parent directory is
// canonicalised (it must exist), the last component is kept as given.
Result<std::string> AbsoluteBundlePath(const std::string& dir) {
  std::string path = dir;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path.empty()) return Fail(EINVAL, "empty bundle directory");
  const size_t slash = path.rfind('/');
  std::string parent =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.empty() || base == "." || base == "..") {
    return Fail(EINVAL, "bundle directory " + dir + ": not a new directory name");
  }
  char resolved[PATH_MAX];
  if (::realpath(parent.c_str(), resolved) == nullptr) {
    return Fail(ErrnoError("bundle directory's parent " + parent));
  }
  std::string out = resolved;
  return (out == "/" ? "" : out) + "/" + base;
}

bool IsMounted(const std::string& target) {
  auto mounts = MountsUnder(target);
  return mounts && std::find(mounts->begin(), mounts->end(), target) != mounts->end();
}

// Unmounts `target` if it is mounted. A busy mount is retried for a while (a runtime that just
// exited may still hold it), then detached lazily.
Status Unmount(const std::string& target) {
  if (!IsMounted(target)) return Ok();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (true) {
    if (::umount2(target.c_str(), UMOUNT_NOFOLLOW) == 0) return Ok();
    const int err = errno;
    if (err == EINVAL && !IsMounted(target)) return Ok();
    if (err != EBUSY || std::chrono::steady_clock::now() >= deadline) {
      if (err == EBUSY && ::umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) {
        HOIST_LOG(kWarning) << "hoist bundle: " << target << " was busy; detached it lazily";
        return Ok();
      }
      return Fail(ErrnoError("unmounting " + target, err));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// Undoes the mounts of `state` (last first) and waits for the hoistfs daemon to finish its
// clean exit. Keeps going after an error and returns the first one.
Status UnmountAll(const BundleState& state) {
  int64_t daemon_pid = 0;
  int64_t supervisor_pid = 0;
  if (!state.mount_state_file.empty()) {
    if (auto ms = ReadMountStateFile(state.mount_state_file)) {
      daemon_pid = ms->pid;
      supervisor_pid = ms->supervisor_pid;
    }
  }
  Status first = Ok();
  for (auto it = state.mounts.rbegin(); it != state.mounts.rend(); ++it) {
    Status s = Unmount(it->target);
    if (!s && first) first = s;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((ProcessAlive(daemon_pid) || ProcessAlive(supervisor_pid)) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return first;
}

Status WriteState(const std::string& dir, const BundleState& state) {
  return WriteFileAtomic(dir + "/" + kStateName, StateToJson(state), 0644);
}

// The last non-empty line of `text`, without a "hoistfs: " prefix.
std::string LastLine(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  const size_t nl = text.rfind('\n');
  std::string line = nl == std::string::npos ? text : text.substr(nl + 1);
  constexpr std::string_view kPrefix = "hoistfs: ";
  if (line.starts_with(kPrefix)) line = line.substr(kPrefix.size());
  return line;
}

Status MakeDir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0) return Fail(ErrnoError("mkdir " + path));
  if (::chmod(path.c_str(), mode) != 0) return Fail(ErrnoError("chmod " + path));
  return Ok();
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// The image's user databases are read through the mount but resolved inside it, regular files
// only, and capped: a symlink to the host's /etc/shadow, /dev/zero or a FIFO never reaches hoist.
constexpr size_t kMaxUserDatabaseBytes = 16 << 20;

// Creates `rel` ("a/b/c") under the host directory `base`, each new component with the mode and
// owner it has in `lower` (resolved inside the image) if it is a directory there, else 0755 root.
// Every step is taken relative to the directory fd reached so far with O_NOFOLLOW, so a symlink
// on the way (which on a writable rootfs comes from the image) is never followed out of `base`:
// such a component is refused.
Status MakeSkelPath(const std::string& base, const RootDir& lower, const std::string& rel) {
  ScopedFd dir(::open(base.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return Fail(ErrnoError("open " + base));
  std::string sub;
  size_t start = 0;
  while (start < rel.size()) {
    size_t end = rel.find('/', start);
    if (end == std::string::npos) end = rel.size();
    const std::string part = rel.substr(start, end - start);
    start = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return Fail(EINVAL, "path " + rel + ": '..' not allowed");
    sub += "/" + part;
    struct stat st;
    if (::fstatat(dir.get(), part.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        return Fail(ENOTDIR, "path " + rel + ": " + sub +
                                 " is not a directory (hoist does not create directories "
                                 "through a symlink)");
      }
    } else if (errno != ENOENT) {
      return Fail(ErrnoError("stat " + base + sub));
    } else {
      mode_t mode = 0755;
      uid_t uid = 0;
      gid_t gid = 0;
      HOIST_ASSIGN_OR_RETURN(std::optional<struct stat> in_image, lower.Stat(sub));
      if (in_image && S_ISDIR(in_image->st_mode)) {
        mode = in_image->st_mode & 07777;
        uid = in_image->st_uid;
        gid = in_image->st_gid;
      }
      if (::mkdirat(dir.get(), part.c_str(), mode) != 0) {
        return Fail(ErrnoError("mkdir " + base + sub));
      }
      // Not through a name: the directory just made, opened without following anything.
      ScopedFd made(
          ::openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!made.valid() || ::fchmod(made.get(), mode) != 0 || ::fchown(made.get(), uid, gid) != 0) {
        return Fail(ErrnoError("setting the owner and mode of " + base + sub));
      }
    }
    ScopedFd next(::openat(dir.get(), part.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next.valid()) return Fail(ErrnoError("open " + base + sub));
    dir = std::move(next);
  }
  return Ok();
}

// nodev like the hoistfs mount below it: the container's /dev is a tmpfs of its own.
Status MountOverlay(const std::string& target, const std::string& options, bool read_only) {
  const unsigned long flags = MS_NODEV | (read_only ? MS_RDONLY : 0);
  if (::mount("overlay", target.c_str(), "overlay", flags, options.c_str()) != 0) {
    return Fail(ErrnoError("mounting overlay at " + target + " (" + options + ")"));
  }
  return Ok();
}

// Everything CreateBundle does once DIR exists; the caller undoes it on error.
class BundleBuilder {
 public:
  BundleBuilder(const BundleOptions& options, std::string dir, const ResolvedImage& image,
                std::string pinned)
      : o_(options), dir_(std::move(dir)), image_(image) {
    state_.image = std::move(pinned);
  }

  const BundleState& state() const { return state_; }

  Result<Bundle> Build(const std::vector<std::string>& args) {
    HOIST_RETURN_IF_ERROR(WriteState(dir_, state_));
    // Mount the image at DIR/lower first: what the rootfs needs depends on its content.
    const std::string lower = dir_ + "/lower";
    HOIST_RETURN_IF_ERROR(MakeDir(lower, 0755));
    HOIST_RETURN_IF_ERROR(MountHoistfs(lower));

    HOIST_ASSIGN_OR_RETURN(const RootDir image_root, RootDir::Open(lower, "image " + o_.image));
    HOIST_ASSIGN_OR_RETURN(std::optional<std::string> passwd,
                           image_root.ReadRegularFile("/etc/passwd", kMaxUserDatabaseBytes));
    HOIST_ASSIGN_OR_RETURN(std::optional<std::string> group,
                           image_root.ReadRegularFile("/etc/group", kMaxUserDatabaseBytes));
    const std::string user_spec = o_.user.empty() ? image_.config.user : o_.user;
    auto user = ResolveExecUser(user_spec, passwd, group);
    if (!user) return Fail(user.error().Context("image " + o_.image));

    std::string cwd = o_.workdir.empty() ? image_.config.working_dir : o_.workdir;
    if (cwd.empty()) cwd = "/";
    if (cwd[0] != '/') return Fail(EINVAL, "working directory " + cwd + ": not absolute");

    const std::string rootfs = dir_ + "/rootfs";
    if (o_.rw) {
      HOIST_RETURN_IF_ERROR(MakeDir(dir_ + "/upper", 0755));
      HOIST_RETURN_IF_ERROR(MakeDir(dir_ + "/work", 0700));
      HOIST_RETURN_IF_ERROR(MakeDir(rootfs, 0755));
      HOIST_RETURN_IF_ERROR(Record("overlay", rootfs));
      HOIST_RETURN_IF_ERROR(MountOverlay(
          rootfs, "lowerdir=" + lower + ",upperdir=" + dir_ + "/upper,workdir=" + dir_ + "/work",
          /*read_only=*/false));
      // runc creates missing mount points itself on a writable rootfs, not the working dir.
      HOIST_ASSIGN_OR_RETURN(const RootDir rootfs_root, RootDir::Open(rootfs, "rootfs " + rootfs));
      HOIST_ASSIGN_OR_RETURN(std::optional<struct stat> cwd_st, rootfs_root.Stat(cwd));
      if (!cwd_st) HOIST_RETURN_IF_ERROR(MakeSkelPath(rootfs, image_root, cwd));
    } else {
      std::vector<std::string> missing;
      for (const std::string& dest : RuntimeSpecMountDestinations()) {
        const std::string top = dest.substr(0, dest.find('/', 1));
        HOIST_ASSIGN_OR_RETURN(std::optional<struct stat> top_st,
                               image_root.Stat(top, RootDir::Follow::kNo));
        if (!top_st && std::find(missing.begin(), missing.end(), top) == missing.end()) {
          missing.push_back(top);
        }
      }
      HOIST_ASSIGN_OR_RETURN(std::optional<struct stat> cwd_st, image_root.Stat(cwd));
      if (!cwd_st) missing.push_back(cwd);
      if (missing.empty()) {
        // The mount itself is the rootfs: bind it at DIR/rootfs (MS_MOVE would fail under a
        // shared parent mount, and the daemon would later unmount a path that is gone).
        HOIST_RETURN_IF_ERROR(MakeDir(rootfs, 0755));
        HOIST_RETURN_IF_ERROR(Record("bind", rootfs));
        if (::mount(lower.c_str(), rootfs.c_str(), nullptr, MS_BIND, nullptr) != 0) {
          return Fail(ErrnoError("bind-mounting " + lower + " at " + rootfs));
        }
        // A bind mount starts without the source's per-mount flags: ro and nodev again.
        if (::mount(nullptr, rootfs.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NODEV,
                    nullptr) != 0) {
          return Fail(ErrnoError("remounting " + rootfs + " ro,nodev"));
        }
      } else {
        const std::string skel = dir_ + "/skel";
        struct stat st;
        if (::stat(lower.c_str(), &st) != 0) return Fail(ErrnoError("stat " + lower));
        HOIST_RETURN_IF_ERROR(MakeDir(skel, st.st_mode & 07777));
        if (::chown(skel.c_str(), st.st_uid, st.st_gid) != 0) {
          return Fail(ErrnoError("chown " + skel));
        }
        for (const std::string& m : missing) {
          HOIST_RETURN_IF_ERROR(MakeSkelPath(skel, image_root, m));
        }
        HOIST_RETURN_IF_ERROR(MakeDir(rootfs, 0755));
        HOIST_RETURN_IF_ERROR(Record("overlay", rootfs));
        HOIST_RETURN_IF_ERROR(
            MountOverlay(rootfs, "lowerdir=" + skel + ":" + lower, /*read_only=*/true));
      }
    }

    RuntimeSpecOptions spec;
    spec.args = args;
    spec.user = *user;
    spec.env = ContainerEnv(image_.config.env, o_.env, *user, o_.terminal);
    spec.cwd = cwd;
    spec.terminal = o_.terminal;
    spec.hostname = o_.hostname.empty() ? "hoist" : o_.hostname;
    spec.readonly_root = !o_.rw;
    spec.isolated_network = o_.isolated_network;
    spec.annotations = image_.config.labels;
    if (struct rlimit rl; ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY) {
      spec.nofile_hard = std::min<uint64_t>(spec.nofile_hard, rl.rlim_max);
      spec.nofile_soft = std::min<uint64_t>(spec.nofile_soft, spec.nofile_hard);
    }
    spec.annotations["org.opencontainers.image.ref.name"] = o_.image;
    HOIST_RETURN_IF_ERROR(WriteFileAtomic(dir_ + "/config.json", RuntimeSpecJson(spec), 0644));

    Bundle bundle;
    bundle.dir = dir_;
    bundle.image = state_.image;
    bundle.hoistfs_mountpoint = hoistfs_mountpoint_;
    bundle.mount_state_file = state_.mount_state_file;
    for (const auto& layer : image_.manifest.layers) bundle.image_bytes += layer.size;
    return bundle;
  }

 private:
  Status Record(const std::string& type, const std::string& target) {
    state_.mounts.push_back({type, target});
    return WriteState(dir_, state_);
  }

  Status MountHoistfs(const std::string& mountpoint) {
    std::string hoistfs = o_.hoistfs;
    if (hoistfs.empty()) {
      hoistfs = SelfDir() + "/hoistfs";
      if (::access(hoistfs.c_str(), X_OK) != 0) hoistfs = "hoistfs";
    }
    std::string opts = "suid,allow_other";
    for (const std::string& h : o_.insecure_registries) opts += ",insecure_registry=" + h;
    if (!o_.hosts_dir.empty()) opts += ",hosts_dir=" + o_.hosts_dir;
    if (!o_.registries_conf.empty()) opts += ",registries_conf=" + o_.registries_conf;
    if (!o_.platform.empty()) opts += ",platform=" + o_.platform;
    if (!o_.log_level.empty()) opts += ",log_level=" + o_.log_level;
    for (const std::string& e : o_.mount_options) opts += "," + e;
    std::vector<std::string> argv = {hoistfs};
    if (!o_.cache_dir.empty()) {
      argv.push_back("--cache");
      argv.push_back(o_.cache_dir);
    }
    argv.insert(argv.end(), {"-o", opts, state_.image, mountpoint});

    // The state file path is fixed before mounting (the daemon computes it the same way).
    auto canonical = CanonicalMountpointNoFollow(mountpoint);
    if (!canonical) return Fail(canonical.error());
    state_.mount_state_file = StateFileForCanonicalMountpoint(*canonical, DefaultStateDir());
    // Recorded before the attempt: a daemon that mounted but then failed to report is undone.
    HOIST_RETURN_IF_ERROR(Record("fuse.hoistfs", mountpoint));

    const auto start = std::chrono::steady_clock::now();
    // stdin and stdout on /dev/null, stderr (the daemon's one-line error) captured. The daemon
    // gets an empty signal mask: it must see SIGTERM & co. even if the caller (hoist run) blocks
    // them.
    SpawnOptions spawn;
    spawn.search_path = true;
    spawn.stdin_to = Stdio::Null();
    spawn.stdout_to = Stdio::Null();
    spawn.stderr_to = Stdio::Capture();
    auto r = RunAndCapture(argv, spawn, {.max_capture = 64 << 10});
    if (!r) {
      return Fail(r.error().code(), "mounting " + o_.image + ": cannot run " + r.error().message());
    }
    if (!r->status.ok()) {
      const std::string line = LastLine(r->stderr_text);
      return Fail(r->status.ShellCode() == 127 ? ENOENT : EIO,
                  "mounting " + o_.image + ": " + (line.empty() ? "hoistfs failed" : line));
    }
    hoistfs_mountpoint_ = mountpoint;
    HOIST_LOG(kInfo) << "hoist bundle: mounted " << state_.image << " at " << mountpoint << " in "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - start)
                            .count()
                     << " ms";
    return Ok();
  }

  const BundleOptions& o_;
  const std::string dir_;
  const ResolvedImage& image_;
  BundleState state_;
  std::string hoistfs_mountpoint_;
};

}  // namespace

Result<std::vector<std::string>> MountsUnder(const std::string& dir) {
  return MountPointsUnder(dir);
}

namespace {

// Records an image resolved online under the name the user gave (RecordMountedImage), so a
// later run works with the registry down; the mount records only the pinned digest reference.
// A failure is a warning: the bundle does not need the record.
void RecordForOffline(RegistryClient& client, const ResolvedImage& image,
                      const MountOptions& mount_options) {
  Status s = [&]() -> Status {
    HOIST_ASSIGN_OR_RETURN(std::string cache_dir, ResolveCacheDir(mount_options.cache_dir));
    StoreOptions so;
    if (mount_options.cache_size > 0) so.cache.quota_bytes = mount_options.cache_size;
    HOIST_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::Open(cache_dir, so));
    return RecordMountedImage(*store, client, image, mount_options.connect_timeout);
  }();
  if (!s) {
    HOIST_LOG(kWarning) << "not recorded for offline runs: " << s.error().message();
  }
}

}  // namespace

Result<Bundle> CreateBundle(RegistryClient& client, const BundleOptions& options) {
  HOIST_ASSIGN_OR_RETURN(std::string dir, AbsoluteBundlePath(options.dir));
  if (dir.find_first_of(",:\n") != std::string::npos) {
    return Fail(EINVAL,
                "bundle directory " + dir + ": ',' ':' and newlines cannot be passed to overlayfs");
  }
  if (Exists(dir)) return Fail(EEXIST, "bundle directory " + dir + " already exists");

  HOIST_ASSIGN_OR_RETURN(Reference ref, Reference::Parse(options.image));
  std::optional<Platform> platform;
  if (!options.platform.empty()) {
    HOIST_ASSIGN_OR_RETURN(platform, Platform::Parse(options.platform));
  }
  // The registry, else (unreachable, or -o offline) the image's copy in the host store.
  MountOptions mount_options;
  for (const std::string& list : options.mount_options) {
    HOIST_RETURN_IF_ERROR(ApplyMountOptionList(list, &mount_options));
  }
  mount_options.cache_dir = options.cache_dir;
  HOIST_ASSIGN_OR_RETURN(ImageChoice choice,
                         ResolveImageOrLocal(client, ref, platform, mount_options));
  ResolvedImage& image = choice.image;
  BundleOptions mount_with = options;
  if (choice.from_local_store) {
    if (!choice.warning.empty()) {
      HOIST_LOG(kWarning) << choice.warning;
    }
    // The mount then needs no second try of the registry: reads the copy lacks fail at once.
    if (!mount_options.offline) mount_with.mount_options.push_back("offline");
  } else {
    RecordForOffline(client, image, mount_options);
  }
  // Everything that needs no mount is checked before anything is created.
  HOIST_ASSIGN_OR_RETURN(
      std::vector<std::string> args,
      ContainerArgs(image.config.entrypoint, image.config.cmd, options.entrypoint, options.cmd));
  // The mount is pinned to the manifest whose config this is.
  const std::string pinned = ref.WithDigest(image.manifest_bytes.digest).String();

  if (::mkdir(dir.c_str(), 0700) != 0) {
    if (errno == EEXIST) return Fail(EEXIST, "bundle directory " + dir + " already exists");
    return Fail(ErrnoError("creating bundle directory " + dir));
  }
  BundleBuilder builder(mount_with, dir, image, pinned);
  auto bundle = builder.Build(args);
  if (bundle) return bundle;
  // Undo: unmount what was mounted, then delete DIR (only if nothing is left mounted there).
  Status undone = UnmountAll(builder.state());
  auto left = MountsUnder(dir);
  if (undone && left && left->empty()) {
    if (auto s = RemoveTree(dir); !s) {
      HOIST_LOG(kWarning) << "hoist bundle: removing " << dir << ": " << s.error().message();
    }
  } else {
    HOIST_LOG(kError) << "hoist bundle: could not undo the mounts under " << dir
                      << (undone ? std::string() : ": " + undone.error().message());
  }
  return Fail(bundle.error());
}

Status RemoveBundle(const std::string& dir_arg) {
  HOIST_ASSIGN_OR_RETURN(std::string dir, AbsoluteBundlePath(dir_arg));
  auto text = ReadFile(dir + "/" + kStateName);
  if (!text) {
    return Fail(text.error().code(),
                dir + " is not a hoist bundle (" + text.error().message() + ")");
  }
  auto state = StateFromJson(*text);
  if (!state) return Fail(state.error().Context(dir + "/" + kStateName));
  for (const BundleMount& m : state->mounts) {
    if (m.target != dir && !m.target.starts_with(dir + "/")) {
      return Fail(EINVAL, dir + "/" + kStateName + ": mount " + m.target + " is outside " + dir);
    }
  }
  Status unmounted = UnmountAll(*state);
  HOIST_ASSIGN_OR_RETURN(std::vector<std::string> left, MountsUnder(dir));
  if (!left.empty()) {
    return Fail(EBUSY, "bundle " + dir + ": still mounted: " + left.back() +
                           (unmounted ? "" : " (" + unmounted.error().message() + ")"));
  }
  return RemoveTree(dir);
}

}  // namespace hoist
