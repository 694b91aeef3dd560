#include "index/tar_writer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "index/tar_reader.h"
#include "tests/index/format_test_util.h"

namespace hoist {
namespace {

using testing::Sh;
using testing::Slurp;

TarWriteEntry Make(std::string path, EntryType type, uint32_t mode, uint64_t size = 0) {
  TarWriteEntry w;
  w.entry.path = std::move(path);
  w.entry.type = type;
  w.entry.mode = mode;
  w.entry.size = size;
  w.entry.mtime_sec = 1600000000;
  return w;
}

std::string WriteTar(const std::vector<std::pair<TarWriteEntry, std::string>>& items) {
  std::string out;
  TarWriter tw([&out](std::string_view d) -> Status {
    out.append(d);
    return Ok();
  });
  for (const auto& [e, data] : items) {
    EXPECT_TRUE(tw.WriteHeader(e));
    EXPECT_TRUE(tw.WritePayload(data));
  }
  EXPECT_TRUE(tw.Finish());
  return out;
}

struct ReadBack {
  std::vector<TarMember> members;
  std::vector<std::string> payloads;
};

ReadBack ReadAll(const std::string& tar) {
  ReadBack rb;
  TarReader r(MemoryReader(tar));
  for (;;) {
    auto m = r.Next();
    EXPECT_TRUE(m) << m.error().message();
    if (!m || !*m) break;
    rb.members.push_back(**m);
    std::string data((*m)->payload_size, '\0');
    auto n = r.ReadPayload(data.data(), data.size());
    EXPECT_TRUE(n && *n == data.size());
    rb.payloads.push_back(data);
  }
  return rb;
}

TEST(TarWriterTest, UstarHeaderBytes) {
  TarWriteEntry w = Make("etc/hosts", EntryType::kRegular, 0644, 5);
  w.entry.uid = 1000;
  w.entry.gid = 100;
  w.uname = "alice";
  auto h = EncodeTarHeader(w);
  ASSERT_TRUE(h);
  ASSERT_EQ(h->size(), 512u);
  EXPECT_EQ(h->substr(0, 10), std::string("etc/hosts\0", 10));
  EXPECT_EQ(h->substr(100, 8), std::string("0000644\0", 8));
  EXPECT_EQ(h->substr(108, 8), std::string("0001750\0", 8));
  EXPECT_EQ(h->substr(116, 8), std::string("0000144\0", 8));
  EXPECT_EQ(h->substr(124, 12), std::string("00000000005\0", 12));
  EXPECT_EQ(h->substr(136, 12), std::string("13727410000\0", 12));
  EXPECT_EQ((*h)[156], '0');
  EXPECT_EQ(h->substr(257, 8), std::string("ustar\0"
                                           "00",
                                           8));
  EXPECT_EQ(h->substr(265, 6), std::string("alice\0", 6));
  unsigned sum = 0;
  for (size_t i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : (unsigned char)(*h)[i];
  char want[8];
  std::snprintf(want, sizeof want, "%06o", sum);
  EXPECT_EQ(h->substr(148, 8), std::string(want, 6) + std::string("\0 ", 2));
}

TEST(TarWriterTest, PaxOnlyWhenNeeded) {
  // 150-byte path splits into prefix/name: still plain ustar.
  const std::string mid = std::string(60, 'a') + "/" + std::string(89, 'b');
  auto h = EncodeTarHeader(Make(mid, EntryType::kRegular, 0644));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->size(), 512u);
  EXPECT_EQ(h->substr(345, 60), std::string(60, 'a'));
  EXPECT_EQ(h->substr(0, 89), std::string(89, 'b'));

  // Sub-second mtime, big ids, big size, long link, xattrs: one pax header, sorted records.
  TarWriteEntry w = Make("x", EntryType::kRegular, 0644, (8ull << 30) + 1);
  w.entry.mtime_nsec = 500000000;
  w.entry.uid = 3000000;
  w.entry.gid = 07777777;
  w.entry.xattrs = {{"user.b", std::string("v\0\n=", 4)}, {"security.capability", "cap"}};
  h = EncodeTarHeader(w);
  ASSERT_TRUE(h);
  ASSERT_EQ(h->size(), 512u * 3);
  EXPECT_EQ((*h)[156], 'x');
  EXPECT_EQ(h->substr(0, 13), std::string("PaxHeaders/x\0", 13));
  auto recs = ParsePaxRecords(std::string_view(*h).substr(512, 512));
  ASSERT_TRUE(recs) << recs.error().message();
  std::map<std::string, std::string> want = {{"SCHILY.xattr.security.capability", "cap"},
                                             {"SCHILY.xattr.user.b", std::string("v\0\n=", 4)},
                                             {"mtime", "1600000000.5"},
                                             {"size", "8589934593"},
                                             {"uid", "3000000"}};
  EXPECT_EQ(*recs, want);
  EXPECT_EQ(h->substr(1024 + 124, 12), std::string("00000000000\0", 12));  // size moved to pax
  EXPECT_EQ(h->substr(1024 + 116, 8), std::string("7777777\0", 8));        // gid fits exactly
}

TEST(TarWriterTest, RoundTripThroughTarReader) {
  std::vector<std::pair<TarWriteEntry, std::string>> items;
  items.push_back({Make("d", EntryType::kDirectory, 0755), ""});
  auto f = Make("d/file", EntryType::kRegular, 04755, 700);
  f.entry.uid = 5000000;
  f.entry.gid = 42;
  f.entry.mtime_nsec = 123456789;
  f.entry.xattrs = {{"security.capability", std::string("\x01\0\0\x02\x00\x04\0\0", 8)},
                    {"user.k", "v"}};
  items.push_back({f, std::string(700, 'q')});
  const std::string longdir = std::string(120, 'L') + "/" + std::string(200, 'M');
  items.push_back({Make(longdir, EntryType::kDirectory, 0700), ""});
  auto lf = Make(longdir + "/" + std::string(250, 'n'), EntryType::kRegular, 0600, 1);
  items.push_back({lf, "z"});
  auto sl = Make("d/sym", EntryType::kSymlink, 0777);
  sl.entry.link_name = "/" + std::string(180, 't');
  items.push_back({sl, ""});
  auto hl = Make("d/hard", EntryType::kHardlink, 04755);
  hl.entry.link_name = "d/file";
  items.push_back({hl, ""});
  auto cd = Make("d/null", EntryType::kCharDevice, 0666);
  cd.entry.dev_major = 1;
  cd.entry.dev_minor = 3;
  items.push_back({cd, ""});
  auto bd = Make("d/loop", EntryType::kBlockDevice, 0660);
  bd.entry.dev_major = 7;
  bd.entry.dev_minor = 300;
  items.push_back({bd, ""});
  items.push_back({Make("d/fifo", EntryType::kFifo, 0644), ""});
  auto old = Make("d/old", EntryType::kRegular, 0644);
  old.entry.mtime_sec = -2;
  old.entry.mtime_nsec = 250000000;
  items.push_back({old, ""});

  const std::string tar = WriteTar(items);
  EXPECT_EQ(tar.size() % 512, 0u);
  EXPECT_EQ(tar.substr(tar.size() - 1024), std::string(1024, '\0'));
  EXPECT_EQ(WriteTar(items), tar);  // deterministic

  ReadBack rb = ReadAll(tar);
  ASSERT_EQ(rb.members.size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const Entry& want = items[i].first.entry;
    const Entry& got = rb.members[i].entry;
    EXPECT_EQ(got.path, want.path) << i;
    EXPECT_EQ(got.type, want.type) << want.path;
    EXPECT_EQ(got.mode, want.mode) << want.path;
    EXPECT_EQ(got.uid, want.uid) << want.path;
    EXPECT_EQ(got.gid, want.gid) << want.path;
    EXPECT_EQ(got.mtime_sec, want.mtime_sec) << want.path;
    EXPECT_EQ(got.mtime_nsec, want.mtime_nsec) << want.path;
    EXPECT_EQ(got.size, want.type == EntryType::kRegular ? want.size : 0) << want.path;
    EXPECT_EQ(got.link_name, want.link_name) << want.path;
    EXPECT_EQ(got.dev_major, want.dev_major) << want.path;
    EXPECT_EQ(got.dev_minor, want.dev_minor) << want.path;
    std::vector<Xattr> wx = want.xattrs, gx = got.xattrs;
    auto by_name = [](const Xattr& a, const Xattr& b) { return a.name < b.name; };
    std::sort(wx.begin(), wx.end(), by_name);
    std::sort(gx.begin(), gx.end(), by_name);
    EXPECT_EQ(gx, wx) << want.path;
    EXPECT_EQ(rb.payloads[i], items[i].second) << want.path;
  }
  EXPECT_EQ(rb.members[0].raw_name, "d/");
}

TEST(TarWriterTest, GnuTarListsAndExtractsIt) {
  const std::string dir = testing::MakeTempDir();
  std::vector<std::pair<TarWriteEntry, std::string>> items;
  items.push_back({Make("d", EntryType::kDirectory, 0755), ""});
  auto f = Make("d/" + std::string(150, 'f'), EntryType::kRegular, 04751, 3);
  f.entry.uid = 3000000;
  f.entry.gid = 7;
  f.entry.mtime_nsec = 987654321;
  f.entry.xattrs = {{"user.note", "hello"},
                    {"security.capability",
                     std::string("\x00\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                                 "\x00\x00\x00\x00\x00",
                                 20)}};
  f.entry.xattrs[1].value[0] = 1;  // VFS_CAP_REVISION_2 = 0x02000001 (little-endian)
  items.push_back({f, "abc"});
  auto hl = Make("d/h", EntryType::kHardlink, 0);
  hl.entry.link_name = f.entry.path;
  items.push_back({hl, ""});
  auto sl = Make("d/s", EntryType::kSymlink, 0777);
  sl.entry.link_name = "../" + std::string(120, 'x');
  items.push_back({sl, ""});
  items.push_back({Make("d/p", EntryType::kFifo, 0640), ""});
  {
    FILE* out = std::fopen((dir + "/t.tar").c_str(), "wb");
    const std::string tar = WriteTar(items);
    std::fwrite(tar.data(), 1, tar.size(), out);
    std::fclose(out);
  }
  ASSERT_EQ(Sh("tar -tvf " + dir + "/t.tar > " + dir + "/list"), 0);
  const std::string list = Slurp(dir + "/list");
  EXPECT_NE(list.find("-rwsr-x--x 3000000/7"), std::string::npos) << list;
  EXPECT_NE(list.find("d/" + std::string(150, 'f')), std::string::npos) << list;
  EXPECT_NE(list.find("d/h link to d/" + std::string(150, 'f')), std::string::npos) << list;
  EXPECT_NE(list.find("d/s -> ../" + std::string(120, 'x')), std::string::npos) << list;
  EXPECT_EQ(list.find("PaxHeaders"), std::string::npos) << list;
  if (geteuid() != 0) GTEST_SKIP() << "extraction with owners and capabilities needs root";
  ASSERT_EQ(Sh("mkdir " + dir + "/x && tar --xattrs --xattrs-include='*' --numeric-owner -xpf " +
               dir + "/t.tar -C " + dir + "/x"),
            0);
  const std::string p = dir + "/x/d/" + std::string(150, 'f');
  struct stat st;
  ASSERT_EQ(lstat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 3000000u);
  EXPECT_EQ(st.st_gid, 7u);
  EXPECT_EQ(st.st_nlink, 2u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1600000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 987654321);
  EXPECT_EQ(Slurp(p), "abc");
  char v[64];
  ssize_t n = lgetxattr(p.c_str(), "user.note", v, sizeof v);
  EXPECT_EQ(std::string(v, n > 0 ? n : 0), "hello");
  n = lgetxattr(p.c_str(), "security.capability", v, sizeof v);
  EXPECT_EQ(std::string(v, n > 0 ? n : 0), f.entry.xattrs[1].value);
  // Capabilities are set after chown, so setuid survives or not by tar's rules; mode bits:
  EXPECT_EQ(st.st_mode & 0777, 0751u);
  ASSERT_EQ(lstat((dir + "/x/d/p").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  Sh("rm -rf " + dir);
}

TEST(TarWriterTest, Errors) {
  std::string out;
  TarWriter tw([&out](std::string_view d) -> Status {
    out.append(d);
    return Ok();
  });
  ASSERT_TRUE(tw.WriteHeader(Make("f", EntryType::kRegular, 0644, 4)));
  auto st = tw.WritePayload("12345");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), EINVAL);
  EXPECT_EQ(st.error().message(), "tar payload longer than the declared size");
  ASSERT_TRUE(tw.WritePayload("12"));
  st = tw.Finish();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().message(), "tar payload is 2 bytes short");

  auto h = EncodeTarHeader(Make(std::string("a\0b", 3), EntryType::kRegular, 0644));
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code(), EINVAL);
  h = EncodeTarHeader(Make("", EntryType::kRegular, 0644));
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().message(), "tar entry with an empty name");
  auto x = Make("f", EntryType::kRegular, 0644);
  x.entry.xattrs = {{"user.a=b", "v"}};
  h = EncodeTarHeader(x);
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().message(), "tar entry f: bad xattr name");

  std::string sink_fail;
  TarWriter bad([](std::string_view) -> Status { return Fail(ENOSPC, "disk full"); });
  st = bad.WriteHeader(Make("f", EntryType::kRegular, 0644));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ENOSPC);
}

}  // namespace
}  // namespace hoist
