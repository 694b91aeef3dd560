#include "index/dir_walker.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "index/tar_reader.h"
#include "index/zstd_chunked_writer.h"
#include "tests/index/format_test_util.h"

namespace hoist {
namespace {

using testing::Sh;
using testing::Slurp;

std::string Cap(uint32_t permitted) {
  std::string v(20, '\0');
  v[0] = 1;  // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE, little-endian 0x02000001
  v[3] = 2;
  for (int i = 0; i < 4; ++i) v[4 + i] = static_cast<char>(permitted >> (8 * i));
  return v;
}

struct Expected {
  std::string path;
  EntryType type;
  uint32_t mode;
  uint32_t uid = 0, gid = 0;
  uint64_t size = 0;
  std::string link;
  uint32_t major = 0, minor = 0;
  std::vector<Xattr> xattrs;
  int64_t mtime = 0;
  uint32_t nsec = 0;
};

class DirWalkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (mknod, chown, security.capability)";
    dir_ = testing::MakeTempDir();
    root_ = dir_ + "/root";
    long_ = std::string(200, 'n');
    ASSERT_EQ(Sh("cd " + dir_ + " && mkdir -p root/etc root/bin root/" + long_ + "/" + long_ +
                 " outside && printf TOPSECRET-CONTENT > outside/secret"
                 " && printf hello > root/etc/hosts && ln root/etc/hosts root/zz-hard"
                 " && ln root/etc/hosts root/bin/hard2"
                 " && printf 'run me' > root/bin/su && chmod 4755 root/bin/su"
                 " && printf cap > root/bin/ping && chmod 0711 root/bin/ping"
                 " && ln -s ../../outside root/escape && ln -s /etc root/etclink"
                 " && ln -s secret root/etc/dangling"
                 " && mknod root/null c 1 3 && mknod root/loop b 7 9 && mkfifo -m 0620 root/fifo"
                 " && printf long > root/" +
                 long_ + "/" + long_ + "/" + long_ +
                 " && chown 1234:5678 root/etc/hosts && chown -h 77:88 root/etclink"
                 " && chmod 1777 root/etc"
                 " && touch -h -d '2020-01-02 03:04:05.123456789 UTC' root/etc/hosts root/etclink"
                 " root/bin/su"),
              0);
    ASSERT_EQ(setxattr((root_ + "/etc/hosts").c_str(), "user.note", "n1", 2, 0), 0);
    ASSERT_EQ(setxattr((root_ + "/etc/hosts").c_str(), "user.a", "", 0, 0), 0);
    const std::string cap = Cap(1u << 13);  // CAP_NET_RAW
    ASSERT_EQ(
        setxattr((root_ + "/bin/ping").c_str(), "security.capability", cap.data(), cap.size(), 0),
        0);
    ASSERT_EQ(setxattr((root_ + "/bin").c_str(), "user.dir", "d", 1, 0), 0);
    // A socket: skipped with a warning.
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_GE(s, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string sock = root_ + "/sock";
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock.c_str());
    ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    close(s);
  }
  void TearDown() override {
    if (!dir_.empty()) Sh("rm -rf " + dir_);
  }

  // Whole stream with reads of `chunk` bytes.
  std::string Walk(DirWalkerOptions opt, size_t chunk, std::vector<std::string>* warnings) {
    opt.warn = [warnings](std::string_view m) {
      if (warnings) warnings->emplace_back(m);
    };
    auto s = DirTarStream::Open(root_, opt);
    EXPECT_TRUE(s) << s.error().message();
    if (!s) return {};
    std::string out, buf(chunk, '\0');
    for (;;) {
      auto n = (*s)->Read(buf.data(), buf.size());
      EXPECT_TRUE(n) << n.error().message();
      if (!n || *n == 0) break;
      out.append(buf.data(), *n);
    }
    stats_ = (*s)->stats();
    return out;
  }

  struct stat Stat(const std::string& rel) {
    struct stat st {};
    EXPECT_EQ(lstat((root_ + "/" + rel).c_str(), &st), 0) << rel;
    return st;
  }

  std::string dir_, root_, long_;
  DirWalkStats stats_;
};

TEST_F(DirWalkerTest, EmitsExactlyTheTree) {
  std::vector<std::string> warnings;
  const std::string tar = Walk({}, 1 << 16, &warnings);
  ASSERT_FALSE(tar.empty());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0], "dir walker: skipping \"sock\": sockets cannot be stored in a layer");
  EXPECT_EQ(stats_.skipped, 1u);
  EXPECT_EQ(stats_.hardlinks, 2u);

  auto mt = [&](const std::string& rel) { return Stat(rel).st_mtim; };
  const std::string l3 = long_ + "/" + long_ + "/" + long_;
  std::vector<Expected> want = {
      {"bin", EntryType::kDirectory, 0755, 0, 0, 0, "", 0, 0, {{"user.dir", "d"}}},
      {"bin/hard2",
       EntryType::kRegular,
       0644,
       1234,
       5678,
       5,
       "",
       0,
       0,
       {{"user.a", ""}, {"user.note", "n1"}}},
      {"bin/ping",
       EntryType::kRegular,
       0711,
       0,
       0,
       3,
       "",
       0,
       0,
       {{"security.capability", Cap(1u << 13)}}},
      {"bin/su", EntryType::kRegular, 04755, 0, 0, 6},
      {"escape", EntryType::kSymlink, 0777, 0, 0, 0, "../../outside"},
      {"etc", EntryType::kDirectory, 01777},
      {"etc/dangling", EntryType::kSymlink, 0777, 0, 0, 0, "secret"},
      {"etc/hosts", EntryType::kHardlink, 0644, 1234, 5678, 0, "bin/hard2"},
      {"etclink", EntryType::kSymlink, 0777, 77, 88, 0, "/etc"},
      {"fifo", EntryType::kFifo, 0620},
      {"loop", EntryType::kBlockDevice, 0644, 0, 0, 0, "", 7, 9},
      {long_, EntryType::kDirectory, 0755},
      {long_ + "/" + long_, EntryType::kDirectory, 0755},
      {l3, EntryType::kRegular, 0644, 0, 0, 4},
      {"null", EntryType::kCharDevice, 0644, 0, 0, 0, "", 1, 3},
      {"zz-hard", EntryType::kHardlink, 0644, 1234, 5678, 0, "bin/hard2"},
  };
  for (auto& w : want) {
    auto ts = mt(w.path);
    w.mtime = ts.tv_sec;
    w.nsec = static_cast<uint32_t>(ts.tv_nsec);
  }
  EXPECT_EQ(want[1].mtime, 1577934245);  // touch -d worked (hosts and its links)
  EXPECT_EQ(want[1].nsec, 123456789u);

  TarReader r(MemoryReader(tar));
  size_t i = 0;
  for (;; ++i) {
    auto m = r.Next();
    ASSERT_TRUE(m) << m.error().message();
    if (!*m) break;
    ASSERT_LT(i, want.size()) << (*m)->entry.path;
    const Entry& e = (*m)->entry;
    const Expected& w = want[i];
    EXPECT_EQ(e.path, w.path);
    EXPECT_EQ(e.type, w.type) << w.path;
    EXPECT_EQ(e.mode, w.mode) << w.path;
    EXPECT_EQ(e.uid, w.uid) << w.path;
    EXPECT_EQ(e.gid, w.gid) << w.path;
    EXPECT_EQ(e.size, w.size) << w.path;
    EXPECT_EQ(e.link_name, w.link) << w.path;
    EXPECT_EQ(e.dev_major, w.major) << w.path;
    EXPECT_EQ(e.dev_minor, w.minor) << w.path;
    EXPECT_EQ(e.xattrs, w.xattrs) << w.path;
    EXPECT_EQ(e.mtime_sec, w.mtime) << w.path;
    EXPECT_EQ(e.mtime_nsec, w.nsec) << w.path;
    std::string data(e.size, '\0');
    ASSERT_TRUE(r.ReadPayload(data.data(), data.size()));
    if (w.type == EntryType::kRegular) {
      EXPECT_EQ(data, Slurp(root_ + "/" + w.path)) << w.path;
    }
  }
  EXPECT_EQ(i, want.size());
  EXPECT_EQ(tar.find("TOPSECRET-CONTENT"), std::string::npos);  // nothing read through the symlinks

  // Small reads give the same bytes; GNU tar lists it.
  EXPECT_EQ(Walk({}, 7, nullptr), tar);
  {
    FILE* f = std::fopen((dir_ + "/w.tar").c_str(), "wb");
    std::fwrite(tar.data(), 1, tar.size(), f);
    std::fclose(f);
  }
  ASSERT_EQ(Sh("tar -tvf " + dir_ + "/w.tar > " + dir_ + "/list"), 0);
  const std::string list = Slurp(dir_ + "/list");
  EXPECT_NE(list.find("-rwsr-xr-x 0/0               6 "), std::string::npos) << list;
  EXPECT_NE(list.find("crw-r--r-- 0/0             1,3 "), std::string::npos) << list;
  EXPECT_NE(list.find("zz-hard link to bin/hard2"), std::string::npos) << list;
}

TEST_F(DirWalkerTest, NormalizeAndDeterminism) {
  DirWalkerOptions opt;
  opt.normalize = true;
  opt.normalized_mtime = 1700000000;
  const std::string a = Walk(opt, 4096, nullptr);
  TarReader r(MemoryReader(a));
  size_t n = 0;
  for (;;) {
    auto m = r.Next();
    ASSERT_TRUE(m);
    if (!*m) break;
    ++n;
    EXPECT_EQ((*m)->entry.uid, 0u);
    EXPECT_EQ((*m)->entry.gid, 0u);
    EXPECT_EQ((*m)->entry.mtime_sec, 1700000000);
    EXPECT_EQ((*m)->entry.mtime_nsec, 0u);
  }
  EXPECT_EQ(n, 16u);
  // New times and owners change nothing in normalised mode (chown clears setuid and
  // capabilities, so only symlinks and plain files are re-owned).
  ASSERT_EQ(Sh("find " + root_ + " -not -type s -exec touch -h {} + && chown -h 9:9 " + root_ +
               "/etclink " + root_ + "/etc/hosts"),
            0);
  EXPECT_EQ(Walk(opt, 4096, nullptr), a);
}

TEST_F(DirWalkerTest, FeedsTheZstdChunkedWriter) {
  const std::string tar = Walk({}, 1 << 16, nullptr);
  auto s = DirTarStream::Open(root_, {.warn = [](std::string_view) {}});
  ASSERT_TRUE(s);
  std::string blob;
  auto r = WriteZstdChunked((*s)->AsReadCallback(), [&](std::string_view d) -> Status {
    blob.append(d);
    return Ok();
  });
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->diff_id, Digest::Of(tar));
  EXPECT_EQ(r->entries, 16u);
}

TEST_F(DirWalkerTest, GnuTarExtractionWalksBackToTheSameBytes) {
  const std::string tar = Walk({}, 1 << 16, nullptr);
  {
    FILE* f = std::fopen((dir_ + "/w.tar").c_str(), "wb");
    std::fwrite(tar.data(), 1, tar.size(), f);
    std::fclose(f);
  }
  ASSERT_EQ(Sh("mkdir " + dir_ + "/x && tar --xattrs --xattrs-include='*' --numeric-owner -xpf " +
               dir_ + "/w.tar -C " + dir_ + "/x"),
            0);
  root_ = dir_ + "/x";
  const std::string again = Walk({}, 1 << 16, nullptr);
  EXPECT_EQ(again.size(), tar.size());
  EXPECT_TRUE(again == tar) << "re-walked tar differs";
}

TEST_F(DirWalkerTest, Errors) {
  auto s = DirTarStream::Open(dir_ + "/missing");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), ENOENT);
  EXPECT_EQ(s.error().message(),
            "open rootfs directory \"" + dir_ + "/missing\": No such file or directory");
  s = DirTarStream::Open(root_ + "/etc/hosts");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), ENOTDIR);
}

}  // namespace
}  // namespace hoist
