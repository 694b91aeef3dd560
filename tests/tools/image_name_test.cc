// ParseImageName / ParseRegistryReference: the one reference parser of every verb (issue 19
// item 1). Exact results and exact messages: they are the contract users see.
#include <gtest/gtest.h>

#include "tools/image/image_transport.h"

namespace hoist {
namespace {

using T = ImageName::Transport;

void ExpectName(const std::string& text, T transport, const std::string& path,
                const std::string& tag = "") {
  SCOPED_TRACE(text);
  auto n = ParseImageName(text);
  ASSERT_TRUE(n.has_value()) << n.error().message();
  EXPECT_EQ(n->transport, transport);
  EXPECT_EQ(n->path, path);
  EXPECT_EQ(n->tag, tag);
}

void ExpectError(const std::string& text, int code, const std::string& message) {
  SCOPED_TRACE(text);
  auto n = ParseImageName(text);
  ASSERT_FALSE(n.has_value()) << "parsed as " << n->ToString();
  EXPECT_EQ(n.error().code(), code);
  EXPECT_EQ(n.error().message(), message);
}

TEST(ImageNameTest, RegistryReferencesWithAndWithoutDockerPrefix) {
  ExpectName("busybox", T::kDocker, "busybox");
  ExpectName("busybox:1.36", T::kDocker, "busybox:1.36");
  ExpectName("nginx:alpine", T::kDocker, "nginx:alpine");
  ExpectName("busybox:1.36@sha256:" + std::string(64, 'a'), T::kDocker,
             "busybox:1.36@sha256:" + std::string(64, 'a'));
  ExpectName("busybox@sha256:" + std::string(64, 'a'), T::kDocker,
             "busybox@sha256:" + std::string(64, 'a'));
  ExpectName("localhost:5000/x", T::kDocker, "localhost:5000/x");
  ExpectName("myhost:5000/a/b:v1", T::kDocker, "myhost:5000/a/b:v1");
  ExpectName("127.0.0.1:5000/x:t", T::kDocker, "127.0.0.1:5000/x:t");
  ExpectName("ghcr.io/a/b:v1", T::kDocker, "ghcr.io/a/b:v1");
  ExpectName("library/busybox:1", T::kDocker, "library/busybox:1");
  ExpectName("docker://busybox:1.36", T::kDocker, "busybox:1.36");
  ExpectName("docker://localhost:5000/x", T::kDocker, "localhost:5000/x");
}

TEST(ImageNameTest, TransportsSplitLikeSkopeo) {
  ExpectName("oci:/tmp/l", T::kOci, "/tmp/l");
  ExpectName("oci:/tmp/l:v1", T::kOci, "/tmp/l", "v1");
  ExpectName("oci-archive:/tmp/a.tar:v1", T::kOciArchive, "/tmp/a.tar", "v1");
  ExpectName("docker-archive:/tmp/d.tar", T::kDockerArchive, "/tmp/d.tar");
  ExpectName("dir:/tmp/d", T::kDir, "/tmp/d");
  ExpectName("rootfs:/tmp/r", T::kRootfs, "/tmp/r");
  EXPECT_EQ(ParseImageName("dir:/tmp/d")->ToString(), "dir:/tmp/d");
  EXPECT_EQ(ParseImageName("rootfs:/tmp/r")->ToString(), "rootfs:/tmp/r");
}

// "DIR/" (shell completion) names DIR: a destination writes a sibling DIR.hoist-tmp-PID and
// renames it to DIR, which cannot work with the slash (the sibling would be inside DIR).
TEST(ImageNameTest, DirectoriesLoseTrailingSlashes) {
  ExpectName("dir:/tmp/d/", T::kDir, "/tmp/d");
  ExpectName("dir:out//", T::kDir, "out");
  ExpectName("oci:/tmp/l/", T::kOci, "/tmp/l");
  ExpectName("oci:/tmp/l/:v1", T::kOci, "/tmp/l", "v1");
  ExpectName("rootfs:/tmp/r/", T::kRootfs, "/tmp/r");
  ExpectName("rootfs:/", T::kRootfs, "/");
  ExpectName("dir:/", T::kDir, "/");
}

TEST(ImageNameTest, UnknownTransportsAreRefused) {
  const std::string known = "(known: docker, oci, oci-archive, docker-archive, dir, rootfs)";
  ExpectError("bogus:foo/bar", EINVAL, "\"bogus:foo/bar\": unknown transport \"bogus\" " + known);
  ExpectError("bogus:/tmp/x", EINVAL, "\"bogus:/tmp/x\": unknown transport \"bogus\" " + known);
  ExpectError("bogus:", EINVAL, "\"bogus:\": unknown transport \"bogus\" " + known);
  ExpectError(
      "containers-storage:foo", ENOTSUP,
      "\"containers-storage:foo\": transport \"containers-storage\" is not supported " + known);
  ExpectError(
      "docker-daemon:busybox:latest", ENOTSUP,
      "\"docker-daemon:busybox:latest\": transport \"docker-daemon\" is not supported " + known);
  ExpectError("docker:busybox", EINVAL,
              "\"docker:busybox\": a registry reference is written docker://REF");
  ExpectError("oci:/tmp/l:", EINVAL, "\"oci:/tmp/l:\": empty tag after ':'");
  ExpectError("dir:", EINVAL, "\"dir:\": empty image name");
}

TEST(ImageNameTest, RegistryReferenceIsTheSameParser) {
  auto r = ParseRegistryReference("docker://localhost:5000/a/b:v1");
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->String(), "localhost:5000/a/b:v1");
  auto plain = ParseRegistryReference("busybox");
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(plain->String(), "docker.io/library/busybox:latest");
  auto oci = ParseRegistryReference("oci:/tmp/l");
  ASSERT_FALSE(oci.has_value());
  EXPECT_EQ(oci.error().message(),
            "\"oci:/tmp/l\": not a registry reference (this verb takes REF or docker://REF; hoist "
            "copy reads any transport)");
  auto bogus = ParseRegistryReference("bogus:foo/bar");
  ASSERT_FALSE(bogus.has_value());
  EXPECT_NE(bogus.error().message().find("unknown transport \"bogus\""), std::string::npos);
  auto text = RegistryReferenceText("docker://localhost:5000/x");
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(*text, "localhost:5000/x");
}

}  // namespace
}  // namespace hoist
