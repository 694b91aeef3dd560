#include "index/tar_reader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <vector>

#include "index/tar_path.h"
#include "tests/index/format_test_util.h"

namespace hoist {
namespace {

using testing::Sh;
using testing::Slurp;

struct Parsed {
  std::vector<TarMember> members;
  std::vector<std::string> payloads;
  std::string rebuilt;  // raw headers + payloads + padding + trailer
};

Result<Parsed> ParseAll(std::string_view tar) {
  Parsed p;
  TarReader r(MemoryReader(tar));
  for (;;) {
    HOIST_ASSIGN_OR_RETURN(const TarMember* m, r.Next());
    if (!m) break;
    p.members.push_back(*m);
    p.rebuilt += r.raw_header();
    std::string payload;
    char buf[1000];
    for (;;) {
      HOIST_ASSIGN_OR_RETURN(size_t n, r.ReadPayload(buf, sizeof buf));
      if (!n) break;
      payload.append(buf, n);
    }
    p.rebuilt += payload;
    p.payloads.push_back(payload);
    HOIST_ASSIGN_OR_RETURN(std::string_view pad, r.FinishMember());
    p.rebuilt += pad;
  }
  char buf[4096];
  for (;;) {
    HOIST_ASSIGN_OR_RETURN(size_t n, r.ReadTrailer(buf, sizeof buf));
    if (!n) break;
    p.rebuilt.append(buf, n);
  }
  return p;
}

const TarMember* Find(const Parsed& p, const std::string& path) {
  for (auto& m : p.members)
    if (m.entry.path == path) return &m;
  return nullptr;
}

class GnuTarTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    std::string long_dir(120, 'd');
    ASSERT_EQ(Sh("cd " + dir_ + " && mkdir -p root/etc root/" + long_dir +
                 " && printf hello > root/etc/hello && ln root/etc/hello root/etc/zhard"
                 " && ln -s ../etc/hello root/etc/sym && mkfifo root/fifo"
                 " && head -c 5000 /dev/urandom > root/" +
                 long_dir + "/" + std::string(150, 'f') + " && ln -s " + std::string(130, 't') +
                 " root/longlink"
                 " && touch -d '2021-02-03 04:05:06.123456789' root/etc/hello"
                 " && (setfattr -n user.test -v value root/etc/hello 2>/dev/null || true)"
                 " && (mknod root/null c 1 3 && mknod root/blk b 7 0 || true)"),
              0);
  }
  void TearDown() override { Sh("rm -rf " + dir_); }
  std::string dir_;
};

TEST_P(GnuTarTest, ParsesEveryEntryAndAccountsForEveryByte) {
  const std::string fmt = GetParam();
  ASSERT_EQ(Sh("cd " + dir_ + "/root && tar --format=" + fmt + (fmt == "posix" ? " --xattrs" : "") +
               " --sort=name -cf ../l.tar ."),
            0);
  std::string tar = Slurp(dir_ + "/l.tar");
  auto p = ParseAll(tar);
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->rebuilt, tar);  // byte accounting is exact

  const TarMember* root = Find(*p, "");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->entry.type, EntryType::kDirectory);
  const TarMember* hello = Find(*p, "etc/hello");
  ASSERT_NE(hello, nullptr);
  EXPECT_EQ(hello->entry.type, EntryType::kRegular);
  EXPECT_EQ(hello->entry.size, 5u);
  EXPECT_EQ(hello->padding, 507u);
  EXPECT_EQ(tar.substr(hello->payload_offset, 5), "hello");
  EXPECT_EQ(hello->payload_offset, hello->header_offset + hello->header_length);
  EXPECT_EQ(hello->entry.mtime_sec, 1612325106);
  if (fmt == "posix") {
    EXPECT_EQ(hello->entry.mtime_nsec, 123456789u);
    if (Sh("getfattr -n user.test " + dir_ + "/root/etc/hello >/dev/null 2>&1") == 0) {
      ASSERT_EQ(hello->entry.xattrs.size(), 1u);
      EXPECT_EQ(hello->entry.xattrs[0], (Xattr{"user.test", "value"}));
    }
  }
  const TarMember* hard = Find(*p, "etc/zhard");
  ASSERT_NE(hard, nullptr);
  EXPECT_EQ(hard->entry.type, EntryType::kHardlink);
  EXPECT_EQ(hard->entry.link_name, "etc/hello");
  EXPECT_EQ(hard->payload_size, 0u);
  const TarMember* sym = Find(*p, "etc/sym");
  ASSERT_NE(sym, nullptr);
  EXPECT_EQ(sym->entry.type, EntryType::kSymlink);
  EXPECT_EQ(sym->entry.link_name, "../etc/hello");
  const TarMember* ll = Find(*p, "longlink");
  ASSERT_NE(ll, nullptr);
  EXPECT_EQ(ll->entry.link_name, std::string(130, 't'));
  const TarMember* fifo = Find(*p, "fifo");
  ASSERT_NE(fifo, nullptr);
  EXPECT_EQ(fifo->entry.type, EntryType::kFifo);
  const std::string long_path = std::string(120, 'd') + "/" + std::string(150, 'f');
  const TarMember* lf = Find(*p, long_path);
  ASSERT_NE(lf, nullptr);
  EXPECT_EQ(lf->entry.size, 5000u);
  EXPECT_GT(lf->header_length, 512u);  // pax or GNU 'L' blocks are part of the header
  EXPECT_EQ(p->payloads[lf - p->members.data()], Slurp(dir_ + "/root/" + long_path));
  if (geteuid() == 0) {
    const TarMember* null = Find(*p, "null");
    ASSERT_NE(null, nullptr);
    EXPECT_EQ(null->entry.type, EntryType::kCharDevice);
    EXPECT_EQ(null->entry.dev_major, 1u);
    EXPECT_EQ(null->entry.dev_minor, 3u);
    const TarMember* blk = Find(*p, "blk");
    ASSERT_NE(blk, nullptr);
    EXPECT_EQ(blk->entry.type, EntryType::kBlockDevice);
    EXPECT_EQ(blk->entry.dev_major, 7u);
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, GnuTarTest, ::testing::Values("posix", "gnu", "oldgnu"),
                         [](const auto& info) { return info.param; });

// A hand-made ustar header.
std::string Header(const std::string& name, char type, uint64_t size,
                   const std::string& link = "") {
  std::string h(512, '\0');
  h.replace(0, std::min<size_t>(name.size(), 100), name.substr(0, 100));
  auto oct = [&](size_t off, size_t len, uint64_t v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%0*llo", static_cast<int>(len - 1),
                  static_cast<unsigned long long>(v));
    h.replace(off, len - 1, buf);
  };
  oct(100, 8, 0644);
  oct(108, 8, 0);
  oct(116, 8, 0);
  oct(124, 12, size);
  oct(136, 12, 0);
  h[156] = type;
  h.replace(157, std::min<size_t>(link.size(), 100), link.substr(0, 100));
  h.replace(257, 6, std::string("ustar\0", 6));
  h.replace(263, 2, "00");
  h.replace(148, 8, "        ");
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%06o", sum);
  h.replace(148, 7, std::string(buf, 6) + '\0');
  return h;
}

std::string Pax(const std::string& records) {
  std::string h = Header("PaxHeaders/x", 'x', records.size());
  std::string data = records;
  data.resize((records.size() + 511) / 512 * 512, '\0');
  return h + data;
}

std::string Rec(const std::string& k, const std::string& v) {
  std::string body = " " + k + "=" + v + "\n";
  size_t len = body.size() + 1;
  while (std::to_string(len).size() + body.size() != len) ++len;
  return std::to_string(len) + body;
}

TEST(TarReader, EndOfArchiveWithoutZeroBlocks) {
  std::string tar = Header("a", '0', 3) + "abc" + std::string(509, '\0');
  auto p = ParseAll(tar);
  ASSERT_TRUE(p) << p.error().message();
  ASSERT_EQ(p->members.size(), 1u);
  EXPECT_EQ(p->rebuilt, tar);
}

TEST(TarReader, TrailerKeepsGarbageAfterEndMarker) {
  std::string tar = Header("a", '0', 0) + std::string(1024, '\0') + "junk";
  auto p = ParseAll(tar);
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->rebuilt, tar);
}

TEST(TarReader, PaxOverridesAndFractionalMtime) {
  std::string tar = Pax(Rec("path", "./x/" + std::string(200, 'p')) + Rec("mtime", "1700000000.5") +
                        Rec("uid", "4000000000") +
                        Rec("SCHILY.xattr.security.capability", std::string("\x01\0\0\x02", 4))) +
                    Header("short", '0', 2) + "hi" + std::string(510, '\0') +
                    std::string(1024, '\0');
  auto p = ParseAll(tar);
  ASSERT_TRUE(p) << p.error().message();
  ASSERT_EQ(p->members.size(), 1u);
  const Entry& e = p->members[0].entry;
  EXPECT_EQ(e.path, "x/" + std::string(200, 'p'));
  EXPECT_EQ(e.mtime_sec, 1700000000);
  EXPECT_EQ(e.mtime_nsec, 500000000u);
  EXPECT_EQ(e.uid, 4000000000u);
  ASSERT_EQ(e.xattrs.size(), 1u);
  EXPECT_EQ(e.xattrs[0].value, std::string("\x01\0\0\x02", 4));
  EXPECT_EQ(p->members[0].header_offset, 0u);
  EXPECT_EQ(p->members[0].header_length, 512u * 3);
  EXPECT_EQ(p->rebuilt, tar);
}

TEST(TarReader, GlobalHeaderAppliesToLaterEntries) {
  std::string g = Header("g", 'g', Rec("gid", "77").size()) + Rec("gid", "77");
  g.resize(1024, '\0');
  std::string tar = g + Header("a", '0', 0) + Header("b", '0', 0) + std::string(1024, '\0');
  auto p = ParseAll(tar);
  ASSERT_TRUE(p) << p.error().message();
  ASSERT_EQ(p->members.size(), 2u);
  EXPECT_EQ(p->members[1].entry.gid, 77u);
  EXPECT_EQ(p->members[0].header_length, 1536u);
}

TEST(TarReader, Base256Size) {
  std::string h = Header("a", '0', 0);
  h.replace(124, 12, std::string("\x80\0\0\0\0\0\0\0\0\0\x01\x00", 12));  // 256
  h.replace(148, 8, "        ");
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%06o", sum);
  h.replace(148, 7, std::string(buf, 6) + '\0');
  std::string tar = h + std::string(512, 'x') + std::string(1024, '\0');
  auto p = ParseAll(tar);
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->members[0].payload_size, 256u);
  EXPECT_EQ(p->members[0].padding, 256u);
}

TEST(TarReader, RejectsBadChecksumNamingOffset) {
  std::string tar = Header("a", '0', 0) + Header("b", '0', 0);
  tar[512 + 10] = 'X';
  auto p = ParseAll(tar);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code(), EBADMSG);
  EXPECT_EQ(p.error().message(), "tar at byte 512: header checksum mismatch");
}

TEST(TarReader, RejectsOldGnuSparseAndUnknownTypes) {
  auto p = ParseAll(Header("s", 'S', 0));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code(), ENOTSUP);
  EXPECT_EQ(p.error().message(), "tar at byte 0: GNU sparse files are not supported");
  auto g =
      ParseAll(Header("PaxHeaders/g", 'g', Rec("GNU.sparse.major", "1").size()) +
               Rec("GNU.sparse.major", "1") + std::string(512 - 22, '\0') + Header("s", '0', 0));
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().code(), ENOTSUP);
  EXPECT_EQ(g.error().message(),
            "tar at byte 0: GNU sparse records in a global header are not supported");
  auto r = ParseAll(Header("v", 'V', 0));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "tar entry \"v\" at byte 0: unsupported typeflag 'V'");
}

// The file a sparse member expands to: zeros with the data segments copied in.
std::string Expand(const TarMember& m, const std::string& payload) {
  if (!m.is_sparse) return payload;
  std::string out(m.entry.size, '\0');
  for (const SparseSegment& s : m.sparse)
    out.replace(s.offset, s.length, payload.substr(s.payload_offset - m.payload_offset, s.length));
  return out;
}

// A format 0.1 member "s" of real size `real` with map `map` storing `data`.
std::string Sparse01(uint64_t real, const std::string& numblocks, const std::string& map,
                     const std::string& data) {
  std::string d = data;
  d.resize((data.size() + 511) / 512 * 512, '\0');
  return Pax(Rec("GNU.sparse.major", "0") + Rec("GNU.sparse.minor", "1") +
             Rec("GNU.sparse.name", "s") + Rec("GNU.sparse.size", std::to_string(real)) +
             Rec("GNU.sparse.numblocks", numblocks) + Rec("GNU.sparse.map", map)) +
         Header("GNUSparseFile.1/s", '0', data.size()) + d;
}

std::string Repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

// A format 1.0 member "s" whose data starts with `map_text` (padded to 512) then `data`.
std::string Sparse10(uint64_t real, const std::string& map_text, const std::string& data,
                     uint64_t stored = UINT64_MAX) {
  std::string m = map_text;
  m.resize((m.size() + 511) / 512 * 512, '\0');
  std::string body = m + data;
  if (stored == UINT64_MAX) stored = body.size();
  body.resize((body.size() + 511) / 512 * 512, '\0');
  return Pax(Rec("GNU.sparse.major", "1") + Rec("GNU.sparse.minor", "0") +
             Rec("GNU.sparse.name", "s") + Rec("GNU.sparse.realsize", std::to_string(real))) +
         Header("GNUSparseFile.1/s", '0', stored) + body;
}

class GnuTarSparseTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GnuTarSparseTest, ExpandsLikeUmoci) {
  const std::string dir = testing::MakeTempDir();
  // mixed: data, hole, data, trailing hole; head_hole: starts with a hole; empty: all hole;
  // dense: no hole at all.
  ASSERT_EQ(Sh("cd " + dir +
               " && truncate -s 3M mixed && printf HEAD | dd of=mixed conv=notrunc status=none"
               " && printf MID | dd of=mixed bs=1 seek=1500000 conv=notrunc status=none"
               " && truncate -s 1M head_hole && printf END | dd of=head_hole bs=1 seek=1000000"
               " conv=notrunc status=none && truncate -s 2M empty"
               " && head -c 10000 /dev/urandom > dense"
               " && tar --format=posix --sparse --sparse-version=" +
               GetParam() + " --numeric-owner -cf l.tar mixed head_hole empty dense"),
            0);
  std::string tar = Slurp(dir + "/l.tar");
  auto p = ParseAll(tar);
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->rebuilt, tar);
  for (std::string name : {"mixed", "head_hole", "empty", "dense"}) {
    const TarMember* m = Find(*p, name);
    ASSERT_NE(m, nullptr) << name;
    EXPECT_EQ(m->raw_name, name);
    EXPECT_EQ(m->entry.type, EntryType::kRegular);
    const std::string want = Slurp(dir + "/" + name);
    EXPECT_EQ(m->entry.size, want.size()) << name;
    uint64_t stored = 0;
    for (const SparseSegment& s : m->sparse) stored += s.length;
    if (m->is_sparse) {
      EXPECT_EQ(stored, m->payload_size) << name;
    }
    EXPECT_TRUE(Expand(*m, p->payloads[m - p->members.data()]) == want) << name;
  }
  const TarMember* mixed = Find(*p, "mixed");
  EXPECT_TRUE(mixed->is_sparse);
  ASSERT_FALSE(mixed->sparse.empty());
  EXPECT_LT(mixed->sparse.back().offset + mixed->sparse.back().length, 3u << 20);  // end hole
  const TarMember* head_hole = Find(*p, "head_hole");
  EXPECT_TRUE(head_hole->is_sparse);
  ASSERT_FALSE(head_hole->sparse.empty());
  EXPECT_GT(head_hole->sparse.front().offset, 0u);  // starts with a hole
  EXPECT_TRUE(Find(*p, "empty")->is_sparse);
  EXPECT_LT(Find(*p, "mixed")->payload_size, 64u << 10);
  EXPECT_TRUE(Find(*p, "empty")->sparse.empty());
  EXPECT_EQ(Find(*p, "empty")->payload_size, 0u);
  Sh("rm -rf " + dir);
}

INSTANTIATE_TEST_SUITE_P(Versions, GnuTarSparseTest, ::testing::Values("0.0", "0.1", "1.0"),
                         [](const auto& info) {
                           std::string n = info.param;
                           n[1] = '_';
                           return "v" + n;
                         });

TEST(TarReader, SparseFormat00KeepsRecordOrder) {
  std::string tar = Pax(Rec("GNU.sparse.size", "20") + Rec("GNU.sparse.numblocks", "2") +
                        Rec("GNU.sparse.offset", "2") + Rec("GNU.sparse.numbytes", "3") +
                        Rec("GNU.sparse.offset", "10") + Rec("GNU.sparse.numbytes", "4")) +
                    Header("z", '0', 7) + "abcdefg" + std::string(505, '\0');
  auto p = ParseAll(tar);
  ASSERT_TRUE(p) << p.error().message();
  const TarMember& m = p->members[0];
  EXPECT_EQ(m.entry.size, 20u);
  EXPECT_EQ(Expand(m, p->payloads[0]), std::string("\0\0abc\0\0\0\0\0defg\0\0\0\0\0\0", 20));
  auto bad = ParseAll(Pax(Rec("GNU.sparse.numbytes", "3")) + Header("z", '0', 0));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(),
            "tar at byte 0: GNU.sparse.offset/numbytes records out of order");
}

TEST(TarReader, SparseFormat10ReadsTheMapBlocks) {
  std::string tar = Sparse10(100, "2\n0\n3\n90\n2\n", "abcde");
  auto p = ParseAll(tar);
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->rebuilt, tar);
  const TarMember& m = p->members[0];
  EXPECT_EQ(m.entry.path, "s");
  EXPECT_EQ(m.header_length, 512u * 4);  // pax header + data, ustar header, one map block
  EXPECT_EQ(m.payload_size, 5u);
  EXPECT_EQ(m.padding, 507u);
  ASSERT_EQ(m.sparse.size(), 2u);
  EXPECT_EQ(m.sparse[1], (SparseSegment{90, 2, m.payload_offset + 3}));
  std::string want(100, '\0');
  want.replace(0, 3, "abc");
  want.replace(90, 2, "de");
  EXPECT_EQ(Expand(m, p->payloads[0]), want);
  // An unknown version is a plain file, as Go's archive/tar reads it.
  auto v2 = ParseAll(Pax(Rec("GNU.sparse.major", "2") + Rec("GNU.sparse.minor", "0") +
                         Rec("GNU.sparse.name", "s")) +
                     Header("raw", '0', 2) + "hi" + std::string(510, '\0'));
  ASSERT_TRUE(v2) << v2.error().message();
  EXPECT_EQ(v2->members[0].entry.path, "raw");
  EXPECT_FALSE(v2->members[0].is_sparse);
  EXPECT_EQ(v2->payloads[0], "hi");
}

TEST(TarReader, RejectsHostileSparseMaps) {
  struct Case {
    std::string tar;
    int code;
    std::string message;
  };
  const std::string at0 = "tar entry \"s\" at byte 0: ";
  const std::vector<Case> cases = {
      {Sparse01(100, "2", "50,10,40,5", std::string(15, 'x')), EBADMSG,
       at0 + "sparse segments out of order or overlapping at offset 40"},
      {Sparse01(100, "2", "0,10,5,5", std::string(15, 'x')), EBADMSG,
       at0 + "sparse segments out of order or overlapping at offset 5"},
      {Sparse01(100, "1", "90,20", std::string(20, 'x')), EBADMSG,
       at0 + "sparse segment at 90+20 ends beyond the real size 100"},
      {Sparse01(100, "1", "18446744073709551615,2", "xx"), EBADMSG,
       at0 + "sparse segment at 18446744073709551615+2 ends beyond the real size 100"},
      {Sparse01(100, "2", "0,1", "x"), EBADMSG,
       at0 + "GNU.sparse.map does not match GNU.sparse.numblocks"},
      {Sparse01(100, "1", "0,1,", "x"), EBADMSG, at0 + "bad number in GNU.sparse.map"},
      {Sparse01(100, "1", "0,-1", "x"), EBADMSG, at0 + "bad number in GNU.sparse.map"},
      {Sparse01(100, "1000000", "0,1", "x"), EFBIG,
       at0 + "sparse map of 1000000 segments is over the cap of 262144"},
      {Sparse01(100, "1", "0,10", std::string(15, 'x')), EBADMSG,
       at0 + "sparse map holds 10 data bytes but the member stores 15"},
      {Sparse10(100, "1\n0\n10\n", std::string(15, 'x')), EBADMSG,
       at0 + "sparse map holds 10 data bytes but the member stores 15"},
      // Map errors name the byte where the map reading stopped (pax 1024 + header 512 + block).
      {Sparse10(100, "999999999\n", ""), EFBIG,
       "tar entry \"s\" at byte 2048: sparse map of 999999999 segments is over the cap of "
       "262144"},
      {Sparse10(100, "1\nx\n1\n", "x"), EBADMSG,
       "tar entry \"s\" at byte 2048: bad number in the sparse map"},
      {Sparse10(100, std::string(600, '0'), ""), EBADMSG,
       "tar entry \"s\" at byte 2048: bad number in the sparse map"},
      {Sparse10(100, "1000\n" + Repeat("0\n0\n", 127), "", 512), EBADMSG,
       "tar entry \"s\" at byte 2048: sparse map runs past the member's data"},
      {Pax(Rec("GNU.sparse.major", "1") + Rec("GNU.sparse.minor", "0") +
           Rec("GNU.sparse.name", "s")) +
           Header("d", '5', 0),
       EBADMSG, at0 + "GNU sparse records on a member that is not a file"},
  };
  for (const Case& c : cases) {
    auto p = ParseAll(c.tar);
    ASSERT_FALSE(p) << c.message;
    EXPECT_EQ(p.error().code(), c.code) << c.message;
    EXPECT_EQ(p.error().message(), c.message);
  }
}

TEST(TarReader, RejectsTruncation) {
  std::string tar = Header("a", '0', 100) + "short";
  auto p = ParseAll(tar);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code(), EBADMSG);
  EXPECT_NE(p.error().message().find("truncated payload"), std::string::npos);
  auto q = ParseAll(Header("a", '0', 0).substr(0, 300));
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().message(), "tar at byte 0: truncated header block");
}

TEST(TarReader, RejectsHostileNames) {
  for (std::string bad : {"../x", "a/../../b", "..", "/../etc"}) {
    auto p = ParseAll(Header(bad, '0', 0));
    ASSERT_FALSE(p) << bad;
    EXPECT_EQ(p.error().code(), EINVAL) << bad;
    EXPECT_NE(p.error().message().find("escapes the layer root"), std::string::npos);
  }
  auto nul = ParseAll(Pax(Rec("path", std::string("a\0b", 3))) + Header("x", '0', 0));
  ASSERT_FALSE(nul);
  EXPECT_EQ(nul.error().code(), EINVAL);
  auto hl = ParseAll(Header("h", '1', 0, "../../etc/shadow"));
  ASSERT_FALSE(hl);
  EXPECT_NE(hl.error().message().find("hardlink target"), std::string::npos);
  auto big = ParseAll(Pax(Rec("path", std::string(5000, 'a'))) + Header("x", '0', 0));
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code(), ENAMETOOLONG);
}

TEST(TarReader, MetadataCap) {
  std::string tar = Header("L", 'L', 10 << 20);
  auto p = ParseAll(tar);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code(), EFBIG);
}

TEST(CleanEntryPath, Normalises) {
  EXPECT_EQ(*CleanEntryPath("./"), "");
  EXPECT_EQ(*CleanEntryPath("/"), "");
  EXPECT_EQ(*CleanEntryPath("."), "");
  EXPECT_EQ(*CleanEntryPath("bin/"), "bin");
  EXPECT_EQ(*CleanEntryPath("./usr//lib/./x"), "usr/lib/x");
  EXPECT_EQ(*CleanEntryPath("/abs/path"), "abs/path");
  EXPECT_EQ(*CleanEntryPath("a/../b"), "b");
  EXPECT_EQ(CleanEntryPath("").error().code(), EINVAL);
  EXPECT_EQ(CleanEntryPath("a/../../b").error().message(),
            "entry name \"a/../../b\" escapes the layer root");
  EXPECT_EQ(CleanEntryPath(std::string(256, 'n')).error().code(), ENAMETOOLONG);
}

}  // namespace
}  // namespace hoist
