// RegistryClient against the REAL distribution registry 2.8 (tests/harness): anonymous, Basic
// (htpasswd) and Bearer (token server) auth, token expiry and refresh, manifest and blob round
// trips (monolithic, chunked, cross-repository mount), platform choice from an index, Range reads
// checked byte for byte and in the registry's own log, tag and catalog listing with pagination,
// and the errnos of failures (ENOENT, EACCES).
//
// Images are built by the harness (GNU tar) and pushed by skopeo, so what the client reads was
// written by a real tool, and what the client pushes is read back by skopeo.
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/digest.h"
#include "base/file_util.h"
#include "fetcher/credentials.h"
#include "fetcher/curl_transport.h"
#include "fetcher/manifest.h"
#include "fetcher/reference.h"
#include "fetcher/registry.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"

namespace hoist {
namespace {

using harness::BuiltImage;
using harness::BuiltIndex;
using harness::FileSpec;
using harness::LayerCompression;
using harness::LayerSpec;
using harness::RegistryAuthMode;
using harness::TestRegistry;
using ::testing::HasSubstr;

constexpr uint64_t kBigFileSize = 1536 * 1024 + 17;

std::string MakeTempDir(const std::string& name) {
  std::string templ = "/tmp/hoist-client-" + name + "-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return "";
  return templ;
}

Reference Ref(const TestRegistry& reg, const std::string& repo, const std::string& tag = "latest") {
  auto ref = Reference::Parse(reg.ImageRef(repo, tag));
  EXPECT_TRUE(ref.has_value()) << ref.error().message();
  return ref.value_or(Reference{});
}

// A client on the real curl transport, with `user`/`password` for this registry (empty: none).
std::unique_ptr<RegistryClient> MakeClient(const TestRegistry& reg, const std::string& user,
                                           const std::string& password) {
  auto transport = NewCurlTransport();
  EXPECT_TRUE(transport.has_value()) << transport.error().message();
  if (!transport) return nullptr;
  std::map<std::string, Credential, std::less<>> entries;
  if (!user.empty()) entries[reg.host_port()] = Credential{.username = user, .password = password};
  RegistryOptions options;
  options.platform = Platform{.os = "linux", .architecture = "amd64"};
  options.retry.max_attempts = 2;  // the registry is local: failures are real, not transient
  options.retry.total_budget = std::chrono::milliseconds(10000);
  return std::make_unique<RegistryClient>(std::shared_ptr<HttpTransport>(std::move(*transport)),
                                          std::make_shared<StaticCredentialStore>(entries),
                                          options);
}

std::vector<LayerSpec> TestLayers() {
  return {
      LayerSpec({FileSpec::Dir("etc"), FileSpec::File("etc/hostname", "hoist\n"),
                 FileSpec::File("bin/tool", "#!/bin/sh\necho hi\n", 0755)}),
      // Uncompressed, so the blob is big and its bytes are easy to predict.
      LayerSpec({FileSpec::BigFile("data/big", kBigFileSize, 42)}, LayerCompression::kNone),
  };
}

std::string Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  std::string out;
  for (const std::string& s : v) out += s + ",";
  return out;
}

// ---------------------------------------------------------------------------------------------
// One registry per auth mode, one pushed image and one pushed two-platform index, shared by the
// tests of the suite (the tests only add repositories and tags of their own).
class RegistryFixture {
 public:
  explicit RegistryFixture(RegistryAuthMode mode) {
    Status tools = harness::RequirePrograms({"docker-registry", "skopeo", "tar", "gzip"});
    if (!tools) {
      error = tools.error().message();
      return;
    }
    auto reg = TestRegistry::Launch({.auth = mode});
    if (!reg) {
      error = reg.error().message();
      return;
    }
    registry = std::move(*reg);
    work = MakeTempDir("work");
    auto built = harness::BuildOciImage(work + "/layout", TestLayers(), {.tag = "v1"});
    if (!built) {
      error = built.error().message();
      return;
    }
    image = *built;
    auto index_built = harness::BuildOciIndex(
        work + "/multi",
        {{{.architecture = "amd64"}, {{FileSpec::File("arch", "amd64\n")}}},
         {{.architecture = "arm64", .variant = "v8"}, {{FileSpec::File("arch", "arm64\n")}}}},
        "multi");
    if (!index_built) {
      error = index_built.error().message();
      return;
    }
    index = *index_built;
    harness::PushOptions push{.creds = registry->skopeo_creds()};
    Status pushed =
        harness::PushOciLayout(image.OciRef(), registry->DockerRef("test/img", "v1"), push);
    if (pushed) {
      push.all = true;
      pushed =
          harness::PushOciLayout(index.OciRef(), registry->DockerRef("test/multi", "multi"), push);
    }
    if (!pushed) error = pushed.error().message();
  }
  ~RegistryFixture() {
    registry.reset();
    if (!work.empty()) (void)RemoveTree(work);
  }

  std::string error;  // non-empty: setup failed (the tests then fail with it)
  std::unique_ptr<TestRegistry> registry;
  std::string work;
  BuiltImage image;
  BuiltIndex index;
};

template <RegistryAuthMode kMode>
class RegistrySuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { fixture_ = new RegistryFixture(kMode); }
  static void TearDownTestSuite() {
    delete fixture_;
    fixture_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(fixture_ != nullptr && fixture_->error.empty())
        << "registry fixture: " << (fixture_ ? fixture_->error : "missing");
  }
  TestRegistry& reg() { return *fixture_->registry; }
  const BuiltImage& image() { return fixture_->image; }
  const BuiltIndex& index() { return fixture_->index; }
  std::unique_ptr<RegistryClient> GoodClient() {
    return MakeClient(reg(), reg().user(), reg().password());
  }
  std::string LayerBytes(size_t i) {
    auto bytes = ReadFile(image().layers[i].blob_path);
    EXPECT_TRUE(bytes.has_value());
    return bytes.value_or("");
  }

  static RegistryFixture* fixture_;
};
template <RegistryAuthMode kMode>
RegistryFixture* RegistrySuite<kMode>::fixture_ = nullptr;

using AnonymousClientTest = RegistrySuite<RegistryAuthMode::kAnonymous>;
using BasicClientTest = RegistrySuite<RegistryAuthMode::kBasic>;
using TokenClientTest = RegistrySuite<RegistryAuthMode::kToken>;

// ---------------------------------------------------------------------------------------------
// Anonymous

TEST_F(AnonymousClientTest, GetManifestReturnsThePushedBytes) {
  auto client = GoodClient();
  auto m = client->GetManifest(Ref(reg(), "test/img", "v1"));
  ASSERT_TRUE(m.has_value()) << m.error().message();
  EXPECT_EQ(m->bytes, image().manifest);
  EXPECT_EQ(m->digest, image().manifest_digest);
  EXPECT_EQ(m->media_type, "application/vnd.oci.image.manifest.v1+json");

  auto by_digest = client->GetManifest(Ref(reg(), "test/img").WithDigest(image().manifest_digest));
  ASSERT_TRUE(by_digest.has_value()) << by_digest.error().message();
  EXPECT_EQ(by_digest->bytes, image().manifest);

  auto head = client->HeadManifest(Ref(reg(), "test/img", "v1"));
  ASSERT_TRUE(head.has_value()) << head.error().message();
  EXPECT_EQ(head->digest, image().manifest_digest);
  EXPECT_EQ(head->size, static_cast<int64_t>(image().manifest.size()));
}

TEST_F(AnonymousClientTest, ResolveReadsManifestAndConfig) {
  auto client = GoodClient();
  auto r = client->Resolve(Ref(reg(), "test/img", "v1"));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_FALSE(r->index.has_value());
  EXPECT_EQ(r->manifest_bytes.bytes, image().manifest);
  EXPECT_EQ(r->config.raw, image().config);
  ASSERT_EQ(r->manifest.layers.size(), 2u);
  EXPECT_EQ(r->manifest.layers[1].digest, image().layers[1].digest);
  EXPECT_EQ(r->manifest.layers[1].media_type, "application/vnd.oci.image.layer.v1.tar");
  ASSERT_EQ(r->config.diff_ids.size(), 2u);
  EXPECT_EQ(r->config.diff_ids[0], image().layers[0].diff_id);
}

TEST_F(AnonymousClientTest, ResolvePicksThePlatformFromAnIndex) {
  auto client = GoodClient();
  const Reference multi = Ref(reg(), "test/multi", "multi");
  for (size_t i = 0; i < 2; ++i) {
    Platform platform = i == 0 ? Platform{.os = "linux", .architecture = "amd64"}
                               : Platform{.os = "linux", .architecture = "arm64", .variant = "v8"};
    auto r = client->Resolve(multi, platform);
    ASSERT_TRUE(r.has_value()) << platform.String() << ": " << r.error().message();
    ASSERT_TRUE(r->index.has_value());
    EXPECT_EQ(r->index->bytes, index().index);
    EXPECT_EQ(r->index->digest, index().index_digest);
    EXPECT_EQ(r->manifest_bytes.bytes, index().images[i].manifest) << platform.String();
    EXPECT_EQ(r->manifest_bytes.digest, index().images[i].manifest_digest);
    EXPECT_EQ(r->config.architecture, platform.architecture);
  }
  // The client's default platform (linux/amd64 here).
  auto by_default = client->Resolve(multi);
  ASSERT_TRUE(by_default.has_value()) << by_default.error().message();
  EXPECT_EQ(by_default->manifest_bytes.digest, index().images[0].manifest_digest);

  auto missing = client->Resolve(multi, Platform{.os = "linux", .architecture = "s390x"});
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), ENOENT);
  EXPECT_THAT(missing.error().message(), HasSubstr("s390x"));
  EXPECT_THAT(missing.error().message(), HasSubstr("linux/arm64"));
}

TEST_F(AnonymousClientTest, WholeBlobReadsMatch) {
  auto client = GoodClient();
  const Reference repo = Ref(reg(), "test/img");
  for (size_t i = 0; i < image().layers.size(); ++i) {
    const auto& layer = image().layers[i];
    auto blob = client->GetBlob(repo, layer.digest, 16 << 20);
    ASSERT_TRUE(blob.has_value()) << blob.error().message();
    EXPECT_EQ(*blob, LayerBytes(i));
    auto size = client->BlobSize(repo, layer.digest);
    ASSERT_TRUE(size.has_value()) << size.error().message();
    EXPECT_EQ(*size, layer.size);
    std::string streamed;
    Status fetched = client->FetchBlob(
        repo, layer.digest,
        [&](std::string_view chunk) -> Status {
          streamed.append(chunk);
          return Ok();
        },
        [&] { streamed.clear(); });
    ASSERT_TRUE(fetched.has_value()) << fetched.error().message();
    EXPECT_EQ(Digest::Of(streamed), layer.digest);
  }
  auto too_small = client->GetBlob(repo, image().layers[1].digest, 1000);
  ASSERT_FALSE(too_small.has_value());
  EXPECT_EQ(too_small.error().code(), EFBIG);
}

TEST_F(AnonymousClientTest, RangeReadsEqualTheBlobBytesAndAreRangeRequests) {
  auto client = GoodClient();
  const auto& layer = image().layers[1];
  const std::string blob = LayerBytes(1);
  ASSERT_EQ(blob.size(), layer.size);
  auto source = client->OpenBlobSource(Ref(reg(), "test/img"));
  ASSERT_NE(source, nullptr);
  auto size = source->Size(layer.digest);
  ASSERT_TRUE(size.has_value()) << size.error().message();
  EXPECT_EQ(*size, layer.size);

  const std::vector<ByteRange> ranges = {
      {0, 1},                     // first byte
      {layer.size - 1, 1},        // last byte
      {layer.size - 1000, 1000},  // the tail
      {512, 4096},                // a tar header and file data
      {1 << 20, 65536},           // 1 MiB in
      {12345, 1},                 // odd offset, one byte
      {0, layer.size},            // the whole blob as one range
  };
  const uint64_t mark = reg().LogMark();
  for (const ByteRange& r : ranges) {
    auto got = source->ReadAt(layer.digest, r.offset, r.length);
    ASSERT_TRUE(got.has_value()) << r.offset << "+" << r.length << ": " << got.error().message();
    ASSERT_EQ(got->size(), r.length);
    EXPECT_TRUE(*got == blob.substr(r.offset, r.length)) << "bytes differ at " << r.offset;
  }
  // The registry saw Range requests for exactly these offsets and lengths (not whole-blob GETs).
  auto requests = reg().Requests(mark);
  ASSERT_TRUE(requests.has_value()) << requests.error().message();
  std::multiset<std::pair<uint64_t, uint64_t>> served;
  for (const auto& req : *requests) {
    if (req.IsBlobGet() && (req.status == 206 || req.status == 200)) {
      served.insert({req.read_offset.value_or(UINT64_MAX), req.bytes_written});
    }
  }
  std::multiset<std::pair<uint64_t, uint64_t>> asked;
  for (const ByteRange& r : ranges) asked.insert({r.offset, r.length});
  EXPECT_EQ(served, asked);
}

TEST_F(AnonymousClientTest, ConcurrentRangeReadsEqualTheBlobBytes) {
  auto client = GoodClient();
  const auto& layer = image().layers[1];
  const std::string blob = LayerBytes(1);
  auto source = client->OpenBlobSource(Ref(reg(), "test/img"));
  std::vector<ByteRange> ranges;
  for (uint64_t i = 0; i < 24; ++i) {
    uint64_t offset = (i * 65537 * 3) % (layer.size - 1);
    ranges.push_back({offset, std::min<uint64_t>(1 + i * 997, layer.size - offset)});
  }
  ranges.push_back({layer.size - 1, 1});
  auto results = source->ReadRanges(layer.digest, ranges);
  ASSERT_EQ(results.size(), ranges.size());
  for (size_t i = 0; i < ranges.size(); ++i) {
    ASSERT_TRUE(results[i].has_value()) << i << ": " << results[i].error().message();
    EXPECT_TRUE(*results[i] == blob.substr(ranges[i].offset, ranges[i].length)) << "range " << i;
  }
  // Many threads sharing one source, each with its own ReadAt calls.
  std::vector<std::thread> threads;
  std::vector<int> bad(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < 6; ++k) {
        uint64_t offset = (static_cast<uint64_t>(t) * 200003 + k * 7919) % (layer.size - 4096);
        auto got = source->ReadAt(layer.digest, offset, 4096);
        if (!got || *got != blob.substr(offset, 4096)) ++bad[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, std::vector<int>(8, 0));
}

TEST_F(AnonymousClientTest, MissingTagIsENOENTWithAClearMessage) {
  auto client = GoodClient();
  auto m = client->GetManifest(Ref(reg(), "test/img", "no-such-tag"));
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code(), ENOENT);
  EXPECT_THAT(m.error().message(), HasSubstr("test/img"));
  EXPECT_THAT(m.error().message(), HasSubstr("no-such-tag"));
  EXPECT_THAT(m.error().message(), HasSubstr("404"));
  EXPECT_EQ(m.error().message().find('\n'), std::string::npos);

  auto repo = client->GetManifest(Ref(reg(), "test/no-such-repo", "v1"));
  ASSERT_FALSE(repo.has_value());
  EXPECT_EQ(repo.error().code(), ENOENT);

  const Digest absent = Digest::Of("not in the registry");
  auto source = client->OpenBlobSource(Ref(reg(), "test/img"));
  auto read = source->ReadAt(absent, 0, 10);
  ASSERT_FALSE(read.has_value());
  EXPECT_EQ(read.error().code(), ENOENT);
  auto exists = client->BlobExists(Ref(reg(), "test/img"), absent);
  ASSERT_TRUE(exists.has_value()) << exists.error().message();
  EXPECT_FALSE(*exists);
  auto size = client->BlobSize(Ref(reg(), "test/img"), absent);
  ASSERT_FALSE(size.has_value());
  EXPECT_EQ(size.error().code(), ENOENT);
}

// Pushes a config and two layers (one monolithic, one chunked) and a manifest with the client;
// returns the manifest bytes.
std::string PushWithClient(RegistryClient& client, const Reference& target, uint32_t seed) {
  const std::string small = harness::PatternBytes(seed, 0, 100000);
  const std::string big = harness::PatternBytes(seed + 1, 0, (3 << 20) + 123);
  const std::string config =
      R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}})";
  const Digest small_d = Digest::Of(small), big_d = Digest::Of(big), config_d = Digest::Of(config);
  Status s = client.UploadBlob(target, small_d, small);
  EXPECT_TRUE(s.has_value()) << s.error().message();
  size_t pos = 0;
  s = client.UploadBlobChunked(
      target, big_d, big.size(),
      [&](char* buf, size_t max) -> Result<size_t> {
        size_t n = std::min(max, big.size() - pos);
        std::copy_n(big.data() + pos, n, buf);
        pos += n;
        return n;
      },
      1 << 20);
  EXPECT_TRUE(s.has_value()) << s.error().message();
  s = client.UploadBlob(target, config_d, config);
  EXPECT_TRUE(s.has_value()) << s.error().message();
  std::string manifest =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
      R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
      config_d.str() + R"(","size":)" + std::to_string(config.size()) +
      R"(},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" +
      small_d.str() + R"(","size":)" + std::to_string(small.size()) +
      R"(},{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":")" + big_d.str() +
      R"(","size":)" + std::to_string(big.size()) + "}]}";
  auto put = client.PutManifest(target, "application/vnd.oci.image.manifest.v1+json", manifest);
  EXPECT_TRUE(put.has_value()) << put.error().message();
  if (put) {
    EXPECT_EQ(*put, Digest::Of(manifest));
  }
  return manifest;
}

TEST_F(AnonymousClientTest, PushRoundTripReadBackByClientAndSkopeo) {
  auto client = GoodClient();
  const Reference target = Ref(reg(), "client/pushed", "v1");
  const std::string manifest = PushWithClient(*client, target, 100);

  auto back = client->GetManifest(target);
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->bytes, manifest);
  auto skopeo = harness::RunChecked(
      {"skopeo", "inspect", "--raw", "--tls-verify=false", reg().DockerRef("client/pushed", "v1")});
  ASSERT_TRUE(skopeo.has_value()) << skopeo.error().message();
  EXPECT_EQ(*skopeo, manifest);

  const std::string big = harness::PatternBytes(101, 0, (3 << 20) + 123);
  auto blob = client->GetBlob(target, Digest::Of(big), 8 << 20);
  ASSERT_TRUE(blob.has_value()) << blob.error().message();
  EXPECT_TRUE(*blob == big);
  auto on_disk = ReadFile(reg().BlobPath(Digest::Of(big).str()));
  ASSERT_TRUE(on_disk.has_value());
  EXPECT_TRUE(*on_disk == big);

  // Pushing the same blob again is harmless (the client may skip it).
  EXPECT_TRUE(client->UploadBlob(target, Digest::Of(big), big).has_value());

  // Tag the manifest under a second name.
  Status tagged = client->Tag(target, "v2");
  ASSERT_TRUE(tagged.has_value()) << tagged.error().message();
  auto v2 = client->GetManifest(target.WithTag("v2"));
  ASSERT_TRUE(v2.has_value()) << v2.error().message();
  EXPECT_EQ(v2->bytes, manifest);
}

TEST_F(AnonymousClientTest, UploadWithWrongDigestIsRefused) {
  auto client = GoodClient();
  Status s = client->UploadBlob(Ref(reg(), "client/bad"), Digest::Of("other bytes"), "these bytes");
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().code(), 0);
  auto exists = client->BlobExists(Ref(reg(), "client/bad"), Digest::Of("other bytes"));
  ASSERT_TRUE(exists.has_value());
  EXPECT_FALSE(*exists);
}

TEST_F(AnonymousClientTest, CrossRepositoryMount) {
  auto client = GoodClient();
  const auto& layer = image().layers[1];
  const Reference dst = Ref(reg(), "client/mounted");
  auto before = client->BlobExists(dst, layer.digest);
  ASSERT_TRUE(before.has_value());
  EXPECT_FALSE(*before);
  auto mounted = client->MountBlob(dst, layer.digest, "test/img");
  ASSERT_TRUE(mounted.has_value()) << mounted.error().message();
  EXPECT_TRUE(*mounted);
  auto after = client->BlobExists(dst, layer.digest);
  ASSERT_TRUE(after.has_value());
  EXPECT_TRUE(*after);
  auto bytes = client->GetBlob(dst, layer.digest, 16 << 20);
  ASSERT_TRUE(bytes.has_value()) << bytes.error().message();
  EXPECT_EQ(Digest::Of(*bytes), layer.digest);

  // The source repository does not have this blob: the registry opens an upload instead.
  auto not_mounted =
      client->MountBlob(Ref(reg(), "client/mounted2"), Digest::Of("absent blob"), "test/img");
  ASSERT_TRUE(not_mounted.has_value()) << not_mounted.error().message();
  EXPECT_FALSE(*not_mounted);
}

TEST_F(AnonymousClientTest, ListTagsReturnsEveryTagWithSmallPages) {
  auto client = GoodClient();
  const Reference base = Ref(reg(), "client/tags", "t0");
  PushWithClient(*client, base, 200);
  std::vector<std::string> expected = {"t0"};
  for (int i = 1; i < 7; ++i) {
    std::string tag = "t" + std::to_string(i);
    ASSERT_TRUE(client->Tag(base, tag).has_value());
    expected.push_back(tag);
  }
  // Registry 2.8 ignores `n` for tags/list (no Link header): the client must still return all.
  auto paged = client->ListTags(base, 3);
  ASSERT_TRUE(paged.has_value()) << paged.error().message();
  EXPECT_EQ(Sorted(*paged), Sorted(expected));
  auto all = client->ListTags(base);
  ASSERT_TRUE(all.has_value()) << all.error().message();
  EXPECT_EQ(Sorted(*all), Sorted(expected));

  auto missing = client->ListTags(Ref(reg(), "client/no-such-repo"));
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), ENOENT);
}

TEST_F(AnonymousClientTest, CatalogFollowsLinkPagination) {
  auto client = GoodClient();
  // Five more repositories (by mounting one blob into each) beside those of the other tests.
  for (int i = 0; i < 5; ++i) {
    auto m = client->MountBlob(Ref(reg(), "catalog/r" + std::to_string(i)),
                               image().layers[0].digest, "test/img");
    ASSERT_TRUE(m.has_value() && *m);
  }
  auto all = client->Catalog(reg().host_port());
  ASSERT_TRUE(all.has_value()) << all.error().message();
  for (int i = 0; i < 5; ++i) {
    EXPECT_THAT(*all, ::testing::Contains("catalog/r" + std::to_string(i)));
  }
  EXPECT_THAT(*all, ::testing::Contains("test/img"));

  const uint64_t mark = reg().LogMark();
  auto paged = client->Catalog(reg().host_port(), 2);
  ASSERT_TRUE(paged.has_value()) << paged.error().message();
  EXPECT_EQ(Sorted(*paged), Sorted(*all));
  // The registry served it in pages of 2: ceil(N / 2) requests, at least one with `last=`.
  auto requests = reg().Requests(mark);
  ASSERT_TRUE(requests.has_value());
  size_t pages = 0, with_last = 0;
  for (const auto& r : *requests) {
    if (r.uri.find("/v2/_catalog") == 0 && r.status == 200) {
      ++pages;
      with_last += r.uri.find("last=") != std::string::npos;
    }
  }
  EXPECT_GE(pages, (all->size() + 1) / 2);
  EXPECT_GE(with_last, 1u);
}

// ---------------------------------------------------------------------------------------------
// Basic (htpasswd)

TEST_F(BasicClientTest, RightCredentialsWork) {
  auto client = GoodClient();
  auto m = client->GetManifest(Ref(reg(), "test/img", "v1"));
  ASSERT_TRUE(m.has_value()) << m.error().message();
  EXPECT_EQ(m->bytes, image().manifest);
  auto source = client->OpenBlobSource(Ref(reg(), "test/img"));
  const std::string blob = LayerBytes(1);
  auto tail = source->ReadAt(image().layers[1].digest, blob.size() - 100, 100);
  ASSERT_TRUE(tail.has_value()) << tail.error().message();
  EXPECT_EQ(*tail, blob.substr(blob.size() - 100));

  const std::string manifest = PushWithClient(*client, Ref(reg(), "client/basic", "v1"), 300);
  auto back = client->GetManifest(Ref(reg(), "client/basic", "v1"));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->bytes, manifest);
}

TEST_F(BasicClientTest, WrongOrMissingCredentialsAreEACCES) {
  for (const std::string& password : {std::string("wrong"), std::string()}) {
    auto client = MakeClient(reg(), password.empty() ? "" : reg().user(), password);
    auto m = client->GetManifest(Ref(reg(), "test/img", "v1"));
    ASSERT_FALSE(m.has_value()) << "password '" << password << "'";
    EXPECT_EQ(m.error().code(), EACCES) << m.error().message();
    EXPECT_THAT(m.error().message(), HasSubstr(reg().host_port()));
    EXPECT_EQ(m.error().message().find('\n'), std::string::npos);
    auto source = client->OpenBlobSource(Ref(reg(), "test/img"));
    auto read = source->ReadAt(image().layers[1].digest, 0, 10);
    ASSERT_FALSE(read.has_value());
    EXPECT_EQ(read.error().code(), EACCES) << read.error().message();
  }
}

// ---------------------------------------------------------------------------------------------
// Bearer (token server)

TEST_F(TokenClientTest, RightCredentialsGetTokensAndWork) {
  auto before = reg().token_server()->Stats();
  ASSERT_TRUE(before.has_value()) << before.error().message();
  auto client = GoodClient();
  auto m = client->GetManifest(Ref(reg(), "test/img", "v1"));
  ASSERT_TRUE(m.has_value()) << m.error().message();
  EXPECT_EQ(m->bytes, image().manifest);
  auto after = reg().token_server()->Stats();
  ASSERT_TRUE(after.has_value());
  EXPECT_GT(after->issued, before->issued);
  EXPECT_THAT(after->last_scopes, ::testing::Contains(HasSubstr("repository:test/img:pull")));

  auto source = client->OpenBlobSource(Ref(reg(), "test/img"));
  const std::string blob = LayerBytes(1);
  std::vector<ByteRange> ranges = {{0, 100}, {blob.size() - 1, 1}, {777777, 5000}};
  auto results = source->ReadRanges(image().layers[1].digest, ranges);
  for (size_t i = 0; i < ranges.size(); ++i) {
    ASSERT_TRUE(results[i].has_value()) << results[i].error().message();
    EXPECT_TRUE(*results[i] == blob.substr(ranges[i].offset, ranges[i].length));
  }
}

TEST_F(TokenClientTest, PushAndCrossRepositoryMountWithTokens) {
  auto client = GoodClient();
  const std::string manifest = PushWithClient(*client, Ref(reg(), "client/tok", "v1"), 400);
  auto back = client->GetManifest(Ref(reg(), "client/tok", "v1"));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->bytes, manifest);
  // Mount needs pull on the source and push on the target in one token.
  auto mounted =
      client->MountBlob(Ref(reg(), "client/tok-mount"), image().layers[1].digest, "test/img");
  ASSERT_TRUE(mounted.has_value()) << mounted.error().message();
  EXPECT_TRUE(*mounted);
  auto catalog = client->Catalog(reg().host_port(), 2);
  ASSERT_TRUE(catalog.has_value()) << catalog.error().message();
  EXPECT_THAT(*catalog, ::testing::Contains("client/tok-mount"));
}

TEST_F(TokenClientTest, WrongCredentialsAreEACCES) {
  auto client = MakeClient(reg(), reg().user(), "wrong");
  auto m = client->GetManifest(Ref(reg(), "test/img", "v1"));
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code(), EACCES) << m.error().message();
  EXPECT_EQ(m.error().message().find('\n'), std::string::npos);
  // Anonymous: the token server hands out a token without access; the registry refuses it.
  auto anon = MakeClient(reg(), "", "");
  auto a = anon->GetManifest(Ref(reg(), "test/img", "v1"));
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().code(), EACCES) << a.error().message();
}

TEST_F(TokenClientTest, ExpiredTokenIsRefreshed) {
  harness::TokenServer* ts = reg().token_server();
  ASSERT_TRUE(ts->SetTokenTtl(2).has_value());
  auto client = GoodClient();
  auto source = client->OpenBlobSource(Ref(reg(), "test/img"));
  const std::string blob = LayerBytes(1);
  const Digest& digest = image().layers[1].digest;
  auto first = source->ReadAt(digest, 10, 10);
  Status reset_ttl = ts->SetTokenTtl(300);
  ASSERT_TRUE(first.has_value()) << first.error().message();
  EXPECT_EQ(*first, blob.substr(10, 10));
  auto issued = ts->Stats();
  ASSERT_TRUE(issued.has_value());

  // The token is dead after 2 s (the registry refuses it with 401 from then on).
  std::this_thread::sleep_for(std::chrono::milliseconds(2700));
  const uint64_t mark = reg().LogMark();
  auto second = source->ReadAt(digest, 1000, 10);
  ASSERT_TRUE(second.has_value()) << second.error().message();
  EXPECT_EQ(*second, blob.substr(1000, 10));
  auto manifest = client->GetManifest(Ref(reg(), "test/img", "v1"));
  ASSERT_TRUE(manifest.has_value()) << manifest.error().message();

  auto refreshed = ts->Stats();
  ASSERT_TRUE(refreshed.has_value());
  EXPECT_GT(refreshed->issued, issued->issued) << "a new token must have been fetched";
  // The registry logged the read as a 206 after the refresh.
  auto requests = reg().Requests(mark);
  ASSERT_TRUE(requests.has_value());
  bool served = false;
  int refused = 0;
  for (const auto& r : *requests) {
    served |= r.IsBlobGet() && r.status == 206 && r.read_offset == 1000u;
    refused += r.status == 401;
  }
  EXPECT_TRUE(served);
  // Either the client renewed ahead of expires_in (0) or it saw the expired token refused.
  RecordProperty("requests_refused_with_401_after_expiry", refused);
  ASSERT_TRUE(reset_ttl.has_value());
}

TEST_F(TokenClientTest, TokenRefusedBeforeItsAdvertisedExpiryIsRefreshedOn401) {
  // The token dies after 2 s but the reply says 300 s: only the registry's 401 tells the client.
  harness::TokenServer* ts = reg().token_server();
  ASSERT_TRUE(ts->SetTokenTtl(2, 300).has_value());
  auto client = GoodClient();
  auto source = client->OpenBlobSource(Ref(reg(), "test/img"));
  const std::string blob = LayerBytes(1);
  const Digest& digest = image().layers[1].digest;
  auto first = source->ReadAt(digest, 20, 20);
  ASSERT_TRUE(first.has_value()) << first.error().message();
  auto issued = ts->Stats();
  ASSERT_TRUE(issued.has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(2700));
  Status reset_ttl = ts->SetTokenTtl(300);

  const uint64_t mark = reg().LogMark();
  auto second = source->ReadAt(digest, 2000, 20);
  ASSERT_TRUE(second.has_value()) << second.error().message();
  EXPECT_EQ(*second, blob.substr(2000, 20));
  auto refreshed = ts->Stats();
  ASSERT_TRUE(refreshed.has_value());
  EXPECT_EQ(refreshed->issued, issued->issued + 1) << "exactly one new token";
  auto requests = reg().Requests(mark);
  ASSERT_TRUE(requests.has_value());
  std::vector<int> statuses;
  for (const auto& r : *requests) {
    if (r.IsBlobGet()) statuses.push_back(r.status);
  }
  // The dead token was refused once, then the retry with the new token was served.
  EXPECT_EQ(statuses, (std::vector<int>{401, 206}));
  ASSERT_TRUE(reset_ttl.has_value());
}

}  // namespace
}  // namespace hoist
