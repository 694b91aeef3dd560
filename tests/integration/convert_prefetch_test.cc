// `hoist convert --prefetch-list`, end to end with the real hoist binary, GNU tar, zstd, skopeo
// and umoci: the listed entries move to the front of their layer (parents first, a hardlink's
// target before it), are marked in the TOC, the config's diff_ids follow the new tars, layers
// without listed paths stay byte-exact, the unpacked tree is unchanged, and the output is
// deterministic.
#include <unistd.h>

#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "fetcher/manifest.h"
#include "index/zstd_chunked.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/tree_walk.h"
#include "tests/integration/layout_image.h"
#include "tools/image/image_transport.h"

#ifndef HOIST_BINARY
#error "HOIST_BINARY must name the hoist executable"
#endif

namespace hoist {
namespace {

using testutil::DecompressedDigest;
using testutil::LayoutImage;
using testutil::ReadLayoutImage;

Status Checked(const std::vector<std::string>& argv) {
  HOIST_RETURN_IF_ERROR(harness::RunChecked(argv));
  return Ok();
}

using harness::FileSpec;
using harness::LayerCompression;
using harness::LayerSpec;

// The member names of a zstd layer, in tar order, as GNU tar lists them.
Result<std::vector<std::string>> TarNames(const std::string& blob) {
  HOIST_ASSIGN_OR_RETURN(std::string out,
                         harness::RunChecked({"bash", "-c", "zstd -dc -- \"$0\" | tar -t", blob}));
  std::vector<std::string> names;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) names.push_back(line);
  return names;
}

Result<LayerIndex> Toc(const LayoutImage& img, const Descriptor& layer) {
  const std::string path = img.BlobPath(layer.digest);
  HOIST_ASSIGN_OR_RETURN(std::string blob, ReadFile(path));
  HOIST_ASSIGN_OR_RETURN(ZstdChunkedAnnotations ann,
                         ParseZstdChunkedAnnotations(layer.annotations));
  HOIST_ASSIGN_OR_RETURN(ZstdChunkedLayer loaded,
                         LoadZstdChunkedLayer(
                             [&](uint64_t off, uint64_t len) -> Result<std::string> {
                               if (off > blob.size() || len > blob.size() - off)
                                 return Fail(EIO, "out of range");
                               return blob.substr(off, len);
                             },
                             blob.size(), layer.digest, ann));
  return loaded.index;
}

std::vector<std::string> Head(const std::vector<std::string>& v, size_t n) {
  return std::vector<std::string>(v.begin(), v.begin() + std::min(n, v.size()));
}

class ConvertPrefetchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto programs = harness::RequirePrograms({"skopeo", "umoci", "zstd", "tar", "gzip"});
    ASSERT_TRUE(programs.has_value()) << programs.error().message();
    const char* tmp = ::getenv("TMPDIR");
    work_ = std::string(tmp && *tmp ? tmp : "/tmp") + "/hoist-convert-prefetch-XXXXXX";
    ASSERT_NE(::mkdtemp(work_.data()), nullptr);
    std::vector<LayerSpec> layers = {
        LayerSpec({FileSpec::Dir("etc"), FileSpec::File("etc/hosts", "127.0.0.1 localhost\n"),
                   FileSpec::File("usr/bin/tool", "#!/bin/sh\necho tool\n", 0755).Owner(7, 8),
                   FileSpec::Symlink("usr/bin/link", "tool"),
                   FileSpec::Hardlink("usr/bin/tool-hard", "usr/bin/tool"),
                   FileSpec::Dir("usr/lib/py", 0700).Owner(5, 6).Mtime(1600000000),
                   FileSpec::File("usr/lib/py/os.py", "import sys\n"),
                   FileSpec::File("usr/lib/py/json.py", "import re\n").Xattr("user.k", "v"),
                   FileSpec::BigFile("data/big", 3 << 20, /*seed=*/3), FileSpec::Dir("opq"),
                   FileSpec::File("opq/old", "old\n")},
                  LayerCompression::kGzip),
        LayerSpec({FileSpec::File("srv/a", "a\n"), FileSpec::Whiteout("etc/hosts")},
                  LayerCompression::kGzip),
        LayerSpec({FileSpec::Opaque("opq"), FileSpec::File("opq/new", "new\n"),
                   FileSpec::File("usr/lib/py/sqlite3.py", "import _sqlite3\n"),
                   FileSpec::File("zz", "last\n")},
                  LayerCompression::kGzip),
    };
    auto image = harness::BuildOciImage(work_ + "/src", layers, {.tag = "v1"});
    ASSERT_TRUE(image.has_value()) << image.error().message();
    source_ = *image;
    list_ = work_ + "/list";
    ASSERT_TRUE(WriteFileAtomic(list_,
                                "# what python opens\n"
                                "usr/lib/py/json.py\n"
                                "/usr/bin/tool-hard\n"
                                "./opq/new\n"
                                "usr/lib/py/sqlite3.py\n"
                                "data/big\n"
                                "missing/path\n"
                                "usr/lib/py/json.py\n")
                    .has_value());
  }
  void TearDown() override { (void)RemoveTree(work_); }

  Status Convert(const std::string& src, const std::string& dst, bool with_list = true) {
    std::vector<std::string> args = {HOIST_BINARY, "convert", "-q"};
    if (with_list) args.insert(args.end(), {"--prefetch-list", list_});
    args.insert(args.end(), {src, dst});
    return Checked(args);
  }

  // The unpacked rootfs of an OCI layout image (re-compressed to gzip first: umoci 0.4.7 does
  // not read zstd layers; the tars, and so the diff_ids umoci checks, are unchanged).
  Result<std::map<std::string, harness::TreeNode>> Unpack(const std::string& ref,
                                                          const std::string& name) {
    std::string gz = work_ + "/" + name + "-gz";
    HOIST_RETURN_IF_ERROR(Checked({"skopeo", "copy", "-q", "--insecure-policy", "--dest-compress",
                                   "--dest-compress-format", "gzip", ref, "oci:" + gz + ":v1"}));
    std::string bundle = work_ + "/" + name + "-bundle";
    HOIST_RETURN_IF_ERROR(Checked({"umoci", "unpack", "--image", gz + ":v1", bundle}));
    return harness::WalkTree(bundle + "/rootfs");
  }

  std::string work_;
  std::string list_;
  harness::BuiltImage source_;
};

TEST_F(ConvertPrefetchTest, ListedEntriesComeFirstMarkedAndTheTreeIsUnchanged) {
  ASSERT_TRUE(Convert(source_.OciRef(), "oci:" + work_ + "/dst:v1").has_value());
  auto img = ReadLayoutImage(work_ + "/dst", "v1");
  ASSERT_TRUE(img.has_value()) << img.error().message();
  auto src = ReadLayoutImage(source_.layout_dir, "v1");
  ASSERT_TRUE(src.has_value()) << src.error().message();
  ASSERT_EQ(img->manifest.layers.size(), 3u);
  ASSERT_EQ(img->config.diff_ids.size(), 3u);

  // The config's diff_ids are the new tars'; only the layers holding listed paths changed.
  for (size_t i = 0; i < 3; ++i) {
    auto got = DecompressedDigest(img->BlobPath(img->manifest.layers[i].digest), "zstd");
    ASSERT_TRUE(got.has_value()) << got.error().message();
    EXPECT_EQ(got->str(), img->config.diff_ids[i].str()) << "layer " << i;
  }
  EXPECT_NE(img->config.diff_ids[0], src->config.diff_ids[0]);
  EXPECT_EQ(img->config.diff_ids[1], src->config.diff_ids[1]);
  EXPECT_NE(img->config.diff_ids[2], src->config.diff_ids[2]);
  EXPECT_NE(img->config_digest, src->config_digest);
  // The unlisted layer is the one a plain conversion writes, byte for byte.
  ASSERT_TRUE(Convert(source_.OciRef(), "oci:" + work_ + "/plain:v1", false).has_value());
  auto plain = ReadLayoutImage(work_ + "/plain", "v1");
  ASSERT_TRUE(plain.has_value()) << plain.error().message();
  EXPECT_EQ(plain->config_digest, src->config_digest);  // no list: the config is unchanged
  EXPECT_EQ(img->manifest.layers[1].digest, plain->manifest.layers[1].digest);
  EXPECT_NE(img->manifest.layers[0].digest, plain->manifest.layers[0].digest);

  // Layer 0: parents (path order), then the listed files in list order, the hardlink's target
  // just before it; everything else after, in source order.
  auto names0 = TarNames(img->BlobPath(img->manifest.layers[0].digest));
  ASSERT_TRUE(names0.has_value()) << names0.error().message();
  EXPECT_EQ(Head(*names0, 9),
            (std::vector<std::string>{"data/", "usr/", "usr/bin/", "usr/lib/", "usr/lib/py/",
                                      "usr/lib/py/json.py", "usr/bin/tool", "usr/bin/tool-hard",
                                      "data/big"}));
  EXPECT_EQ(std::vector<std::string>(names0->begin() + 9, names0->end()),
            (std::vector<std::string>{"etc/", "etc/hosts", "usr/bin/link", "usr/lib/py/os.py",
                                      "opq/", "opq/old"}));
  // Layer 2: the opaque marker keeps its place among the rest.
  auto names2 = TarNames(img->BlobPath(img->manifest.layers[2].digest));
  ASSERT_TRUE(names2.has_value()) << names2.error().message();
  EXPECT_EQ(*names2, (std::vector<std::string>{"opq/", "usr/", "usr/lib/", "usr/lib/py/", "opq/new",
                                               "usr/lib/py/sqlite3.py", "opq/.wh..wh..opq", "zz"}));

  // The TOCs list the entries in the new tar order and mark the listed files (and the moved
  // hardlink target).
  const std::vector<std::set<std::string>> want_marks = {
      {"usr/lib/py/json.py", "usr/bin/tool", "usr/bin/tool-hard", "data/big"},
      {},
      {"opq/new", "usr/lib/py/sqlite3.py"}};
  for (size_t i = 0; i < 3; ++i) {
    auto toc = Toc(*img, img->manifest.layers[i]);
    ASSERT_TRUE(toc.has_value()) << toc.error().message();
    std::set<std::string> marked;
    for (const Entry& e : toc->entries) {
      if (e.prefetch) marked.insert(e.path);
    }
    EXPECT_EQ(marked, want_marks[i]) << "layer " << i;
    if (i == 0) {
      std::vector<std::string> paths;
      for (const Entry& e : toc->entries) paths.push_back(e.path);
      EXPECT_EQ(Head(paths, 9),
                (std::vector<std::string>{"data", "usr", "usr/bin", "usr/lib", "usr/lib/py",
                                          "usr/lib/py/json.py", "usr/bin/tool", "usr/bin/tool-hard",
                                          "data/big"}));
      // The moved files' chunks are contiguous at the front of the blob.
      uint64_t last_end = 0;
      for (size_t k = 5; k < 9; ++k) {
        for (const Chunk& c : toc->entries[k].chunks) {
          EXPECT_GE(c.blob_offset, last_end);
          last_end = c.blob_offset + c.blob_length;
        }
      }
      for (size_t k = 9; k < toc->entries.size(); ++k) {
        for (const Chunk& c : toc->entries[k].chunks) EXPECT_GT(c.blob_offset, last_end);
      }
    }
  }

  // The unpacked tree is the source's.
  auto want = Unpack(source_.OciRef(), "src");
  ASSERT_TRUE(want.has_value()) << want.error().message();
  auto got = Unpack("oci:" + work_ + "/dst:v1", "dst");
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(harness::CompareTrees(*want, *got, "reordered"), std::vector<std::string>{});
  EXPECT_EQ(got->at("usr/lib/py").mode, 0755u);  // layer 2's implicit parent wins, as in src
  EXPECT_EQ(got->count("opq/old"), 0u);
}

TEST_F(ConvertPrefetchTest, DeterministicAndIdempotent) {
  ASSERT_TRUE(Convert(source_.OciRef(), "oci:" + work_ + "/a:v1").has_value());
  ASSERT_TRUE(Convert(source_.OciRef(), "oci:" + work_ + "/b:v1").has_value());
  auto a = ReadLayoutImage(work_ + "/a", "v1");
  auto b = ReadLayoutImage(work_ + "/b", "v1");
  ASSERT_TRUE(a.has_value() && b.has_value());
  EXPECT_EQ(a->manifest_digest, b->manifest_digest);
  // Converting the output again with the same list reuses every layer: nothing changes.
  ASSERT_TRUE(Convert("oci:" + work_ + "/a:v1", "oci:" + work_ + "/c:v1").has_value());
  auto c = ReadLayoutImage(work_ + "/c", "v1");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->manifest_digest, a->manifest_digest);
}

TEST_F(ConvertPrefetchTest, UnlistedImageIsByteExactAndBadListFails) {
  // A list naming nothing in the image changes nothing: same digests as without a list.
  ASSERT_TRUE(WriteFileAtomic(list_, "not/there\n").has_value());
  ASSERT_TRUE(Convert(source_.OciRef(), "oci:" + work_ + "/x:v1").has_value());
  ASSERT_TRUE(Convert(source_.OciRef(), "oci:" + work_ + "/y:v1", false).has_value());
  auto x = ReadLayoutImage(work_ + "/x", "v1");
  auto y = ReadLayoutImage(work_ + "/y", "v1");
  ASSERT_TRUE(x.has_value() && y.has_value());
  EXPECT_EQ(x->manifest_digest, y->manifest_digest);
  EXPECT_EQ(x->config_digest, source_.config_digest);

  ASSERT_TRUE(WriteFileAtomic(list_, "ok\n../../escape\n").has_value());
  auto r = harness::RunCommand({HOIST_BINARY, "convert", "-q", "--prefetch-list", list_,
                                source_.OciRef(), "oci:" + work_ + "/z:v1"});
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->ok());
  EXPECT_NE(r->stderr_text.find(list_ + " line 2"), std::string::npos) << r->stderr_text;
  EXPECT_EQ(::access((work_ + "/z/index.json").c_str(), F_OK), -1);
}

}  // namespace
}  // namespace hoist
