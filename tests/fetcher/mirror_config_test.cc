// The mirror configuration: containerd hosts.toml and containers registries.conf parsed from
// real files, and MirrorResolver's host order for each kind of request.
#include <gtest/gtest.h>
#include <stdlib.h>

#include "base/file_util.h"
#include "fetcher/hosts_toml.h"
#include "fetcher/mirror_resolver.h"
#include "fetcher/registries_conf.h"

namespace hoist {
namespace {

bool PlainLoopback(std::string_view host) {
  return host.starts_with("127.") || host.starts_with("localhost");
}

class MirrorConfigTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hoist-mirrors-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)RemoveTree(dir_); }
  void Write(const std::string& rel, const std::string& text) {
    std::string path = dir_ + "/" + rel;
    ASSERT_TRUE(MakeDirs(path.substr(0, path.rfind('/'))));
    ASSERT_TRUE(WriteFileAtomic(path, text));
  }
  std::vector<std::string> Urls(const MirrorResolver& r, std::string_view registry,
                                std::string_view repo, RegistryAccess access,
                                std::string_view suffix = "blobs/sha256:ab") {
    auto eps =
        r.Endpoints(registry, repo, access, "https://" + std::string(registry), PlainLoopback);
    EXPECT_TRUE(eps.has_value()) << (eps ? "" : eps.error().message());
    std::vector<std::string> out;
    if (eps) {
      for (const MirrorEndpoint& e : *eps) out.push_back(e.Url(suffix));
    }
    return out;
  }
  std::string dir_;
};

TEST_F(MirrorConfigTest, HostsTomlKeepsFileOrderAndEveryField) {
  Write("reg.example/ca.crt", "CA-PEM\n");
  // Keys that sort the other way round: the file order must win.
  const std::string text = R"(server = "https://reg.example:5000"
capabilities = ["pull", "resolve", "push"]

[host."https://zz-mirror.example"]
  capabilities = ["pull"]
  skip_verify = true
  ca = "ca.crt"
  client = [["c.pem", "k.pem"]]
  [host."https://zz-mirror.example".header]
    x-one = "1"
    x-two = ["a", "b"]

[host."127.0.0.1:5001/v2/proxy"]
  override_path = true

[host."http://aa-mirror.example:8080/sub"]
  client = "both.pem"
)";
  auto h = ParseHostsToml(text, "hosts.toml", dir_ + "/reg.example");
  ASSERT_TRUE(h.has_value()) << h.error().message();
  ASSERT_TRUE(h->server.has_value());
  EXPECT_EQ(h->server->scheme, "https");
  EXPECT_EQ(h->server->host, "reg.example:5000");
  EXPECT_EQ(h->server->api_root, "/v2");
  ASSERT_EQ(h->hosts.size(), 3u);
  const HostsTomlHost& z = h->hosts[0];
  EXPECT_EQ(z.host, "zz-mirror.example");
  EXPECT_EQ(z.capabilities, kHostPull);
  EXPECT_TRUE(z.skip_verify);
  EXPECT_EQ(z.ca_files, std::vector<std::string>{dir_ + "/reg.example/ca.crt"});
  ASSERT_EQ(z.client_certs.size(), 1u);
  EXPECT_EQ(z.client_certs[0].first, dir_ + "/reg.example/c.pem");
  EXPECT_EQ(z.client_certs[0].second, dir_ + "/reg.example/k.pem");
  EXPECT_EQ(z.headers, (HttpHeaderList{{"x-one", "1"}, {"x-two", "a"}, {"x-two", "b"}}));
  const HostsTomlHost& loop = h->hosts[1];
  EXPECT_EQ(loop.scheme, "http");  // no scheme, loopback
  EXPECT_EQ(loop.host, "127.0.0.1:5001");
  EXPECT_EQ(loop.api_root, "/v2/proxy");
  EXPECT_EQ(loop.capabilities, kHostAll);
  const HostsTomlHost& a = h->hosts[2];
  EXPECT_EQ(a.scheme, "http");
  EXPECT_EQ(a.host, "aa-mirror.example:8080");
  EXPECT_EQ(a.api_root, "/sub/v2");
  EXPECT_EQ(a.client_certs[0].second, "");
}

TEST_F(MirrorConfigTest, HostsTomlErrorsNameFileAndLine) {
  auto bad_cap = ParseHostsToml("[host.\"https://m\"]\ncapabilities = [\"pull\", \"fly\"]\n",
                                "/x/hosts.toml", "/x");
  ASSERT_FALSE(bad_cap.has_value());
  EXPECT_EQ(bad_cap.error().code(), EINVAL);
  EXPECT_EQ(bad_cap.error().message(), "/x/hosts.toml:2: unknown capability \"fly\"");
  auto syntax = ParseHostsToml("server = \n", "/x/hosts.toml", "/x");
  ASSERT_FALSE(syntax.has_value());
  EXPECT_EQ(syntax.error().code(), EINVAL);
  EXPECT_TRUE(syntax.error().message().starts_with("/x/hosts.toml:1: "))
      << syntax.error().message();
  // override_path on a URL without a path: the repository follows the server's root.
  auto root = ParseHostsToml("[host.\"https://root.example\"]\noverride_path = true\n", "f", "/");
  ASSERT_TRUE(root.has_value()) << root.error().message();
  EXPECT_EQ(root->hosts[0].api_root, "");
  auto r = MirrorResolver::FromParsed({{"reg.example", *root}}, {});
  EXPECT_EQ(Urls(*r, "reg.example", "app", RegistryAccess::kPull),
            (std::vector<std::string>{"https://root.example/app/blobs/sha256:ab?ns=reg.example",
                                      "https://reg.example/v2/app/blobs/sha256:ab"}));
  auto wrong_type = ParseHostsToml("[host.\"https://m\"]\nskip_verify = \"yes\"\n", "f", "/");
  ASSERT_FALSE(wrong_type.has_value());
  EXPECT_EQ(wrong_type.error().message(), "f:2: skip_verify must be a boolean");
}

TEST_F(MirrorConfigTest, RegistriesConfPrefixMatchRewriteAndDropIns) {
  Write("registries.conf", R"(unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "example.com"
location = "primary.example.com"
[[registry.mirror]]
location = "m1.example.com/cache"
[[registry.mirror]]
location = "m2.example.com"
insecure = true

[[registry]]
prefix = "example.com/team"
location = "team.example.com/images"
mirror-by-digest-only = true
[[registry.mirror]]
location = "tm.example.com"

[[registry]]
prefix = "*.wild.example"
[[registry.mirror]]
location = "wm.example"

[[registry]]
location = "blocked.example"
blocked = true

[aliases]
"x" = "docker.io/library/x"
)");
  Write("registries.conf.d/50-override.conf", R"([[registry]]
prefix = "blocked.example"
location = "blocked.example"
blocked = false
)");
  auto conf = LoadRegistriesConf(dir_ + "/registries.conf", false);
  ASSERT_TRUE(conf.has_value()) << conf.error().message();
  ASSERT_EQ(conf->registries.size(), 4u);
  EXPECT_EQ(conf->Match("example.com/team/app")->prefix, "example.com/team");
  EXPECT_EQ(conf->Match("example.com/teams/app")->prefix, "example.com");  // '/' boundary
  EXPECT_EQ(conf->Match("example.community/x"), nullptr);
  EXPECT_EQ(conf->Match("a.b.wild.example/x")->prefix, "*.wild.example");
  EXPECT_EQ(conf->Match("wild.example/x"), nullptr);
  EXPECT_FALSE(conf->Match("blocked.example/x")->blocked);  // the drop-in replaced it

  auto r = MirrorResolver::FromParsed({}, *conf);
  EXPECT_EQ(Urls(*r, "example.com", "lib/app", RegistryAccess::kPull),
            (std::vector<std::string>{
                "https://m1.example.com/v2/cache/lib/app/blobs/sha256:ab",
                "https://m2.example.com/v2/lib/app/blobs/sha256:ab",  // insecure: no verify
                "http://m2.example.com/v2/lib/app/blobs/sha256:ab",   // then plain http
                "https://primary.example.com/v2/lib/app/blobs/sha256:ab"}));
  auto eps = r->Endpoints("example.com", "lib/app", RegistryAccess::kPull, "https://example.com",
                          PlainLoopback);
  ASSERT_TRUE(eps.has_value());
  EXPECT_FALSE((*eps)[0].tls.skip_verify);
  EXPECT_TRUE((*eps)[1].tls.skip_verify);
  EXPECT_TRUE((*eps)[0].mirror);
  EXPECT_FALSE((*eps)[3].mirror);
  EXPECT_EQ((*eps)[0].credentials_host, "m1.example.com");
  // mirror-by-digest-only: tags only at the location.
  EXPECT_EQ(Urls(*r, "example.com", "team/app", RegistryAccess::kResolve, "manifests/v1"),
            (std::vector<std::string>{"https://team.example.com/v2/images/app/manifests/v1"}));
  EXPECT_EQ(Urls(*r, "example.com", "team/app", RegistryAccess::kPull),
            (std::vector<std::string>{"https://tm.example.com/v2/app/blobs/sha256:ab",
                                      "https://team.example.com/v2/images/app/blobs/sha256:ab"}));
  // Wildcard: the mirror replaces the host part.
  EXPECT_EQ(Urls(*r, "x.wild.example", "a/b", RegistryAccess::kPull),
            (std::vector<std::string>{"https://wm.example/v2/a/b/blobs/sha256:ab",
                                      "https://x.wild.example/v2/a/b/blobs/sha256:ab"}));
  // Unmatched: the registry alone.
  EXPECT_EQ(Urls(*r, "other.example", "a", RegistryAccess::kPull),
            (std::vector<std::string>{"https://other.example/v2/a/blobs/sha256:ab"}));
  // Pushes and tag listings: the registry the reference names, as containers/image (no mirrors,
  // no location rewriting).
  for (RegistryAccess access : {RegistryAccess::kPush, RegistryAccess::kListTags}) {
    EXPECT_EQ(Urls(*r, "example.com", "team/app", access, "tags/list"),
              (std::vector<std::string>{"https://example.com/v2/team/app/tags/list"}));
  }
}

TEST_F(MirrorConfigTest, RegistriesConfBlockedAndBadFiles) {
  auto conf = ParseRegistriesConf("[[registry]]\nprefix = \"evil.example/x\"\nblocked = true\n",
                                  "/etc/r.conf");
  ASSERT_TRUE(conf.has_value()) << conf.error().message();
  auto r = MirrorResolver::FromParsed({}, *conf);
  for (RegistryAccess access : {RegistryAccess::kPull, RegistryAccess::kPush}) {
    auto eps = r->Endpoints("evil.example", "x/y", access, "https://evil.example", PlainLoopback);
    ASSERT_FALSE(eps.has_value());
    EXPECT_EQ(eps.error().code(), EACCES);
    EXPECT_EQ(eps.error().message(), "evil.example/x/y: registry blocked by /etc/r.conf:1");
  }
  EXPECT_TRUE(r->Endpoints("evil.example", "xy", RegistryAccess::kPull, "https://evil.example",
                           PlainLoopback)
                  .has_value());

  auto v1 = ParseRegistriesConf("[registries.search]\nregistries = [\"docker.io\"]\n", "f");
  ASSERT_FALSE(v1.has_value());
  EXPECT_EQ(v1.error().message(),
            "f: the v1 format ([registries.*]) is not supported; use [[registry]]");
  auto wild = ParseRegistriesConf("[[registry]]\nprefix = \"*.a.b\"\nlocation = \"c\"\n", "f");
  ASSERT_FALSE(wild.has_value());
  EXPECT_EQ(wild.error().message(), "f:1: wildcard prefix \"*.a.b\" takes no location");
  auto missing = LoadRegistriesConf(dir_ + "/nope.conf", false);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), ENOENT);
  auto missing_ok = LoadRegistriesConf(dir_ + "/nope.conf", true);
  ASSERT_TRUE(missing_ok.has_value());
  EXPECT_TRUE(missing_ok->registries.empty());
}

TEST_F(MirrorConfigTest, ResolverHostsTomlOrderCapabilitiesAndNamespace) {
  Write("certs.d/reg.example/hosts.toml", R"(server = "https://reg.example"
[host."https://pull-only.example"]
  capabilities = ["pull"]
[host."https://both.example/base"]
  capabilities = ["pull", "resolve"]
  [host."https://both.example/base".header]
    x-mirror = "yes"
)");
  Write("certs.d/docker.io/hosts.toml", R"([host."https://hub-mirror.example"]
)");
  Write("certs.d/_default/hosts.toml", R"([host."https://default-mirror.example"]
)");
  Write("certs.d/noresolve.example/hosts.toml", R"(server = "https://noresolve.example"
capabilities = ["pull"]
)");
  // registries.conf also names reg.example and other.example: hosts.toml wins for reg.example,
  // registries.conf for other.example (before _default).
  Write("registries.conf", R"([[registry]]
location = "reg.example"
[[registry.mirror]]
location = "ignored.example"
[[registry]]
location = "other.example"
[[registry.mirror]]
location = "conf-mirror.example"
)");
  MirrorConfig config;
  config.hosts_dir = dir_ + "/certs.d";
  config.hosts_dir_required = true;
  config.registries_conf = dir_ + "/registries.conf";
  config.registries_conf_required = true;
  auto loaded = MirrorResolver::Load(config);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message();
  const MirrorResolver& r = **loaded;

  EXPECT_EQ(
      Urls(r, "reg.example", "app", RegistryAccess::kPull),
      (std::vector<std::string>{"https://pull-only.example/v2/app/blobs/sha256:ab?ns=reg.example",
                                "https://both.example/base/v2/app/blobs/sha256:ab?ns=reg.example",
                                "https://reg.example/v2/app/blobs/sha256:ab"}));
  EXPECT_EQ(
      Urls(r, "reg.example", "app", RegistryAccess::kResolve, "manifests/latest"),
      (std::vector<std::string>{"https://both.example/base/v2/app/manifests/latest?ns=reg.example",
                                "https://reg.example/v2/app/manifests/latest"}));
  auto eps = r.Endpoints("reg.example", "app", RegistryAccess::kResolve, "https://reg.example",
                         PlainLoopback);
  ASSERT_TRUE(eps.has_value());
  EXPECT_EQ((*eps)[0].headers, (HttpHeaderList{{"x-mirror", "yes"}}));
  EXPECT_EQ((*eps)[0].credentials_host, "both.example");
  // Docker Hub: the default server is registry-1.docker.io, without ns.
  EXPECT_EQ(Urls(r, "docker.io", "library/alpine", RegistryAccess::kPull),
            (std::vector<std::string>{
                "https://hub-mirror.example/v2/library/alpine/blobs/sha256:ab?ns=docker.io",
                "https://docker.io/v2/library/alpine/blobs/sha256:ab"}));
  EXPECT_EQ(Urls(r, "other.example", "app", RegistryAccess::kPull),
            (std::vector<std::string>{"https://conf-mirror.example/v2/app/blobs/sha256:ab",
                                      "https://other.example/v2/app/blobs/sha256:ab"}));
  EXPECT_EQ(Urls(r, "third.example", "app", RegistryAccess::kPull),
            (std::vector<std::string>{
                "https://default-mirror.example/v2/app/blobs/sha256:ab?ns=third.example",
                "https://third.example/v2/app/blobs/sha256:ab"}));
  // Push: the first host with the push capability alone (the server here: neither mirror may
  // push); tag listing: the resolve hosts, as for tags.
  EXPECT_EQ(Urls(r, "reg.example", "app", RegistryAccess::kPush, "blobs/uploads/"),
            (std::vector<std::string>{"https://reg.example/v2/app/blobs/uploads/"}));
  EXPECT_EQ(Urls(r, "third.example", "app", RegistryAccess::kPush, "blobs/uploads/"),
            (std::vector<std::string>{
                "https://default-mirror.example/v2/app/blobs/uploads/?ns=third.example"}));
  EXPECT_EQ(Urls(r, "reg.example", "app", RegistryAccess::kListTags, "tags/list"),
            (std::vector<std::string>{"https://both.example/base/v2/app/tags/list?ns=reg.example",
                                      "https://reg.example/v2/app/tags/list"}));
  auto no_push = r.Endpoints("noresolve.example", "app", RegistryAccess::kPush,
                             "https://noresolve.example", PlainLoopback);
  ASSERT_FALSE(no_push.has_value());
  EXPECT_EQ(no_push.error().message(), "noresolve.example/app: no host in " + dir_ +
                                           "/certs.d/noresolve.example/hosts.toml may push");
  auto none = r.Endpoints("noresolve.example", "app", RegistryAccess::kResolve,
                          "https://noresolve.example", PlainLoopback);
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code(), ENOENT);
  EXPECT_EQ(none.error().message(), "noresolve.example/app: no host in " + dir_ +
                                        "/certs.d/noresolve.example/hosts.toml may resolve tags");
}

TEST_F(MirrorConfigTest, LoadRefusesBadFilesAndToleratesMissingDefaults) {
  MirrorConfig missing;
  missing.hosts_dir = dir_ + "/absent";
  missing.registries_conf = dir_ + "/absent.conf";
  auto ok = MirrorResolver::Load(missing);
  ASSERT_TRUE(ok.has_value()) << ok.error().message();
  EXPECT_TRUE((*ok)->empty());
  missing.hosts_dir_required = true;
  auto required = MirrorResolver::Load(missing);
  ASSERT_FALSE(required.has_value());
  EXPECT_EQ(required.error().message(), dir_ + "/absent: hosts directory not found");

  Write("certs.d/r.example/hosts.toml", "[host.\"https://m\"]\nca = \"missing.crt\"\n");
  MirrorConfig bad_ca;
  bad_ca.hosts_dir = dir_ + "/certs.d";
  bad_ca.registries_conf = "";
  auto refused = MirrorResolver::Load(bad_ca);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), ENOENT);
  EXPECT_NE(refused.error().message().find(dir_ + "/certs.d/r.example/missing.crt"),
            std::string::npos)
      << refused.error().message();
}

}  // namespace
}  // namespace hoist
