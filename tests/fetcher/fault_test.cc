// The registry client over a scripted transport: faults the network and registries produce, and
// the protocol details that must hold under them (auth refresh, redirects, ranges, digests).
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <thread>

#include "base/digest.h"
#include "fake_transport.h"
#include "fetcher/manifest.h"
#include "fetcher/mirror_resolver.h"
#include "fetcher/registry.h"
#include "fetcher/url.h"

namespace hoist {
namespace {

using namespace std::chrono_literals;
using testing_fakes::FakeClock;
using testing_fakes::FakeReply;
using testing_fakes::FakeTransport;
using testing_fakes::RecordedRequest;

constexpr char kChallenge[] = R"(Bearer realm="https://auth.io/token",service="reg.io")";

std::string Blob() {
  std::string b;
  for (int i = 0; i < 1000; ++i) b.push_back(static_cast<char>('a' + (i * 7) % 26));
  return b;
}

// A registry at https://reg.io with Bearer auth from https://auth.io/token. Tests add routes.
struct FakeRegistry {
  // Every token request gets a new token "t<n>".
  std::atomic<int> tokens_issued{0};
  std::atomic<int> valid_token{1};
  std::function<std::optional<FakeReply>(const RecordedRequest&)> route;

  FakeReply Handle(const RecordedRequest& r) {
    if (r.url.starts_with("https://auth.io/token")) {
      int n = ++tokens_issued;
      return {200, {}, R"({"token":"t)" + std::to_string(n) + R"(","expires_in":300})"};
    }
    if (r.url.starts_with("https://reg.io/")) {
      auto auth = r.Header("Authorization");
      // Tokens are numbered; those below valid_token have expired.
      if (!auth || !auth->starts_with("Bearer t") ||
          std::stoi(auth->substr(8)) < valid_token.load()) {
        return {401,
                {{"WWW-Authenticate", kChallenge}, {"Content-Type", "application/json"}},
                R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})"};
      }
      if (r.url == "https://reg.io/v2/") return {200, {}, "{}"};
    }
    if (route) {
      if (auto reply = route(r)) return *reply;
    }
    return {
        404, {}, R"({"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]})"};
  }
};

class FaultTest : public testing::Test {
 protected:
  void SetUp() override {
    transport_ = std::make_shared<FakeTransport>(
        [this](const RecordedRequest& r) { return registry_.Handle(r); });
    RegistryOptions options;
    options.clock = &clock_;
    options.retry.base_delay = 10ms;
    options.retry.max_delay = 80ms;
    options.retry.jitter = 0;
    options.retry.max_attempts = 4;
    options.retry.max_retry_after = 5000ms;
    options.retry.total_budget = 60000ms;
    options.platform = *Platform::Parse("linux/amd64");
    options_ = options;
  }
  RegistryClient& Client() {
    if (!client_) client_ = std::make_unique<RegistryClient>(transport_, nullptr, options_);
    return *client_;
  }
  std::string BlobUrl(const Digest& d) { return "https://reg.io/v2/lib/x/blobs/" + d.str(); }

  Reference repo_ = *Reference::Parse("reg.io/lib/x:latest");
  FakeClock clock_;
  FakeRegistry registry_;
  std::shared_ptr<FakeTransport> transport_;
  RegistryOptions options_;
  std::unique_ptr<RegistryClient> client_;
};

std::string ManifestJson(const Digest& config, int64_t config_size, const Digest& layer) {
  return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
         config.str() + R"(","size":)" + std::to_string(config_size) +
         R"(},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
         layer.str() + R"(","size":1000}]})";
}

TEST_F(FaultTest, ManifestGetSendsAcceptAndVerifies) {
  std::string body = ManifestJson(Digest::Of("c"), 1, Digest::Of(Blob()));
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (r.url == "https://reg.io/v2/lib/x/manifests/latest") {
      return FakeReply{200,
                       {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"},
                        {"Docker-Content-Digest", Digest::Of(body).str()}},
                       body};
    }
    return std::nullopt;
  };
  auto m = Client().GetManifest(repo_);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->bytes, body);
  EXPECT_EQ(m->digest, Digest::Of(body));
  EXPECT_EQ(m->media_type, kMediaTypeOciManifest);
  auto gets = transport_->RequestsTo("https://reg.io/v2/lib/x/manifests/");
  ASSERT_FALSE(gets.empty());
  std::string accept = gets.back().Header("Accept").value_or("");
  for (auto t : {kMediaTypeDockerManifest, kMediaTypeDockerManifestList, kMediaTypeOciManifest,
                 kMediaTypeOciIndex}) {
    EXPECT_NE(accept.find(t), std::string::npos) << t;
  }
  // Token requested once, with the pull scope, and reused.
  ASSERT_TRUE(Client().GetManifest(repo_));
  auto tokens = transport_->RequestsTo("https://auth.io/token");
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_EQ(tokens[0].url,
            "https://auth.io/token?service=reg.io&scope=repository%3Alib%2Fx%3Apull");
  EXPECT_FALSE(tokens[0].Header("Authorization"));  // anonymous token request
}

TEST_F(FaultTest, ManifestWithWrongDigestIsRejected) {
  std::string body = ManifestJson(Digest::Of("c"), 1, Digest::Of(Blob()));
  Digest asked = Digest::Of("something else");
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (r.url.find("/manifests/") != std::string::npos) {
      return FakeReply{200, {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}}, body};
    }
    return std::nullopt;
  };
  auto m = Client().GetManifest(repo_.WithDigest(asked));
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), EIO);
  EXPECT_EQ(m.error().message(), "reg.io/lib/x: manifest " + asked.str() +
                                     ": digest mismatch: the bytes hash to " +
                                     Digest::Of(body).str());
}

TEST_F(FaultTest, ManifestDisagreeingWithDockerContentDigestIsRejected) {
  std::string body = ManifestJson(Digest::Of("c"), 1, Digest::Of(Blob()));
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (r.url.find("/manifests/") != std::string::npos) {
      return FakeReply{200,
                       {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"},
                        {"Docker-Content-Digest", Digest::Of("x").str()}},
                       body};
    }
    return std::nullopt;
  };
  auto m = Client().GetManifest(repo_);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), EIO);
  EXPECT_NE(m.error().message().find("digest mismatch: Docker-Content-Digest is"),
            std::string::npos)
      << m.error().message();
}

TEST_F(FaultTest, ServerErrorThenSuccess) {
  std::string body = ManifestJson(Digest::Of("c"), 1, Digest::Of(Blob()));
  int calls = 0;
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (r.url.find("/manifests/") == std::string::npos) return std::nullopt;
    if (++calls == 1) return FakeReply{500, {}, "oops"};
    return FakeReply{200, {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}}, body};
  };
  auto m = Client().GetManifest(repo_);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(clock_.sleeps(), (std::vector<std::chrono::milliseconds>{10ms}));
}

TEST_F(FaultTest, TooManyRequestsHonoursRetryAfter) {
  int calls = 0;
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (!r.url.starts_with(BlobUrl(Digest::Of(Blob())))) return std::nullopt;
    ++calls;
    if (calls == 1) return FakeReply{429, {{"Retry-After", "3"}}, ""};
    if (calls == 2) return FakeReply{503, {{"Retry-After", "100"}}, ""};  // capped to 5 s
    return FakeReply{200, {{"Content-Length", "1000"}}, Blob()};
  };
  auto b = Client().GetBlob(repo_, Digest::Of(Blob()), 1 << 20);
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(*b, Blob());
  EXPECT_EQ(clock_.sleeps(), (std::vector<std::chrono::milliseconds>{3000ms, 5000ms}));
}

TEST_F(FaultTest, ResetMidBodyThenSuccess) {
  int calls = 0;
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (!r.url.starts_with(BlobUrl(Digest::Of(Blob())))) return std::nullopt;
    if (++calls == 1) {
      FakeReply reply{200, {{"Content-Length", "1000"}}, Blob()};
      reply.error = Error(ECONNRESET, "GET x: Connection reset by peer");
      reply.deliver_before_error = 300;
      return reply;
    }
    return FakeReply{200, {{"Content-Length", "1000"}}, Blob()};
  };
  std::string got;
  int restarts = 0;
  Status s = Client().FetchBlob(
      repo_, Digest::Of(Blob()),
      [&](std::string_view chunk) -> Status {
        got.append(chunk);
        return Ok();
      },
      [&] {
        ++restarts;
        got.clear();
      });
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(got, Blob());
  EXPECT_EQ(calls, 2);
  // Before the token request (the first request goes out anonymous and meets the challenge)
  // and before the retry after the reset.
  EXPECT_EQ(restarts, 2);
}

TEST_F(FaultTest, TruncatedBodyIsRetried) {
  int calls = 0;
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (!r.url.starts_with(BlobUrl(Digest::Of(Blob())))) return std::nullopt;
    if (++calls == 1) return FakeReply{200, {{"Content-Length", "1000"}}, Blob().substr(0, 999)};
    return FakeReply{200, {{"Content-Length", "1000"}}, Blob()};
  };
  auto b = Client().GetBlob(repo_, Digest::Of(Blob()), 1 << 20);
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(*b, Blob());
  EXPECT_EQ(calls, 2);
}

TEST_F(FaultTest, TruncatedRangeIsRetried) {
  int calls = 0;
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (!r.url.starts_with(BlobUrl(Digest::Of(Blob())))) return std::nullopt;
    std::string part = Blob().substr(100, 50);
    if (++calls == 1) part.resize(20);
    return FakeReply{206, {{"Content-Range", "bytes 100-149/1000"}}, part};
  };
  auto src = Client().OpenBlobSource(repo_);
  auto b = src->ReadAt(Digest::Of(Blob()), 100, 50);
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(*b, Blob().substr(100, 50));
  EXPECT_EQ(calls, 2);
}

TEST_F(FaultTest, BlobWithWrongDigestIsRejected) {
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (!r.url.starts_with(BlobUrl(Digest::Of(Blob())))) return std::nullopt;
    std::string bad = Blob();
    bad[500] ^= 1;
    return FakeReply{200, {}, bad};
  };
  auto b = Client().GetBlob(repo_, Digest::Of(Blob()), 1 << 20);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code(), EIO);
  EXPECT_NE(b.error().message().find("digest mismatch"), std::string::npos);
}

TEST_F(FaultTest, UnauthorizedMidSessionRefreshesTokenOnce) {
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (!r.url.starts_with(BlobUrl(Digest::Of(Blob())))) return std::nullopt;
    return FakeReply{206, {{"Content-Range", "bytes 0-9/1000"}}, Blob().substr(0, 10)};
  };
  auto src = Client().OpenBlobSource(repo_);
  ASSERT_TRUE(src->ReadAt(Digest::Of(Blob()), 0, 10));
  EXPECT_EQ(registry_.tokens_issued, 1);
  registry_.valid_token = 2;  // t1 expired on the registry side
  auto b = src->ReadAt(Digest::Of(Blob()), 0, 10);
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(*b, Blob().substr(0, 10));
  EXPECT_EQ(registry_.tokens_issued, 2);
  auto reqs = transport_->RequestsTo(BlobUrl(Digest::Of(Blob())));
  // Anonymous (no probe: the 401 brings the challenge), t1, t1 refused, t2.
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_FALSE(reqs[0].Header("Authorization"));
  EXPECT_EQ(reqs[1].Header("Authorization"), "Bearer t1");
  EXPECT_EQ(reqs[2].Header("Authorization"), "Bearer t1");
  EXPECT_EQ(reqs[3].Header("Authorization"), "Bearer t2");
  EXPECT_TRUE(clock_.sleeps().empty());  // a refresh is not a backoff

  // A registry that keeps refusing: one refresh, then EACCES.
  registry_.valid_token = 1000;
  auto refused = src->ReadAt(Digest::Of(Blob()), 0, 10);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), EACCES);
  EXPECT_EQ(refused.error().message(),
            "reg.io/lib/x: blob " + Digest::Of(Blob()).str() +
                " bytes 0-9: 401 Unauthorized (UNAUTHORIZED: authentication required)");
  EXPECT_EQ(registry_.tokens_issued, 3);
}

TEST_F(FaultTest, TokenServerRefusingCredentialsIsEacces) {
  auto handler = [this](const RecordedRequest& r) -> FakeReply {
    if (r.url.starts_with("https://auth.io/token")) return {401, {}, ""};
    return registry_.Handle(r);
  };
  transport_ = std::make_shared<FakeTransport>(handler);
  auto m = Client().GetManifest(repo_);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), EACCES);
  EXPECT_NE(m.error().message().find("credentials refused (401 Unauthorized)"), std::string::npos)
      << m.error().message();
}

TEST_F(FaultTest, BasicAuthAndCredentialsOnTokenRequest) {
  // Bearer with credentials: the token GET carries Basic.
  auto creds =
      std::make_shared<StaticCredentialStore>(std::map<std::string, Credential, std::less<>>{
          {"reg.io", Credential{.username = "u", .password = "p"}}});
  client_ = std::make_unique<RegistryClient>(transport_, creds, options_);
  registry_.route = [&](const RecordedRequest&) -> std::optional<FakeReply> {
    return FakeReply{200, {}, R"({"name":"lib/x","tags":["a"]})"};
  };
  ASSERT_TRUE(Client().ListTags(repo_));
  auto tokens = transport_->RequestsTo("https://auth.io/token");
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_EQ(tokens[0].Header("Authorization"), "Basic " + Base64Encode("u:p"));

  // A Basic-auth registry gets Basic on every request.
  auto basic = std::make_shared<FakeTransport>([](const RecordedRequest& r) -> FakeReply {
    if (r.Header("Authorization") != "Basic " + Base64Encode("u:p")) {
      return {401, {{"WWW-Authenticate", R"(Basic realm="Registry Realm")"}}, ""};
    }
    return {200, {}, R"({"name":"lib/x","tags":["a","b"]})"};
  });
  RegistryClient c(basic, creds, options_);
  auto tags = c.ListTags(repo_);
  ASSERT_TRUE(tags) << tags.error().message();
  EXPECT_EQ(*tags, (std::vector<std::string>{"a", "b"}));
}

TEST_F(FaultTest, IdentityTokenUsesOAuthPostAndFallsBackToGet) {
  auto creds =
      std::make_shared<StaticCredentialStore>(std::map<std::string, Credential, std::less<>>{
          {"reg.io", Credential{.identity_token = "refresh-1"}}});
  bool oauth_supported = true;
  auto handler = [&](const RecordedRequest& r) -> FakeReply {
    if (r.method == "POST" && r.url == "https://auth.io/token") {
      if (!oauth_supported) return {404, {}, ""};
      if (r.Header("Content-Type") != "application/x-www-form-urlencoded") return {400, {}, ""};
      int n = ++registry_.tokens_issued;
      return {200, {}, R"({"access_token":"t)" + std::to_string(n) + R"(","expires_in":300})"};
    }
    if (r.url == "https://reg.io/v2/lib/x/tags/list" && r.Header("Authorization"))
      return {200, {}, R"({"tags":["a"]})"};
    return registry_.Handle(r);
  };
  transport_ = std::make_shared<FakeTransport>(handler);
  client_ = std::make_unique<RegistryClient>(transport_, creds, options_);
  registry_.route = nullptr;
  ASSERT_TRUE(Client().ListTags(repo_));
  auto posts = transport_->RequestsTo("https://auth.io/token");
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].method, "POST");
  EXPECT_EQ(posts[0].body,
            "grant_type=refresh_token&refresh_token=refresh-1&service=reg.io&client_id=hoist&"
            "scope=repository%3Alib%2Fx%3Apull");
  // A token server without OAuth2 (404): GET instead.
  oauth_supported = false;
  client_ = std::make_unique<RegistryClient>(transport_, creds, options_);
  ASSERT_TRUE(Client().ListTags(repo_));
  auto all = transport_->RequestsTo("https://auth.io/token");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[1].method, "POST");
  EXPECT_EQ(all[2].method, "GET");
}

TEST_F(FaultTest, InsufficientScopeWidensTheTokenScopes) {
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (r.url != "https://reg.io/v2/lib/x/tags/list") return std::nullopt;
    // Only the second token (asked with the extra scope) is good enough.
    if (r.Header("Authorization") == "Bearer t1") {
      return FakeReply{
          401,
          {{"WWW-Authenticate",
            R"(Bearer realm="https://auth.io/token",service="reg.io",scope="repository:lib/x:pull,extra",error="insufficient_scope")"}},
          ""};
    }
    return FakeReply{200, {}, R"({"tags":[]})"};
  };
  ASSERT_TRUE(Client().ListTags(repo_));
  auto tokens = transport_->RequestsTo("https://auth.io/token");
  ASSERT_EQ(tokens.size(), 2u);
  EXPECT_NE(tokens[1].url.find("scope=repository%3Alib%2Fx%3Apull%2Cextra"), std::string::npos)
      << tokens[1].url;
}

TEST_F(FaultTest, RangeAnsweredWith200IsSkippedToOffset) {
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (!r.url.starts_with(BlobUrl(Digest::Of(Blob())))) return std::nullopt;
    return FakeReply{200, {{"Content-Length", "1000"}}, Blob()};
  };
  auto src = Client().OpenBlobSource(repo_);
  auto b = src->ReadAt(Digest::Of(Blob()), 333, 100);
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(*b, Blob().substr(333, 100));
  auto reqs = transport_->RequestsTo(BlobUrl(Digest::Of(Blob())));
  ASSERT_EQ(reqs.size(), 2u);  // anonymous (401), then with the token
  EXPECT_EQ(reqs[1].Header("Range"), "bytes=333-432");
  // The tail of the blob, too.
  auto tail = src->ReadAt(Digest::Of(Blob()), 990, 10);
  ASSERT_TRUE(tail);
  EXPECT_EQ(*tail, Blob().substr(990));
  // The size was learned from the 200's Content-Length.
  EXPECT_EQ(*src->Size(Digest::Of(Blob())), 1000u);
}

TEST_F(FaultTest, WrongContentRangeIsAnErrorNotWrongBytes) {
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (!r.url.starts_with(BlobUrl(Digest::Of(Blob())))) return std::nullopt;
    return FakeReply{206, {{"Content-Range", "bytes 0-99/1000"}}, Blob().substr(0, 100)};
  };
  auto src = Client().OpenBlobSource(repo_);
  auto b = src->ReadAt(Digest::Of(Blob()), 100, 100);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code(), EIO);
  EXPECT_EQ(b.error().message(), "reg.io/lib/x: blob " + Digest::Of(Blob()).str() +
                                     " bytes 100-199: wrong Content-Range \"bytes 0-99/1000\" "
                                     "for bytes=100-199");
  // A 206 without Content-Range is no better.
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (!r.url.starts_with(BlobUrl(Digest::Of(Blob())))) return std::nullopt;
    return FakeReply{206, {}, Blob().substr(100, 100)};
  };
  auto c = src->ReadAt(Digest::Of(Blob()), 100, 100);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), EIO);
}

TEST_F(FaultTest, RedirectToOtherHostGetsRangeButNoAuthorization) {
  int cdn_generation = 1;
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (r.url.starts_with(BlobUrl(Digest::Of(Blob())))) {
      return FakeReply{
          307, {{"Location", "https://cdn.io/blob?sig=" + std::to_string(cdn_generation)}}, ""};
    }
    if (r.url.starts_with("https://cdn.io/blob")) {
      if (r.Header("Authorization")) return FakeReply{400, {}, "Authorization not allowed"};
      if (r.url != "https://cdn.io/blob?sig=" + std::to_string(cdn_generation)) {
        return FakeReply{403, {}, "<Error>Request has expired</Error>"};
      }
      auto range = r.Header("Range");
      if (!range) return FakeReply{200, {}, Blob()};
      size_t a = std::stoul(range->substr(6));
      size_t b = std::stoul(range->substr(range->find('-') + 1));
      return FakeReply{
          206,
          {{"Content-Range", "bytes " + std::to_string(a) + "-" + std::to_string(b) + "/1000"}},
          Blob().substr(a, b - a + 1)};
    }
    return std::nullopt;
  };
  auto src = Client().OpenBlobSource(repo_);
  Digest d = Digest::Of(Blob());
  auto b = src->ReadAt(d, 10, 20);
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(*b, Blob().substr(10, 20));
  auto cdn = transport_->RequestsTo("https://cdn.io/");
  ASSERT_EQ(cdn.size(), 1u);
  EXPECT_FALSE(cdn[0].Header("Authorization"));
  EXPECT_EQ(cdn[0].Header("Range"), "bytes=10-29");
  auto reg = transport_->RequestsTo(BlobUrl(d));
  ASSERT_EQ(reg.size(), 2u);  // anonymous (401), then with the token
  EXPECT_FALSE(reg[0].Header("Authorization"));
  EXPECT_EQ(reg[1].Header("Authorization"), "Bearer t1");
  EXPECT_EQ(reg[1].Header("Range"), "bytes=10-29");

  // The resolved URL is cached: the next read goes straight to the CDN.
  ASSERT_TRUE(src->ReadAt(d, 0, 5));
  EXPECT_EQ(transport_->RequestsTo(BlobUrl(d)).size(), 2u);
  EXPECT_EQ(transport_->RequestsTo("https://cdn.io/").size(), 2u);

  // The signed URL expires (403): the redirect is resolved again.
  cdn_generation = 2;
  auto c = src->ReadAt(d, 500, 10);
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(*c, Blob().substr(500, 10));
  EXPECT_EQ(transport_->RequestsTo(BlobUrl(d)).size(), 3u);
  auto last = transport_->requests().back();
  EXPECT_EQ(last.url, "https://cdn.io/blob?sig=2");
  EXPECT_FALSE(last.Header("Authorization"));

  // Whole-blob GETs follow the redirect the same way.
  auto whole = Client().GetBlob(repo_, d, 1 << 20);
  ASSERT_TRUE(whole) << whole.error().message();
  EXPECT_EQ(*whole, Blob());
  EXPECT_FALSE(transport_->requests().back().Header("Authorization"));
}

TEST_F(FaultTest, RedirectToSameOriginKeepsAuthorizationButSchemeChangeDropsIt) {
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (r.url.starts_with(BlobUrl(Digest::Of(Blob())))) {
      return FakeReply{302, {{"Location", "/v2/lib/x/storage/blob1"}}, ""};
    }
    if (r.url == "https://reg.io/v2/lib/x/storage/blob1") {
      return FakeReply{307, {{"Location", "http://reg.io/plain/blob1"}}, ""};
    }
    if (r.url == "http://reg.io/plain/blob1") {
      return FakeReply{206, {{"Content-Range", "bytes 0-3/1000"}}, Blob().substr(0, 4)};
    }
    return std::nullopt;
  };
  auto b = Client().OpenBlobSource(repo_)->ReadAt(Digest::Of(Blob()), 0, 4);
  ASSERT_TRUE(b) << b.error().message();
  auto reqs = transport_->requests();
  ASSERT_GE(reqs.size(), 3u);
  const auto& storage = reqs[reqs.size() - 2];
  EXPECT_EQ(storage.url, "https://reg.io/v2/lib/x/storage/blob1");
  EXPECT_EQ(storage.Header("Authorization"), "Bearer t1");
  EXPECT_EQ(reqs.back().url, "http://reg.io/plain/blob1");
  EXPECT_FALSE(reqs.back().Header("Authorization"));
  EXPECT_EQ(reqs.back().Header("Range"), "bytes=0-3");
}

TEST_F(FaultTest, NotFoundIsEnoentNamingTheObject) {
  Digest d = Digest::Of("missing");
  auto b = Client().GetBlob(repo_, d, 100);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code(), ENOENT);
  EXPECT_EQ(b.error().message(), "reg.io/lib/x: blob " + d.str() +
                                     ": 404 Not Found (BLOB_UNKNOWN: blob unknown to registry)");
  auto exists = Client().BlobExists(repo_, d);
  ASSERT_TRUE(exists);
  EXPECT_FALSE(*exists);
  EXPECT_TRUE(clock_.sleeps().empty());  // a 404 is not retried
}

TEST_F(FaultTest, PersistentFailureGivesUpAfterMaxAttempts) {
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (r.url.find("/manifests/") != std::string::npos) return FakeReply{503, {}, ""};
    return std::nullopt;
  };
  auto m = Client().GetManifest(repo_);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), EIO);
  EXPECT_EQ(m.error().message(),
            "reg.io/lib/x: manifest latest: 503 Service Unavailable (gave up after 4 attempts)");
  EXPECT_EQ(clock_.sleeps(), (std::vector<std::chrono::milliseconds>{10ms, 20ms, 40ms}));
}

// QuickAttempt (a caller with a local copy to fall back on): one attempt, no backoff sleep, a
// refused connection reported as such; the scope ends and the policy's retries are back.
TEST_F(FaultTest, QuickAttemptMakesOneAttemptWhileInScope) {
  int calls = 0;
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (r.url.find("/manifests/") == std::string::npos) return std::nullopt;
    ++calls;
    FakeReply refused;
    refused.error = Error(ECONNREFUSED, "connection refused");
    return refused;
  };
  {
    QuickAttempt quick(2000ms);
    auto m = Client().GetManifest(repo_);
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().code(), EIO);
    EXPECT_NE(m.error().message().find("connection refused (gave up after 1 attempts)"),
              std::string::npos)
        << m.error().message();
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(clock_.sleeps().empty());
  }
  auto m = Client().GetManifest(repo_);
  ASSERT_FALSE(m);
  EXPECT_EQ(calls, 1 + 4);
  EXPECT_EQ(clock_.sleeps(), (std::vector<std::chrono::milliseconds>{10ms, 20ms, 40ms}));
}

TEST_F(FaultTest, TimeBudgetEndsRetriesWithEtimedout) {
  options_.retry.max_attempts = 100;
  options_.retry.total_budget = 100ms;
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (r.url.find("/manifests/") != std::string::npos) {
      return FakeReply{200, {}, "", Error(ETIMEDOUT, "GET x: Operation timed out"), 0};
    }
    return std::nullopt;
  };
  auto m = Client().GetManifest(repo_);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), ETIMEDOUT);
  EXPECT_NE(m.error().message().find("time budget 100 ms"), std::string::npos)
      << m.error().message();
  // 10 + 20 + 40 = 70 ms slept; the next (80 ms) would pass the budget.
  EXPECT_EQ(clock_.sleeps(), (std::vector<std::chrono::milliseconds>{10ms, 20ms, 40ms}));
}

TEST_F(FaultTest, UnreachableRegistryGetsOneQuickRetryWhenThePolicySaysSo) {
  for (int code : {ECONNREFUSED, EHOSTUNREACH}) {
    registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
      if (r.url.find("/manifests/") != std::string::npos) {
        return FakeReply{200, {}, "", Error(code, "GET x: Could not connect"), 0};
      }
      return std::nullopt;
    };
    // The one-shot tools' policy: two attempts, the errno kept.
    options_.retry.max_unreachable_attempts = 2;
    client_.reset();
    size_t slept = clock_.sleeps().size();
    auto m = Client().GetManifest(repo_);
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().code(), code);
    EXPECT_EQ(m.error().message(),
              "reg.io/lib/x: manifest latest: GET x: Could not connect (gave up after 2 attempts)");
    auto since = [&] {
      auto all = clock_.sleeps();
      return std::vector<std::chrono::milliseconds>(all.begin() + slept, all.end());
    };
    EXPECT_EQ(since(), (std::vector<std::chrono::milliseconds>{10ms}));
    // Unset (mounts): the whole policy, as before.
    options_.retry.max_unreachable_attempts = 0;
    client_.reset();
    slept = clock_.sleeps().size();
    m = Client().GetManifest(repo_);
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().code(), EIO);
    EXPECT_EQ(since(), (std::vector<std::chrono::milliseconds>{10ms, 20ms, 40ms}));
  }
}

TEST_F(FaultTest, NonTransientTransportErrorIsNotRetried) {
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (r.url.find("/manifests/") != std::string::npos) {
      return FakeReply{200, {}, "", Error(EPROTO, "GET x: SSL certificate problem"), 0};
    }
    return std::nullopt;
  };
  auto m = Client().GetManifest(repo_);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), EPROTO);
  EXPECT_EQ(m.error().message(), "reg.io/lib/x: manifest latest: GET x: SSL certificate problem");
  EXPECT_TRUE(clock_.sleeps().empty());
}

TEST_F(FaultTest, ResolveSelectsPlatformFromNestedIndex) {
  std::string config =
      R"({"architecture":"arm64","os":"linux","config":{"Env":["A=1"]},"rootfs":{"type":"layers","diff_ids":[]}})";
  std::string arm = ManifestJson(Digest::Of(config), config.size(), Digest::Of(Blob()));
  std::string amd = ManifestJson(Digest::Of("other config"), 12, Digest::Of(Blob()));
  auto entry = [](const std::string& type, const std::string& body, const std::string& plat) {
    return R"({"mediaType":")" + type + R"(","digest":")" + Digest::Of(body).str() +
           R"(","size":)" + std::to_string(body.size()) + R"(,"platform":)" + plat + "}";
  };
  std::string inner =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)" +
      entry("application/vnd.oci.image.manifest.v1+json", amd,
            R"({"os":"linux","architecture":"amd64"})") +
      "," +
      entry("application/vnd.oci.image.manifest.v1+json", arm,
            R"({"os":"linux","architecture":"arm64","variant":"v8"})") +
      "]}";
  std::string attestation = "{}";
  std::string outer =
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[)" +
      entry("application/vnd.oci.image.manifest.v1+json", attestation,
            R"({"os":"unknown","architecture":"unknown"})") +
      "," +
      entry("application/vnd.oci.image.index.v1+json", inner,
            R"({"os":"linux","architecture":"arm64"})") +
      "]}";
  std::map<std::string, std::pair<std::string, std::string>> manifests = {
      {"latest", {std::string(kMediaTypeDockerManifestList), outer}},
      {Digest::Of(inner).str(), {std::string(kMediaTypeOciIndex), inner}},
      {Digest::Of(arm).str(), {std::string(kMediaTypeOciManifest), arm}},
      {Digest::Of(amd).str(), {std::string(kMediaTypeOciManifest), amd}}};
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    std::string prefix = "https://reg.io/v2/lib/x/manifests/";
    if (r.url.starts_with(prefix)) {
      auto it = manifests.find(r.url.substr(prefix.size()));
      if (it == manifests.end()) return std::nullopt;
      return FakeReply{200, {{"Content-Type", it->second.first}}, it->second.second};
    }
    if (r.url == BlobUrl(Digest::Of(config))) return FakeReply{200, {}, config};
    return std::nullopt;
  };
  auto img = Client().Resolve(repo_, *Platform::Parse("linux/arm64"));
  ASSERT_TRUE(img) << img.error().message();
  ASSERT_TRUE(img->index);
  EXPECT_EQ(img->index->bytes, outer);
  EXPECT_EQ(img->manifest_bytes.bytes, arm);
  EXPECT_EQ(img->manifest_bytes.digest, Digest::Of(arm));
  EXPECT_EQ(img->manifest.layers.size(), 1u);
  EXPECT_EQ(img->config.architecture, "arm64");
  EXPECT_EQ(img->config.env, std::vector<std::string>{"A=1"});
  EXPECT_EQ(img->config.raw, config);

  auto none = Client().Resolve(repo_, *Platform::Parse("linux/ppc64le"));
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), ENOENT);
  EXPECT_NE(none.error().message().find("no manifest for platform linux/ppc64le"),
            std::string::npos);
}

TEST_F(FaultTest, ReadRangesKeepsSeveralInFlight) {
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0, max_in_flight = 0;
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (!r.url.starts_with(BlobUrl(Digest::Of(Blob())))) return std::nullopt;
    if (r.Header("Range") != "bytes=0-0") {  // not the warm-up read
      std::unique_lock lock(mu);
      ++in_flight;
      max_in_flight = std::max(max_in_flight, in_flight);
      cv.notify_all();
      cv.wait_for(lock, 5s, [&] { return max_in_flight >= 4; });
      --in_flight;
    }
    auto range = r.Header("Range").value();
    size_t a = std::stoul(range.substr(6));
    size_t b = std::stoul(range.substr(range.find('-') + 1));
    return FakeReply{
        206,
        {{"Content-Range", "bytes " + std::to_string(a) + "-" + std::to_string(b) + "/1000"}},
        Blob().substr(a, b - a + 1)};
  };
  auto src = Client().OpenBlobSource(repo_);
  ASSERT_TRUE(src->ReadAt(Digest::Of(Blob()), 0, 1));  // warm the token first
  std::vector<ByteRange> ranges;
  for (int i = 0; i < 8; ++i) ranges.push_back({static_cast<uint64_t>(i * 100 + 3), 50});
  auto results = src->ReadRanges(Digest::Of(Blob()), ranges);
  ASSERT_EQ(results.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(results[i]) << results[i].error().message();
    EXPECT_EQ(*results[i], Blob().substr(i * 100 + 3, 50));
  }
  EXPECT_GE(max_in_flight, 4);
}

TEST_F(FaultTest, MonolithicUploadFollowsRelativeLocationWithQuery) {
  std::string data = "layer bytes";
  Digest d = Digest::Of(data);
  registry_.valid_token = 1;
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (r.method == "POST" && r.url == "https://reg.io/v2/lib/x/blobs/uploads/") {
      return FakeReply{202, {{"Location", "/v2/lib/x/blobs/uploads/u1?_state=abc"}}, ""};
    }
    if (r.method == "PUT" && r.url.starts_with("https://reg.io/v2/lib/x/blobs/uploads/u1")) {
      return FakeReply{201, {{"Docker-Content-Digest", d.str()}}, ""};
    }
    return std::nullopt;
  };
  Status s = Client().UploadBlob(repo_, d, data);
  ASSERT_TRUE(s) << s.error().message();
  auto puts = transport_->RequestsTo("https://reg.io/v2/lib/x/blobs/uploads/u1");
  ASSERT_EQ(puts.size(), 1u);
  EXPECT_EQ(puts[0].url, "https://reg.io/v2/lib/x/blobs/uploads/u1?_state=abc&digest=" +
                             std::string("sha256%3A") + std::string(d.hex()));
  EXPECT_EQ(puts[0].body, data);
  EXPECT_EQ(puts[0].Header("Content-Type"), "application/octet-stream");
  auto tokens = transport_->RequestsTo("https://auth.io/token");
  ASSERT_FALSE(tokens.empty());
  EXPECT_NE(tokens[0].url.find("scope=repository%3Alib%2Fx%3Apull%2Cpush"), std::string::npos);
}

TEST_F(FaultTest, ChunkedUploadHonoursMinimumChunkAndNewLocations) {
  std::string data;
  for (int i = 0; i < 25; ++i) data.push_back(static_cast<char>('A' + i));
  Digest d = Digest::Of(data);
  std::string received;
  int patches = 0;
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (r.method == "POST") {
      return FakeReply{202, {{"Location", "/up/s0"}, {"OCI-Chunk-Min-Length", "10"}}, ""};
    }
    if (r.method == "PATCH" && r.url == "https://reg.io/up/s" + std::to_string(patches)) {
      std::string range = r.Header("Content-Range").value_or("");
      std::string want = std::to_string(received.size()) + "-" +
                         std::to_string(received.size() + r.body.size() - 1);
      if (range != want) return FakeReply{416, {}, ""};
      received += r.body;
      ++patches;
      return FakeReply{202,
                       {{"Location", "https://reg.io/up/s" + std::to_string(patches)},
                        {"Range", "0-" + std::to_string(received.size() - 1)}},
                       ""};
    }
    if (r.method == "PUT" &&
        r.url == "https://reg.io/up/s3?digest=sha256%3A" + std::string(d.hex())) {
      if (received != data || !r.body.empty()) return FakeReply{400, {}, ""};
      return FakeReply{201, {}, ""};
    }
    return std::nullopt;
  };
  size_t pos = 0;
  BlobReader reader = [&](char* buf, size_t max) -> Result<size_t> {
    size_t n = std::min<size_t>({max, data.size() - pos, 3});  // a slow reader
    std::memcpy(buf, data.data() + pos, n);
    pos += n;
    return n;
  };
  Status s = Client().UploadBlobChunked(repo_, d, data.size(), reader, /*chunk_size=*/4);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(patches, 3);  // 10 + 10 + 5, not 4-byte chunks
  EXPECT_EQ(received, data);
}

TEST_F(FaultTest, CrossRepositoryMount) {
  Digest d = Digest::Of(Blob());
  int mode = 201;
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (r.method == "POST" && r.url.starts_with("https://reg.io/v2/lib/x/blobs/uploads/?mount=")) {
      if (mode == 201) return FakeReply{201, {{"Location", "/v2/lib/x/blobs/" + d.str()}}, ""};
      return FakeReply{202, {{"Location", "/v2/lib/x/blobs/uploads/u9"}}, ""};
    }
    if (r.method == "DELETE") return FakeReply{204, {}, ""};
    return std::nullopt;
  };
  auto mounted = Client().MountBlob(repo_, d, "other/repo");
  ASSERT_TRUE(mounted) << mounted.error().message();
  EXPECT_TRUE(*mounted);
  auto posts = transport_->RequestsTo("https://reg.io/v2/lib/x/blobs/uploads/?mount=");
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].url, "https://reg.io/v2/lib/x/blobs/uploads/?mount=sha256%3A" +
                              std::string(d.hex()) + "&from=other%2Frepo");
  auto tokens = transport_->RequestsTo("https://auth.io/token");
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_NE(tokens[0].url.find("scope=repository%3Alib%2Fx%3Apull%2Cpush"), std::string::npos);
  EXPECT_NE(tokens[0].url.find("scope=repository%3Aother%2Frepo%3Apull"), std::string::npos);
  mode = 202;
  mounted = Client().MountBlob(repo_, d, "other/repo");
  ASSERT_TRUE(mounted);
  EXPECT_FALSE(*mounted);
}

TEST_F(FaultTest, PutManifestAndTag) {
  std::string body = ManifestJson(Digest::Of("c"), 1, Digest::Of(Blob()));
  std::map<std::string, std::string> stored;
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    std::string prefix = "https://reg.io/v2/lib/x/manifests/";
    if (!r.url.starts_with(prefix)) return std::nullopt;
    std::string ref = r.url.substr(prefix.size());
    if (r.method == "PUT") {
      if (r.Header("Content-Type") != kMediaTypeOciManifest) return FakeReply{400, {}, ""};
      stored[ref] = r.body;
      return FakeReply{201, {{"Docker-Content-Digest", Digest::Of(r.body).str()}}, ""};
    }
    if (!stored.count(ref)) return std::nullopt;
    return FakeReply{200, {{"Content-Type", std::string(kMediaTypeOciManifest)}}, stored[ref]};
  };
  auto d = Client().PutManifest(repo_.WithTag("v1"), kMediaTypeOciManifest, body);
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(*d, Digest::Of(body));
  ASSERT_TRUE(Client().Tag(repo_.WithTag("v1"), "v2"));
  EXPECT_EQ(stored.at("v2"), body);  // exact bytes
  auto bad = Client().PutManifest(repo_.WithDigest(Digest::Of("x")), kMediaTypeOciManifest, body);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), EINVAL);
  EXPECT_FALSE(Client().Tag(repo_.WithTag("v1"), "bad tag"));
}

TEST_F(FaultTest, ListingFollowsLinkPagination) {
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (r.url == "https://reg.io/v2/lib/x/tags/list?n=2") {
      return FakeReply{200,
                       {{"Link", R"(</v2/lib/x/tags/list?last=b&n=2>; rel="next")"}},
                       R"({"name":"lib/x","tags":["a","b"]})"};
    }
    if (r.url == "https://reg.io/v2/lib/x/tags/list?last=b&n=2") {
      return FakeReply{200,
                       {{"Link", R"(</v2/lib/x/tags/list?last=d&n=2>; rel="next")"}},
                       R"({"name":"lib/x","tags":["c","d"]})"};
    }
    if (r.url == "https://reg.io/v2/lib/x/tags/list?last=d&n=2") {
      return FakeReply{200, {}, R"({"name":"lib/x","tags":["e"]})"};
    }
    if (r.url == "https://reg.io/v2/_catalog") {
      return FakeReply{200, {}, R"({"repositories":["lib/x","y"]})"};
    }
    return std::nullopt;
  };
  auto tags = Client().ListTags(repo_, 2);
  ASSERT_TRUE(tags) << tags.error().message();
  EXPECT_EQ(*tags, (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  auto repos = Client().Catalog("reg.io");
  ASSERT_TRUE(repos) << repos.error().message();
  EXPECT_EQ(*repos, (std::vector<std::string>{"lib/x", "y"}));
}

TEST_F(FaultTest, SchemeChoice) {
  options_.insecure_registries = {"plain.example:5000"};
  RegistryClient c(transport_, nullptr, options_);
  EXPECT_EQ(c.BaseUrl("localhost:5000"), "http://localhost:5000");
  EXPECT_EQ(c.BaseUrl("127.0.0.1:5000"), "http://127.0.0.1:5000");
  EXPECT_EQ(c.BaseUrl("[::1]:5000"), "http://[::1]:5000");
  EXPECT_EQ(c.BaseUrl("plain.example:5000"), "http://plain.example:5000");
  EXPECT_EQ(c.BaseUrl("plain.example"), "https://plain.example");
  EXPECT_EQ(c.BaseUrl("docker.io"), "https://registry-1.docker.io");
  EXPECT_EQ(c.BaseUrl("ghcr.io"), "https://ghcr.io");
}

TEST_F(FaultTest, ExpiredTokenIsRefreshedBeforeUse) {
  registry_.route = [&](const RecordedRequest&) -> std::optional<FakeReply> {
    return FakeReply{200, {}, R"({"tags":[]})"};
  };
  ASSERT_TRUE(Client().ListTags(repo_));
  EXPECT_EQ(registry_.tokens_issued, 1);
  clock_.SleepFor(200s);  // expires_in is 300 s; a 10 s margin is kept
  ASSERT_TRUE(Client().ListTags(repo_));
  EXPECT_EQ(registry_.tokens_issued, 1);
  clock_.SleepFor(95s);
  registry_.valid_token = 2;
  ASSERT_TRUE(Client().ListTags(repo_));
  EXPECT_EQ(registry_.tokens_issued, 2);
  // Fetched before use: no request went out with the stale token and came back 401.
  auto lists = transport_->RequestsTo("https://reg.io/v2/lib/x/tags/list");
  ASSERT_EQ(lists.size(), 4u);  // the first one anonymous (401)
  EXPECT_EQ(lists[3].Header("Authorization"), "Bearer t2");
}

TEST(Backoff, Policy) {
  RetryPolicy p;
  p.base_delay = 100ms;
  p.max_delay = 1000ms;
  p.jitter = 0.5;
  EXPECT_EQ(BackoffDelay(p, 1, 0.0), 100ms);
  EXPECT_EQ(BackoffDelay(p, 2, 0.0), 200ms);
  EXPECT_EQ(BackoffDelay(p, 4, 0.0), 800ms);
  EXPECT_EQ(BackoffDelay(p, 5, 0.0), 1000ms);
  EXPECT_EQ(BackoffDelay(p, 50, 0.0), 1000ms);
  EXPECT_EQ(BackoffDelay(p, 2, 1.0), 100ms);  // full jitter takes off half
  EXPECT_EQ(BackoffDelay(p, 2, 0.5), 150ms);
}

// A hosts.toml mirror (anonymous, https://mirror.io) in front of reg.io that answers 200 to a
// Range request, 503 to a manifest and a wrong body for a blob: each request falls through to
// reg.io after ONE attempt on the mirror, with no backoff sleep, and gets the right bytes.
TEST_F(FaultTest, MirrorFaultsFallThroughPerRequestWithoutRetries) {
  HostsToml file;
  file.path = "hosts.toml";
  file.hosts.push_back({.scheme = "https", .host = "mirror.io", .api_root = "/v2"});
  options_.mirrors = MirrorResolver::FromParsed({{"reg.io", file}}, {});
  const Digest blob = Digest::Of(Blob());
  std::string manifest = ManifestJson(Digest::Of("c"), 1, blob);
  std::atomic<int> mirror_calls{0};
  std::string mirror_first;
  std::vector<std::string> reg_urls;
  std::mutex mu;
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (r.url.starts_with("https://mirror.io/")) {
      if (++mirror_calls == 1) mirror_first = r.url;
      EXPECT_FALSE(r.Header("Authorization").has_value());
      if (r.url.find("/manifests/") != std::string::npos) return FakeReply{503, {}, "busy"};
      if (r.Header("Range")) return FakeReply{200, {}, Blob()};  // Range ignored
      std::string bad = Blob();
      bad[7] ^= 1;
      return FakeReply{200, {}, bad};
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      reg_urls.push_back(r.url);
    }
    if (r.url.find("/manifests/") != std::string::npos) {
      return FakeReply{
          200, {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}}, manifest};
    }
    if (r.url == BlobUrl(blob)) {
      if (r.Header("Range")) {
        return FakeReply{206, {{"Content-Range", "bytes 100-149/1000"}}, Blob().substr(100, 50)};
      }
      return FakeReply{200, {}, Blob()};
    }
    return std::nullopt;
  };
  auto m = Client().GetManifest(repo_);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->bytes, manifest);
  EXPECT_EQ(mirror_calls.load(), 1);
  auto src = Client().OpenBlobSource(repo_);
  auto range = src->ReadAt(blob, 100, 50);
  ASSERT_TRUE(range) << range.error().message();
  EXPECT_EQ(*range, Blob().substr(100, 50));
  EXPECT_EQ(mirror_calls.load(), 2);
  auto whole = Client().GetBlob(repo_, blob, 1 << 20);
  ASSERT_TRUE(whole) << whole.error().message();
  EXPECT_EQ(*whole, Blob());
  EXPECT_EQ(mirror_calls.load(), 3);
  EXPECT_TRUE(clock_.sleeps().empty());  // a mirror's failure is not a backoff
  EXPECT_EQ(mirror_first, "https://mirror.io/v2/lib/x/manifests/latest?ns=reg.io");
  EXPECT_EQ(reg_urls, (std::vector<std::string>{"https://reg.io/v2/lib/x/manifests/latest",
                                                BlobUrl(blob), BlobUrl(blob)}));
}

// A re-read that skips mirrors (ReadRoute::skip_mirrors, the chunk refetch after bad bytes):
// two hosts.toml mirrors in front of reg.io. A plain read is served by the first mirror and
// says so; the skipping read goes to reg.io alone, with no request to either mirror.
TEST_F(FaultTest, SkipMirrorsReadsFromTheRegistryOnly) {
  HostsToml file;
  file.path = "hosts.toml";
  file.hosts.push_back({.scheme = "https", .host = "mirror1.io", .api_root = "/v2"});
  file.hosts.push_back({.scheme = "https", .host = "mirror2.io", .api_root = "/v2"});
  options_.mirrors = MirrorResolver::FromParsed({{"reg.io", file}}, {});
  const Digest blob = Digest::Of(Blob());
  std::vector<std::string> urls;
  std::mutex mu;
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    {
      std::lock_guard<std::mutex> lock(mu);
      urls.push_back(r.url);
    }
    std::string body = Blob().substr(100, 50);
    if (r.url.starts_with("https://mirror1.io/")) body[3] ^= 1;  // wrong bytes, right length
    return FakeReply{206, {{"Content-Range", "bytes 100-149/1000"}}, body};
  };
  auto src = Client().OpenBlobSource(repo_);
  ReadRoute first;
  auto bad = src->ReadAtRouted(blob, 100, 50, first);
  ASSERT_TRUE(bad) << bad.error().message();
  EXPECT_NE(*bad, Blob().substr(100, 50));
  EXPECT_EQ(first.served_by, "mirror1.io");
  EXPECT_TRUE(first.served_by_mirror);
  const std::string mirror_url = "https://mirror1.io/v2/lib/x/blobs/" + blob.str() + "?ns=reg.io";
  EXPECT_EQ(first.served_url, mirror_url);

  ReadRoute again;
  again.skip_mirrors = true;
  auto good = src->ReadAtRouted(blob, 100, 50, again);
  ASSERT_TRUE(good) << good.error().message();
  EXPECT_EQ(*good, Blob().substr(100, 50));
  EXPECT_EQ(again.served_by, "reg.io");
  EXPECT_FALSE(again.served_by_mirror);
  EXPECT_EQ(again.served_url, BlobUrl(blob));
  EXPECT_EQ(urls, (std::vector<std::string>{mirror_url, BlobUrl(blob)}));
  EXPECT_TRUE(clock_.sleeps().empty());
}

// When every host may pull only as a mirror (the server lacks the pull capability), a read
// that skips mirrors sends nothing and fails with EIO naming the mirrors.
TEST_F(FaultTest, SkipMirrorsWithOnlyMirrorsFailsSayingSo) {
  HostsToml file;
  file.path = "hosts.toml";
  file.hosts.push_back({.scheme = "https", .host = "mirror1.io", .api_root = "/v2"});
  file.hosts.push_back({.scheme = "https", .host = "mirror2.io", .api_root = "/v2"});
  file.server = HostsTomlHost{
      .scheme = "https", .host = "reg.io", .api_root = "/v2", .capabilities = kHostResolve};
  options_.mirrors = MirrorResolver::FromParsed({{"reg.io", file}}, {});
  const Digest blob = Digest::Of(Blob());
  std::atomic<int> calls{0};
  registry_.route = [&](const RecordedRequest&) -> std::optional<FakeReply> {
    ++calls;
    return FakeReply{206, {{"Content-Range", "bytes 100-149/1000"}}, Blob().substr(100, 50)};
  };
  auto src = Client().OpenBlobSource(repo_);
  ReadRoute route;
  route.skip_mirrors = true;
  auto r = src->ReadAtRouted(blob, 100, 50, route);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EIO);
  EXPECT_EQ(r.error().message(),
            "reg.io/lib/x: blob " + blob.str() +
                " bytes 100-149: every host configured for reg.io is a mirror (mirror1.io, "
                "mirror2.io); no registry to read from without them");
  EXPECT_EQ(calls.load(), 0);
  EXPECT_TRUE(route.served_by.empty());
  // Without skipping, the first mirror serves it.
  ReadRoute plain;
  auto ok = src->ReadAtRouted(blob, 100, 50, plain);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(plain.served_by, "mirror1.io");
  EXPECT_EQ(calls.load(), 1);
}

// A hosts.toml mirror with its own TLS settings (ca, client, as hosts.toml's `ca`/`client`) and
// Bearer auth whose realm is on another host: the token requests and the requests to the mirror
// all carry the mirror's TLS settings (the seam: the transport sees them per request);
// the upstream's requests carry none. A push goes to the mirror (capability "push"), and the
// upload's PUT to the Location the mirror gave stays on the mirror, authorized and with its TLS.
TEST_F(FaultTest, MirrorTokenRequestsUseTheMirrorsTls) {
  HostsToml file;
  file.path = "hosts.toml";
  HostsTomlHost mirror{.scheme = "https", .host = "mirror.io", .api_root = "/v2"};
  mirror.ca_pem = "-----BEGIN CERTIFICATE-----\nprivate CA\n-----END CERTIFICATE-----\n";
  mirror.client_certs = {{"/etc/certs/client.cert", "/etc/certs/client.key"}};
  file.hosts.push_back(mirror);
  options_.mirrors = MirrorResolver::FromParsed({{"reg.io", file}}, {});
  const std::string manifest = ManifestJson(Digest::Of("c"), 1, Digest::Of(Blob()));
  constexpr char kMirrorChallenge[] =
      R"(Bearer realm="https://mirror-auth.io/token",service="mirror.io")";
  std::vector<RecordedRequest> mirror_side;
  std::mutex mu;
  registry_.route = [&](const RecordedRequest& r) -> std::optional<FakeReply> {
    const bool auth_host = r.url.starts_with("https://mirror-auth.io/");
    if (!auth_host && !r.url.starts_with("https://mirror.io/")) return std::nullopt;
    {
      std::lock_guard<std::mutex> lock(mu);
      mirror_side.push_back(r);
    }
    if (auth_host) return FakeReply{200, {}, R"({"token":"mt","expires_in":300})"};
    if (r.Header("Authorization") != "Bearer mt") {
      return FakeReply{401, {{"WWW-Authenticate", kMirrorChallenge}}, ""};
    }
    if (r.url == "https://mirror.io/v2/") return FakeReply{200, {}, "{}"};
    if (r.url.find("/manifests/") != std::string::npos && r.method == "GET") {
      return FakeReply{
          200, {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}}, manifest};
    }
    if (r.method == "POST" && r.url.starts_with("https://mirror.io/v2/lib/x/blobs/uploads/")) {
      return FakeReply{202, {{"Location", "/v2/lib/x/blobs/uploads/u1?_state=s"}}, ""};
    }
    if (r.method == "PUT" && r.url.starts_with("https://mirror.io/v2/lib/x/blobs/uploads/u1")) {
      return FakeReply{201, {}, ""};
    }
    return std::nullopt;
  };
  auto m = Client().GetManifest(repo_);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->bytes, manifest);
  ASSERT_TRUE(Client().UploadBlob(repo_, Digest::Of("blob"), "blob"));

  std::vector<std::string> seen;
  for (const RecordedRequest& r : mirror_side) {
    seen.push_back(r.method + " " + r.url);
    EXPECT_EQ(r.tls.ca_pem, mirror.ca_pem) << r.url;
    EXPECT_EQ(r.tls.client_cert, "/etc/certs/client.cert") << r.url;
    EXPECT_EQ(r.tls.client_key, "/etc/certs/client.key") << r.url;
    EXPECT_FALSE(r.tls.skip_verify) << r.url;
  }
  const std::string token =
      "GET https://mirror-auth.io/token?service=mirror.io&scope=repository%3Alib%2Fx%3A";
  EXPECT_EQ(seen, (std::vector<std::string>{
                      "GET https://mirror.io/v2/lib/x/manifests/latest?ns=reg.io",
                      token + "pull",
                      "GET https://mirror.io/v2/lib/x/manifests/latest?ns=reg.io",
                      token + "pull%2Cpush",
                      "POST https://mirror.io/v2/lib/x/blobs/uploads/?ns=reg.io",
                      "PUT https://mirror.io/v2/lib/x/blobs/uploads/u1?_state=s&digest=" +
                          QueryEscape(Digest::Of("blob").str()),
                  }));
  EXPECT_EQ(mirror_side.back().Header("Authorization"), "Bearer mt");
  // Nothing went to the upstream or its token server.
  EXPECT_TRUE(transport_->RequestsTo("https://reg.io/").empty());
  EXPECT_TRUE(transport_->RequestsTo("https://auth.io/").empty());
}

}  // namespace
}  // namespace hoist
