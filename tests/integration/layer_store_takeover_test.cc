// The layer store's FUSE connection outliving its process (fusefs/layer_store.h "Surviving the
// process", slot_log.h), against REAL parts: a real registry, `hoist convert` (zstd:chunked), the
// store mounted for real by layer-store-takeover-helper processes, kernel overlayfs, and an fd
// store played by this test (a NotifyListener from base/fd_store.h receiving FDSTORE=1, then the
// next process started with LISTEN_FDS as systemd and hoist's supervisor do). Runs as root;
// missing tools FAIL the suite.
//
//   KillNineThenTakeoverKeepsSlotsInodesAndOpenFiles
//       process 1 mounts the store with two layers and stores its three fds (layers-state,
//       layers-slots, layers-fuse) before READY=1; every file is read through the layer
//       directories, an overlay stacks them, and a file of the overlay stays open. kill -9;
//       the registry is stopped; process 2 takes the connection over with the layers given in
//       the REVERSE order (without the slot log, slot 1 would then be the other layer) and waits
//       1 s before adding them, while a thread lists the store's root (a FUSE request that must
//       queue, not fail). Then: the listing names both layers, the open file reads its exact
//       bytes, after dropping the kernel's dentry and inode caches every path under both layer
//       directories has its old inode number, the overlay's tree is unchanged, process 2 asked
//       for FUSE_NOTIFY_RESEND, and SIGTERM unmounts.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "base/digest.h"
#include "base/fd_store.h"
#include "base/file_util.h"
#include "fetcher/reference.h"
#include "fetcher/registry.h"
#include "tests/harness/mountinfo.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/harness/tree_walk.h"

#ifndef TAKEOVER_HELPER_BINARY
#error "TAKEOVER_HELPER_BINARY must name layer-store-takeover-helper"
#endif
#ifndef HOIST_BINARY
#error "HOIST_BINARY must name the hoist executable"
#endif

namespace hoist {
namespace {

using harness::FileSpec;
using harness::LayerSpec;
using Tree = std::map<std::string, harness::TreeNode>;

// A process started as a service manager starts one: `fds` as 3, 4, ... with LISTEN_FDS,
// LISTEN_FDNAMES and LISTEN_PID (its own pid, set by the shell it starts as before exec).
class Service {
 public:
  Service() = default;
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;
  ~Service() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      (void)Wait();
    }
  }

  Status Start(const std::vector<std::string>& argv, const std::vector<std::string>& env,
               const std::vector<std::pair<std::string, int>>& fds, const std::string& log) {
    std::vector<std::string> args = {"/bin/sh", "-c", "LISTEN_PID=$$ exec \"$0\" \"$@\""};
    args.insert(args.end(), argv.begin(), argv.end());
    std::vector<std::string> envs = env;
    if (!fds.empty()) {
      std::string names;
      for (const auto& [name, fd] : fds) names += (names.empty() ? "" : ":") + name;
      envs.push_back("LISTEN_FDS=" + std::to_string(fds.size()));
      envs.push_back("LISTEN_FDNAMES=" + names);
    }
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string kv = *e;
      if (!kv.starts_with("LISTEN_") && !kv.starts_with("NOTIFY_SOCKET=")) envs.push_back(kv);
    }
    std::vector<char*> cargv, cenv;
    for (std::string& a : args) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    for (std::string& e : envs) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    std::vector<int> sources;
    for (const auto& [name, fd] : fds) sources.push_back(fd);
    const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) return Fail(ErrnoError("open " + log));
    pid_ = ::fork();
    if (pid_ < 0) return Fail(ErrnoError("fork"));
    if (pid_ == 0) {
      // Async-signal-safe calls only. Sources are moved above the target range first.
      std::vector<int>& src = sources;
      for (int& fd : src) fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 100);
      for (size_t i = 0; i < src.size(); ++i) ::dup2(src[i], 3 + static_cast<int>(i));
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      ::execve(cargv[0], cargv.data(), cenv.data());
      ::_exit(127);
    }
    ::close(log_fd);
    return Ok();
  }
  pid_t pid() const { return pid_; }
  void Signal(int sig) { ::kill(pid_, sig); }
  // The wait status.
  int Wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
};

// The fd store's side: every fd stored by name, and whether READY=1 came.
struct FdStore {
  NotifyListener listener;
  std::map<std::string, ScopedFd> fds;

  // Receives until READY=1 (true) or the deadline (false).
  bool WaitReady(std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{listener.fd(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      auto n = listener.Receive();
      if (!n) continue;
      if (NotificationValue(n->text, "FDSTORE") == "1" && !n->fds.empty()) {
        fds.insert_or_assign(NotificationValue(n->text, "FDNAME"), std::move(n->fds[0]));
      }
      if (NotificationValue(n->text, "READY") == "1") return true;
    }
    return false;
  }
};

class LayerStoreTakeoverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setup_error_ = new std::string();
    auto fail = [](const std::string& e) { *setup_error_ = e; };
    if (::geteuid() != 0) return fail("the layer store takeover tests must run as root");
    if (::access("/dev/fuse", R_OK | W_OK) != 0) return fail("/dev/fuse is not accessible");
    if (auto s = harness::RequirePrograms({"skopeo", "docker-registry"}); !s) {
      return fail(s.error().message());
    }
    char tmpl[] = "/tmp/hlt-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return fail("mkdtemp failed");
    work_ = new std::string(tmpl);
    auto reg = harness::TestRegistry::Launch();
    if (!reg) return fail(reg.error().message());
    registry_ = reg->release();
    std::vector<FileSpec> base = {
        FileSpec::Dir("etc"),
        FileSpec::File("etc/one", "layer one\n"),
        FileSpec::BigFile("data/big", 3u << 20, 7),
        FileSpec::File("etc/shadowed", "from layer 1\n"),
    };
    std::vector<FileSpec> top = {
        FileSpec::File("etc/two", "layer two\n"),
        FileSpec::File("etc/shadowed", "from layer 2\n"),
        FileSpec::BigFile("data/top", 1u << 20, 9),
        FileSpec::Whiteout("etc/one"),
    };
    auto image = harness::BuildOciImage(*work_ + "/layout", {LayerSpec(base), LayerSpec(top)},
                                        {.tag = "v1"});
    if (!image) return fail(image.error().message());
    if (auto p = harness::PushOciLayout(image->OciRef(), registry_->DockerRef("lt/gz", "v1")); !p)
      return fail(p.error().message());
    auto conv =
        harness::RunForResult({HOIST_BINARY, "convert", "-q", registry_->DockerRef("lt/gz", "v1"),
                               registry_->DockerRef("lt/zstd", "v1")});
    if (!conv.ok()) return fail("hoist convert: " + conv.stderr_text);
  }

  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
    const char* keep = std::getenv("HOIST_TEST_KEEP");
    if (work_ != nullptr && (keep == nullptr || *keep != '1')) (void)RemoveTree(*work_);
  }

  void SetUp() override { ASSERT_TRUE(setup_error_->empty()) << *setup_error_; }

  static std::string* setup_error_;
  static std::string* work_;
  static harness::TestRegistry* registry_;
};

std::string* LayerStoreTakeoverTest::setup_error_ = nullptr;
std::string* LayerStoreTakeoverTest::work_ = nullptr;
harness::TestRegistry* LayerStoreTakeoverTest::registry_ = nullptr;

std::vector<std::string> ListDir(const std::string& dir, int* error) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    *error = errno;
    return out;
  }
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(name);
  }
  ::closedir(d);
  return out;
}

TEST_F(LayerStoreTakeoverTest, KillNineThenTakeoverKeepsSlotsInodesAndOpenFiles) {
  static int run = 0;
  const std::string dir = *work_ + "/t" + std::to_string(++run);
  const std::string mnt = dir + "/mnt", cache = dir + "/cache", ovl = dir + "/ovl";
  for (const std::string& d : {mnt, cache, ovl}) ASSERT_TRUE(MakeDirs(d, 0755).has_value());
  const std::string ref = registry_->ImageRef("lt/zstd", "v1");
  auto client = RegistryClient::CreateDefault();
  ASSERT_TRUE(client.has_value());
  auto image = (*client)->Resolve(*Reference::Parse(ref));
  ASSERT_TRUE(image.has_value()) << image.error().message();
  ASSERT_EQ(image->manifest.layers.size(), 2u);
  const Digest l1 = image->manifest.layers[0].digest, l2 = image->manifest.layers[1].digest;
  const std::string d1 = mnt + "/" + l1.hex(), d2 = mnt + "/" + l2.hex();

  // Whatever fails, nothing stays mounted (a failed assertion returns early).
  struct Unmount {
    std::string ovl, mnt;
    ~Unmount() {
      (void)::umount2(ovl.c_str(), MNT_DETACH);
      (void)::umount2(mnt.c_str(), MNT_DETACH);
    }
  } unmount{ovl, mnt};
  auto listener = NotifyListener::Create("hoist-takeover-test");
  ASSERT_TRUE(listener.has_value()) << listener.error().message();
  FdStore fd_store{std::move(*listener), {}};
  const std::string notify = "NOTIFY_SOCKET=" + fd_store.listener.address();

  // Process 1: a fresh store with layers 1, 2.
  Service first;
  ASSERT_TRUE(first
                  .Start({TAKEOVER_HELPER_BINARY, mnt, cache, ref, l1.str(), l2.str()}, {notify},
                         {}, dir + "/helper1.log")
                  .has_value());
  ASSERT_TRUE(fd_store.WaitReady(std::chrono::seconds(60)))
      << ReadFile(dir + "/helper1.log").value_or("");
  for (const char* name : {"layers-state", "layers-slots", "layers-fuse"}) {
    ASSERT_TRUE(fd_store.fds.contains(name)) << name;
  }
  // Everything read once (the chunks are then in the cache: the registry can go away).
  auto before1 = harness::WalkTree(d1);
  auto before2 = harness::WalkTree(d2);
  ASSERT_TRUE(before1.has_value()) << before1.error().message();
  ASSERT_TRUE(before2.has_value()) << before2.error().message();
  const std::string lower = "lowerdir=" + d2 + ":" + d1;
  ASSERT_EQ(::mount("overlay", ovl.c_str(), "overlay", MS_RDONLY, lower.c_str()), 0)
      << std::strerror(errno);
  auto ovl_before = harness::WalkTree(ovl);
  ASSERT_TRUE(ovl_before.has_value()) << ovl_before.error().message();
  auto big_want = ReadFile(d1 + "/data/big");
  ASSERT_TRUE(big_want.has_value());
  ScopedFd held(::open((ovl + "/data/big").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(held.valid()) << std::strerror(errno);

  // kill -9, with the registry gone too: the takeover must not need it.
  first.Signal(SIGKILL);
  first.Wait();
  registry_->Stop();

  // Process 2 takes over; the layers come in the other order.
  std::vector<std::pair<std::string, int>> fds;
  for (const char* name : {"layers-state", "layers-slots", "layers-fuse"}) {
    fds.emplace_back(name, fd_store.fds.at(name).get());
  }
  Service second;
  ASSERT_TRUE(second
                  .Start({TAKEOVER_HELPER_BINARY, mnt, cache, ref, l2.str(), l1.str()},
                         {notify, "HOIST_TEST_RESTORE_DELAY_MS=1000"}, fds, dir + "/helper2.log")
                  .has_value());
  // A request made while nobody serves: it waits for the new process, then is answered.
  int list_error = 0;
  std::vector<std::string> listing;
  std::thread lister([&] { listing = ListDir(mnt, &list_error); });
  const bool ready = fd_store.WaitReady(std::chrono::seconds(60));
  if (!ready) {
    // End the connection (every fd of it closed), so the waiting request fails instead of
    // hanging the test.
    second.Signal(SIGKILL);
    second.Wait();
    fd_store.fds.clear();
  }
  lister.join();
  Status restarted = registry_->Start();
  ASSERT_TRUE(ready) << ReadFile(dir + "/helper2.log").value_or("");
  ASSERT_TRUE(restarted.has_value()) << restarted.error().message();
  EXPECT_EQ(list_error, 0) << std::strerror(list_error);
  EXPECT_EQ(listing, (std::vector<std::string>{l1.hex(), l2.hex()}));

  // Drop the kernel's page cache, dentries and inodes: every lookup and read goes to the new
  // process, and each path must get its old inode number.
  ::sync();
  {
    ScopedFd drop(::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(drop.valid()) << std::strerror(errno);
    ASSERT_EQ(::write(drop.get(), "3\n", 2), 2) << std::strerror(errno);
  }
  (void)::posix_fadvise(held.get(), 0, 0, POSIX_FADV_DONTNEED);
  // The open file of the overlay reads its exact bytes (its FUSE node is slot 1's, still held by
  // the kernel).
  std::string got(big_want->size(), '\0');
  ssize_t n = ::pread(held.get(), got.data(), got.size(), 0);
  EXPECT_EQ(n, static_cast<ssize_t>(got.size())) << std::strerror(errno);
  EXPECT_TRUE(got == *big_want) << "the open file's bytes changed across the takeover";

  auto after1 = harness::WalkTree(d1);
  auto after2 = harness::WalkTree(d2);
  ASSERT_TRUE(after1.has_value()) << after1.error().message();
  ASSERT_TRUE(after2.has_value()) << after2.error().message();
  EXPECT_EQ(harness::CompareTrees(*before1, *after1, "layer 1"), std::vector<std::string>{});
  EXPECT_EQ(harness::CompareTrees(*before2, *after2, "layer 2"), std::vector<std::string>{});
  for (const auto& [before, after] : {std::pair{&*before1, &*after1}, {&*before2, &*after2}}) {
    for (const auto& [path, node] : *before) {
      auto it = after->find(path);
      if (it != after->end()) {
        EXPECT_EQ(it->second.ino, node.ino) << path;
      }
    }
  }
  auto ovl_after = harness::WalkTree(ovl);
  ASSERT_TRUE(ovl_after.has_value()) << ovl_after.error().message();
  EXPECT_EQ(harness::CompareTrees(*ovl_before, *ovl_after, "overlay"), std::vector<std::string>{});

  auto log = ReadFile(dir + "/helper2.log");
  ASSERT_TRUE(log.has_value());
  EXPECT_NE(log->find("took the FUSE connection over (2 layer slots on record)"), std::string::npos)
      << *log;
  EXPECT_NE(log->find("asked the kernel to resend"), std::string::npos) << *log;

  held.Reset();
  ASSERT_EQ(::umount(ovl.c_str()), 0) << std::strerror(errno);
  fd_store.fds.clear();  // the store's copies: the connection ends with process 2's unmount
  second.Signal(SIGTERM);
  const int ws = second.Wait();
  EXPECT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0) << "wait status " << ws;
  EXPECT_FALSE(harness::IsMounted(mnt));
}

}  // namespace
}  // namespace hoist
