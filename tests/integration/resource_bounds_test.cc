// What one mount may take from its host, checked on the real hoistfs binary against the real
// registry (FUSE, root):
//
//   TocStringBombs  8 zstd:chunked layers, and then 8 eStargz layers, each with a TOC holding
//                   one entry whose name is 200 MB (a few hundred KB compressed), in one image:
//                   the mount fails with the one-line "name longer than 4096 bytes" and the
//                   process's peak RSS stays under kTocBombRssBoundKib. Before the string caps
//                   the reader's string buffer grew to the whole name in each of the 8 parallel
//                   layer threads (and eStargz also held its tar and a copy of the text): about
//                   2 GB for zstd:chunked and more for eStargz.
//   StreamSpace     an unconverted gzip layer whose 16 MiB decompressed stream is over a 4 MiB
//                   cache_size: it mounts, the file reads back exactly (decoded from the kept
//                   compressed blob), and the daemon's unlinked stream files use at most 4 MiB.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "fetcher/manifest.h"
#include "fetcher/registry.h"
#include "fusefs/stats_file.h"
#include "index/zstd_chunked.h"
#include "tests/harness/hoistfs_mounts.h"
#include "tests/harness/mountinfo.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/harness/wait.h"
#include "tests/index/toc_bomb_util.h"

#ifndef HOISTFS_BINARY
#error "HOISTFS_BINARY must name the hoistfs executable"
#endif

namespace hoist {
namespace {

using harness::CommandResult;
using harness::FileSpec;

// Peak RSS allowed while refusing 8 string-bomb layers. What the fixed reader holds per layer:
// the compressed TOC (under 1 MB here), four 256 KiB decoded pieces, the string buffer (256 KiB
// ceiling + a piece, grown by half: < 1 MiB), eStargz's 256 KiB text piece, zstd's 2 MiB window
// (level 3) or zlib's state: a few MiB, about 8 MiB with ASan's redzones and caches. Measured
// on the ASan build: 83 MiB (zstd:chunked) and 115 MiB (eStargz) for the whole hoistfs process.
// 256 MiB leaves twice that for sanitizer variance and fails the old behaviour, whose string
// buffers alone grew to 8 x 200+ MB (3083 and 6162 MiB measured on this test).
constexpr long kTocBombRssBoundKib = 256 * 1024;
constexpr size_t kBombNameBytes = 200u << 20;
constexpr int kBombLayers = 8;

std::string MakeTempDir(const std::string& name) {
  std::string templ = "/tmp/hoist-bounds-" + name + "-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return "";
  return templ;
}

class ResourceBoundsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setup_error_ = new std::string();
    auto fail = [](const std::string& e) { *setup_error_ = e; };
    if (::geteuid() != 0) return fail("these tests must run as root");
    if (::access("/dev/fuse", R_OK | W_OK) != 0)
      return fail("/dev/fuse is missing or not accessible: FUSE mounts cannot be tested");
    if (auto s = harness::RequirePrograms({"skopeo", "fusermount3", "docker-registry", "time"}); !s)
      return fail(s.error().message());
    work_ = new std::string(MakeTempDir("work"));
    auto reg = harness::TestRegistry::Launch({.debug_log = false});
    if (!reg) return fail(reg.error().message());
    registry_ = reg->release();
    auto client = RegistryClient::CreateDefault();
    if (!client) return fail(client.error().message());
    client_ = client->release();
  }
  static void TearDownTestSuite() {
    delete client_;
    delete registry_;
    if (work_ != nullptr) (void)RemoveTree(*work_);
    delete work_;
  }
  void SetUp() override { ASSERT_TRUE(setup_error_->empty()) << *setup_error_; }
  void TearDown() override { mounts_.UnmountAll(); }

  std::string NewDir(const std::string& name) {
    std::string d = *work_ + "/" + name;
    EXPECT_TRUE(MakeDirs(d).has_value());
    return d;
  }

  // Pushes an image of `layers` (blob, descriptor without digest/size) to repo:v1.
  static Status PushImage(const std::string& repo,
                          std::vector<std::pair<std::string, Descriptor>> layers) {
    auto ref = Reference::Parse(registry_->ImageRef(repo, "v1"));
    if (!ref) return Fail(ref.error());
    std::string diff_ids;
    std::string layer_json;
    for (auto& [blob, d] : layers) {
      d.digest = Digest::Of(blob);
      d.size = static_cast<int64_t>(blob.size());
      HOIST_RETURN_IF_ERROR(client_->UploadBlob(*ref, d.digest, blob));
      diff_ids += (diff_ids.empty() ? "\"" : ",\"") + d.digest.str() + "\"";
      std::string ann;
      for (const auto& [k, v] : d.annotations)
        ann += (ann.empty() ? "\"" : ",\"") + k + "\":\"" + v + "\"";
      layer_json += (layer_json.empty() ? "" : ",") + std::string(R"({"mediaType":")") +
                    d.media_type + R"(","digest":")" + d.digest.str() + R"(","size":)" +
                    std::to_string(d.size) + R"(,"annotations":{)" + ann + "}}";
    }
    const std::string config =
        R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[)" +
        diff_ids + "]}}";
    const Digest config_digest = Digest::Of(config);
    HOIST_RETURN_IF_ERROR(client_->UploadBlob(*ref, config_digest, config));
    const std::string manifest =
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
        R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
        config_digest.str() + R"(","size":)" + std::to_string(config.size()) + R"(},"layers":[)" +
        layer_json + "]}";
    auto put = client_->PutManifest(*ref, kMediaTypeOciManifest, manifest);
    if (!put) return Fail(put.error());
    return Ok();
  }

  // hoistfs -f (so the process measured is the one that indexes; log_level=error keeps a
  // warning, e.g. a retried request, off its stderr), expected to fail, under
  // GNU time for its peak RSS: wait4 on a child of this test would also count this process's
  // own resident pages (Linux carries the pre-exec image's high-water mark across exec), and
  // this process has just built 200 MB strings. `rss_kib` gets hoistfs's ru_maxrss.
  CommandResult HoistfsForeground(const std::string& image, const std::string& mp,
                                  const std::string& cache, long* rss_kib) {
    const std::string rss_file = cache + "/max-rss";
    CommandResult r = mounts_.Mount(
        image, mp, cache, {"-f", "-o", "prefetch=none,log_level=error"},
        {.wrapper = {"time", "-f", "%M", "-o", rss_file}, .timeout = std::chrono::seconds(300)});
    *rss_kib = 0;
    if (auto text = ReadFile(rss_file)) {
      // The last line (GNU time writes "Command exited with non-zero status 1" first).
      std::string t = *text;
      while (!t.empty() && t.back() == '\n') t.pop_back();
      *rss_kib =
          std::atol(t.substr(t.rfind('\n') == std::string::npos ? 0 : t.rfind('\n') + 1).c_str());
    }
    return r;
  }

  void ExpectBombRefused(const std::string& repo) {
    const std::string mp = NewDir(repo + "-mnt");
    long rss_kib = 0;
    CommandResult r =
        HoistfsForeground(registry_->ImageRef(repo, "v1"), mp, NewDir(repo + "-c"), &rss_kib);
    EXPECT_EQ(r.exit_code, 1) << r.Describe() << ": " << r.stderr_text;
    EXPECT_NE(r.stderr_text.find("TOC entry 0: name longer than 4096 bytes"), std::string::npos)
        << r.stderr_text;
    EXPECT_EQ(std::count(r.stderr_text.begin(), r.stderr_text.end(), '\n'), 1) << r.stderr_text;
    EXPECT_GT(rss_kib, 0);
    EXPECT_LT(rss_kib, kTocBombRssBoundKib)
        << "peak RSS " << rss_kib / 1024 << " MiB while refusing " << kBombLayers
        << " TOC string bombs";
    std::printf("%s: peak RSS %ld MiB\n", repo.c_str(), rss_kib / 1024);
    EXPECT_FALSE(harness::IsMounted(mp));
  }

  static std::string* setup_error_;
  static std::string* work_;
  static harness::TestRegistry* registry_;
  static RegistryClient* client_;
  harness::HoistfsMounts mounts_{HOISTFS_BINARY};
};

std::string* ResourceBoundsTest::setup_error_ = nullptr;
std::string* ResourceBoundsTest::work_ = nullptr;
harness::TestRegistry* ResourceBoundsTest::registry_ = nullptr;
RegistryClient* ResourceBoundsTest::client_ = nullptr;

TEST_F(ResourceBoundsTest, ZstdChunkedTocStringBombsAreRefusedWithinAnRssBound) {
  std::vector<std::pair<std::string, Descriptor>> layers;
  for (int i = 0; i < kBombLayers; ++i) {
    std::string position, toc;
    std::string blob = testing::ZstdChunkedBlob(
        testing::BombTocJson(kBombNameBytes, static_cast<char>('a' + i)), &position, &toc);
    Descriptor d;
    d.media_type = std::string(kMediaTypeOciLayerZstd);
    d.annotations["io.github.containers.zstd-chunked.manifest-checksum"] = Digest::Of(toc).str();
    d.annotations["io.github.containers.zstd-chunked.manifest-position"] = position;
    layers.emplace_back(std::move(blob), std::move(d));
  }
  ASSERT_TRUE(PushImage("bomb/zstd", std::move(layers)).has_value());
  ExpectBombRefused("bomb/zstd");
}

TEST_F(ResourceBoundsTest, EstargzTocStringBombsAreRefusedWithinAnRssBound) {
  std::vector<std::pair<std::string, Descriptor>> layers;
  for (int i = 0; i < kBombLayers; ++i) {
    const std::string json = testing::BombTocJson(kBombNameBytes, static_cast<char>('a' + i));
    Descriptor d;
    d.media_type = std::string(kMediaTypeOciLayerGzip);
    d.annotations[kAnnotationStargzTocDigest] = Digest::Of(json).str();
    layers.emplace_back(testing::EstargzBlob(json), std::move(d));
  }
  ASSERT_TRUE(PushImage("bomb/estargz", std::move(layers)).has_value());
  ExpectBombRefused("bomb/estargz");
}

// The (deleted) files a process holds open in `dir`: their sizes.
std::vector<uint64_t> DeletedFileSizes(int64_t pid, const std::string& dir) {
  std::vector<uint64_t> sizes;
  const std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(fd_dir.c_str());
  if (d == nullptr) return sizes;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const std::string link = fd_dir + "/" + e->d_name;
    char target[4096];
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    const std::string t(target, static_cast<size_t>(n));
    if (!t.starts_with(dir + "/") || !t.ends_with(" (deleted)")) continue;
    struct stat st {};
    if (::stat(link.c_str(), &st) == 0) sizes.push_back(static_cast<uint64_t>(st.st_size));
  }
  ::closedir(d);
  return sizes;
}

// Byte i of the big file: a letter per 4 KiB block, the block's number at its start.
std::string StreamFileContent(size_t size) {
  std::string s(size, '\0');
  for (size_t block = 0; block * 4096 < size; ++block) {
    const size_t at = block * 4096;
    const size_t n = std::min<size_t>(4096, size - at);
    std::fill_n(s.begin() + static_cast<std::ptrdiff_t>(at), n,
                'a' + static_cast<char>(block % 26));
    const std::string label = "block " + std::to_string(block) + "\n";
    s.replace(at, std::min(label.size(), n), label.substr(0, n));
  }
  return s;
}

// The files here are over ZranReader's max_file_bytes (64 MiB): a checkpoint index does not
// serve them, so they take the StreamLayer full fetch whose disk budget is under test.
TEST_F(ResourceBoundsTest, AnUnconvertedLayerOverTheQuotaReadsBackWithinItsStreamSpace) {
  constexpr size_t kBig = 65u << 20;
  constexpr uint64_t kQuota = 4u << 20;
  const std::string content = StreamFileContent(kBig);
  auto image = harness::BuildOciImage(
      *work_ + "/stream-layout",
      {harness::LayerSpec({FileSpec::File("big.bin", content), FileSpec::File("small.txt", "hi\n")},
                          harness::LayerCompression::kGzip)});
  ASSERT_TRUE(image.has_value()) << image.error().message();
  ASSERT_LT(image->layers[0].size, kQuota / 4) << "the layer must compress well";
  ASSERT_TRUE(
      harness::PushOciLayout(image->OciRef(), registry_->DockerRef("stream/gz", "v1")).has_value());

  const std::string mp = NewDir("stream-mnt");
  const std::string cache = NewDir("stream-cache");
  CommandResult r = mounts_.Mount(
      registry_->ImageRef("stream/gz", "v1"), mp, cache,
      {"-o", "cache_size=4m,prefetch=none,log_level=info,log_file=" + cache + "/hoistfs.log"});
  ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
  ASSERT_TRUE(harness::IsMounted(mp));

  auto got = ReadFile(mp + "/big.bin");
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(got->size(), content.size());
  EXPECT_TRUE(*got == content) << "big.bin differs";
  // A read behind the decoder starts it again from the blob's start.
  auto small = ReadFile(mp + "/small.txt");
  ASSERT_TRUE(small.has_value()) << small.error().message();
  EXPECT_EQ(*small, "hi\n");
  const int fd = ::open((mp + "/big.bin").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string part(5000, '\0');
  ASSERT_EQ(::pread(fd, part.data(), part.size(), 8 << 20), static_cast<ssize_t>(part.size()));
  EXPECT_EQ(part, content.substr(8 << 20, part.size()));
  ASSERT_EQ(::pread(fd, part.data(), part.size(), 4096 * 3 - 7), static_cast<ssize_t>(part.size()));
  EXPECT_EQ(part, content.substr(4096 * 3 - 7, part.size()));
  ::close(fd);

  // The daemon's stream files: only the kept compressed blob is left, within the quota.
  auto state = ReadMountStateFile(StateFileForCanonicalMountpoint(mp, DefaultStateDir()));
  ASSERT_TRUE(state.has_value()) << state.error().message();
  const std::vector<uint64_t> sizes = DeletedFileSizes(state->pid, cache + "/tmp");
  uint64_t total = 0;
  for (uint64_t s : sizes) total += s;
  EXPECT_EQ(sizes.size(), 1u);
  EXPECT_EQ(total, image->layers[0].size);
  EXPECT_LE(total, kQuota);
  auto log = ReadFile(cache + "/hoistfs.log");
  ASSERT_TRUE(log.has_value());
  EXPECT_NE(log->find("keeping its " + std::to_string(image->layers[0].size) + "-byte blob"),
            std::string::npos)
      << *log;
  Status unmounted = mounts_.Unmount(mp);
  EXPECT_TRUE(unmounted) << unmounted.error().message();
}

}  // namespace
}  // namespace hoist

namespace hoist {
namespace {

TEST_F(ResourceBoundsTest, ALayerWhoseBlobIsOverTheQuotaFailsItsReadsAndKeepsNothing) {
  // Incompressible: the blob is over the 4 MiB quota too; over 64 MiB, so not served by range.
  constexpr uint64_t kRandom = 65u << 20;
  auto image = harness::BuildOciImage(
      *work_ + "/nospace-layout", {harness::LayerSpec({FileSpec::BigFile("rand.bin", kRandom, 7)},
                                                      harness::LayerCompression::kGzip)});
  ASSERT_TRUE(image.has_value()) << image.error().message();
  ASSERT_GT(image->layers[0].size, 4u << 20);
  ASSERT_TRUE(harness::PushOciLayout(image->OciRef(), registry_->DockerRef("stream/nospace", "v1"))
                  .has_value());
  const std::string mp = NewDir("nospace-mnt");
  const std::string cache = NewDir("nospace-cache");
  CommandResult r = mounts_.Mount(
      registry_->ImageRef("stream/nospace", "v1"), mp, cache,
      {"-o", "cache_size=4m,prefetch=none,log_level=info,log_file=" + cache + "/hoistfs.log"});
  ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
  ASSERT_TRUE(harness::IsMounted(mp));
  struct stat st {};
  ASSERT_EQ(::stat((mp + "/rand.bin").c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kRandom);
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto got = ReadFile(mp + "/rand.bin");
    ASSERT_FALSE(got.has_value()) << "attempt " << attempt;
    EXPECT_EQ(got.error().code(), EIO) << got.error().message();
  }
  auto state = ReadMountStateFile(StateFileForCanonicalMountpoint(mp, DefaultStateDir()));
  ASSERT_TRUE(state.has_value()) << state.error().message();
  // The fetch thread gives up the file as it ends, just after the reads are failed: wait for it.
  EXPECT_TRUE(
      harness::WaitUntil([&] { return DeletedFileSizes(state->pid, cache + "/tmp").empty(); }));
  auto log = ReadFile(cache + "/hoistfs.log");
  ASSERT_TRUE(log.has_value());
  EXPECT_NE(log->find("neither its decompressed stream nor its " +
                      std::to_string(image->layers[0].size) + "-byte blob fits in the 4194304"),
            std::string::npos)
      << *log;
  Status unmounted = mounts_.Unmount(mp);
  EXPECT_TRUE(unmounted) << unmounted.error().message();
}

}  // namespace
}  // namespace hoist
