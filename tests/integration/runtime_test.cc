// hoist bundle / hoist run against a REAL registry (TestRegistry), REAL FUSE mounts made by the
// real hoistfs, images converted by the real `hoist convert`, and the REAL runc. Runs as root;
// a missing runc, skopeo or /dev/fuse makes the tests FAIL, never skip.
//
// The image: tests/harness/python_image.h's (busybox-static plus the host's python3.11 with its
// libraries and minimal stdlib), with /etc/passwd, /etc/group and /home/app. Tags: "py" (the
// image), "user" (same layers, User "app" and WorkingDir /home/app/work, which the image lacks),
// "nocmd" (no command).
//
//   Python          hoist run IMG python3 -c 'print(40+2)' prints 42, exit 0, nothing else
//   ExitCodes       sh -c 'exit 7' -> 7, exit 255 -> 255, false -> 1
//   Stdio           stdin piped through cat; stdout and stderr kept apart
//   ReadWrite       --rw writes land in DIR/upper; the mount and a second container don't see
//                   them
//   UserAndWorkdir  User by name -> uid, gid, additionalGids from /etc/group; WorkingDir
//   Bundle          hoist bundle + runc run by hand; mounts (suid hoistfs), config.json fields;
//                   --remove leaves no mount and no directory
//   OfflineRun      registry stopped: run and bundle (-o offline) of a loaded image, and run of
//                   an image only ever run before, start from the local store with one notice
//                   line (none with -o offline); an image in neither place: exit 125, one line
//   Signals         SIGTERM to hoist run reaches the container; --rm still cleans up
//   HostileImageFilesStayInside
//                   etc/passwd -> /etc/shadow, -> a planted host file, through a symlinked
//                   etc/ directory, a FIFO, etc/group -> /dev/zero, and a WorkingDir through a
//                   symlink aimed at a host directory: nothing of the host is read or created
//   BadInput        missing runtime, no command, existing DIR, unknown user, unknown image,
//                   --remove of a non-bundle: one line, nothing mounted, nothing left
//   MountHelper     `mount -t fuse.hoistfs` and an fstab line (`mount -T FILE`): mount(8)
//                   runs hoistfs from its default PATH, so a private mount namespace binds a
//                   directory holding the built hoistfs over /usr/local/sbin
//   SystemdUnits    `systemd-analyze verify` passes on every unit in systemd/ (the built
//                   binaries bound over /usr/local/bin in a private mount namespace), and
//                   fails on a broken copy
//   NotifyReady     hoistfs -f stores its mount's state memfd and /dev/fuse fd (FDSTORE=1) and
//                   then sends READY=1 to $NOTIFY_SOCKET, once the mount is there
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/fd_store.h"
#include "base/file_util.h"
#include "base/mountinfo.h"
#include "fusefs/handoff_state.h"
#include "fusefs/stats_file.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/python_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tools/runtime/bundle.h"

#ifndef HOIST_BINARY
#error "HOIST_BINARY must name the hoist executable"
#endif
#ifndef HOISTFS_BINARY
#error "HOISTFS_BINARY must name the hoistfs executable"
#endif
#ifndef HOIST_SOURCE_DIR
#error "HOIST_SOURCE_DIR must name the source tree (for systemd/)"
#endif

namespace hoist {
namespace {

using harness::CommandOptions;
using harness::CommandResult;
using harness::FileSpec;
using harness::ImageSpec;
using harness::LayerSpec;

constexpr char kPasswd[] =
    "root:x:0:0:root:/root:/bin/sh\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n";
constexpr char kGroup[] =
    "root:x:0:\n"
    "app:x:1000:\n"
    "staff:x:50:app\n";

CommandResult Exec(const std::vector<std::string>& argv, const std::string& stdin_data = "",
                   std::chrono::seconds timeout = std::chrono::seconds(60)) {
  CommandOptions options;
  options.timeout = timeout;
  options.stdin_data = stdin_data;
  return harness::RunForResult(argv, options);
}

std::string Describe(const CommandResult& r) {
  return r.Describe() + "\nstdout: " + r.stdout_text + "\nstderr: " + r.stderr_text;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::vector<std::string> MountsIn(const std::string& dir) {
  auto m = MountsUnder(dir);
  return m ? *m : std::vector<std::string>{"<mountinfo unreadable>"};
}

// The per-mount options of the mount at `target` (base/mountinfo.h).
std::string MountOptionsOf(const std::string& target) {
  auto table = ReadMountInfo();
  if (!table) return "";
  for (const MountInfoEntry& e : *table) {
    if (e.mount_point == target) return e.options;
  }
  return "";
}

// The python image (tests/harness/python_image.h) with users for UserAndWorkdir.
Result<std::vector<LayerSpec>> BuildLayers() {
  return harness::PythonImageLayers({FileSpec::File("etc/passwd", kPasswd),
                                     FileSpec::File("etc/group", kGroup),
                                     FileSpec::Dir("home/app").Owner(1000, 1000)});
}

class RuntimeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto check = harness::RequirePrograms(
        {"runc", "skopeo", "ldd", "fusermount3", "mount.fuse3", "unshare", "systemd-analyze"});
    if (!check) {
      setup_error_ = check.error().message();
      return;
    }
    if (auto s = Prepare(); !s) setup_error_ = s.error().message();
  }

  static Status Prepare() {
    char templ[] = "/tmp/hoist-runtime-test-XXXXXX";
    if (::mkdtemp(templ) == nullptr) return Fail(ErrnoError("mkdtemp"));
    work_ = templ;
    cache_ = work_ + "/cache";
    HOIST_ASSIGN_OR_RETURN(registry_, harness::TestRegistry::Launch());
    HOIST_ASSIGN_OR_RETURN(std::vector<LayerSpec> layers, BuildLayers());
    const std::string layout = work_ + "/layout";
    struct Tag {
      std::string tag;
      ImageSpec spec;
    };
    ImageSpec py{.tag = "py"};
    py.cmd = {"python3"};
    ImageSpec user{.tag = "user"};
    user.cmd = {"sh", "-c", "id -u; id -G; pwd"};
    user.user = "app";
    user.working_dir = "/home/app/work";
    user.labels = {{"org.example.purpose", "runtime-test"}};
    ImageSpec nocmd{.tag = "nocmd"};
    for (const ImageSpec& spec : {py, user, nocmd}) {
      HOIST_ASSIGN_OR_RETURN(harness::BuiltImage img, harness::BuildOciImage(layout, layers, spec));
      HOIST_RETURN_IF_ERROR(
          harness::PushOciLayout(img.OciRef(), registry_->DockerRef("rt", spec.tag)));
    }
    for (const std::string tag : {"py", "user"}) {
      auto converted =
          harness::RunChecked({HOIST_BINARY, "convert", registry_->DockerRef("rt", tag),
                               registry_->DockerRef("rt", tag + "-zstd")});
      if (!converted) return Fail(converted.error());
    }
    HOIST_RETURN_IF_ERROR(PrepareHostileImages(layout));
    py_image_ = registry_->ImageRef("rt", "py-zstd");
    user_image_ = registry_->ImageRef("rt", "user-zstd");
    nocmd_image_ = registry_->ImageRef("rt", "nocmd");
    return Ok();
  }

  // Images whose files aim at the host (see HostileImageFilesStayInside). The "host" side is
  // work_/planted: a passwd naming uid 4242 and a directory the cwd link points at.
  static Status PrepareHostileImages(const std::string& layout) {
    planted_ = work_ + "/planted";
    HOIST_RETURN_IF_ERROR(MakeDirs(planted_ + "/cwd-target"));
    HOIST_RETURN_IF_ERROR(
        WriteFileAtomic(planted_ + "/passwd", "app:x:4242:4242:planted:/planted-home:/bin/sh\n"));
    struct Hostile {
      std::string tag;
      std::vector<FileSpec> files;
      std::string user;
      std::string working_dir;
    };
    const std::vector<Hostile> images = {
        {"shadow", {FileSpec::Dir("etc"), FileSpec::Symlink("etc/passwd", "/etc/shadow")}, "", ""},
        {"planted",
         {FileSpec::Dir("etc"), FileSpec::Symlink("etc/passwd", planted_ + "/passwd"),
          FileSpec::Symlink("etc/group", "/dev/zero")},
         "app",
         ""},
        {"dirlink", {FileSpec::Symlink("etc", planted_)}, "app", ""},
        {"fifo", {FileSpec::Dir("etc"), FileSpec::Fifo("etc/passwd")}, "", ""},
        {"cwdlink",
         {FileSpec::File("etc/passwd", kPasswd),
          FileSpec::Symlink("escape", planted_ + "/cwd-target")},
         "",
         "/escape/sub"},
    };
    for (const Hostile& h : images) {
      ImageSpec spec{.tag = "hostile-" + h.tag};
      spec.cmd = {"true"};
      spec.user = h.user;
      spec.working_dir = h.working_dir;
      HOIST_ASSIGN_OR_RETURN(harness::BuiltImage img,
                             harness::BuildOciImage(layout, {LayerSpec(h.files)}, spec));
      HOIST_RETURN_IF_ERROR(
          harness::PushOciLayout(img.OciRef(), registry_->DockerRef("rt", spec.tag)));
    }
    return Ok();
  }

  static void TearDownTestSuite() {
    if (!work_.empty()) {
      for (const std::string& m : MountsIn(work_)) ::umount2(m.c_str(), MNT_DETACH);
      (void)RemoveTree(work_);
    }
    registry_.reset();
  }

  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  void TearDown() override {
    EXPECT_EQ(MountsIn(work_), std::vector<std::string>{});
    if (!registry_->running()) (void)registry_->Start();
  }

  // A fresh bundle path (not created).
  std::string BundlePath(const std::string& name) { return work_ + "/bundle-" + name; }

  // hoist run --rm --cache C --bundle B [extra...] IMAGE [cmd...]
  CommandResult HoistRun(const std::string& image, const std::vector<std::string>& cmd,
                         const std::vector<std::string>& extra = {},
                         const std::string& stdin_data = "") {
    std::vector<std::string> argv = {HOIST_BINARY, "run", "--cache", cache_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(image);
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    return Exec(argv, stdin_data);
  }

  static inline std::string setup_error_;
  static inline std::string work_;
  static inline std::string cache_;
  static inline std::unique_ptr<harness::TestRegistry> registry_;
  static inline std::string py_image_, user_image_, nocmd_image_;
  static inline std::string planted_;
};

TEST_F(RuntimeTest, Python) {
  const std::string b = BundlePath("python");
  CommandResult r = HoistRun(py_image_, {"python3", "-c", "print(40+2)"}, {"--rm", "--bundle", b});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.stdout_text, "42\n");
  EXPECT_EQ(r.stderr_text, "");
  EXPECT_FALSE(Exists(b));
}

TEST_F(RuntimeTest, ExitCodes) {
  CommandResult r = HoistRun(py_image_, {"sh", "-c", "exit 7"}, {"--rm"});
  EXPECT_EQ(r.exit_code, 7) << Describe(r);
  EXPECT_EQ(r.stderr_text, "");
  // (PID 1 of a pid namespace ignores even SIGKILL from inside, so no signal death here.)
  r = HoistRun(py_image_, {"sh", "-c", "exit 255"}, {"--rm"});
  EXPECT_EQ(r.exit_code, 255) << Describe(r);
  r = HoistRun(py_image_, {"sh", "-c", "false"}, {"--rm"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
}

TEST_F(RuntimeTest, Stdio) {
  CommandResult r = HoistRun(py_image_, {"cat"}, {"--rm"}, "line one\nline two\n");
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.stdout_text, "line one\nline two\n");
  r = HoistRun(py_image_, {"sh", "-c", "echo out; echo err >&2; echo out2"}, {"--rm"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.stdout_text, "out\nout2\n");
  EXPECT_EQ(r.stderr_text, "err\n");
  // --timing adds exactly one line on stderr, nothing on stdout.
  r = HoistRun(py_image_, {"python3", "-c", "print(40+2)"}, {"--rm", "--timing"});
  EXPECT_EQ(r.stdout_text, "42\n");
  EXPECT_TRUE(r.stderr_text.starts_with("hoist run: mounted in ")) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("container exited 0 after "), std::string::npos) << r.stderr_text;
  EXPECT_EQ(std::count(r.stderr_text.begin(), r.stderr_text.end(), '\n'), 1);
}

TEST_F(RuntimeTest, ReadWrite) {
  const std::string a = BundlePath("rw-a");
  CommandResult r = HoistRun(
      py_image_, {"sh", "-c", "echo written > /etc/new && echo x >> /etc/passwd && cat /etc/new"},
      {"--rw", "--bundle", a});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.stdout_text, "written\n");
  EXPECT_EQ(r.stderr_text,
            "hoist run: kept bundle " + a + " (remove it with: hoist bundle --remove " + a + ")\n");
  // The writes are in the upper directory; the read-only mount under it is unchanged.
  EXPECT_EQ(ReadFile(a + "/upper/etc/new").value_or("<missing>"), "written\n");
  EXPECT_EQ(ReadFile(a + "/upper/etc/passwd").value_or("<missing>"), std::string(kPasswd) + "x\n");
  EXPECT_FALSE(Exists(a + "/lower/etc/new"));
  EXPECT_EQ(ReadFile(a + "/lower/etc/passwd").value_or("<missing>"), kPasswd);

  // A second container of the same image sees none of it.
  r = HoistRun(py_image_, {"sh", "-c", "test ! -e /etc/new && cat /etc/passwd"},
               {"--rm", "--rw", "--bundle", BundlePath("rw-b")});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.stdout_text, kPasswd);
  // Nor does a read-only one, whose rootfs refuses writes.
  r = HoistRun(py_image_, {"sh", "-c", "cat /etc/passwd; echo y > /etc/new2"}, {"--rm"});
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.stdout_text, kPasswd);
  EXPECT_NE(r.stderr_text.find("Read-only file system"), std::string::npos) << r.stderr_text;

  // The kept bundle's hoistfs daemon does not inherit hoist run's blocked signals: SIGTERM
  // (SigBlk bit 15) must unmount it.
  auto state = ReadFile(a + "/hoist-bundle.json");
  ASSERT_TRUE(state.has_value());
  rapidjson::Document doc;
  doc.Parse(state->c_str());
  ASSERT_TRUE(doc.IsObject() && doc.HasMember("mount_state_file"));
  auto mount_state = ReadMountStateFile(doc["mount_state_file"].GetString());
  ASSERT_TRUE(mount_state.has_value()) << mount_state.error().message();
  auto status = ReadFile("/proc/" + std::to_string(mount_state->pid) + "/status");
  ASSERT_TRUE(status.has_value());
  const size_t at = status->find("SigBlk:\t");
  ASSERT_NE(at, std::string::npos);
  const uint64_t blocked = std::stoull(status->substr(at + 8, 16), nullptr, 16);
  EXPECT_EQ(blocked & (1ull << (SIGTERM - 1)), 0u) << status->substr(at, 25);

  r = Exec({HOIST_BINARY, "bundle", "--remove", a});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_FALSE(Exists(a));
}

TEST_F(RuntimeTest, UserAndWorkdir) {
  CommandResult r = HoistRun(user_image_, {}, {"--rm"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.stdout_text, "1000\n1000 50\n/home/app/work\n");
  // Overrides: uid:group by number and name, and a working directory.
  r = HoistRun(user_image_, {"sh", "-c", "id -u; id -g; pwd"},
               {"--rm", "-u", "0:staff", "-w", "/tmp"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.stdout_text, "0\n50\n/tmp\n");
}

TEST_F(RuntimeTest, Bundle) {
  const std::string b = BundlePath("ro");
  CommandResult r = Exec({HOIST_BINARY, "bundle", "--cache", cache_, user_image_, b});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.stdout_text, "");
  // The image has no /proc, /dev, /sys or /home/app/work: a read-only overlay adds them.
  EXPECT_EQ(MountsIn(b), (std::vector<std::string>{b + "/lower", b + "/rootfs"}));
  const std::string lower_opts = MountOptionsOf(b + "/lower");
  EXPECT_TRUE(lower_opts.starts_with("ro,")) << lower_opts;
  EXPECT_EQ(lower_opts.find("nosuid"), std::string::npos) << lower_opts;
  EXPECT_TRUE(MountOptionsOf(b + "/rootfs").starts_with("ro,nodev"))
      << MountOptionsOf(b + "/rootfs");
  struct stat st;
  ASSERT_EQ(::stat((b + "/rootfs/home/app").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);  // the skeleton keeps the image's owner

  auto config_text = ReadFile(b + "/config.json");
  ASSERT_TRUE(config_text.has_value());
  rapidjson::Document config;
  config.Parse(config_text->c_str());
  ASSERT_TRUE(config.IsObject());
  const auto& user = config["process"]["user"];
  EXPECT_EQ(user["uid"].GetUint(), 1000u);
  EXPECT_EQ(user["gid"].GetUint(), 1000u);
  ASSERT_TRUE(user.HasMember("additionalGids"));
  EXPECT_EQ(user["additionalGids"][0].GetUint(), 50u);
  EXPECT_STREQ(config["process"]["cwd"].GetString(), "/home/app/work");
  EXPECT_TRUE(config["root"]["readonly"].GetBool());
  EXPECT_STREQ(config["annotations"]["org.example.purpose"].GetString(), "runtime-test");
  EXPECT_FALSE(config["linux"].HasMember("resources"));
  EXPECT_FALSE(config["process"]["noNewPrivileges"].GetBool());

  r = Exec({"runc", "run", "--bundle", b, "hoist-runtime-test-bundle"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.stdout_text, "1000\n1000 50\n/home/app/work\n");

  r = Exec({HOIST_BINARY, "bundle", "--remove", b});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(MountsIn(b), std::vector<std::string>{});
  EXPECT_FALSE(Exists(b));

  // An image with every mount point, read-only: the hoistfs mount itself is the rootfs.
  const std::string ro = BundlePath("ro-bind");
  r = Exec({HOIST_BINARY, "bundle", "--cache", cache_, py_image_, ro, "cat", "/etc/group"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(MountsIn(ro), (std::vector<std::string>{ro + "/lower", ro + "/rootfs"}));
  const std::string bind_opts = MountOptionsOf(ro + "/rootfs");
  EXPECT_TRUE(bind_opts.starts_with("ro,nodev")) << bind_opts;
  EXPECT_EQ(bind_opts.find("nosuid"), std::string::npos) << bind_opts;
  EXPECT_FALSE(Exists(ro + "/skel"));
  r = Exec({"runc", "run", "--bundle", ro, "hoist-runtime-test-bind"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.stdout_text, kGroup);
  r = Exec({HOIST_BINARY, "bundle", "--remove", ro});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_FALSE(Exists(ro));

  // --rw: an overlay with its upper directory in the bundle.
  const std::string rw = BundlePath("rw");
  r = Exec({HOIST_BINARY, "bundle", "--rw", "--cache", cache_, py_image_, rw});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(MountsIn(rw), (std::vector<std::string>{rw + "/lower", rw + "/rootfs"}));
  EXPECT_TRUE(MountOptionsOf(rw + "/rootfs").starts_with("rw,nodev"))
      << MountOptionsOf(rw + "/rootfs");
  r = Exec({HOIST_BINARY, "bundle", "--remove", rw});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_FALSE(Exists(rw));
}

// Issue 19 item 5: with the registry stopped, hoist run and hoist bundle start a loaded image
// from the local store (one notice line, one attempt at the registry, no retries; none with
// -o offline), and an image that was only ever run before (recorded by that run) too.
TEST_F(RuntimeTest, OfflineRunAndBundleFromTheLocalStore) {
  const std::string cache = work_ + "/offline-cache";
  const std::string archive = work_ + "/offline-py.tar";
  CommandResult r = Exec({HOIST_BINARY, "save", "--cache", cache, "-o", archive, py_image_}, "",
                         std::chrono::seconds(300));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  r = Exec({HOIST_BINARY, "load", "-q", "--cache", cache, "-i", archive}, "",
           std::chrono::seconds(300));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  registry_->Stop();
  auto expect_one_notice = [&](const CommandResult& c, const std::string& image) {
    EXPECT_EQ(std::count(c.stderr_text.begin(), c.stderr_text.end(), '\n'), 1) << c.stderr_text;
    EXPECT_EQ(c.stderr_text.rfind("hoist warning: registry unavailable (", 0), 0u) << c.stderr_text;
    EXPECT_NE(c.stderr_text.find("gave up after 1 attempts"), std::string::npos) << c.stderr_text;
    EXPECT_TRUE(c.stderr_text.ends_with("; using the local copy of " + image + "\n"))
        << c.stderr_text;
  };

  const std::string b = BundlePath("offline-run");
  r = Exec({HOIST_BINARY, "run", "--rm", "--cache", cache, "--bundle", b, py_image_, "python3",
            "-c", "print(40+2)"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.stdout_text, "42\n");
  expect_one_notice(r, py_image_);
  EXPECT_FALSE(Exists(b));

  // -o offline: the registry is not tried, so there is nothing to say.
  const std::string b2 = BundlePath("offline-bundle");
  r = Exec({HOIST_BINARY, "bundle", "--cache", cache, "-o", "offline", py_image_, b2, "python3",
            "-c", "print(6*7)"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.stderr_text, "");
  r = Exec({"runc", "run", "--bundle", b2, "hoist-runtime-test-offline"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.stdout_text, "42\n");
  r = Exec({HOIST_BINARY, "bundle", "--remove", b2});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_FALSE(Exists(b2));

  // An image this store never pulled or loaded: run once online (the run records it), then
  // again with the registry stopped.
  const std::string cache2 = work_ + "/offline-cache-2";
  ASSERT_TRUE(registry_->Start().has_value());
  const std::string want = "1000\n1000 50\n/home/app/work\n";
  // The whole of busybox is read once, so the offline run finds every page it maps.
  r = Exec({HOIST_BINARY, "run", "--rm", "--cache", cache2, user_image_, "sh", "-c",
            "cat /bin/busybox >/dev/null && id -u && id -G && pwd"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.stdout_text, want);
  EXPECT_EQ(r.stderr_text, "");
  registry_->Stop();
  r = Exec({HOIST_BINARY, "run", "--rm", "--cache", cache2, user_image_});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.stdout_text, want);
  expect_one_notice(r, user_image_);
  // Neither in the store nor reachable: the registry's error, exit 125.
  r = Exec({HOIST_BINARY, "run", "--rm", "--cache", cache2, nocmd_image_, "true"});
  EXPECT_EQ(r.exit_code, 125) << Describe(r);
  EXPECT_EQ(std::count(r.stderr_text.begin(), r.stderr_text.end(), '\n'), 1) << r.stderr_text;
}

TEST_F(RuntimeTest, Signals) {
  const std::string b = BundlePath("signals");
  const std::string out = work_ + "/signals.out";
  harness::ChildProcess::Options options;
  options.stdout_path = out;
  options.stderr_path = out;
  auto child = harness::ChildProcess::Start(
      {HOIST_BINARY, "run", "--rm", "--cache", cache_, "--bundle", b, py_image_, "sh", "-c",
       "trap 'echo got TERM; exit 3' TERM; echo ready; while true; do sleep 0.05; done"},
      options);
  ASSERT_TRUE(child.has_value()) << child.error().message();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (ReadFile(out).value_or("").find("ready") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_NE(ReadFile(out).value_or("").find("ready"), std::string::npos);
  ASSERT_EQ(::kill(child->pid(), SIGTERM), 0);
  while (child->Running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(child->wait_status().has_value());
  const int status = *child->wait_status();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3) << status;
  EXPECT_EQ(ReadFile(out).value_or(""), "ready\ngot TERM\n");
  EXPECT_FALSE(Exists(b));
}

// The image's /etc/passwd and /etc/group are read by hoist on the host (to resolve the user), and
// on a writable rootfs hoist creates the missing working directory: both must stay inside the
// image, whatever its symlinks say.
TEST_F(RuntimeTest, HostileImageFilesStayInside) {
  auto bundle = [&](const std::string& tag, const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {HOIST_BINARY, "bundle", "--cache", cache_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(registry_->ImageRef("rt", "hostile-" + tag));
    argv.push_back(BundlePath("hostile"));
    return Exec(argv);
  };
  auto image = [&](const std::string& tag) { return registry_->ImageRef("rt", "hostile-" + tag); };
  const std::string b = BundlePath("hostile");

  // etc/passwd -> /etc/shadow: the image has no /etc/shadow, so it has no passwd; the host's
  // shadow line is never parsed as a user.
  CommandResult r = bundle("shadow", {"-u", "root"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(r.stderr_text, "hoist bundle: image " + image("shadow") +
                               ": user \"root\": the image has no /etc/passwd to look the name "
                               "up in\n");
  EXPECT_FALSE(Exists(b));

  // A planted host passwd (uid 4242), through a symlinked file and through a symlinked etc/,
  // with the image's own User "app" (no -u): refused the same way; group -> /dev/zero is absent
  // in the image and never read.
  for (const std::string tag : {"planted", "dirlink"}) {
    r = bundle(tag, {});
    EXPECT_EQ(r.exit_code, 1) << tag << ": " << Describe(r);
    EXPECT_EQ(r.stderr_text, "hoist bundle: image " + image(tag) +
                                 ": user \"app\": the image has no /etc/passwd to look the name "
                                 "up in\n")
        << tag;
    EXPECT_FALSE(Exists(b)) << tag;
  }
  // By uid it bundles, and nothing of the planted file shows in config.json.
  r = bundle("planted", {"-u", "0"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  auto config_text = ReadFile(b + "/config.json");
  ASSERT_TRUE(config_text.has_value());
  rapidjson::Document config;
  config.Parse(config_text->c_str());
  ASSERT_TRUE(config.IsObject());
  EXPECT_EQ(config["process"]["user"]["uid"].GetUint(), 0u);
  EXPECT_EQ(config_text->find("4242"), std::string::npos) << *config_text;
  EXPECT_EQ(config_text->find("planted-home"), std::string::npos) << *config_text;
  r = Exec({HOIST_BINARY, "bundle", "--remove", b});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);

  // A FIFO as /etc/passwd: refused at once (opening it for reading would block forever).
  r = bundle("fifo", {});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(r.stderr_text, "hoist bundle: image " + image("fifo") +
                               ": /etc/passwd is a FIFO, not a regular file\n");
  EXPECT_FALSE(Exists(b));

  // WorkingDir /escape/sub with escape -> a host directory, on a writable rootfs: hoist does not
  // create sub through the link (before, it made planted/cwd-target/sub on the host).
  r = bundle("cwdlink", {"--rw"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(r.stderr_text,
            "hoist bundle: path /escape/sub: /escape is not a directory (hoist does not create "
            "directories through a symlink)\n");
  EXPECT_FALSE(Exists(b));
  EXPECT_FALSE(Exists(planted_ + "/cwd-target/sub"));
  // Read-only, the skeleton overlay supplies the directory inside the bundle; the host is
  // untouched.
  r = bundle("cwdlink", {});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_FALSE(Exists(planted_ + "/cwd-target/sub"));
  struct stat st;
  EXPECT_EQ(::lstat((b + "/skel/escape/sub").c_str(), &st), 0);
  r = Exec({HOIST_BINARY, "bundle", "--remove", b});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_FALSE(Exists(b));
}

TEST_F(RuntimeTest, BadInput) {
  const std::string b = BundlePath("bad");
  CommandResult r =
      HoistRun(py_image_, {"true"}, {"--rm", "--bundle", b, "--runtime", "/nonexistent/runc"});
  EXPECT_EQ(r.exit_code, 127) << Describe(r);
  EXPECT_EQ(r.stderr_text,
            "hoist run: container runtime /nonexistent/runc not found (or not executable)\n");
  EXPECT_FALSE(Exists(b));

  r = HoistRun(nocmd_image_, {}, {"--rm", "--bundle", b});
  EXPECT_EQ(r.exit_code, 125) << Describe(r);
  EXPECT_EQ(r.stderr_text,
            "hoist run: the image has no command (its Entrypoint and Cmd are empty) and none "
            "was given\n");
  EXPECT_FALSE(Exists(b));

  // A user the image does not know fails after the mount: it is undone.
  r = HoistRun(py_image_, {"true"}, {"--rm", "--bundle", b, "-u", "nosuchuser"});
  EXPECT_EQ(r.exit_code, 125) << Describe(r);
  EXPECT_EQ(r.stderr_text, "hoist run: image " + py_image_ +
                               ": user \"nosuchuser\" is not in the image's /etc/passwd\n");
  EXPECT_FALSE(Exists(b));

  r = HoistRun(registry_->ImageRef("rt", "no-such-tag"), {"true"}, {"--rm", "--bundle", b});
  EXPECT_EQ(r.exit_code, 125) << Describe(r);
  EXPECT_EQ(std::count(r.stderr_text.begin(), r.stderr_text.end(), '\n'), 1) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("no-such-tag"), std::string::npos) << r.stderr_text;
  EXPECT_FALSE(Exists(b));

  // An existing directory is refused and left alone.
  ASSERT_TRUE(MakeDirs(b + "/keep").has_value());
  r = Exec({HOIST_BINARY, "bundle", "--cache", cache_, py_image_, b});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(r.stderr_text, "hoist bundle: bundle directory " + b + " already exists\n");
  EXPECT_TRUE(Exists(b + "/keep"));

  r = Exec({HOIST_BINARY, "bundle", "--remove", b});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_TRUE(r.stderr_text.starts_with("hoist bundle: " + b + " is not a hoist bundle"))
      << r.stderr_text;
  EXPECT_TRUE(Exists(b + "/keep"));
  ASSERT_TRUE(RemoveTree(b).has_value());
}

// Runs `script` with sh in a private mount namespace (nothing it mounts is seen outside).
CommandResult RunInPrivateNamespace(const std::string& script) {
  return Exec({"unshare", "--mount", "--propagation", "private", "sh", "-euc", script}, "",
              std::chrono::seconds(120));
}

TEST_F(RuntimeTest, MountHelper) {
  const std::string bin = work_ + "/helper-bin";
  const std::string mnt = work_ + "/helper-mnt";
  ASSERT_TRUE(MakeDirs(bin).has_value());
  ASSERT_TRUE(MakeDirs(mnt).has_value());
  ASSERT_EQ(::symlink(HOISTFS_BINARY, (bin + "/hoistfs").c_str()), 0);
  const std::string fstab = work_ + "/fstab";
  ASSERT_TRUE(WriteFileAtomic(fstab, py_image_ + " " + mnt + " fuse.hoistfs noauto,cache=" +
                                         cache_ + ",prefetch=none,timeout=10 0 0\n")
                  .has_value());
  const std::string script =
      "mount --bind " + bin + " /usr/local/sbin\n" + "mount -t fuse.hoistfs -o cache=" + cache_ +
      ",prefetch=none " + py_image_ + " " + mnt + "\n" + "cat " + mnt + "/etc/group\n" +
      "awk '$5 == \"" + mnt +
      "\" {for (i = 7; i < NF; i++) if ($i == \"-\") {print $6, $(i + 1); break}}' "
      "/proc/self/mountinfo\n" +
      "umount " + mnt + "\n" + "mount -T " + fstab + " " + mnt + "\n" + "cat " + mnt +
      "/etc/passwd\n" + "umount " + mnt + "\n";
  CommandResult r = RunInPrivateNamespace(script);
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.stdout_text,
            std::string(kGroup) + "ro,nosuid,nodev,relatime fuse.hoistfs\n" + kPasswd);
}

TEST_F(RuntimeTest, SystemdUnits) {
  const std::string bin = work_ + "/units-bin";
  const std::string units = work_ + "/units";
  ASSERT_TRUE(MakeDirs(bin).has_value());
  ASSERT_TRUE(MakeDirs(units).has_value());
  ASSERT_EQ(::symlink(HOIST_BINARY, (bin + "/hoist").c_str()), 0);
  ASSERT_EQ(::symlink(HOISTFS_BINARY, (bin + "/hoistfs").c_str()), 0);
  const std::string src = std::string(HOIST_SOURCE_DIR) + "/systemd/";
  const std::vector<std::pair<std::string, std::string>> files = {
      {"hoistfs@.service", "hoistfs@sample.service"},  // a template is verified as an instance
      {"hoist-prune.service", "hoist-prune.service"},
      {"hoist-prune.timer", "hoist-prune.timer"},
      {"mnt-hoist\\x2dsample.mount", "mnt-hoist\\x2dsample.mount"},
  };
  std::string names;
  for (const auto& [from, to] : files) {
    auto text = ReadFile(src + from);
    ASSERT_TRUE(text.has_value()) << text.error().message();
    ASSERT_TRUE(WriteFileAtomic(units + "/" + to, *text).has_value());
    names += " '" + to + "'";
  }
  const std::string verify = "mount --bind " + bin + " /usr/local/bin\ncd " + units +
                             "\nsystemd-analyze verify" + names + "\n";
  CommandResult r = RunInPrivateNamespace(verify);
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.stderr_text, "");

  // The check can fail: a unit whose program does not exist.
  auto text = ReadFile(units + "/hoist-prune.service");
  ASSERT_TRUE(text.has_value());
  std::string broken = *text;
  const size_t at = broken.find("/usr/local/bin/hoist ");
  ASSERT_NE(at, std::string::npos);
  broken.replace(at, 20, "/usr/local/bin/hoistx");
  ASSERT_TRUE(WriteFileAtomic(units + "/hoist-prune.service", broken).has_value());
  r = RunInPrivateNamespace(verify);
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.stderr_text.find("/usr/local/bin/hoistx"), std::string::npos) << r.stderr_text;
}

TEST_F(RuntimeTest, NotifyReady) {
  const std::string mnt = work_ + "/notify-mnt";
  ASSERT_TRUE(MakeDirs(mnt).has_value());
  auto listener = NotifyListener::Create("runtime-test");
  ASSERT_TRUE(listener.has_value()) << listener.error().message();
  harness::ChildProcess::Options options;
  options.env = {"NOTIFY_SOCKET=" + listener->address()};
  auto child = harness::ChildProcess::Start(
      {HOISTFS_BINARY, "-f", "-o", "cache=" + cache_ + ",prefetch=none", py_image_, mnt}, options);
  ASSERT_TRUE(child.has_value()) << child.error().message();
  // Under a fd store (systemd's protocol), the connection's state and then the connection itself
  // are stored before READY=1, so a crash right after READY can be survived.
  std::vector<Notification> got;
  while (got.empty() || got.back().text != "READY=1") {
    pollfd pfd{listener->fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&pfd, 1, 60000), 1) << "no notification within 60 s";
    auto n = listener->Receive();
    ASSERT_TRUE(n.has_value()) << n.error().message();
    got.push_back(std::move(*n));
    ASSERT_LE(got.size(), 3u) << got.back().text;
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].text, "FDSTORE=1\nFDNAME=hoistfs-state");
  ASSERT_EQ(got[0].fds.size(), 1u);
  auto state = ReadHandoffMemfd(got[0].fds[0].get());
  ASSERT_TRUE(state.has_value()) << state.error().message();
  EXPECT_EQ(state->mountpoint, mnt);
  EXPECT_EQ(state->reference, py_image_);
  EXPECT_FALSE(state->init.empty());
  EXPECT_EQ(got[1].text, "FDSTORE=1\nFDNAME=hoistfs-fuse");
  ASSERT_EQ(got[1].fds.size(), 1u);
  struct stat fuse_dev {};
  ASSERT_EQ(::fstat(got[1].fds[0].get(), &fuse_dev), 0);
  EXPECT_TRUE(S_ISCHR(fuse_dev.st_mode));
  EXPECT_EQ(fuse_dev.st_rdev, makedev(10, 229)) << "the stored fd is /dev/fuse";
  EXPECT_TRUE(got[2].fds.empty());
  got.clear();  // our copies of the connection must not keep it alive after the unmount
  // Ready means mounted.
  EXPECT_EQ(MountsIn(mnt), std::vector<std::string>{mnt});
  EXPECT_EQ(ReadFile(mnt + "/etc/group").value_or(""), kGroup);
  CommandResult r = Exec({"fusermount3", "-u", mnt});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (child->Running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(child->wait_status().has_value());
  EXPECT_TRUE(WIFEXITED(*child->wait_status()) && WEXITSTATUS(*child->wait_status()) == 0);
}

}  // namespace
}  // namespace hoist
