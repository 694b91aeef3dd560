// hoistfs against a REAL registry (TestRegistry), with REAL FUSE mounts made by the real hoistfs
// binary, images converted by the real `hoist convert` and by the real skopeo. Runs as root;
// without /dev/fuse (or fusermount3, skopeo, umoci) the tests FAIL, they never skip.
//
//   TreeEquality  a 3-layer image (files, dirs, symlinks, hardlinks, a fifo, setuid, owners,
//                 xattrs incl. security.capability, whiteouts, an opaque dir, a 64 MiB+ file),
//                 converted by hoist and by skopeo: the mounted tree equals `umoci unpack` of
//                 the original gzip image (sha256, type, mode, uid, gid, mtime, size, link
//                 target, hardlink identity, xattrs).
//   Laziness      one small file read from a ~50 MB layer fetches < 2% of it (stats file AND the
//                 registry's log).
//   Failure       full prefetch then registry stopped: all files read; no prefetch and registry
//                 stopped: EIO within timeout + 1 s, and the same read works after a restart;
//                 a chunk corrupted in the registry's storage is never served.
//   Concurrency   32 threads, random ranges of 1,000 files, every byte checked.
//   Remount       the second mount uses the stored index: no blob GET at all.
//   Trace         an access trace published as a referrer of the image is found by the mount
//                 and its files fetched before any read; a tampered one is refused with one
//                 warning and the mount works. Each in a copy of lazy/img of its own: a
//                 referrer (its tag-schema tag) stays in the registry for every later test.
//   ReadOnly      every write-type call fails with EROFS.
//   BadInput      unknown image, bad TOC digest, malformed TOC, missing / non-directory / busy
//                 mountpoint: exit 1, one line, nothing mounted.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "base/process.h"
#include "fetcher/referrers.h"
#include "fetcher/registry.h"
#include "fusefs/access_trace.h"
#include "fusefs/layer_loader.h"
#include "fusefs/stats_file.h"
#include "tests/harness/hoistfs_mounts.h"
#include "tests/harness/mountinfo.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/harness/tree_walk.h"
#include "tests/harness/wait.h"

#ifndef HOISTFS_BINARY
#error "HOISTFS_BINARY must name the hoistfs executable"
#endif
#ifndef HOIST_BINARY
#error "HOIST_BINARY must name the hoist executable"
#endif

namespace hoist {
namespace {

using harness::IsMounted;

using harness::CommandOptions;
using harness::CommandResult;
using harness::FileSpec;
using harness::LayerSpec;
using SteadyClock = std::chrono::steady_clock;

constexpr int kLazyFiles = 1000;
constexpr uint64_t kLazyFileSize = 48 * 1024;

std::string MakeTempDir(const std::string& name) {
  std::string templ = "/tmp/hoist-mount-test-" + name + "-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return "";
  return templ;
}

CommandResult RunCmd(const std::vector<std::string>& argv,
                     std::chrono::seconds timeout = std::chrono::seconds(180)) {
  CommandOptions options;
  options.timeout = timeout;
  return harness::RunForResult(argv, options);
}

std::string StatePath(const std::string& mountpoint) {
  return StateFileForCanonicalMountpoint(mountpoint, DefaultStateDir());
}

Result<MountStateFile> ReadState(const std::string& mountpoint) {
  return ReadMountStateFile(StatePath(mountpoint));
}

// Polls the state file until `pred` holds (or the timeout).
bool WaitState(const std::string& mountpoint,
               const std::function<bool(const MountStateFile&)>& pred,
               std::chrono::milliseconds timeout = harness::kGenerousDeadline) {
  return harness::WaitUntil(
      [&] {
        auto s = ReadState(mountpoint);
        return s && pred(*s);
      },
      timeout, std::chrono::milliseconds(100));
}

// Reads a whole file; errno on failure.
Result<std::string> ReadAllFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(ErrnoError("open " + path));
  std::string out;
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      Error e = ErrnoError("read " + path);
      ::close(fd);
      return Fail(e);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string LazyName(int i) {
  char b[32];
  std::snprintf(b, sizeof(b), "files/f%04d", i);
  return b;
}
uint64_t LazySize(int i) { return kLazyFileSize + static_cast<uint64_t>(i); }
uint32_t LazySeed(int i) { return 1000u + static_cast<uint32_t>(i); }

using harness::CompareTrees;
using harness::WalkTree;

// ---------- the suite ----------

class MountTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setup_error_ = new std::string();
    auto fail = [](const std::string& e) { *setup_error_ = e; };
    if (::geteuid() != 0) return fail("the mount tests must run as root");
    if (::access("/dev/fuse", R_OK | W_OK) != 0)
      return fail("/dev/fuse is missing or not accessible: FUSE mounts cannot be tested");
    if (auto s = harness::RequirePrograms(
            {"skopeo", "umoci", "fusermount3", "docker-registry", "gzip", "tar"});
        !s)
      return fail(s.error().message());
    work_ = new std::string(MakeTempDir("work"));
    auto reg = harness::TestRegistry::Launch();
    if (!reg) return fail(reg.error().message());
    registry_ = reg->release();
    auto client = RegistryClient::CreateDefault();
    if (!client) return fail(client.error().message());
    client_ = client->release();
    if (auto s = BuildLazyImage(); !s) return fail("lazy image: " + s.error().message());
  }

  static void TearDownTestSuite() {
    delete client_;
    client_ = nullptr;
    delete registry_;
    registry_ = nullptr;
    // HOIST_TEST_KEEP=1 keeps the work dir (daemon logs are in each *-cache dir).
    const char* keep = std::getenv("HOIST_TEST_KEEP");
    if (work_ != nullptr && (keep == nullptr || *keep != '1')) (void)RemoveTree(*work_);
    delete work_;
    work_ = nullptr;
    delete lazy_layer_;  // a --gtest_repeat iteration makes new ones
    lazy_layer_ = nullptr;
    delete setup_error_;
    setup_error_ = nullptr;
  }

  void SetUp() override { ASSERT_TRUE(setup_error_->empty()) << *setup_error_; }

  void TearDown() override { mounts_.UnmountAll(); }

  static std::string Ref(const std::string& repo, const std::string& tag = "v1") {
    return registry_->ImageRef(repo, tag);
  }
  static std::string DockerRef(const std::string& repo, const std::string& tag = "v1") {
    return registry_->DockerRef(repo, tag);
  }

  static Status HoistConvert(const std::string& src, const std::string& dst) {
    CommandResult r = RunCmd({HOIST_BINARY, "convert", "-q", src, dst});
    if (!r.ok()) return Fail(EIO, "hoist convert: " + r.Describe() + ": " + r.stderr_text);
    return Ok();
  }

  // 1,000 small files + one small text file in one ~50 MB layer, plain gzip, then converted.
  static Status BuildLazyImage() {
    std::vector<FileSpec> files = {FileSpec::Dir("files"),
                                   FileSpec::File("small.txt", "the small file\n")};
    for (int i = 0; i < kLazyFiles; ++i)
      files.push_back(FileSpec::BigFile(LazyName(i), LazySize(i), LazySeed(i)));
    auto image = harness::BuildOciImage(*work_ + "/lazy-layout", {LayerSpec(files)});
    if (!image) return Fail(image.error());
    HOIST_RETURN_IF_ERROR(harness::PushOciLayout(image->OciRef(), DockerRef("lazy/gz")));
    HOIST_RETURN_IF_ERROR(HoistConvert(DockerRef("lazy/gz"), DockerRef("lazy/img")));
    auto ref = Reference::Parse(Ref("lazy/img"));
    if (!ref) return Fail(ref.error());
    auto resolved = client_->Resolve(*ref);
    if (!resolved) return Fail(resolved.error());
    if (resolved->manifest.layers.size() != 1) return Fail(EINVAL, "expected one layer");
    lazy_layer_ = new Descriptor(resolved->manifest.layers[0]);
    return Ok();
  }

  std::string NewDir(const std::string& name) {
    std::string d = *work_ + "/" + name + "-" + std::to_string(counter_++);
    EXPECT_TRUE(MakeDirs(d).has_value());
    return d;
  }

  // lazy/img copied, digests kept, to a repository no other test uses (`repo`-N): what a test
  // attaches to it (a referrer and its tag-schema tag) is seen by no other test.
  std::string OwnCopyOfLazyImage(const std::string& repo) {
    const std::string name = repo + "-" + std::to_string(counter_++);
    CommandResult r = RunCmd({"skopeo", "copy", "-q", "--insecure-policy", "--preserve-digests",
                              "--src-tls-verify=false", "--dest-tls-verify=false",
                              DockerRef("lazy/img"), DockerRef(name)});
    EXPECT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
    return Ref(name);
  }

  // Runs hoistfs --cache CACHE -o log_file=...,<opts> IMAGE MP (harness::HoistfsMounts, which
  // remembers MP for cleanup).
  CommandResult Hoistfs(const std::string& image, const std::string& mp, const std::string& cache,
                        const std::string& opts = "") {
    // The daemon's log goes next to its cache (kept with the work dir on failure).
    std::string o =
        "log_file=" + cache + "/hoistfs.log,log_level=info" + (opts.empty() ? "" : "," + opts);
    return mounts_.Mount(image, mp, cache, {"-o", o}, {.timeout = std::chrono::seconds(120)});
  }

  // fusermount3 -u, then wait until the mount and the daemon (pid from the state file) are gone.
  Status Unmount(const std::string& mp) { return mounts_.Unmount(mp); }

  // Mounts `image` (asserting success) with a fresh cache unless one is given.
  void MountOk(const std::string& image, const std::string& mp, const std::string& cache,
               const std::string& opts = "") {
    CommandResult r = Hoistfs(image, mp, cache, opts);
    ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
    ASSERT_TRUE(IsMounted(mp)) << mp;
  }

  static std::string* setup_error_;
  static std::string* work_;
  static harness::TestRegistry* registry_;
  static RegistryClient* client_;
  static Descriptor* lazy_layer_;
  harness::HoistfsMounts mounts_{HOISTFS_BINARY};
  static int counter_;
};

std::string* MountTest::setup_error_ = nullptr;
std::string* MountTest::work_ = nullptr;
harness::TestRegistry* MountTest::registry_ = nullptr;
RegistryClient* MountTest::client_ = nullptr;
Descriptor* MountTest::lazy_layer_ = nullptr;
int MountTest::counter_ = 0;

// A valid VFS_CAP_REVISION_2 security.capability: effective, CAP_NET_BIND_SERVICE permitted.
std::string CapabilityXattr() {
  const unsigned char b[20] = {0x01, 0, 0, 0x02, 0x00, 0x04, 0, 0, 0, 0,
                               0,    0, 0, 0,    0,    0,    0, 0, 0, 0};
  return std::string(reinterpret_cast<const char*>(b), sizeof(b));
}

TEST_F(MountTest, TreeEqualsFullUnpackForHoistAndSkopeoConversions) {
  const uint64_t kBig = (64ull << 20) + 12345;
  std::vector<LayerSpec> layers = {
      {
          FileSpec::Dir("etc"),
          FileSpec::File("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
          FileSpec::File("etc/shadow", "secret\n", 0600).Owner(0, 42),
          FileSpec::Dir("bin"),
          FileSpec::File("bin/ping", "#!/bin/sh\necho ping\n", 0755)
              .Xattr("security.capability", CapabilityXattr()),
          FileSpec::File("bin/su", "su\n", 04755),
          FileSpec::File("home/user/notes", "mine\n").Owner(1000, 1000).Mtime(1600000000),
          FileSpec::File("home/user/tagged", "x")
              .Xattr("user.tag", "blue")
              .Xattr("user.bin", "\x01\x02"),
          FileSpec::Dir("a"),
          FileSpec::File("a/keep", "keep\n"),
          FileSpec::File("a/gone", "gone\n"),
          FileSpec::Dir("a/sub"),
          FileSpec::File("a/sub/x", "x\n"),
          FileSpec::Dir("opq"),
          FileSpec::File("opq/old1", "old1\n"),
          FileSpec::File("opq/old2", "old2\n"),
          FileSpec::File("links/target", "shared by three names\n", 0640).Owner(7, 8),
          FileSpec::Hardlink("links/second", "links/target"),
          FileSpec::Hardlink("links/third", "links/target"),
          FileSpec::Symlink("links/sym", "../etc/passwd"),
          FileSpec::Symlink("links/dangling", "/nowhere/at/all"),
          FileSpec::Fifo("run/fifo", 0600),
          FileSpec::File("empty", ""),
          FileSpec::Dir("sticky", 01777),
      },
      {
          FileSpec::Whiteout("a/gone"),
          FileSpec::Whiteout("a/sub"),
          FileSpec::Opaque("opq"),
          FileSpec::File("opq/new", "new\n"),
          FileSpec::File("etc/passwd", "root:x:0:0::/root:/bin/bash\n"),
          FileSpec::BigFile("data/big", kBig, 99),
          FileSpec::File("l2/h", "layer two hardlinked\n"),
          FileSpec::Hardlink("l2/h2", "l2/h"),
          FileSpec::Dir("xdir").Xattr("user.dir", "attr on a dir"),
      },
      {
          FileSpec::Whiteout("links/third"),
          FileSpec::File("a/sub", "a file where a dir was\n"),
          FileSpec::Symlink("etc/alias", "passwd"),
      },
  };
  const std::string layout = *work_ + "/tree-layout";
  auto image = harness::BuildOciImage(layout, layers, {.tag = "v1"});
  ASSERT_TRUE(image.has_value()) << image.error().message();
  // skopeo first: once the gzip blobs are in the registry, skopeo reuses them unconverted.
  auto skopeo = harness::RunChecked({"skopeo", "copy", "--insecure-policy",
                                     "--dest-tls-verify=false", "--dest-compress-format",
                                     "zstd:chunked", image->OciRef(), DockerRef("tree/skopeo")});
  ASSERT_TRUE(skopeo.has_value()) << skopeo.error().message();
  ASSERT_TRUE(harness::PushOciLayout(image->OciRef(), DockerRef("tree/gz")).has_value());
  ASSERT_TRUE(HoistConvert(DockerRef("tree/gz"), DockerRef("tree/hoist")).has_value());

  // The reference: umoci's full unpack of the original gzip image.
  const std::string bundle = *work_ + "/tree-bundle";
  auto unpack = harness::RunChecked({"umoci", "unpack", "--image", layout + ":v1", bundle});
  ASSERT_TRUE(unpack.has_value()) << unpack.error().message();
  auto want = WalkTree(bundle + "/rootfs");
  ASSERT_TRUE(want.has_value()) << want.error().message();
  ASSERT_TRUE(want->count("data/big"));
  ASSERT_EQ(want->at("data/big").size, kBig);
  ASSERT_FALSE(want->count("a/gone"));
  ASSERT_FALSE(want->count("opq/old1"));

  // tree/gz: the unconverted gzip layers (index built from the stream, contents by full fetch).
  for (const std::string repo : {"tree/hoist", "tree/skopeo", "tree/gz"}) {
    SCOPED_TRACE(repo);
    auto resolved = client_->Resolve(*Reference::Parse(Ref(repo)));
    ASSERT_TRUE(resolved.has_value()) << resolved.error().message();
    for (const Descriptor& d : resolved->manifest.layers) {
      if (repo == "tree/gz") continue;
      EXPECT_NE(d.media_type.find("zstd"), std::string::npos) << d.media_type;
      EXPECT_TRUE(ParseZstdChunkedAnnotations(d.annotations).has_value()) << repo;
    }
    const std::string mp = NewDir("tree-mnt");
    MountOk(Ref(repo), mp, NewDir("tree-cache"), "prefetch=none");
    auto got = WalkTree(mp);
    ASSERT_TRUE(got.has_value()) << got.error().message();
    std::vector<std::string> diffs = CompareTrees(*want, *got);
    std::string shown;
    for (size_t i = 0; i < diffs.size() && i < 20; ++i) shown += diffs[i] + "\n";
    EXPECT_TRUE(diffs.empty()) << diffs.size() << " differences:\n" << shown;
    // Hardlinks share one inode with the right link count.
    struct stat a {
    }, b{};
    ASSERT_EQ(::lstat((mp + "/links/target").c_str(), &a), 0);
    ASSERT_EQ(::lstat((mp + "/links/second").c_str(), &b), 0);
    EXPECT_EQ(a.st_ino, b.st_ino);
    EXPECT_EQ(a.st_nlink, 2u);
    // Size query and ERANGE semantics of getxattr/listxattr.
    const std::string tagged = mp + "/home/user/tagged";
    EXPECT_EQ(::getxattr(tagged.c_str(), "user.tag", nullptr, 0), 4);
    char small[2];
    EXPECT_EQ(::getxattr(tagged.c_str(), "user.tag", small, sizeof(small)), -1);
    EXPECT_EQ(errno, ERANGE);
    EXPECT_EQ(::getxattr(tagged.c_str(), "user.none", nullptr, 0), -1);
    EXPECT_EQ(errno, ENODATA);
    EXPECT_EQ(::listxattr(tagged.c_str(), nullptr, 0),
              static_cast<ssize_t>(std::string("user.bin").size() + 1 + 9));
    EXPECT_EQ(::listxattr(tagged.c_str(), small, sizeof(small)), -1);
    EXPECT_EQ(errno, ERANGE);
    ASSERT_TRUE(Unmount(mp).has_value());
    EXPECT_FALSE(IsMounted(mp));
  }
}

TEST_F(MountTest, ReadingOneSmallFileFetchesUnderTwoPercentOfTheLayer) {
  const std::string mp = NewDir("lazy-mnt");
  const uint64_t mark = registry_->LogMark();
  MountOk(Ref("lazy/img"), mp, NewDir("lazy-cache"), "prefetch=none");
  auto content = ReadAllFile(mp + "/small.txt");
  ASSERT_TRUE(content.has_value()) << content.error().message();
  EXPECT_EQ(*content, "the small file\n");
  const uint64_t layer_size = static_cast<uint64_t>(lazy_layer_->size);
  ASSERT_GT(layer_size, 45ull << 20);
  const uint64_t budget = layer_size / 50;
  ASSERT_TRUE(WaitState(mp, [](const MountStateFile& s) { return s.stats.bytes_fetched > 0; }));
  auto state = ReadState(mp);
  ASSERT_TRUE(state.has_value());
  EXPECT_GT(state->stats.bytes_fetched, 0u);
  EXPECT_LT(state->stats.bytes_fetched, budget);
  EXPECT_EQ(state->stats.prefetch_bytes, 0u);
  // The registry's own account: every byte of the layer blob it sent since before the mount
  // (footer, TOC and the chunk).
  auto requests = registry_->Requests(mark);
  ASSERT_TRUE(requests.has_value()) << requests.error().message();
  uint64_t sent = 0;
  int gets = 0;
  for (const auto& r : *requests) {
    if (r.IsBlobGet() && r.uri.find(lazy_layer_->digest.str()) != std::string::npos) {
      sent += r.bytes_written;
      ++gets;
    }
  }
  EXPECT_GE(gets, 2);  // at least the TOC and the chunk
  EXPECT_GT(sent, 0u);
  EXPECT_LT(sent, budget) << "registry sent " << sent << " of " << layer_size << " bytes";
  ASSERT_TRUE(Unmount(mp).has_value());
  // The state file is written at exit too.
  auto final_state = ReadState(mp);
  ASSERT_TRUE(final_state.has_value());
  EXPECT_GE(final_state->stats.bytes_fetched, state->stats.bytes_fetched);
  // hoist stats reads it without touching the mountpoint's content.
  CommandResult stats = RunCmd({HOIST_BINARY, "stats", "--json", mp});
  ASSERT_TRUE(stats.ok()) << stats.stderr_text;
  EXPECT_NE(stats.stdout_text.find("\"bytes_fetched\""), std::string::npos);
}

// Publishes an access trace of `files` (lazy image paths) for `ref` (a copy of lazy/img) as a
// referrer.
Result<Descriptor> PublishLazyTrace(RegistryClient& client, const Reference& ref,
                                    const std::vector<int>& files) {
  auto resolved = client.Resolve(ref);
  if (!resolved) return Fail(resolved.error());
  AccessTrace trace;
  trace.image = resolved->manifest_bytes.digest;
  for (int i : files) trace.files.push_back({resolved->manifest.layers[0].digest, LazyName(i)});
  Descriptor subject;
  subject.media_type = resolved->manifest_bytes.media_type;
  subject.digest = resolved->manifest_bytes.digest;
  subject.size = static_cast<int64_t>(resolved->manifest_bytes.bytes.size());
  return PushReferrer(client, ref, subject, kAccessTraceArtifactType,
                      {{kAccessTraceMediaType, SerializeAccessTrace(trace), {}}}, {});
}

// A trace published to the registry for the image (OCI referrer, tag-schema fallback on this
// distribution 2.8): the mount finds it by itself and fetches the traced files before anything
// reads them; reading them then costs no request, and an untraced file still does.
TEST_F(MountTest, PublishedTraceIsFetchedBeforeAnyRead) {
  const std::string image = OwnCopyOfLazyImage("trace/img");
  auto ref = Reference::Parse(image);
  ASSERT_TRUE(ref.has_value());
  auto published = PublishLazyTrace(*client_, *ref, {700, 3, 411});
  ASSERT_TRUE(published.has_value()) << published.error().message();
  const std::string mp = NewDir("trace-mnt");
  const std::string cache = NewDir("trace-cache");
  // priority: no whole-image pass, so only the trace (and nothing else) is fetched early.
  MountOk(image, mp, cache, "prefetch=priority,log_level=debug");
  const std::string done_line = "access trace " + published->digest.str() + ": 3 files local";
  ASSERT_TRUE(harness::WaitUntil(
      [&] {
        auto log = ReadFile(cache + "/hoistfs.log");
        return log && log->find(done_line) != std::string::npos;
      },
      harness::kGenerousDeadline, std::chrono::milliseconds(50)))
      << ReadFile(cache + "/hoistfs.log").value_or("(no log)");
  // The daemon logs every request at debug before the read it serves returns (request_log.h),
  // so the log says exactly which reads went to the registry.
  auto gets_after_done = [&] {
    auto log = ReadFile(cache + "/hoistfs.log");
    if (!log) return -1;
    const size_t from = log->find(done_line);
    if (from == std::string::npos) return -1;
    int gets = 0;
    const std::string blob = "blobs/" + lazy_layer_->digest.str();
    for (size_t at = log->find(blob, from); at != std::string::npos; at = log->find(blob, at + 1))
      ++gets;
    return gets;
  };
  for (int i : {3, 411, 700}) {
    auto content = ReadAllFile(mp + "/" + LazyName(i));
    ASSERT_TRUE(content.has_value()) << content.error().message();
    EXPECT_EQ(content->size(), LazySize(i));
  }
  EXPECT_EQ(gets_after_done(), 0);
  auto other = ReadAllFile(mp + "/" + LazyName(200));
  ASSERT_TRUE(other.has_value()) << other.error().message();
  EXPECT_GE(gets_after_done(), 1);
  auto log = ReadFile(cache + "/hoistfs.log");
  ASSERT_TRUE(log.has_value());
  EXPECT_EQ(log->find("refused"), std::string::npos) << *log;
}

// A trace whose blob was changed in the registry's storage: refused with one warning line, the
// mount works and nothing is prefetched from it.
TEST_F(MountTest, TamperedTraceIsRefusedWithOneWarning) {
  const std::string image = OwnCopyOfLazyImage("tampered/img");
  auto ref = Reference::Parse(image);
  ASSERT_TRUE(ref.has_value());
  auto published = PublishLazyTrace(*client_, *ref, {5, 6});
  ASSERT_TRUE(published.has_value()) << published.error().message();
  auto artifact = client_->GetManifest(ref->WithDigest(published->digest));
  ASSERT_TRUE(artifact.has_value()) << artifact.error().message();
  auto manifest = ParseImageManifest(artifact->bytes, artifact->media_type);
  ASSERT_TRUE(manifest.has_value());
  const std::string blob_path = registry_->BlobPath(manifest->layers[0].digest.str());
  auto bytes = ReadFile(blob_path);
  ASSERT_TRUE(bytes.has_value());
  std::string forged = *bytes;
  forged[forged.size() / 2] ^= 1;
  ASSERT_TRUE(WriteFileAtomic(blob_path, forged).has_value());

  const std::string mp = NewDir("tampered-mnt");
  const std::string cache = NewDir("tampered-cache");
  MountOk(image, mp, cache, "prefetch=priority");
  const std::string refused = "access trace " + published->digest.str() + " refused: ";
  ASSERT_TRUE(harness::WaitUntil(
      [&] {
        auto log = ReadFile(cache + "/hoistfs.log");
        return log && log->find(refused) != std::string::npos;
      },
      harness::kGenerousDeadline, std::chrono::milliseconds(50)))
      << ReadFile(cache + "/hoistfs.log").value_or("(no log)");
  auto content = ReadAllFile(mp + "/" + LazyName(5));
  ASSERT_TRUE(content.has_value()) << content.error().message();
  EXPECT_EQ(content->size(), LazySize(5));
  ASSERT_TRUE(Unmount(mp).has_value());
  auto log = ReadFile(cache + "/hoistfs.log");
  ASSERT_TRUE(log.has_value());
  // One line about this artifact: the refusal.
  const std::string about = "access trace " + published->digest.str();
  size_t lines = 0;
  for (size_t at = log->find(about); at != std::string::npos; at = log->find(about, at + 1)) {
    ++lines;
    const size_t eol = log->find('\n', at);
    EXPECT_NE(log->substr(at, eol - at).find(" refused: "), std::string::npos)
        << log->substr(at, eol - at);
    EXPECT_NE(log->substr(at, eol - at).find("digest mismatch"), std::string::npos)
        << log->substr(at, eol - at);
  }
  EXPECT_EQ(lines, 1u) << *log;
}

TEST_F(MountTest, AfterFullPrefetchEveryFileReadsWithTheRegistryStopped) {
  const std::string mp = NewDir("pre-mnt");
  MountOk(Ref("lazy/img"), mp, NewDir("pre-cache"), "prefetch=all");
  ASSERT_TRUE(WaitState(
      mp, [](const MountStateFile& s) { return s.stats.prefetch_state == "done"; },
      std::chrono::seconds(90)))
      << "prefetch did not finish";
  registry_->Stop();
  int bad = 0;
  for (int i = 0; i < kLazyFiles; ++i) {
    auto c = ReadAllFile(mp + "/" + LazyName(i));
    if (!c || *c != harness::PatternBytes(LazySeed(i), 0, LazySize(i))) ++bad;
  }
  auto small = ReadAllFile(mp + "/small.txt");
  ASSERT_TRUE(registry_->Start().has_value());
  EXPECT_EQ(bad, 0);
  ASSERT_TRUE(small.has_value()) << small.error().message();
  EXPECT_EQ(*small, "the small file\n");
  ASSERT_TRUE(Unmount(mp).has_value());
}

TEST_F(MountTest, UncachedReadFailsWithinTheBoundAndWorksAfterRegistryRestart) {
  const std::string mp = NewDir("down-mnt");
  MountOk(Ref("lazy/img"), mp, NewDir("down-cache"), "prefetch=none,timeout=2");
  const std::string file = mp + "/" + LazyName(500);
  registry_->Stop();
  const auto start = SteadyClock::now();
  auto failed = ReadAllFile(file);
  const auto elapsed = SteadyClock::now() - start;
  ASSERT_TRUE(registry_->Start().has_value());
  ASSERT_FALSE(failed.has_value()) << "read succeeded with the registry down";
  EXPECT_EQ(failed.error().code(), EIO) << failed.error().message();
  EXPECT_LE(elapsed, std::chrono::seconds(3))
      << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms";
  auto ok = ReadAllFile(file);
  ASSERT_TRUE(ok.has_value()) << ok.error().message();
  EXPECT_TRUE(*ok == harness::PatternBytes(LazySeed(500), 0, LazySize(500)));
  ASSERT_TRUE(Unmount(mp).has_value());
}

TEST_F(MountTest, ChunkCorruptedInRegistryStorageIsNeverServed) {
  std::vector<LayerSpec> layers = {{
      FileSpec::BigFile("c0", 1 << 20, 11),
      FileSpec::BigFile("c1", 1 << 20, 12),
      FileSpec::BigFile("c2", 1 << 20, 13),
  }};
  auto image = harness::BuildOciImage(*work_ + "/corrupt-layout", layers);
  ASSERT_TRUE(image.has_value()) << image.error().message();
  ASSERT_TRUE(harness::PushOciLayout(image->OciRef(), DockerRef("corrupt/gz")).has_value());
  ASSERT_TRUE(HoistConvert(DockerRef("corrupt/gz"), DockerRef("corrupt/img")).has_value());
  auto ref = Reference::Parse(Ref("corrupt/img"));
  ASSERT_TRUE(ref.has_value());
  auto resolved = client_->Resolve(*ref);
  ASSERT_TRUE(resolved.has_value()) << resolved.error().message();
  const Descriptor layer = resolved->manifest.layers.at(0);
  auto source = client_->OpenBlobSource(*ref);
  auto index = IndexLayer(*source, layer, {}, nullptr);
  ASSERT_TRUE(index.has_value()) << index.error().message();
  const Entry* c1 = nullptr;
  for (const Entry& e : index->entries)
    if (e.path == "c1") c1 = &e;
  ASSERT_NE(c1, nullptr);
  ASSERT_FALSE(c1->chunks.empty());
  const Chunk& chunk = c1->chunks.back();
  // Flip bytes in the middle of the chunk's compressed bytes, in the registry's storage.
  const std::string blob_path = registry_->BlobPath(layer.digest.str());
  int fd = ::open(blob_path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << blob_path;
  const off_t at = static_cast<off_t>(chunk.blob_offset + chunk.blob_length / 2);
  char bytes[16];
  ASSERT_EQ(::pread(fd, bytes, sizeof(bytes), at), 16);
  for (char& b : bytes) b = static_cast<char>(~b);
  ASSERT_EQ(::pwrite(fd, bytes, sizeof(bytes), at), 16);
  ::close(fd);

  const std::string mp = NewDir("corrupt-mnt");
  MountOk(Ref("corrupt/img"), mp, NewDir("corrupt-cache"), "prefetch=none,timeout=5");
  auto bad = ReadAllFile(mp + "/c1");
  ASSERT_FALSE(bad.has_value()) << "corrupt chunk was served";
  EXPECT_EQ(bad.error().code(), EIO) << bad.error().message();
  // Reading just the corrupted range too: EIO, not wrong bytes.
  int f = ::open((mp + "/c1").c_str(), O_RDONLY);
  ASSERT_GE(f, 0);
  char buf[4096];
  const off_t in_file = static_cast<off_t>(chunk.file_offset);
  EXPECT_EQ(::pread(f, buf, sizeof(buf), in_file), -1);
  EXPECT_EQ(errno, EIO);
  ::close(f);
  auto good = ReadAllFile(mp + "/c0");
  ASSERT_TRUE(good.has_value()) << good.error().message();
  EXPECT_TRUE(*good == harness::PatternBytes(11, 0, 1 << 20));
  ASSERT_TRUE(WaitState(mp, [](const MountStateFile& s) { return s.stats.digest_mismatches > 0; }));
  ASSERT_TRUE(Unmount(mp).has_value());
}

TEST_F(MountTest, ThirtyTwoThreadsReadRandomRangesOfAThousandFiles) {
  const std::string mp = NewDir("conc-mnt");
  MountOk(Ref("lazy/img"), mp, NewDir("conc-cache"), "prefetch=none");
  std::atomic<int> mismatches{0}, errors{0}, reads{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 32; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<uint64_t>(t) * 7919u + 1);
      std::string buf;
      for (int k = 0; k < 120; ++k) {
        const int i = static_cast<int>(rng() % kLazyFiles);
        const uint64_t size = LazySize(i);
        const uint64_t off = rng() % size;
        const uint64_t len = 1 + rng() % std::min<uint64_t>(size - off, 40000);
        int fd = ::open((mp + "/" + LazyName(i)).c_str(), O_RDONLY);
        if (fd < 0) {
          ++errors;
          continue;
        }
        buf.resize(len);
        ssize_t n = ::pread(fd, buf.data(), len, static_cast<off_t>(off));
        ::close(fd);
        if (n != static_cast<ssize_t>(len)) {
          ++errors;
          continue;
        }
        if (Digest::Of(buf) != Digest::Of(harness::PatternBytes(LazySeed(i), off, len)))
          ++mismatches;
        ++reads;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(reads.load(), 32 * 120);
  ASSERT_TRUE(Unmount(mp).has_value());
}

TEST_F(MountTest, RemountUsesTheStoredLayerIndex) {
  const std::string cache = NewDir("remount-cache");
  const std::string mp = NewDir("remount-mnt");
  MountOk(Ref("lazy/img"), mp, cache, "prefetch=none");
  ASSERT_TRUE(Unmount(mp).has_value());
  const uint64_t mark = registry_->LogMark();
  MountOk(Ref("lazy/img"), mp, cache, "prefetch=none");
  auto requests = registry_->Requests(mark);
  ASSERT_TRUE(requests.has_value()) << requests.error().message();
  for (const auto& r : *requests) {
    EXPECT_FALSE(r.IsBlobGet() && r.uri.find(lazy_layer_->digest.str()) != std::string::npos)
        << "blob fetched on remount: " << r.uri << " offset " << r.read_offset.value_or(0);
  }
  auto c = ReadAllFile(mp + "/" + LazyName(3));
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_TRUE(*c == harness::PatternBytes(LazySeed(3), 0, LazySize(3)));
  ASSERT_TRUE(Unmount(mp).has_value());
}

TEST_F(MountTest, WritesFailWithErofs) {
  const std::string mp = NewDir("ro-mnt");
  MountOk(Ref("lazy/img"), mp, NewDir("ro-cache"), "prefetch=none");
  const std::string f = mp + "/small.txt";
  auto expect_erofs = [](int rc, const char* what) {
    EXPECT_EQ(rc, -1) << what;
    EXPECT_EQ(errno, EROFS) << what;
  };
  expect_erofs(::open(f.c_str(), O_WRONLY), "open O_WRONLY");
  expect_erofs(::open(f.c_str(), O_RDWR), "open O_RDWR");
  expect_erofs(::open(f.c_str(), O_RDONLY | O_TRUNC), "open O_TRUNC");
  expect_erofs(::open((mp + "/new").c_str(), O_CREAT | O_WRONLY, 0644), "create");
  expect_erofs(::mkdir((mp + "/d").c_str(), 0755), "mkdir");
  expect_erofs(::unlink(f.c_str()), "unlink");
  expect_erofs(::rmdir((mp + "/files").c_str()), "rmdir");
  expect_erofs(::rename(f.c_str(), (mp + "/moved").c_str()), "rename");
  expect_erofs(::symlink("x", (mp + "/sym").c_str()), "symlink");
  expect_erofs(::link(f.c_str(), (mp + "/hard").c_str()), "link");
  expect_erofs(::chmod(f.c_str(), 0600), "chmod");
  expect_erofs(::truncate(f.c_str(), 0), "truncate");
  expect_erofs(::mkfifo((mp + "/fifo").c_str(), 0600), "mknod");
  expect_erofs(::setxattr(f.c_str(), "user.x", "1", 1, 0), "setxattr");
  expect_erofs(::removexattr(f.c_str(), "user.x"), "removexattr");
  struct statvfs vfs {};
  ASSERT_EQ(::statvfs(mp.c_str(), &vfs), 0);
  EXPECT_TRUE(vfs.f_flag & ST_RDONLY);
  EXPECT_TRUE(vfs.f_flag & ST_NODEV);
  EXPECT_TRUE(vfs.f_flag & ST_NOSUID);
  ASSERT_TRUE(Unmount(mp).has_value());
}

TEST_F(MountTest, BadInputFailsBeforeMountingWithOneLine) {
  const std::string cache = NewDir("bad-cache");
  auto expect_fail = [&](const std::string& image, const std::string& mp,
                         const std::string& needle) {
    SCOPED_TRACE(image + " " + mp);
    const bool was_mounted = IsMounted(mp);
    CommandResult r = Hoistfs(image, mp, cache, "prefetch=none");
    EXPECT_EQ(r.exit_code, 1) << r.Describe();
    EXPECT_NE(r.stderr_text.find(needle), std::string::npos) << r.stderr_text;
    EXPECT_EQ(std::count(r.stderr_text.begin(), r.stderr_text.end(), '\n'), 1) << r.stderr_text;
    EXPECT_TRUE(r.stderr_text.starts_with("hoistfs: ")) << r.stderr_text;
    EXPECT_EQ(IsMounted(mp), was_mounted);
  };
  const std::string mp = NewDir("bad-mnt");
  expect_fail(Ref("no/such", "v1"), mp, "manifest");
  expect_fail(Ref("lazy/img"), *work_ + "/does-not-exist", "does not exist");
  const std::string file = *work_ + "/plain-file";
  ASSERT_TRUE(WriteFileAtomic(file, "x").has_value());
  expect_fail(Ref("lazy/img"), file, "not a directory");

  // A TOC whose digest does not match the manifest annotation, and a malformed TOC whose
  // annotation digest does match what it points at.
  auto ref = Reference::Parse(Ref("lazy/img"));
  auto manifest = client_->GetManifest(*ref);
  ASSERT_TRUE(manifest.has_value()) << manifest.error().message();
  auto annotations = ParseZstdChunkedAnnotations(lazy_layer_->annotations);
  ASSERT_TRUE(annotations.has_value());
  const std::string old_digest = annotations->toc_digest.str();
  std::string bad_digest = manifest->bytes;
  const size_t at = bad_digest.find(old_digest);
  ASSERT_NE(at, std::string::npos);
  bad_digest.replace(at, old_digest.size(), Digest::Of("not the toc").str());
  auto put = client_->PutManifest(*Reference::Parse(Ref("lazy/img", "badtoc")),
                                  manifest->media_type, bad_digest);
  ASSERT_TRUE(put.has_value()) << put.error().message();
  expect_fail(Ref("lazy/img", "badtoc"), mp, "digest");

  auto source = client_->OpenBlobSource(*ref);
  auto head = source->ReadAt(lazy_layer_->digest, 0, 100);
  ASSERT_TRUE(head.has_value());
  std::string malformed = manifest->bytes;
  malformed.replace(malformed.find(old_digest), old_digest.size(), Digest::Of(*head).str());
  const std::string pos_key = "zstd-chunked.manifest-position\":\"";
  const size_t p = malformed.find(pos_key);
  ASSERT_NE(p, std::string::npos);
  const size_t vstart = p + pos_key.size();
  const size_t vend = malformed.find('"', vstart);
  malformed.replace(vstart, vend - vstart, "0:100:5000:1");
  put = client_->PutManifest(*Reference::Parse(Ref("lazy/img", "malformed")), manifest->media_type,
                             malformed);
  ASSERT_TRUE(put.has_value()) << put.error().message();
  expect_fail(Ref("lazy/img", "malformed"), mp, "layer 1");

  // Busy: a second mount on a mounted directory.
  MountOk(Ref("lazy/img"), mp, cache, "prefetch=none");
  expect_fail(Ref("lazy/img"), mp, "busy");
  ASSERT_TRUE(Unmount(mp).has_value());
  EXPECT_FALSE(IsMounted(mp));
}

// mount(8) -> mount.fuse3 -> `hoistfs SOURCE MP -o rw,...,dev,suid`, and `hoist umount`; the
// mount is ro, nodev and nosuid whatever mount.fuse3 adds. `mount -t fuse.hoistfs` finds hoistfs
// in mount.fuse3's PATH (/usr/local/bin, /usr/bin after `cmake --install`); this test uses the
// equivalent `-t fuse PROGRAM#SOURCE` form to name the binary under test.
TEST_F(MountTest, MountCommandAndHoistUmount) {
  const std::string mp = NewDir("mount8-mnt");
  const std::string cache = NewDir("mount8-cache");
  mounts_.Track(mp);
  CommandOptions options;
  options.timeout = std::chrono::seconds(60);
  auto r = harness::RunCommand(
      {"mount", "-t", "fuse", std::string(HOISTFS_BINARY) + "#" + Ref("lazy/img"), mp, "-o",
       "prefetch=none,cache=" + cache},
      options);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  ASSERT_TRUE(r->ok()) << r->Describe() << ": " << r->stderr_text;
  std::string line;
  {
    std::ifstream in("/proc/self/mountinfo");
    std::string l;
    while (std::getline(in, l))
      if (l.find(" " + mp + " ") != std::string::npos) line = l;
  }
  ASSERT_FALSE(line.empty());
  EXPECT_NE(line.find(" fuse.hoistfs hoist:" + Ref("lazy/img")), std::string::npos) << line;
  const std::string mount_opts = line.substr(line.find(mp) + mp.size() + 1);
  EXPECT_TRUE(mount_opts.starts_with("ro,nosuid,nodev")) << line;
  auto c = ReadAllFile(mp + "/small.txt");
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_EQ(*c, "the small file\n");
  CommandResult u = RunCmd({HOIST_BINARY, "umount", mp});
  EXPECT_TRUE(u.ok()) << u.Describe() << ": " << u.stderr_text;
  EXPECT_FALSE(IsMounted(mp));

  // hoist mount wraps hoistfs the same way.
  CommandResult m =
      RunCmd({HOIST_BINARY, "mount", "--prefetch", "none", "--cache", cache, Ref("lazy/img"), mp});
  ASSERT_TRUE(m.ok()) << m.Describe() << ": " << m.stderr_text;
  EXPECT_TRUE(IsMounted(mp));
  EXPECT_TRUE(ReadAllFile(mp + "/small.txt").has_value());
  u = RunCmd({HOIST_BINARY, "umount", mp});
  EXPECT_TRUE(u.ok()) << u.Describe() << ": " << u.stderr_text;
  EXPECT_FALSE(IsMounted(mp));
}

TEST_F(MountTest, SigtermUnmountsCleanlyAndWritesTheStateFile) {
  const std::string mp = NewDir("term-mnt");
  MountOk(Ref("lazy/img"), mp, NewDir("term-cache"), "prefetch=all,bandwidth=1m");
  ASSERT_TRUE(ReadAllFile(mp + "/small.txt").has_value());
  ASSERT_TRUE(WaitState(mp, [](const MountStateFile& s) { return s.pid > 0; }));
  auto state = ReadState(mp);
  ASSERT_TRUE(state.has_value());
  ASSERT_EQ(::kill(static_cast<pid_t>(state->pid), SIGTERM), 0);
  const auto start = SteadyClock::now();
  EXPECT_TRUE(harness::WaitUntil([&] { return !ProcessAlive(state->pid); },
                                 harness::kGenerousDeadline, std::chrono::milliseconds(10)));
  // The prefetcher (rate-limited, far from done) stopped promptly.
  EXPECT_LT(SteadyClock::now() - start, std::chrono::seconds(3));
  EXPECT_FALSE(IsMounted(mp));
  auto final_state = ReadState(mp);
  ASSERT_TRUE(final_state.has_value());
  EXPECT_GE(final_state->updated_unix, state->updated_unix);
  EXPECT_EQ(final_state->stats.prefetch_state, "stopped");
}

}  // namespace
}  // namespace hoist
