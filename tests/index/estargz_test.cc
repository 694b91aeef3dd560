#include "index/estargz.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <map>
#include <memory>
#include <optional>

#include "index/chunk_codec.h"
#include "index/tar_reader.h"
#include "index/zstd_chunked.h"
#include "tests/harness/gzip_bytes.h"
#include "tests/index/ctr_remote_util.h"
#include "tests/index/format_test_util.h"

namespace hoist {
namespace {

using testing::Sh;
using testing::Slurp;

// ---- helpers ----------------------------------------------------------------------------------

using testing::Gzip;

std::string Hex16(uint64_t v) {
  char buf[17];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// The 51-byte footer as ctr-remote writes it.
std::string Footer51(uint64_t toc_offset) {
  std::string f("\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff", 10);
  f += std::string("\x1a\x00SG\x16\x00", 6) + Hex16(toc_offset) + "STARGZ";
  f += std::string("\x01\x00\x00\xff\xff", 5) + std::string(8, '\0');
  return f;
}

// The legacy 47-byte footer (XLEN 22, no subfield header).
std::string Footer47(uint64_t toc_offset) {
  std::string f("\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff", 10);
  f += std::string("\x16\x00", 2) + Hex16(toc_offset) + "STARGZ";
  f += std::string("\x01\x00\x00\xff\xff", 5) + std::string(8, '\0');
  return f;
}

// One ustar member (header + payload + padding).
std::string TarMemberBytes(const std::string& name, std::string_view payload, char type = '0') {
  std::string h(512, '\0');
  std::memcpy(h.data(), name.data(), std::min<size_t>(name.size(), 100));
  auto octal = [&](size_t off, size_t len, uint64_t v) {
    std::string s(len - 1, '0');
    for (size_t i = len - 1; i-- > 0; v >>= 3) s[i] = static_cast<char>('0' + (v & 7));
    std::memcpy(h.data() + off, s.data(), s.size());
  };
  octal(100, 8, 0644);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, payload.size());
  octal(136, 12, 0);
  h[156] = type;
  std::memcpy(h.data() + 257,
              "ustar\0"
              "00",
              8);
  std::memset(h.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::string cs(6, '0');
  for (size_t i = 6; i-- > 0; sum >>= 3) cs[i] = static_cast<char>('0' + (sum & 7));
  std::memcpy(h.data() + 148, cs.data(), 6);
  h[154] = '\0';
  h[155] = ' ';
  std::string out = h + std::string(payload);
  out.resize((out.size() + 511) / 512 * 512, '\0');
  return out;
}

// A synthetic eStargz blob: `data` (gzip members), then the TOC member, then the footer.
struct Synthetic {
  std::string blob;
  uint64_t toc_offset = 0;
};
Synthetic MakeBlob(const std::string& data, const std::string& toc_member) {
  Synthetic s;
  s.toc_offset = data.size();
  s.blob = data + toc_member + Footer51(data.size());
  return s;
}
std::string TocMember(std::string_view json, const std::string& name = kEstargzTocName) {
  return Gzip(TarMemberBytes(name, json) + std::string(1024, '\0'));
}

BlobRangeReader MemoryRangeReader(const std::string& blob,
                                  std::vector<std::pair<uint64_t, uint64_t>>* log = nullptr) {
  return [&blob, log](uint64_t off, uint64_t len) -> Result<std::string> {
    if (log) log->emplace_back(off, len);
    if (off > blob.size() || len > blob.size() - off) return Fail(EIO, "read past the blob");
    return blob.substr(off, len);
  };
}

// Source tar members by cleaned path, in order.
struct SourceEntry {
  Entry entry;
  std::string content;
};
std::vector<SourceEntry> ReadSourceTar(const std::string& tar) {
  std::vector<SourceEntry> out;
  TarReader tr(MemoryReader(tar));
  for (;;) {
    auto m = tr.Next();
    EXPECT_TRUE(m) << m.error().message();
    if (!m || !*m) break;
    SourceEntry e{(*m)->entry, std::string((*m)->payload_size, '\0')};
    size_t got = 0;
    while (got < e.content.size()) {
      auto n = tr.ReadPayload(e.content.data() + got, e.content.size() - got);
      EXPECT_TRUE(n && *n > 0);
      if (!n || *n == 0) break;
      got += *n;
    }
    out.push_back(std::move(e));
  }
  return out;
}

// Every regular file's chunks decode from the blob and verify; entries equal the source tar's
// (same paths, in order if `same_order`, same metadata and content).
void ExpectIndexMatchesTar(const std::vector<Entry>& entries, const std::string& blob,
                           const std::string& tar, bool same_order, bool check_xattrs = true) {
  std::vector<SourceEntry> src = ReadSourceTar(tar);
  ASSERT_FALSE(src.empty());
  std::map<std::string, const SourceEntry*> by_path;
  std::vector<std::string> src_paths, idx_paths;
  for (const auto& s : src) {
    by_path[s.entry.path] = &s;
    src_paths.push_back(s.entry.path);
  }
  for (const Entry& e : entries) idx_paths.push_back(e.path);
  if (!same_order) {
    std::sort(src_paths.begin(), src_paths.end());
    std::sort(idx_paths.begin(), idx_paths.end());
  }
  EXPECT_EQ(idx_paths, src_paths);
  for (const Entry& e : entries) {
    auto it = by_path.find(e.path);
    ASSERT_NE(it, by_path.end()) << e.path;
    const Entry& want = it->second->entry;
    EXPECT_EQ(e.type, want.type) << e.path;
    EXPECT_EQ(e.mode, want.mode) << e.path;
    EXPECT_EQ(e.uid, want.uid) << e.path;
    EXPECT_EQ(e.gid, want.gid) << e.path;
    EXPECT_EQ(e.mtime_sec, want.mtime_sec) << e.path;
    EXPECT_EQ(e.link_name, want.link_name) << e.path;
    EXPECT_EQ(e.dev_major, want.dev_major) << e.path;
    EXPECT_EQ(e.dev_minor, want.dev_minor) << e.path;
    if (check_xattrs) {
      EXPECT_EQ(e.xattrs, want.xattrs) << e.path;
    }
    if (e.type != EntryType::kRegular) continue;
    const std::string& content = it->second->content;
    EXPECT_EQ(e.size, content.size()) << e.path;
    EXPECT_EQ(e.digest, Digest::Of(content)) << e.path;
    std::string rebuilt;
    for (const Chunk& c : e.chunks) {
      ASSERT_LE(c.blob_offset + c.blob_length, blob.size()) << e.path;
      auto data = DecodeAndVerifyChunkBytes(
          c, std::string_view(blob).substr(c.blob_offset, c.blob_length), 64 << 20);
      ASSERT_TRUE(data) << e.path << ": " << data.error().message();
      rebuilt += *data;
    }
    EXPECT_TRUE(rebuilt == content) << e.path << ": chunks do not rebuild the content";
  }
}

// ---- real ctr-remote 0.12 output --------------------------------------------------------------

// One private containerd for the suite; the source layer is converted three ways.
class CtrRemoteEstargz : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::MakeTempDir());
    const std::string& d = *dir_;
    // Every entry type, a long name (> 100 bytes, pax path), an xattr (pax SCHILY.xattr), owners,
    // setuid, a multi-chunk file, zeros, an empty file. Whole-second mtimes: eStargz TOCs round
    // modtime to seconds.
    const std::string long_dir = "long/" + std::string(120, 'd');
    int rc =
        Sh("cd " + d + " && mkdir -p src/dir/sub src/" + long_dir +
           " && printf 'hi\\n' > src/dir/small && head -c 300000 /dev/urandom > src/dir/big"
           " && head -c 70000 /dev/zero > src/zeros && : > src/empty"
           " && printf x > src/" +
           long_dir + "/" + std::string(100, 'f') +
           " && ln -s small src/dir/sym && ln src/dir/small src/dir/zhard && mkfifo src/dir/fifo"
           " && mknod src/dir/null c 1 3 && mknod src/dir/loop b 7 0"
           " && printf suid > src/suid && chmod 4755 src/suid && chown 1234:5678 src/suid"
           " && python3 -c 'import os; os.setxattr(\"src/dir/small\", \"user.hoist\", b\"v\\x01\")'"
           " && find src -exec touch -h -d @1700000000 {} +"
           " && tar --format=pax --xattrs --numeric-owner --sort=name -C src -cf layer.tar ."
           " && printf '{\"path\":\"dir/small\"}\\n{\"path\":\"suid\"}\\n' > rec.json");
    if (rc != 0) {
      setup_error_ = new std::string("building the source layer failed");
      return;
    }
    tar_ = new std::string(Slurp(d + "/layer.tar"));
    auto cd = testing::PrivateContainerd::Start(d);
    if (!cd) {
      setup_error_ = new std::string(cd.error().message());
      return;
    }
    auto convert = [&](const char* name,
                       std::vector<std::string> flags) -> testing::ConvertedLayer* {
      auto r = (*cd)->Convert(d + "/layer.tar", name, flags);
      if (!r) {
        if (!setup_error_) setup_error_ = new std::string(r.error().message());
        return nullptr;
      }
      return new testing::ConvertedLayer(std::move(*r));
    };
    esgz_ = convert("esgz", {"--estargz", "--estargz-chunk-size", "65536"});
    prio_ = convert("prio", {"--estargz", "--estargz-record-in", d + "/rec.json"});
    zstd_ = convert("zstd", {"--zstdchunked", "--estargz-chunk-size", "65536"});
  }
  static void TearDownTestSuite() {
    if (dir_) Sh("rm -rf " + *dir_);
    delete dir_;
    delete tar_;
    delete esgz_;
    delete prio_;
    delete zstd_;
    delete setup_error_;
  }
  void SetUp() override { ASSERT_EQ(setup_error_, nullptr) << *setup_error_; }

  static Result<EstargzLayer> Load(const testing::ConvertedLayer& l, const EstargzOptions& o = {},
                                   std::vector<std::pair<uint64_t, uint64_t>>* log = nullptr) {
    EstargzAnnotations a;
    if (auto p = ParseEstargzAnnotations(l.annotations)) a = *p;
    return LoadEstargzLayer(MemoryRangeReader(l.blob, log), l.blob.size(), l.layer_digest, a, o);
  }

  static inline std::string* dir_ = nullptr;
  static inline std::string* tar_ = nullptr;
  static inline testing::ConvertedLayer* esgz_ = nullptr;
  static inline testing::ConvertedLayer* prio_ = nullptr;
  static inline testing::ConvertedLayer* zstd_ = nullptr;
  static inline std::string* setup_error_ = nullptr;
};

TEST_F(CtrRemoteEstargz, EveryChunkVerifiesAndEntriesEqualTheSourceTar) {
  EXPECT_EQ(esgz_->media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
  ASSERT_TRUE(esgz_->annotations.contains(kAnnotationStargzTocDigest));
  std::vector<std::pair<uint64_t, uint64_t>> reads;
  auto l = Load(*esgz_, {}, &reads);
  ASSERT_TRUE(l) << l.error().message();
  EXPECT_TRUE(l->toc_verified);
  EXPECT_EQ(l->footer.footer_size, 51u);
  EXPECT_EQ(l->toc_json_digest.str(), esgz_->annotations.at(kAnnotationStargzTocDigest));
  EXPECT_EQ(l->index.format, LayerFormat::kEstargz);
  EXPECT_EQ(l->index.layer_digest, esgz_->layer_digest);
  EXPECT_EQ(l->index.blob_size, esgz_->blob.size());
  // Footer and TOC member in one read of the blob's tail (blob_tail.h), or, when the TOC
  // starts before the tail, a second read of exactly the part of it the tail lacks.
  const uint64_t size = esgz_->blob.size();
  const uint64_t tail = TailGuess(size, 51);
  ASSERT_GE(reads.size(), 1u);
  EXPECT_EQ(reads[0], std::make_pair(size - tail, tail));
  if (l->footer.toc_offset >= size - tail) {
    EXPECT_EQ(reads.size(), 1u);
  } else {
    ASSERT_EQ(reads.size(), 2u);
    EXPECT_EQ(reads[1], std::make_pair(l->footer.toc_offset, size - tail - l->footer.toc_offset));
  }
  // The blob is plain tar+gzip: gunzipped, it is a tar whose entries we compare against.
  ExpectIndexMatchesTar(l->index.entries, esgz_->blob, *tar_, /*same_order=*/true);
  for (const Entry& e : l->index.entries) {
    EXPECT_FALSE(e.prefetch) << e.path;  // ctr-remote wrote .no.prefetch.landmark
    if (e.path == "dir/big") {
      ASSERT_EQ(e.chunks.size(), 5u);  // 300000 bytes in 64 KiB chunks
      for (const Chunk& c : e.chunks) EXPECT_EQ(c.encoding, ChunkEncoding::kGzipMember);
      EXPECT_EQ(e.chunks[4].file_offset, 4u * 65536);
      EXPECT_EQ(e.chunks[4].size, 300000u - 4 * 65536);
    }
    if (e.path == "dir/small") {
      ASSERT_EQ(e.xattrs.size(), 1u);
      EXPECT_EQ(e.xattrs[0].name, "user.hoist");
      EXPECT_EQ(e.xattrs[0].value, std::string("v\x01"));
    }
  }
  // The whole blob gunzips to the tar ctr-remote wrote (landmark + TOC entries included).
  auto whole = GunzipCapped(esgz_->blob, 64 << 20);
  ASSERT_TRUE(whole) << whole.error().message();
  EXPECT_NE(whole->find(".no.prefetch.landmark"), std::string::npos);
}

TEST_F(CtrRemoteEstargz, PrefetchLandmarkMarksPrioritizedFiles) {
  auto l = Load(*prio_);
  ASSERT_TRUE(l) << l.error().message();
  // Prioritized files are moved to the front (the tar order changes), then the landmark.
  ExpectIndexMatchesTar(l->index.entries, prio_->blob, *tar_, /*same_order=*/false);
  std::vector<std::string> marked;
  for (const Entry& e : l->index.entries)
    if (e.prefetch) marked.push_back(e.path);
  EXPECT_EQ(marked, (std::vector<std::string>{"dir/small", "suid"}));
  for (const Entry& e : l->index.entries) {
    EXPECT_NE(e.path, ".prefetch.landmark");
    EXPECT_NE(e.path, ".no.prefetch.landmark");
    EXPECT_NE(e.path, "stargz.index.json");
  }
}

// Issue 4 needs ctr-remote's zstd:chunked output too: it loads with index/zstd_chunked.h, every
// chunk verifies, and it carries no tar-split (v1 footer, no tarsplit-position, no
// tarSplitDigest).
TEST_F(CtrRemoteEstargz, CtrRemoteZstdChunkedLoadsAndHasNoTarSplit) {
  EXPECT_EQ(zstd_->media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
  auto a = ParseZstdChunkedAnnotations(zstd_->annotations);
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_FALSE(a->tar_split);
  EXPECT_FALSE(a->toc_digest.empty());
  EXPECT_FALSE(a->toc_json_digest.empty());
  ZstdChunkedAnnotations no_position = *a;  // read the footer too
  no_position.toc.reset();
  auto l = LoadZstdChunkedLayer(MemoryRangeReader(zstd_->blob), zstd_->blob.size(),
                                zstd_->layer_digest, no_position);
  ASSERT_TRUE(l) << l.error().message();
  EXPECT_EQ(l->footer.version, 1);
  EXPECT_FALSE(l->footer.tar_split);
  EXPECT_TRUE(l->tar_split_digest.empty());
  ExpectIndexMatchesTar(l->index.entries, zstd_->blob, *tar_, /*same_order=*/true);
}

TEST_F(CtrRemoteEstargz, TrustNeedsTheAnnotation) {
  testing::ConvertedLayer no_ann = *esgz_;
  no_ann.annotations.clear();
  EXPECT_EQ(ParseEstargzAnnotations(no_ann.annotations).error().code(), ENOENT);
  auto refused = Load(no_ann);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), EPERM);
  EXPECT_EQ(refused.error().message(),
            "eStargz layer " + esgz_->layer_digest.str() +
                " has no containerd.io/snapshot/stargz/toc.digest annotation; its TOC cannot be "
                "verified (mount it as tar+gzip)");
  auto trusted = Load(no_ann, {.trust_unverified_toc = true});
  ASSERT_TRUE(trusted) << trusted.error().message();
  EXPECT_FALSE(trusted->toc_verified);
  EXPECT_EQ(trusted->toc_json_digest.str(), esgz_->annotations.at(kAnnotationStargzTocDigest));

  testing::ConvertedLayer wrong = *esgz_;
  const Digest other = Digest::Of("not the toc");
  wrong.annotations[kAnnotationStargzTocDigest] = other.str();
  auto mismatch = Load(wrong);
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error().code(), EIO);
  EXPECT_EQ(mismatch.error().message(), "eStargz TOC digest mismatch: got " +
                                            esgz_->annotations.at(kAnnotationStargzTocDigest) +
                                            ", want " + other.str());
  testing::ConvertedLayer bad = *esgz_;
  bad.annotations[kAnnotationStargzTocDigest] = "sha256:xyz";
  EXPECT_EQ(ParseEstargzAnnotations(bad.annotations).error().code(), EBADMSG);
}

TEST_F(CtrRemoteEstargz, LegacyFooterReadsTheSameToc) {
  auto modern = Load(*esgz_);
  ASSERT_TRUE(modern) << modern.error().message();
  testing::ConvertedLayer legacy = *esgz_;
  legacy.blob.resize(legacy.blob.size() - 51);
  legacy.blob += Footer47(modern->footer.toc_offset);
  auto l = Load(legacy);
  ASSERT_TRUE(l) << l.error().message();
  EXPECT_EQ(l->footer.footer_size, 47u);
  EXPECT_EQ(l->footer.toc_offset, modern->footer.toc_offset);
  ASSERT_EQ(l->index.entries.size(), modern->index.entries.size());
  for (size_t i = 0; i < l->index.entries.size(); ++i) {
    EXPECT_EQ(l->index.entries[i].path, modern->index.entries[i].path);
    ASSERT_EQ(l->index.entries[i].chunks.size(), modern->index.entries[i].chunks.size());
    for (size_t k = 0; k < l->index.entries[i].chunks.size(); ++k)
      EXPECT_EQ(l->index.entries[i].chunks[k].blob_length,
                modern->index.entries[i].chunks[k].blob_length);
  }
  // The real footer parses the same as the hand-made one.
  EXPECT_EQ(esgz_->blob.substr(esgz_->blob.size() - 51), Footer51(modern->footer.toc_offset));
}

TEST_F(CtrRemoteEstargz, CorruptChunkIsCaught) {
  auto l = Load(*esgz_);
  ASSERT_TRUE(l) << l.error().message();
  for (const Entry& e : l->index.entries) {
    if (e.path != "dir/big") continue;
    const Chunk& c = e.chunks[2];
    std::string bytes = esgz_->blob.substr(c.blob_offset, c.blob_length);
    Chunk lying = c;
    lying.digest = e.chunks[1].digest;
    auto r = DecodeAndVerifyChunkBytes(lying, bytes, 64 << 20);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EIO);
    bytes[bytes.size() / 2] ^= 0x55;
    auto r2 = DecodeAndVerifyChunkBytes(c, bytes, 64 << 20);
    ASSERT_FALSE(r2);
    EXPECT_TRUE(r2.error().code() == EBADMSG || r2.error().code() == EIO) << r2.error().message();
    return;
  }
  FAIL() << "dir/big not found";
}

// ---- footers ----------------------------------------------------------------------------------

TEST(EstargzFooter, BothForms) {
  auto f = ParseEstargzFooter(Footer51(0x496d1), 400000);
  ASSERT_TRUE(f) << f.error().message();
  EXPECT_EQ(f->footer_size, 51u);
  EXPECT_EQ(f->toc_offset, 0x496d1u);
  auto g = ParseEstargzFooter(Footer47(1234), 5000);
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(g->footer_size, 47u);
  EXPECT_EQ(g->toc_offset, 1234u);
  // A legacy footer read through a 51-byte tail.
  auto h = ParseEstargzFooter("abcd" + Footer47(1234), 5000);
  ASSERT_TRUE(h) << h.error().message();
  EXPECT_EQ(h->footer_size, 47u);
  // Upper-case hex is accepted (Go's ParseInt accepts it).
  std::string upper = Footer51(0xabc);
  for (size_t i = 16; i < 32; ++i) upper[i] = static_cast<char>(std::toupper(upper[i]));
  ASSERT_TRUE(ParseEstargzFooter(upper, 5000));
  EXPECT_EQ(ParseEstargzFooter(upper, 5000)->toc_offset, 0xabcu);
}

TEST(EstargzFooter, RejectsBadFooters) {
  const std::string want_msg =
      "no eStargz footer (51- or 47-byte empty gzip member with a STARGZ extra field) at the end "
      "of the blob";
  auto expect_bad = [&](std::string tail, uint64_t blob_size, int code, const std::string& msg) {
    auto f = ParseEstargzFooter(tail, blob_size);
    ASSERT_FALSE(f);
    EXPECT_EQ(f.error().code(), code);
    EXPECT_EQ(f.error().message(), msg);
  };
  expect_bad(std::string(51, '\0'), 100, EBADMSG, want_msg);
  std::string s = Footer51(10);
  s[0] = 0x1e;
  expect_bad(s, 100, EBADMSG, want_msg);
  s = Footer51(10);
  s[32] = 'X';  // STARGZ -> XTARGZ
  expect_bad(s, 100, EBADMSG, want_msg);
  s = Footer51(10);
  s[20] = 'g';  // not hex
  expect_bad(s, 100, EBADMSG, want_msg);
  s = Footer51(10);
  s[3] = 0x0c;  // FEXTRA|FNAME: the layout would shift
  expect_bad(s, 100, EBADMSG, want_msg);
  s = Footer51(10);
  s[45] = 1;  // CRC32 of the (empty) body is wrong
  expect_bad(s, 100, EBADMSG, want_msg);
  s = Footer51(10);
  s[38] = 0x00;  // not a final stored block: the member does not end where it should
  expect_bad(s, 100, EBADMSG, want_msg);
  expect_bad(Footer51(10).substr(0, 50), 100, EBADMSG, want_msg);
  // The TOC must lie before the footer.
  expect_bad(Footer51(49), 100, EBADMSG,
             "eStargz footer: TOC offset 49 is not before the footer at 49");
  expect_bad(Footer51(0xffffffffffffffff), 100, EBADMSG,
             "eStargz footer: TOC offset 18446744073709551615 is not before the footer at 49");
  EXPECT_EQ(ParseEstargzFooter(Footer51(1), 10).error().code(), EINVAL);
}

// ---- hostile TOCs (synthetic blobs) -----------------------------------------------------------

constexpr char kSmallToc[] =
    R"({"version":1,"entries":[{"name":"a","type":"reg","size":5,"offset":0,)"
    R"("digest":"sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}]})";

TEST(EstargzToc, SyntheticLayerLoads) {
  std::string data = Gzip(TarMemberBytes("a", "hello"));
  Synthetic s = MakeBlob(data, TocMember(kSmallToc));
  auto l = LoadEstargzLayer(MemoryRangeReader(s.blob), s.blob.size(), Digest::Of(s.blob),
                            {Digest::Of(kSmallToc)});
  ASSERT_TRUE(l) << l.error().message();
  ASSERT_EQ(l->index.entries.size(), 1u);
  const Entry& e = l->index.entries[0];
  ASSERT_EQ(e.chunks.size(), 1u);
  EXPECT_EQ(e.chunks[0].blob_offset, 0u);
  EXPECT_EQ(e.chunks[0].blob_length, data.size());
  EXPECT_EQ(e.chunks[0].inner_offset, 0u);
  // The member starts with the tar header: an innerOffset of 512 finds the payload.
  Chunk c = e.chunks[0];
  c.inner_offset = 512;
  auto bytes = DecodeAndVerifyChunkBytes(c, data, 1 << 20);
  ASSERT_TRUE(bytes) << bytes.error().message();
  EXPECT_EQ(*bytes, "hello");
}

TEST(EstargzToc, RejectsHostileTocs) {
  const Digest d = Digest::Of(kSmallToc);
  auto load = [&](const Synthetic& s, const Digest& digest, EstargzLimits limits = {}) {
    return LoadEstargzLayer(MemoryRangeReader(s.blob), s.blob.size(), Digest::Of(s.blob), {digest},
                            {.limits = limits});
  };
  std::string data = Gzip(TarMemberBytes("a", "hello"));
  // A TOC member that is not stargz.index.json.
  auto r = load(MakeBlob(data, TocMember(kSmallToc, "other.json")), d);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EBADMSG);
  EXPECT_EQ(r.error().message(),
            "eStargz TOC member holds \"other.json\", not the regular file stargz.index.json");
  // A directory named stargz.index.json.
  r = load(
      MakeBlob(data, Gzip(TarMemberBytes("stargz.index.json", "", '5') + std::string(1024, '\0'))),
      d);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EBADMSG);
  // An empty tar.
  r = load(MakeBlob(data, Gzip(std::string(1024, '\0'))), d);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "eStargz TOC member holds no tar entry");
  // Not gzip.
  r = load(MakeBlob(data, "this is not gzip at all"), d);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EBADMSG);
  EXPECT_EQ(r.error().message(),
            "eStargz TOC member: gzip data is corrupt: incorrect header check");
  // Truncated gzip.
  std::string member = TocMember(kSmallToc);
  r = load(MakeBlob(data, member.substr(0, member.size() - 10)), d);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "eStargz TOC member: gzip data is truncated (incomplete member)");
  // Garbage after the member.
  r = load(MakeBlob(data, member + "junk"), d);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EBADMSG);
  // A gzip bomb: 64 MiB of zeros in the TOC entry against a 1 MiB cap.
  std::string bomb = Gzip(TarMemberBytes(kEstargzTocName, std::string(64 << 20, ' ')));
  r = load(MakeBlob(data, bomb), d, {.max_toc_size = 1 << 20});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EFBIG);
  EXPECT_EQ(r.error().message(),
            "eStargz TOC member: gzip data decompresses to more than 1048576 bytes");
  // A compressed TOC over its cap is not even fetched.
  r = load(MakeBlob(data, member), d, {.max_toc_compressed = 10});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EFBIG);
  // A chunk pointing past the TOC offset.
  const std::string past =
      R"({"version":1,"entries":[{"name":"a","type":"reg","size":5,"offset":999,)"
      R"("digest":"sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}]})";
  r = load(MakeBlob(data, TocMember(past)), Digest::Of(past));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EBADMSG);
  // Bad JSON.
  r = load(MakeBlob(data, TocMember("{")), Digest::Of("{"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EBADMSG);
  // A short read from the range reader.
  Synthetic ok = MakeBlob(data, member);
  auto short_read = [&](uint64_t off, uint64_t len) -> Result<std::string> {
    return ok.blob.substr(off, len / 2);
  };
  r = LoadEstargzLayer(short_read, ok.blob.size(), Digest::Of(ok.blob), {d});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EIO);
  EXPECT_EQ(r.error().message(), "reading the eStargz footer: short read of the blob's last bytes");
  // Errors of the reader pass through with context.
  auto failing = [](uint64_t, uint64_t) -> Result<std::string> {
    return Fail(ECONNRESET, "connection reset");
  };
  r = LoadEstargzLayer(failing, ok.blob.size(), Digest::Of(ok.blob), {d});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ECONNRESET);
  EXPECT_EQ(r.error().message(), "reading the eStargz footer: connection reset");
  // Too small for a footer.
  r = LoadEstargzLayer(MemoryRangeReader(ok.blob), 46, Digest::Of(ok.blob), {d});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EBADMSG);
}

TEST(EstargzGunzip, CapsAndConcatenation) {
  auto two = GunzipCapped(Gzip("abc") + Gzip("def"), 6);
  ASSERT_TRUE(two) << two.error().message();
  EXPECT_EQ(*two, "abcdef");
  auto over = GunzipCapped(Gzip("abc") + Gzip("def"), 5);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code(), EFBIG);
  EXPECT_EQ(GunzipCapped("", 5).error().code(), EBADMSG);
  auto empty = GunzipCapped(Gzip(""), 0);
  ASSERT_TRUE(empty) << empty.error().message();
  EXPECT_EQ(*empty, "");
}

}  // namespace
}  // namespace hoist
