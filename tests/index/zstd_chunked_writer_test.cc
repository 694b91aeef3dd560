#include "index/zstd_chunked_writer.h"

#include <gtest/gtest.h>

#include <map>

#include "base/file_util.h"
#include "base/rfc3339.h"
#include "index/chunk_codec.h"
#include "index/tar_reader.h"
#include "index/tar_split.h"
#include "tests/index/format_test_util.h"

namespace hoist {
namespace {

using testing::Sh;
using testing::Slurp;

class WriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    ASSERT_EQ(
        Sh("cd " + dir_ + " && mkdir -p root/etc root/" + std::string(120, 'd') +
           " && printf hello > root/etc/hello && ln root/etc/hello root/etc/zhard"
           " && ln -s hello root/etc/link && mkfifo root/fifo && : > root/empty"
           " && head -c 3000000 /dev/urandom > root/big"
           " && (head -c 10000 /dev/urandom; head -c 200000 /dev/zero; head -c 777 /dev/urandom)"
           " > root/holey && head -c 5000 /dev/zero > root/allzero"
           " && touch -d '2021-02-03 04:05:06.5' root/etc/hello"
           " && tar -C root --format=posix --sort=name -cf l.tar ."),
        0);
    tar_ = Slurp(dir_ + "/l.tar");
  }
  void TearDown() override { Sh("rm -rf " + dir_); }

  Result<ZstdChunkedWriteResult> Write(const ZstdChunkedWriterOptions& opt) {
    blob_.clear();
    return WriteZstdChunked(
        MemoryReader(tar_),
        [this](std::string_view d) -> Status {
          blob_.append(d);
          return Ok();
        },
        opt);
  }

  std::string dir_, tar_, blob_;
};

TEST_F(WriterTest, ZstdDecompressesToTheExactTarAndTocMatches) {
  ZstdChunkedWriterOptions opt;
  opt.chunk_target = 64 << 10;
  opt.prefetch = {"etc/hello"};
  auto r = Write(opt);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->blob_size, blob_.size());
  EXPECT_EQ(r->blob_digest, Digest::Of(blob_));
  EXPECT_EQ(r->diff_id, Digest::Of(tar_));
  EXPECT_EQ(r->tar_size, tar_.size());
  {
    FILE* f = std::fopen((dir_ + "/blob").c_str(), "wb");
    std::fwrite(blob_.data(), 1, blob_.size(), f);
    std::fclose(f);
  }
  ASSERT_EQ(Sh("zstd -q -d -c " + dir_ + "/blob > " + dir_ + "/back.tar && cmp " + dir_ +
               "/back.tar " + dir_ + "/l.tar"),
            0);

  auto ann = ParseZstdChunkedAnnotations(r->annotations);
  ASSERT_TRUE(ann) << ann.error().message();
  auto read = [&](uint64_t off, uint64_t len) -> Result<std::string> {
    return blob_.substr(off, len);
  };
  auto layer = LoadZstdChunkedLayer(read, blob_.size(), r->blob_digest, *ann);
  ASSERT_TRUE(layer) << layer.error().message();
  EXPECT_EQ(layer->footer.version, 0);  // positions from the annotations: footer not read
  {
    ZstdChunkedAnnotations no_position = *ann;
    no_position.toc.reset();
    auto by_footer = LoadZstdChunkedLayer(read, blob_.size(), r->blob_digest, no_position);
    ASSERT_TRUE(by_footer) << by_footer.error().message();
    EXPECT_EQ(by_footer->footer.version, 2);
    ASSERT_TRUE(by_footer->footer.tar_split && layer->footer.tar_split);
    EXPECT_EQ(by_footer->footer.tar_split->offset, layer->footer.tar_split->offset);
    EXPECT_EQ(by_footer->footer.toc.offset, layer->footer.toc.offset);
  }
  EXPECT_EQ(layer->tar_split_digest, r->tar_split_digest);  // surfaced by Load

  TarReader tr(MemoryReader(tar_));
  std::vector<Entry> tar_entries;
  std::map<std::string, std::string> contents;
  for (;;) {
    auto m = tr.Next();
    ASSERT_TRUE(m);
    if (!*m) break;
    tar_entries.push_back((*m)->entry);
    std::string data((*m)->payload_size, '\0');
    ASSERT_TRUE(tr.ReadPayload(data.data(), data.size()));
    contents[(*m)->entry.path] = data;
  }
  ASSERT_EQ(layer->index.entries.size(), tar_entries.size());
  size_t zeros = 0, multi = 0;
  for (size_t i = 0; i < tar_entries.size(); ++i) {
    const Entry& t = tar_entries[i];
    const Entry& e = layer->index.entries[i];
    EXPECT_EQ(e.path, t.path);
    EXPECT_EQ(e.type, t.type);
    EXPECT_EQ(e.mode, t.mode);
    EXPECT_EQ(e.size, t.size);
    EXPECT_EQ(e.mtime_sec, t.mtime_sec) << e.path;
    EXPECT_EQ(e.mtime_nsec, t.mtime_nsec) << e.path;
    EXPECT_EQ(e.link_name, t.link_name);
    EXPECT_EQ(e.prefetch, e.path == "etc/hello");
    if (e.type != EntryType::kRegular) continue;
    std::string rebuilt;
    for (const Chunk& c : e.chunks) {
      zeros += c.encoding == ChunkEncoding::kZeros;
      auto data = DecodeAndVerifyChunkBytes(c, blob_.substr(c.blob_offset, c.blob_length), 1 << 26);
      ASSERT_TRUE(data) << e.path << ": " << data.error().message();
      rebuilt += *data;
    }
    multi += e.chunks.size() > 1;
    EXPECT_EQ(rebuilt, contents[e.path]) << e.path;
    if (e.size) {
      EXPECT_EQ(e.digest, Digest::Of(contents[e.path])) << e.path;
    }
  }
  EXPECT_EQ(zeros, 2u);  // the hole in "holey" and all of "allzero"
  EXPECT_GE(multi, 2u);  // big and holey are chunked
}

TEST_F(WriterTest, Deterministic) {
  auto a = Write({});
  ASSERT_TRUE(a);
  std::string first = blob_;
  auto b = Write({});
  ASSERT_TRUE(b);
  EXPECT_EQ(first, blob_);
  EXPECT_EQ(a->blob_digest, b->blob_digest);
}

TEST_F(WriterTest, TruncatedTarFailsNamingTheEntry) {
  tar_.resize(tar_.size() / 2);
  auto r = Write({});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EBADMSG);
}

// PAX sparse members (made by the real GNU tar in each format): the stream is unchanged, the TOC
// describes the expanded files (holes as "zeros" chunks without a frame), and the tar-split
// rebuilds the exact tar.
class SparseWriterTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SparseWriterTest, TocDescribesTheExpandedFilesAndTheTarIsKept) {
  const std::string dir = testing::MakeTempDir();
  ASSERT_EQ(Sh("cd " + dir +
               " && truncate -s 3M mixed && head -c 300000 /dev/urandom | dd of=mixed"
               " conv=notrunc status=none && printf MID | dd of=mixed bs=1 seek=1500000"
               " conv=notrunc status=none && truncate -s 1M head_hole && printf END | dd"
               " of=head_hole bs=1 seek=1000000 conv=notrunc status=none && truncate -s 2M empty"
               " && head -c 5000 /dev/urandom > plain && tar --format=posix --sparse"
               " --sparse-version=" +
               GetParam() + " -cf l.tar plain mixed head_hole empty"),
            0);
  const std::string tar = Slurp(dir + "/l.tar");
  std::string blob;
  ZstdChunkedWriterOptions opt;
  opt.chunk_target = 64 << 10;
  auto r = WriteZstdChunked(
      MemoryReader(tar),
      [&](std::string_view d) -> Status {
        blob.append(d);
        return Ok();
      },
      opt);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->diff_id, Digest::Of(tar));
  ASSERT_TRUE(WriteFileAtomic(dir + "/blob", blob).has_value());
  ASSERT_EQ(Sh("zstd -q -d -c " + dir + "/blob | cmp - " + dir + "/l.tar"), 0);

  auto ann = ParseZstdChunkedAnnotations(r->annotations);
  ASSERT_TRUE(ann) << ann.error().message();
  auto read = [&](uint64_t off, uint64_t len) -> Result<std::string> {
    return blob.substr(off, len);
  };
  auto layer = LoadZstdChunkedLayer(read, blob.size(), r->blob_digest, *ann);
  ASSERT_TRUE(layer) << layer.error().message();
  std::map<std::string, std::string> contents;
  size_t holes = 0;
  for (const Entry& e : layer->index.entries) {
    std::string rebuilt;
    for (const Chunk& c : e.chunks) {
      holes += c.encoding == ChunkEncoding::kZeros && c.blob_length == 0;
      auto data = DecodeAndVerifyChunkBytes(c, blob.substr(c.blob_offset, c.blob_length), 1 << 26);
      ASSERT_TRUE(data) << e.path << ": " << data.error().message();
      rebuilt += *data;
    }
    contents[e.path] = rebuilt;
    EXPECT_EQ(e.digest, Digest::Of(rebuilt)) << e.path;
  }
  ASSERT_EQ(contents.size(), 4u);
  for (std::string name : {"plain", "mixed", "head_hole", "empty"}) {
    EXPECT_TRUE(contents[name] == Slurp(dir + "/" + name)) << name;
  }
  EXPECT_GE(holes, 4u);  // mixed: two; head_hole: one at the start; empty: all of it

  // The tar-split rebuilds the source from the expanded files.
  const std::string ts =
      blob.substr(layer->footer.tar_split->offset, layer->footer.tar_split->length);
  std::vector<std::string> keep;
  keep.reserve(10);
  auto open = [&](std::string_view raw, uint64_t) -> Result<ReadCallback> {
    keep.push_back(contents[std::string(raw)]);
    return MemoryReader(keep.back());
  };
  std::string out;
  auto stats = ReassembleTar(ts, layer->tar_split_digest, open, [&](std::string_view d) -> Status {
    out.append(d);
    return Ok();
  });
  ASSERT_TRUE(stats) << stats.error().message();
  EXPECT_EQ(stats->files, 1u);  // "plain"; the sparse members' data is in segments
  EXPECT_TRUE(out == tar);
  Sh("rm -rf " + dir);
}

// The sparse data a layer may put into its tar-split is capped: past it, one line, ENOTSUP.
TEST(SparseWriterCap, RefusesSparseDataOverTheInlineCap) {
  const std::string dir = testing::MakeTempDir();
  ASSERT_EQ(Sh("cd " + dir +
               " && truncate -s 1M a && head -c 8192 /dev/urandom | dd of=a conv=notrunc"
               " status=none && cp a b && tar --format=posix --sparse -cf l.tar a b"),
            0);
  const std::string tar = Slurp(dir + "/l.tar");
  ZstdChunkedWriterOptions opt;
  opt.max_sparse_inline = 12000;  // a's 8192 bytes fit, b's do not
  auto r = WriteZstdChunked(
      MemoryReader(tar), [](std::string_view) -> Status { return Ok(); }, opt);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ENOTSUP);
  TarReader reader(MemoryReader(tar));
  ASSERT_TRUE(reader.Next());
  auto b = reader.Next();
  ASSERT_TRUE(b && *b);
  EXPECT_EQ(r.error().message(),
            "tar entry \"b\" at byte " + std::to_string((*b)->header_offset) +
                ": PAX sparse data over 12000 bytes in one layer is not supported by convert");
  opt.max_sparse_inline = 16384;
  EXPECT_TRUE(WriteZstdChunked(
      MemoryReader(tar), [](std::string_view) -> Status { return Ok(); }, opt));
  Sh("rm -rf " + dir);
}

INSTANTIATE_TEST_SUITE_P(Versions, SparseWriterTest, ::testing::Values("0.0", "0.1", "1.0"),
                         [](const auto& info) {
                           std::string n = info.param;
                           n[1] = '_';
                           return "v" + n;
                         });

TEST(WriterHelpers, Rfc3339AndCrc64) {
  EXPECT_EQ(FormatRfc3339(0, 0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(1612325106, 500000000), "2021-02-03T04:05:06.5Z");
  EXPECT_EQ(FormatRfc3339(-1, 0), "1969-12-31T23:59:59Z");
  auto t = ParseRfc3339(FormatRfc3339(1612325106, 123456789));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->first, 1612325106);
  EXPECT_EQ(t->second, 123456789u);
  // Go: crc64.Checksum([]byte("123456789"), crc64.MakeTable(crc64.ISO)) = 0xb90956c775a41001
  EXPECT_EQ(Crc64Iso(0, "123456789", 9), 0xb90956c775a41001ull);
}

}  // namespace
}  // namespace hoist
