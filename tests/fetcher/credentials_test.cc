// Credentials from docker config.json / containers auth.json, with a real credential helper
// (a shell script on PATH).
#include "fetcher/credentials.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "base/digest.h"
#include "base/file_util.h"

namespace hoist {
namespace {

class CredentialsTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hoist-creds-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(MakeDirs(dir_ + "/docker"));
    ASSERT_TRUE(MakeDirs(dir_ + "/bin"));
    // The helper answers from a per-URL file, and fails for unknown URLs, like real helpers.
    // It also records what it read on stdin.
    WriteHelper("test", R"(#!/bin/sh
[ "$1" = get ] || exit 3
read url
printf '%s' "$url" > ")" + dir_ +
                            R"(/helper-stdin"
case "$url" in
  localhost:5000) printf '{"ServerURL":"%s","Username":"helperuser","Secret":"helperpass"}' "$url" ;;
  tok.io) printf '{"ServerURL":"tok.io","Username":"<token>","Secret":"refresh-abc"}' ;;
  https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"hubuser","Secret":"hubpass"}' "$url" ;;
  bad.io) printf 'not json' ;;
  *) echo "credentials not found in native keychain" ; exit 1 ;;
esac
)");
    old_path_ = getenv("PATH") ? getenv("PATH") : "";
    setenv("PATH", (dir_ + "/bin:" + old_path_).c_str(), 1);
  }
  void TearDown() override {
    setenv("PATH", old_path_.c_str(), 1);
    (void)RemoveTree(dir_);
  }

  void WriteHelper(const std::string& name, const std::string& script) {
    std::string path = dir_ + "/bin/docker-credential-" + name;
    ASSERT_TRUE(WriteFileAtomic(path, script, 0755));
  }
  void WriteConfig(const std::string& json) {
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/docker/config.json", json));
  }
  DockerCredentialStore Store(std::string auth_file = "-", std::string xdg = "-") {
    return DockerCredentialStore(DockerCredentialOptions{.docker_config_dir = dir_ + "/docker",
                                                         .registry_auth_file = auth_file,
                                                         .xdg_auth_file = xdg});
  }

  std::string dir_;
  std::string old_path_;
};

TEST_F(CredentialsTest, AuthsEntries) {
  std::string b64 = Base64Encode("alice:s3cr:et");
  WriteConfig(R"({"auths":{
    "localhost:5000":{"auth":")" +
              b64 + R"("},
    "https://reg.io/v2/":{"auth":")" +
              Base64Encode("bob:pw") + R"("},
    "https://index.docker.io/v1/":{"auth":")" +
              Base64Encode("hub:pw") + R"("},
    "oauth.io":{"identitytoken":"idtok"},
    "bearer.io":{"registrytoken":"regtok"}}})");
  auto store = Store();
  auto c = store.Lookup("localhost:5000");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->username, "alice");
  EXPECT_EQ(c->password, "s3cr:et");  // only the first ':' splits
  EXPECT_EQ(store.Lookup("reg.io")->username, "bob");
  EXPECT_EQ(store.Lookup("docker.io")->username, "hub");
  EXPECT_EQ(store.Lookup("oauth.io")->identity_token, "idtok");
  EXPECT_EQ(store.Lookup("bearer.io")->registry_token, "regtok");
  auto none = store.Lookup("other.io");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST_F(CredentialsTest, CredHelperForHostThenAuthsFallback) {
  WriteConfig(R"({"credHelpers":{"localhost:5000":"test","tok.io":"test","nothere.io":"test"},
    "auths":{"nothere.io":{"auth":")" +
              Base64Encode("file:pw") + R"("}}})");
  auto store = Store();
  auto c = store.Lookup("localhost:5000");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->username, "helperuser");
  EXPECT_EQ(c->password, "helperpass");
  EXPECT_EQ(*ReadFile(dir_ + "/helper-stdin"), "localhost:5000");
  auto t = store.Lookup("tok.io");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->identity_token, "refresh-abc");
  EXPECT_TRUE(t->username.empty());
  // The helper exits 1 ("not found"): fall through to auths.
  EXPECT_EQ(store.Lookup("nothere.io")->username, "file");
}

TEST_F(CredentialsTest, CredsStoreUsesHubKey) {
  WriteConfig(R"({"credsStore":"test"})");
  auto store = Store();
  auto c = store.Lookup("docker.io");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->username, "hubuser");
  EXPECT_EQ(*ReadFile(dir_ + "/helper-stdin"), "https://index.docker.io/v1/");
  EXPECT_TRUE(store.Lookup("unknown.io")->empty());
}

TEST_F(CredentialsTest, HelperErrors) {
  WriteConfig(R"({"credHelpers":{"bad.io":"test","missing.io":"nonexistent-helper"}})");
  auto store = Store();
  auto bad = store.Lookup("bad.io");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), EINVAL);
  EXPECT_EQ(bad.error().message(), "docker-credential-test get: output is not a JSON object");
  auto missing = store.Lookup("missing.io");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ENOENT);
  EXPECT_NE(missing.error().message().find("docker-credential-nonexistent-helper"),
            std::string::npos);
}

TEST_F(CredentialsTest, ContainersAuthFiles) {
  WriteConfig(R"({"auths":{"a.io":{"auth":")" + Base64Encode("docker:pw") + R"("}}})");
  std::string first = dir_ + "/first.json";
  std::string xdg = dir_ + "/xdg.json";
  ASSERT_TRUE(WriteFileAtomic(
      first, R"({"auths":{"a.io":{"auth":")" + Base64Encode("first:pw") + R"("}}})"));
  ASSERT_TRUE(WriteFileAtomic(xdg, R"({"auths":{"a.io":{"auth":")" + Base64Encode("xdg:pw") +
                                       R"("},"b.io/ns":{"auth":")" + Base64Encode("xdgb:pw") +
                                       R"("}}})"));
  EXPECT_EQ(Store(first, xdg).Lookup("a.io")->username, "first");  // $REGISTRY_AUTH_FILE wins
  EXPECT_EQ(Store("-", xdg).Lookup("a.io")->username, "docker");   // then docker config
  EXPECT_EQ(Store("-", xdg).Lookup("b.io")->username, "xdgb");     // then XDG auth.json
}

TEST_F(CredentialsTest, EnvironmentDefaults) {
  WriteConfig(R"({"auths":{"env.io":{"auth":")" + Base64Encode("env:pw") + R"("}}})");
  std::string xdg_dir = dir_ + "/run";
  ASSERT_TRUE(MakeDirs(xdg_dir + "/containers"));
  ASSERT_TRUE(WriteFileAtomic(xdg_dir + "/containers/auth.json",
                              R"({"auths":{"x.io":{"auth":")" + Base64Encode("x:pw") + R"("}}})"));
  setenv("DOCKER_CONFIG", (dir_ + "/docker").c_str(), 1);
  setenv("XDG_RUNTIME_DIR", xdg_dir.c_str(), 1);
  unsetenv("REGISTRY_AUTH_FILE");
  DockerCredentialStore store;
  EXPECT_EQ(store.docker_config_path(), dir_ + "/docker/config.json");
  EXPECT_EQ(store.Lookup("env.io")->username, "env");
  EXPECT_EQ(store.Lookup("x.io")->username, "x");
  EXPECT_EQ(DefaultDockerConfigPath(), dir_ + "/docker/config.json");
  unsetenv("DOCKER_CONFIG");
  unsetenv("XDG_RUNTIME_DIR");
}

TEST_F(CredentialsTest, MalformedConfig) {
  WriteConfig("{not json");
  auto c = Store().Lookup("a.io");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), EINVAL);
  EXPECT_EQ(c.error().message(), dir_ + "/docker/config.json: not a JSON object");
  WriteConfig(R"({"auths":{"a.io":{"auth":"bm9jb2xvbg=="}}})");  // "nocolon"
  auto d = Store().Lookup("a.io");
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code(), EINVAL);
}

TEST_F(CredentialsTest, MissingConfigIsAnonymous) {
  auto c = Store().Lookup("a.io");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->empty());
}

TEST_F(CredentialsTest, SaveAndRemoveKeepOtherKeys) {
  std::string path = dir_ + "/new/config.json";
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/keep.json", "x"));
  ASSERT_TRUE(SaveDockerAuth(path, "localhost:5000", "u", "p:w"));
  ASSERT_TRUE(SaveDockerAuth(path, "docker.io", "hub", "pw"));
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Add a foreign key, as docker would, and check it survives.
  auto text = ReadFile(path);
  ASSERT_TRUE(text);
  EXPECT_NE(text->find("\"https://index.docker.io/v1/\""), std::string::npos);
  std::string edited = *text;
  edited.insert(edited.find('{') + 1, "\"credHelpers\":{\"z.io\":\"none\"},");
  ASSERT_TRUE(WriteFileAtomic(path, edited));
  DockerCredentialStore store(DockerCredentialOptions{
      .docker_config_dir = dir_ + "/new", .registry_auth_file = "-", .xdg_auth_file = "-"});
  auto c = store.Lookup("localhost:5000");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "u");
  EXPECT_EQ(c->password, "p:w");
  ASSERT_TRUE(RemoveDockerAuth(path, "localhost:5000"));
  ASSERT_TRUE(RemoveDockerAuth(path, "never.io"));
  EXPECT_TRUE(store.Lookup("localhost:5000")->empty());
  EXPECT_EQ(store.Lookup("docker.io")->username, "hub");
  EXPECT_NE(ReadFile(path)->find("\"z.io\""), std::string::npos);
}

TEST(StaticCredentials, HubAliases) {
  StaticCredentialStore store({{"docker.io", Credential{.username = "u", .password = "p"}}});
  EXPECT_EQ(store.Lookup("docker.io")->username, "u");
  EXPECT_EQ(store.Lookup("registry-1.docker.io")->username, "u");
  EXPECT_TRUE(store.Lookup("x.io")->empty());
  EXPECT_EQ(DockerConfigKey("docker.io"), "https://index.docker.io/v1/");
  EXPECT_EQ(DockerConfigKey("localhost:5000"), "localhost:5000");
}

}  // namespace
}  // namespace hoist
