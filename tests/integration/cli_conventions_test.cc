// The `hoist` CLI behaves as docker/skopeo users expect (issue 19 items 6-9 and 11): exit status
// scheme and usage errors, --version / version, umount of a non-mount, search's REGISTRY/TERM,
// login/logout through a credential helper, failing fast on an unreachable registry and saying so
// when inspect falls back to the local store, tag's help, history like docker's, and the
// generated man page and bash completion. The real hoist binary against the real registry; the
// credential helper is a small script the test writes (the seam docker's helpers plug into).
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "base/rfc3339.h"
#include "fetcher/manifest.h"
#include "tests/harness/cli_expect.h"
#include "tests/harness/hoist_cli.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tools/cli/history_format.h"

namespace hoist {
namespace {

using harness::CommandResult;
using harness::FileSpec;
using harness::ParseJson;
using harness::RunHoist;
using harness::TestRegistry;

std::string NewDir(const std::string& name) {
  std::string dir = std::string(::testing::TempDir()) + "/cliconv-" + name + "-XXXXXX";
  EXPECT_NE(::mkdtemp(dir.data()), nullptr);
  return dir;
}

int CountLines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

// ---- Exit status and usage errors ----------------------------------------------------------

TEST(CliUsageTest, UnknownCommandIsOneLineAndExitTwo) {
  CommandResult r = RunHoist({"foo"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_EQ(r.stderr_text, "hoist: unknown command \"foo\" (see hoist --help)\n");
  EXPECT_EQ(r.stdout_text, "");

  r = RunHoist({});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_EQ(r.stderr_text, "hoist: no command given (see hoist --help)\n");

  r = RunHoist({"inspect"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_EQ(r.stderr_text, "hoist inspect: IMAGE is required (see hoist inspect --help)\n");

  r = RunHoist({"tags", "--bogus", "x/y"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_EQ(CountLines(r.stderr_text), 1) << r.stderr_text;
  EXPECT_TRUE(r.stderr_text.starts_with("hoist tags: ")) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("--bogus"), std::string::npos) << r.stderr_text;
  EXPECT_TRUE(r.stderr_text.ends_with(" (see hoist tags --help)\n")) << r.stderr_text;

  // `run` keeps docker run's scheme: its own usage errors are 125.
  r = RunHoist({"run", "--bogus", "img"});
  EXPECT_EQ(r.exit_code, 125) << r.Describe();
  EXPECT_EQ(CountLines(r.stderr_text), 1) << r.stderr_text;
  EXPECT_TRUE(r.stderr_text.starts_with("hoist run: ")) << r.stderr_text;

  r = RunHoist({"--help"});
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_NE(r.stdout_text.find("Exit status: 0 success, 1 failure, 2 usage error"),
            std::string::npos)
      << r.stdout_text;
  EXPECT_EQ(r.stdout_text.find("__generate"), std::string::npos) << "hidden verb listed";
}

// ---- --version and version -------------------------------------------------------------------

TEST(CliVersionTest, VersionFlagAndVerbAgree) {
  CommandResult json = RunHoist({"version", "--format", "json"});
  ASSERT_TRUE(json.ok()) << json.stderr_text;
  rapidjson::Document d = ParseJson(json.stdout_text);
  ASSERT_TRUE(d.IsObject());
  const std::string version = d["Version"].GetString();
  const std::string commit = d["GitCommit"].GetString();
  EXPECT_EQ(version, HOIST_PROJECT_VERSION);
  // The build ran in a git checkout: the commit is one of this tree's, HEAD or an ancestor of
  // it (a commit made after the build, before the test, is newer than the binary's).
  std::string hash = commit.substr(0, commit.find('-'));
  ASSERT_EQ(hash.size(), 12u) << commit;
  auto ancestor = harness::RunCommand(
      {"git", "-C", HOIST_SOURCE_DIR, "merge-base", "--is-ancestor", hash, "HEAD"});
  ASSERT_TRUE(ancestor.has_value()) << ancestor.error().message();
  EXPECT_EQ(ancestor->exit_code, 0)
      << commit << " is not HEAD or before it: " << ancestor->stderr_text;
  const Platform host = Platform::Host();
  EXPECT_EQ(std::string(d["Os"].GetString()), host.os);
  EXPECT_EQ(std::string(d["Arch"].GetString()), host.architecture);
  EXPECT_EQ(std::string(d["Built"].GetString()).size(), 20u) << d["Built"].GetString();

  CommandResult flag = RunHoist({"--version"});
  ASSERT_TRUE(flag.ok()) << flag.stderr_text;
  EXPECT_EQ(flag.stdout_text, "hoist version " + version + ", commit " + commit + "\n");

  CommandResult text = RunHoist({"version"});
  ASSERT_TRUE(text.ok()) << text.stderr_text;
  EXPECT_TRUE(text.stdout_text.starts_with("Version:     " + version + "\nGit commit:  " + commit +
                                           "\nBuilt:       " + d["Built"].GetString() +
                                           "\nCompiler:    "))
      << text.stdout_text;
  EXPECT_TRUE(
      text.stdout_text.ends_with("\nOS/Arch:     " + host.os + "/" + host.architecture + "\n"))
      << text.stdout_text;

  CommandResult bad = RunHoist({"version", "--format", "yaml"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.stderr_text, "hoist version: unknown --format \"yaml\" (only json is known)\n");
}

// ---- umount of a non-mount -------------------------------------------------------------------

TEST(CliUmountTest, NotAMountIsOneLine) {
  const std::string dir = NewDir("not-a-mount");
  CommandResult r = RunHoist({"umount", dir});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(r.stderr_text, "hoist umount: " + dir + ": not mounted\n");
  EXPECT_EQ(r.stdout_text, "");
}

// ---- tag's help says what it does ------------------------------------------------------------

TEST(CliTagTest, HelpSaysBlobsAreCopiedToAnotherRegistry) {
  CommandResult r = RunHoist({"tag", "--help"});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(r.stdout_text.find("no blob is uploaded"), std::string::npos) << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("to another registry every blob is copied"), std::string::npos)
      << r.stdout_text;
}

// ---- README's list of verbs with --platform and --log-level is true ---------------------------

std::vector<std::string> BacktickedWords(const std::string& text) {
  std::vector<std::string> words;
  for (size_t pos = 0; (pos = text.find('`', pos)) != std::string::npos;) {
    size_t end = text.find('`', pos + 1);
    if (end == std::string::npos) break;
    words.push_back(text.substr(pos + 1, end - pos - 1));
    pos = end + 1;
  }
  return words;
}

TEST(CliReadmeTest, VerbsTakeTheRegistryFlagsTheReadmeSaysTheyTake) {
  auto text = ReadFile(std::string(HOIST_SOURCE_DIR) + "/README.md");
  ASSERT_TRUE(text.has_value()) << text.error().message();
  // Lines of a paragraph joined with spaces; paragraphs stay apart.
  std::string flat = *text;
  for (size_t i = 0; i < flat.size(); ++i) {
    const bool alone = flat[i] == '\n' && (i == 0 || flat[i - 1] != '\n') &&
                       (i + 1 == flat.size() || flat[i + 1] != '\n');
    if (alone) flat[i] = ' ';
  }
  const std::string* readme = &flat;
  // "`inspect`, `tags`, ... share `--platform ...`, ... `--log-level`. `convert`, `push`, ...
  // take only `--insecure-registry`"
  const size_t share = readme->find(" share `--platform");
  ASSERT_NE(share, std::string::npos);
  const size_t paragraph = readme->rfind("\n\n", share);
  const std::vector<std::string> with =
      BacktickedWords(readme->substr(paragraph, share - paragraph));
  const size_t only = readme->find(" take only `--insecure-registry`", share);
  ASSERT_NE(only, std::string::npos);
  const size_t sentence = readme->rfind(". ", only);
  const std::vector<std::string> without =
      BacktickedWords(readme->substr(sentence, only - sentence));
  ASSERT_GE(with.size(), 5u);
  ASSERT_GE(without.size(), 2u);
  for (const std::string& verb : with) {
    CommandResult r = RunHoist({verb, "--help"});
    ASSERT_TRUE(r.ok()) << verb << ": " << r.stderr_text;
    EXPECT_NE(r.stdout_text.find("--platform"), std::string::npos) << verb;
    EXPECT_NE(r.stdout_text.find("--log-level"), std::string::npos) << verb;
    EXPECT_NE(r.stdout_text.find("--insecure-registry"), std::string::npos) << verb;
  }
  for (const std::string& verb : without) {
    CommandResult r = RunHoist({verb, "--help"});
    ASSERT_TRUE(r.ok()) << verb << ": " << r.stderr_text;
    EXPECT_NE(r.stdout_text.find("--insecure-registry"), std::string::npos) << verb;
    EXPECT_EQ(r.stdout_text.find("--log-level"), std::string::npos) << verb;
    if (verb != "convert") {
      EXPECT_EQ(r.stdout_text.find("--platform"), std::string::npos) << verb;
    }
  }
}

// ---- Unreachable registries fail fast; inspect says when it falls back ------------------------

TEST(CliUnreachableTest, RefusedAndUnresolvableGiveUpAfterOneRetry) {
  const std::string cache = NewDir("unreachable-cache");
  // Nothing listens on port 1.
  CommandResult r = RunHoist({"inspect", "--cache", cache, "127.0.0.1:1/x/y:z"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(CountLines(r.stderr_text), 1) << r.stderr_text;
  EXPECT_TRUE(r.stderr_text.starts_with("hoist inspect: ")) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("127.0.0.1:1"), std::string::npos) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("(gave up after 2 attempts)"), std::string::npos) << r.stderr_text;
  // .invalid never resolves (RFC 2606).
  r = RunHoist({"inspect", "--cache", cache, "registry.invalid/x/y:z"});
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(CountLines(r.stderr_text), 1) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("registry.invalid"), std::string::npos) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("(gave up after 2 attempts)"), std::string::npos) << r.stderr_text;
}

// ---- Fixture with a real registry ------------------------------------------------------------

class CliConvTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto reg = TestRegistry::Launch({});
    ASSERT_TRUE(reg.has_value()) << reg.error().message();
    registry_ = reg->release();
    std::vector<harness::LayerSpec> layers(2);
    layers[0].files = {FileSpec::File("etc/a", std::string(1500, 'a'))};
    layers[1].files = {FileSpec::BigFile("data/big", 2500000, 7), FileSpec::File("etc/b", "hi\n")};
    harness::ImageSpec spec;
    spec.tag = "v1";
    // 3 weeks and an hour ago: "3 weeks ago" whatever the minute the test runs.
    created_ = static_cast<int64_t>(std::time(nullptr)) - (21 * 24 + 1) * 3600;
    spec.created = FormatRfc3339(created_);
    spec.history = {
        {.created_by = "/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789abcdef in / "},
        {.created_by = "/bin/sh -c #(nop)  ENV A=b", .empty_layer = true},
        {.created_by = "RUN make", .comment = "built by hand"},
    };
    auto img =
        harness::BuildOciImage(std::string(::testing::TempDir()) + "/cliconv-layout", layers, spec);
    ASSERT_TRUE(img.has_value()) << img.error().message();
    image_ = new harness::BuiltImage(*img);
    for (std::string repo : {"conv/app", "conv/other"}) {
      auto st = harness::PushOciLayout(img->OciRef(), registry_->DockerRef(repo, "v1"));
      ASSERT_TRUE(st.has_value()) << st.error().message();
    }
  }
  static void TearDownTestSuite() {
    delete registry_;
    delete image_;
  }

  static TestRegistry* registry_;
  static harness::BuiltImage* image_;
  static int64_t created_;
};
TestRegistry* CliConvTest::registry_ = nullptr;
harness::BuiltImage* CliConvTest::image_ = nullptr;
int64_t CliConvTest::created_ = 0;

TEST_F(CliConvTest, SearchTakesRegistrySlashTermAndHasNoDefaultRegistry) {
  const std::string host = registry_->host_port();
  CommandResult r = RunHoist({"search", host + "/oth"});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, host + "/conv/other\n");
  r = RunHoist({"search", host + "/"});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, host + "/conv/app\n" + host + "/conv/other\n");
  r = RunHoist({"search", "app", "--registry", host});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, host + "/conv/app\n");

  r = RunHoist({"search", "app"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_EQ(r.stderr_text,
            "hoist search: no registry given: search REGISTRY/TERM or --registry HOST (docker.io "
            "has no catalog to search)\n");
  r = RunHoist({"search", host + "/app", "--registry", host});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_EQ(CountLines(r.stderr_text), 1) << r.stderr_text;
}

TEST_F(CliConvTest, InspectSaysWhenItFallsBackToTheLocalStore) {
  const std::string cache = NewDir("fallback-cache");
  const std::string ref = registry_->ImageRef("conv/app", "v1");
  CommandResult r = RunHoist({"pull", "-q", "--cache", cache, ref});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  // A local name whose registry refuses connections.
  const std::string unreachable = "127.0.0.1:1/conv/app:v1";
  r = RunHoist({"tag", "--cache", cache, ref, unreachable});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  r = RunHoist({"inspect", "--cache", cache, unreachable});
  ASSERT_TRUE(r.ok()) << r.Describe() << r.stderr_text;
  rapidjson::Document d = ParseJson(r.stdout_text);
  EXPECT_EQ(std::string(d["Digest"].GetString()), image_->manifest_digest.str());
  EXPECT_EQ(CountLines(r.stderr_text), 1) << r.stderr_text;
  EXPECT_TRUE(r.stderr_text.starts_with("hoist inspect: registry unreachable (")) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("(gave up after 2 attempts)"), std::string::npos) << r.stderr_text;
  EXPECT_TRUE(r.stderr_text.ends_with("); using the local store\n")) << r.stderr_text;
}

// ---- login / logout through a credential helper ----------------------------------------------

// A docker-credential-<name> that records each call and keeps what `store` gave it.
std::string WriteFakeHelper(const std::string& dir, const std::string& name, bool fail_store) {
  const std::string script =
      "#!/bin/sh\n"
      "d=$(dirname \"$0\")\n"
      "input=$(cat)\n"
      "printf '%s %s\\n' \"$1\" \"$input\" >> \"$d/calls.log\"\n"
      "case \"$1\" in\n"
      "  store) " +
      std::string(fail_store ? "echo 'keychain is locked'; exit 3"
                             : "printf '%s' \"$input\" > \"$d/stored.json\"") +
      " ;;\n"
      "  get) if [ -f \"$d/stored.json\" ]; then cat \"$d/stored.json\"; "
      "else echo 'credentials not found in native keychain'; exit 1; fi ;;\n"
      "  erase) rm -f \"$d/stored.json\" ;;\n"
      "esac\n";
  const std::string path = dir + "/docker-credential-" + name;
  EXPECT_TRUE(WriteFileAtomic(path, script, 0755).has_value());
  return path;
}

class CliLoginHelperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto reg = TestRegistry::Launch({.auth = harness::RegistryAuthMode::kBasic});
    ASSERT_TRUE(reg.has_value()) << reg.error().message();
    reg_ = std::move(*reg);
    std::vector<harness::LayerSpec> layers(1);
    layers[0].files = {FileSpec::File("a", "a\n")};
    auto img = harness::BuildOciImage(NewDir("login-layout"), layers, {});
    ASSERT_TRUE(img.has_value()) << img.error().message();
    manifest_ = img->manifest;
    ASSERT_TRUE(harness::PushOciLayout(img->OciRef(), reg_->DockerRef("auth/app", "v1"),
                                       {.creds = reg_->skopeo_creds()})
                    .has_value());
    bin_ = NewDir("helper-bin");
    config_dir_ = NewDir("docker-config");
    env_ = {"DOCKER_CONFIG=" + config_dir_, "REGISTRY_AUTH_FILE=/nonexistent",
            "XDG_RUNTIME_DIR=/nonexistent",
            "PATH=" + bin_ + ":" + std::string(std::getenv("PATH") ? std::getenv("PATH") : "")};
  }
  std::string Config() const { return config_dir_ + "/config.json"; }
  std::string Calls() const {
    auto text = ReadFile(bin_ + "/calls.log");
    return text ? *text : "";
  }
  CommandResult Login() {
    return RunHoist({"login", "-u", reg_->user(), "--password-stdin", reg_->host_port()}, env_,
                    reg_->password() + "\n");
  }
  // The stored config, after a login through the helper: an empty entry, no secret.
  void ExpectEmptyEntry() {
    auto text = ReadFile(Config());
    ASSERT_TRUE(text.has_value());
    EXPECT_EQ(text->find(reg_->password()), std::string::npos) << *text;
    EXPECT_EQ(text->find(Base64Encode(reg_->user() + ":" + reg_->password())), std::string::npos);
    rapidjson::Document cfg = ParseJson(*text);
    ASSERT_TRUE(cfg.HasMember("auths")) << *text;
    ASSERT_TRUE(cfg["auths"].HasMember(reg_->host_port().c_str())) << *text;
    EXPECT_TRUE(cfg["auths"][reg_->host_port().c_str()].IsObject());
    EXPECT_EQ(cfg["auths"][reg_->host_port().c_str()].MemberCount(), 0u) << *text;
  }

  std::unique_ptr<TestRegistry> reg_;
  std::string manifest_;
  std::string bin_;
  std::string config_dir_;
  std::vector<std::string> env_;
};

TEST_F(CliLoginHelperTest, CredsStoreGetsTheSecretAndLogoutErasesIt) {
  WriteFakeHelper(bin_, "fake", /*fail_store=*/false);
  ASSERT_TRUE(WriteFileAtomic(Config(), "{\"credsStore\": \"fake\"}\n", 0600).has_value());
  CommandResult r = Login();
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "Login Succeeded (" + reg_->host_port() + ")\n");
  EXPECT_EQ(Calls(), "store {\"ServerURL\":\"" + reg_->host_port() + "\",\"Username\":\"" +
                         reg_->user() + "\",\"Secret\":\"" + reg_->password() + "\"}\n");
  ExpectEmptyEntry();
  rapidjson::Document cfg = ParseJson(*ReadFile(Config()));
  EXPECT_STREQ(cfg["credsStore"].GetString(), "fake");

  // Later commands get the secret back from the helper.
  r = RunHoist({"inspect", "--raw", reg_->ImageRef("auth/app", "v1")}, env_);
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, manifest_);
  EXPECT_NE(Calls().find("\nget " + reg_->host_port() + "\n"), std::string::npos) << Calls();

  r = RunHoist({"logout", reg_->host_port()}, env_);
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_TRUE(Calls().ends_with("erase " + reg_->host_port() + "\n")) << Calls();
  cfg = ParseJson(*ReadFile(Config()));
  EXPECT_FALSE(cfg.HasMember("auths") && cfg["auths"].HasMember(reg_->host_port().c_str()));
  struct stat st {};
  EXPECT_NE(::stat((bin_ + "/stored.json").c_str(), &st), 0) << "the helper still has it";
}

TEST_F(CliLoginHelperTest, CredHelpersForTheRegistryWinAndAFailingHelperWritesNothing) {
  WriteFakeHelper(bin_, "mine", /*fail_store=*/false);
  WriteFakeHelper(bin_, "broken", /*fail_store=*/true);
  const std::string config =
      "{\"credsStore\": \"broken\", \"credHelpers\": {\"" + reg_->host_port() + "\": \"mine\"}}\n";
  ASSERT_TRUE(WriteFileAtomic(Config(), config, 0600).has_value());
  CommandResult r = Login();
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_TRUE(Calls().starts_with("store {\"ServerURL\":\"" + reg_->host_port())) << Calls();
  ExpectEmptyEntry();

  // Only credsStore now, and it fails: one line, exit 1, config.json as it was.
  const std::string before = "{\"credsStore\": \"broken\"}\n";
  ASSERT_TRUE(WriteFileAtomic(Config(), before, 0600).has_value());
  r = Login();
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(CountLines(r.stderr_text), 1) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("docker-credential-broken store failed"), std::string::npos)
      << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("keychain is locked"), std::string::npos) << r.stderr_text;
  EXPECT_EQ(r.stderr_text.find(reg_->password()), std::string::npos);
  EXPECT_EQ(*ReadFile(Config()), before);
}

// ---- history like docker's -------------------------------------------------------------------

std::string Pad(const std::string& s, size_t width) {
  size_t points = 0;
  for (unsigned char c : s) points += (c & 0xC0) != 0x80;
  return s + std::string(width > points ? width - points : 0, ' ');
}

TEST_F(CliConvTest, HistoryShowsImageIdUncompressedSizesAndHumanTimes) {
  // The same image as gzip and as zstd:chunked (hoist convert keeps the config: same image ID).
  const std::string gz = registry_->ImageRef("conv/app", "v1");
  const std::string zst = registry_->ImageRef("conv/app", "zstd");
  CommandResult conv = RunHoist({"convert", "-q", "docker://" + gz, "docker://" + zst});
  ASSERT_TRUE(conv.ok()) << conv.stderr_text;
  const std::string cache = NewDir("history-cache");

  const std::string id = image_->config_digest.hex().substr(0, 12);
  // 45 characters: 44 and an ellipsis, as docker cuts CREATED BY.
  const std::string ellipsized = "/bin/sh -c #(nop) ADD file:0123456789abcdef0\u2026";
  const std::vector<std::vector<std::string>> cells = {
      {"IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"},
      {id, "3 weeks ago", "RUN make", "2.5MB", "built by hand"},
      {"<missing>", "3 weeks ago", "/bin/sh -c #(nop)  ENV A=b", "0B", ""},
      {"<missing>", "3 weeks ago", ellipsized, "1.5kB", ""},
  };
  std::string expected;
  for (const auto& row : cells) {
    expected +=
        Pad(row[0], 15) + Pad(row[1], 14) + Pad(row[2], 48) + Pad(row[3], 10) + row[4] + "\n";
  }
  CommandResult a = RunHoist({"history", "--cache", cache, gz});
  ASSERT_TRUE(a.ok()) << a.stderr_text;
  EXPECT_EQ(a.stdout_text, expected);
  CommandResult b = RunHoist({"history", "--cache", cache, zst});
  ASSERT_TRUE(b.ok()) << b.stderr_text;
  EXPECT_EQ(b.stdout_text, expected);

  CommandResult q = RunHoist({"history", "-q", "--cache", cache, gz});
  ASSERT_TRUE(q.ok()) << q.stderr_text;
  EXPECT_EQ(q.stdout_text, id + "\n<missing>\n<missing>\n");

  CommandResult raw =
      RunHoist({"history", "-H=false", "--no-trunc", "--format",
                "{{.ID}}|{{.CreatedSince}}|{{.Size}}|{{.CreatedBy}}", "--cache", cache, zst});
  ASSERT_TRUE(raw.ok()) << raw.stderr_text;
  const std::string at = FormatRfc3339(created_);
  EXPECT_EQ(raw.stdout_text,
            image_->config_digest.str() + "|" + at + "|2500003|RUN make\n<missing>|" + at +
                "|0|/bin/sh -c #(nop)  ENV A=b\n<missing>|" + at +
                "|1500|/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789abcdef in / \n");

  CommandResult two =
      RunHoist({"history", "--format", "{{.ID}} {{.CreatedBy}}", "--cache", cache, gz});
  ASSERT_TRUE(two.ok()) << two.stderr_text;
  EXPECT_EQ(two.stdout_text,
            id + " RUN make\n<missing> /bin/sh -c #(nop)  ENV A=b\n<missing> " + ellipsized + "\n");

  CommandResult json = RunHoist({"history", "--format", "json", "--cache", cache, gz});
  ASSERT_TRUE(json.ok()) << json.stderr_text;
  ASSERT_EQ(CountLines(json.stdout_text), 3) << json.stdout_text;
  rapidjson::Document first = ParseJson(json.stdout_text.substr(0, json.stdout_text.find('\n')));
  EXPECT_STREQ(first["ID"].GetString(), id.c_str());
  EXPECT_STREQ(first["CreatedSince"].GetString(), "3 weeks ago");
  EXPECT_STREQ(first["CreatedAt"].GetString(), at.c_str());
  EXPECT_STREQ(first["Size"].GetString(), "2.5MB");
  EXPECT_STREQ(first["Comment"].GetString(), "built by hand");

  CommandResult bad = RunHoist({"history", "--format", "{{.Nope}}", "--cache", cache, gz});
  EXPECT_EQ(bad.exit_code, 2) << bad.Describe();
  EXPECT_EQ(bad.stderr_text,
            "hoist history: --format: unknown field \".Nope\" (known: .ID .CreatedSince "
            ".CreatedAt .CreatedBy .Size .Comment)\n");
}

TEST(HistoryFormatTest, HumanDurationsAndSizesAsDockerPrintsThem) {
  EXPECT_EQ(HumanDurationAgo(0), "Less than a second ago");
  EXPECT_EQ(HumanDurationAgo(1), "1 second ago");
  EXPECT_EQ(HumanDurationAgo(59), "59 seconds ago");
  EXPECT_EQ(HumanDurationAgo(60), "About a minute ago");
  EXPECT_EQ(HumanDurationAgo(45 * 60), "45 minutes ago");
  EXPECT_EQ(HumanDurationAgo(3600 + 1799), "About an hour ago");
  EXPECT_EQ(HumanDurationAgo(47 * 3600), "47 hours ago");
  EXPECT_EQ(HumanDurationAgo(13 * 24 * 3600), "13 days ago");
  EXPECT_EQ(HumanDurationAgo(21 * 24 * 3600), "3 weeks ago");
  EXPECT_EQ(HumanDurationAgo(90 * 24 * 3600), "3 months ago");
  EXPECT_EQ(HumanDurationAgo(3 * 365 * 24 * 3600), "3 years ago");
  EXPECT_EQ(HumanSizeDecimal(0), "0B");
  EXPECT_EQ(HumanSizeDecimal(999), "999B");
  EXPECT_EQ(HumanSizeDecimal(1024), "1.02kB");
  EXPECT_EQ(HumanSizeDecimal(7823456), "7.82MB");
  EXPECT_EQ(Ellipsis("abcdef", 4), "abc\u2026");
  EXPECT_EQ(Ellipsis("abcd", 4), "abcd");
  EXPECT_EQ(Ellipsis("abcdef", 3), "abc");
}

// ---- man page and bash completion ------------------------------------------------------------

// The verbs `hoist --help` lists (CLI11's "Subcommands:" section, one "  name  description" a
// line).
std::vector<std::string> VerbsFromHelp() {
  CommandResult r = RunHoist({"--help"});
  EXPECT_TRUE(r.ok());
  std::vector<std::string> verbs;
  size_t pos = r.stdout_text.find("Subcommands:\n");
  EXPECT_NE(pos, std::string::npos) << r.stdout_text;
  if (pos == std::string::npos) return verbs;
  pos += 13;
  while (pos < r.stdout_text.size()) {
    size_t nl = r.stdout_text.find('\n', pos);
    std::string line = r.stdout_text.substr(pos, nl - pos);
    if (!line.starts_with("  ")) break;
    size_t b = line.find_first_not_of(' ');
    verbs.push_back(line.substr(b, line.find(' ', b) - b));
    pos = nl + 1;
  }
  return verbs;
}

TEST(CliDocTest, ManPageIsCleanAndListsEveryVerb) {
  const std::string man = std::string(HOIST_DOC_DIR) + "/hoist.1";
  auto groff = harness::RunCommand({"groff", "-ww", "-man", "-Tutf8", "-z", man});
  ASSERT_TRUE(groff.has_value()) << groff.error().message();
  EXPECT_EQ(groff->exit_code, 0);
  EXPECT_EQ(groff->stderr_text, "");
  auto rendered = harness::RunCommand({"man", "--warnings", "-l", man},
                                      {.env = {"MANWIDTH=100", "MAN_KEEP_FORMATTING=0"}});
  ASSERT_TRUE(rendered.has_value()) << rendered.error().message();
  EXPECT_EQ(rendered->exit_code, 0);
  EXPECT_EQ(rendered->stderr_text, "");
  auto text = ReadFile(man);
  ASSERT_TRUE(text.has_value());
  const std::vector<std::string> verbs = VerbsFromHelp();
  EXPECT_GE(verbs.size(), 25u);
  for (const std::string& v : verbs) {
    std::string escaped;  // roff writes a hyphen as "\-"
    for (char c : v) escaped += c == '-' ? std::string("\\-") : std::string(1, c);
    EXPECT_NE(text->find(".SS \"hoist " + escaped), std::string::npos) << v;
  }
  EXPECT_EQ(text->find("__generate"), std::string::npos);
  EXPECT_NE(text->find(".SH EXIT STATUS"), std::string::npos);

  // Installed where man and bash-completion look.
  const std::string prefix = NewDir("install");
  auto install = harness::RunCommand(
      {"cmake", "--install", HOIST_BUILD_DIR, "--prefix", prefix, "--component", "hoist_doc"});
  ASSERT_TRUE(install.has_value()) << install.error().message();
  EXPECT_EQ(install->exit_code, 0) << install->stderr_text;
  EXPECT_EQ(ReadFile(prefix + "/share/man/man1/hoist.1").value_or(""), *text);
  EXPECT_EQ(ReadFile(prefix + "/share/bash-completion/completions/hoist").value_or("?"),
            ReadFile(std::string(HOIST_DOC_DIR) + "/hoist.bash").value_or(""));
}

// What bash completes for the words typed so far (the last one is being completed).
std::string Complete(const std::string& words) {
  const std::string script = "source " + std::string(HOIST_DOC_DIR) +
                             "/hoist.bash && complete -p hoist && COMP_WORDS=(" + words +
                             ") && COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) && _hoist && "
                             "printf '%s\\n' \"${COMPREPLY[@]}\"";
  auto r = harness::RunCommand({"bash", "--norc", "-c", script});
  EXPECT_TRUE(r.has_value() && r->exit_code == 0) << (r ? r->stderr_text : r.error().message());
  return r ? r->stdout_text : "";
}

TEST(CliDocTest, BashCompletionCompletesVerbsAndOptions) {
  EXPECT_EQ(Complete("hoist hist"), "complete -o default -F _hoist hoist\nhistory\n");
  const std::string all = Complete("hoist ''");
  for (const std::string& v : VerbsFromHelp()) {
    EXPECT_NE(all.find("\n" + v + "\n"), std::string::npos) << v;
  }
  EXPECT_EQ(Complete("hoist history --no"), "complete -o default -F _hoist hoist\n--no-trunc\n");
  EXPECT_EQ(Complete("hoist --vers"), "complete -o default -F _hoist hoist\n--version\n");
}

}  // namespace
}  // namespace hoist
