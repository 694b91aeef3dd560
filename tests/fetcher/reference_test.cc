#include "fetcher/reference.h"

#include <gtest/gtest.h>

namespace hoist {
namespace {

constexpr char kDigest[] =
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct Case {
  const char* input;
  const char* registry;
  const char* repository;
  const char* tag;
  const char* digest;
  const char* string;
};

class ReferenceGood : public testing::TestWithParam<Case> {};

TEST_P(ReferenceGood, Normalises) {
  const Case& c = GetParam();
  auto ref = Reference::Parse(c.input);
  ASSERT_TRUE(ref) << ref.error().message();
  EXPECT_EQ(ref->registry, c.registry);
  EXPECT_EQ(ref->repository, c.repository);
  EXPECT_EQ(ref->tag, c.tag);
  EXPECT_EQ(ref->digest.str(), c.digest);
  EXPECT_EQ(ref->String(), c.string);
  // String() is a fixed point.
  auto again = Reference::Parse(ref->String());
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *ref);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ReferenceGood,
    testing::Values(
        Case{"ubuntu", "docker.io", "library/ubuntu", "latest", "",
             "docker.io/library/ubuntu:latest"},
        Case{"ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", "",
             "docker.io/library/ubuntu:22.04"},
        Case{"docker.io/ubuntu", "docker.io", "library/ubuntu", "latest", "",
             "docker.io/library/ubuntu:latest"},
        Case{"index.docker.io/library/ubuntu:x", "docker.io", "library/ubuntu", "x", "",
             "docker.io/library/ubuntu:x"},
        Case{"index.docker.io/ubuntu", "docker.io", "library/ubuntu", "latest", "",
             "docker.io/library/ubuntu:latest"},
        Case{"bitnami/redis", "docker.io", "bitnami/redis", "latest", "",
             "docker.io/bitnami/redis:latest"},
        Case{"ghcr.io/a/b/c:v1", "ghcr.io", "a/b/c", "v1", "", "ghcr.io/a/b/c:v1"},
        Case{"localhost/x", "localhost", "x", "latest", "", "localhost/x:latest"},
        Case{"localhost:5000/x/y:t", "localhost:5000", "x/y", "t", "", "localhost:5000/x/y:t"},
        Case{"127.0.0.1:5000/img", "127.0.0.1:5000", "img", "latest", "",
             "127.0.0.1:5000/img:latest"},
        Case{"[::1]:5000/img:1", "[::1]:5000", "img", "1", "", "[::1]:5000/img:1"},
        Case{"Registry/img", "Registry", "img", "latest", "", "Registry/img:latest"},
        Case{"localhost:5000", "docker.io", "library/localhost", "5000", "",
             "docker.io/library/localhost:5000"},
        Case{"a.b-c/d__e--f/g.h", "a.b-c", "d__e--f/g.h", "latest", "", "a.b-c/d__e--f/g.h:latest"},
        Case{"my-reg.io:443/a_b/c-d:Tag_1.x-y", "my-reg.io:443", "a_b/c-d", "Tag_1.x-y", "",
             "my-reg.io:443/a_b/c-d:Tag_1.x-y"}));

TEST(Reference, DigestOnlyHasNoTag) {
  auto ref = Reference::Parse(std::string("busybox@") + kDigest);
  ASSERT_TRUE(ref) << ref.error().message();
  EXPECT_EQ(ref->registry, "docker.io");
  EXPECT_EQ(ref->repository, "library/busybox");
  EXPECT_EQ(ref->tag, "");
  EXPECT_EQ(ref->digest.str(), kDigest);
  EXPECT_EQ(ref->Identifier(), kDigest);
  EXPECT_EQ(ref->String(), std::string("docker.io/library/busybox@") + kDigest);
}

TEST(Reference, TagAndDigest) {
  auto ref = Reference::Parse(std::string("localhost:5000/a/b:v2@") + kDigest);
  ASSERT_TRUE(ref) << ref.error().message();
  EXPECT_EQ(ref->registry, "localhost:5000");
  EXPECT_EQ(ref->repository, "a/b");
  EXPECT_EQ(ref->tag, "v2");
  EXPECT_EQ(ref->Identifier(), kDigest);  // the digest wins
  EXPECT_EQ(ref->String(), std::string("localhost:5000/a/b:v2@") + kDigest);
}

TEST(Reference, ApiHost) {
  EXPECT_EQ(Reference::Parse("ubuntu")->ApiHost(), "registry-1.docker.io");
  EXPECT_EQ(Reference::Parse("quay.io/a/b")->ApiHost(), "quay.io");
  EXPECT_EQ(Reference::Parse("localhost:5000/a")->ApiHost(), "localhost:5000");
}

TEST(Reference, WithTagAndDigest) {
  auto ref = *Reference::Parse("r.io/a:t");
  auto d = *Digest::Parse(kDigest);
  EXPECT_EQ(ref.WithDigest(d).String(), std::string("r.io/a@") + kDigest);
  EXPECT_EQ(ref.WithDigest(d).WithTag("u").String(), "r.io/a:u");
}

TEST(Reference, Loopback) {
  EXPECT_TRUE(IsLoopbackRegistry("localhost"));
  EXPECT_TRUE(IsLoopbackRegistry("localhost:5000"));
  EXPECT_TRUE(IsLoopbackRegistry("127.0.0.1:5000"));
  EXPECT_TRUE(IsLoopbackRegistry("127.3.4.5"));
  EXPECT_TRUE(IsLoopbackRegistry("[::1]:5000"));
  EXPECT_FALSE(IsLoopbackRegistry("128.0.0.1"));
  EXPECT_FALSE(IsLoopbackRegistry("docker.io"));
  EXPECT_FALSE(IsLoopbackRegistry("localhost.example.com"));
  EXPECT_FALSE(IsLoopbackRegistry("[::2]:5000"));
}

struct BadCase {
  const char* input;
  const char* message;
};

class ReferenceBad : public testing::TestWithParam<BadCase> {};

TEST_P(ReferenceBad, RejectsWithEinvalNamingTheReference) {
  const BadCase& c = GetParam();
  auto ref = Reference::Parse(c.input);
  ASSERT_FALSE(ref) << "parsed: " << ref->String();
  EXPECT_EQ(ref.error().code(), EINVAL);
  EXPECT_EQ(ref.error().message(), c.message);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ReferenceBad,
    testing::Values(
        BadCase{"", "invalid reference \"\": empty"},
        BadCase{"Ubuntu", "invalid reference \"Ubuntu\": repository name must be lowercase"},
        BadCase{
            "docker.io/Library/ubuntu",
            "invalid reference \"docker.io/Library/ubuntu\": repository name must be lowercase"},
        BadCase{"ubuntu:", "invalid reference \"ubuntu:\": bad tag"},
        BadCase{"ubuntu:-x", "invalid reference \"ubuntu:-x\": bad tag"},
        BadCase{"ubuntu@sha256:abc",
                "invalid reference \"ubuntu@sha256:abc\": bad digest (want sha256:<64 lower-case "
                "hex>)"},
        BadCase{"a//b", "invalid reference \"a//b\": empty path component"},
        BadCase{"a/b/", "invalid reference \"a/b/\": empty path component"},
        BadCase{"/a", "invalid reference \"/a\": empty path component"},
        BadCase{"a/-b", "invalid reference \"a/-b\": bad repository name"},
        BadCase{"a/b..c", "invalid reference \"a/b..c\": bad repository name"},
        BadCase{"a/b___c", "invalid reference \"a/b___c\": bad repository name"},
        BadCase{"host:port/a", "invalid reference \"host:port/a\": bad registry host"},
        BadCase{"-bad.io/a", "invalid reference \"-bad.io/a\": bad registry host"},
        BadCase{"[::1/a", "invalid reference \"[::1/a\": bad registry host"},
        BadCase{"localhost:5000/", "invalid reference \"localhost:5000/\": empty repository"},
        BadCase{"a b", "invalid reference \"a b\": bad repository name"},
        BadCase{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "invalid reference "
                "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\": cannot be a "
                "64-character hexadecimal string"}));

TEST(Reference, TooLong) {
  std::string name = "r.io/" + std::string(251, 'a');
  auto ref = Reference::Parse(name);
  ASSERT_FALSE(ref);
  EXPECT_EQ(ref.error().code(), EINVAL);
  EXPECT_NE(ref.error().message().find("name longer than 255 characters"), std::string::npos);
  EXPECT_TRUE(Reference::Parse("r.io/" + std::string(250, 'a')));
}

TEST(Reference, TagTooLong) {
  EXPECT_TRUE(Reference::Parse("a:" + std::string(128, 't')));
  EXPECT_FALSE(Reference::Parse("a:" + std::string(129, 't')));
}

}  // namespace
}  // namespace hoist
