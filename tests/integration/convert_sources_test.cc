// `hoist convert` from the docker-archive: and rootfs: sources, end to end: a harness-built image
// written to a docker-archive by the real skopeo, a real directory tree, the real `hoist` binary,
// a real registry, and the real zstd/skopeo to judge the output.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "fetcher/manifest.h"
#include "tests/harness/hoist_cli.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/integration/layout_image.h"
#include "tools/image/image_transport.h"

#ifndef HOIST_BINARY
#error "HOIST_BINARY must name the hoist executable"
#endif

namespace hoist {
namespace {

using harness::RunHoist;

using testutil::DecompressedDigest;
using testutil::LayoutImage;
using testutil::ReadLayoutImage;

using harness::CommandOptions;
using harness::CommandResult;
using harness::FileSpec;
using harness::LayerCompression;
using harness::LayerSpec;

int Lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

class ConvertSourcesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto programs = harness::RequirePrograms({"skopeo", "zstd", "docker-registry"});
    ASSERT_TRUE(programs.has_value()) << programs.error().message();
    const char* tmp = ::getenv("TMPDIR");
    std::string templ =
        std::string(tmp && *tmp ? tmp : "/tmp") + "/hoist-convert-sources-test-XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    work_ = new std::string(templ);
    auto reg = harness::TestRegistry::Launch();
    ASSERT_TRUE(reg.has_value()) << reg.error().message();
    registry_ = reg->release();
    // docker-archive cannot hold zstd layers (skopeo refuses): one gzip layer and one plain tar.
    std::vector<LayerSpec> layers = {
        LayerSpec({FileSpec::Dir("etc"), FileSpec::File("etc/hosts", "127.0.0.1 localhost\n"),
                   FileSpec::File("usr/bin/tool", "#!/bin/sh\necho tool\n", 0755),
                   FileSpec::Symlink("usr/bin/link", "tool"),
                   FileSpec::Hardlink("usr/bin/tool-hard", "usr/bin/tool")},
                  LayerCompression::kGzip),
        LayerSpec({FileSpec::File("srv/a", "a\n"), FileSpec::Whiteout("etc/hosts")},
                  LayerCompression::kNone),
    };
    auto image = harness::BuildOciImage(*work_ + "/src-layout", layers, {.tag = "v1"});
    ASSERT_TRUE(image.has_value()) << image.error().message();
    image_ = new harness::BuiltImage(*image);
    archive_ = new std::string(*work_ + "/image.tar");
    auto copied = harness::RunChecked({"skopeo", "copy", "-q", "--insecure-policy", image->OciRef(),
                                       "docker-archive:" + *archive_ + ":name:tag"});
    ASSERT_TRUE(copied.has_value()) << copied.error().message();
  }

  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
    delete image_;
    image_ = nullptr;
    delete archive_;
    archive_ = nullptr;
    if (work_ != nullptr) (void)RemoveTree(*work_);
    delete work_;
    work_ = nullptr;
  }

  std::string Dir(const std::string& name) { return *work_ + "/" + name; }

  // Converts src to dst; EIO with hoist's stderr on failure.
  Status Convert(std::vector<std::string> args) {
    args.insert(args.begin(), {"convert", "-q"});
    CommandResult r = RunHoist(args);
    if (!r.ok()) return Fail(EIO, "hoist convert failed (" + r.Describe() + "): " + r.stderr_text);
    return Ok();
  }

  // A tree with a file, a symlink, a hardlink and a subdirectory.
  std::string MakeRootfs() {
    std::string root = Dir("rootfs");
    if (::access(root.c_str(), F_OK) == 0) return root;
    EXPECT_TRUE(MakeDirs(root + "/sub/deeper").has_value());
    EXPECT_TRUE(WriteFileAtomic(root + "/sub/file", "hello\n").has_value());
    EXPECT_EQ(::symlink("sub/file", (root + "/link").c_str()), 0);
    EXPECT_EQ(::link((root + "/sub/file").c_str(), (root + "/hard").c_str()), 0);
    return root;
  }

  static harness::TestRegistry* registry_;
  static harness::BuiltImage* image_;
  static std::string* work_;
  static std::string* archive_;
};

harness::TestRegistry* ConvertSourcesTest::registry_ = nullptr;
harness::BuiltImage* ConvertSourcesTest::image_ = nullptr;
std::string* ConvertSourcesTest::work_ = nullptr;
std::string* ConvertSourcesTest::archive_ = nullptr;

TEST_F(ConvertSourcesTest, DockerArchiveToRegistryKeepsTarsAndConfig) {
  const std::string dst = registry_->DockerRef("x", "y");
  ASSERT_TRUE(Convert({"docker-archive:" + *archive_, dst}).has_value());
  ASSERT_TRUE(harness::RunChecked({"skopeo", "copy", "-q", "--insecure-policy",
                                   "--src-tls-verify=false", dst, "oci:" + Dir("da-out") + ":v1"})
                  .has_value());
  auto out = ReadLayoutImage(Dir("da-out"), "v1");
  ASSERT_TRUE(out.has_value()) << out.error().message();
  EXPECT_EQ(out->config_bytes, image_->config);
  EXPECT_EQ(out->manifest.config.digest, image_->config_digest);
  ASSERT_EQ(out->manifest.layers.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE("layer " + std::to_string(i));
    const Descriptor& layer = out->manifest.layers[i];
    EXPECT_EQ(layer.media_type, kMediaTypeOciLayerZstd);
    auto diff = DecompressedDigest(out->BlobPath(layer.digest));
    ASSERT_TRUE(diff.has_value()) << diff.error().message();
    EXPECT_EQ(*diff, image_->layers[i].diff_id);
  }
}

TEST_F(ConvertSourcesTest, DockerArchiveByRepoTag) {
  ASSERT_TRUE(Convert({"docker-archive:" + *archive_ + ":name:tag", "oci:" + Dir("da-tag") + ":t"})
                  .has_value());
  auto out = ReadLayoutImage(Dir("da-tag"), "t");
  ASSERT_TRUE(out.has_value()) << out.error().message();
  EXPECT_EQ(out->config_bytes, image_->config);

  CommandResult r =
      RunHoist({"convert", "-q", "docker-archive:" + *archive_ + ":other:tag", "oci:" + Dir("x")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.stderr_text, "hoist convert: docker-archive:" + *archive_ +
                               ": no image tagged \"other:tag\" in the archive\n");
}

TEST_F(ConvertSourcesTest, DirToOciLayout) {
  const std::string root = MakeRootfs();
  std::vector<std::string> args = {"rootfs:" + root, "oci:" + Dir("dir-out") + ":t",
                                   "--cmd",          "[\"/bin/sh\",\"-c\",\"echo hi\"]",
                                   "--env",          "A=B",
                                   "--workdir",      "/w",
                                   "--label",        "k=v"};
  ASSERT_TRUE(Convert(args).has_value());
  auto out = ReadLayoutImage(Dir("dir-out"), "t");
  ASSERT_TRUE(out.has_value()) << out.error().message();
  EXPECT_EQ(out->config.cmd, (std::vector<std::string>{"/bin/sh", "-c", "echo hi"}));
  EXPECT_EQ(out->config.env, (std::vector<std::string>{"A=B"}));
  EXPECT_TRUE(out->config.entrypoint.empty());
  EXPECT_EQ(out->config.working_dir, "/w");
  EXPECT_EQ(out->config.labels, (std::map<std::string, std::string>{{"k", "v"}}));
  EXPECT_EQ(out->config.os, "linux");
  EXPECT_EQ(out->config.architecture, Platform::Host().architecture);
  EXPECT_EQ(out->config.created, "1970-01-01T00:00:00Z");
  // Exactly these fields in config.config.
  rapidjson::Document doc;
  doc.Parse(out->config_bytes.data(), out->config_bytes.size());
  ASSERT_TRUE(doc.IsObject() && doc.HasMember("config") && doc["config"].IsObject());
  std::vector<std::string> keys;
  for (const auto& m : doc["config"].GetObject()) keys.push_back(m.name.GetString());
  EXPECT_EQ(keys, (std::vector<std::string>{"Env", "Cmd", "WorkingDir", "Labels"}));
  ASSERT_TRUE(doc.HasMember("history") && doc["history"].IsArray());
  ASSERT_EQ(doc["history"].Size(), 1u);
  EXPECT_STREQ(doc["history"][0]["created_by"].GetString(), "hoist convert rootfs:DIR");

  ASSERT_EQ(out->manifest.layers.size(), 1u);
  ASSERT_EQ(out->config.diff_ids.size(), 1u);
  const std::string blob = out->BlobPath(out->manifest.layers[0].digest);
  auto diff = DecompressedDigest(blob);
  ASSERT_TRUE(diff.has_value()) << diff.error().message();
  EXPECT_EQ(*diff, out->config.diff_ids[0]);
  // The tar holds the tree: a hardlink, a symlink, the subdirectories.
  auto listing = harness::RunChecked({"bash", "-c", "zstd -dc -- \"$0\" | tar -tv", blob});
  ASSERT_TRUE(listing.has_value()) << listing.error().message();
  EXPECT_NE(listing->find("link -> sub/file"), std::string::npos) << *listing;
  EXPECT_NE(listing->find("sub/file link to hard"), std::string::npos) << *listing;
  EXPECT_NE(listing->find("sub/deeper/"), std::string::npos) << *listing;

  // Converting again gives the same image.
  args[1] = "oci:" + Dir("dir-out2") + ":t";
  ASSERT_TRUE(Convert(args).has_value());
  auto again = ReadLayoutImage(Dir("dir-out2"), "t");
  ASSERT_TRUE(again.has_value()) << again.error().message();
  EXPECT_EQ(again->manifest_digest, out->manifest_digest);
}

TEST_F(ConvertSourcesTest, DirHonoursSourceDateEpochAndEntrypoint) {
  const std::string root = MakeRootfs();
  CommandResult r = RunHoist({"convert", "-q", "rootfs:" + root, "oci:" + Dir("dir-epoch") + ":t",
                              "--entrypoint", "[\"/app\"]"},
                             {"SOURCE_DATE_EPOCH=1700000000"});
  ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
  auto out = ReadLayoutImage(Dir("dir-epoch"), "t");
  ASSERT_TRUE(out.has_value()) << out.error().message();
  EXPECT_EQ(out->config.created, "2023-11-14T22:13:20Z");
  EXPECT_EQ(out->config.entrypoint, (std::vector<std::string>{"/app"}));
  EXPECT_TRUE(out->config.cmd.empty());
  EXPECT_TRUE(out->config.env.empty());
  EXPECT_TRUE(out->config.labels.empty());
}

TEST_F(ConvertSourcesTest, GzipCompressedDockerArchive) {
  const std::string gz = Dir("image.tar.gz");
  ASSERT_TRUE(
      harness::RunChecked({"bash", "-c", "gzip -c -- \"$0\" > \"$1\"", *archive_, gz}).has_value());
  ASSERT_TRUE(Convert({"docker-archive:" + gz, "oci:" + Dir("da-gz") + ":t"}).has_value());
  auto out = ReadLayoutImage(Dir("da-gz"), "t");
  ASSERT_TRUE(out.has_value()) << out.error().message();
  EXPECT_EQ(out->config_bytes, image_->config);
  ASSERT_EQ(out->config.diff_ids.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    auto diff = DecompressedDigest(out->BlobPath(out->manifest.layers[i].digest));
    ASSERT_TRUE(diff.has_value()) << diff.error().message();
    EXPECT_EQ(*diff, image_->layers[i].diff_id);
  }
}

TEST_F(ConvertSourcesTest, BadInputsFailWithOneLine) {
  // A truncated archive: cut inside the first layer member.
  std::string truncated = Dir("truncated.tar");
  auto bytes = ReadFile(*archive_);
  ASSERT_TRUE(bytes.has_value());
  ASSERT_TRUE(WriteFileAtomic(truncated, bytes->substr(0, bytes->size() / 2)).has_value());
  std::string not_tar = Dir("not-tar");
  ASSERT_TRUE(WriteFileAtomic(not_tar, std::string(2000, 'x')).has_value());
  for (const std::string& src :
       {"docker-archive:" + Dir("missing.tar"), "docker-archive:" + truncated,
        "docker-archive:" + not_tar, "rootfs:" + Dir("missing-dir"), "rootfs:" + not_tar}) {
    SCOPED_TRACE(src);
    CommandResult r = RunHoist({"convert", "-q", src, "oci:" + Dir("bad-out")});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(Lines(r.stderr_text), 1) << r.stderr_text;
    EXPECT_TRUE(r.stderr_text.starts_with("hoist convert: " + src.substr(0, src.find(':') + 1)))
        << r.stderr_text;
    EXPECT_NE(::access(Dir("bad-out").c_str(), F_OK), 0);
  }
}

}  // namespace
}  // namespace hoist
