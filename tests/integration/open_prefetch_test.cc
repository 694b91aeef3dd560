// The prefetches an open starts, ELF (fusefs/elf_prefetch.h) and directory
// (fusefs/dir_prefetch.h), on REAL FUSE mounts by the real hoistfs binary, images pushed to a
// REAL registry and converted by the real `hoist convert`. Runs as root; without /dev/fuse (or
// the tools) the tests FAIL, they never skip.
//
//   Libraries   the host's /bin/ls and the libraries `ldd` names, in one layer with 4.5 MiB of
//               random bytes between every two files (more than any neighbour window), mounted
//               with prefetch=none: reading the first 4 KiB of ls makes exactly ls's interpreter
//               and libraries local (the daemon's debug lines name them; then, with the registry
//               stopped, each reads back whole and equal to the host's file).
//   Off         the same with -o elf_prefetch=0: nothing prefetched, a library read with the
//               registry stopped fails.
//   Hostile     an ELF naming "../../../etc/passwd", "/../../escape.so" and an interpreter
//               "/../../../lib/ld.so" resolves inside the image only: the image's /etc/passwd
//               and /lib/ld.so are fetched, nothing else.
//   Directory   pkg/__pycache__ holds a.pyc, b.pyc, c.pyc and notes.txt with 4.5 MiB fillers
//               (".bin") between them: opening a.pyc makes exactly b.pyc and c.pyc local (with
//               the registry stopped they read back equal; notes.txt and the fillers were not
//               fetched). A directory of 6 x 1,000,000 random bytes (over the 4 MiB budget) is
//               left alone, and -o dir_prefetch=0 fetches nothing. With a.pyc local from an
//               earlier mount, opening it starts nothing and opening b.pyc fetches c.pyc only.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "fusefs/stats_file.h"
#include "tests/harness/hoistfs_mounts.h"
#include "tests/harness/mountinfo.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/harness/wait.h"
#include "tests/index/elf_test_util.h"

#ifndef HOISTFS_BINARY
#error "HOISTFS_BINARY must name the hoistfs executable"
#endif
#ifndef HOIST_BINARY
#error "HOIST_BINARY must name the hoist executable"
#endif

namespace hoist {
namespace {

using harness::CommandResult;
using harness::FileSpec;
using harness::LayerSpec;

constexpr uint64_t kFiller = (9ull << 20) / 2;  // more than the largest neighbour window

std::string MakeTempDir(const std::string& name) {
  std::string templ = "/tmp/hoist-open-prefetch-test-" + name + "-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return "";
  return templ;
}

Result<MountStateFile> ReadState(const std::string& mountpoint) {
  return ReadMountStateFile(StateFileForCanonicalMountpoint(mountpoint, DefaultStateDir()));
}

bool WaitState(const std::string& mountpoint,
               const std::function<bool(const MountStateFile&)>& pred) {
  return harness::WaitUntil(
      [&] {
        auto s = ReadState(mountpoint);
        return s && pred(*s);
      },
      harness::kGenerousDeadline, std::chrono::milliseconds(50));
}

// The first 4 KiB of `path`, as a program's loader would read them.
Status ReadHead(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(ErrnoError("open " + path));
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof(buf));
  ::close(fd);
  if (n <= 0) return Fail(EIO, "read " + path);
  return Ok();
}

// "PREFIXfetching WHAT (B bytes in R requests)" lines of a daemon log (fusefs/file_fetch.h):
// WHAT -> B.
std::map<std::string, uint64_t> FetchLines(const std::string& log,
                                           const std::string& prefix = "elf prefetch: ") {
  std::map<std::string, uint64_t> out;
  std::istringstream in(log);
  std::string line;
  const std::string tag = prefix + "fetching ";
  while (std::getline(in, line)) {
    size_t at = line.find(tag);
    if (at == std::string::npos) continue;
    std::string rest = line.substr(at + tag.size());
    size_t paren = rest.rfind(" (");
    if (paren == std::string::npos) continue;
    out[rest.substr(0, paren)] = std::stoull(rest.substr(paren + 2));
  }
  return out;
}

class OpenPrefetchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setup_error_ = new std::string();
    auto fail = [](const std::string& e) { *setup_error_ = e; };
    if (::geteuid() != 0) return fail("the ELF prefetch tests must run as root");
    if (::access("/dev/fuse", R_OK | W_OK) != 0) return fail("/dev/fuse is not accessible");
    if (auto s = harness::RequirePrograms({"skopeo", "fusermount3", "docker-registry", "ldd"}); !s)
      return fail(s.error().message());
    work_ = new std::string(MakeTempDir("work"));
    auto reg = harness::TestRegistry::Launch();
    if (!reg) return fail(reg.error().message());
    registry_ = reg->release();
    if (auto s = BuildLsImage(); !s) return fail("ls image: " + s.error().message());
    if (auto s = BuildHostileImage(); !s) return fail("hostile image: " + s.error().message());
    if (auto s = BuildDirImage(); !s) return fail("dir image: " + s.error().message());
  }

  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
    const char* keep = std::getenv("HOIST_TEST_KEEP");
    if (work_ != nullptr && (keep == nullptr || *keep != '1')) (void)RemoveTree(*work_);
    delete work_;
    work_ = nullptr;
  }

  void SetUp() override { ASSERT_TRUE(setup_error_->empty()) << *setup_error_; }
  void TearDown() override {
    mounts_.UnmountAll();
    if (registry_ != nullptr && !registry_->running()) {
      ASSERT_TRUE(registry_->Start().has_value());
    }  // a test may have stopped it
  }

  static Status Push(const std::string& repo, std::vector<FileSpec> files) {
    auto image = harness::BuildOciImage(*work_ + "/" + repo + "-layout", {LayerSpec(files)});
    if (!image) return Fail(image.error());
    HOIST_RETURN_IF_ERROR(
        harness::PushOciLayout(image->OciRef(), registry_->DockerRef(repo + "/gz", "v1")));
    CommandResult r = harness::RunForResult(
        {HOIST_BINARY, "convert", "-q", registry_->DockerRef(repo + "/gz", "v1"),
         registry_->DockerRef(repo + "/img", "v1")},
        {.timeout = std::chrono::seconds(180)});
    if (!r.ok()) return Fail(EIO, "hoist convert: " + r.Describe() + ": " + r.stderr_text);
    return Ok();
  }

  // /usr/bin/ls, then each library `ldd` names at the path it names, fillers between.
  static Status BuildLsImage() {
    CommandResult ldd = harness::RunForResult({"ldd", "/bin/ls"}, {});
    if (!ldd.ok()) return Fail(EIO, "ldd /bin/ls: " + ldd.stderr_text);
    std::vector<std::string> paths;
    std::istringstream in(ldd.stdout_text);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream words(line);
      std::vector<std::string> w;
      for (std::string x; words >> x;) w.push_back(x);
      if (w.size() >= 3 && w[1] == "=>" && w[2].starts_with("/")) {
        paths.push_back(w[2]);
      } else if (!w.empty() && w[0].starts_with("/")) {
        paths.push_back(w[0]);  // the interpreter
      }
    }
    if (paths.size() < 2) return Fail(EIO, "ldd /bin/ls named no libraries: " + ldd.stdout_text);
    HOIST_ASSIGN_OR_RETURN(std::string ls, ReadFile("/bin/ls"));
    std::vector<FileSpec> files = {FileSpec::File("usr/bin/ls", ls, 0755),
                                   FileSpec::BigFile("filler/0", kFiller, 1)};
    int seed = 2;
    for (const std::string& p : paths) {
      HOIST_ASSIGN_OR_RETURN(std::string bytes, ReadFile(p));
      files.push_back(FileSpec::File(p.substr(1), bytes, 0755));
      files.push_back(FileSpec::BigFile("filler/" + std::to_string(seed), kFiller, seed));
      ++seed;
      libraries_->insert(p);
    }
    return Push("ls", std::move(files));
  }

  static Status BuildHostileImage() {
    testing::ElfSpec spec;
    spec.type = ET_EXEC;
    spec.interp = "/../../../lib/ld.so";
    spec.needed = {"../../../etc/passwd", "/../../escape.so", "libmissing.so.1"};
    std::string elf = testing::BuildElf(spec).bytes;
    return Push(
        "hostile",
        {FileSpec::File("bin/evil", elf, 0755), FileSpec::BigFile("filler/0", kFiller, 1),
         FileSpec::File("etc/passwd", "root:x:0:0::/:/bin/sh\n"),
         FileSpec::BigFile("filler/1", kFiller, 2),
         FileSpec::File("lib/ld.so", std::string(4096, 'L'), 0755),
         FileSpec::BigFile("filler/2", kFiller, 3),
         // ELF bytes in a data file (no x bit, no ".so"): never looked at.
         FileSpec::File("data/elf.dat", elf, 0644), FileSpec::BigFile("filler/3", kFiller, 4)});
  }

  // Small files of one kind, with fillers of another between them (more than the neighbour
  // window, so only the directory prefetch can bring a sibling).
  static Status BuildDirImage() {
    std::vector<FileSpec> files = {FileSpec::BigFile("pkg/__pycache__/a.pyc", 20000, 11),
                                   FileSpec::BigFile("pkg/__pycache__/a1.bin", kFiller, 12),
                                   FileSpec::BigFile("pkg/__pycache__/b.pyc", 30000, 13),
                                   FileSpec::BigFile("pkg/__pycache__/b1.bin", kFiller, 14),
                                   FileSpec::BigFile("pkg/__pycache__/c.pyc", 40000, 15),
                                   FileSpec::File("pkg/__pycache__/notes.txt", "not a module\n"),
                                   FileSpec::BigFile("pkg/__pycache__/c1.bin", kFiller, 16)};
    for (int i = 0; i < 6; ++i) {
      files.push_back(FileSpec::BigFile("big/m" + std::to_string(i) + ".pyc", 1000000, 20 + i));
    }
    return Push("dirs", std::move(files));
  }

  std::string NewDir(const std::string& name) {
    std::string d = *work_ + "/" + name + "-" + std::to_string(counter_++);
    EXPECT_TRUE(MakeDirs(d).has_value());
    return d;
  }

  // Mounts with prefetch=none, a 3 s read timeout and the log at debug in cache/hoistfs.log.
  void MountOk(const std::string& repo, const std::string& mp, const std::string& cache,
               const std::string& opts = "") {
    std::string o = "log_file=" + cache + "/hoistfs.log,log_level=debug,prefetch=none,timeout=3" +
                    (opts.empty() ? "" : "," + opts);
    CommandResult r = mounts_.Mount(registry_->ImageRef(repo + "/img", "v1"), mp, cache, {"-o", o},
                                    {.timeout = std::chrono::seconds(120)});
    ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
    ASSERT_TRUE(harness::IsMounted(mp)) << mp;
  }

  static std::string Log(const std::string& cache) {
    auto log = ReadFile(cache + "/hoistfs.log");
    return log ? *log : std::string();
  }

  static std::string* setup_error_;
  static std::string* work_;
  static harness::TestRegistry* registry_;
  static std::set<std::string>* libraries_;
  harness::HoistfsMounts mounts_{HOISTFS_BINARY};
  static int counter_;
};

std::string* OpenPrefetchTest::setup_error_ = nullptr;
std::string* OpenPrefetchTest::work_ = nullptr;
harness::TestRegistry* OpenPrefetchTest::registry_ = nullptr;
std::set<std::string>* OpenPrefetchTest::libraries_ = new std::set<std::string>();
int OpenPrefetchTest::counter_ = 0;

TEST_F(OpenPrefetchTest, OpeningAProgramFetchesExactlyItsLibraries) {
  const std::string mp = NewDir("mnt"), cache = NewDir("cache");
  MountOk("ls", mp, cache);
  ASSERT_TRUE(ReadHead(mp + "/usr/bin/ls").has_value());
  // Every library named, then every byte the daemon asked for arrived.
  std::map<std::string, uint64_t> fetched;
  ASSERT_TRUE(harness::WaitUntil([&] {
    fetched = FetchLines(Log(cache));
    fetched.erase("/usr/bin/ls");  // the program itself, unless its read-ahead got there first
    // The walk's summary line comes once it has read every library's headers.
    return fetched.size() >= libraries_->size() &&
           Log(cache).find("libraries for /usr/bin/ls") != std::string::npos;
  })) << Log(cache);
  std::set<std::string> names;
  uint64_t bytes = 0;
  for (const auto& [path, b] : fetched) {
    names.insert(path);
    bytes += b;
  }
  EXPECT_EQ(names, *libraries_);
  EXPECT_NE(Log(cache).find("elf prefetch: " + std::to_string(libraries_->size()) +
                            " libraries for /usr/bin/ls"),
            std::string::npos)
      << Log(cache);
  ASSERT_GT(bytes, 0u);
  // ...and became local (a line per library once all its requests succeeded).
  ASSERT_TRUE(harness::WaitUntil([&] {
    const std::string log = Log(cache);
    for (const std::string& lib : *libraries_) {
      if (log.find("elf prefetch: " + lib + " is local") == std::string::npos) return false;
    }
    return true;
  })) << Log(cache);
  // Local: with the registry gone, each library reads back whole.
  registry_->Stop();
  for (const std::string& lib : *libraries_) {
    auto got = ReadFile(mp + lib);
    ASSERT_TRUE(got.has_value()) << lib << ": " << got.error().message();
    auto want = ReadFile(lib);
    ASSERT_TRUE(want.has_value());
    EXPECT_TRUE(*got == *want) << lib;
  }
  // No filler was fetched: the prefetch asked for the libraries only.
  auto state = ReadState(mp);
  ASSERT_TRUE(state.has_value());
  EXPECT_LT(state->stats.bytes_fetched, 2 * kFiller) << "fetched " << state->stats.bytes_fetched;
}

TEST_F(OpenPrefetchTest, OffFetchesNothingBeyondWhatWasRead) {
  const std::string mp = NewDir("mnt"), cache = NewDir("cache");
  MountOk("ls", mp, cache, "elf_prefetch=0");
  ASSERT_TRUE(ReadHead(mp + "/usr/bin/ls").has_value());
  ASSERT_TRUE(WaitState(mp, [](const MountStateFile& s) { return s.stats.bytes_fetched > 0; }));
  registry_->Stop();
  const std::string lib = *libraries_->begin();
  EXPECT_FALSE(ReadFile(mp + lib).has_value()) << lib << " was local";
  auto state = ReadState(mp);
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->stats.prefetch_bytes, 0u);
  EXPECT_EQ(Log(cache).find("elf prefetch"), std::string::npos) << Log(cache);
}

TEST_F(OpenPrefetchTest, HostileNamesResolveInsideTheImageOnly) {
  const std::string mp = NewDir("mnt"), cache = NewDir("cache");
  MountOk("hostile", mp, cache);
  ASSERT_TRUE(ReadHead(mp + "/data/elf.dat").has_value());  // opened first: queued first if at all
  ASSERT_TRUE(ReadHead(mp + "/bin/evil").has_value());
  std::map<std::string, uint64_t> fetched;
  ASSERT_TRUE(harness::WaitUntil([&] {
    fetched = FetchLines(Log(cache));
    fetched.erase("/bin/evil");
    return fetched.size() >= 2 && Log(cache).find("libraries for /bin/evil") != std::string::npos;
  })) << Log(cache);
  std::set<std::string> names;
  for (const auto& [path, b] : fetched) names.insert(path);
  EXPECT_EQ(names, (std::set<std::string>{"/etc/passwd", "/lib/ld.so"}));
  EXPECT_NE(Log(cache).find("elf prefetch: 2 libraries for /bin/evil"), std::string::npos)
      << Log(cache);
  EXPECT_EQ(Log(cache).find("/data/elf.dat"), std::string::npos) << Log(cache);
}

TEST_F(OpenPrefetchTest, OpeningAFileFetchesItsSiblingsOfTheSameKind) {
  const std::string mp = NewDir("mnt"), cache = NewDir("cache");
  MountOk("dirs", mp, cache);
  const std::string dir = mp + "/pkg/__pycache__";
  ASSERT_TRUE(ReadHead(dir + "/a.pyc").has_value());
  ASSERT_TRUE(harness::WaitUntil([&] {
    return Log(cache).find("dir prefetch: /pkg/__pycache__ is local") != std::string::npos;
  })) << Log(cache);
  EXPECT_NE(Log(cache).find("dir prefetch: 2 files of /pkg/__pycache__ ("), std::string::npos)
      << Log(cache);
  EXPECT_EQ(FetchLines(Log(cache), "dir prefetch: ").count("/pkg/__pycache__"), 1u) << Log(cache);
  registry_->Stop();
  const std::map<std::string, std::pair<uint64_t, uint32_t>> siblings = {{"b.pyc", {30000, 13}},
                                                                         {"c.pyc", {40000, 15}}};
  for (const auto& [name, spec] : siblings) {
    auto got = ReadFile(dir + "/" + name);
    ASSERT_TRUE(got.has_value()) << name << ": " << got.error().message();
    EXPECT_TRUE(*got == harness::PatternBytes(spec.second, 0, spec.first)) << name;
  }
  // Another kind, and the fillers: never asked for.
  EXPECT_FALSE(ReadFile(dir + "/notes.txt").has_value()) << "notes.txt was local";
  auto state = ReadState(mp);
  ASSERT_TRUE(state.has_value());
  EXPECT_LT(state->stats.bytes_fetched, kFiller) << "fetched " << state->stats.bytes_fetched;
}

// Whether the opened file is local is decided at its open: a file a first mount made local
// starts nothing when it is opened again, and the next cold open in that directory does.
TEST_F(OpenPrefetchTest, AFileLocalAtItsOpenStartsNothingTheNextColdOpenDoes) {
  const std::string mp = NewDir("mnt"), cache = NewDir("cache");
  MountOk("dirs", mp, cache, "dir_prefetch=0");
  const std::string dir = mp + "/pkg/__pycache__";
  auto a = ReadFile(dir + "/a.pyc");
  ASSERT_TRUE(a.has_value()) << a.error().message();
  ASSERT_TRUE(*a == harness::PatternBytes(11, 0, 20000));
  ASSERT_TRUE(mounts_.Unmount(mp).has_value());  // the cache commits what it holds
  ASSERT_EQ(::unlink((cache + "/hoistfs.log").c_str()), 0);

  MountOk("dirs", mp, cache);
  ASSERT_TRUE(ReadHead(dir + "/a.pyc").has_value());  // local: starts nothing
  ASSERT_TRUE(ReadHead(dir + "/b.pyc").has_value());  // cold: fetches c.pyc, not a.pyc
  ASSERT_TRUE(harness::WaitUntil([&] {
    return Log(cache).find("dir prefetch: /pkg/__pycache__ is local") != std::string::npos;
  })) << Log(cache);
  EXPECT_NE(Log(cache).find("dir prefetch: 1 files of /pkg/__pycache__ ("), std::string::npos)
      << Log(cache);
  EXPECT_EQ(FetchLines(Log(cache), "dir prefetch: ").count("/pkg/__pycache__"), 1u) << Log(cache);
  registry_->Stop();
  auto c = ReadFile(dir + "/c.pyc");
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_TRUE(*c == harness::PatternBytes(15, 0, 40000));
  EXPECT_FALSE(ReadFile(dir + "/notes.txt").has_value()) << "notes.txt was local";
}

TEST_F(OpenPrefetchTest, ADirectoryOverTheBudgetIsLeftAlone) {
  const std::string mp = NewDir("mnt"), cache = NewDir("cache");
  MountOk("dirs", mp, cache);
  ASSERT_TRUE(ReadHead(mp + "/big/m0.pyc").has_value());
  ASSERT_TRUE(harness::WaitUntil([&] {
    return Log(cache).find("dir prefetch: /big left alone (") != std::string::npos;
  })) << Log(cache);
  EXPECT_TRUE(FetchLines(Log(cache), "dir prefetch: ").empty()) << Log(cache);
  registry_->Stop();
  EXPECT_FALSE(ReadFile(mp + "/big/m1.pyc").has_value()) << "m1.pyc was local";
}

TEST_F(OpenPrefetchTest, DirPrefetchOffFetchesNoSibling) {
  const std::string mp = NewDir("mnt"), cache = NewDir("cache");
  MountOk("dirs", mp, cache, "dir_prefetch=0");
  ASSERT_TRUE(ReadHead(mp + "/pkg/__pycache__/a.pyc").has_value());
  ASSERT_TRUE(WaitState(mp, [](const MountStateFile& s) { return s.stats.bytes_fetched > 0; }));
  registry_->Stop();
  EXPECT_FALSE(ReadFile(mp + "/pkg/__pycache__/b.pyc").has_value()) << "b.pyc was local";
  EXPECT_EQ(Log(cache).find("dir prefetch"), std::string::npos) << Log(cache);
}

}  // namespace
}  // namespace hoist
