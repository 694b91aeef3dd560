// fetcher/referrers.h over a scripted transport: the paths the real test registry (distribution
// 2.8, no referrers API) cannot show. A registry WITH the OCI 1.1 referrers API (OCI-Subject on
// the manifest PUT, GET /referrers/ with Link pages, OCI-Filters-Applied), one without it (the
// tag schema fallback), hostile answers (caps, loops, lies) and tampered artifacts.
#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include "base/digest.h"
#include "base/rfc3339.h"
#include "fake_transport.h"
#include "fetcher/manifest.h"
#include "fetcher/referrers.h"
#include "fetcher/registry.h"
#include "rapidjson/document.h"

namespace hoist {
namespace {

using testing_fakes::FakeClock;
using testing_fakes::FakeReply;
using testing_fakes::FakeTransport;
using testing_fakes::RecordedRequest;

constexpr char kBase[] = "https://reg.io/v2/lib/x/";
constexpr char kTraceType[] = "application/vnd.hoist.access-trace.v1";
constexpr char kIndexType[] = "application/vnd.hoist.gzip-index.v1";
constexpr char kTraceBlobType[] = "application/vnd.hoist.access-trace.v1+json";

FakeReply NotFound(const char* code) {
  return {404,
          {{"Content-Type", "application/json"}},
          std::string(R"({"errors":[{"code":")") + code + R"(","message":"unknown"}]})"};
}

// An in-memory registry for the repository lib/x at https://reg.io, anonymous.
class MemRegistry {
 public:
  bool referrers_api = false;  // OCI 1.1: OCI-Subject on PUT, GET /referrers/
  bool honour_filter = true;   // the referrers API filters by artifactType
  bool claim_filter = true;    // ... and says it did (OCI-Filters-Applied), true or not
  size_t page_size = 0;        // referrers API: entries per page (0 = one page)
  // Overrides for single answers (checked first).
  std::function<std::optional<FakeReply>(const RecordedRequest&)> route;

  FakeReply Handle(const RecordedRequest& r) {
    if (route) {
      if (auto reply = route(r)) return *reply;
    }
    std::lock_guard lock(mu_);
    if (!r.url.starts_with(kBase)) return NotFound("NAME_UNKNOWN");
    std::string rest = r.url.substr(std::string(kBase).size());
    std::string query;
    if (size_t q = rest.find('?'); q != std::string::npos) {
      query = rest.substr(q + 1);
      rest = rest.substr(0, q);
    }
    if (rest.starts_with("blobs/uploads/")) {
      if (r.method == "POST") return {202, {{"Location", "/v2/lib/x/blobs/uploads/u1"}}, ""};
      if (r.method == "PUT") {
        std::string digest = query.substr(query.find("digest=") + 7);
        digest.replace(digest.find("%3A"), 3, ":");
        blobs_[digest] = r.body;
        return {201, {{"Docker-Content-Digest", digest}}, ""};
      }
    }
    if (rest.starts_with("blobs/")) {
      auto it = blobs_.find(rest.substr(6));
      if (it == blobs_.end()) return NotFound("BLOB_UNKNOWN");
      return {200, {{"Content-Length", std::to_string(it->second.size())}}, it->second};
    }
    if (rest.starts_with("manifests/")) {
      std::string id = rest.substr(10);
      if (r.method == "PUT") {
        std::string type = r.Header("Content-Type").value_or("");
        Digest d = Digest::Of(r.body);
        manifests_[id] = {type, r.body};
        manifests_[d.str()] = {type, r.body};
        HttpHeaderList headers = {{"Docker-Content-Digest", d.str()}};
        if (referrers_api && type == kMediaTypeOciManifest) {
          auto m = ParseImageManifest(r.body, type);
          if (m && m->subject) {
            headers.emplace_back("OCI-Subject", m->subject->digest.str());
            referrers_[m->subject->digest.str()].push_back(
                {.media_type = type,
                 .digest = d,
                 .size = static_cast<int64_t>(r.body.size()),
                 .annotations = m->annotations,
                 .artifact_type = m->artifact_type});
          }
        }
        return {201, headers, ""};
      }
      auto it = manifests_.find(id);
      if (it == manifests_.end()) return NotFound("MANIFEST_UNKNOWN");
      return {200,
              {{"Content-Type", it->second.first},
               {"Docker-Content-Digest", Digest::Of(it->second.second).str()}},
              it->second.second};
    }
    if (rest.starts_with("referrers/")) {
      if (!referrers_api) return NotFound("UNSUPPORTED");
      return ServeReferrers(rest.substr(10), query);
    }
    return NotFound("UNSUPPORTED");
  }

  // Stores a manifest (or anything) under `id` as served bytes.
  void Put(const std::string& id, const std::string& type, const std::string& bytes) {
    std::lock_guard lock(mu_);
    manifests_[id] = {type, bytes};
  }
  void PutBlob(const std::string& digest, const std::string& bytes) {
    std::lock_guard lock(mu_);
    blobs_[digest] = bytes;
  }
  std::string Manifest(const std::string& id) {
    std::lock_guard lock(mu_);
    auto it = manifests_.find(id);
    return it == manifests_.end() ? "" : it->second.second;
  }

 private:
  FakeReply ServeReferrers(const std::string& subject, const std::string& query) {
    std::string filter, filter_query;
    size_t start = 0;
    for (std::string_view q = query; !q.empty();) {
      size_t amp = q.find('&');
      std::string_view item = q.substr(0, amp);
      if (item.starts_with("artifactType=")) {
        filter = std::string(item.substr(13));
        filter_query = "&" + std::string(item);
      }
      if (item.starts_with("start=")) start = std::stoul(std::string(item.substr(6)));
      q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    }
    // Query values arrive percent-encoded ('/' and '+'); these types need only those two.
    for (auto [from, to] : {std::pair{"%2F", "/"}, std::pair{"%2B", "+"}}) {
      for (size_t p; (p = filter.find(from)) != std::string::npos;) filter.replace(p, 3, to);
    }
    std::vector<Descriptor> all;
    for (const Descriptor& d : referrers_[subject]) {
      if (honour_filter && !filter.empty() && d.artifact_type != filter) continue;
      all.push_back(d);
    }
    size_t end = page_size == 0 ? all.size() : std::min(all.size(), start + page_size);
    std::string body =
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)";
    for (size_t i = start; i < end; ++i) {
      if (i > start) body += ",";
      body += R"({"mediaType":")" + all[i].media_type + R"(","digest":")" + all[i].digest.str() +
              R"(","size":)" + std::to_string(all[i].size) + R"(,"artifactType":")" +
              all[i].artifact_type + R"("})";
    }
    body += "]}";
    HttpHeaderList headers = {{"Content-Type", std::string(kMediaTypeOciIndex)}};
    if (claim_filter && !filter.empty())
      headers.emplace_back("OCI-Filters-Applied", "artifactType");
    if (end < all.size()) {
      std::string next =
          "/v2/lib/x/referrers/" + subject + "?start=" + std::to_string(end) + filter_query;
      headers.emplace_back("Link", "<" + next + ">; rel=\"next\"");
    }
    return {200, headers, body};
  }

  std::mutex mu_;
  std::map<std::string, std::pair<std::string, std::string>> manifests_;
  std::map<std::string, std::string> blobs_;
  std::map<std::string, std::vector<Descriptor>> referrers_;
};

class ReferrersTest : public testing::Test {
 protected:
  void SetUp() override {
    transport_ = std::make_shared<FakeTransport>(
        [this](const RecordedRequest& r) { return registry_.Handle(r); });
    RegistryOptions options;
    options.clock = &clock_;
    options.retry.max_attempts = 1;
    client_ = std::make_unique<RegistryClient>(transport_, nullptr, options);
    // The image the artifacts refer to.
    image_bytes_ =
        R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
        Digest::Of("c").str() + R"(","size":1},"layers":[]})";
    image_.media_type = std::string(kMediaTypeOciManifest);
    image_.digest = Digest::Of(image_bytes_);
    image_.size = static_cast<int64_t>(image_bytes_.size());
    registry_.Put(image_.digest.str(), image_.media_type, image_bytes_);
  }

  Result<Descriptor> Push(const std::string& type, const std::string& data,
                          std::map<std::string, std::string> annotations = {}) {
    return PushReferrer(*client_, repo_, image_, type, {{kTraceBlobType, data, {}}},
                        std::move(annotations));
  }
  std::vector<RecordedRequest> Requests(const std::string& method, const std::string& suffix) {
    std::vector<RecordedRequest> out;
    for (auto& r : transport_->RequestsTo(std::string(kBase) + suffix)) {
      if (r.method == method) out.push_back(r);
    }
    return out;
  }
  std::string TagUrlSuffix() { return "manifests/" + ReferrersTag(image_.digest); }

  Reference repo_ = *Reference::Parse("reg.io/lib/x:latest");
  FakeClock clock_;
  MemRegistry registry_;
  std::shared_ptr<FakeTransport> transport_;
  std::unique_ptr<RegistryClient> client_;
  std::string image_bytes_;
  Descriptor image_;
};

TEST_F(ReferrersTest, ArtifactManifestHasTheOciFields) {
  registry_.referrers_api = true;
  auto pushed = Push(kTraceType, "trace-1", {{"com.example.k", "v"}});
  ASSERT_TRUE(pushed) << pushed.error().message();
  auto puts = Requests("PUT", "manifests/sha256:");
  ASSERT_EQ(puts.size(), 1u);
  const std::string& bytes = puts[0].body;
  EXPECT_EQ(puts[0].url, std::string(kBase) + "manifests/" + Digest::Of(bytes).str());
  EXPECT_EQ(puts[0].Header("Content-Type"), std::string(kMediaTypeOciManifest));
  EXPECT_EQ(pushed->digest, Digest::Of(bytes));
  EXPECT_EQ(pushed->size, static_cast<int64_t>(bytes.size()));
  EXPECT_EQ(pushed->media_type, kMediaTypeOciManifest);
  EXPECT_EQ(pushed->artifact_type, kTraceType);

  rapidjson::Document doc;
  doc.Parse(bytes.data(), bytes.size());
  ASSERT_TRUE(doc.IsObject());
  EXPECT_EQ(doc["schemaVersion"].GetInt(), 2);
  EXPECT_STREQ(doc["mediaType"].GetString(), "application/vnd.oci.image.manifest.v1+json");
  EXPECT_STREQ(doc["artifactType"].GetString(), kTraceType);
  EXPECT_STREQ(doc["config"]["mediaType"].GetString(), "application/vnd.oci.empty.v1+json");
  EXPECT_STREQ(doc["config"]["digest"].GetString(),
               "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
  EXPECT_EQ(doc["config"]["size"].GetInt(), 2);
  ASSERT_EQ(doc["layers"].Size(), 1u);
  EXPECT_STREQ(doc["layers"][0]["mediaType"].GetString(), kTraceBlobType);
  EXPECT_EQ(doc["layers"][0]["digest"].GetString(), Digest::Of("trace-1").str());
  EXPECT_EQ(doc["layers"][0]["size"].GetInt(), 7);
  EXPECT_STREQ(doc["subject"]["mediaType"].GetString(), kMediaTypeOciManifest.data());
  EXPECT_EQ(doc["subject"]["digest"].GetString(), image_.digest.str());
  EXPECT_EQ(doc["subject"]["size"].GetInt64(), image_.size);
  EXPECT_STREQ(doc["annotations"]["com.example.k"].GetString(), "v");
  // The fake clock's 1700000000.
  EXPECT_STREQ(doc["annotations"]["org.opencontainers.image.created"].GetString(),
               "2023-11-14T22:13:20Z");
  EXPECT_EQ(pushed->annotations.at("org.opencontainers.image.created"), "2023-11-14T22:13:20Z");

  // Both blobs were uploaded: `{}` (the empty config) and the trace.
  auto uploads = Requests("PUT", "blobs/uploads/");
  ASSERT_EQ(uploads.size(), 2u);
  EXPECT_EQ(uploads[0].body, "{}");
  EXPECT_EQ(uploads[1].body, "trace-1");
  // A second artifact finds `{}` there and uploads only its blob.
  ASSERT_TRUE(Push(kIndexType, "index-1"));
  EXPECT_EQ(Requests("PUT", "blobs/uploads/").size(), 3u);
}

TEST_F(ReferrersTest, OciSubjectOnPutMeansNoTagSchema) {
  registry_.referrers_api = true;
  ASSERT_TRUE(Push(kTraceType, "t"));
  EXPECT_TRUE(transport_->RequestsTo(std::string(kBase) + TagUrlSuffix()).empty());
  auto list = ListReferrers(*client_, repo_, image_.digest, "");
  ASSERT_TRUE(list) << list.error().message();
  ASSERT_EQ(list->size(), 1u);
  // The tag is read alongside the API's first page (one GET, its 404 unused); never written.
  EXPECT_EQ(Requests("GET", TagUrlSuffix()).size(), 1u);
  EXPECT_TRUE(Requests("PUT", TagUrlSuffix()).empty());
}

TEST_F(ReferrersTest, NoOciSubjectUpdatesTheTagSchemaIndex) {
  auto a = Push(kTraceType, "t1", {{"org.opencontainers.image.created", "2024-01-01T00:00:00Z"}});
  ASSERT_TRUE(a) << a.error().message();
  auto b = Push(kIndexType, "i1");
  ASSERT_TRUE(b) << b.error().message();
  // GET (404), PUT; GET, PUT.
  EXPECT_EQ(Requests("GET", TagUrlSuffix()).size(), 2u);
  ASSERT_EQ(Requests("PUT", TagUrlSuffix()).size(), 2u);
  std::string index = registry_.Manifest(ReferrersTag(image_.digest));
  auto parsed = ParseImageIndex(index, kMediaTypeOciIndex);
  ASSERT_TRUE(parsed) << parsed.error().message();
  ASSERT_EQ(parsed->manifests.size(), 2u);
  EXPECT_EQ(parsed->manifests[0].digest, a->digest);
  EXPECT_EQ(parsed->manifests[0].size, a->size);
  EXPECT_EQ(parsed->manifests[0].media_type, kMediaTypeOciManifest);
  EXPECT_EQ(parsed->manifests[0].artifact_type, kTraceType);
  EXPECT_EQ(parsed->manifests[0].annotations.at("org.opencontainers.image.created"),
            "2024-01-01T00:00:00Z");
  EXPECT_EQ(parsed->manifests[1].digest, b->digest);

  // The same artifact again (same bytes, same digest): listed once, the index is not PUT again.
  auto again =
      Push(kTraceType, "t1", {{"org.opencontainers.image.created", "2024-01-01T00:00:00Z"}});
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(again->digest, a->digest);
  EXPECT_EQ(Requests("PUT", TagUrlSuffix()).size(), 2u);

  auto list = ListReferrers(*client_, repo_, image_.digest, "");
  ASSERT_TRUE(list) << list.error().message();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].digest, a->digest);
  EXPECT_EQ((*list)[1].digest, b->digest);
  auto traces = ListReferrers(*client_, repo_, image_.digest, kTraceType);
  ASSERT_TRUE(traces) << traces.error().message();
  ASSERT_EQ(traces->size(), 1u);
  EXPECT_EQ((*traces)[0].digest, a->digest);
}

TEST_F(ReferrersTest, TagSchemaKeepsMembersItDoesNotKnow) {
  std::string existing =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
      Digest::Of("other").str() +
      R"(","size":5,"artifactType":"x/y","data":"e30="}],"annotations":{"k":"v"}})";
  registry_.Put(ReferrersTag(image_.digest), std::string(kMediaTypeOciIndex), existing);
  ASSERT_TRUE(Push(kTraceType, "t"));
  std::string index = registry_.Manifest(ReferrersTag(image_.digest));
  EXPECT_NE(index.find(R"("data":"e30=")"), std::string::npos) << index;
  EXPECT_NE(index.find(R"("annotations":{"k":"v"})"), std::string::npos) << index;
  auto list = ListReferrers(*client_, repo_, image_.digest, "");
  ASSERT_TRUE(list) << list.error().message();
  EXPECT_EQ(list->size(), 2u);
}

TEST_F(ReferrersTest, NoReferrersAnywhereIsAnEmptyList) {
  auto list = ListReferrers(*client_, repo_, image_.digest, "");
  ASSERT_TRUE(list) << list.error().message();
  EXPECT_TRUE(list->empty());
  // The API (404) and the tag (404), at the same time.
  EXPECT_EQ(Requests("GET", "referrers/").size(), 1u);
  EXPECT_EQ(Requests("GET", TagUrlSuffix()).size(), 1u);
  registry_.referrers_api = true;
  list = ListReferrers(*client_, repo_, image_.digest, "");
  ASSERT_TRUE(list) << list.error().message();
  EXPECT_TRUE(list->empty());
  EXPECT_EQ(Requests("GET", "referrers/").size(), 2u);
  EXPECT_EQ(Requests("GET", TagUrlSuffix()).size(), 2u);  // read, and not used
}

TEST_F(ReferrersTest, ReferrersApiPagesAndFilter) {
  registry_.referrers_api = true;
  registry_.page_size = 2;
  std::vector<Digest> traces, indexes;
  for (int i = 0; i < 3; ++i) {
    auto t = Push(kTraceType, "t" + std::to_string(i));
    ASSERT_TRUE(t) << t.error().message();
    traces.push_back(t->digest);
    auto x = Push(kIndexType, "x" + std::to_string(i));
    ASSERT_TRUE(x) << x.error().message();
    indexes.push_back(x->digest);
  }
  auto all = ListReferrers(*client_, repo_, image_.digest, "");
  ASSERT_TRUE(all) << all.error().message();
  ASSERT_EQ(all->size(), 6u);
  EXPECT_EQ(Requests("GET", "referrers/").size(), 3u);  // 2 + 2 + 2
  EXPECT_EQ((*all)[0].digest, traces[0]);
  EXPECT_EQ((*all)[1].digest, indexes[0]);
  EXPECT_EQ((*all)[5].digest, indexes[2]);
  auto first = Requests("GET", "referrers/")[0];
  EXPECT_EQ(first.url, std::string(kBase) + "referrers/" + image_.digest.str());
  EXPECT_EQ(first.Header("Accept"), std::string(kMediaTypeOciIndex));

  // Filtered by the registry (OCI-Filters-Applied).
  auto only = ListReferrers(*client_, repo_, image_.digest, kTraceType);
  ASSERT_TRUE(only) << only.error().message();
  ASSERT_EQ(only->size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ((*only)[i].digest, traces[i]);
  auto asked = Requests("GET", "referrers/");
  EXPECT_EQ(asked[3].url, std::string(kBase) + "referrers/" + image_.digest.str() +
                              "?artifactType=application%2Fvnd.hoist.access-trace.v1");

  // A registry that ignores the filter (and says nothing): applied here.
  registry_.honour_filter = false;
  registry_.claim_filter = false;
  only = ListReferrers(*client_, repo_, image_.digest, kIndexType);
  ASSERT_TRUE(only) << only.error().message();
  ASSERT_EQ(only->size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ((*only)[i].digest, indexes[i]);
}

TEST_F(ReferrersTest, RegistryClaimingAFilterItDidNotApplyIsFilteredAnyway) {
  registry_.referrers_api = true;
  ASSERT_TRUE(Push(kTraceType, "t"));
  ASSERT_TRUE(Push(kIndexType, "x"));
  registry_.honour_filter = false;
  registry_.claim_filter = true;
  auto only = ListReferrers(*client_, repo_, image_.digest, kIndexType);
  ASSERT_TRUE(only) << only.error().message();
  ASSERT_EQ(only->size(), 1u);
  EXPECT_EQ((*only)[0].artifact_type, kIndexType);
}

// Answers every referrers GET with `reply` (tests of hostile answers).
std::function<std::optional<FakeReply>(const RecordedRequest&)> ReferrersAnswer(
    std::function<FakeReply(const RecordedRequest&)> reply) {
  return [reply](const RecordedRequest& r) -> std::optional<FakeReply> {
    if (r.url.find("/referrers/") == std::string::npos) return std::nullopt;
    return reply(r);
  };
}

std::string IndexOf(int entries, const std::string& pad = "") {
  std::string body = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",)";
  if (!pad.empty()) body += R"("annotations":{"pad":")" + pad + R"("},)";
  body += R"("manifests":[)";
  for (int i = 0; i < entries; ++i) {
    if (i > 0) body += ",";
    body += R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
            Digest::Of(std::to_string(i)).str() + R"(","size":10,"artifactType":"a/b"})";
  }
  return body + "]}";
}

TEST_F(ReferrersTest, HostileReferrersAnswersAreRefused) {
  HttpHeaderList index_type = {{"Content-Type", std::string(kMediaTypeOciIndex)}};
  ReferrerLimits limits;
  limits.max_index_bytes = 64 << 10;
  limits.max_referrers = 100;
  limits.max_pages = 5;

  // A page larger than the cap.
  registry_.route = ReferrersAnswer([&](const RecordedRequest&) {
    return FakeReply{200, index_type, IndexOf(1, std::string(100 << 10, 'a'))};
  });
  auto r = ListReferrers(*client_, repo_, image_.digest, "", limits);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EFBIG) << r.error().message();

  // Too many entries.
  registry_.route = ReferrersAnswer([&](const RecordedRequest&) {
    return FakeReply{200, index_type, IndexOf(101)};
  });
  r = ListReferrers(*client_, repo_, image_.digest, "", limits);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EFBIG) << r.error().message();

  // Pages without end (each a new URL), and pages that together pass the byte cap.
  int n = 0;
  registry_.route = ReferrersAnswer([&](const RecordedRequest&) {
    HttpHeaderList h = index_type;
    h.emplace_back("Link", "</v2/lib/x/referrers/x?p=" + std::to_string(++n) + ">; rel=\"next\"");
    return FakeReply{200, h, IndexOf(1)};
  });
  r = ListReferrers(*client_, repo_, image_.digest, "", limits);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EFBIG) << r.error().message();
  EXPECT_EQ(n, 5);
  n = 0;
  registry_.route = ReferrersAnswer([&](const RecordedRequest&) {
    HttpHeaderList h = index_type;
    h.emplace_back("Link", "</v2/lib/x/referrers/x?p=" + std::to_string(++n) + ">; rel=\"next\"");
    return FakeReply{200, h, IndexOf(1, std::string(30 << 10, 'a'))};
  });
  r = ListReferrers(*client_, repo_, image_.digest, "", limits);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EFBIG) << r.error().message();
  EXPECT_LE(n, 3);

  // A Link loop, and a Link to another host.
  registry_.route = ReferrersAnswer([&](const RecordedRequest&) {
    HttpHeaderList h = index_type;
    h.emplace_back("Link", "</v2/lib/x/referrers/x?p=1>; rel=\"next\"");
    return FakeReply{200, h, IndexOf(1)};
  });
  r = ListReferrers(*client_, repo_, image_.digest, "", limits);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EIO);
  EXPECT_NE(r.error().message().find("loops"), std::string::npos) << r.error().message();
  registry_.route = ReferrersAnswer([&](const RecordedRequest&) {
    HttpHeaderList h = index_type;
    h.emplace_back("Link", "<https://evil.io/v2/lib/x/referrers/x>; rel=\"next\"");
    return FakeReply{200, h, IndexOf(1)};
  });
  r = ListReferrers(*client_, repo_, image_.digest, "", limits);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EIO);
  EXPECT_TRUE(transport_->RequestsTo("https://evil.io").empty());

  // Not an index: a manifest, and garbage.
  registry_.route = ReferrersAnswer([&](const RecordedRequest&) {
    return FakeReply{200, {{"Content-Type", std::string(kMediaTypeOciManifest)}}, image_bytes_};
  });
  r = ListReferrers(*client_, repo_, image_.digest, "", limits);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EBADMSG) << r.error().message();
  registry_.route = ReferrersAnswer([&](const RecordedRequest&) {
    return FakeReply{200, index_type, "{\"manifests\":[{}]}"};
  });
  r = ListReferrers(*client_, repo_, image_.digest, "", limits);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EBADMSG) << r.error().message();
  // One line, naming the repository.
  EXPECT_EQ(r.error().message().find('\n'), std::string::npos);
  EXPECT_NE(r.error().message().find("reg.io/lib/x: referrers of"), std::string::npos)
      << r.error().message();
}

TEST_F(ReferrersTest, TagSchemaThatIsNotAnIndexIsRefused) {
  registry_.Put(ReferrersTag(image_.digest), std::string(kMediaTypeOciManifest), image_bytes_);
  auto r = ListReferrers(*client_, repo_, image_.digest, "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EBADMSG) << r.error().message();
  // And the push does not overwrite it.
  auto pushed = Push(kTraceType, "t");
  ASSERT_FALSE(pushed);
  EXPECT_EQ(pushed.error().code(), EBADMSG) << pushed.error().message();
  EXPECT_TRUE(Requests("PUT", TagUrlSuffix()).empty());
}

TEST_F(ReferrersTest, FetchReferrerVerifiesEverything) {
  auto pushed = Push(kTraceType, "the trace bytes");
  ASSERT_TRUE(pushed) << pushed.error().message();
  auto list = ListReferrers(*client_, repo_, image_.digest, kTraceType);
  ASSERT_TRUE(list) << list.error().message();
  ASSERT_EQ(list->size(), 1u);
  auto got = FetchReferrer(*client_, repo_, image_.digest, (*list)[0], kTraceType, kTraceBlobType,
                           1 << 20);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(got->data, "the trace bytes");
  EXPECT_EQ(got->descriptor.digest, pushed->digest);
  EXPECT_EQ(got->blob.digest, Digest::Of("the trace bytes"));

  // No layer of that type.
  auto none = FetchReferrer(*client_, repo_, image_.digest, (*list)[0], kTraceType, "x/none", 100);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), ENOENT);
  // Too big for the caller.
  auto big =
      FetchReferrer(*client_, repo_, image_.digest, (*list)[0], kTraceType, kTraceBlobType, 4);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code(), EFBIG);
  // Asked for another type.
  auto other =
      FetchReferrer(*client_, repo_, image_.digest, (*list)[0], kIndexType, kTraceBlobType, 100);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code(), EBADMSG) << other.error().message();
  // Another subject: the artifact names this image, not that one.
  auto elsewhere = FetchReferrer(*client_, repo_, Digest::Of("another image"), (*list)[0],
                                 kTraceType, kTraceBlobType, 100);
  ASSERT_FALSE(elsewhere);
  EXPECT_EQ(elsewhere.error().code(), EBADMSG);
  EXPECT_NE(elsewhere.error().message().find("refers to " + image_.digest.str()), std::string::npos)
      << elsewhere.error().message();
  // The listing lies about the size.
  Descriptor wrong_size = (*list)[0];
  wrong_size.size += 1;
  auto sized =
      FetchReferrer(*client_, repo_, image_.digest, wrong_size, kTraceType, kTraceBlobType, 100);
  ASSERT_FALSE(sized);
  EXPECT_EQ(sized.error().code(), EBADMSG);

  // The blob's bytes changed in the registry.
  registry_.PutBlob(Digest::Of("the trace bytes").str(), "the trace bytez");
  auto tampered =
      FetchReferrer(*client_, repo_, image_.digest, (*list)[0], kTraceType, kTraceBlobType, 100);
  ASSERT_FALSE(tampered);
  EXPECT_EQ(tampered.error().code(), EIO);
  EXPECT_NE(tampered.error().message().find("digest mismatch"), std::string::npos);

  // The manifest's bytes changed in the registry.
  std::string m = registry_.Manifest(pushed->digest.str());
  m.insert(1, " ");  // same JSON, other bytes
  registry_.Put(pushed->digest.str(), std::string(kMediaTypeOciManifest), m);
  tampered =
      FetchReferrer(*client_, repo_, image_.digest, (*list)[0], kTraceType, kTraceBlobType, 100);
  ASSERT_FALSE(tampered);
  EXPECT_EQ(tampered.error().code(), EIO) << tampered.error().message();
}

TEST_F(ReferrersTest, BadArgumentsAreRefusedBeforeAnyRequest) {
  Descriptor no_type = image_;
  no_type.media_type.clear();
  EXPECT_EQ(PushReferrer(*client_, repo_, no_type, kTraceType, {}, {}).error().code(), EINVAL);
  EXPECT_EQ(PushReferrer(*client_, repo_, image_, "", {}, {}).error().code(), EINVAL);
  EXPECT_TRUE(transport_->requests().empty());
}

TEST_F(ReferrersTest, NoBlobsMeansTheEmptyLayer) {
  auto pushed = PushReferrer(*client_, repo_, image_, kTraceType, {}, {});
  ASSERT_TRUE(pushed) << pushed.error().message();
  auto m = ParseImageManifest(registry_.Manifest(pushed->digest.str()), kMediaTypeOciManifest);
  ASSERT_TRUE(m) << m.error().message();
  ASSERT_EQ(m->layers.size(), 1u);
  EXPECT_EQ(m->layers[0].media_type, kMediaTypeOciEmpty);
  EXPECT_EQ(m->layers[0].digest.str(), kEmptyJsonDigest);
  EXPECT_EQ(Digest::Of(kEmptyJson).str(), kEmptyJsonDigest);
}

}  // namespace
}  // namespace hoist
