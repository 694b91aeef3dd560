// fetcher/referrers.h and `hoist attach` / `hoist referrers` against the REAL distribution
// registry 2.8 (tests/harness), which has no referrers API: GET /v2/<name>/referrers/<digest>
// answers 404 and a manifest PUT carries no OCI-Subject, so every publish and every listing here
// runs the tag schema fallback (sha256-<hex>). The image is built by the harness and pushed by
// skopeo. Tampering is done the ways an attacker can: bytes changed in the registry's storage
// on disk, and a referrers tag (anyone with push rights can PUT one) listing an artifact of
// another image, or the image itself.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "fetcher/credentials.h"
#include "fetcher/curl_transport.h"
#include "fetcher/manifest.h"
#include "fetcher/reference.h"
#include "fetcher/referrers.h"
#include "fetcher/registry.h"
#include "tests/harness/cli_expect.h"
#include "tests/harness/hoist_cli.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/test_registry.h"

namespace hoist {
namespace {

using harness::ExpectOneLineError;
using harness::FileSpec;
using harness::RunHoist;
using harness::TestRegistry;

constexpr char kTraceType[] = "application/vnd.hoist.access-trace.v1";
constexpr char kTraceBlobType[] = "application/vnd.hoist.access-trace.v1+json";
constexpr char kIndexType[] = "application/vnd.hoist.gzip-index.v1";
constexpr char kIndexBlobType[] = "application/vnd.hoist.gzip-index.v1+binary";

class ReferrersRegistryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto reg = TestRegistry::Launch({});
    ASSERT_TRUE(reg.has_value()) << reg.error().message();
    registry_ = reg->release();
    layout_ = new std::string(std::string(::testing::TempDir()) + "/referrers-layout");
    (void)RemoveTree(*layout_);  // a rerun starts from an empty layout
    // Two images: the subject, and another one whose artifacts must never pass for the first's.
    for (int i = 0; i < 2; ++i) {
      harness::ImageSpec spec;
      spec.tag = i == 0 ? "v1" : "other";
      auto img = harness::BuildOciImage(
          *layout_, {{FileSpec::File("etc/which", i == 0 ? "one\n" : "two\n")}}, spec);
      ASSERT_TRUE(img.has_value()) << img.error().message();
      images_[i] = new harness::BuiltImage(*img);
      auto st = harness::PushOciLayout(img->OciRef(), registry_->DockerRef("ref/app", spec.tag));
      ASSERT_TRUE(st.has_value()) << st.error().message();
    }
  }
  static void TearDownTestSuite() {
    delete registry_;
    for (auto*& img : images_) delete img;
    if (layout_) (void)RemoveTree(*layout_);
    delete layout_;
  }
  void SetUp() override {
    ASSERT_NE(registry_, nullptr);
    auto transport = NewCurlTransport();
    ASSERT_TRUE(transport.has_value()) << transport.error().message();
    RegistryOptions options;
    options.retry.max_attempts = 2;
    client_ = std::make_unique<RegistryClient>(
        std::shared_ptr<HttpTransport>(std::move(*transport)), nullptr, options);
  }

  // A fresh repository per test (the referrers tag is per repository), holding both images.
  Reference Repo(const std::string& name) {
    for (int i = 0; i < 2; ++i) {
      auto st =
          harness::PushOciLayout(images_[i]->OciRef(), registry_->DockerRef(name, images_[i]->tag));
      EXPECT_TRUE(st.has_value()) << st.error().message();
    }
    return *Reference::Parse(registry_->ImageRef(name, "v1"));
  }
  static Descriptor Subject(int i) {
    Descriptor d;
    d.media_type = std::string(kMediaTypeOciManifest);
    d.digest = images_[i]->manifest_digest;
    d.size = static_cast<int64_t>(images_[i]->manifest.size());
    return d;
  }

  static TestRegistry* registry_;
  static harness::BuiltImage* images_[2];
  static std::string* layout_;
  std::unique_ptr<RegistryClient> client_;
};
TestRegistry* ReferrersRegistryTest::registry_ = nullptr;
harness::BuiltImage* ReferrersRegistryTest::images_[2] = {nullptr, nullptr};
std::string* ReferrersRegistryTest::layout_ = nullptr;

TEST_F(ReferrersRegistryTest, AttachListAndFetchThroughTheTagSchema) {
  Reference repo = Repo("ref/roundtrip");
  const Digest subject = images_[0]->manifest_digest;
  const std::string trace = "{\"paths\":[\"/etc/which\",\"/bin/sh\"]}\n";
  std::string index_blob(5000, '\0');
  for (size_t i = 0; i < index_blob.size(); ++i) index_blob[i] = static_cast<char>(i * 131 + 7);

  auto a = PushReferrer(*client_, repo, Subject(0), kTraceType, {{kTraceBlobType, trace, {}}},
                        {{"com.example.node", "n1"}});
  ASSERT_TRUE(a.has_value()) << a.error().message();
  auto b =
      PushReferrer(*client_, repo, Subject(0), kIndexType, {{kIndexBlobType, index_blob, {}}}, {});
  ASSERT_TRUE(b.has_value()) << b.error().message();

  // What the registry holds under each digest hashes to it: the descriptors name exact bytes.
  for (const Descriptor* d : {&*a, &*b}) {
    auto m = client_->GetManifest(repo.WithDigest(d->digest));
    ASSERT_TRUE(m.has_value()) << m.error().message();
    EXPECT_EQ(Digest::Of(m->bytes), d->digest);
    EXPECT_EQ(static_cast<int64_t>(m->bytes.size()), d->size);
    EXPECT_EQ(m->media_type, kMediaTypeOciManifest);
    auto parsed = ParseImageManifest(m->bytes, m->media_type);
    ASSERT_TRUE(parsed.has_value()) << parsed.error().message();
    ASSERT_TRUE(parsed->subject.has_value());
    EXPECT_EQ(parsed->subject->digest, subject);
    EXPECT_EQ(parsed->subject->size, Subject(0).size);
    EXPECT_EQ(parsed->config.digest.str(), kEmptyJsonDigest);
    EXPECT_EQ(parsed->annotations, d->annotations);
    EXPECT_TRUE(d->annotations.contains("org.opencontainers.image.created"));
  }
  auto empty = client_->GetBlob(repo, EmptyJsonDescriptor().digest, 100);
  ASSERT_TRUE(empty.has_value()) << empty.error().message();
  EXPECT_EQ(*empty, "{}");

  // The fallback ran: the API answered 404, the tag holds an OCI index of both.
  auto api = registry_->AccessLogLines("/v2/ref/roundtrip/referrers/" + subject.str());
  ASSERT_TRUE(api.has_value());
  EXPECT_TRUE(api->empty()) << "listing has not run yet";
  auto tags = client_->ListTags(repo);
  ASSERT_TRUE(tags.has_value()) << tags.error().message();
  EXPECT_NE(std::find(tags->begin(), tags->end(), "sha256-" + subject.hex()), tags->end());
  auto tag_index = client_->GetManifest(repo.WithTag(ReferrersTag(subject)));
  ASSERT_TRUE(tag_index.has_value()) << tag_index.error().message();
  EXPECT_EQ(tag_index->media_type, kMediaTypeOciIndex);

  auto all = ListReferrers(*client_, repo, subject, "");
  ASSERT_TRUE(all.has_value()) << all.error().message();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].digest, a->digest);
  EXPECT_EQ((*all)[0].size, a->size);
  EXPECT_EQ((*all)[0].media_type, kMediaTypeOciManifest);
  EXPECT_EQ((*all)[0].artifact_type, kTraceType);
  EXPECT_EQ((*all)[0].annotations, a->annotations);
  EXPECT_EQ((*all)[0].annotations.at("com.example.node"), "n1");
  EXPECT_EQ((*all)[1].digest, b->digest);
  EXPECT_EQ((*all)[1].artifact_type, kIndexType);
  api = registry_->AccessLogLines("/v2/ref/roundtrip/referrers/" + subject.str());
  ASSERT_TRUE(api.has_value());
  ASSERT_FALSE(api->empty());
  EXPECT_NE(api->back().find("\" 404 "), std::string::npos) << api->back();

  auto traces = ListReferrers(*client_, repo, subject, kTraceType);
  ASSERT_TRUE(traces.has_value()) << traces.error().message();
  ASSERT_EQ(traces->size(), 1u);
  EXPECT_EQ((*traces)[0].digest, a->digest);
  auto indexes = ListReferrers(*client_, repo, subject, kIndexType);
  ASSERT_TRUE(indexes.has_value()) << indexes.error().message();
  ASSERT_EQ(indexes->size(), 1u);
  EXPECT_EQ((*indexes)[0].digest, b->digest);
  auto none = ListReferrers(*client_, repo, subject, "application/x-none");
  ASSERT_TRUE(none.has_value()) << none.error().message();
  EXPECT_TRUE(none->empty());
  // The other image has none.
  auto other = ListReferrers(*client_, repo, images_[1]->manifest_digest, "");
  ASSERT_TRUE(other.has_value()) << other.error().message();
  EXPECT_TRUE(other->empty());

  auto got_trace =
      FetchReferrer(*client_, repo, subject, (*traces)[0], kTraceType, kTraceBlobType, 1 << 20);
  ASSERT_TRUE(got_trace.has_value()) << got_trace.error().message();
  EXPECT_EQ(got_trace->data, trace);
  EXPECT_EQ(got_trace->descriptor.digest, a->digest);
  auto got_index =
      FetchReferrer(*client_, repo, subject, (*indexes)[0], kIndexType, kIndexBlobType, 1 << 20);
  ASSERT_TRUE(got_index.has_value()) << got_index.error().message();
  EXPECT_EQ(got_index->data, index_blob);

  // Publishing the same artifact again lists it once.
  auto again = PushReferrer(*client_, repo, Subject(0), kTraceType, {{kTraceBlobType, trace, {}}},
                            a->annotations);
  ASSERT_TRUE(again.has_value()) << again.error().message();
  EXPECT_EQ(again->digest, a->digest);
  all = ListReferrers(*client_, repo, subject, "");
  ASSERT_TRUE(all.has_value()) << all.error().message();
  EXPECT_EQ(all->size(), 2u);
}

TEST_F(ReferrersRegistryTest, BlobChangedOnDiskIsRefused) {
  Reference repo = Repo("ref/tampered-blob");
  const Digest subject = images_[0]->manifest_digest;
  const std::string trace = "the real trace, 32 bytes long..\n";
  auto a = PushReferrer(*client_, repo, Subject(0), kTraceType, {{kTraceBlobType, trace, {}}}, {});
  ASSERT_TRUE(a.has_value()) << a.error().message();
  std::string forged = trace;
  forged[4] = 'F';
  ASSERT_TRUE(WriteFileAtomic(registry_->BlobPath(Digest::Of(trace).str()), forged).has_value());

  auto list = ListReferrers(*client_, repo, subject, kTraceType);
  ASSERT_TRUE(list.has_value()) << list.error().message();
  ASSERT_EQ(list->size(), 1u);
  auto got = FetchReferrer(*client_, repo, subject, (*list)[0], kTraceType, kTraceBlobType, 1000);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), EIO);
  EXPECT_NE(got.error().message().find("digest mismatch"), std::string::npos)
      << got.error().message();
  EXPECT_EQ(got.error().message().find('\n'), std::string::npos);
}

TEST_F(ReferrersRegistryTest, ManifestChangedOnDiskIsRefused) {
  Reference repo = Repo("ref/tampered-manifest");
  const Digest subject = images_[0]->manifest_digest;
  auto a = PushReferrer(*client_, repo, Subject(0), kTraceType, {{kTraceBlobType, "t", {}}}, {});
  ASSERT_TRUE(a.has_value()) << a.error().message();
  // The registry keeps manifests as blobs too; change the artifact's artifactType in place.
  std::string path = registry_->BlobPath(a->digest.str());
  auto bytes = ReadFile(path);
  ASSERT_TRUE(bytes.has_value()) << bytes.error().message();
  std::string forged = *bytes;
  forged.replace(forged.find("access-trace.v1\""), 15, "access-trace.v2");
  ASSERT_TRUE(WriteFileAtomic(path, forged).has_value());

  auto list = ListReferrers(*client_, repo, subject, "");
  ASSERT_TRUE(list.has_value()) << list.error().message();
  ASSERT_EQ(list->size(), 1u);
  auto got = FetchReferrer(*client_, repo, subject, (*list)[0], kTraceType, kTraceBlobType, 1000);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), EIO) << got.error().message();
  EXPECT_NE(got.error().message().find("digest mismatch"), std::string::npos)
      << got.error().message();
  EXPECT_EQ(got.error().message().find('\n'), std::string::npos);
}

TEST_F(ReferrersRegistryTest, ForgedTagIndexCannotLendAnotherImagesArtifact) {
  Reference repo = Repo("ref/forged-index");
  const Digest subject = images_[0]->manifest_digest;
  // A genuine artifact of the OTHER image.
  auto foreign =
      PushReferrer(*client_, repo, Subject(1), kTraceType, {{kTraceBlobType, "bad trace", {}}}, {});
  ASSERT_TRUE(foreign.has_value()) << foreign.error().message();
  // Whoever can push writes the first image's referrers tag by hand: it lists that artifact,
  // and the first image's own manifest dressed up as a trace.
  std::string index =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)"
      R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
      foreign->digest.str() + R"(","size":)" + std::to_string(foreign->size) +
      R"(,"artifactType":")" + kTraceType +
      R"("},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + subject.str() +
      R"(","size":)" + std::to_string(Subject(0).size) + R"(,"artifactType":")" + kTraceType +
      R"("}]})";
  auto put = client_->PutManifest(repo.WithTag(ReferrersTag(subject)), kMediaTypeOciIndex, index);
  ASSERT_TRUE(put.has_value()) << put.error().message();

  // Listing reports the claims; fetching refuses both.
  auto list = ListReferrers(*client_, repo, subject, kTraceType);
  ASSERT_TRUE(list.has_value()) << list.error().message();
  ASSERT_EQ(list->size(), 2u);
  auto got = FetchReferrer(*client_, repo, subject, (*list)[0], kTraceType, kTraceBlobType, 1000);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), EBADMSG);
  EXPECT_NE(got.error().message().find("refers to " + images_[1]->manifest_digest.str() +
                                       ", not to " + subject.str()),
            std::string::npos)
      << got.error().message();
  EXPECT_EQ(got.error().message().find('\n'), std::string::npos);
  got = FetchReferrer(*client_, repo, subject, (*list)[1], kTraceType, kTraceBlobType, 1000);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), EBADMSG);
  EXPECT_NE(got.error().message().find("has no subject"), std::string::npos)
      << got.error().message();

  // The next genuine publish keeps the forged entries (it cannot tell) and adds its own, which
  // fetches fine.
  auto mine =
      PushReferrer(*client_, repo, Subject(0), kTraceType, {{kTraceBlobType, "good", {}}}, {});
  ASSERT_TRUE(mine.has_value()) << mine.error().message();
  list = ListReferrers(*client_, repo, subject, kTraceType);
  ASSERT_TRUE(list.has_value()) << list.error().message();
  ASSERT_EQ(list->size(), 3u);
  got = FetchReferrer(*client_, repo, subject, (*list)[2], kTraceType, kTraceBlobType, 1000);
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(got->data, "good");
}

// Bearer tokens: the tag GET and the referrers GET need pull, the PUTs push; the token flow
// widens the scopes as the registry asks.
TEST(ReferrersTokenTest, RoundTripWithBearerAuth) {
  auto reg = TestRegistry::Launch({.auth = harness::RegistryAuthMode::kToken});
  ASSERT_TRUE(reg.has_value()) << reg.error().message();
  std::string layout = std::string(::testing::TempDir()) + "/referrers-token-layout";
  (void)RemoveTree(layout);
  auto img = harness::BuildOciImage(layout, {{FileSpec::File("a", "a\n")}}, {.tag = "v1"});
  ASSERT_TRUE(img.has_value()) << img.error().message();
  auto st = harness::PushOciLayout(img->OciRef(), (*reg)->DockerRef("ref/auth", "v1"),
                                   {.creds = (*reg)->skopeo_creds()});
  ASSERT_TRUE(st.has_value()) << st.error().message();
  auto transport = NewCurlTransport();
  ASSERT_TRUE(transport.has_value()) << transport.error().message();
  std::map<std::string, Credential, std::less<>> creds;
  creds[(*reg)->host_port()] =
      Credential{.username = (*reg)->user(), .password = (*reg)->password()};
  RegistryClient client(std::shared_ptr<HttpTransport>(std::move(*transport)),
                        std::make_shared<StaticCredentialStore>(creds));
  Reference repo = *Reference::Parse((*reg)->ImageRef("ref/auth", "v1"));
  Descriptor subject{.media_type = std::string(kMediaTypeOciManifest),
                     .digest = img->manifest_digest,
                     .size = static_cast<int64_t>(img->manifest.size())};
  auto pushed = PushReferrer(client, repo, subject, kTraceType, {{kTraceBlobType, "tr", {}}}, {});
  ASSERT_TRUE(pushed.has_value()) << pushed.error().message();
  auto list = ListReferrers(client, repo, subject.digest, kTraceType);
  ASSERT_TRUE(list.has_value()) << list.error().message();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].digest, pushed->digest);
  auto got =
      FetchReferrer(client, repo, subject.digest, (*list)[0], kTraceType, kTraceBlobType, 100);
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(got->data, "tr");

  // Without credentials: refused (EACCES), not mistaken for "no referrers".
  auto anonymous_transport = NewCurlTransport();
  ASSERT_TRUE(anonymous_transport.has_value());
  RegistryClient anonymous(std::shared_ptr<HttpTransport>(std::move(*anonymous_transport)),
                           nullptr);
  auto refused = ListReferrers(anonymous, repo, subject.digest, "");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), EACCES) << refused.error().message();
  (void)RemoveTree(layout);
}

TEST_F(ReferrersRegistryTest, CliAttachAndReferrers) {
  Reference repo = Repo("ref/cli");
  const Digest subject = images_[0]->manifest_digest;
  std::string image = registry_->ImageRef("ref/cli", "v1");
  std::string file = std::string(::testing::TempDir()) + "/referrers-trace.json";
  ASSERT_TRUE(WriteFileAtomic(file, "[\"/etc/which\"]\n").has_value());

  auto attached = RunHoist({"attach", "--artifact-type", kTraceType, "--annotation",
                            "com.example.k=v", image, file + ":" + kTraceBlobType});
  ASSERT_TRUE(attached.ok()) << attached.stderr_text;
  std::string prefix = "Attached to " + repo.WithDigest(subject).String() + "\nDigest: sha256:";
  ASSERT_EQ(attached.stdout_text.rfind(prefix, 0), 0u) << attached.stdout_text;
  auto digest = Digest::Parse(attached.stdout_text.substr(prefix.size() - 7, 71));
  ASSERT_TRUE(digest.has_value()) << attached.stdout_text;
  auto other = RunHoist({"attach", "--artifact-type", kIndexType, image, file});
  ASSERT_TRUE(other.ok()) << other.stderr_text;

  auto json = RunHoist({"referrers", "--json", "--artifact-type", kTraceType, image});
  ASSERT_TRUE(json.ok()) << json.stderr_text;
  rapidjson::Document doc;
  doc.Parse(json.stdout_text.c_str());
  ASSERT_TRUE(doc.IsObject()) << json.stdout_text;
  EXPECT_EQ(doc["digest"].GetString(), subject.str());
  EXPECT_EQ(doc["reference"].GetString(), repo.WithDigest(subject).String());
  ASSERT_EQ(doc["manifests"].Size(), 1u) << json.stdout_text;
  const auto& m = doc["manifests"][0];
  EXPECT_EQ(m["digest"].GetString(), digest->str());
  EXPECT_STREQ(m["artifactType"].GetString(), kTraceType);
  EXPECT_STREQ(m["mediaType"].GetString(), "application/vnd.oci.image.manifest.v1+json");
  EXPECT_STREQ(m["annotations"]["com.example.k"].GetString(), "v");
  EXPECT_TRUE(m["annotations"].HasMember("org.opencontainers.image.created"));
  EXPECT_EQ(m["reference"].GetString(), repo.WithDigest(*digest).String());

  // The artifact's layer is the file, typed and titled as oras does.
  auto fetched = FetchReferrer(*client_, repo, subject,
                               {.media_type = std::string(kMediaTypeOciManifest),
                                .digest = *digest,
                                .size = m["size"].GetInt64()},
                               kTraceType, kTraceBlobType, 1000);
  ASSERT_TRUE(fetched.has_value()) << fetched.error().message();
  EXPECT_EQ(fetched->data, "[\"/etc/which\"]\n");
  EXPECT_EQ(fetched->blob.annotations.at("org.opencontainers.image.title"), "referrers-trace.json");

  auto text = RunHoist({"referrers", image});
  ASSERT_TRUE(text.ok()) << text.stderr_text;
  EXPECT_EQ(text.stdout_text.rfind("DIGEST ", 0), 0u) << text.stdout_text;
  EXPECT_NE(text.stdout_text.find(digest->str() + " "), std::string::npos) << text.stdout_text;
  EXPECT_NE(text.stdout_text.find(kIndexType), std::string::npos) << text.stdout_text;
  EXPECT_EQ(std::count(text.stdout_text.begin(), text.stdout_text.end(), '\n'), 3);

  ExpectOneLineError(RunHoist({"referrers", registry_->ImageRef("ref/cli", "nope")}), "referrers",
                     "404");
  ExpectOneLineError(RunHoist({"attach", "--artifact-type", kTraceType, image, "/nonexistent"}),
                     "attach", "/nonexistent");
  ExpectOneLineError(
      RunHoist({"attach", "--artifact-type", kTraceType, "--annotation", "novalue", image, file}),
      "attach", "novalue");
}

}  // namespace
}  // namespace hoist
