// Odd layers through every path of hoist, against the REAL registry, REAL umoci and containerd,
// REAL FUSE mounts by the real hoistfs, the real hoist binary. Layers are made by the real GNU
// tar (--append for a path twice, --delete for a hardlink whose target is in a lower layer,
// --sparse for sparse members). Runs as root; missing tools FAIL the suite, never skip it.
//
// The rule (docs/RELIABILITY.md, index/FORMATS.md): what the reference unpackers extract, hoist
// mounts the same way in every form (the gzip original, its `hoist convert` output, and after
// `hoist pull` with the registry stopped); what hoist refuses, every path refuses with the same
// one-line message, naming the layer the same way.
//
//   DuplicateEntries  a layer with the same name twice, a symlink then a file, a file then a
//                     symlink, a file then a directory, a directory twice, a directory (with a
//                     child) then a file, a lower directory replaced by a file, a hardlink to a
//                     name later replaced: every path gives umoci's tree (checked exactly),
//                     which is also containerd's.
//   LowerHardlink     a hardlink to a file of a lower layer: containerd refuses it, so every
//                     path of hoist refuses it with the same message.
//   OldGnuSparse      old GNU sparse ('S', refused by umoci and containerd): every path refuses,
//                     same message.
//   PaxSparse         PAX sparse 0.0, 0.1 and 1.0 (expanded by umoci and containerd): every
//                     path gives umoci's tree (checked exactly), which is also containerd's.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "base/file_util.h"
#include "base/status.h"
#include "tests/harness/containerd.h"
#include "tests/harness/hoist_cli.h"
#include "tests/harness/hoistfs_mounts.h"
#include "tests/harness/mountinfo.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/harness/tree_walk.h"

#ifndef HOISTFS_BINARY
#error "HOISTFS_BINARY must name the hoistfs executable"
#endif
#ifndef HOIST_BINARY
#error "HOIST_BINARY must name the hoist executable"
#endif

namespace hoist {
namespace {

using harness::RunHoist;

using harness::CommandResult;
using harness::FileSpec;
using harness::LayerSpec;
using Tree = std::map<std::string, harness::TreeNode>;

CommandResult RunProgram(const std::vector<std::string>& argv, const std::string& cwd = "") {
  harness::CommandOptions o;
  o.timeout = std::chrono::seconds(180);
  o.cwd = cwd;
  return harness::RunForResult(argv, o);
}

// Runs a shell script in `dir` (staging files for GNU tar); fails the test on error.
void Sh(const std::string& dir, const std::string& script) {
  CommandResult r = RunProgram({"sh", "-euc", script}, dir);
  ASSERT_TRUE(r.ok()) << script << ": " << r.Describe() << ": " << r.stderr_text;
}

// GNU tar over an explicit list, in that order, with fixed owner and mtime.
const std::string kTar =
    "tar --format=pax --no-recursion --numeric-owner --owner=0 --group=0 "
    "--mtime=@1700000000 --pax-option=delete=atime,delete=ctime ";

Tree WalkOf(const std::string& root) {
  Result<Tree> t = harness::WalkTree(root);
  EXPECT_TRUE(t.has_value()) << t.error().message();
  return t ? std::move(*t) : Tree();
}

// The message after "hoist VERB: " or "hoistfs: ", checked to be one line.
std::string OneLineError(const CommandResult& r, const std::string& prefix) {
  EXPECT_EQ(r.exit_code, 1) << r.stderr_text;
  EXPECT_EQ(r.stderr_text.find('\n'), r.stderr_text.size() - 1) << r.stderr_text;
  EXPECT_EQ(r.stderr_text.rfind(prefix, 0), 0u) << r.stderr_text;
  if (r.stderr_text.rfind(prefix, 0) != 0 || r.stderr_text.empty()) return r.stderr_text;
  return r.stderr_text.substr(prefix.size(), r.stderr_text.size() - prefix.size() - 1);
}

class LayerRulesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setup_error_ = new std::string();
    auto fail = [](const std::string& e) { *setup_error_ = e; };
    if (::geteuid() != 0) return fail("the layer rule tests must run as root");
    if (auto s = harness::RequirePrograms({"skopeo", "umoci", "containerd", "ctr", "fusermount3",
                                           "docker-registry", "gzip", "tar"});
        !s)
      return fail(s.error().message());
    char templ[] = "/tmp/hoist-rules-XXXXXX";
    if (::mkdtemp(templ) == nullptr) return fail("mkdtemp");
    work_ = new std::string(templ);
    auto reg = harness::TestRegistry::Launch();
    if (!reg) return fail(reg.error().message());
    registry_ = reg->release();
  }

  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
    const char* keep = std::getenv("HOIST_TEST_KEEP");
    if (work_ != nullptr && (keep == nullptr || *keep != '1')) (void)RemoveTree(*work_);
  }

  void SetUp() override { ASSERT_TRUE(setup_error_->empty()) << *setup_error_; }
  void TearDown() override {
    mounts_.UnmountAll();
    if (!registry_->running()) (void)registry_->Start();
  }

  std::string NewDir(const std::string& name) {
    std::string d = *work_ + "/" + name + "-" + std::to_string(counter_++);
    EXPECT_TRUE(MakeDirs(d).has_value());
    return d;
  }
  static std::string Ref(const std::string& repo) { return registry_->ImageRef(repo, "v1"); }
  static std::string DockerRef(const std::string& repo) { return registry_->DockerRef(repo, "v1"); }

  CommandResult Hoistfs(const std::string& image, const std::string& mp, const std::string& cache,
                        const std::vector<std::string>& extra = {}) {
    return mounts_.Mount(image, mp, cache, extra);
  }
  void Unmount(const std::string& mp) {
    Status s = mounts_.Unmount(mp);
    EXPECT_TRUE(s) << s.error().message();
  }

  // Builds the layout from `layers`, pushes it as gzip to `name`/gz and returns umoci's unpack
  // of it (or the error umoci gave, in `umoci_error`).
  harness::BuiltImage Publish(const std::string& name, const std::vector<LayerSpec>& layers,
                              Tree* umoci_tree, std::string* umoci_error) {
    const std::string layout = NewDir(name + "-layout");
    auto image = harness::BuildOciImage(layout, layers, {.tag = "v1"});
    EXPECT_TRUE(image.has_value()) << image.error().message();
    if (!image) return {};
    auto pushed = harness::PushOciLayout(image->OciRef(), DockerRef(name + "/gz"));
    EXPECT_TRUE(pushed.has_value()) << pushed.error().message();
    const std::string bundle = NewDir(name + "-bundle") + "/b";
    CommandResult u = RunProgram({"umoci", "unpack", "--image", layout + ":v1", bundle});
    if (u.ok()) {
      *umoci_tree = WalkOf(bundle + "/rootfs");
    } else {
      *umoci_error = u.stderr_text;
    }
    return *image;
  }

  // Every path of hoist: the gzip image mounted; `hoist convert` then the result mounted;
  // `hoist pull` of the gzip image then mounted with the registry stopped. Each must show
  // `want` exactly.
  void ExpectEveryPathShows(const std::string& name, const Tree& want) {
    const std::string gz = name + "/gz", zc = name + "/zc";
    {
      SCOPED_TRACE("gzip mount");
      const std::string mp = NewDir("mp");
      CommandResult m = Hoistfs(Ref(gz), mp, NewDir("cache"));
      ASSERT_TRUE(m.ok()) << m.stderr_text;
      EXPECT_EQ(harness::CompareTrees(want, WalkOf(mp)), std::vector<std::string>{});
      Unmount(mp);
    }
    {
      SCOPED_TRACE("convert, then mount");
      CommandResult c = RunHoist({"convert", "-q", DockerRef(gz), DockerRef(zc)});
      ASSERT_TRUE(c.ok()) << c.stderr_text;
      const std::string mp = NewDir("mp");
      CommandResult m = Hoistfs(Ref(zc), mp, NewDir("cache"));
      ASSERT_TRUE(m.ok()) << m.stderr_text;
      EXPECT_EQ(harness::CompareTrees(want, WalkOf(mp)), std::vector<std::string>{});
      Unmount(mp);
    }
    {
      SCOPED_TRACE("pull, then mount offline");
      const std::string cache = NewDir("cache");
      for (const std::string& repo : {gz, zc}) {
        CommandResult p = RunHoist({"pull", "-q", "--cache=" + cache, Ref(repo)});
        ASSERT_TRUE(p.ok()) << p.stderr_text;
      }
      registry_->Stop();
      for (const std::string& repo : {gz, zc}) {
        SCOPED_TRACE(repo);
        const std::string mp = NewDir("mp");
        CommandResult m = Hoistfs(Ref(repo), mp, cache, {"--offline"});
        ASSERT_TRUE(m.ok()) << m.stderr_text;
        EXPECT_EQ(harness::CompareTrees(want, WalkOf(mp)), std::vector<std::string>{});
        Unmount(mp);
      }
      ASSERT_TRUE(registry_->Start().has_value());
    }
  }

  // Every path of hoist refuses the gzip image `name`/gz with one line, the same message.
  std::string ExpectEveryPathRefuses(const std::string& name) {
    const std::string gz = name + "/gz";
    const std::string mount_error =
        OneLineError(Hoistfs(Ref(gz), NewDir("mp"), NewDir("cache")), "hoistfs: ");
    const std::string convert_error = OneLineError(
        RunHoist({"convert", "-q", DockerRef(gz), DockerRef(name + "/zc")}), "hoist convert: ");
    const std::string pull_error = OneLineError(
        RunHoist({"pull", "-q", "--cache=" + NewDir("cache"), Ref(gz)}), "hoist pull: ");
    EXPECT_EQ(convert_error, mount_error);
    EXPECT_EQ(pull_error, mount_error);
    // Nothing was written for the refused conversion.
    EXPECT_FALSE(RunHoist({"inspect", Ref(name + "/zc")}).ok());
    return mount_error;
  }

  static std::string* setup_error_;
  static std::string* work_;
  static harness::TestRegistry* registry_;
  static int counter_;
  harness::HoistfsMounts mounts_{HOISTFS_BINARY};
};

std::string* LayerRulesTest::setup_error_ = nullptr;
std::string* LayerRulesTest::work_ = nullptr;
harness::TestRegistry* LayerRulesTest::registry_ = nullptr;
int LayerRulesTest::counter_ = 0;

TEST_F(LayerRulesTest, DuplicateEntriesGiveUmocisTreeOnEveryPath) {
  const std::string dir = NewDir("dup-staging");
  // First pass of GNU tar, then the staging directory changes and a second pass appends.
  Sh(dir,
     "printf 'one\\n' > a; ln -s target s; printf 'file-f\\n' > f; printf 'file-g\\n' > g;"
     "mkdir -m 0755 e; printf 'ex\\n' > e/x; mkdir -m 0755 h; printf 'hy\\n' > h/y;"
     "printf 'm1\\n' > m; ln m m2;"
     "chmod 0644 a f g e/x h/y m;" +
         kTar + "-cf ../dup.tar a s f g e e/x h h/y m m2;" +
         "printf 'two\\n' > a; rm s; printf 'file-s\\n' > s; rm f; ln -s tgt-f f;"
         "rm g; mkdir -m 0700 g; printf 'gc\\n' > g/child; chmod 0700 e;"
         "rm -r h; printf 'file-h\\n' > h; rm m; printf 'm-new\\n' > m; ln m m3;"
         "printf 'replaces-lowdir\\n' > lowdir; chmod 0644 a s g/child h m lowdir;" +
         kTar + "-rf ../dup.tar a s f g g/child e h lowdir m m3");
  // Check the tar really holds each path twice, in this order.
  CommandResult listed = RunProgram({"tar", "-tf", dir + "/../dup.tar"});
  ASSERT_TRUE(listed.ok()) << listed.stderr_text;
  EXPECT_EQ(listed.stdout_text,
            "a\ns\nf\ng\ne/\ne/x\nh/\nh/y\nm\nm2\n"
            "a\ns\nf\ng/\ng/child\ne/\nh\nlowdir\nm\nm3\n");
  LayerSpec upper;
  upper.tar_file = dir + "/../dup.tar";
  std::vector<LayerSpec> layers = {
      {FileSpec::File("base.txt", "base\n"), FileSpec::Dir("lowdir"),
       FileSpec::File("lowdir/k", "k\n")},
      upper,
  };
  Tree want;
  std::string umoci_error;
  Publish("dup", layers, &want, &umoci_error);
  ASSERT_TRUE(umoci_error.empty()) << umoci_error;
  // What umoci extracted (containerd 1.6 extracts the same: see FORMATS.md): the last wins.
  auto sha = [](const std::string& s) { return Digest::Of(s).str(); };
  ASSERT_EQ(want.count("a"), 1u);
  EXPECT_EQ(want["a"].sha, sha("two\n"));
  EXPECT_EQ(want["s"].type, 'f');
  EXPECT_EQ(want["s"].sha, sha("file-s\n"));
  EXPECT_EQ(want["f"].type, 'l');
  EXPECT_EQ(want["f"].target, "tgt-f");
  EXPECT_EQ(want["g"].type, 'd');
  EXPECT_EQ(want["g"].mode, 0700u);
  EXPECT_EQ(want["g/child"].sha, sha("gc\n"));
  EXPECT_EQ(want["e"].mode, 0700u);
  EXPECT_EQ(want["e/x"].sha, sha("ex\n"));
  EXPECT_EQ(want["h"].type, 'f');
  EXPECT_EQ(want["h"].sha, sha("file-h\n"));
  EXPECT_EQ(want.count("h/y"), 0u);
  EXPECT_EQ(want["lowdir"].type, 'f');
  EXPECT_EQ(want.count("lowdir/k"), 0u);
  EXPECT_EQ(want["m"].sha, sha("m-new\n"));
  EXPECT_EQ(want["m2"].sha, sha("m1\n"));  // linked to the first "m", which stays its own file
  EXPECT_EQ(want["m2"].link_group, "m2");
  EXPECT_EQ(want["m3"].link_group, "m");
  EXPECT_EQ(want["m"].mtime_sec, 1700000000);
  {
    // containerd's overlayfs snapshotter extracts the same tree.
    auto cd = harness::PrivateContainerd::Start(NewDir("cd"));
    ASSERT_TRUE(cd.has_value()) << cd.error().message();
    const std::string ref = registry_->ImageRef("dup/gz", "v1");
    auto pulled = (*cd)->Pull(ref, /*plain_http=*/true);
    ASSERT_TRUE(pulled.has_value()) << pulled.error().message();
    const std::string mnt = NewDir("cd-mnt");
    auto mounted = (*cd)->Mount(ref, mnt);
    ASSERT_TRUE(mounted.has_value()) << mounted.error().message();
    EXPECT_EQ(harness::CompareTrees(want, WalkOf(mnt), "containerd"), std::vector<std::string>{});
    auto unmounted = (*cd)->Unmount(mnt);
    EXPECT_TRUE(unmounted.has_value()) << unmounted.error().message();
  }

  ExpectEveryPathShows("dup", want);
}

TEST_F(LayerRulesTest, HardlinkToALowerLayerFileIsRefusedOnEveryPath) {
  const std::string dir = NewDir("hl-staging");
  Sh(dir, "printf 'base\\n' > base.txt; ln base.txt hl; chmod 0644 base.txt;" + kTar +
              "-cf ../hl.tar base.txt hl; tar --delete -f ../hl.tar base.txt; tar -tvf ../hl.tar");
  LayerSpec upper;
  upper.tar_file = dir + "/../hl.tar";
  Tree umoci_tree;
  std::string umoci_error;
  harness::BuiltImage image = Publish("lowerlink", {{FileSpec::File("base.txt", "base\n")}, upper},
                                      &umoci_tree, &umoci_error);
  ASSERT_EQ(image.layers.size(), 2u);
  // umoci links to the lower file; containerd's overlayfs snapshotter cannot (each layer is
  // extracted into an empty directory), and an image hoist mounts must run there too.
  ASSERT_TRUE(umoci_error.empty()) << umoci_error;
  EXPECT_EQ(umoci_tree["hl"].link_group, "base.txt");
  {
    const std::string cd_dir = NewDir("cd");
    auto cd = harness::PrivateContainerd::Start(cd_dir);
    ASSERT_TRUE(cd.has_value()) << cd.error().message();
    Status pulled = (*cd)->Pull(registry_->ImageRef("lowerlink/gz", "v1"), /*plain_http=*/true);
    ASSERT_FALSE(pulled.has_value());
    EXPECT_NE(pulled.error().message().find("base.txt"), std::string::npos)
        << pulled.error().message();
  }

  const std::string message = ExpectEveryPathRefuses("lowerlink");
  EXPECT_EQ(message, "layer 2 of 2 (" + image.layers[1].digest.str() +
                         "): hardlink \"hl\" -> \"base.txt\": target is not an earlier entry of "
                         "this layer");
}

TEST_F(LayerRulesTest, OldGnuSparseFilesAreRefusedOnEveryPath) {
  const std::string dir = NewDir("sparse-staging");
  Sh(dir,
     "truncate -s 3M sparse.bin; printf HEAD | dd of=sparse.bin conv=notrunc status=none;"
     "printf MID | dd of=sparse.bin bs=1 seek=1500000 conv=notrunc status=none;"
     "chmod 0644 sparse.bin;"
     "tar --format=gnu --sparse --numeric-owner -cf ../old.tar sparse.bin");
  LayerSpec layer;
  layer.tar_file = dir + "/../old.tar";
  Tree umoci_tree;
  std::string umoci_error;
  harness::BuiltImage image = Publish("sparseold", {layer}, &umoci_tree, &umoci_error);
  ASSERT_EQ(image.layers.size(), 1u);
  // Type 'S' is refused by umoci (and containerd: "unhandled tar header type 83").
  EXPECT_NE(umoci_error.find("unknown typeflag"), std::string::npos) << umoci_error;
  const std::string message = ExpectEveryPathRefuses("sparseold");
  EXPECT_EQ(message, "layer 1 of 1 (" + image.layers[0].digest.str() +
                         "): tar at byte 0: GNU sparse files are not supported");
}

// PAX sparse members in the three formats GNU tar writes: umoci and containerd expand them
// (holes read as zeros, the real name and size); every path of hoist shows exactly that tree.
TEST_F(LayerRulesTest, PaxSparseFilesGiveUmocisTreeOnEveryPath) {
  for (const std::string version : {"0.0", "0.1", "1.0"}) {
    SCOPED_TRACE("sparse version " + version);
    const std::string name = "sparse" + version.substr(0, 1) + version.substr(2, 1);
    const std::string dir = NewDir("sparse-staging");
    // mixed: data, a hole, data, a hole to the end; head_hole: a hole first; empty: all hole;
    // dense: no hole (GNU tar stores it as a plain member).
    Sh(dir,
       "truncate -s 3M mixed; printf HEAD | dd of=mixed conv=notrunc status=none;"
       "printf MID | dd of=mixed bs=1 seek=1500000 conv=notrunc status=none;"
       "truncate -s 1M head_hole; printf END | dd of=head_hole bs=1 seek=1000000 conv=notrunc "
       "status=none; truncate -s 2M empty; head -c 70000 /dev/urandom > dense;"
       "chmod 0644 mixed head_hole empty; chmod 0755 dense;" +
           kTar + "--sparse --sparse-version=" + version +
           " -cf ../layer.tar mixed head_hole empty dense");
    // The layer really holds PAX sparse members of this version.
    Result<std::string> tar = ReadFile(dir + "/../layer.tar");
    ASSERT_TRUE(tar.has_value()) << tar.error().message();
    EXPECT_NE(tar->find(version == "0.0"   ? "GNU.sparse.offset="
                        : version == "0.1" ? "GNU.sparse.map="
                                           : "GNU.sparse.major=1"),
              std::string::npos);
    LayerSpec layer;
    layer.tar_file = dir + "/../layer.tar";
    Tree want;
    std::string umoci_error;
    harness::BuiltImage image = Publish(name, {layer}, &want, &umoci_error);
    ASSERT_EQ(image.layers.size(), 1u);
    ASSERT_TRUE(umoci_error.empty()) << umoci_error;
    for (const std::string file : {"mixed", "head_hole", "empty", "dense"}) {
      Result<std::string> content = ReadFile(dir + "/" + file);
      ASSERT_TRUE(content.has_value()) << content.error().message();
      ASSERT_EQ(want.count(file), 1u) << file;
      EXPECT_EQ(want[file].type, 'f') << file;
      EXPECT_EQ(want[file].size, content->size()) << file;
      EXPECT_EQ(want[file].sha, Digest::Of(*content).str()) << file;
      EXPECT_EQ(want[file].mode, file == "dense" ? 0755u : 0644u) << file;
      EXPECT_EQ(want[file].mtime_sec, 1700000000) << file;
    }
    EXPECT_EQ(want.size(), 4u);  // the four files: no GNUSparseFile.* names
    {
      // containerd's overlayfs snapshotter extracts the same tree.
      auto cd = harness::PrivateContainerd::Start(NewDir("cd"));
      ASSERT_TRUE(cd.has_value()) << cd.error().message();
      const std::string ref = registry_->ImageRef(name + "/gz", "v1");
      auto pulled = (*cd)->Pull(ref, /*plain_http=*/true);
      ASSERT_TRUE(pulled.has_value()) << pulled.error().message();
      const std::string mnt = NewDir("cd-mnt");
      auto mounted = (*cd)->Mount(ref, mnt);
      ASSERT_TRUE(mounted.has_value()) << mounted.error().message();
      EXPECT_EQ(harness::CompareTrees(want, WalkOf(mnt), "containerd"), std::vector<std::string>{});
      auto unmounted = (*cd)->Unmount(mnt);
      EXPECT_TRUE(unmounted.has_value()) << unmounted.error().message();
    }
    ExpectEveryPathShows(name, want);
  }
}

}  // namespace
}  // namespace hoist
