// Checks that the harness really works with the real tools: each registry variant, skopeo pushes,
// the token server's tokens (and their expiry), the log parsing, restart on the same port, and
// the layers GNU tar produced from FileSpecs.
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/digest.h"
#include "base/file_util.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/simple_http.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"

namespace hoist::harness {
namespace {

using ::testing::HasSubstr;

std::string TempDir(const std::string& name) {
  std::string templ = "/tmp/hoist-harness-" + name + "-XXXXXX";
  EXPECT_NE(::mkdtemp(templ.data()), nullptr);
  return templ;
}

// A temporary directory removed at the end of the test.
class ScopedTempDir {
 public:
  explicit ScopedTempDir(const std::string& name) : path_(TempDir(name)) {}
  ~ScopedTempDir() { (void)RemoveTree(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<LayerSpec> SmallImageLayers() {
  return {
      {FileSpec::Dir("etc"), FileSpec::File("etc/hostname", "hoist\n"),
       FileSpec::File("bin/tool", "#!/bin/sh\necho hi\n", 0755).Owner(1000, 1001)},
      {FileSpec::Whiteout("etc/hostname"), FileSpec::File("etc/motd", "hello\n")},
  };
}

std::string SkopeoInspectRaw(const std::string& ref, const std::string& creds = "") {
  std::vector<std::string> argv = {"skopeo", "inspect", "--raw", "--tls-verify=false"};
  if (!creds.empty()) argv.push_back("--creds=" + creds);
  argv.push_back(ref);
  auto out = RunChecked(argv);
  EXPECT_TRUE(out.has_value()) << out.error().message();
  return out.value_or("");
}

// ---------------------------------------------------------------------------------------------
TEST(SubprocessTest, CapturesOutputExitCodeAndStdin) {
  auto r = RunCommand({"sh", "-c", "cat; echo err >&2; exit 3"}, {.stdin_data = "abc"});
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->stdout_text, "abc");
  EXPECT_EQ(r->stderr_text, "err\n");
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_FALSE(r->ok());
  EXPECT_EQ(r->Describe(), "exit 3");
}

TEST(SubprocessTest, TimesOutAndKills) {
  auto start = std::chrono::steady_clock::now();
  auto r = RunCommand({"sleep", "30"}, {.timeout = std::chrono::milliseconds(200)});
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  auto checked = RunChecked({"sleep", "30"}, {.timeout = std::chrono::milliseconds(100)});
  ASSERT_FALSE(checked.has_value());
  EXPECT_EQ(checked.error().code(), ETIMEDOUT);
}

TEST(SubprocessTest, MissingProgramIsENOENT) {
  auto r = RunCommand({"hoist-no-such-program-xyz"});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ENOENT);
  Status s = RequirePrograms({"sh", "hoist-no-such-program-xyz"});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), ENOENT);
  EXPECT_THAT(s.error().message(), HasSubstr("hoist-no-such-program-xyz"));
}

TEST(SubprocessTest, RunCheckedQuotesStderr) {
  auto r = RunChecked({"sh", "-c", "echo boom >&2; exit 2"});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), EIO);
  EXPECT_THAT(r.error().message(), HasSubstr("exit 2"));
  EXPECT_THAT(r.error().message(), HasSubstr("boom"));
}

// ---------------------------------------------------------------------------------------------
TEST(OciImageTest, LayerTarHasExactEntries) {
  ScopedTempDir dir("tar");
  LayerSpec layer = {
      FileSpec::File("a/file", "content", 04755).Owner(1234, 5678).Xattr("user.color", "blue"),
      FileSpec::Hardlink("a/link", "a/file"),
      FileSpec::Symlink("a/sym", "../target"),
      FileSpec::Opaque("b"),
      FileSpec::Whiteout("c/gone"),
      FileSpec::Fifo("a/fifo"),
      FileSpec::Dir("d", 01777).Owner(7, 8),
  };
  const std::string tar = dir.path() + "/layer.tar";
  Status s = BuildLayerTar(layer, dir.path() + "/staging", tar);
  ASSERT_TRUE(s.has_value()) << s.error().message();
  auto listing = RunChecked({"tar", "--numeric-owner", "-tvf", tar});
  ASSERT_TRUE(listing.has_value()) << listing.error().message();
  // Exact order: implicit parent "a/" first, then the listed entries (and "b/", "c/").
  std::vector<std::string> names;
  auto plain = RunChecked({"tar", "-tf", tar});
  ASSERT_TRUE(plain.has_value());
  size_t start = 0;
  while (start < plain->size()) {
    size_t end = plain->find('\n', start);
    names.push_back(plain->substr(start, end - start));
    start = end + 1;
  }
  EXPECT_EQ(names,
            (std::vector<std::string>{"a/", "a/file", "a/link", "a/sym", "b/", "b/.wh..wh..opq",
                                      "c/", "c/.wh.gone", "a/fifo", "d/"}));
  EXPECT_THAT(*listing, HasSubstr("-rwsr-xr-x 1234/5678         7 2023-11-14 22:13 a/file"));
  EXPECT_THAT(*listing,
              HasSubstr("hrwsr-xr-x 1234/5678         0 2023-11-14 22:13 a/link link to a/file"));
  EXPECT_THAT(*listing,
              HasSubstr("lrwxrwxrwx 0/0               0 2023-11-14 22:13 a/sym -> ../target"));
  EXPECT_THAT(*listing, HasSubstr("prw-r--r-- 0/0               0 2023-11-14 22:13 a/fifo"));
  EXPECT_THAT(*listing, HasSubstr("drwxrwxrwt 7/8               0 2023-11-14 22:13 d/"));
  auto raw = ReadFile(tar);
  ASSERT_TRUE(raw.has_value());
  EXPECT_THAT(*raw, HasSubstr("SCHILY.xattr.user.color=blue"));
  EXPECT_EQ(raw->find("atime="), std::string::npos);
}

TEST(OciImageTest, BadSpecIsEINVAL) {
  ScopedTempDir dir("bad");
  for (const LayerSpec& bad :
       {LayerSpec{FileSpec::File("/abs", "")}, LayerSpec{FileSpec::File("a/../b", "")},
        LayerSpec{FileSpec::Hardlink("x", "missing")},
        LayerSpec{FileSpec::File("d", ""), FileSpec::File("d", "")}}) {
    Status s = BuildLayerTar(bad, dir.path() + "/staging", dir.path() + "/out.tar");
    ASSERT_FALSE(s.has_value());
    EXPECT_EQ(s.error().code(), EINVAL) << s.error().message();
  }
}

TEST(OciImageTest, PatternBytesAreStableAndPositionIndependent) {
  std::string whole = PatternBytes(7, 0, 1000);
  EXPECT_EQ(PatternBytes(7, 123, 456), whole.substr(123, 456));
  EXPECT_NE(PatternBytes(8, 0, 1000), whole);
  EXPECT_EQ(PatternBytes(7, 0, 8), PatternBytes(7, 0, 8));
}

// ---------------------------------------------------------------------------------------------
class AnonymousRegistryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto reg = TestRegistry::Launch();
    ASSERT_TRUE(reg.has_value()) << reg.error().message();
    registry_ = std::move(*reg);
  }
  static void TearDownTestSuite() { registry_.reset(); }
  void SetUp() override { ASSERT_NE(registry_, nullptr); }
  static std::unique_ptr<TestRegistry> registry_;
};
std::unique_ptr<TestRegistry> AnonymousRegistryTest::registry_;

TEST_F(AnonymousRegistryTest, PushInspectAndFindBlobOnDisk) {
  ScopedTempDir dir("anon");
  auto image = BuildOciImage(dir.path() + "/layout", SmallImageLayers(), {.tag = "v1"});
  ASSERT_TRUE(image.has_value()) << image.error().message();
  Status pushed = PushOciLayout(image->OciRef(), registry_->DockerRef("harness/small", "v1"));
  ASSERT_TRUE(pushed.has_value()) << pushed.error().message();

  EXPECT_EQ(SkopeoInspectRaw(registry_->DockerRef("harness/small", "v1")), image->manifest);
  for (const BuiltLayer& layer : image->layers) {
    auto on_disk = ReadFile(registry_->BlobPath(layer.digest.str()));
    ASSERT_TRUE(on_disk.has_value()) << on_disk.error().message();
    EXPECT_EQ(Digest::Of(*on_disk), layer.digest);
  }
  auto lines = registry_->AccessLogLines("PUT /v2/harness/small/manifests/v1");
  ASSERT_TRUE(lines.has_value());
  ASSERT_EQ(lines->size(), 1u);
  EXPECT_THAT((*lines)[0], HasSubstr("\" 201 "));
}

TEST_F(AnonymousRegistryTest, RequestsShowRangeOffsetsAndLengths) {
  ScopedTempDir dir("range");
  auto image =
      BuildOciImage(dir.path() + "/layout",
                    {LayerSpec({FileSpec::BigFile("big", 300000, 3)}, LayerCompression::kNone)});
  ASSERT_TRUE(image.has_value()) << image.error().message();
  ASSERT_TRUE(PushOciLayout(image->OciRef(), registry_->DockerRef("harness/range")).has_value());
  const std::string url =
      registry_->base_url() + "/v2/harness/range/blobs/" + image->layers[0].digest.str();
  const uint64_t mark = registry_->LogMark();
  auto r = HttpGet(url, {"Range: bytes=1000-1999"});
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->status, 206);
  EXPECT_EQ(r->Header("content-range"), "bytes 1000-1999/" + std::to_string(image->layers[0].size));
  auto blob = ReadFile(image->layers[0].blob_path);
  ASSERT_TRUE(blob.has_value());
  EXPECT_EQ(r->body, blob->substr(1000, 1000));

  auto requests = registry_->Requests(mark);
  ASSERT_TRUE(requests.has_value()) << requests.error().message();
  ASSERT_EQ(requests->size(), 1u);
  const RegistryRequest& req = (*requests)[0];
  EXPECT_TRUE(req.IsBlobGet());
  EXPECT_EQ(req.status, 206);
  EXPECT_EQ(req.read_offset, 1000u);
  EXPECT_EQ(req.bytes_written, 1000u);
}

TEST_F(AnonymousRegistryTest, ZstdAndUncompressedLayersPush) {
  ScopedTempDir dir("zstd");
  auto image =
      BuildOciImage(dir.path() + "/layout",
                    {LayerSpec({FileSpec::File("z", "zstd layer")}, LayerCompression::kZstd),
                     LayerSpec({FileSpec::File("t", "plain layer")}, LayerCompression::kNone)});
  ASSERT_TRUE(image.has_value()) << image.error().message();
  EXPECT_EQ(image->layers[0].media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
  EXPECT_EQ(image->layers[1].media_type, "application/vnd.oci.image.layer.v1.tar");
  EXPECT_EQ(image->layers[1].digest, image->layers[1].diff_id);
  auto zstd = RunChecked({"zstd", "-d", "-c", image->layers[0].blob_path});
  ASSERT_TRUE(zstd.has_value()) << zstd.error().message();
  EXPECT_EQ(Digest::Of(*zstd), image->layers[0].diff_id);
  Status pushed = PushOciLayout(image->OciRef(), registry_->DockerRef("harness/zstd"));
  ASSERT_TRUE(pushed.has_value()) << pushed.error().message();
  EXPECT_EQ(SkopeoInspectRaw(registry_->DockerRef("harness/zstd")), image->manifest);
}

TEST_F(AnonymousRegistryTest, MultiPlatformIndexPushesBothPlatforms) {
  ScopedTempDir dir("multi");
  auto index = BuildOciIndex(
      dir.path() + "/layout",
      {{{.architecture = "amd64"}, {{FileSpec::File("arch", "amd64\n")}}},
       {{.architecture = "arm64", .variant = "v8"}, {{FileSpec::File("arch", "arm64\n")}}}},
      "multi");
  ASSERT_TRUE(index.has_value()) << index.error().message();
  Status pushed =
      PushOciLayout(index->OciRef(), registry_->DockerRef("harness/multi", "multi"), {.all = true});
  ASSERT_TRUE(pushed.has_value()) << pushed.error().message();
  EXPECT_EQ(SkopeoInspectRaw(registry_->DockerRef("harness/multi", "multi")), index->index);
  // skopeo resolves the arm64 entry to its own manifest and config.
  auto arch = RunChecked({"skopeo", "inspect", "--tls-verify=false", "--override-arch=arm64",
                          "--override-variant=v8", "--format={{.Architecture}}",
                          registry_->DockerRef("harness/multi", "multi")});
  ASSERT_TRUE(arch.has_value()) << arch.error().message();
  EXPECT_EQ(*arch, "arm64\n");
  for (const BuiltImage& image : index->images) {
    EXPECT_EQ(SkopeoInspectRaw("docker://" + registry_->host_port() + "/harness/multi@" +
                               image.manifest_digest.str()),
              image.manifest);
  }
}

TEST(RegistryRestartTest, StopAndStartKeepPortAndStorage) {
  auto reg = TestRegistry::Launch();
  ASSERT_TRUE(reg.has_value()) << reg.error().message();
  TestRegistry& r = **reg;
  ScopedTempDir dir("restart");
  auto image = BuildOciImage(dir.path() + "/layout", SmallImageLayers());
  ASSERT_TRUE(image.has_value()) << image.error().message();
  ASSERT_TRUE(PushOciLayout(image->OciRef(), r.DockerRef("harness/restart")).has_value());
  const std::string root = r.root_dir();
  const std::string url = r.base_url() + "/v2/";

  r.Stop();
  EXPECT_FALSE(r.running());
  auto down = HttpGet(url);
  ASSERT_FALSE(down.has_value());
  EXPECT_EQ(down.error().code(), ECONNREFUSED);

  Status started = r.Start();
  ASSERT_TRUE(started.has_value()) << started.error().message();
  EXPECT_EQ(r.base_url() + "/v2/", url);
  EXPECT_EQ(SkopeoInspectRaw(r.DockerRef("harness/restart")), image->manifest);

  r.Stop(/*kill=*/true);
  ASSERT_TRUE(r.Start().has_value());
  auto up = HttpGet(url);
  ASSERT_TRUE(up.has_value());
  EXPECT_EQ(up->status, 200);
  reg->reset();
  EXPECT_NE(::access(root.c_str(), F_OK), 0) << "the temp dir must be removed";
}

// ---------------------------------------------------------------------------------------------
class BasicRegistryTest : public AnonymousRegistryTest {
 protected:
  static void SetUpTestSuite() {
    auto reg = TestRegistry::Launch({.auth = RegistryAuthMode::kBasic});
    ASSERT_TRUE(reg.has_value()) << reg.error().message();
    registry_ = std::move(*reg);
  }
};

TEST_F(BasicRegistryTest, ChallengesAndAcceptsOnlyTheRightCredentials) {
  auto anon = HttpGet(registry_->base_url() + "/v2/");
  ASSERT_TRUE(anon.has_value());
  EXPECT_EQ(anon->status, 401);
  EXPECT_EQ(anon->Header("www-authenticate"), "Basic realm=\"hoist-test-basic\"");

  ScopedTempDir dir("basic");
  auto image = BuildOciImage(dir.path() + "/layout", SmallImageLayers());
  ASSERT_TRUE(image.has_value()) << image.error().message();
  Status wrong = PushOciLayout(image->OciRef(), registry_->DockerRef("harness/basic"),
                               {.creds = registry_->user() + ":wrong"});
  ASSERT_FALSE(wrong.has_value());
  EXPECT_THAT(wrong.error().message(), HasSubstr("unauthorized"));
  Status none = PushOciLayout(image->OciRef(), registry_->DockerRef("harness/basic"));
  ASSERT_FALSE(none.has_value());

  Status right = PushOciLayout(image->OciRef(), registry_->DockerRef("harness/basic"),
                               {.creds = registry_->skopeo_creds()});
  ASSERT_TRUE(right.has_value()) << right.error().message();
  EXPECT_EQ(SkopeoInspectRaw(registry_->DockerRef("harness/basic"), registry_->skopeo_creds()),
            image->manifest);
  auto requests = registry_->Requests();
  ASSERT_TRUE(requests.has_value());
  bool saw_user = false;
  for (const RegistryRequest& r : *requests) saw_user |= r.auth_user == registry_->user();
  EXPECT_TRUE(saw_user) << "auth.user.name should be logged for Basic requests";
}

// ---------------------------------------------------------------------------------------------
class TokenRegistryTest : public AnonymousRegistryTest {
 protected:
  static void SetUpTestSuite() {
    auto reg = TestRegistry::Launch({.auth = RegistryAuthMode::kToken});
    ASSERT_TRUE(reg.has_value()) << reg.error().message();
    registry_ = std::move(*reg);
  }
  // curl's status code for `url` with optional extra header.
  static std::string CurlStatus(const std::string& url, const std::string& header = "") {
    std::vector<std::string> argv = {"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"};
    if (!header.empty()) argv.insert(argv.end(), {"-H", header});
    argv.push_back(url);
    auto out = RunChecked(argv);
    EXPECT_TRUE(out.has_value()) << out.error().message();
    return out.value_or("");
  }
  static std::string CurlToken(const std::string& userpass, const std::string& scope) {
    auto out = RunChecked(
        {"curl", "-s", "-f", "-u", userpass,
         registry_->token_server()->realm() + "?service=hoist-test-registry&scope=" + scope});
    EXPECT_TRUE(out.has_value()) << out.error().message();
    auto json = RunChecked({"jq", "-r", ".token"}, {.stdin_data = out.value_or("{}")});
    EXPECT_TRUE(json.has_value());
    std::string token = json.value_or("");
    while (!token.empty() && token.back() == '\n') token.pop_back();
    return token;
  }
};

TEST_F(TokenRegistryTest, BearerFlowWithCurl) {
  ASSERT_NE(registry_->token_server(), nullptr);
  const std::string tags = registry_->base_url() + "/v2/harness/token/tags/list";
  auto challenge = HttpGet(tags);
  ASSERT_TRUE(challenge.has_value());
  EXPECT_EQ(challenge->status, 401);
  EXPECT_EQ(challenge->Header("www-authenticate"),
            "Bearer realm=\"" + registry_->token_server()->realm() +
                "\",service=\"hoist-test-registry\",scope=\"repository:harness/token:pull\"");
  EXPECT_EQ(CurlStatus(tags), "401");

  const std::string token =
      CurlToken(registry_->user() + ":" + registry_->password(), "repository:harness/token:pull");
  ASSERT_FALSE(token.empty());
  // 404: authorised, the repository just does not exist yet.
  EXPECT_EQ(CurlStatus(tags, "Authorization: Bearer " + token), "404");
  EXPECT_EQ(CurlStatus(registry_->base_url() + "/v2/", "Authorization: Bearer " + token), "200");

  // Wrong credentials: the token server refuses them.
  EXPECT_EQ(CurlStatus(registry_->token_server()->realm() +
                           "?service=hoist-test-registry&scope=repository:harness/token:pull",
                       "Authorization: Basic " + Base64Encode(registry_->user() + ":nope")),
            "401");
  // Anonymous: a token without access.
  auto anon = registry_->token_server()->FetchToken({"repository:harness/token:pull"});
  ASSERT_TRUE(anon.has_value()) << anon.error().message();
  EXPECT_EQ(CurlStatus(tags, "Authorization: Bearer " + *anon), "401");
}

TEST_F(TokenRegistryTest, ExpiredTokenGets401) {
  TokenServer* ts = registry_->token_server();
  ASSERT_TRUE(ts->SetTokenTtl(2).has_value());
  auto token =
      ts->FetchToken({"repository:harness/expire:pull"}, registry_->user(), registry_->password());
  ASSERT_TRUE(ts->SetTokenTtl(300).has_value());
  ASSERT_TRUE(token.has_value()) << token.error().message();
  const std::string tags = registry_->base_url() + "/v2/harness/expire/tags/list";
  EXPECT_EQ(CurlStatus(tags, "Authorization: Bearer " + *token), "404");
  std::this_thread::sleep_for(std::chrono::milliseconds(2600));
  const uint64_t mark = registry_->LogMark();
  EXPECT_EQ(CurlStatus(tags, "Authorization: Bearer " + *token), "401");
  auto requests = registry_->Requests(mark);
  ASSERT_TRUE(requests.has_value());
  ASSERT_EQ(requests->size(), 1u) << "refused requests are logged without 'response completed'";
  EXPECT_EQ((*requests)[0].status, 401);
  EXPECT_EQ((*requests)[0].uri, "/v2/harness/expire/tags/list");
  auto stats = ts->Stats();
  ASSERT_TRUE(stats.has_value()) << stats.error().message();
  EXPECT_GE(stats->issued, 1);
  EXPECT_EQ(stats->ttl, 300);
}

TEST_F(TokenRegistryTest, SkopeoPushesThroughTokenAuth) {
  ScopedTempDir dir("token");
  auto image = BuildOciImage(dir.path() + "/layout", SmallImageLayers());
  ASSERT_TRUE(image.has_value()) << image.error().message();
  Status wrong = PushOciLayout(image->OciRef(), registry_->DockerRef("harness/tokpush"),
                               {.creds = registry_->user() + ":wrong"});
  ASSERT_FALSE(wrong.has_value());
  Status right = PushOciLayout(image->OciRef(), registry_->DockerRef("harness/tokpush"),
                               {.creds = registry_->skopeo_creds()});
  ASSERT_TRUE(right.has_value()) << right.error().message();
  EXPECT_EQ(SkopeoInspectRaw(registry_->DockerRef("harness/tokpush"), registry_->skopeo_creds()),
            image->manifest);
}

TEST(TokenServerTest, KidHeaderAlsoAccepted) {
  auto reg = TestRegistry::Launch({.auth = RegistryAuthMode::kToken});
  ASSERT_TRUE(reg.has_value()) << reg.error().message();
  // A second server with the same key, naming it by `kid` only.
  auto kid_server = TokenServer::Start({.dir = (*reg)->root_dir() + "/token",
                                        .user = (*reg)->user(),
                                        .password = (*reg)->password(),
                                        .key_id = "kid"});
  ASSERT_TRUE(kid_server.has_value()) << kid_server.error().message();
  auto token =
      (*kid_server)->FetchToken({"repository:x/y:pull"}, (*reg)->user(), (*reg)->password());
  ASSERT_TRUE(token.has_value()) << token.error().message();
  auto r = HttpGet((*reg)->base_url() + "/v2/", {"Authorization: Bearer " + *token});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

}  // namespace
}  // namespace hoist::harness
