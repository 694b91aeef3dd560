// ParseToc: the one-pass streaming (SAX) TOC reader. Exact entries and chunks for a valid TOC,
// and the exact one-line error for each kind of bad field, so a hostile TOC is named precisely.
// (Chunk-range rules and lying TOCs: zstd_chunked_test.cc and estargz_test.cc.)
#include "index/toc_json.h"

#include <gtest/gtest.h>

#include <string>

namespace hoist {
namespace {

std::string Toc(const std::string& entries, const std::string& extra = "") {
  return R"({"version":1,)" + extra + R"("entries":[)" + entries + "]}";
}

constexpr uint64_t kDataEnd = 1000;

Result<TocIndex> Parse(const std::string& json, const TocLimits& limits = {}) {
  return ParseToc(json, TocFormat::kZstdChunked, kDataEnd, limits);
}

std::string ErrorOf(const std::string& json, const TocLimits& limits = {}) {
  Result<TocIndex> r = Parse(json, limits);
  if (r) return "parsed";
  return std::to_string(r.error().code()) + " " + r.error().message();
}

TEST(TocJsonTest, ParsesEveryField) {
  const std::string d1 = Digest::Of("one").str();
  const std::string d2 = Digest::Of("two").str();
  const std::string split = Digest::Of("split").str();
  const std::string json =
      R"({"version":1,"unknown":{"a":[1,{"b":null}]},"entries":[)"
      R"({"type":"dir","name":"./etc/","mode":493,"uid":0,"gid":0,"modtime":"2024-01-02T03:04:05Z"},)"
      R"({"type":"reg","name":"etc/passwd","mode":420,"uid":1000,"gid":1001,"size":12,)"
      R"("modtime":"2024-01-02T03:04:05.5+01:00","digest":")" +
      d1 + R"(","offset":100,"endOffset":150,"chunkSize":6,"chunkDigest":")" + d2 +
      R"(","xattrs":{"user.b":"Mg==","user.a":"MQ=="},"hoist.prefetch":true,"x-extra":[1,2]},)"
      R"({"type":"chunk","name":"etc/passwd","offset":150,"endOffset":170,"chunkOffset":6,)"
      R"("chunkSize":6,"chunkType":"zeros"},)"
      R"({"type":"symlink","name":"bin/sh","linkName":"/bin/busybox"},)"
      R"({"type":"hardlink","name":"etc/group","linkName":"./etc/passwd"},)"
      R"({"type":"char","name":"dev/null","devMajor":1,"devMinor":3,"mode":438},)"
      R"({"type":"fifo","name":"run/p"}],"tarSplitDigest":")" +
      split + R"("})";
  Result<TocIndex> toc = Parse(json);
  ASSERT_TRUE(toc) << toc.error().message();
  EXPECT_EQ(toc->version, 1);
  EXPECT_EQ(toc->tar_split_digest.str(), split);
  EXPECT_FALSE(toc->stargz_layout);    // it has endOffset
  ASSERT_EQ(toc->entries.size(), 6u);  // the "chunk" record is the file's second chunk
  const Entry& dir = toc->entries[0];
  EXPECT_EQ(dir.path, "etc");
  EXPECT_EQ(dir.type, EntryType::kDirectory);
  EXPECT_EQ(dir.mode, 0755u);
  EXPECT_EQ(dir.mtime_sec, 1704164645);
  EXPECT_TRUE(dir.chunks.empty());
  const Entry& reg = toc->entries[1];
  EXPECT_EQ(reg.path, "etc/passwd");
  EXPECT_EQ(reg.type, EntryType::kRegular);
  EXPECT_EQ(reg.mode, 0644u);
  EXPECT_EQ(reg.uid, 1000u);
  EXPECT_EQ(reg.gid, 1001u);
  EXPECT_EQ(reg.size, 12u);
  EXPECT_EQ(reg.mtime_sec, 1704164645 - 3600);
  EXPECT_EQ(reg.mtime_nsec, 500000000u);
  EXPECT_EQ(reg.digest.str(), d1);
  EXPECT_TRUE(reg.prefetch);
  ASSERT_EQ(reg.xattrs.size(), 2u);
  EXPECT_EQ(reg.xattrs[0], (Xattr{"user.a", "1"}));
  EXPECT_EQ(reg.xattrs[1], (Xattr{"user.b", "2"}));
  ASSERT_EQ(reg.chunks.size(), 2u);
  const Chunk& first = reg.chunks[0];
  EXPECT_EQ(first.file_offset, 0u);
  EXPECT_EQ(first.size, 6u);
  EXPECT_EQ(first.blob_offset, 100u);
  EXPECT_EQ(first.blob_length, 50u);  // up to the next record's offset
  EXPECT_EQ(first.encoding, ChunkEncoding::kZstdFrame);
  EXPECT_EQ(first.digest.str(), d2);
  const Chunk& zeros = reg.chunks[1];
  EXPECT_EQ(zeros.file_offset, 6u);
  EXPECT_EQ(zeros.size, 6u);
  EXPECT_EQ(zeros.encoding, ChunkEncoding::kZeros);
  EXPECT_EQ(toc->entries[2].type, EntryType::kSymlink);
  EXPECT_EQ(toc->entries[2].link_name, "/bin/busybox");
  EXPECT_EQ(toc->entries[3].type, EntryType::kHardlink);
  EXPECT_EQ(toc->entries[3].link_name, "etc/passwd");
  EXPECT_EQ(toc->entries[4].type, EntryType::kCharDevice);
  EXPECT_EQ(toc->entries[4].dev_major, 1u);
  EXPECT_EQ(toc->entries[4].dev_minor, 3u);
  EXPECT_EQ(toc->entries[5].type, EntryType::kFifo);
  EXPECT_EQ(toc->entries[5].size, 0u);
}

TEST(TocJsonTest, FirstOfARepeatedKeyCounts) {
  Result<TocIndex> toc =
      Parse(Toc(R"({"type":"reg","name":"a","mode":420,"mode":{"x":1},"name":"b"})"));
  ASSERT_TRUE(toc) << toc.error().message();
  ASSERT_EQ(toc->entries.size(), 1u);
  EXPECT_EQ(toc->entries[0].path, "a");
  EXPECT_EQ(toc->entries[0].mode, 0644u);
}

TEST(TocJsonTest, VersionTwoIsAccepted) {
  Result<TocIndex> toc = Parse(R"({"entries":[],"version":2})");
  ASSERT_TRUE(toc) << toc.error().message();
  EXPECT_EQ(toc->version, 2);
  EXPECT_TRUE(toc->entries.empty());
}

TEST(TocJsonTest, BadDocumentsAreNamed) {
  EXPECT_EQ(ErrorOf("[]"), "74 TOC is not a JSON object");
  EXPECT_EQ(ErrorOf("7"), "74 TOC is not a JSON object");
  EXPECT_EQ(ErrorOf(R"({"entries":[]})"), "74 TOC version is missing or not 1");
  EXPECT_EQ(ErrorOf(R"({"version":3,"entries":[]})"), "74 TOC version is missing or not 1");
  EXPECT_EQ(ErrorOf(R"({"version":"1","entries":[]})"), "74 TOC version is missing or not 1");
  EXPECT_EQ(ErrorOf(R"({"version":1})"), "74 TOC has no entries array");
  EXPECT_EQ(ErrorOf(R"({"version":1,"entries":{}})"), "74 TOC has no entries array");
  EXPECT_EQ(ErrorOf(R"({"version":1,"entries":3})"), "74 TOC has no entries array");
  EXPECT_EQ(ErrorOf(Toc("", R"("tarSplitDigest":5,)")), "74 TOC tarSplitDigest is not a string");
  EXPECT_EQ(ErrorOf(Toc("", R"("tarSplitDigest":"sha256:ab",)")),
            "74 TOC tarSplitDigest: invalid digest \"sha256:ab\" (want sha256:<64 hex digits>)");
  EXPECT_EQ(ErrorOf(R"({"version":1,"entries":[)"),
            "74 TOC is not valid JSON: Invalid value. at byte 24");
}

TEST(TocJsonTest, BadEntriesAreNamed) {
  EXPECT_EQ(ErrorOf(Toc(R"(1)")), "74 TOC entry 0: not an object");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"reg","name":"a"},[])")), "74 TOC entry 1: not an object");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"reg","name":7})")), "74 TOC entry 0: name is not a string");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"socket","name":"s"})")),
            "74 TOC entry 0 \"s\": unknown type \"socket\"");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"reg","name":"a","mode":-1})")),
            "74 TOC entry 0 \"a\": mode is not a non-negative integer");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"reg","name":"a","size":1.5})")),
            "74 TOC entry 0 \"a\": size is not a non-negative integer");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"reg","name":"a","offset":[1]})")),
            "74 TOC entry 0 \"a\": offset is not a non-negative integer");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"reg","name":"a","offset":9223372036854775807})")),
            "74 TOC entry 0 \"a\": offset is out of range");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"reg","name":"a","uid":4294967296})")),
            "74 TOC entry 0 \"a\": uid out of range");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"reg","name":"a","linkName":false})")),
            "74 TOC entry 0 \"a\": linkName is not a string");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"reg","name":"a","xattrs":"x"})")),
            "74 TOC entry 0 \"a\": xattrs is not an object");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"reg","name":"a","xattrs":{"user.x":1}})")),
            "74 TOC entry 0 \"a\": xattr value is not a string");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"reg","name":"a","xattrs":{"user.x":"!!"}})")),
            "74 TOC entry 0 \"a\": xattr value is not base64");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"reg","name":"a","hoist.prefetch":1})")),
            "74 TOC entry 0 \"a\": prefetch mark is not a bool");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"reg","name":"a","chunkType":"holes"})")),
            "74 TOC entry 0 \"a\": unknown chunkType");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"symlink","name":"l"})")),
            "74 TOC entry 0 \"l\": bad symlink target");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"reg","name":"../x"})")).substr(0, 21),
            "74 TOC entry 0 \"../x\"");
}

TEST(TocJsonTest, ChunkRecordsMustFollowTheirFile) {
  const std::string d = R"(,"digest":")" + Digest::Of("x").str() + "\"";
  const std::string cd = R"(,"chunkDigest":")" + Digest::Of("x").str() + "\"";
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"chunk","name":"c","offset":1})")),
            "74 TOC entry 0 \"c\": chunk entry without a preceding regular file");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"dir","name":"./d/"},{"type":"chunk","name":"d"})")),
            "74 TOC entry 0 \"./d/\": chunk entries after a non-regular entry");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"reg","name":"e"},{"type":"chunk","name":"e","offset":1})")),
            "74 TOC entry 0 \"e\": chunk entries for an empty file");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"reg","name":"f","size":4,"offset":1)" + d +
                        R"(},{"type":"chunk","name":"g","offset":3})")),
            "74 TOC entry 1 \"g\": chunk entry does not follow its file");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"reg","name":"f","size":4,"offset":1})")),
            "74 TOC entry 0 \"f\": chunk without a digest");
  EXPECT_EQ(
      ErrorOf(Toc(R"({"type":"reg","name":"f","size":4,"offset":1,"chunkOffset":2)" + d + "}")),
      "74 TOC entry 0 \"f\": first chunk does not start at 0");
  EXPECT_EQ(ErrorOf(Toc(R"({"type":"reg","name":"f","size":4,"offset":1,"chunkSize":2)" + cd +
                        R"(},{"type":"chunk","name":"f","offset":5,"chunkOffset":3,"chunkSize":1)" +
                        cd + "}")),
            "74 TOC entry 0 \"f\": chunks do not tile the file (gap or overlap at 2)");
  {
    // A repeated path is the merge rules' to decide (the last wins), not the reader's.
    auto dup = ParseToc(Toc(R"({"type":"reg","name":"f","size":4,"offset":1,"endOffset":5)" + d +
                            R"(},{"type":"reg","name":"./f","size":4,"offset":5)" + d + "}"),
                        TocFormat::kZstdChunked, 1000);
    ASSERT_TRUE(dup.has_value()) << dup.error().message();
    ASSERT_EQ(dup->entries.size(), 2u);
    EXPECT_EQ(dup->entries[0].path, "f");
    EXPECT_EQ(dup->entries[1].path, "f");
    EXPECT_EQ(dup->entries[1].chunks.at(0).blob_offset, 5u);
  }
  EXPECT_EQ(
      ErrorOf(Toc(R"({"type":"reg","name":"f","size":4,"offset":1,"endOffset":9)" + d +
                  R"(},{"type":"reg","name":"g","size":4,"offset":5,"endOffset":12)" + d + "}")),
      "74 TOC chunks of \"f\" and \"g\" overlap in the blob at 5");
  EXPECT_EQ(
      ErrorOf(Toc(R"({"type":"reg","name":"f","size":4,"offset":999,"endOffset":1001)" + d + "}")),
      "74 TOC entry 0 \"f\": chunk range [999, 1001) is empty or past the data end 1000");
}

// Without any endOffset (ctr-remote's zstd:chunked, and eStargz), a chunk ends at the next offset
// of any entry in the TOC, including entries that come after its file and entries with no data.
TEST(TocJsonTest, StargzLayoutChunksEndAtTheNextOffset) {
  const std::string d = R"(,"digest":")" + Digest::Of("x").str() + "\"";
  const std::string cd = R"(,"chunkDigest":")" + Digest::Of("x").str() + "\"";
  const std::string json =
      Toc(R"({"type":"reg","name":"a","size":8,"offset":10,"chunkSize":4)" + cd +
          R"(},{"type":"chunk","name":"a","offset":10,"innerOffset":300,"chunkOffset":4)" + cd +
          R"(},{"type":"dir","name":"d","offset":30},)" +
          R"({"type":"reg","name":"b","size":4,"offset":50)" + d + "}");
  for (TocFormat format : {TocFormat::kZstdChunked, TocFormat::kEstargz}) {
    Result<TocIndex> toc = ParseToc(json, format, kDataEnd);
    ASSERT_TRUE(toc) << toc.error().message();
    EXPECT_TRUE(toc->stargz_layout);
    const ChunkEncoding want = format == TocFormat::kEstargz ? ChunkEncoding::kGzipMember
                                                             : ChunkEncoding::kZstdFramePrefix;
    ASSERT_EQ(toc->entries.size(), 3u);
    const std::vector<Chunk>& a = toc->entries[0].chunks;
    ASSERT_EQ(a.size(), 2u);
    // Both chunks of "a" share a frame (or gzip member) that ends where the directory's starts.
    for (const Chunk& c : a) {
      EXPECT_EQ(c.blob_offset, 10u);
      EXPECT_EQ(c.blob_length, 20u);
      EXPECT_EQ(c.encoding, want);
    }
    EXPECT_EQ(a[0].inner_offset, 0u);
    EXPECT_EQ(a[1].inner_offset, 300u);
    EXPECT_EQ(a[1].file_offset, 4u);
    const Chunk& b = toc->entries[2].chunks.at(0);
    EXPECT_EQ(b.blob_offset, 50u);
    EXPECT_EQ(b.blob_length, kDataEnd - 50);
    EXPECT_EQ(b.encoding, want);
  }
}

TEST(TocJsonTest, EntryCapIsEfbig) {
  TocLimits limits;
  limits.max_entries = 2;
  const std::string a = R"({"type":"dir","name":"a"})", b = R"({"type":"dir","name":"b"})";
  EXPECT_EQ(ErrorOf(Toc(a + "," + b), limits), "parsed");
  EXPECT_EQ(ErrorOf(Toc(a + "," + b + "," + R"({"type":"dir","name":"c"})"), limits),
            "27 TOC has more than 2 entries, over the cap");
}

}  // namespace
}  // namespace hoist
