// Lazy unconverted gzip layers through their checkpoint index (index/gzip_index.h,
// fusefs/zran_reader.h), end to end: the real hoistfs binary, a real docker-registry, real FUSE,
// an image of plain `gzip -n` layers that nobody converted.
//
//   Remount        with the layer index (and its checkpoint index) in the cache, mounting
//                  fetches nothing of the layer blob, and a cold read of one small file fetches
//                  only Range pieces of it, far less than the blob (the registry's own log).
//   Tree           the remounted tree (every file's sha256 included) equals `umoci unpack`.
//   Ranges         random-range reads of every file equal the unpacked file's bytes.
//   PrefetchAll    with the index stored, a prefetch=all mount completes the gzip layers in the
//                  background span by span (`hoist stats`: every layer 100% local, no request
//                  for a whole blob); then, with the registry stopped, every file reads exactly.
// Conditions are waited on, never slept for. Without root, /dev/fuse, umoci or docker-registry
// the tests FAIL, they never skip.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <iostream>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "fusefs/stats_file.h"
#include "tests/harness/hoist_cli.h"
#include "tests/harness/hoistfs_mounts.h"
#include "tests/harness/mountinfo.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/registry_requests.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/harness/tree_checks.h"
#include "tests/harness/wait.h"
#include "tests/integration/gzip_test_files.h"

#ifndef HOISTFS_BINARY
#error "HOISTFS_BINARY must name the hoistfs executable"
#endif

namespace hoist {
namespace {

using harness::FileSpec;
using harness::LayerSpec;
using harness::PRead;

std::string TempDir(const std::string& name) {
  std::string templ = "/tmp/hoist-zran-test-" + name + "-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return "";
  return templ;
}

class ZranMountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "the mount tests must run as root";
    ASSERT_EQ(::access("/dev/fuse", R_OK | W_OK), 0) << "/dev/fuse is not accessible";
    ASSERT_TRUE(
        harness::RequirePrograms({"umoci", "skopeo", "fusermount3", "docker-registry", "gzip"})
            .has_value());
    work_ = TempDir("work");
    ASSERT_FALSE(work_.empty());
    auto reg = harness::TestRegistry::Launch();
    ASSERT_TRUE(reg.has_value()) << reg.error().message();
    registry_ = std::move(*reg);
    // Two gzip layers: the files of GzipTestFiles, and a small second layer.
    std::vector<FileSpec> files = testing::GzipTestFiles();
    files.push_back(FileSpec::File("empty", ""));
    std::vector<LayerSpec> layers = {
        LayerSpec(files),
        LayerSpec({FileSpec::File("text/t0", "replaced\n"), FileSpec::Whiteout("data/d1")})};
    layout_ = work_ + "/layout";
    auto image = harness::BuildOciImage(layout_, layers, {.tag = "v1"});
    ASSERT_TRUE(image.has_value()) << image.error().message();
    big_layer_ = image->layers[0].digest;
    big_layer_size_ = image->layers[0].size;
    ASSERT_TRUE(
        harness::PushOciLayout(image->OciRef(), registry_->DockerRef("zran/gz", "v1")).has_value());
    auto unpack =
        harness::RunChecked({"umoci", "unpack", "--image", layout_ + ":v1", work_ + "/bundle"});
    ASSERT_TRUE(unpack.has_value()) << unpack.error().message();
  }
  void TearDown() override {
    mounts_.UnmountAll();
    registry_.reset();
    const char* keep = std::getenv("HOIST_TEST_KEEP");
    if (!work_.empty() && (keep == nullptr || *keep != '1')) (void)RemoveTree(work_);
  }

  void MountOk(const std::string& mp, const std::string& cache,
               const std::string& prefetch = "none") {
    ASSERT_TRUE(MakeDirs(mp).has_value());
    ASSERT_TRUE(MakeDirs(cache).has_value());
    auto r = mounts_.Mount(
        registry_->ImageRef("zran/gz", "v1"), mp, cache,
        {"-o", "log_file=" + cache + "/hoistfs.log,log_level=debug,prefetch=" + prefetch},
        {.timeout = std::chrono::seconds(120)});
    ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
    ASSERT_TRUE(harness::IsMounted(mp));
  }

  // Bytes of the big layer's blob the registry sent since `mark`, and how many GETs.
  std::pair<uint64_t, int> BlobSent(uint64_t mark, bool* whole = nullptr) {
    auto requests = registry_->Requests(mark);
    EXPECT_TRUE(requests.has_value());
    if (!requests) return {0, 0};
    const harness::BlobGets g = harness::SumBlobGets(*requests, big_layer_.str(), big_layer_size_);
    if (whole != nullptr && g.whole) *whole = true;
    return {g.bytes, g.count};
  }

  std::string work_, layout_;
  std::unique_ptr<harness::TestRegistry> registry_;
  Digest big_layer_;
  uint64_t big_layer_size_ = 0;
  harness::HoistfsMounts mounts_{HOISTFS_BINARY};
};

TEST_F(ZranMountTest, RemountIsLazyAndEveryByteMatchesTheUnpackedTree) {
  const std::string cache = work_ + "/cache";
  const std::string mp = work_ + "/mnt";
  ASSERT_GT(big_layer_size_, 4ull << 20);
  // First mount: indexes the layers (one full read of each blob) and stores the indexes.
  MountOk(mp, cache);
  ASSERT_TRUE(mounts_.Unmount(mp).has_value());

  // Remount: the stored index, so nothing of the blob is fetched to mount.
  uint64_t mark = registry_->LogMark();
  MountOk(mp, cache);
  EXPECT_EQ(BlobSent(mark).second, 0) << "the remount fetched the layer blob";

  // A cold read of one small file fetches its span(s) only.
  mark = registry_->LogMark();
  auto small = PRead(mp + "/text/t200", 0, 1 << 20);
  ASSERT_TRUE(small.has_value()) << small.error().message();
  auto want_small = ReadFile(work_ + "/bundle/rootfs/text/t200");
  ASSERT_TRUE(want_small.has_value());
  EXPECT_EQ(*small, *want_small);
  bool whole = false;
  auto [sent, gets] = BlobSent(mark, &whole);
  EXPECT_GE(gets, 1);
  EXPECT_LE(gets, 2);
  EXPECT_FALSE(whole);
  EXPECT_LT(sent, big_layer_size_ / 3)
      << "a small read fetched " << sent << " of " << big_layer_size_ << " bytes";

  // The whole tree, every file's sha256 included, equals umoci's unpack; random ranges of every
  // regular file equal the unpacked bytes.
  ASSERT_NO_FATAL_FAILURE(harness::ExpectTreeAndRanges(work_ + "/bundle/rootfs", mp,
                                                       {.per_file = 4, .min_files = 300}));
  // Lazily through spans, never the whole blob in one request.
  whole = false;
  (void)BlobSent(mark, &whole);
  EXPECT_FALSE(whole);
  ASSERT_TRUE(mounts_.Unmount(mp).has_value());

  // A third mount on the same host: the files read are in the chunk cache, so reading them all
  // again fetches nothing of the blob.
  MountOk(mp, cache);
  mark = registry_->LogMark();
  ASSERT_NO_FATAL_FAILURE(harness::ExpectTreeAndRanges(work_ + "/bundle/rootfs", mp));
  EXPECT_EQ(BlobSent(mark).second, 0) << "files read before were fetched again";
  ASSERT_TRUE(mounts_.Unmount(mp).has_value());
}

TEST_F(ZranMountTest, PrefetchAllCompletesTheLayersAndServesThemOffline) {
  const std::string cache = work_ + "/cache";
  const std::string mp = work_ + "/mnt";
  // First mount: builds and stores the indexes (it serves from the stream it indexed from).
  MountOk(mp, cache);
  ASSERT_TRUE(mounts_.Unmount(mp).has_value());

  // A remount with the stored index and the whole-image pass: lazy layers, completed by spans.
  const uint64_t mark = registry_->LogMark();
  MountOk(mp, cache, "all");
  MountStateFile last;
  const bool local = harness::WaitUntil(
      [&] {
        harness::CommandResult r = harness::RunHoist({"stats", "--json", mp});
        if (!r.ok()) return false;
        auto state = MountStateFromJson(r.stdout_text);
        if (!state) return false;
        last = std::move(*state);
        if (last.stats.prefetch_state != "done" || last.stats.layers.size() != 2) return false;
        for (const LayerStatsSnapshot& l : last.stats.layers) {
          if (l.image_bytes == 0 || l.local_bytes != l.image_bytes) return false;
        }
        return true;
      },
      std::chrono::milliseconds(120000), std::chrono::milliseconds(100));
  ASSERT_TRUE(local) << "last state: " << MountStatsToJson(last.stats);
  // Span by span (requests of about 4 MiB): never one request for the whole blob, and the blob
  // about once in all.
  bool whole = false;
  auto [sent, gets] = BlobSent(mark, &whole);
  EXPECT_FALSE(whole);
  EXPECT_GE(gets, 2);
  EXPECT_LT(sent, big_layer_size_ + big_layer_size_ / 3) << gets << " requests";
  EXPECT_GT(last.stats.prefetch_requests, 0u);
  std::cout << "background completion: " << gets << " GETs, " << sent << " bytes of the "
            << big_layer_size_ << "-byte blob\n";

  // Offline: every file, every byte (WalkTree hashes each file's content).
  registry_->Stop();
  ASSERT_NO_FATAL_FAILURE(harness::ExpectTreeAndRanges(work_ + "/bundle/rootfs", mp));
  ASSERT_TRUE(mounts_.Unmount(mp).has_value());
}

}  // namespace
}  // namespace hoist
