// The blob files of oci: and dir: layouts (TreeBlobSource) are hostile input: ReadBlob (configs)
// reads at most 8 MiB whatever size the manifest claims, as the registry and the archive sources
// do, so a layout cannot make a verb hold a file of any size in memory.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "base/digest.h"
#include "base/file_util.h"
#include "fetcher/manifest.h"
#include "tools/image/image_transport.h"

namespace hoist {
namespace {

constexpr size_t kCap = 8 << 20;

// A config of exactly `size` bytes (valid JSON: the padding is a string).
std::string ConfigOfSize(size_t size) {
  const std::string head =
      R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"pad":")";
  const std::string tail = "\"}";
  return head + std::string(size - head.size() - tail.size(), 'x') + tail;
}

std::string ManifestFor(const std::string& config) {
  return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
         R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
         Digest::Of(config).str() + R"(","size":)" + std::to_string(config.size()) +
         R"(},"layers":[]})";
}

class TreeBlobSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::string(::testing::TempDir()) + "/tree-blob-" + std::to_string(::getpid());
    (void)RemoveTree(root_);
    ASSERT_TRUE(MakeDirs(root_).has_value());
  }
  void TearDown() override { (void)RemoveTree(root_); }

  // An OCI layout and a skopeo dir: layout of one image whose config is `config`.
  void WriteLayouts(const std::string& config) {
    const std::string manifest = ManifestFor(config);
    const std::string oci = root_ + "/oci";
    ASSERT_TRUE(MakeDirs(oci + "/blobs/sha256").has_value());
    ASSERT_TRUE(WriteFileAtomic(oci + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
    ASSERT_TRUE(WriteFileAtomic(
        oci + "/index.json",
        R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
            Digest::Of(manifest).str() + R"(","size":)" + std::to_string(manifest.size()) + "}]}"));
    ASSERT_TRUE(WriteFileAtomic(oci + "/blobs/sha256/" + std::string(Digest::Of(manifest).hex()),
                                manifest));
    ASSERT_TRUE(
        WriteFileAtomic(oci + "/blobs/sha256/" + std::string(Digest::Of(config).hex()), config));
    const std::string dir = root_ + "/dir";
    ASSERT_TRUE(MakeDirs(dir).has_value());
    ASSERT_TRUE(WriteFileAtomic(dir + "/version", "Directory Transport Version: 1.1\n"));
    ASSERT_TRUE(WriteFileAtomic(dir + "/manifest.json", manifest));
    ASSERT_TRUE(WriteFileAtomic(dir + "/" + std::string(Digest::Of(config).hex()), config));
  }

  // ReadBlob of the config through `name`.
  Result<std::string> ReadConfig(const std::string& name) {
    HOIST_ASSIGN_OR_RETURN(ImageName n, ParseImageName(name));
    HOIST_ASSIGN_OR_RETURN(std::unique_ptr<ImageSource> source, OpenImageSource(n, {}));
    HOIST_ASSIGN_OR_RETURN(RawManifest top, source->TopManifest());
    HOIST_ASSIGN_OR_RETURN(ImageManifest m, ParseImageManifest(top.bytes, top.media_type));
    return source->ReadBlob(m.config);
  }

  std::string root_;
};

TEST_F(TreeBlobSourceTest, ConfigUpToTheCapIsRead) {
  const std::string config = ConfigOfSize(kCap);
  WriteLayouts(config);
  for (const std::string& name : {"oci:" + root_ + "/oci", "dir:" + root_ + "/dir"}) {
    SCOPED_TRACE(name);
    auto got = ReadConfig(name);
    ASSERT_TRUE(got.has_value()) << got.error().message();
    EXPECT_EQ(*got, config);
  }
}

TEST_F(TreeBlobSourceTest, ConfigOverTheCapIsRefusedWithoutReadingIt) {
  const std::string config = ConfigOfSize(kCap + 1);
  WriteLayouts(config);
  for (const std::string& name : {"oci:" + root_ + "/oci", "dir:" + root_ + "/dir"}) {
    SCOPED_TRACE(name);
    auto got = ReadConfig(name);
    ASSERT_FALSE(got.has_value());
    EXPECT_EQ(got.error().code(), EFBIG) << got.error().message();
  }
}

}  // namespace
}  // namespace hoist
