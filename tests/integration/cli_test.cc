// The `hoist` binary's registry verbs (inspect, tags, search) against the real distribution
// registry, with images pushed by the real skopeo, compared against `skopeo inspect`.
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "base/digest.h"
#include "tests/harness/cli_expect.h"
#include "tests/harness/hoist_cli.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"

namespace hoist {
namespace {

using harness::ExpectOneLineError;
using harness::ParseJson;
using harness::RunHoist;

using harness::BuildOciImage;
using harness::FileSpec;
using harness::RunCommand;
using harness::TestRegistry;

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto reg = TestRegistry::Launch({});
    ASSERT_TRUE(reg.has_value()) << reg.error().message();
    registry_ = reg->release();
    layout_ = new std::string(std::string(::testing::TempDir()) + "/cli-layout");
    harness::ImageSpec spec;
    spec.tag = "v1";
    spec.env = {"PATH=/bin", "GREETING=hello world"};
    spec.labels = {{"org.example.role", "cli-test"}};
    std::vector<harness::LayerSpec> layers(2);
    layers[0].files = {FileSpec::File("etc/hello", "hi\n"), FileSpec::Symlink("etc/link", "hello")};
    layers[1].files = {FileSpec::Whiteout("etc/link"), FileSpec::BigFile("data/big", 300000, 3)};
    auto img = BuildOciImage(*layout_, layers, spec);
    ASSERT_TRUE(img.has_value()) << img.error().message();
    image_ = new harness::BuiltImage(*img);
    for (std::string tag : {"v1", "v2", "stable"}) {
      auto st = harness::PushOciLayout(img->OciRef(), registry_->DockerRef("cli/app", tag));
      ASSERT_TRUE(st.has_value()) << st.error().message();
    }
    auto st = harness::PushOciLayout(img->OciRef(), registry_->DockerRef("cli/other", "v1"));
    ASSERT_TRUE(st.has_value()) << st.error().message();
  }
  static void TearDownTestSuite() {
    delete registry_;
    delete image_;
    delete layout_;
  }

  static TestRegistry* registry_;
  static harness::BuiltImage* image_;
  static std::string* layout_;
};
TestRegistry* CliTest::registry_ = nullptr;
harness::BuiltImage* CliTest::image_ = nullptr;
std::string* CliTest::layout_ = nullptr;

TEST_F(CliTest, InspectMatchesSkopeoInspect) {
  std::string ref = registry_->ImageRef("cli/app", "v1");
  auto mine = RunHoist({"inspect", ref});
  ASSERT_TRUE(mine.ok()) << mine.stderr_text;
  auto theirs = RunCommand({"skopeo", "inspect", "--tls-verify=false", "docker://" + ref});
  ASSERT_TRUE(theirs.has_value() && theirs->ok()) << (theirs ? theirs->stderr_text : "");

  rapidjson::Document a = ParseJson(mine.stdout_text);
  rapidjson::Document b = ParseJson(theirs->stdout_text);
  for (const char* key : {"Name", "Digest", "Created", "Architecture", "Os"}) {
    ASSERT_TRUE(a.HasMember(key) && b.HasMember(key)) << key;
    EXPECT_STREQ(a[key].GetString(), b[key].GetString()) << key;
  }
  EXPECT_EQ(std::string(a["Digest"].GetString()), image_->manifest_digest.str());
  ASSERT_EQ(a["Layers"].Size(), 2u);
  ASSERT_EQ(b["Layers"].Size(), 2u);
  for (unsigned i = 0; i < 2; ++i) {
    EXPECT_STREQ(a["Layers"][i].GetString(), b["Layers"][i].GetString());
    EXPECT_EQ(std::string(a["Layers"][i].GetString()), image_->layers[i].digest.str());
    // skopeo 1.9.3 prints no LayersData (newer skopeo does); check it against the image.
    const auto& la = a["LayersData"][i];
    EXPECT_EQ(std::string(la["MIMEType"].GetString()), image_->layers[i].media_type);
    EXPECT_EQ(std::string(la["Digest"].GetString()), image_->layers[i].digest.str());
    EXPECT_EQ(static_cast<uint64_t>(la["Size"].GetInt64()), image_->layers[i].size);
  }
  ASSERT_EQ(a["Env"].Size(), 2u);
  EXPECT_STREQ(a["Env"][1].GetString(), "GREETING=hello world");
  ASSERT_TRUE(a["Labels"].IsObject());
  EXPECT_STREQ(a["Labels"]["org.example.role"].GetString(), "cli-test");
  EXPECT_STREQ(b["Labels"]["org.example.role"].GetString(), "cli-test");
  std::vector<std::string> tags;
  for (const auto& t : a["RepoTags"].GetArray()) tags.push_back(t.GetString());
  std::sort(tags.begin(), tags.end());
  EXPECT_EQ(tags, (std::vector<std::string>{"stable", "v1", "v2"}));
}

TEST_F(CliTest, InspectRawAndConfigAreExactBytes) {
  std::string ref = registry_->ImageRef("cli/app", "v2");
  auto raw = RunHoist({"inspect", "--raw", ref});
  ASSERT_TRUE(raw.ok()) << raw.stderr_text;
  EXPECT_EQ(raw.stdout_text, image_->manifest);
  auto config = RunHoist({"inspect", "--config", ref});
  ASSERT_TRUE(config.ok()) << config.stderr_text;
  EXPECT_EQ(config.stdout_text, image_->config);
  // By digest too.
  auto by_digest = RunHoist(
      {"inspect", "--raw", registry_->host_port() + "/cli/app@" + image_->manifest_digest.str()});
  ASSERT_TRUE(by_digest.ok()) << by_digest.stderr_text;
  EXPECT_EQ(by_digest.stdout_text, image_->manifest);
}

TEST_F(CliTest, TagsAndSearch) {
  auto tags = RunHoist({"tags", registry_->host_port() + "/cli/app"});
  ASSERT_TRUE(tags.ok()) << tags.stderr_text;
  // As the registry lists them (crane ls and skopeo list-tags do not sort either).
  std::vector<std::string> lines;
  for (size_t pos = 0, nl; (nl = tags.stdout_text.find('\n', pos)) != std::string::npos;
       pos = nl + 1) {
    lines.push_back(tags.stdout_text.substr(pos, nl - pos));
  }
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines, (std::vector<std::string>{"stable", "v1", "v2"}));
  auto all = RunHoist({"search", "--registry", registry_->host_port()});
  ASSERT_TRUE(all.ok()) << all.stderr_text;
  EXPECT_EQ(all.stdout_text,
            registry_->host_port() + "/cli/app\n" + registry_->host_port() + "/cli/other\n");
  auto some = RunHoist({"search", "oth", "--registry", registry_->host_port()});
  ASSERT_TRUE(some.ok()) << some.stderr_text;
  EXPECT_EQ(some.stdout_text, registry_->host_port() + "/cli/other\n");
}

TEST_F(CliTest, BadInputGivesOneLineAndNonZeroExit) {
  ExpectOneLineError(RunHoist({"inspect", "BAD//ref"}), "inspect",
                     "invalid reference \"BAD//ref\"");
  ExpectOneLineError(RunHoist({"inspect", registry_->ImageRef("cli/app", "nope")}), "inspect",
                     "404");
  ExpectOneLineError(RunHoist({"inspect", registry_->ImageRef("cli/missing", "v1")}), "inspect",
                     "cli/missing");
  ExpectOneLineError(RunHoist({"tags", registry_->host_port() + "/cli/missing"}), "tags", "404");
  // Nothing listens on port 1: a connect error, after retries, still one line.
  ExpectOneLineError(RunHoist({"inspect", "127.0.0.1:1/x/y:z"}), "inspect", "127.0.0.1:1");
  ExpectOneLineError(RunHoist({"inspect", "--platform", "linux", registry_->ImageRef("cli/app")}),
                     "inspect", "linux");
}

TEST(CliAuthTest, BasicAuthUsesDockerConfigAndRejectsWrongPassword) {
  harness::TestRegistryOptions options;
  options.auth = harness::RegistryAuthMode::kBasic;
  auto reg = TestRegistry::Launch(options);
  ASSERT_TRUE(reg.has_value()) << reg.error().message();
  std::string layout = std::string(::testing::TempDir()) + "/cli-auth-layout";
  std::vector<harness::LayerSpec> layers(1);
  layers[0].files = {FileSpec::File("a", "a\n")};
  auto img = BuildOciImage(layout, layers, {});
  ASSERT_TRUE(img.has_value()) << img.error().message();
  ASSERT_TRUE(harness::PushOciLayout(img->OciRef(), (*reg)->DockerRef("auth/app", "latest"),
                                     {.creds = (*reg)->skopeo_creds()})
                  .has_value());

  std::string dir = std::string(::testing::TempDir()) + "/cli-docker-config";
  ASSERT_EQ(::system(("mkdir -p " + dir).c_str()), 0);
  auto write_config = [&](const std::string& user_pass) {
    std::string auth = "{\"auths\":{\"" + (*reg)->host_port() + "\":{\"auth\":\"" +
                       Base64Encode(user_pass) + "\"}}}";
    FILE* f = std::fopen((dir + "/config.json").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(auth.c_str(), f);
    std::fclose(f);
  };
  std::string ref = (*reg)->ImageRef("auth/app", "latest");
  write_config((*reg)->user() + ":" + (*reg)->password());
  auto ok = RunHoist({"inspect", "--raw", ref}, {"DOCKER_CONFIG=" + dir});
  ASSERT_TRUE(ok.ok()) << ok.stderr_text;
  EXPECT_EQ(ok.stdout_text, img->manifest);

  write_config((*reg)->user() + ":wrong");
  ExpectOneLineError(RunHoist({"inspect", ref}, {"DOCKER_CONFIG=" + dir}), "inspect", "401");
}

}  // namespace
}  // namespace hoist
