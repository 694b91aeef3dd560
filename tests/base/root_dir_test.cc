// RootDir against a hostile tree built on the real filesystem: absolute and relative symlinks
// that aim at a host file, a symlinked directory on the way, "..", /dev/zero, a FIFO, a loop, and
// the size cap. Every case runs with the kernel's openat2 and with the component walk.
#include "base/root_dir.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <string>

#include "base/file_util.h"

namespace hoist {
namespace {

class RootDirTest : public ::testing::TestWithParam<RootDir::Resolver> {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/hoist-root-dir-test-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    top_ = templ;
    root_ = top_ + "/root";
    // The "host": a secret next to the root, which nothing inside the root may reach.
    Write(top_ + "/secret", "HOST SECRET\n");
    ASSERT_TRUE(MakeDirs(root_ + "/etc").has_value());
    ASSERT_TRUE(MakeDirs(root_ + "/real/dir").has_value());
    Write(root_ + "/etc/group", "root:x:0:\n");
    Write(root_ + "/real/dir/file", "inside\n");
    // Where escaping links land when they are resolved inside the root instead.
    ASSERT_TRUE(MakeDirs(root_ + top_).has_value());
    Write(root_ + top_ + "/secret", "the image's own file\n");
    Write(root_ + "/secret", "the image's top-level secret\n");
  }

  void TearDown() override { (void)RemoveTree(top_); }

  static void Write(const std::string& path, const std::string& data) {
    ASSERT_TRUE(WriteFileAtomic(path, data).has_value()) << path;
  }
  void Link(const std::string& target, const std::string& rel) {
    ASSERT_EQ(::symlink(target.c_str(), (root_ + "/" + rel).c_str()), 0) << rel;
  }

  RootDir Open() {
    auto r = RootDir::Open(root_, "image test", GetParam());
    EXPECT_TRUE(r.has_value()) << r.error().message();
    return std::move(*r);
  }

  // The file's content, "<absent>", or "error <errno>: <message>".
  std::string Read(std::string_view path, size_t cap = 1 << 20) {
    auto r = Open().ReadRegularFile(path, cap);
    if (!r) return "error " + std::to_string(r.error().code()) + ": " + r.error().message();
    return r->value_or("<absent>");
  }

  std::string top_, root_;
};

TEST_P(RootDirTest, AbsoluteSymlinkToAHostFileResolvesInsideTheRoot) {
  Link(top_ + "/secret", "etc/passwd");
  EXPECT_EQ(Read("/etc/passwd"), "the image's own file\n");
  Link("/etc/shadow", "etc/shadow-link");
  EXPECT_EQ(Read("etc/shadow-link"), "<absent>");  // the root has no /etc/shadow
}

TEST_P(RootDirTest, DotDotNeverClimbsAboveTheRoot) {
  Link("../../../../../secret", "etc/passwd");
  EXPECT_EQ(Read("/etc/passwd"), "the image's top-level secret\n");
  EXPECT_EQ(Read("../../../../secret"), "the image's top-level secret\n");
  EXPECT_EQ(Read("/real/dir/../../etc/group"), "root:x:0:\n");
}

TEST_P(RootDirTest, SymlinkedDirectoryOnTheWayStaysInside) {
  Link("/", "up");                     // "up/x" is the root's x, not the host's
  Link(top_, "hostdir");               // a directory link aimed at the host
  Link("../../..", "real/dir/climb");  // climbs past the top
  EXPECT_EQ(Read("up/etc/group"), "root:x:0:\n");
  EXPECT_EQ(Read("hostdir/secret"), "the image's own file\n");
  EXPECT_EQ(Read("real/dir/climb/secret"), "the image's top-level secret\n");
  EXPECT_EQ(Read("real/dir/climb/real/dir/file"), "inside\n");
}

TEST_P(RootDirTest, DevZeroIsRefusedWithoutReading) {
  Link("/dev/zero", "etc/passwd");
  EXPECT_EQ(Read("/etc/passwd"), "<absent>");  // the root has no /dev/zero
  ASSERT_TRUE(MakeDirs(root_ + "/dev").has_value());
  ASSERT_EQ(::mknod((root_ + "/dev/zero").c_str(), S_IFCHR | 0666, makedev(1, 5)), 0);
  EXPECT_EQ(Read("/etc/passwd"),
            "error 22: image test: /etc/passwd is a character device, not a regular file");
}

TEST_P(RootDirTest, FifoIsRefusedWithoutBlocking) {
  ASSERT_EQ(::mkfifo((root_ + "/fifo").c_str(), 0644), 0);
  Link("/fifo", "etc/passwd");
  EXPECT_EQ(Read("/etc/passwd"), "error 22: image test: /etc/passwd is a FIFO, not a regular file");
  EXPECT_EQ(Read("fifo"), "error 22: image test: /fifo is a FIFO, not a regular file");
}

TEST_P(RootDirTest, DirectoryIsRefused) {
  EXPECT_EQ(Read("/etc"), "error 22: image test: /etc is a directory, not a regular file");
}

TEST_P(RootDirTest, SymlinkLoopIsAnError) {
  Link("b", "a");
  Link("a", "b");
  const std::string r = Read("a");
  EXPECT_TRUE(r.starts_with("error 40: image test: open /a: ")) << r;  // ELOOP
}

TEST_P(RootDirTest, SizeCapIsExactAndNotATruncation) {
  Write(root_ + "/etc/big", std::string(100, 'x'));
  EXPECT_EQ(Read("etc/big", 100), std::string(100, 'x'));
  EXPECT_EQ(Read("etc/big", 99), "error 27: image test: /etc/big is larger than 99 bytes");
}

TEST_P(RootDirTest, AbsentPathsAreNulloptNotErrors) {
  EXPECT_EQ(Read("etc/nothing"), "<absent>");
  EXPECT_EQ(Read("etc/group/below"), "<absent>");  // ENOTDIR on the way
}

TEST_P(RootDirTest, StatFollowsInsideAndLstatDoesNot) {
  Link("/real/dir", "cwd");
  Link(top_, "host");
  RootDir root = Open();
  auto st = root.Stat("cwd");
  ASSERT_TRUE(st.has_value()) << st.error().message();
  ASSERT_TRUE(st->has_value());
  EXPECT_TRUE(S_ISDIR((*st)->st_mode));
  auto lst = root.Stat("cwd", RootDir::Follow::kNo);
  ASSERT_TRUE(lst.has_value() && lst->has_value());
  EXPECT_TRUE(S_ISLNK((*lst)->st_mode));
  // host -> <top_>: inside the root that is root/<top_>, which exists; its "secret" is the
  // image's file, and a name only the host has is absent.
  auto host_only = root.Stat("host/root");
  ASSERT_TRUE(host_only.has_value());
  EXPECT_FALSE(host_only->has_value());
  auto root_itself = root.Stat("/");
  ASSERT_TRUE(root_itself.has_value() && root_itself->has_value());
  struct stat real;
  ASSERT_EQ(::stat(root_.c_str(), &real), 0);
  EXPECT_EQ((*root_itself)->st_ino, real.st_ino);
}

INSTANTIATE_TEST_SUITE_P(Resolvers, RootDirTest,
                         ::testing::Values(RootDir::Resolver::kKernel, RootDir::Resolver::kWalk),
                         [](const auto& info) {
                           return info.param == RootDir::Resolver::kKernel ? "Openat2" : "Walk";
                         });

}  // namespace
}  // namespace hoist
