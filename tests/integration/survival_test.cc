// Mounts survive their daemon (issue 14), on the real hoistfs binary with its supervisor, the
// real registry (TestRegistry), real FUSE and the real runc (hoist run). Runs as root; a
// missing /dev/fuse, runc or registry makes the tests FAIL, never skip.
//
// The image: 1,000 files of 1 B - 256 KiB of pseudo-random bytes in 20 directories, converted
// by the real `hoist convert rootfs:` to zstd:chunked, mounted with prefetch=none so reads go to
// the registry and the cache.
//
//   KillNineUnderReaders   32 threads pread random ranges of random files (every byte compared
//                          with the source) while the serving daemon (the pid of the state file)
//                          is killed with SIGKILL 5 times at random moments, the page cache
//                          dropped each time. 0 wrong bytes, 0 failed reads (no ENOTCONN), reads
//                          continue after every restart, and inode numbers are the same after.
//   UpgradeHandsOver       the hoistfs binary the mount was started from is replaced on disk
//                          (a new inode) and `hoist upgrade MNT` hands the mount over under the
//                          same 32 readers: the new daemon runs the new file, 0 wrong bytes, 0
//                          failed reads, and the new daemon's stats count no errors.
//   RunningContainer       a runc container (hoist run) runs python3 that compiles and runs
//                          stdlib modules and sums files in a loop, printing one line per
//                          round, across two SIGKILLs of its rootfs's daemon: it exits 0 with
//                          every round printed and every sum equal.
//   LostDaemon             the supervisor and the daemon are both killed: the reaper detaches
//                          the dead mount, and a fresh mount on the same path works. With the
//                          reaper killed too the mount is dead (statfs: ENOTCONN): `hoist
//                          umount` detaches it and a fresh mount works; killed again, a fresh
//                          mount detaches the dead one itself.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/file_util.h"
#include "base/mountinfo.h"
#include "base/process.h"
#include "fusefs/stats_file.h"
#include "tests/harness/hoist_cli.h"
#include "tests/harness/hoistfs_mounts.h"
#include "tests/harness/mountinfo.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/python_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/harness/wait.h"

#ifndef HOISTFS_BINARY
#error "HOISTFS_BINARY must name the hoistfs executable"
#endif

namespace hoist {
namespace {

using harness::CommandResult;
using harness::WaitUntil;

constexpr int kFiles = 1000;
constexpr int kReaders = 32;

std::string MakeTempDir(const std::string& name) {
  std::string templ = "/tmp/hoist-survival-" + name + "-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return "";
  return templ;
}

std::string StateFileOf(const std::string& mp) {
  return StateFileForCanonicalMountpoint(mp, DefaultStateDir());
}

// The serving daemon's and the supervisor's pids, once the state file names a live daemon.
std::pair<int64_t, int64_t> Pids(const std::string& mp) {
  auto state = ReadMountStateFile(StateFileOf(mp));
  if (!state) return {0, 0};
  return {state->pid, state->supervisor_pid};
}

void DropPageCache() {
  ::sync();
  std::ofstream("/proc/sys/vm/drop_caches") << "3\n";
}

// Readers of random ranges, each compared with the source bytes.
class Readers {
 public:
  Readers(const std::string& mp, const std::vector<std::string>* names,
          const std::map<std::string, std::string>* content)
      : mp_(mp), names_(names), content_(content) {}
  ~Readers() { Stop(); }

  void Start() {
    for (int t = 0; t < kReaders; ++t) {
      threads_.emplace_back([this, t] { Loop(static_cast<unsigned>(t)); });
    }
  }
  void Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }
  uint64_t reads() const { return reads_.load(); }
  uint64_t wrong() const { return wrong_.load(); }
  std::vector<std::string> errors() {
    std::lock_guard<std::mutex> lock(mu_);
    return errors_;
  }
  double max_stall_seconds() const { return static_cast<double>(max_stall_us_.load()) / 1e6; }

 private:
  void Loop(unsigned seed) {
    std::mt19937 rng(seed * 7919 + 1);
    std::vector<char> buf(256 << 10);
    while (!stop_.load()) {
      const std::string& name = (*names_)[rng() % names_->size()];
      const std::string& want = content_->at(name);
      const size_t off = rng() % want.size();
      const size_t len = 1 + rng() % std::min<size_t>(buf.size(), want.size() - off);
      const auto t0 = std::chrono::steady_clock::now();
      const int fd = ::open((mp_ + "/" + name).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        Error("open " + name + ": " + std::strerror(errno));
        continue;
      }
      const ssize_t n = ::pread(fd, buf.data(), len, static_cast<off_t>(off));
      const int err = errno;
      ::close(fd);
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - t0)
                          .count();
      uint64_t prev = max_stall_us_.load();
      while (static_cast<uint64_t>(us) > prev &&
             !max_stall_us_.compare_exchange_weak(prev, static_cast<uint64_t>(us))) {
      }
      if (n < 0) {
        Error("pread " + name + ": " + std::strerror(err));
        continue;
      }
      if (static_cast<size_t>(n) != len || std::memcmp(buf.data(), want.data() + off, len) != 0) {
        wrong_.fetch_add(1);
      }
      reads_.fetch_add(1);
    }
  }
  void Error(std::string e) {
    std::lock_guard<std::mutex> lock(mu_);
    if (errors_.size() < 20) errors_.push_back(std::move(e));
  }

  const std::string mp_;
  const std::vector<std::string>* names_;
  const std::map<std::string, std::string>* content_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> reads_{0}, wrong_{0}, max_stall_us_{0};
  std::mutex mu_;
  std::vector<std::string> errors_;
  std::vector<std::thread> threads_;
};

class SurvivalTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setup_error_ = new std::string();
    names_ = new std::vector<std::string>();
    content_ = new std::map<std::string, std::string>();
    auto fail = [](const std::string& e) { *setup_error_ = e; };
    if (::geteuid() != 0) return fail("these tests must run as root");
    if (::access("/dev/fuse", R_OK | W_OK) != 0)
      return fail("/dev/fuse is missing or not accessible: FUSE mounts cannot be tested");
    if (auto s = harness::RequirePrograms({"fusermount3", "docker-registry", "runc", "skopeo"}); !s)
      return fail(s.error().message());
    work_ = new std::string(MakeTempDir("work"));
    auto reg = harness::TestRegistry::Launch({.debug_log = false});
    if (!reg) return fail(reg.error().message());
    registry_ = reg->release();

    // The files, written to a directory and converted from it.
    const std::string root = *work_ + "/root";
    std::mt19937 rng(20261207);
    const size_t sizes[] = {1, 700, 4096, 65536, 100000, 262144};
    for (int i = 0; i < kFiles; ++i) {
      const std::string dir = "d" + std::to_string(i % 20);
      if (auto s = MakeDirs(root + "/" + dir); !s) return fail(s.error().message());
      const std::string name = dir + "/f" + std::to_string(i);
      std::string bytes(sizes[rng() % std::size(sizes)], '\0');
      for (char& c : bytes) c = static_cast<char>(rng());
      if (auto s = WriteFileAtomic(root + "/" + name, bytes, 0644); !s)
        return fail(s.error().message());
      names_->push_back(name);
      (*content_)[name] = std::move(bytes);
    }
    image_ = new std::string(registry_->ImageRef("survival/files", "v1"));
    CommandResult r = harness::RunHoist({"convert", "-q", "rootfs:" + root, "docker://" + *image_});
    if (!r.ok()) return fail("hoist convert: " + r.Describe() + ": " + r.stderr_text);
  }
  static void TearDownTestSuite() {
    delete registry_;
    if (work_ != nullptr) (void)RemoveTree(*work_);
    delete work_;
    delete image_;
    delete names_;
    delete content_;
  }
  void SetUp() override { ASSERT_TRUE(setup_error_->empty()) << *setup_error_; }
  void TearDown() override { mounts_.UnmountAll(); }

  std::string NewDir(const std::string& name) {
    std::string d = MakeTempDir(name);
    EXPECT_FALSE(d.empty());
    return d;
  }

  // Mounts the image at a new directory with `binary`; returns the mountpoint.
  std::string MountFiles(const std::string& cache, harness::HoistfsMounts& mounts) {
    const std::string mp = NewDir("mnt");
    CommandResult r = mounts.Mount(*image_, mp, cache, {"-o", "prefetch=none"});
    EXPECT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
    return mp;
  }

  // Waits until the state file names a live daemon other than `old_pid`.
  static int64_t AwaitNewDaemon(const std::string& mp, int64_t old_pid) {
    int64_t pid = 0;
    EXPECT_TRUE(WaitUntil([&] {
      pid = Pids(mp).first;
      return pid != 0 && pid != old_pid && ProcessAlive(pid);
    })) << "no new daemon replaced pid "
        << old_pid;
    return pid;
  }

  static std::string* setup_error_;
  static std::string* work_;
  static std::string* image_;
  static harness::TestRegistry* registry_;
  static std::vector<std::string>* names_;
  static std::map<std::string, std::string>* content_;
  harness::HoistfsMounts mounts_{HOISTFS_BINARY};
};

std::string* SurvivalTest::setup_error_ = nullptr;
std::string* SurvivalTest::work_ = nullptr;
std::string* SurvivalTest::image_ = nullptr;
harness::TestRegistry* SurvivalTest::registry_ = nullptr;
std::vector<std::string>* SurvivalTest::names_ = nullptr;
std::map<std::string, std::string>* SurvivalTest::content_ = nullptr;

ino_t InodeOf(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

TEST_F(SurvivalTest, KillNineUnderReaders) {
  const std::string cache = NewDir("cache");
  const std::string mp = MountFiles(cache, mounts_);
  ASSERT_TRUE(harness::IsMounted(mp));
  auto [first_pid, supervisor] = Pids(mp);
  ASSERT_GT(first_pid, 0);
  ASSERT_GT(supervisor, 0) << "the default mount has a supervisor";
  std::vector<ino_t> inodes_before;
  for (int i = 0; i < kFiles; i += 97) inodes_before.push_back(InodeOf(mp + "/" + (*names_)[i]));

  Readers readers(mp, names_, content_);
  readers.Start();
  std::mt19937 rng(42);
  int64_t pid = first_pid;
  for (int kill_round = 0; kill_round < 5; ++kill_round) {
    // A random moment, once some reads were served by this daemon.
    const uint64_t reads_before = readers.reads();
    ASSERT_TRUE(WaitUntil([&] { return readers.reads() > reads_before + 50 + rng() % 400; }))
        << "reads stalled before kill " << kill_round;
    ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGKILL), 0);
    DropPageCache();
    pid = AwaitNewDaemon(mp, pid);
    ASSERT_GT(pid, 0);
    EXPECT_EQ(Pids(mp).second, supervisor) << "the same supervisor restarted it";
  }
  const uint64_t reads_after_last = readers.reads();
  ASSERT_TRUE(WaitUntil([&] { return readers.reads() > reads_after_last + 1000; }))
      << "reads did not continue after the last restart";
  readers.Stop();
  std::printf("[ survival ] %llu reads, longest read %.3f s\n",
              static_cast<unsigned long long>(readers.reads()), readers.max_stall_seconds());
  EXPECT_EQ(readers.wrong(), 0u);
  std::vector<std::string> errors = readers.errors();
  EXPECT_TRUE(errors.empty()) << errors.size() << " failed reads, first: " << errors[0];
  std::vector<ino_t> inodes_after;
  for (int i = 0; i < kFiles; i += 97) inodes_after.push_back(InodeOf(mp + "/" + (*names_)[i]));
  EXPECT_EQ(inodes_after, inodes_before);
  ASSERT_TRUE(mounts_.Unmount(mp).has_value());
  EXPECT_FALSE(ProcessAlive(supervisor));
}

TEST_F(SurvivalTest, UpgradeHandsOver) {
  // The binary the mount starts from, at a path this test may replace.
  const std::string bin_dir = NewDir("bin");
  const std::string binary = bin_dir + "/hoistfs";
  ASSERT_TRUE(harness::RunForResult({"cp", HOISTFS_BINARY, binary}).ok());
  harness::HoistfsMounts mounts(binary);
  const std::string cache = NewDir("cache");
  const std::string mp = MountFiles(cache, mounts);
  auto [old_pid, supervisor] = Pids(mp);
  ASSERT_GT(old_pid, 0);

  Readers readers(mp, names_, content_);
  readers.Start();
  ASSERT_TRUE(WaitUntil([&] { return readers.reads() > 500; }));
  // A rebuilt binary arrives the way package managers install one: a new file renamed over.
  ASSERT_TRUE(harness::RunForResult({"cp", HOISTFS_BINARY, binary + ".new"}).ok());
  ASSERT_EQ(::rename((binary + ".new").c_str(), binary.c_str()), 0);
  const ino_t new_ino = InodeOf(binary);
  CommandResult up = harness::RunHoist({"upgrade", mp});
  ASSERT_TRUE(up.ok()) << up.Describe() << ": " << up.stderr_text;
  EXPECT_NE(up.stdout_text.find("upgraded " + mp + ": pid " + std::to_string(old_pid) + " -> "),
            std::string::npos)
      << up.stdout_text;
  auto [new_pid, same_supervisor] = Pids(mp);
  EXPECT_NE(new_pid, old_pid);
  EXPECT_EQ(same_supervisor, supervisor);
  EXPECT_FALSE(ProcessAlive(old_pid));
  struct stat exe {};
  ASSERT_EQ(::stat(("/proc/" + std::to_string(new_pid) + "/exe").c_str(), &exe), 0);
  EXPECT_EQ(exe.st_ino, new_ino) << "the new daemon runs the replaced binary";
  DropPageCache();
  const uint64_t after = readers.reads();
  ASSERT_TRUE(WaitUntil([&] { return readers.reads() > after + 1000; }));
  readers.Stop();
  std::printf("[ survival ] upgrade: %llu reads, longest read %.3f s\n",
              static_cast<unsigned long long>(readers.reads()), readers.max_stall_seconds());
  EXPECT_EQ(readers.wrong(), 0u);
  std::vector<std::string> errors = readers.errors();
  EXPECT_TRUE(errors.empty()) << errors.size() << " failed reads, first: " << errors[0];
  // The new daemon's counters: it served reads and none failed.
  ASSERT_TRUE(WaitUntil([&] {
    auto s = ReadMountStateFile(StateFileOf(mp));
    return s && s->pid == new_pid && s->stats.cache_hits + s->stats.cache_misses > 0;
  }));
  auto state = ReadMountStateFile(StateFileOf(mp));
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->stats.errors, 0u);
  ASSERT_TRUE(mounts.Unmount(mp).has_value());
}

// The python program of RunningContainer: each round re-imports the encodings modules from the
// image (their source compiled again: no bytecode cache on a read-only mount) and sums the bytes
// of the files in that directory and of the interpreter, then prints one line. The files are
// the host's (python_image.h), so the host computes the expected sum.
constexpr char kPythonLoop[] = R"(import os, sys, time
base = '/usr/lib/python3.11/encodings'
names = sorted(os.listdir(base))
print('names', ','.join(names), flush=True)
for i in range(ROUNDS):
    total = 0
    for f in names:
        p = base + '/' + f
        if f.endswith('.py') and f != '__init__.py':
            sys.modules.pop('encodings.' + f[:-3], None)
            __import__('encodings.' + f[:-3])
        with open(p, 'rb') as h:
            total += sum(h.read())
    with open('/usr/bin/python3.11', 'rb') as h:
        total += sum(h.read())
    print('round', i, total, flush=True)
    time.sleep(0.05)
print('done', flush=True)
)";
constexpr int kRounds = 120;

// Lines of `path` (a file being appended to).
std::vector<std::string> Lines(const std::string& path) {
  std::vector<std::string> out;
  auto text = ReadFile(path);
  if (!text) return out;
  size_t start = 0;
  while (start < text->size()) {
    size_t end = text->find('\n', start);
    if (end == std::string::npos) break;  // a line still being written
    out.push_back(text->substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// The daemon serving `image` (the state file naming it, or its repository pinned by digest as
// hoist run pins it, with a live pid).
int64_t DaemonOf(const std::string& image) {
  const std::string pinned = image.substr(0, image.rfind(':')) + "@sha256:";
  const std::string dir = DefaultStateDir() + "/mounts";
  CommandResult ls = harness::RunForResult({"ls", dir});
  size_t start = 0;
  while (start < ls.stdout_text.size()) {
    size_t end = ls.stdout_text.find('\n', start);
    if (end == std::string::npos) end = ls.stdout_text.size();
    const std::string name = ls.stdout_text.substr(start, end - start);
    start = end + 1;
    auto state = ReadMountStateFile(dir + "/" + name);
    if (state && (state->image == image || state->image.rfind(pinned, 0) == 0) &&
        ProcessAlive(state->pid)) {
      return state->pid;
    }
  }
  return 0;
}

TEST_F(SurvivalTest, RunningContainer) {
  // The python image, converted so its files come lazily from the registry.
  const std::string layout = NewDir("layout");
  auto layers = harness::PythonImageLayers(
      {harness::FileSpec::File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")});
  ASSERT_TRUE(layers.has_value()) << layers.error().message();
  harness::ImageSpec spec{.tag = "py"};
  spec.cmd = {"python3"};
  auto built = harness::BuildOciImage(layout, *layers, spec);
  ASSERT_TRUE(built.has_value()) << built.error().message();
  ASSERT_TRUE(harness::PushOciLayout(built->OciRef(), registry_->DockerRef("survival/py", "gz"))
                  .has_value());
  CommandResult conv =
      harness::RunHoist({"convert", "-q", registry_->DockerRef("survival/py", "gz"),
                         registry_->DockerRef("survival/py", "z")});
  ASSERT_TRUE(conv.ok()) << conv.Describe() << ": " << conv.stderr_text;
  const std::string image = registry_->ImageRef("survival/py", "z");

  std::string program = kPythonLoop;
  program.replace(program.find("ROUNDS"), 6, std::to_string(kRounds));
  const std::string out = NewDir("out") + "/stdout";
  const std::string cache = NewDir("cache");
  CommandResult run;
  struct Joiner {
    std::thread t;
    ~Joiner() {
      if (t.joinable()) t.join();
    }
  } runner;
  runner.t = std::thread([&] {
    run = harness::RunForResult(
        {"sh", "-c",
         "exec \"$0\" run --rm --cache \"$1\" -o prefetch=none \"$2\" python3 -c \"$3\" > \"$4\"",
         harness::HoistBinary(), cache, image, program, out},
        {.timeout = std::chrono::minutes(5)});
  });
  int64_t pid = 0;
  for (int kill_at : {15, 60}) {
    ASSERT_TRUE(WaitUntil([&] { return Lines(out).size() > static_cast<size_t>(kill_at); },
                          std::chrono::minutes(2)))
        << "the container printed " << Lines(out).size() << " lines";
    pid = DaemonOf(image);
    ASSERT_GT(pid, 0);
    ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGKILL), 0);
    DropPageCache();
    ASSERT_TRUE(WaitUntil([&] {
      const int64_t now = DaemonOf(image);
      return now != 0 && now != pid;
    })) << "no daemon took over from pid "
        << pid;
  }
  runner.t.join();
  EXPECT_TRUE(run.ok()) << run.Describe() << ": " << run.stderr_text;
  std::vector<std::string> lines = Lines(out);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kRounds + 2));
  EXPECT_EQ(lines.back(), "done");
  // The expected sum, from the host's copies of the same files.
  ASSERT_EQ(lines[0].rfind("names ", 0), 0u) << lines[0];
  uint64_t want = 0;
  std::vector<std::string> files = {"/usr/bin/python3.11"};
  for (size_t start = 6; start < lines[0].size();) {
    size_t comma = lines[0].find(',', start);
    if (comma == std::string::npos) comma = lines[0].size();
    files.push_back("/usr/lib/python3.11/encodings/" + lines[0].substr(start, comma - start));
    start = comma + 1;
  }
  for (const std::string& f : files) {
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;  // __pycache__ etc.
    auto bytes = ReadFile(f);
    ASSERT_TRUE(bytes.has_value()) << bytes.error().message();
    for (unsigned char c : *bytes) want += c;
  }
  for (int i = 0; i < kRounds; ++i) {
    EXPECT_EQ(lines[static_cast<size_t>(i) + 1],
              "round " + std::to_string(i) + " " + std::to_string(want));
  }
}

// SIGKILL to every process of the mount at `mp`: the reaper (the supervisor's child that is not
// the daemon) first, then the supervisor, then the daemon, each waited for.
void KillEverything(const std::string& mp) {
  auto [pid, supervisor] = Pids(mp);
  ASSERT_GT(pid, 0);
  ASSERT_GT(supervisor, 0);
  CommandResult kids = harness::RunForResult({"pgrep", "-P", std::to_string(supervisor)});
  std::vector<int64_t> reapers;
  size_t start = 0;
  while (start < kids.stdout_text.size()) {
    size_t end = kids.stdout_text.find('\n', start);
    if (end == std::string::npos) end = kids.stdout_text.size();
    if (end > start) {
      const int64_t child = std::stoll(kids.stdout_text.substr(start, end - start));
      if (child != pid) reapers.push_back(child);
    }
    start = end + 1;
  }
  ASSERT_EQ(reapers.size(), 1u) << "expected a reaper next to the daemon: " << kids.stdout_text;
  for (int64_t victim : {reapers[0], supervisor, pid}) {
    ASSERT_EQ(::kill(static_cast<pid_t>(victim), SIGKILL), 0);
    ASSERT_TRUE(WaitUntil([&] { return !ProcessAlive(victim); }));
  }
}

TEST_F(SurvivalTest, LostDaemon) {
  const std::string cache = NewDir("cache");
  const std::string mp = MountFiles(cache, mounts_);
  auto [pid, supervisor] = Pids(mp);
  ASSERT_GT(pid, 0);
  ASSERT_GT(supervisor, 0);
  // Supervisor first, so nobody restarts the daemon; the reaper then finds a dead mount.
  ASSERT_EQ(::kill(static_cast<pid_t>(supervisor), SIGKILL), 0);
  ASSERT_TRUE(WaitUntil([&] { return !ProcessAlive(supervisor); }));
  ASSERT_EQ(::kill(static_cast<pid_t>(pid), SIGKILL), 0);
  EXPECT_TRUE(WaitUntil([&] { return !harness::IsMounted(mp); }))
      << "the reaper did not detach the dead mount";
  CommandResult again = mounts_.Mount(*image_, mp, cache, {"-o", "prefetch=none"});
  ASSERT_TRUE(again.ok()) << again.Describe() << ": " << again.stderr_text;
  const std::string& name = (*names_)[3];
  auto got = ReadFile(mp + "/" + name);
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(*got, content_->at(name));

  // Now every process of the mount, the reaper first, so that nobody is left to clean up: the
  // mount is dead. `hoist umount` detaches it, and a fresh mount works.
  KillEverything(mp);
  EXPECT_TRUE(IsDeadFuseMount(mp)) << "a dead mount is left with nobody to clean it";
  CommandResult um = harness::RunHoist({"umount", mp});
  EXPECT_TRUE(um.ok()) << um.Describe() << ": " << um.stderr_text;
  EXPECT_FALSE(harness::IsMounted(mp));
  CommandResult third = mounts_.Mount(*image_, mp, cache, {"-o", "prefetch=none"});
  ASSERT_TRUE(third.ok()) << third.Describe() << ": " << third.stderr_text;
  auto got3 = ReadFile(mp + "/" + name);
  ASSERT_TRUE(got3.has_value()) << got3.error().message();
  EXPECT_EQ(*got3, content_->at(name));

  // Dead again: a new mount on the same path detaches the dead one itself, with a warning.
  KillEverything(mp);
  ASSERT_TRUE(IsDeadFuseMount(mp));
  CommandResult fourth = mounts_.Mount(*image_, mp, cache, {"-o", "prefetch=none"});
  ASSERT_TRUE(fourth.ok()) << fourth.Describe() << ": " << fourth.stderr_text;
  EXPECT_NE(fourth.stderr_text.find("detached a dead FUSE mount"), std::string::npos)
      << fourth.stderr_text;
  auto got4 = ReadFile(mp + "/" + name);
  ASSERT_TRUE(got4.has_value()) << got4.error().message();
  EXPECT_EQ(*got4, content_->at(name));
  ASSERT_TRUE(mounts_.Unmount(mp).has_value());
}

}  // namespace
}  // namespace hoist
