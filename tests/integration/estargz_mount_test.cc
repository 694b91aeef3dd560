// hoistfs on images converted by ctr-remote 0.12 (stargz-snapshotter) with a private containerd:
// eStargz (lazy through its TOC) and zstd:chunked, pushed to the real registry with skopeo and
// mounted by the real hoistfs. Every file must read back exactly as in the source layer.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/harness/wait.h"
#include "tests/index/ctr_remote_util.h"

namespace hoist {
namespace {

using harness::FileSpec;
using harness::RunCommand;

std::string RunOk(const std::vector<std::string>& argv) {
  auto r = RunCommand(argv, {.timeout = std::chrono::seconds(120)});
  EXPECT_TRUE(r.has_value() && r->ok())
      << argv[0] << ": " << (r ? r->stderr_text : r.error().message());
  return r && r->ok() ? r->stdout_text : "";
}

class CtrRemoteMountTest : public ::testing::TestWithParam<const char*> {};

TEST_P(CtrRemoteMountTest, MountedTreeEqualsTheSourceLayer) {
  ASSERT_TRUE(::access("/dev/fuse", R_OK | W_OK) == 0)
      << "FUSE IS MISSING: /dev/fuse is not usable; this integration test needs it";
  const std::string flavor = GetParam();  // "estargz" or "zstdchunked"
  char tmpl[] = "/tmp/hcr-XXXXXX";        // short: containerd's socket path must fit
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;

  // The source layer: a small file, a multi-chunk file, a symlink, a hardlink, a setuid file.
  harness::LayerSpec layer = {
      FileSpec::Dir("etc"),
      FileSpec::File("etc/motd", "hello from ctr-remote\n"),
      FileSpec::BigFile("data/big.bin", 700000, 5),
      FileSpec::Symlink("etc/link", "motd"),
      FileSpec::Hardlink("etc/motd2", "etc/motd"),
      FileSpec::File("bin/tool", "#!/bin/sh\n", 04755).Owner(1000, 1000),
  };
  ASSERT_TRUE(harness::BuildLayerTar(layer, dir + "/stage", dir + "/layer.tar").has_value());

  auto cd = testing::PrivateContainerd::Start(dir);
  ASSERT_TRUE(cd.has_value()) << cd.error().message();
  std::vector<std::string> flags =
      flavor == "estargz" ? std::vector<std::string>{"--estargz", "--estargz-chunk-size", "65536"}
                          : std::vector<std::string>{"--zstdchunked"};
  auto out = (*cd)->Convert(dir + "/layer.tar", flavor, flags);
  ASSERT_TRUE(out.has_value()) << out.error().message();
  ASSERT_TRUE(out->annotations.contains("containerd.io/snapshot/stargz/toc.digest"));

  auto reg = harness::TestRegistry::Launch({});
  ASSERT_TRUE(reg.has_value()) << reg.error().message();
  const std::string image = (*reg)->ImageRef("ctr/" + flavor, "v1");
  ASSERT_TRUE(harness::PushOciLayout("oci:" + dir + "/" + flavor + "/out",
                                     (*reg)->DockerRef("ctr/" + flavor, "v1"))
                  .has_value());

  const std::string mnt = dir + "/mnt";
  ASSERT_EQ(::mkdir(mnt.c_str(), 0755), 0);
  RunOk({HOISTFS_BINARY, "-o", "prefetch=none,cache=" + dir + "/cache", image, mnt});

  EXPECT_EQ(*ReadFile(mnt + "/etc/motd"), "hello from ctr-remote\n");
  // One small file read: far less than the blob was fetched (the layer is lazy, not streamed).
  // The state file is written every second: wait until it counts the read.
  std::string stats;
  uint64_t fetched = 0;
  EXPECT_TRUE(harness::WaitUntil(
      [&] {
        stats = RunOk({HOIST_BINARY, "stats", "--json", mnt});
        const size_t at = stats.find("\"bytes_fetched\":");
        fetched = at == std::string::npos ? 0 : std::strtoull(stats.c_str() + at + 16, nullptr, 10);
        return fetched > 0;
      },
      harness::kGenerousDeadline, std::chrono::milliseconds(200)))
      << stats;
  EXPECT_LT(fetched, out->blob.size() / 2) << stats;

  EXPECT_EQ(*ReadFile(mnt + "/data/big.bin"), harness::PatternBytes(5, 0, 700000));
  EXPECT_EQ(*ReadFile(mnt + "/etc/motd2"), "hello from ctr-remote\n");
  char target[64] = {};
  ASSERT_EQ(::readlink((mnt + "/etc/link").c_str(), target, sizeof target - 1), 4);
  EXPECT_STREQ(target, "motd");
  struct stat a, b, t;
  ASSERT_EQ(::stat((mnt + "/etc/motd").c_str(), &a), 0);
  ASSERT_EQ(::stat((mnt + "/etc/motd2").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 2u);
  ASSERT_EQ(::stat((mnt + "/bin/tool").c_str(), &t), 0);
  EXPECT_EQ(t.st_mode & 07777, 04755u);
  EXPECT_EQ(t.st_uid, 1000u);
  EXPECT_EQ(t.st_gid, 1000u);
  // ctr-remote's landmark and TOC entries are hidden.
  EXPECT_NE(::access((mnt + "/stargz.index.json").c_str(), F_OK), 0);
  EXPECT_NE(::access((mnt + "/.no.prefetch.landmark").c_str(), F_OK), 0);
  EXPECT_NE(::access((mnt + "/.prefetch.landmark").c_str(), F_OK), 0);

  RunOk({"fusermount3", "-u", mnt});
  cd->reset();
  (void)RemoveTree(dir);
}

INSTANTIATE_TEST_SUITE_P(Flavors, CtrRemoteMountTest, ::testing::Values("estargz", "zstdchunked"));

}  // namespace
}  // namespace hoist
