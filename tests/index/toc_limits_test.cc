// The TOC reader's string caps (toc_json.h, FORMATS.md "TOC string caps"): each field's cap is
// named in a one-line error, a string far past every cap stops the parse after a bounded number
// of pieces of text (so memory stays bounded however long the string is), and the whole-text
// readers of the formats (zstd:chunked with ctr-remote's toc.digest, eStargz) stream too.
#include <gtest/gtest.h>
#include <zstd.h>

#include <string>

#include "index/estargz.h"
#include "index/toc_json.h"
#include "index/zstd_chunked.h"
#include "tests/index/toc_bomb_util.h"

namespace hoist {
namespace {

constexpr uint64_t kDataEnd = 1000;

std::string ErrorOf(const std::string& json) {
  Result<TocIndex> r = ParseToc(json, TocFormat::kZstdChunked, kDataEnd);
  if (r) return "parsed";
  return std::to_string(r.error().code()) + " " + r.error().message();
}

std::string Entry1(const std::string& fields) {
  return R"({"version":1,"entries":[{"type":"reg","name":"a")" + fields + "}]}";
}

// A name of `n` bytes made of 200-byte components (so NAME_MAX does not reject it first).
std::string LongName(size_t n) {
  std::string s;
  while (s.size() < n) s += (s.size() % 201 == 200) ? '/' : 'x';
  return s;
}

TEST(TocLimitsTest, EachFieldCapIsNamed) {
  // At the cap: accepted.
  const std::string name4096 = LongName(4096);
  EXPECT_EQ(ErrorOf(R"({"version":1,"entries":[{"type":"dir","name":")" + name4096 + R"("}]})"),
            "parsed");
  EXPECT_EQ(
      ErrorOf(R"({"version":1,"entries":[{"type":"dir","name":")" + LongName(4097) + R"("}]})"),
      "74 TOC entry 0: name longer than 4096 bytes");
  EXPECT_EQ(ErrorOf(R"({"version":1,"entries":[{"type":"dir","name":"a"},{"type":"symlink",)"
                    R"("name":"b","linkName":")" +
                    std::string(4097, 'l') + R"("}]})"),
            "74 TOC entry 1: linkName longer than 4096 bytes");
  EXPECT_EQ(ErrorOf(Entry1(R"(,"digest":")" + std::string(257, 'd') + R"(")")),
            "74 TOC entry 0: digest longer than 256 bytes");
  EXPECT_EQ(ErrorOf(Entry1(R"(,"chunkDigest":")" + std::string(257, 'd') + R"(")")),
            "74 TOC entry 0: chunkDigest longer than 256 bytes");
  EXPECT_EQ(ErrorOf(Entry1(R"(,"modtime":")" + std::string(65, '1') + R"(")")),
            "74 TOC entry 0: modtime longer than 64 bytes");
  EXPECT_EQ(ErrorOf(Entry1(R"(,")" + std::string(256, 'k') + R"(":1)")),
            "74 TOC entry 0: a key longer than 255 bytes");
  EXPECT_EQ(ErrorOf(Entry1(R"(,"x-unknown":")" + std::string(4097, 'u') + R"(")")),
            "74 TOC entry 0: a value longer than 4096 bytes");
  EXPECT_EQ(
      ErrorOf(R"({"version":1,"tarSplitDigest":")" + std::string(300, 's') + R"(","entries":[]})"),
      "74 TOC: tarSplitDigest longer than 256 bytes");
  // xattr values: 64 KiB in base64 passes; one byte more is named; 1 MiB per entry in all.
  const std::string b64_64k = std::string(87'384, 'A');
  EXPECT_EQ(ErrorOf(Entry1(R"(,"xattrs":{"user.a":")" + b64_64k + R"("})")), "parsed");
  EXPECT_EQ(ErrorOf(Entry1(R"(,"xattrs":{"user.a":")" + b64_64k + R"(A"})")),
            "74 TOC entry 0: xattr value longer than 87384 bytes");
  std::string many = R"(,"xattrs":{)";
  for (int i = 0; i < 13; ++i) {
    many +=
        (i ? "," : "") + std::string(R"("user.)") + std::to_string(i) + R"(":")" + b64_64k + "\"";
  }
  EXPECT_EQ(ErrorOf(Entry1(many + "}")),
            "74 TOC entry 0: xattrs (in all) longer than 1048576 bytes");
}

// An endless string: the parse stops after a few pieces, whatever the source would still give.
size_t PiecesPulledBeforeStop(const std::string& prefix, std::string* error) {
  const std::string filler(64 << 10, 'a');
  size_t pulled = 0;
  TocTextSource next = [&]() -> Result<std::string_view> {
    ++pulled;
    if (pulled == 1) return std::string_view(prefix);
    return std::string_view(filler);
  };
  Result<TocIndex> r = ParseTocStream(next, TocFormat::kZstdChunked, kDataEnd);
  *error = r ? "parsed" : r.error().message();
  return pulled;
}

TEST(TocLimitsTest, AnEndlessStringStopsTheParseWithinAFewPieces) {
  std::string error;
  // Ceiling 256 KiB: the buffer grows by halves, so it passes the ceiling within ~6 pieces of
  // 64 KiB; 16 is a generous bound that an unbounded reader (which pulls forever) cannot meet.
  size_t pulled =
      PiecesPulledBeforeStop(R"({"version":1,"entries":[{"type":"reg","name":")", &error);
  EXPECT_LE(pulled, 16u);
  EXPECT_EQ(error, "TOC entry 0: name longer than 4096 bytes");
  pulled = PiecesPulledBeforeStop(R"({"version":1,"entries":[{"type":"reg","xattrs":{"user.x":")",
                                  &error);
  EXPECT_LE(pulled, 16u);
  EXPECT_EQ(error, "TOC entry 0: xattr value longer than 87384 bytes");
  pulled = PiecesPulledBeforeStop(R"({"version":1,"entries":[{")", &error);
  EXPECT_LE(pulled, 16u);
  EXPECT_EQ(error, "TOC entry 0: a key longer than 255 bytes");
  pulled = PiecesPulledBeforeStop(R"({"version":1,"x":")", &error);
  EXPECT_LE(pulled, 16u);
  EXPECT_EQ(error, "TOC: a value longer than 4096 bytes");
}

// ~200 MB of name, compressed to a few hundred KB, through each format's reader.
constexpr size_t kBombName = 200u << 20;

using testing::BombTocJson;
using testing::EstargzTocMember;

TEST(TocLimitsTest, ZstdChunkedStringBombIsRefusedWithEitherDigest) {
  const std::string json = BombTocJson(kBombName);
  std::string compressed(ZSTD_compressBound(json.size()), '\0');
  const size_t n = ZSTD_compress(compressed.data(), compressed.size(), json.data(), json.size(), 3);
  ASSERT_FALSE(ZSTD_isError(n));
  compressed.resize(n);
  ZstdChunkedLimits limits;
  // manifest-checksum (digest of the compressed bytes), then ctr-remote's toc.digest (of the
  // text, hashed as it streams).
  auto r = ParseZstdChunkedToc(compressed, Digest::Of(compressed), Digest(), json.size(), kDataEnd,
                               limits);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), "TOC entry 0: name longer than 4096 bytes");
  r = ParseZstdChunkedToc(compressed, Digest(), Digest::Of(json), json.size(), kDataEnd, limits);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), "TOC entry 0: name longer than 4096 bytes");
  // The text digest is still checked (all of the text is hashed even after the parse stopped).
  r = ParseZstdChunkedToc(compressed, Digest(), Digest::Of("other"), json.size(), kDataEnd, limits);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("toc.digest) mismatch"), std::string::npos)
      << r.error().message();
}

TEST(TocLimitsTest, EstargzStringBombIsRefusedAndItsDigestStillChecked) {
  const std::string json = BombTocJson(kBombName);
  const std::string member = EstargzTocMember(json);
  auto r = ParseEstargzToc(member, Digest::Of(json), kDataEnd);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), "TOC entry 0: name longer than 4096 bytes");
  r = ParseEstargzToc(member, Digest::Of("other"), kDataEnd);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("eStargz TOC digest mismatch"), std::string::npos)
      << r.error().message();
  // A small valid TOC still parses through the streamed path, with its digest reported.
  const std::string ok = R"({"version":1,"entries":[{"type":"dir","name":"etc/"}]})";
  Digest got;
  auto entries = ParseEstargzToc(EstargzTocMember(ok), Digest::Of(ok), kDataEnd, {}, &got);
  ASSERT_TRUE(entries.has_value()) << entries.error().message();
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ((*entries)[0].path, "etc");
  EXPECT_EQ(got, Digest::Of(ok));
}

}  // namespace
}  // namespace hoist
