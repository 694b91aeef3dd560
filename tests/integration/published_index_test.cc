// Published layer indexes (issue 17 item 2, "Share it"), end to end: `hoist index` on an image
// of plain `gzip -n` layers pushed by skopeo to a real docker-registry, then real hoistfs mounts
// with FRESH caches (a first mount on a new host) over real FUSE.
//
//   Publish   `hoist index` publishes one artifact that `hoist referrers` lists, with one blob
//             per layer that decodes to that layer's index; the sizes are printed.
//   Lazy      a first mount finds the artifact: no read of either layer blob to mount, a cold
//             read of one small file fetches only its span(s) (the registry's own log), the
//             tree equals `umoci unpack`, random ranges of every file match.
//   Version 1 an artifact of the older type: one warning line naming it, not read.
//   Tampered  artifacts pushed by hand (a blob of the wrong layer, truncated checkpoint data,
//             windows that are valid zstd but wrong): ONE warning line each, and the mount
//             serves exactly the right bytes from the whole blob.
// Conditions are waited on, never slept for. Without root, /dev/fuse, umoci or docker-registry
// the tests FAIL, they never skip.
#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "fetcher/curl_transport.h"
#include "fetcher/referrers.h"
#include "fetcher/registry.h"
#include "index/gzip_index.h"
#include "index/published_index.h"
#include "tests/harness/hoist_cli.h"
#include "tests/harness/hoistfs_mounts.h"
#include "tests/harness/mountinfo.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/registry_requests.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/harness/tree_checks.h"
#include "tests/integration/gzip_test_files.h"

#ifndef HOISTFS_BINARY
#error "HOISTFS_BINARY must name the hoistfs executable"
#endif

namespace hoist {
namespace {

using harness::FileSpec;
using harness::LayerSpec;
using harness::PRead;
using harness::RunHoist;

std::string TempDir(const std::string& name) {
  std::string templ = "/tmp/hoist-pubindex-test-" + name + "-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return "";
  return templ;
}

// Lines of `text` that contain every one of `words`.
int CountLines(const std::string& text, const std::vector<std::string>& words) {
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    bool all = true;
    for (const std::string& w : words) all = all && line.find(w) != std::string::npos;
    n += all ? 1 : 0;
  }
  return n;
}

class PublishedIndexTest : public ::testing::Test {
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
    files.push_back(FileSpec::Symlink("link", "small.txt"));
    std::vector<LayerSpec> layers = {
        LayerSpec(files),
        LayerSpec({FileSpec::File("text/t0", "replaced\n"), FileSpec::Whiteout("data/d1")})};
    layout_ = work_ + "/layout";
    auto image = harness::BuildOciImage(layout_, layers, {.tag = "v1"});
    ASSERT_TRUE(image.has_value()) << image.error().message();
    image_ = *image;
    ASSERT_TRUE(
        harness::PushOciLayout(image->OciRef(), registry_->DockerRef("pub/gz", "v1")).has_value());
    auto unpack =
        harness::RunChecked({"umoci", "unpack", "--image", layout_ + ":v1", work_ + "/bundle"});
    ASSERT_TRUE(unpack.has_value()) << unpack.error().message();
    auto transport = NewCurlTransport();
    ASSERT_TRUE(transport.has_value()) << transport.error().message();
    RegistryOptions options;
    options.retry.max_attempts = 2;
    client_ = std::make_unique<RegistryClient>(
        std::shared_ptr<HttpTransport>(std::move(*transport)), nullptr, options);
    repo_ = *Reference::Parse(ImageRef());
  }
  void TearDown() override {
    mounts_.UnmountAll();
    registry_.reset();
    const char* keep = std::getenv("HOIST_TEST_KEEP");
    if (!work_.empty() && (keep == nullptr || *keep != '1')) (void)RemoveTree(work_);
  }

  std::string ImageRef() const { return registry_->ImageRef("pub/gz", "v1"); }
  const harness::BuiltLayer& Big() const { return image_.layers[0]; }

  Descriptor Subject() const {
    Descriptor d;
    d.media_type = std::string(kMediaTypeOciManifest);
    d.digest = image_.manifest_digest;
    d.size = static_cast<int64_t>(image_.manifest.size());
    return d;
  }

  // `hoist index IMAGE`; the artifact's digest.
  Digest IndexImage() {
    auto r = RunHoist({"index", ImageRef()});
    EXPECT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
    const size_t at = r.stdout_text.rfind("Digest: ");
    EXPECT_NE(at, std::string::npos) << r.stdout_text;
    if (at == std::string::npos) return {};
    auto d = Digest::Parse(r.stdout_text.substr(at + 8, 71));
    EXPECT_TRUE(d.has_value()) << r.stdout_text;
    return d ? *d : Digest();
  }

  // A layer's published blobs: the table and its windows blob ("" when it has none).
  struct Published {
    std::string table;
    std::string windows;
  };

  // The published artifact's blobs by layer position (fetched and verified).
  std::vector<Published> PublishedBlobs(const Digest& artifact) {
    std::vector<Published> out(image_.layers.size());
    auto listed = ListReferrers(*client_, repo_, image_.manifest_digest, kLayerIndexArtifactType);
    EXPECT_TRUE(listed.has_value());
    if (!listed) return out;
    for (const Descriptor& d : *listed) {
      if (d.digest != artifact) continue;
      auto m = FetchReferrerManifest(*client_, repo_, image_.manifest_digest, d,
                                     kLayerIndexArtifactType);
      EXPECT_TRUE(m.has_value()) << m.error().message();
      if (!m) return out;
      for (const Descriptor& b : m->manifest.layers) {
        for (size_t i = 0; i < image_.layers.size(); ++i) {
          if (b.annotations.at(std::string(kLayerIndexLayerAnnotation)) !=
              image_.layers[i].digest.str())
            continue;
          auto data = FetchReferrerBlob(*client_, repo_, b, 1 << 30);
          EXPECT_TRUE(data.has_value()) << data.error().message();
          if (!data) continue;
          if (b.media_type == kLayerIndexBlobMediaType) {
            out[i].table = *data;
          } else {
            EXPECT_EQ(b.media_type, kLayerIndexWindowsMediaType);
            out[i].windows = *data;
          }
        }
      }
    }
    return out;
  }

  // Publishes `blobs` (by layer position) as a new, newest, artifact; its digest.
  Digest PushTampered(const std::vector<Published>& blobs) {
    std::vector<ReferrerBlob> rb;
    for (size_t i = 0; i < blobs.size(); ++i) {
      const std::map<std::string, std::string> a = {
          {std::string(kLayerIndexLayerAnnotation), image_.layers[i].digest.str()}};
      rb.push_back(ReferrerBlob{std::string(kLayerIndexBlobMediaType), blobs[i].table, a});
      if (!blobs[i].windows.empty())
        rb.push_back(ReferrerBlob{std::string(kLayerIndexWindowsMediaType), blobs[i].windows, a});
    }
    auto pushed = PushReferrer(*client_, repo_, Subject(), kLayerIndexArtifactType, rb,
                               {{std::string(kAnnotationCreated), "2099-01-01T00:00:00Z"}});
    EXPECT_TRUE(pushed.has_value()) << pushed.error().message();
    return pushed ? pushed->digest : Digest();
  }

  // GETs of blob `digest` since `mark`: bytes sent and count; *whole set when one sent `size`.
  std::pair<uint64_t, int> DigestSent(uint64_t mark, const Digest& digest, uint64_t size,
                                      bool* whole = nullptr) {
    auto requests = registry_->Requests(mark);
    EXPECT_TRUE(requests.has_value());
    if (!requests) return {0, 0};
    const harness::BlobGets g = harness::SumBlobGets(*requests, digest.str(), size);
    if (whole != nullptr && g.whole) *whole = true;
    return {g.bytes, g.count};
  }

  void MountOk(const std::string& mp, const std::string& cache) {
    ASSERT_TRUE(MakeDirs(mp).has_value());
    ASSERT_TRUE(MakeDirs(cache).has_value());
    auto r =
        mounts_.Mount(ImageRef(), mp, cache,
                      {"-o", "log_file=" + cache + "/hoistfs.log,log_level=debug,prefetch=none"},
                      {.timeout = std::chrono::seconds(120)});
    ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
    ASSERT_TRUE(harness::IsMounted(mp));
  }

  // Bytes of layer `i`'s blob the registry sent since `mark`, and how many GETs.
  std::pair<uint64_t, int> BlobSent(uint64_t mark, size_t i, bool* whole = nullptr) {
    return DigestSent(mark, image_.layers[i].digest, image_.layers[i].size, whole);
  }

  // Every file of the mount equals umoci's unpack (tree, sha256s) and random ranges match.
  void ExpectTreeAndRanges(const std::string& mp) {
    harness::ExpectTreeAndRanges(work_ + "/bundle/rootfs", mp, {.per_file = 3, .min_files = 300});
  }

  std::string Log(const std::string& cache) {
    auto log = ReadFile(cache + "/hoistfs.log");
    EXPECT_TRUE(log.has_value());
    return log ? *log : "";
  }

  std::string work_, layout_;
  std::unique_ptr<harness::TestRegistry> registry_;
  harness::BuiltImage image_;
  std::unique_ptr<RegistryClient> client_;
  Reference repo_;
  harness::HoistfsMounts mounts_{HOISTFS_BINARY};
};

TEST_F(PublishedIndexTest, IndexPublishesOneArtifactThatIsListedAndDecodes) {
  auto r = RunHoist({"index", ImageRef()});
  ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
  // One line per layer with its size and its index's size, then the artifact.
  for (size_t i = 0; i < image_.layers.size(); ++i) {
    EXPECT_EQ(
        CountLines(r.stdout_text, {image_.layers[i].digest.str(), " gzip, ", " entries, index "}),
        1)
        << r.stdout_text;
  }
  EXPECT_EQ(CountLines(r.stdout_text,
                       {"Published 2 layer indexes", "referring to", image_.manifest_digest.str()}),
            1)
      << r.stdout_text;
  const size_t at = r.stdout_text.rfind("Digest: ");
  ASSERT_NE(at, std::string::npos);
  auto artifact = Digest::Parse(r.stdout_text.substr(at + 8, 71));
  ASSERT_TRUE(artifact.has_value()) << r.stdout_text;

  auto listed =
      RunHoist({"referrers", "--artifact-type", std::string(kLayerIndexArtifactType), ImageRef()});
  ASSERT_TRUE(listed.ok()) << listed.stderr_text;
  EXPECT_EQ(CountLines(listed.stdout_text, {artifact->str(), std::string(kLayerIndexArtifactType)}),
            1)
      << listed.stdout_text;

  std::vector<Published> blobs = PublishedBlobs(*artifact);
  for (size_t i = 0; i < image_.layers.size(); ++i) {
    const harness::BuiltLayer& layer = image_.layers[i];
    ASSERT_FALSE(blobs[i].table.empty()) << "no table for layer " << i;
    auto index =
        DecodePublishedLayerIndex(blobs[i].table, layer.digest, layer.size, LayerFormat::kTarGzip);
    ASSERT_TRUE(index.has_value()) << index.error().message();
    EXPECT_FALSE(index->entries.empty());
    // Refused as the index of the other layer.
    const harness::BuiltLayer& other = image_.layers[1 - i];
    EXPECT_FALSE(
        DecodePublishedLayerIndex(blobs[i].table, other.digest, other.size, LayerFormat::kTarGzip));
    // The windows: external, in the windows blob published with the table, each range of it
    // holding the window of its sha256. The small layer has no block checkpoint, so no windows.
    auto checkpoints = ParseCheckpointIndex(index->stream_index, layer.size, layer.digest);
    ASSERT_TRUE(checkpoints.has_value()) << checkpoints.error().message();
    if (i == 1) {
      EXPECT_TRUE(blobs[i].windows.empty());
      EXPECT_FALSE(checkpoints->external_windows());
      continue;
    }
    ASSERT_TRUE(checkpoints->external_windows());
    EXPECT_EQ(checkpoints->windows_blob, Digest::Of(blobs[i].windows));
    EXPECT_EQ(checkpoints->windows_size, blobs[i].windows.size());
    int windows = 0;
    for (const Checkpoint& c : checkpoints->checkpoints) {
      if (c.kind != CheckpointKind::kDeflateBlock) continue;
      EXPECT_TRUE(c.window.empty());
      ASSERT_LE(c.window_offset + c.window_size, blobs[i].windows.size());
      EXPECT_TRUE(
          CheckWindow(c, std::string_view(blobs[i].windows).substr(c.window_offset, c.window_size))
              .has_value());
      ++windows;
    }
    EXPECT_GT(windows, 3);
    // The table is small: the windows are the bulk.
    EXPECT_LT(blobs[i].table.size(), blobs[i].windows.size() / 4);
  }
  EXPECT_LT(blobs[0].table.size() + blobs[0].windows.size(), Big().size / 5)
      << "the index is large next to its layer";

  // -q prints the digest alone.
  auto quiet = RunHoist({"index", "-q", ImageRef()});
  ASSERT_TRUE(quiet.ok()) << quiet.stderr_text;
  ASSERT_EQ(quiet.stdout_text.size(), 72u) << quiet.stdout_text;
  EXPECT_TRUE(Digest::Parse(quiet.stdout_text.substr(0, 71)).has_value());
}

TEST_F(PublishedIndexTest, FirstMountOnAFreshCacheIsLazyFromTheFirstByte) {
  ASSERT_GT(Big().size, 4ull << 20);
  const Digest artifact = IndexImage();
  ASSERT_FALSE(artifact.empty());
  const std::vector<Published> blobs = PublishedBlobs(artifact);
  ASSERT_FALSE(blobs[0].windows.empty());
  const Digest windows = Digest::Of(blobs[0].windows);
  const std::string cache = work_ + "/cache";
  const std::string mp = work_ + "/mnt";
  uint64_t mark = registry_->LogMark();
  MountOk(mp, cache);
  for (size_t i = 0; i < image_.layers.size(); ++i) {
    EXPECT_EQ(BlobSent(mark, i).second, 0) << "the first mount read layer " << i << "'s blob";
  }
  EXPECT_EQ(DigestSent(mark, windows, blobs[0].windows.size()).second, 0)
      << "the mount fetched windows before any read";
  const std::string log = Log(cache);
  EXPECT_EQ(CountLines(log, {"index from published index"}), 2) << log;
  EXPECT_EQ(CountLines(log, {"refused"}), 0) << log;

  // A cold read of one small file fetches its span(s) only.
  mark = registry_->LogMark();
  auto small = PRead(mp + "/text/t200", 0, 1 << 20);
  ASSERT_TRUE(small.has_value()) << small.error().message();
  auto want_small = ReadFile(work_ + "/bundle/rootfs/text/t200");
  ASSERT_TRUE(want_small.has_value());
  EXPECT_EQ(*small, *want_small);
  bool whole = false;
  auto [sent, gets] = BlobSent(mark, 0, &whole);
  EXPECT_GE(gets, 1);
  EXPECT_LE(gets, 2);
  EXPECT_FALSE(whole);
  EXPECT_LT(sent, Big().size / 3) << "a small read fetched " << sent << " of " << Big().size;

  // Its span's window (if it starts at a block checkpoint): one range of the windows blob.
  bool windows_whole = false;
  auto [window_sent, window_gets] =
      DigestSent(mark, windows, blobs[0].windows.size(), &windows_whole);
  EXPECT_LE(window_gets, 2);
  EXPECT_LT(window_sent, 2 * 33000u);
  EXPECT_FALSE(windows_whole);

  ExpectTreeAndRanges(mp);
  whole = false;
  (void)BlobSent(mark, 0, &whole);
  EXPECT_FALSE(whole) << "a read fetched the whole blob";
  windows_whole = false;
  auto [all_windows, window_requests] =
      DigestSent(mark, windows, blobs[0].windows.size(), &windows_whole);
  EXPECT_FALSE(windows_whole) << "a read fetched the whole windows blob";
  EXPECT_GT(window_requests, 3) << "every window arrives by its own range";
  EXPECT_LE(all_windows, blobs[0].windows.size());
  ASSERT_TRUE(mounts_.Unmount(mp).has_value());

  // The fresh index and the windows fetched were stored: a remount on this host looks nothing
  // up, and reading every file again fetches no window and no layer byte.
  mark = registry_->LogMark();
  MountOk(mp, cache);
  ExpectTreeAndRanges(mp);
  EXPECT_EQ(BlobSent(mark, 0).second, 0);
  EXPECT_EQ(DigestSent(mark, windows, blobs[0].windows.size()).second, 0);
  ASSERT_TRUE(mounts_.Unmount(mp).has_value());
}

TEST_F(PublishedIndexTest, TamperedArtifactsAreRefusedAndTheMountServesTheRightBytes) {
  const Digest genuine = IndexImage();
  ASSERT_FALSE(genuine.empty());
  const std::vector<Published> blobs = PublishedBlobs(genuine);
  ASSERT_FALSE(blobs[0].table.empty());
  ASSERT_FALSE(blobs[0].windows.empty());
  ASSERT_FALSE(blobs[1].table.empty());
  auto big =
      DecodePublishedLayerIndex(blobs[0].table, Big().digest, Big().size, LayerFormat::kTarGzip);
  ASSERT_TRUE(big.has_value()) << big.error().message();
  auto genuine_checkpoints = ParseCheckpointIndex(big->stream_index, Big().size, Big().digest);
  ASSERT_TRUE(genuine_checkpoints.has_value());
  ASSERT_TRUE(genuine_checkpoints->external_windows());

  // The big layer's table with its checkpoints edited by `edit` (which may rewrite the windows
  // blob too), republished as the windows blob's new digest and size say.
  auto tampered = [&](const std::function<void(CheckpointIndex&, std::string&)>& edit) {
    CheckpointIndex cps = *genuine_checkpoints;
    std::string windows = blobs[0].windows;
    edit(cps, windows);
    LayerIndex table = *big;
    table.stream_index = SerializeCheckpointIndex(cps);
    return Published{EncodePublishedLayerIndex(table), windows};
  };
  auto pack = [](const std::string& window) {
    std::string packed(ZSTD_compressBound(window.size()), '\0');
    packed.resize(ZSTD_compress(packed.data(), packed.size(), window.data(), window.size(), 3));
    return packed;
  };
  // Every block checkpoint's window replaced (in a new windows blob, digests recomputed).
  auto rewrite_windows = [&](const std::string& packed, bool shift_bits) {
    return tampered([&](CheckpointIndex& cps, std::string& windows) {
      windows.clear();
      for (Checkpoint& c : cps.checkpoints) {
        if (c.kind != CheckpointKind::kDeflateBlock) continue;
        c.window_offset = windows.size();
        c.window_size = static_cast<uint32_t>(packed.size());
        c.window_digest = Digest::Of(packed);
        if (shift_bits) c.bits = static_cast<uint8_t>((c.bits + 3) % 8);
        windows += packed;
      }
      cps.windows_blob = Digest::Of(windows);
      cps.windows_size = windows.size();
    });
  };
  LayerIndex truncated = *big;
  truncated.stream_index.resize(truncated.stream_index.size() - 1000);
  struct Case {
    std::string name;
    Published blob;
    bool refused_at_mount;
    std::string why;  // in the one warning line
  };
  const std::vector<Case> cases = {
      // The small layer's index where the big layer's should be (wrong layer digest).
      {"wrong-layer", blobs[1], true, "indexes layer"},
      // Truncated checkpoint data.
      {"truncated", {EncodePublishedLayerIndex(truncated), blobs[0].windows}, true, "do not fit"},
      // A window whose range runs past the end of the windows blob.
      {"window-past-end", tampered([](CheckpointIndex& cps, std::string& windows) {
         for (Checkpoint& c : cps.checkpoints) {
           if (c.kind == CheckpointKind::kDeflateBlock) c.window_offset = windows.size() - 10;
         }
       }),
       true, "past the end of the windows blob"},
      // A table naming a windows blob larger than the one published (the ranges inside the
      // size it claims, past the real blob's end).
      {"windows-blob-size", tampered([](CheckpointIndex& cps, std::string&) {
         const uint64_t real = cps.windows_size;
         cps.windows_size += 40000;
         for (Checkpoint& c : cps.checkpoints) {
           if (c.kind == CheckpointKind::kDeflateBlock) c.window_offset = real + 100;
         }
       }),
       true, "is not in the artifact"},
      // Every window with a wrong sha256 in the table: refused at the first read through one.
      {"window-digest", tampered([](CheckpointIndex& cps, std::string&) {
         for (Checkpoint& c : cps.checkpoints) c.window_digest = Digest::Of("not the window");
       }),
       false, "does not match its sha256"},
      // Windows of the wrong size: valid zstd frames (digests right) of 16 KiB, not 32.
      {"window-size", rewrite_windows(pack(std::string(kDeflateWindowBytes / 2, 'x')), false),
       false, "does not declare 32768 bytes"},
      // The wrong unread-bit count and a window that is a valid zstd frame of 32 KiB of the
      // wrong bytes: passes every check a mount can make without the blob, and fails to inflate
      // (or fails the file's sha256) at the first read through it.
      {"bad-checkpoints", rewrite_windows(pack(std::string(kDeflateWindowBytes, 'x')), true), false,
       ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Digest artifact = PushTampered({c.blob, blobs[1]});
    ASSERT_FALSE(artifact.empty());
    const std::string cache = work_ + "/cache-" + c.name;
    const std::string mp = work_ + "/mnt-" + c.name;
    uint64_t mark = registry_->LogMark();
    MountOk(mp, cache);
    EXPECT_EQ(BlobSent(mark, 0).first >= Big().size, c.refused_at_mount)
        << "the whole blob is read to mount iff refused";
    if (c.refused_at_mount) {
      const std::string log = Log(cache);
      EXPECT_EQ(CountLines(log, {"refused"}), 1) << log;
      EXPECT_EQ(CountLines(log, {"refused", Big().digest.str(), artifact.str()}), 1) << log;
    }
    // A file far into the layer (its span starts at a block checkpoint, not the blob's start).
    auto got = PRead(mp + "/data/d399", 0, 1 << 20);
    ASSERT_TRUE(got.has_value()) << got.error().message();
    auto want = ReadFile(work_ + "/bundle/rootfs/data/d399");
    ASSERT_TRUE(want.has_value());
    EXPECT_EQ(*got, *want);
    // Every file, all through the whole blob once the checkpoints were refused.
    ExpectTreeAndRanges(mp);
    const std::string log = Log(cache);
    EXPECT_EQ(CountLines(log, {"refused"}), 1) << log;
    EXPECT_EQ(CountLines(log, {"refused", c.why}), 1) << log;
    if (!c.refused_at_mount) {
      EXPECT_EQ(CountLines(log, {"does not fit the blob; refused", Big().digest.str()}), 1) << log;
      EXPECT_GE(BlobSent(mark, 0).first, Big().size) << "the fallback fetches the whole blob";
    }
    ASSERT_TRUE(mounts_.Unmount(mp).has_value());
  }
}

// An artifact of version 1 (one blob per layer, windows inline; what an older hoist published)
// is no longer read: ONE warning line naming it, and the layers are indexed from their whole
// blobs as with no artifact; every byte is served right.
TEST_F(PublishedIndexTest, VersionOneArtifactsAreNamedAndNotRead) {
  std::vector<ReferrerBlob> rb;
  for (size_t i = 0; i < image_.layers.size(); ++i) {
    rb.push_back(
        ReferrerBlob{"application/vnd.hoist.layer-index.v1.record+zstd",
                     "an older record " + std::to_string(i),
                     {{std::string(kLayerIndexLayerAnnotation), image_.layers[i].digest.str()}}});
  }
  auto pushed = PushReferrer(*client_, repo_, Subject(), kLayerIndexArtifactTypeV1, rb, {});
  ASSERT_TRUE(pushed.has_value()) << pushed.error().message();
  const std::string cache = work_ + "/cache";
  const std::string mp = work_ + "/mnt";
  const uint64_t mark = registry_->LogMark();
  MountOk(mp, cache);
  EXPECT_GE(BlobSent(mark, 0).first, Big().size) << "indexed from the whole blob";
  const std::string log = Log(cache);
  EXPECT_EQ(CountLines(log, {"hoist warning", std::string(kLayerIndexArtifactTypeV1),
                             "no longer read", "run `hoist index` again"}),
            1)
      << log;
  EXPECT_EQ(CountLines(log, {"version 1"}), 1) << log;
  EXPECT_EQ(CountLines(log, {"index from published index"}), 0) << log;
  ExpectTreeAndRanges(mp);
  ASSERT_TRUE(mounts_.Unmount(mp).has_value());
}

}  // namespace
}  // namespace hoist
