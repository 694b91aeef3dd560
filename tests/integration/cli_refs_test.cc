// Issue 19 items 1, 2 and 11: one reference parser for every verb (docker:// everywhere, unknown
// transports refused), skopeo's dir: layout (read and written, checked against the real skopeo)
// apart from rootfs:, and the verbs copy, delete and manifest-digest. Real registry (distribution
// 2.8 through the harness), real skopeo as the reference; exact outputs and exit codes.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "tests/harness/cli_expect.h"
#include "tests/harness/hoist_cli.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"

namespace hoist {
namespace {

using harness::CommandResult;
using harness::ExpectOneLineError;
using harness::FileSpec;
using harness::RunChecked;
using harness::RunHoist;
using harness::TestRegistry;

const char kKnown[] = "(known: docker, oci, oci-archive, docker-archive, dir, rootfs)";

std::vector<std::string> ListDir(const std::string& dir) {
  auto out = RunChecked({"bash", "-c", "cd \"$0\" && LC_ALL=C ls -A", dir});
  EXPECT_TRUE(out.has_value()) << out.error().message();
  std::vector<std::string> names;
  std::string line;
  for (char c : out.value_or("")) {
    if (c == '\n') {
      names.push_back(line);
      line.clear();
    } else {
      line += c;
    }
  }
  return names;
}

class CliRefsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto need = harness::RequirePrograms({"skopeo"});
    ASSERT_TRUE(need.has_value()) << need.error().message();
    auto reg = TestRegistry::Launch({});
    ASSERT_TRUE(reg.has_value()) << reg.error().message();
    registry_ = reg->release();
    root_ = new std::string(std::string(::testing::TempDir()) + "/cli-refs-" +
                            std::to_string(::getpid()));
    ASSERT_TRUE(MakeDirs(*root_).has_value());
    harness::ImageSpec spec;
    spec.tag = "v1";
    spec.env = {"PATH=/bin"};
    std::vector<harness::LayerSpec> layers(2);
    layers[0].files = {FileSpec::File("etc/hello", "hi\n"), FileSpec::Symlink("etc/link", "hello")};
    layers[1].files = {FileSpec::BigFile("data/big", 200000, 7)};
    auto img = BuildOciImage(*root_ + "/layout", layers, spec);
    ASSERT_TRUE(img.has_value()) << img.error().message();
    image_ = new harness::BuiltImage(*img);
    auto st = harness::PushOciLayout(img->OciRef(), registry_->DockerRef("refs/app", "v1"));
    ASSERT_TRUE(st.has_value()) << st.error().message();
  }
  static void TearDownTestSuite() {
    delete registry_;
    delete image_;
    if (root_ != nullptr) (void)RemoveTree(*root_);
    delete root_;
  }

  static std::string Path(const std::string& name) { return *root_ + "/" + name; }
  static std::string Ref(const std::string& repo = "refs/app", const std::string& tag = "v1") {
    return registry_->ImageRef(repo, tag);
  }
  static std::string Skopeo(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"skopeo"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto out = RunChecked(argv);
    EXPECT_TRUE(out.has_value()) << out.error().message();
    return out.value_or("");
  }
  static std::string SkopeoCopy(const std::string& from, const std::string& to) {
    std::vector<std::string> args = {"copy", "--insecure-policy", "--src-tls-verify=false",
                                     "--dest-tls-verify=false"};
    // A docker-archive holds Docker schema 2 only: skopeo converts, so digests change there.
    if (!to.starts_with("docker-archive:")) args.push_back("--preserve-digests");
    args.push_back(from);
    args.push_back(to);
    return Skopeo(args);
  }
  // The digest `skopeo inspect` reports for `name` (any skopeo transport).
  static std::string SkopeoDigest(const std::string& name) {
    std::string raw = Skopeo({"inspect", "--raw", "--tls-verify=false", name});
    return Digest::Of(raw).str();
  }

  static TestRegistry* registry_;
  static harness::BuiltImage* image_;
  static std::string* root_;
};
TestRegistry* CliRefsTest::registry_ = nullptr;
harness::BuiltImage* CliRefsTest::image_ = nullptr;
std::string* CliRefsTest::root_ = nullptr;

// Item 1: docker:// works for every verb that takes a registry reference.
TEST_F(CliRefsTest, DockerPrefixWorksForEveryRegistryVerb) {
  const std::string ref = "docker://" + Ref();
  const std::string digest = image_->manifest_digest.str();

  CommandResult r = RunHoist({"inspect", "--raw", ref});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, image_->manifest);

  r = RunHoist({"tags", "docker://" + registry_->host_port() + "/refs/app"});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "v1\n");

  const std::string cache = Path("cache-docker-prefix");
  r = RunHoist({"history", "--cache", cache, ref});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_FALSE(r.stdout_text.empty());

  r = RunHoist({"tag", "--cache", cache, "--remote", ref, "docker://" + Ref("refs/app", "tagged")});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(SkopeoDigest("docker://" + Ref("refs/app", "tagged")), digest);

  r = RunHoist({"pull", "-q", "--cache", cache, ref});
  ASSERT_TRUE(r.ok()) << r.stderr_text;

  const std::string archive = Path("saved.tar");
  r = RunHoist({"save", "--cache", cache, "-o", archive, ref});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(Skopeo({"inspect", "--raw", "--config", "docker-archive:" + archive}), image_->config);
}

// Item 1: an unknown transport is one clear line for every verb, never a docker.io name.
TEST_F(CliRefsTest, UnknownTransportIsRefusedByEveryVerb) {
  const std::string bad = "bogus:foo/bar";
  const std::string line = "\"bogus:foo/bar\": unknown transport \"bogus\" " + std::string(kKnown);
  const std::string mnt = Path("mnt-unused");
  const std::vector<std::vector<std::string>> commands = {
      {"inspect", bad},
      {"tags", bad},
      {"pull", "--cache", Path("cache-bad"), bad},
      {"history", "--cache", Path("cache-bad"), bad},
      {"tag", "--cache", Path("cache-bad"), bad, Ref("refs/app", "x")},
      {"save", "--cache", Path("cache-bad"), "-o", Path("bad.tar"), bad},
      {"mount", bad, mnt},
      {"copy", bad, "oci:" + Path("bad-out")},
      {"convert", bad, "oci:" + Path("bad-out")},
      {"push", bad, "oci:" + Path("bad-out")},
      {"delete", bad},
      {"manifest-digest", bad},
  };
  for (const auto& args : commands) {
    SCOPED_TRACE(args[0]);
    CommandResult r = RunHoist(args);
    ExpectOneLineError(r, args[0], line);
  }
  CommandResult r = RunHoist({"run", bad});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.stderr_text, "hoist run: " + line + "\n");
  EXPECT_NE(::access(Path("bad-out").c_str(), F_OK), 0);

  // A skopeo transport hoist does not have, and a registry verb given a file transport.
  ExpectOneLineError(RunHoist({"inspect", "containers-storage:busybox"}), "inspect",
                     "transport \"containers-storage\" is not supported " + std::string(kKnown));
  ExpectOneLineError(RunHoist({"tags", "oci:" + image_->layout_dir}), "tags",
                     "not a registry reference (this verb takes REF or docker://REF");
}

// Item 1: inspect reads oci:, docker-archive: and dir: (what skopeo wrote) like the registry.
TEST_F(CliRefsTest, InspectReadsEveryTransport) {
  const std::string archive = Path("inspect-docker.tar");
  SkopeoCopy("docker://" + Ref(), "docker-archive:" + archive + ":refs/app:v1");
  const std::string dir = Path("inspect-dir");
  SkopeoCopy("docker://" + Ref(), "dir:" + dir);
  for (const std::string& name :
       {image_->OciRef(), "docker-archive:" + archive, "dir:" + dir, "docker://" + Ref()}) {
    SCOPED_TRACE(name);
    CommandResult r = RunHoist({"inspect", "--config", name});
    ASSERT_TRUE(r.ok()) << r.stderr_text;
    EXPECT_EQ(r.stdout_text, image_->config);
  }
  CommandResult r = RunHoist({"inspect", "--raw", "dir:" + dir});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, image_->manifest);
}

// Item 2: dir: is skopeo's layout, both ways, byte for byte; rootfs: is the tree.
TEST_F(CliRefsTest, DirIsSkopeosLayoutBothWays) {
  const std::string digest = image_->manifest_digest.str();
  // skopeo writes, hoist reads: push dir: gives the same image (today: a one-layer image of the
  // layout's files).
  const std::string theirs = Path("skopeo-dir");
  SkopeoCopy("docker://" + Ref(), "dir:" + theirs);
  CommandResult r = RunHoist({"push", "dir:" + theirs, "docker://" + Ref("refs/fromdir", "v1")});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "Pushed docker://" + Ref("refs/fromdir", "v1") + " " + digest + "\n");
  EXPECT_EQ(
      Skopeo({"inspect", "--raw", "--tls-verify=false", "docker://" + Ref("refs/fromdir", "v1")}),
      image_->manifest);

  // hoist writes, skopeo reads: the same files with the same bytes as skopeo's own layout.
  const std::string mine = Path("hoist-dir");
  r = RunHoist({"copy", "docker://" + Ref(), "dir:" + mine});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "Copied docker://" + Ref() + " to dir:" + mine + " " + digest + "\n");
  EXPECT_EQ(ListDir(mine), ListDir(theirs));
  for (const std::string& f : ListDir(theirs)) {
    SCOPED_TRACE(f);
    EXPECT_EQ(ReadFile(mine + "/" + f).value_or("<missing>"),
              ReadFile(theirs + "/" + f).value_or(""));
  }
  EXPECT_EQ(ReadFile(mine + "/version").value_or(""), "Directory Transport Version: 1.1\n");
  EXPECT_EQ(SkopeoDigest("dir:" + mine), digest);
  const std::string back = Path("skopeo-from-hoist-dir");
  SkopeoCopy("dir:" + mine, "oci:" + back + ":v1");
  EXPECT_EQ(SkopeoDigest("oci:" + back + ":v1"), digest);

  // Each kind refuses the other, in one line, and nothing is written.
  const std::string tree = Path("plain-tree");
  ASSERT_TRUE(MakeDirs(tree + "/etc").has_value());
  ASSERT_TRUE(WriteFileAtomic(tree + "/etc/hostname", "box\n").has_value());
  ExpectOneLineError(RunHoist({"copy", "dir:" + tree, "oci:" + Path("never")}), "copy",
                     tree +
                         " is not a dir: image layout (no version file); a root filesystem is "
                         "read with rootfs:" +
                         tree);
  ExpectOneLineError(
      RunHoist({"convert", "-q", "rootfs:" + theirs, "oci:" + Path("never")}), "convert",
      "rootfs:" + theirs + ": " + theirs +
          " is a skopeo dir: image layout, not a root filesystem (name it dir:" + theirs + ")");
  ExpectOneLineError(RunHoist({"copy", "docker://" + Ref(), "dir:" + tree}), "copy",
                     tree +
                         " exists and is not a dir: image layout (no version file); refusing "
                         "to overwrite it");
  EXPECT_EQ(ListDir(tree), (std::vector<std::string>{"etc"}));
  EXPECT_EQ(ReadFile(tree + "/etc/hostname").value_or(""), "box\n");
  EXPECT_NE(::access(Path("never").c_str(), F_OK), 0);

  // rootfs: still builds the one-layer image of a tree.
  r = RunHoist({"copy", "rootfs:" + tree, "oci:" + Path("from-tree") + ":t"});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  std::string raw = Skopeo({"inspect", "--raw", "oci:" + Path("from-tree") + ":t"});
  EXPECT_NE(raw.find("\"application/vnd.oci.image.layer.v1.tar\""), std::string::npos) << raw;
}

// A directory named with a trailing slash (as shell completion writes it) is the same directory:
// as a destination (new, or an existing empty one) and as a source, as in skopeo.
TEST_F(CliRefsTest, DirectoryNamesTakeATrailingSlash) {
  const std::string digest = image_->manifest_digest.str();
  const std::string parent = Path("slash");
  ASSERT_TRUE(MakeDirs(parent + "/empty-dir").has_value());
  ASSERT_TRUE(MakeDirs(parent + "/empty-oci").has_value());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"dir:" + parent + "/new-dir/", "dir:" + parent + "/new-dir"},
      {"dir:" + parent + "/empty-dir//", "dir:" + parent + "/empty-dir"},
      {"oci:" + parent + "/new-oci/:v1", "oci:" + parent + "/new-oci:v1"},
      {"oci:" + parent + "/empty-oci/", "oci:" + parent + "/empty-oci"},
  };
  for (const auto& [dst, plain] : cases) {
    SCOPED_TRACE(dst);
    CommandResult r = RunHoist({"copy", "docker://" + Ref(), dst});
    ASSERT_TRUE(r.ok()) << r.stderr_text;
    EXPECT_EQ(r.stdout_text, "Copied docker://" + Ref() + " to " + plain + " " + digest + "\n");
    EXPECT_EQ(SkopeoDigest(plain), digest);
    // And read back through the name with the slash.
    r = RunHoist({"manifest-digest", dst});
    ASSERT_TRUE(r.ok()) << r.stderr_text;
    EXPECT_EQ(r.stdout_text, digest + "\n");
  }
  // Nothing else was left in the parent (no temporary layout).
  EXPECT_EQ(ListDir(parent),
            (std::vector<std::string>{"empty-dir", "empty-oci", "new-dir", "new-oci"}));
}

// Item 11: copy between transports keeps every digest; blobs the destination has are skipped.
TEST_F(CliRefsTest, CopyRoundTripKeepsDigests) {
  const std::string digest = image_->manifest_digest.str();
  const std::vector<std::string> chain = {
      "docker://" + Ref(),
      "oci:" + Path("rt-oci") + ":v1",
      "dir:" + Path("rt-dir"),
      "oci-archive:" + Path("rt.tar") + ":v1",
      "docker://" + Ref("refs/roundtrip", "v1"),
  };
  for (size_t i = 0; i + 1 < chain.size(); ++i) {
    SCOPED_TRACE(chain[i] + " -> " + chain[i + 1]);
    CommandResult r = RunHoist({"copy", chain[i], chain[i + 1]});
    ASSERT_TRUE(r.ok()) << r.stderr_text;
    EXPECT_EQ(r.stdout_text, "Copied " + chain[i] + " to " + chain[i + 1] + " " + digest + "\n");
    EXPECT_EQ(SkopeoDigest(chain[i + 1]), digest);
  }
  EXPECT_EQ(Skopeo({"inspect", "--raw", "--tls-verify=false", chain.back()}), image_->manifest);
  EXPECT_EQ(Skopeo({"inspect", "--raw", "--config", "--tls-verify=false", chain.back()}),
            image_->config);

  // Again into the same repository: nothing is uploaded (HEAD finds every blob).
  const uint64_t mark = registry_->LogMark();
  CommandResult r = RunHoist({"copy", "--digestfile", Path("digest"), chain[1], chain.back()});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(ReadFile(Path("digest")).value_or(""), digest);
  auto requests = registry_->Requests(mark);
  ASSERT_TRUE(requests.has_value()) << requests.error().message();
  for (const auto& q : *requests) {
    EXPECT_TRUE(q.method != "POST" && q.method != "PATCH") << q.method << " " << q.uri;
    if (q.method == "PUT") {
      EXPECT_NE(q.uri.find("/manifests/"), std::string::npos) << q.uri;
    }
  }

  // docker-archive: as a source (what docker save and skopeo write): the config is kept.
  const std::string archive = Path("rt-docker.tar");
  SkopeoCopy("docker://" + Ref(), "docker-archive:" + archive + ":refs/app:v1");
  r = RunHoist({"copy", "docker-archive:" + archive, "oci:" + Path("rt-from-archive") + ":v1"});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(Skopeo({"inspect", "--raw", "--config", "oci:" + Path("rt-from-archive") + ":v1"}),
            image_->config);

  // docker-archive: as a destination, read back by skopeo (the config and its name are kept) and
  // by hoist load; a name without a tag and a destination that cannot be written are one line.
  const std::string out = Path("out-docker.tar");
  r = RunHoist(
      {"copy", "docker://" + Ref(), "docker-archive:" + out + ":" + Ref("refs/saved", "v2")});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "Copied docker://" + Ref() + " to docker-archive:" + out + ":" +
                               Ref("refs/saved", "v2") + " " + digest + "\n");
  EXPECT_EQ(Skopeo({"inspect", "--raw", "--config", "docker-archive:" + out}), image_->config);
  auto manifest_json = harness::RunCommand({"tar", "-xOf", out, "manifest.json"});
  ASSERT_TRUE(manifest_json.has_value()) << manifest_json.error().message();
  EXPECT_NE(manifest_json->stdout_text.find("\"RepoTags\":[\"" + registry_->host_port() +
                                            "/refs/saved:v2\"]"),
            std::string::npos)
      << manifest_json->stdout_text;
  r = RunHoist({"copy", "oci:" + Path("rt-oci") + ":v1", "docker-archive:" + Path("y.tar")});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(Skopeo({"inspect", "--raw", "--config", "docker-archive:" + Path("y.tar")}),
            image_->config);
  ExpectOneLineError(RunHoist({"copy", chain[0], "docker-archive:" + Path("z.tar") + ":Bad/Name"}),
                     "copy", "z.tar");
  EXPECT_FALSE(std::filesystem::exists(Path("z.tar")));
  ExpectOneLineError(RunHoist({"push", chain[1], "docker-archive:" + Path("x.tar")}), "push",
                     "only docker://, oci:, oci-archive: and dir: are supported as destinations");
}

// Item 11: delete removes the manifest (and so its tags); a registry without deletes says so.
TEST_F(CliRefsTest, DeleteRemovesARemoteManifest) {
  const std::string digest = image_->manifest_digest.str();
  const std::string target = Ref("refs/del", "v1");
  ASSERT_TRUE(RunHoist({"copy", "docker://" + Ref(), "docker://" + target}).ok());
  CommandResult r = RunHoist({"delete", "docker://" + target});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "Deleted " + registry_->host_port() + "/refs/del@" + digest + "\n");
  auto gone = harness::RunCommand(
      {"skopeo", "inspect", "--raw", "--tls-verify=false", "docker://" + target});
  ASSERT_TRUE(gone.has_value());
  EXPECT_NE(gone->exit_code, 0);
  // The source repository is untouched.
  EXPECT_EQ(SkopeoDigest("docker://" + Ref()), digest);
  // Deleting it again: the registry no longer knows the tag.
  ExpectOneLineError(RunHoist({"delete", target}), "delete", "refs/del: manifest v1");

  auto closed = TestRegistry::Launch({.delete_enabled = false});
  ASSERT_TRUE(closed.has_value()) << closed.error().message();
  const std::string there = (*closed)->ImageRef("refs/keep", "v1");
  ASSERT_TRUE(RunHoist({"copy", "docker://" + Ref(), "docker://" + there}).ok());
  ExpectOneLineError(RunHoist({"delete", there}), "delete",
                     "refs/keep: manifest " + digest +
                         ": the registry does not allow deletes (405 Method Not Allowed; a "
                         "distribution registry needs storage.delete.enabled: true)");
  EXPECT_EQ(SkopeoDigest("docker://" + there), digest);
}

// Item 11: manifest-digest prints what skopeo manifest-digest prints, for files and images.
TEST_F(CliRefsTest, ManifestDigestMatchesSkopeo) {
  const std::string file = Path("manifest.json");
  ASSERT_TRUE(WriteFileAtomic(file, image_->manifest).has_value());
  const std::string expected = image_->manifest_digest.str() + "\n";
  EXPECT_EQ(Skopeo({"manifest-digest", file}), expected);
  CommandResult r = RunHoist({"manifest-digest", file});
  ASSERT_TRUE(r.ok()) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, expected);
  for (const std::string& name : {"docker://" + Ref(), Ref(), image_->OciRef()}) {
    SCOPED_TRACE(name);
    r = RunHoist({"manifest-digest", name});
    ASSERT_TRUE(r.ok()) << r.stderr_text;
    EXPECT_EQ(r.stdout_text, expected);
  }
  ExpectOneLineError(RunHoist({"manifest-digest", "oci:" + Path("no-such-layout")}),
                     "manifest-digest", Path("no-such-layout") + " is not an OCI image layout");
}

}  // namespace
}  // namespace hoist
