// zstd:chunked writer with a pool of compression threads: the blob must not depend on the
// thread count, and errors must come back (no hang) while frames are in flight.
#include <gtest/gtest.h>

#include <random>

#include "index/chunk_codec.h"
#include "index/tar_writer.h"
#include "index/zstd_chunked.h"
#include "index/zstd_chunked_writer.h"

namespace hoist {
namespace {

// A deterministic tar: many small files, a few large ones (text-like, random, with zero runs).
std::string MakeTar() {
  std::mt19937_64 rng(42);
  std::string out;
  TarWriter tw([&out](std::string_view d) -> Status {
    out.append(d);
    return Ok();
  });
  auto add = [&](const std::string& path, const std::string& data) {
    TarWriteEntry e;
    e.entry.path = path;
    e.entry.type = EntryType::kRegular;
    e.entry.mode = 0644;
    e.entry.size = data.size();
    e.entry.mtime_sec = 1700000000;
    EXPECT_TRUE(tw.WriteHeader(e));
    EXPECT_TRUE(tw.WritePayload(data));
  };
  const char* words[] = {"lorem ", "ipsum ", "dolor ", "sit ", "amet\n", "zstd ", "chunk "};
  for (int i = 0; i < 400; ++i) {
    std::string d;
    const size_t len = rng() % 20000;
    while (d.size() < len) d += words[rng() % 7];
    add("small/f" + std::to_string(i), d);
  }
  std::string big;
  while (big.size() < (3 << 20)) big += words[rng() % 7];
  add("big/text", big);
  std::string rnd(2 << 20, '\0');
  for (auto& c : rnd) c = static_cast<char>(rng());
  rnd.replace(500000, 300000, std::string(300000, '\0'));
  add("big/random-with-hole", rnd);
  TarWriteEntry dir;
  dir.entry.path = "empty";
  dir.entry.type = EntryType::kDirectory;
  dir.entry.mode = 0755;
  EXPECT_TRUE(tw.WriteHeader(dir));
  EXPECT_TRUE(tw.Finish());
  return out;
}

Result<ZstdChunkedWriteResult> Write(const std::string& tar, int threads, uint64_t target,
                                     std::string* blob) {
  ZstdChunkedWriterOptions opt;
  opt.threads = threads;
  opt.chunk_target = target;
  blob->clear();
  return WriteZstdChunked(
      MemoryReader(tar),
      [blob](std::string_view d) -> Status {
        blob->append(d);
        return Ok();
      },
      opt);
}

TEST(ZstdChunkedParallelTest, SameBlobWhateverTheThreadCount) {
  const std::string tar = MakeTar();
  for (uint64_t target : {uint64_t{64} << 10, uint64_t{256} << 10}) {
    std::string serial, parallel;
    auto a = Write(tar, 1, target, &serial);
    ASSERT_TRUE(a) << a.error().message();
    for (int threads : {2, 4}) {
      auto b = Write(tar, threads, target, &parallel);
      ASSERT_TRUE(b) << b.error().message();
      EXPECT_EQ(b->blob_digest, a->blob_digest) << "threads " << threads;
      EXPECT_EQ(b->blob_digest, Digest::Of(parallel));
      EXPECT_EQ(parallel, serial);
      EXPECT_EQ(b->toc_digest, a->toc_digest);
      EXPECT_EQ(b->chunks, a->chunks);
    }
    EXPECT_EQ(a->diff_id, Digest::Of(tar));
    EXPECT_EQ(a->entries, 403u);

    // The parallel blob loads and every chunk verifies.
    auto ann = ParseZstdChunkedAnnotations(a->annotations);
    ASSERT_TRUE(ann);
    auto read = [&](uint64_t off, uint64_t len) -> Result<std::string> {
      return parallel.substr(off, len);
    };
    auto layer = LoadZstdChunkedLayer(read, parallel.size(), a->blob_digest, *ann);
    ASSERT_TRUE(layer) << layer.error().message();
    uint64_t chunks = 0, zeros = 0;
    for (const Entry& e : layer->index.entries) {
      Sha256 file;
      for (const Chunk& c : e.chunks) {
        auto data =
            DecodeAndVerifyChunkBytes(c, parallel.substr(c.blob_offset, c.blob_length), 64 << 20);
        ASSERT_TRUE(data) << e.path << ": " << data.error().message();
        file.Update(*data);
        ++chunks;
        zeros += c.encoding == ChunkEncoding::kZeros;
      }
      if (e.size) {
        EXPECT_EQ(e.digest, Digest::FromSha256(file.Final())) << e.path;
      }
    }
    EXPECT_EQ(chunks, a->chunks);
    EXPECT_EQ(zeros, 1u);
  }
}

TEST(ZstdChunkedParallelTest, SinkErrorWhileFramesAreInFlight) {
  const std::string tar = MakeTar();
  ZstdChunkedWriterOptions opt;
  opt.threads = 4;
  uint64_t written = 0;
  auto r = WriteZstdChunked(
      MemoryReader(tar),
      [&written](std::string_view d) -> Status {
        written += d.size();
        if (written > 200000) return Fail(ENOSPC, "disk full");
        return Ok();
      },
      opt);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ENOSPC);
  EXPECT_EQ(r.error().message(), "disk full");
}

TEST(ZstdChunkedParallelTest, TruncatedTarWithThreads) {
  const std::string tar = MakeTar().substr(0, 1 << 20);
  std::string blob;
  auto r = Write(tar, 4, 64 << 10, &blob);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EBADMSG);
}

TEST(ZstdChunkedParallelTest, Crc64MatchesBytewise) {
  // Check value of CRC-64/GO-ISO for "123456789" and that split updates agree.
  EXPECT_EQ(Crc64Iso(0, "123456789", 9), 0xB90956C775A41001ull);
  std::string s(1000, '\0');
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(i * 7);
  uint64_t split = Crc64Iso(Crc64Iso(0, s.data(), 13), s.data() + 13, s.size() - 13);
  EXPECT_EQ(split, Crc64Iso(0, s.data(), s.size()));
}

}  // namespace
}  // namespace hoist
