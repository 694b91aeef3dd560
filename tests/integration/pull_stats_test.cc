// What `hoist pull` moves and what `hoist stats` says about unconverted layers (issues 17 and
// 19), against a REAL registry (TestRegistry, whose log tells every byte it sent, per blob), the
// real hoist binary and REAL FUSE mounts by the real hoistfs. Runs as root.
//
// The image: three unconverted layers of incompressible data, each blob several of the loader's
// 4 MiB pieces: two tar+gzip, one plain tar.
//
//   PullFetchesEveryBlobOnce      hoist pull moves each layer blob and the config exactly once
//                                 (one GET each, bytes == blob size), nothing else but
//                                 manifests; the plain tar layer's blob is not kept (its chunks
//                                 are); a second pull moves no blob byte at all.
//   FirstMountStatsMatchRegistry  a cold mount (no index cached) of the image: after reading
//                                 every file, `hoist stats` says per layer exactly the bytes the
//                                 registry sent for that blob (a gzip layer: its size, once) and
//                                 100% local, and the text output says the same.
//   PulledImageReadsAreNotFetches the pulled image mounted with the registry stopped: after
//                                 reading every file, 0 bytes fetched, 0 requests, the gzip
//                                 blobs read from the local store (store bytes == their sizes),
//                                 100% local per layer.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "fusefs/local_image.h"
#include "fusefs/stats_file.h"
#include "tests/harness/hoist_cli.h"
#include "tests/harness/hoistfs_mounts.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/registry_image_suite.h"
#include "tests/harness/registry_requests.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/harness/wait.h"

#ifndef HOISTFS_BINARY
#error "HOISTFS_BINARY must name the hoistfs executable"
#endif

namespace hoist {
namespace {

using harness::CommandResult;
using harness::FileSpec;
using harness::LayerCompression;
using harness::LayerSpec;
using harness::RegistryRequest;
using harness::RunHoist;

struct FileCheck {
  std::string path;
  uint32_t seed = 0;  // BigFile seed; 0: `content`
  uint64_t size = 0;
  std::string content;
};

size_t CountOf(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// The files of the image and what each must read as.
const std::vector<FileCheck>& Files() {
  static const auto* files = new std::vector<FileCheck>{
      {"a/big", 31, 9u << 20, ""}, {"a/small", 0, 2, "a\n"}, {"b/big", 32, 5u << 20, ""},
      {"c/big", 33, 6u << 20, ""}, {"c/small", 0, 2, "c\n"},
  };
  return *files;
}

class PullStatsTest : public harness::RegistryImageSuite<PullStatsTest> {
 protected:
  static void SetUpTestSuite() {
    (void)SetUpSuite({
        .root_message = "the pull/stats tests must run as root",
        .programs = {"skopeo", "fusermount3", "docker-registry", "tar"},
        .work_template = "/tmp/hoist-pull-stats-XXXXXX",
        .layers =
            {
                LayerSpec{FileSpec::BigFile("a/big", 9 << 20, 31),
                          FileSpec::File("a/small", "a\n")},
                LayerSpec{FileSpec::BigFile("b/big", 5 << 20, 32)},
                LayerSpec(
                    {FileSpec::BigFile("c/big", 6 << 20, 33), FileSpec::File("c/small", "c\n")},
                    LayerCompression::kNone),
            },
        .repo = "once/gz",
    });
  }

  void SetUp() override {
    ASSERT_TRUE(setup_error_->empty()) << *setup_error_;
    ASSERT_EQ(image_->layers.size(), 3u);
    ASSERT_NE(image_->layers[0].media_type.find("gzip"), std::string::npos);
    ASSERT_NE(image_->layers[1].media_type.find("gzip"), std::string::npos);
    ASSERT_EQ(image_->layers[2].media_type.find("gzip"), std::string::npos);
    for (const harness::BuiltLayer& l : image_->layers) ASSERT_GT(l.size, 4u << 20);
    cache_ = NewDir("cache");
  }
  void TearDown() override {
    mounts_.UnmountAll();
    if (!registry_->running()) (void)registry_->Start();
  }

  // The requests the registry completed since `mark`, up to a request of our own sent after
  // whatever the test did (waited for in the log, so every earlier request is there too).
  std::vector<RegistryRequest> RequestsSince(uint64_t mark) {
    auto settled =
        harness::RequestsUpToSentinel(*registry_, mark, "sentinel-" + std::to_string(counter_++));
    EXPECT_TRUE(settled.has_value()) << settled.error().message();
    return settled ? std::move(*settled) : std::vector<RegistryRequest>{};
  }

  // Blob GETs of `digest`: how many and their bytes in all.
  static std::pair<int, uint64_t> BlobGets(const std::vector<RegistryRequest>& requests,
                                           const Digest& digest) {
    const harness::BlobGets g = harness::SumBlobGets(requests, digest.str());
    return {g.count, g.bytes};
  }

  static std::string Describe(const std::vector<RegistryRequest>& requests) {
    return harness::DescribeRequests(requests);
  }

  // Reads every file of the image through the mount and checks its bytes.
  void ReadEveryFile(const std::string& mp) {
    for (const FileCheck& f : Files()) {
      SCOPED_TRACE(f.path);
      auto got = ReadFile(mp + "/" + f.path);
      ASSERT_TRUE(got.has_value()) << got.error().message();
      ASSERT_EQ(got->size(), f.size);
      const std::string want = f.seed == 0 ? f.content : harness::PatternBytes(f.seed, 0, f.size);
      EXPECT_TRUE(*got == want);
    }
  }

  // The mount's state through `hoist stats --json`, once `pred` holds for it.
  MountStateFile StatsWhen(const std::string& mp,
                           const std::function<bool(const MountStateFile&)>& pred) {
    MountStateFile last;
    const bool held = harness::WaitUntil(
        [&] {
          CommandResult r = RunHoist({"stats", "--json", mp});
          if (!r.ok()) return false;
          auto state = MountStateFromJson(r.stdout_text);
          if (!state) return false;
          last = std::move(*state);
          return pred(last);
        },
        harness::kGenerousDeadline, std::chrono::milliseconds(100));
    EXPECT_TRUE(held) << "last state: " << MountStatsToJson(last.stats);
    return last;
  }

  // Every layer listed, the scan done and every layer local in full.
  static bool AllLocal(const MountStateFile& s) {
    if (s.stats.layers.size() != 3 || s.stats.prefetch_state == "scanning") return false;
    for (const LayerStatsSnapshot& l : s.stats.layers) {
      if (l.image_bytes == 0 || l.local_bytes != l.image_bytes) return false;
    }
    return true;
  }

  std::string cache_;
  harness::HoistfsMounts mounts_{HOISTFS_BINARY};
};

TEST_F(PullStatsTest, PullFetchesEveryBlobOnceAndARerunFetchesNone) {
  const uint64_t mark = registry_->LogMark();
  CommandResult p = RunHoist({"pull", "-q", "--cache=" + cache_, Ref()});
  ASSERT_TRUE(p.ok()) << p.stderr_text;
  std::vector<RegistryRequest> first = RequestsSince(mark);
  uint64_t blob_bytes = 0, want_blob_bytes = 0;
  for (const harness::BuiltLayer& l : image_->layers) {
    SCOPED_TRACE(l.digest.str());
    EXPECT_EQ(BlobGets(first, l.digest), (std::pair<int, uint64_t>{1, l.size})) << Describe(first);
    want_blob_bytes += l.size;
  }
  EXPECT_EQ(BlobGets(first, image_->config_digest),
            (std::pair<int, uint64_t>{1, image_->config.size()}));
  want_blob_bytes += image_->config.size();
  // Nothing else: every other request is a manifest (or the registry's /v2/ check).
  for (const RegistryRequest& r : first) {
    if (r.IsBlobGet()) {
      blob_bytes += r.bytes_written;
      continue;
    }
    const bool manifest = r.uri.find("/manifests/") != std::string::npos;
    EXPECT_TRUE(manifest || r.uri == "/v2/" || r.uri == "/v2") << r.method << " " << r.uri;
    if (manifest && r.method == "GET") {
      EXPECT_EQ(r.bytes_written, image_->manifest.size());
    }
  }
  EXPECT_EQ(blob_bytes, want_blob_bytes) << Describe(first);

  // The gzip layers are kept as blob files; the plain tar layer lives as chunks only.
  struct stat st {};
  for (size_t i = 0; i < 2; ++i) {
    const std::string path = LocalBlobPath(cache_, image_->layers[i].digest);
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(static_cast<uint64_t>(st.st_size), image_->layers[i].size);
  }
  EXPECT_NE(::stat(LocalBlobPath(cache_, image_->layers[2].digest).c_str(), &st), 0);

  // Again: the store has every blob, so not one blob byte moves (manifests only).
  const uint64_t mark2 = registry_->LogMark();
  CommandResult again = RunHoist({"pull", "-q", "--cache=" + cache_, Ref()});
  ASSERT_TRUE(again.ok()) << again.stderr_text;
  std::vector<RegistryRequest> second = RequestsSince(mark2);
  for (const RegistryRequest& r : second) {
    EXPECT_FALSE(r.IsBlobGet()) << r.method << " " << r.uri;
  }
  EXPECT_FALSE(second.empty());  // the tag was resolved again
}

TEST_F(PullStatsTest, FirstMountStatsMatchTheRegistryPerLayer) {
  const std::string mp = NewDir("mp");
  const uint64_t mark = registry_->LogMark();
  CommandResult m = mounts_.Mount(Ref(), mp, cache_, {"-o", "prefetch=none,elf_prefetch=0"});
  ASSERT_TRUE(m.ok()) << m.stderr_text;
  ReadEveryFile(mp);
  const MountStateFile s = StatsWhen(mp, AllLocal);
  std::vector<RegistryRequest> sent = RequestsSince(mark);
  ASSERT_EQ(s.stats.layers.size(), 3u);
  uint64_t total = 0, requests = 0;
  for (size_t i = 0; i < 3; ++i) {
    const harness::BuiltLayer& l = image_->layers[i];
    const LayerStatsSnapshot& ls = s.stats.layers[i];
    SCOPED_TRACE(l.digest.str());
    EXPECT_EQ(ls.digest, l.digest);
    const auto [gets, bytes] = BlobGets(sent, l.digest);
    EXPECT_EQ(ls.bytes_fetched, bytes) << Describe(sent);
    EXPECT_EQ(ls.requests, static_cast<uint64_t>(gets));
    EXPECT_EQ(ls.store_bytes, 0u);
    EXPECT_EQ(ls.local_bytes, ls.image_bytes);
    if (i < 2) {
      // gzip: indexing read the blob once and the files are served from what it read.
      EXPECT_EQ(ls.bytes_fetched, l.size);
      EXPECT_EQ(ls.image_bytes, i == 0 ? (9u << 20) + 2 : 5u << 20);
    }
    total += ls.bytes_fetched;
    requests += ls.requests;
  }
  EXPECT_EQ(s.stats.bytes_fetched, total);
  EXPECT_EQ(s.stats.requests, requests);
  EXPECT_EQ(s.stats.store_bytes, 0u);
  EXPECT_EQ(s.stats.local_bytes, s.stats.image_bytes);
  EXPECT_EQ(s.stats.image_bytes, (9u << 20) + 2 + (5u << 20) + (6u << 20) + 2);

  CommandResult text = RunHoist({"stats", mp});
  ASSERT_TRUE(text.ok()) << text.stderr_text;
  EXPECT_NE(text.stdout_text.find("bytes fetched     " + std::to_string(total) + " "),
            std::string::npos)
      << text.stdout_text;
  for (size_t i = 0; i < 3; ++i) {
    const std::string line = "layer " + std::to_string(i + 1) + "/3         " +
                             image_->layers[i].digest.str() + ": fetched " +
                             std::to_string(s.stats.layers[i].bytes_fetched) + " bytes";
    EXPECT_NE(text.stdout_text.find(line), std::string::npos) << line << "\n" << text.stdout_text;
  }
  EXPECT_EQ(CountOf(text.stdout_text, "local 100.0% of"), 3u) << text.stdout_text;
}

TEST_F(PullStatsTest, PulledImageReadsFromTheStoreAreNotFetches) {
  CommandResult p = RunHoist({"pull", "-q", "--cache=" + cache_, Ref()});
  ASSERT_TRUE(p.ok()) << p.stderr_text;
  registry_->Stop();
  const std::string mp = NewDir("mp");
  CommandResult m =
      mounts_.Mount(Ref(), mp, cache_, {"--offline", "-o", "prefetch=none,elf_prefetch=0"});
  ASSERT_TRUE(m.ok()) << m.stderr_text;
  ReadEveryFile(mp);
  // The layers are local from the start (their blob files); wait until the reads are counted.
  const uint64_t gz_bytes = image_->layers[0].size + image_->layers[1].size;
  const MountStateFile s = StatsWhen(mp, [&](const MountStateFile& st) {
    return AllLocal(st) && st.stats.store_bytes >= gz_bytes && st.stats.cache_hits > 0;
  });
  EXPECT_EQ(s.stats.requests, 0u);
  EXPECT_EQ(s.stats.bytes_fetched, 0u);
  EXPECT_EQ(s.stats.prefetch_bytes, 0u);
  // What the mount read: the two gzip blobs from their blob files, by range through their
  // checkpoint indexes (every byte at least once; a span shared by two files' reads may be read
  // twice, never more); the plain tar layer's chunks from the cache.
  EXPECT_GE(s.stats.store_bytes, gz_bytes);
  EXPECT_LE(s.stats.store_bytes, 2 * gz_bytes);
  EXPECT_GT(s.stats.cache_hits, 0u);
  // A file of a gzip layer is a chunk-cache miss the first time, served from the blob file.
  EXPECT_GE(s.stats.store_requests, s.stats.cache_misses);
  ASSERT_EQ(s.stats.layers.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    const LayerStatsSnapshot& ls = s.stats.layers[i];
    EXPECT_EQ(ls.requests, 0u);
    EXPECT_EQ(ls.bytes_fetched, 0u);
    if (i < 2) {
      EXPECT_GE(ls.store_bytes, image_->layers[i].size);
      EXPECT_LE(ls.store_bytes, 2 * image_->layers[i].size);
    } else {
      EXPECT_EQ(ls.store_bytes, 0u);
    }
    EXPECT_DOUBLE_EQ(ls.LocalShare(), 1.0);
  }
  CommandResult text = RunHoist({"stats", mp});
  ASSERT_TRUE(text.ok()) << text.stderr_text;
  EXPECT_NE(text.stdout_text.find("bytes fetched     0 "), std::string::npos) << text.stdout_text;
  EXPECT_NE(text.stdout_text.find("store reads       "), std::string::npos) << text.stdout_text;
}

}  // namespace
}  // namespace hoist
