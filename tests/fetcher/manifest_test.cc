#include "fetcher/manifest.h"

#include <gtest/gtest.h>

namespace hoist {
namespace {

std::string D(char c) { return "sha256:" + std::string(64, c); }

std::string IndexJson() {
  return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
         D('1') + R"(","size":10,"platform":{"os":"linux","architecture":"arm","variant":"v6"}},
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
         D('2') + R"(","size":11,"platform":{"os":"unknown","architecture":"unknown"}},
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
         D('3') + R"(","size":12,"platform":{"os":"linux","architecture":"arm","variant":"v7"}},
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
         D('4') + R"(","size":13,"platform":{"os":"linux","architecture":"amd64"}},
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
         D('5') + R"(","size":14,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
         D('6') +
         R"(","size":15,"platform":{"os":"windows","architecture":"amd64","os.version":"10.0"}}
  ],"annotations":{"a":"b"}})";
}

TEST(Manifest, ParsesIndexAndSelectsPlatforms) {
  auto index = ParseImageIndex(IndexJson(), kMediaTypeOciIndex);
  ASSERT_TRUE(index) << index.error().message();
  ASSERT_EQ(index->manifests.size(), 6u);
  EXPECT_EQ(index->annotations.at("a"), "b");
  EXPECT_EQ(index->manifests[5].platform->os_version, "10.0");

  auto pick = [&](const char* p) { return SelectPlatform(*index, *Platform::Parse(p)); };
  EXPECT_EQ(pick("linux/amd64")->digest.str(), D('4'));
  EXPECT_EQ(pick("linux/arm64")->digest.str(), D('5'));
  EXPECT_EQ(pick("linux/arm64/v8")->digest.str(), D('5'));
  EXPECT_EQ(pick("linux/arm/v7")->digest.str(), D('3'));
  EXPECT_EQ(pick("linux/arm")->digest.str(), D('3'));  // arm means arm/v7
  EXPECT_EQ(pick("linux/arm/v6")->digest.str(), D('1'));
  EXPECT_EQ(pick("windows/amd64")->digest.str(), D('6'));
  EXPECT_EQ(pick("linux/x86_64")->digest.str(), D('4'));
  auto none = pick("linux/s390x");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), ENOENT);
  EXPECT_EQ(none.error().message(),
            "no manifest for platform linux/s390x in the index (it has: linux/arm/v6, "
            "linux/arm/v7, linux/amd64, linux/arm64/v8, windows/amd64)");
  // unknown/unknown (attestations) are never picked.
  EXPECT_FALSE(pick("unknown/unknown"));
}

TEST(Manifest, PlatformParse) {
  auto p = Platform::Parse("linux/arm64/v8");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->os, "linux");
  EXPECT_EQ(p->architecture, "arm64");
  EXPECT_EQ(p->variant, "v8");
  EXPECT_EQ(p->String(), "linux/arm64/v8");
  for (const char* bad : {"", "linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64"}) {
    auto r = Platform::Parse(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), EINVAL);
  }
  EXPECT_EQ(Platform::Host().os, "linux");
  EXPECT_FALSE(Platform::Host().architecture.empty());
}

TEST(Manifest, ParsesImageManifest) {
  std::string json =
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
    "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":")" +
      D('c') + R"(","size":100},
    "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":")" +
      D('a') +
      R"(","size":1000,"annotations":{"io.github.containers.zstd-chunked.manifest-position":"1:2:3:4"},"urls":["https://x/y"]}],
    "annotations":{"k":"v"}})";
  auto m = ParseImageManifest(json, kMediaTypeDockerManifest);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->config.digest.str(), D('c'));
  EXPECT_EQ(m->config.size, 100);
  ASSERT_EQ(m->layers.size(), 1u);
  EXPECT_EQ(m->layers[0].media_type, kMediaTypeOciLayerZstd);
  EXPECT_EQ(m->layers[0].size, 1000);
  EXPECT_EQ(m->layers[0].annotations.at("io.github.containers.zstd-chunked.manifest-position"),
            "1:2:3:4");
  EXPECT_EQ(m->layers[0].urls, std::vector<std::string>{"https://x/y"});
  EXPECT_EQ(m->annotations.at("k"), "v");
  EXPECT_FALSE(m->subject);
}

TEST(Manifest, MediaTypeDisagreementRejected) {
  std::string json = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
    "config":{"mediaType":"x","digest":")" +
                     D('c') + R"(","size":1},"layers":[]})";
  auto m = ParseImageManifest(json, kMediaTypeDockerManifest);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), EINVAL);
  EXPECT_NE(m.error().message().find("disagrees"), std::string::npos) << m.error().message();
  auto t =
      ManifestMediaType("application/vnd.docker.distribution.manifest.v2+json; charset=x", json);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code(), EINVAL);
}

TEST(Manifest, MediaTypeFromBodyWhenContentTypeIsGeneric) {
  std::string oci_no_type = R"({"schemaVersion":2,"config":{"mediaType":"x","digest":")" + D('c') +
                            R"(","size":1},"layers":[]})";
  EXPECT_EQ(*ManifestMediaType("application/json", oci_no_type), kMediaTypeOciManifest);
  EXPECT_EQ(*ManifestMediaType("", R"({"schemaVersion":2,"manifests":[]})"), kMediaTypeOciIndex);
  EXPECT_EQ(*ManifestMediaType(" Application/VND.oci.image.index.v1+json ; x=y",
                               R"({"schemaVersion":2,"manifests":[]})"),
            kMediaTypeOciIndex);
  auto schema1 =
      ManifestMediaType("application/vnd.docker.distribution.manifest.v1+prettyjws", "{}");
  ASSERT_FALSE(schema1);
  EXPECT_NE(schema1.error().message().find("schema 1"), std::string::npos);
}

TEST(Manifest, MalformedManifests) {
  for (std::string bad :
       {std::string("not json"), std::string("[]"), std::string(R"({"schemaVersion":1})"),
        std::string(R"({"schemaVersion":2,"config":{"digest":"sha256:zz","size":1},"layers":[]})"),
        R"({"schemaVersion":2,"config":{"digest":")" + D('c') + R"(","size":-1},"layers":[]})",
        R"({"schemaVersion":2,"config":{"digest":")" + D('c') + R"(","size":1},"layers":{}})"}) {
    auto m = ParseImageManifest(bad, kMediaTypeOciManifest);
    ASSERT_FALSE(m) << bad;
    EXPECT_EQ(m.error().code(), EINVAL);
  }
}

TEST(Manifest, ParsesImageConfig) {
  std::string json = R"({"created":"2024-01-02T03:04:05Z","architecture":"amd64","os":"linux",
    "config":{"Env":["PATH=/bin","A=b"],"Cmd":["sh"],"Entrypoint":null,"WorkingDir":"/w","User":"1000",
    "Labels":{"l":"v"}},
    "rootfs":{"type":"layers","diff_ids":[")" +
                     D('d') + R"("]},
    "history":[{"created":"2024","created_by":"/bin/sh -c x","empty_layer":true},{"comment":"c"}]})";
  auto c = ParseImageConfig(json);
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->created, "2024-01-02T03:04:05Z");
  EXPECT_EQ(c->architecture, "amd64");
  EXPECT_EQ(c->os, "linux");
  EXPECT_EQ(c->env, (std::vector<std::string>{"PATH=/bin", "A=b"}));
  EXPECT_EQ(c->cmd, std::vector<std::string>{"sh"});
  EXPECT_TRUE(c->entrypoint.empty());
  EXPECT_EQ(c->working_dir, "/w");
  EXPECT_EQ(c->user, "1000");
  EXPECT_EQ(c->labels.at("l"), "v");
  ASSERT_EQ(c->diff_ids.size(), 1u);
  EXPECT_EQ(c->diff_ids[0].str(), D('d'));
  ASSERT_EQ(c->history.size(), 2u);
  EXPECT_TRUE(c->history[0].empty_layer);
  EXPECT_EQ(c->history[0].created_by, "/bin/sh -c x");
  EXPECT_EQ(c->history[1].comment, "c");
  EXPECT_EQ(c->raw, json);
  auto bad = ParseImageConfig(R"({"rootfs":{"diff_ids":["md5:x"]}})");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), EINVAL);
}

}  // namespace
}  // namespace hoist
