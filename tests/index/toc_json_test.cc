// ParseTocJson: the streaming (SAX) TOC reader. Exact records for a valid TOC, and the exact
// one-line error for each kind of bad field, so a hostile TOC is named precisely.
#include "index/toc_json.h"

#include <gtest/gtest.h>

#include <string>

namespace hoist {
namespace {

std::string Toc(const std::string& entries, const std::string& extra = "") {
  return R"({"version":1,)" + extra + R"("entries":[)" + entries + "]}";
}

std::string ErrorOf(const std::string& json, const TocLimits& limits = {}) {
  Result<TocJson> r = ParseTocJson(json, limits);
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
  Result<TocJson> toc = ParseTocJson(json);
  ASSERT_TRUE(toc) << toc.error().message();
  EXPECT_EQ(toc->version, 1);
  EXPECT_EQ(toc->tar_split_digest.str(), split);
  ASSERT_EQ(toc->records.size(), 7u);
  const TocRecord& dir = toc->records[0];
  EXPECT_EQ(dir.entry.path, "etc");
  EXPECT_EQ(dir.raw_name, "./etc/");
  EXPECT_EQ(dir.entry.type, EntryType::kDirectory);
  EXPECT_EQ(dir.entry.mode, 0755u);
  EXPECT_EQ(dir.entry.mtime_sec, 1704164645);
  const TocRecord& reg = toc->records[1];
  EXPECT_EQ(reg.entry.path, "etc/passwd");
  EXPECT_EQ(reg.entry.type, EntryType::kRegular);
  EXPECT_EQ(reg.entry.mode, 0644u);
  EXPECT_EQ(reg.entry.uid, 1000u);
  EXPECT_EQ(reg.entry.gid, 1001u);
  EXPECT_EQ(reg.entry.size, 12u);
  EXPECT_EQ(reg.entry.mtime_sec, 1704164645 - 3600);
  EXPECT_EQ(reg.entry.mtime_nsec, 500000000u);
  EXPECT_EQ(reg.entry.digest.str(), d1);
  EXPECT_EQ(reg.chunk_digest.str(), d2);
  EXPECT_TRUE(reg.has_offset);
  EXPECT_EQ(reg.offset, 100u);
  EXPECT_TRUE(reg.has_end_offset);
  EXPECT_EQ(reg.end_offset, 150u);
  EXPECT_EQ(reg.chunk_size, 6u);
  EXPECT_TRUE(reg.entry.prefetch);
  ASSERT_EQ(reg.entry.xattrs.size(), 2u);
  EXPECT_EQ(reg.entry.xattrs[0], (Xattr{"user.a", "1"}));
  EXPECT_EQ(reg.entry.xattrs[1], (Xattr{"user.b", "2"}));
  const TocRecord& chunk = toc->records[2];
  EXPECT_TRUE(chunk.is_chunk);
  EXPECT_TRUE(chunk.zeros);
  EXPECT_EQ(chunk.chunk_offset, 6u);
  EXPECT_EQ(chunk.offset, 150u);
  EXPECT_EQ(toc->records[3].entry.type, EntryType::kSymlink);
  EXPECT_EQ(toc->records[3].entry.link_name, "/bin/busybox");
  EXPECT_EQ(toc->records[4].entry.type, EntryType::kHardlink);
  EXPECT_EQ(toc->records[4].entry.link_name, "etc/passwd");
  EXPECT_EQ(toc->records[5].entry.type, EntryType::kCharDevice);
  EXPECT_EQ(toc->records[5].entry.dev_major, 1u);
  EXPECT_EQ(toc->records[5].entry.dev_minor, 3u);
  EXPECT_EQ(toc->records[6].entry.type, EntryType::kFifo);
  EXPECT_FALSE(toc->records[6].has_offset);
}

TEST(TocJsonTest, FirstOfARepeatedKeyCounts) {
  Result<TocJson> toc =
      ParseTocJson(Toc(R"({"type":"reg","name":"a","mode":420,"mode":{"x":1},"name":"b"})"));
  ASSERT_TRUE(toc) << toc.error().message();
  ASSERT_EQ(toc->records.size(), 1u);
  EXPECT_EQ(toc->records[0].entry.path, "a");
  EXPECT_EQ(toc->records[0].entry.mode, 0644u);
}

TEST(TocJsonTest, VersionTwoIsAccepted) {
  Result<TocJson> toc = ParseTocJson(R"({"entries":[],"version":2})");
  ASSERT_TRUE(toc) << toc.error().message();
  EXPECT_EQ(toc->version, 2);
  EXPECT_TRUE(toc->records.empty());
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

TEST(TocJsonTest, EntryCapIsEfbig) {
  TocLimits limits;
  limits.max_entries = 2;
  const std::string e = R"({"type":"dir","name":"d"})";
  EXPECT_EQ(ErrorOf(Toc(e + "," + e), limits), "parsed");
  EXPECT_EQ(ErrorOf(Toc(e + "," + e + "," + e), limits),
            "27 TOC has more than 2 entries, over the cap");
}

}  // namespace
}  // namespace hoist
