// `hoist convert` of a multi-platform image (issue 3): an OCI image index with linux/amd64 and
// linux/arm64/v8 sharing one layer, plus an unknown/unknown (attestation-style) entry (built by
// tests/harness, pushed with `skopeo copy --all`), and the same index as a Docker manifest list
// (`skopeo copy --all --format v2s2`).
//
// Expected destination shapes (as `hoist convert --help` says, and as skopeo and crane do):
//   - no --platform: an OCI image index with every platform (unknown/unknown entries dropped),
//     in the source's order, each entry keeping its platform; each manifest an OCI manifest
//     whose layers are zstd:chunked with the three annotations, whose config is the source's
//     (same digest, so diff_ids unchanged).
//   - --platform os/arch[/variant]: that platform's manifest alone, NOT a one-entry index (skopeo
//     copy without --all and crane copy --platform both write the single manifest). It is the
//     same manifest, byte for byte, as that platform's entry of the all-platform conversion.
// Real registry, real skopeo and zstd, the real hoist binary; exact digests and bytes.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "fetcher/manifest.h"
#include "tests/harness/hoist_cli.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"

#ifndef HOIST_BINARY
#error "HOIST_BINARY must name the hoist executable"
#endif

namespace hoist {
namespace {

using harness::RunHoist;

using harness::CommandResult;
using harness::FileSpec;
using harness::LayerSpec;

constexpr char kChecksumKey[] = "io.github.containers.zstd-chunked.manifest-checksum";
constexpr char kTocPosKey[] = "io.github.containers.zstd-chunked.manifest-position";
constexpr char kTarSplitKey[] = "io.github.containers.zstd-chunked.tarsplit-position";

Result<rapidjson::Document> ParseJson(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  if (doc.HasParseError() || !doc.IsObject()) return Fail(EBADMSG, "not a JSON object: " + text);
  return doc;
}

// sha256 of `zstd -dc FILE`.
Result<Digest> ZstdDecompressedDigest(const std::string& blob) {
  HOIST_ASSIGN_OR_RETURN(
      std::string out, harness::RunChecked({"bash", "-c", "zstd -dc -- \"$0\" | sha256sum", blob}));
  return Digest::Parse("sha256:" + out.substr(0, 64));
}

// A blob (manifest, config, layer) as stored in an OCI layout, checked against its digest.
Result<std::string> LayoutBlob(const std::string& layout, const std::string& digest) {
  HOIST_ASSIGN_OR_RETURN(Digest d, Digest::Parse(digest));
  HOIST_ASSIGN_OR_RETURN(std::string bytes, ReadFile(harness::LayoutBlobPath(layout, d)));
  if (Digest::Of(bytes) != d) return Fail(EIO, "blob " + digest + " does not match its digest");
  return bytes;
}

struct SourcePlatform {
  std::string os, arch, variant;
  Digest config_digest;
  std::vector<Digest> diff_ids;
};

class ConvertPlatformsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setup_error_ = new std::string();
    auto fail = [](const std::string& e) { *setup_error_ = e; };
    if (auto s = harness::RequirePrograms({"skopeo", "docker-registry", "zstd", "gzip", "tar"});
        !s) {
      return fail(s.error().message());
    }
    std::string templ = "/tmp/hoist-convert-platforms-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) return fail("mkdtemp failed");
    work_ = new std::string(templ);
    auto reg = harness::TestRegistry::Launch();
    if (!reg) return fail(reg.error().message());
    registry_ = reg->release();

    harness::ImageSpec amd;
    amd.architecture = "amd64";
    harness::ImageSpec arm;
    arm.architecture = "arm64";
    arm.variant = "v8";
    // A third entry as buildx writes for attestations (unknown/unknown): never converted, and
    // dropped from the converted index.
    harness::ImageSpec attestation;
    attestation.os = "unknown";
    attestation.architecture = "unknown";
    std::vector<harness::PlatformImage> platforms = {
        {amd,
         {LayerSpec({FileSpec::File("etc/os-release", "ID=test\n")}),
          LayerSpec({FileSpec::File("bin/arch", "amd64\n", 0755),
                     FileSpec::BigFile("lib/blob", 3 << 20, 1)})}},
        {arm,
         {LayerSpec({FileSpec::File("etc/os-release", "ID=test\n")}),
          LayerSpec({FileSpec::File("bin/arch", "arm64\n", 0755),
                     FileSpec::BigFile("lib/blob", 2 << 20, 2)})}},
        {attestation, {LayerSpec({FileSpec::File("statement.json", "{}\n")})}},
    };
    auto index = harness::BuildOciIndex(*work_ + "/src-layout", platforms, "v1");
    if (!index) return fail(index.error().message());
    index_ = new harness::BuiltIndex(*index);
    if (index->images[0].layers[0].digest != index->images[1].layers[0].digest) {
      return fail("the two platforms' first layers should be one blob (shared layer)");
    }
    sources_ = new std::vector<SourcePlatform>();
    for (size_t i = 0; i < 2; ++i) {
      SourcePlatform p{"linux",
                       platforms[i].spec.architecture,
                       platforms[i].spec.variant,
                       index->images[i].config_digest,
                       {}};
      for (const auto& l : index->images[i].layers) p.diff_ids.push_back(l.diff_id);
      sources_->push_back(p);
    }
    if (auto s = harness::PushOciLayout(index->OciRef(), Ref("multi/src"), {.all = true}); !s) {
      return fail(s.error().message());
    }
    // The same images behind a Docker manifest list (skopeo converts index and manifests; all
    // layers are gzip, since Docker v2s2 has no zstd layer type).
    if (auto s = harness::RunChecked({"skopeo", "copy", "--insecure-policy", "--all",
                                      "--dest-tls-verify=false", "--format", "v2s2",
                                      index->OciRef(), Ref("multi/v2s2")});
        !s) {
      return fail(s.error().message());
    }
  }

  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
    const char* keep = std::getenv("HOIST_TEST_KEEP");  // 1: keep the layouts for a look
    if (work_ != nullptr && (keep == nullptr || *keep != '1')) (void)RemoveTree(*work_);
    delete work_;
    work_ = nullptr;
    delete index_;
    index_ = nullptr;
    delete sources_;
    sources_ = nullptr;
  }

  void SetUp() override { ASSERT_TRUE(setup_error_->empty()) << *setup_error_; }

  static std::string Ref(const std::string& repo, const std::string& tag = "v1") {
    return registry_->DockerRef(repo, tag);
  }
  static std::string Dir(const std::string& name) { return *work_ + "/" + name; }

  // `hoist convert --json ARGS...`; the parsed report.
  static Result<rapidjson::Document> Convert(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"convert", "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandResult r = RunHoist(argv);
    if (!r.ok()) return Fail(EIO, "hoist convert: " + r.Describe() + ": " + r.stderr_text);
    return ParseJson(r.stdout_text);
  }

  // The registry's raw manifest or index for repo:tag or repo@digest.
  static Result<std::string> Raw(const std::string& ref) {
    return harness::RunChecked({"skopeo", "inspect", "--raw", "--tls-verify=false", ref});
  }

  // Checks one converted image manifest (bytes) against source platform `p`; `blob_dir` is an
  // OCI layout holding its layers (the layers' zstd -d must be the source's diff_ids).
  static void ExpectConvertedManifest(const std::string& bytes, const SourcePlatform& p,
                                      const std::string& blob_dir) {
    auto m = ParseJson(bytes);
    ASSERT_TRUE(m.has_value()) << m.error().message();
    EXPECT_STREQ((*m)["mediaType"].GetString(), kMediaTypeOciManifest.data());
    EXPECT_EQ((*m)["config"]["digest"].GetString(), p.config_digest.str());
    ASSERT_EQ((*m)["layers"].Size(), p.diff_ids.size());
    for (rapidjson::SizeType i = 0; i < (*m)["layers"].Size(); ++i) {
      SCOPED_TRACE(p.arch + " layer " + std::to_string(i));
      const auto& l = (*m)["layers"][i];
      EXPECT_STREQ(l["mediaType"].GetString(), kMediaTypeOciLayerZstd.data());
      ASSERT_TRUE(l.HasMember("annotations"));
      for (const char* key : {kChecksumKey, kTocPosKey, kTarSplitKey}) {
        EXPECT_TRUE(l["annotations"].HasMember(key)) << key;
      }
      auto blob = LayoutBlob(blob_dir, l["digest"].GetString());
      ASSERT_TRUE(blob.has_value()) << blob.error().message();
      EXPECT_EQ(blob->size(), l["size"].GetUint64());
      auto diff = ZstdDecompressedDigest(
          harness::LayoutBlobPath(blob_dir, *Digest::Parse(l["digest"].GetString())));
      ASSERT_TRUE(diff.has_value()) << diff.error().message();
      EXPECT_EQ(*diff, p.diff_ids[i]);
    }
    // The config blob is the source's, byte for byte.
    auto config = LayoutBlob(blob_dir, (*m)["config"]["digest"].GetString());
    ASSERT_TRUE(config.has_value()) << config.error().message();
    auto src_config = LayoutBlob(index_->layout_dir, p.config_digest.str());
    ASSERT_TRUE(src_config.has_value()) << src_config.error().message();
    EXPECT_EQ(*config, *src_config);
  }

  // Checks an index (bytes): both platforms, in order, converted; blobs in `blob_dir`.
  static void ExpectConvertedIndex(const std::string& bytes, const std::string& blob_dir) {
    auto idx = ParseJson(bytes);
    ASSERT_TRUE(idx.has_value()) << idx.error().message();
    EXPECT_STREQ((*idx)["mediaType"].GetString(), kMediaTypeOciIndex.data());
    ASSERT_EQ((*idx)["manifests"].Size(), 2u);
    for (rapidjson::SizeType i = 0; i < 2; ++i) {
      const auto& e = (*idx)["manifests"][i];
      const SourcePlatform& p = (*sources_)[i];
      SCOPED_TRACE(p.arch);
      EXPECT_STREQ(e["mediaType"].GetString(), kMediaTypeOciManifest.data());
      ASSERT_TRUE(e.HasMember("platform"));
      EXPECT_EQ(e["platform"]["os"].GetString(), p.os);
      EXPECT_EQ(e["platform"]["architecture"].GetString(), p.arch);
      EXPECT_EQ(e["platform"].HasMember("variant") ? e["platform"]["variant"].GetString() : "",
                p.variant);
      auto manifest = LayoutBlob(blob_dir, e["digest"].GetString());
      ASSERT_TRUE(manifest.has_value()) << manifest.error().message();
      EXPECT_EQ(manifest->size(), e["size"].GetUint64());
      ExpectConvertedManifest(*manifest, p, blob_dir);
    }
  }

  static std::string* setup_error_;
  static std::string* work_;
  static harness::TestRegistry* registry_;
  static harness::BuiltIndex* index_;
  static std::vector<SourcePlatform>* sources_;
};

std::string* ConvertPlatformsTest::setup_error_ = nullptr;
std::string* ConvertPlatformsTest::work_ = nullptr;
harness::TestRegistry* ConvertPlatformsTest::registry_ = nullptr;
harness::BuiltIndex* ConvertPlatformsTest::index_ = nullptr;
std::vector<SourcePlatform>* ConvertPlatformsTest::sources_ = nullptr;

TEST_F(ConvertPlatformsTest, AllPlatformsToRegistryGiveAnIndexOfConvertedManifests) {
  auto report = Convert({Ref("multi/src"), Ref("multi/all")});
  ASSERT_TRUE(report.has_value()) << report.error().message();
  auto raw = Raw(Ref("multi/all"));
  ASSERT_TRUE(raw.has_value()) << raw.error().message();
  EXPECT_EQ((*report)["digest"].GetString(), Digest::Of(*raw).str());
  EXPECT_STREQ((*report)["mediaType"].GetString(), kMediaTypeOciIndex.data());
  // One report line per platform and layer, labelled with the platform.
  const auto& layers = (*report)["layers"];
  ASSERT_EQ(layers.Size(), 4u);
  const char* want_platforms[] = {"linux/amd64", "linux/amd64", "linux/arm64/v8", "linux/arm64/v8"};
  for (rapidjson::SizeType i = 0; i < 4; ++i) {
    EXPECT_STREQ(layers[i]["platform"].GetString(), want_platforms[i]) << i;
    EXPECT_EQ(layers[i]["index"].GetInt(), static_cast<int>(i % 2)) << i;
    EXPECT_EQ(layers[i]["source"].GetString(), index_->images[i / 2].layers[i % 2].digest.str())
        << i;
  }
  // The layer both platforms share is converted once: one output blob for both.
  EXPECT_EQ(std::string(layers[0]["digest"].GetString()), layers[2]["digest"].GetString());
  EXPECT_NE(std::string(layers[1]["digest"].GetString()), layers[3]["digest"].GetString());
  // skopeo copies the whole converted index without error; judge its copy.
  const std::string copy = Dir("all-copy");
  ASSERT_TRUE(
      harness::RunChecked({"skopeo", "copy", "--insecure-policy", "--all", "--src-tls-verify=false",
                           Ref("multi/all"), "oci:" + copy + ":v1"})
          .has_value());
  auto copied_index = LayoutBlob(copy, (*report)["digest"].GetString());
  ASSERT_TRUE(copied_index.has_value()) << copied_index.error().message();
  EXPECT_EQ(*copied_index, *raw);
  ExpectConvertedIndex(*raw, copy);
}

TEST_F(ConvertPlatformsTest, OnePlatformGivesThatManifestAlone) {
  auto all = Convert({Ref("multi/src"), Ref("multi/all2")});
  ASSERT_TRUE(all.has_value()) << all.error().message();
  auto all_raw = Raw(Ref("multi/all2"));
  ASSERT_TRUE(all_raw.has_value());
  auto all_idx = ParseJson(*all_raw);
  ASSERT_TRUE(all_idx.has_value());

  // "linux/arm64" matches the linux/arm64/v8 entry (v8 is arm64's default variant).
  auto report = Convert({"--platform", "linux/arm64", Ref("multi/src"), Ref("multi/arm")});
  ASSERT_TRUE(report.has_value()) << report.error().message();
  EXPECT_STREQ((*report)["mediaType"].GetString(), kMediaTypeOciManifest.data());
  EXPECT_EQ((*report)["layers"].Size(), 2u);
  auto raw = Raw(Ref("multi/arm"));
  ASSERT_TRUE(raw.has_value()) << raw.error().message();
  EXPECT_EQ((*report)["digest"].GetString(), Digest::Of(*raw).str());
  // The same manifest as the arm64 entry of the all-platform conversion.
  EXPECT_EQ((*report)["digest"].GetString(),
            std::string((*all_idx)["manifests"][1]["digest"].GetString()));
  const std::string copy = Dir("arm-copy");
  ASSERT_TRUE(harness::RunChecked({"skopeo", "copy", "--insecure-policy", "--src-tls-verify=false",
                                   Ref("multi/arm"), "oci:" + copy + ":v1"})
                  .has_value());
  ExpectConvertedManifest(*raw, (*sources_)[1], copy);

  auto amd = Convert({"--platform", "linux/amd64", Ref("multi/src"), Ref("multi/amd")});
  ASSERT_TRUE(amd.has_value()) << amd.error().message();
  EXPECT_EQ((*amd)["digest"].GetString(),
            std::string((*all_idx)["manifests"][0]["digest"].GetString()));

  // A platform the index does not have: exit 1, one line naming what it has, nothing pushed.
  CommandResult r =
      RunHoist({"convert", "-q", "--platform", "linux/s390x", Ref("multi/src"), Ref("multi/no")});
  EXPECT_EQ(r.exit_code, 1) << r.Describe() << ": " << r.stderr_text;
  EXPECT_EQ(r.stderr_text,
            "hoist convert: no manifest for platform linux/s390x in the index (it has: "
            "linux/amd64, linux/arm64/v8)\n");
  EXPECT_FALSE(Raw(Ref("multi/no")).has_value());
}

TEST_F(ConvertPlatformsTest, AllPlatformsToOciLayout) {
  auto reg = Convert({Ref("multi/src"), Ref("multi/all3")});
  ASSERT_TRUE(reg.has_value()) << reg.error().message();
  const std::string layout = Dir("oci-out");
  auto report = Convert({Ref("multi/src"), "oci:" + layout + ":multi"});
  ASSERT_TRUE(report.has_value()) << report.error().message();
  // The same index as the registry destination got.
  EXPECT_EQ(std::string((*report)["digest"].GetString()), (*reg)["digest"].GetString());
  auto index_json = ReadFile(layout + "/index.json");
  ASSERT_TRUE(index_json.has_value()) << index_json.error().message();
  auto top = ParseJson(*index_json);
  ASSERT_TRUE(top.has_value()) << top.error().message();
  ASSERT_EQ((*top)["manifests"].Size(), 1u);
  const auto& entry = (*top)["manifests"][0];
  EXPECT_STREQ(entry["mediaType"].GetString(), kMediaTypeOciIndex.data());
  EXPECT_EQ(std::string(entry["digest"].GetString()), (*report)["digest"].GetString());
  EXPECT_STREQ(entry["annotations"]["org.opencontainers.image.ref.name"].GetString(), "multi");
  auto bytes = LayoutBlob(layout, entry["digest"].GetString());
  ASSERT_TRUE(bytes.has_value()) << bytes.error().message();
  EXPECT_EQ(bytes->size(), entry["size"].GetUint64());
  ExpectConvertedIndex(*bytes, layout);

  // One platform into the same layout: a manifest entry beside the index entry.
  auto amd = Convert({"--platform", "linux/amd64", Ref("multi/src"), "oci:" + layout + ":amd"});
  ASSERT_TRUE(amd.has_value()) << amd.error().message();
  auto again = ReadFile(layout + "/index.json");
  ASSERT_TRUE(again.has_value());
  auto top2 = ParseJson(*again);
  ASSERT_TRUE(top2.has_value());
  ASSERT_EQ((*top2)["manifests"].Size(), 2u);
  std::map<std::string, std::string> types;
  for (const auto& e : (*top2)["manifests"].GetArray()) {
    types[e["annotations"]["org.opencontainers.image.ref.name"].GetString()] =
        e["mediaType"].GetString();
  }
  EXPECT_EQ(types["multi"], kMediaTypeOciIndex);
  EXPECT_EQ(types["amd"], kMediaTypeOciManifest);
  auto amd_manifest = LayoutBlob(layout, (*amd)["digest"].GetString());
  ASSERT_TRUE(amd_manifest.has_value()) << amd_manifest.error().message();
  ExpectConvertedManifest(*amd_manifest, (*sources_)[0], layout);
}

TEST_F(ConvertPlatformsTest, DockerManifestListSource) {
  auto src = Raw(Ref("multi/v2s2"));
  ASSERT_TRUE(src.has_value()) << src.error().message();
  auto src_doc = ParseJson(*src);
  ASSERT_TRUE(src_doc.has_value());
  ASSERT_STREQ((*src_doc)["mediaType"].GetString(), kMediaTypeDockerManifestList.data());
  ASSERT_EQ((*src_doc)["manifests"].Size(), 3u);
  for (const auto& e : (*src_doc)["manifests"].GetArray()) {
    ASSERT_STREQ(e["mediaType"].GetString(), kMediaTypeDockerManifest.data());
  }

  auto report = Convert({Ref("multi/v2s2"), "oci:" + Dir("v2s2-out") + ":v1"});
  ASSERT_TRUE(report.has_value()) << report.error().message();
  EXPECT_STREQ((*report)["mediaType"].GetString(), kMediaTypeOciIndex.data());
  auto bytes = LayoutBlob(Dir("v2s2-out"), (*report)["digest"].GetString());
  ASSERT_TRUE(bytes.has_value()) << bytes.error().message();
  auto idx = ParseJson(*bytes);
  ASSERT_TRUE(idx.has_value());
  ASSERT_EQ((*idx)["manifests"].Size(), 2u);
  for (rapidjson::SizeType i = 0; i < 2; ++i) {
    const auto& e = (*idx)["manifests"][i];
    EXPECT_EQ(e["platform"]["architecture"].GetString(), (*sources_)[i].arch);
    auto manifest = LayoutBlob(Dir("v2s2-out"), e["digest"].GetString());
    ASSERT_TRUE(manifest.has_value()) << manifest.error().message();
    auto m = ParseJson(*manifest);
    ASSERT_TRUE(m.has_value());
    // An OCI manifest now, with the source's config bytes (so its diff_ids).
    EXPECT_STREQ((*m)["mediaType"].GetString(), kMediaTypeOciManifest.data());
    EXPECT_EQ((*m)["config"]["digest"].GetString(), (*sources_)[i].config_digest.str());
    // The layers are zstd:chunked and decompress to the source diff_ids.
    ASSERT_EQ((*m)["layers"].Size(), 2u);
    for (rapidjson::SizeType k = 0; k < 2; ++k) {
      const auto& l = (*m)["layers"][k];
      EXPECT_STREQ(l["mediaType"].GetString(), kMediaTypeOciLayerZstd.data());
      EXPECT_TRUE(l["annotations"].HasMember(kChecksumKey));
      auto diff = ZstdDecompressedDigest(
          harness::LayoutBlobPath(Dir("v2s2-out"), *Digest::Parse(l["digest"].GetString())));
      ASSERT_TRUE(diff.has_value()) << diff.error().message();
      EXPECT_EQ(*diff, (*sources_)[i].diff_ids[k]);
    }
  }
}

}  // namespace
}  // namespace hoist
