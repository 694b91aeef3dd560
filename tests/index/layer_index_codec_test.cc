#include "index/layer_index_codec.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <cstdint>
#include <string>

#include "tests/index/store_test_util.h"

namespace hoist {
namespace {

using testutil::ExpectSameIndex;
using testutil::SampleIndex;

TEST(LayerIndexCodecTest, RoundTripsEveryField) {
  LayerIndex index = SampleIndex(Digest::Of("layer"));
  std::string bytes = EncodeLayerIndex(index);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), kLayerIndexCodecVersion);
  Result<LayerIndex> back = DecodeLayerIndex(bytes);
  ASSERT_TRUE(back) << back.error().message();
  ExpectSameIndex(index, *back);
  EXPECT_EQ(EncodeLayerIndex(*back), bytes);
}

// Every encoding a reader produces must survive the store: an index that fails to decode is
// dropped and rebuilt on every mount (ctr-remote's kZstdFramePrefix once was).
TEST(LayerIndexCodecTest, RoundTripsEveryChunkEncoding) {
  for (ChunkEncoding enc :
       {ChunkEncoding::kZstdFrame, ChunkEncoding::kGzipMember, ChunkEncoding::kZeros,
        ChunkEncoding::kRaw, ChunkEncoding::kStream, ChunkEncoding::kZstdFramePrefix}) {
    LayerIndex index;
    index.layer_digest = Digest::Of("layer");
    Entry& e = index.entries.emplace_back();
    e.path = "f";
    e.size = 10;
    e.chunks.push_back(Chunk{.file_offset = 0,
                             .size = 10,
                             .blob_offset = 100,
                             .blob_length = 7,
                             .inner_offset = 3,
                             .encoding = enc,
                             .digest = Digest::Of("ten bytes!")});
    Result<LayerIndex> back = DecodeLayerIndex(EncodeLayerIndex(index));
    ASSERT_TRUE(back) << static_cast<int>(enc) << ": " << back.error().message();
    ASSERT_EQ(back->entries.size(), 1u);
    ASSERT_EQ(back->entries[0].chunks.size(), 1u);
    EXPECT_EQ(back->entries[0].chunks[0].encoding, enc);
    EXPECT_EQ(back->entries[0].chunks[0].inner_offset, 3u);
    EXPECT_EQ(back->entries[0].chunks[0].digest, Digest::Of("ten bytes!"));
  }
}

// The checkpoint index of an unconverted layer rides in the same record (version 3).
TEST(LayerIndexCodecTest, RoundTripsTheStreamIndex) {
  LayerIndex index = SampleIndex(Digest::Of("layer"));
  index.format = LayerFormat::kTarGzip;
  index.stream_index = std::string("HOISTZRN\0\x01\xff", 11);
  Result<LayerIndex> back = DecodeLayerIndex(EncodeLayerIndex(index));
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->stream_index, index.stream_index);
  ExpectSameIndex(index, *back);
}

TEST(LayerIndexCodecTest, RoundTripsEmptyIndex) {
  LayerIndex index;
  index.layer_digest = Digest::Of("empty");
  index.format = LayerFormat::kTarZstd;
  Result<LayerIndex> back = DecodeLayerIndex(EncodeLayerIndex(index));
  ASSERT_TRUE(back);
  ExpectSameIndex(index, *back);
}

TEST(LayerIndexCodecTest, EveryFlippedBitIsAnError) {
  std::string bytes = EncodeLayerIndex(SampleIndex(Digest::Of("layer")));
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; bit += 3) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      Result<LayerIndex> r = DecodeLayerIndex(bad);
      ASSERT_FALSE(r) << "byte " << i << " bit " << bit;
      EXPECT_EQ(r.error().code(), EIO);
      EXPECT_EQ(r.error().message().rfind("corrupt layer index record: ", 0), 0u);
    }
  }
}

TEST(LayerIndexCodecTest, EveryTruncationIsAnError) {
  std::string bytes = EncodeLayerIndex(SampleIndex(Digest::Of("layer")));
  for (size_t n = 0; n < bytes.size(); ++n) {
    Result<LayerIndex> r = DecodeLayerIndex(std::string_view(bytes).substr(0, n));
    ASSERT_FALSE(r) << n;
    EXPECT_EQ(r.error().code(), EIO);
  }
  Result<LayerIndex> r = DecodeLayerIndex("");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "corrupt layer index record: 0 bytes is too short");
}

// Builds a record with a valid checksum around `payload` (everything after the digest).
std::string Record(uint8_t version, const std::string& payload) {
  std::string out(1, static_cast<char>(version));
  auto raw = Digest::Of("x").raw();
  out.append(reinterpret_cast<const char*>(raw.data()), raw.size());
  out += payload;
  uint64_t sum = XXH3_64bits(out.data(), out.size());
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(sum >> (8 * i)));
  return out;
}

std::string DecodeError(const std::string& record) {
  Result<LayerIndex> r = DecodeLayerIndex(record);
  if (r) return "ok";
  EXPECT_EQ(r.error().code(), EIO);
  return r.error().message();
}

TEST(LayerIndexCodecTest, ValidChecksumButHostileContent) {
  constexpr uint8_t v = kLayerIndexCodecVersion;
  EXPECT_EQ(DecodeError(Record(v, std::string("\x00\x00\x00\x00", 4))), "ok");
  // Version 2 had no stream index after the entries.
  EXPECT_EQ(DecodeError(Record(2, std::string("\x00\x00\x00", 3))), "ok");
  EXPECT_EQ(DecodeError(Record(v, std::string("\x00\x00\x00", 3))),
            "corrupt layer index record: bad stream index");
  EXPECT_EQ(DecodeError(Record(0, std::string("\x00\x00\x00", 3))),
            "corrupt layer index record: unknown version 0");
  EXPECT_EQ(DecodeError(Record(4, std::string("\x00\x00\x00\x00", 4))),
            "corrupt layer index record: unknown version 4");
  EXPECT_EQ(DecodeError(Record(v, std::string("\x00\x09\x00", 3))),
            "corrupt layer index record: bad layer format");
  // An entry count of 2^40 with no entries behind it: rejected before allocating anything.
  EXPECT_EQ(DecodeError(Record(v, std::string("\x00\x00\x80\x80\x80\x80\x80\x20", 8))),
            "corrupt layer index record: bad entry count");
  // An 11-byte varint overflows.
  EXPECT_EQ(DecodeError(Record(v, std::string(10, '\xff') + std::string("\x01\x00\x00", 3))),
            "corrupt layer index record: bad blob size");
  EXPECT_EQ(DecodeError(Record(v, std::string("\x00\x00\x00\x00\x00", 5))),
            "corrupt layer index record: bad trailing bytes");
  // One entry: path "a" (nothing shared), type 7 (no such type).
  EXPECT_EQ(DecodeError(Record(v, std::string("\x00\x00\x01\x00\x01"
                                              "a\x07",
                                              7))),
            "corrupt layer index record: bad entry type");
  // One entry with mode 010000 (beyond 07777).
  EXPECT_EQ(DecodeError(Record(v, std::string("\x00\x00\x01\x00\x01"
                                              "a\x00\x80\x80\x01",
                                              10))),
            "corrupt layer index record: bad entry mode");
  // A path length longer than the record.
  EXPECT_EQ(DecodeError(Record(v, std::string("\x00\x00\x01\x00\x7f"
                                              "a",
                                              6))),
            "corrupt layer index record: bad entry path");
  // The first path claims to share 3 bytes with a previous path that does not exist.
  EXPECT_EQ(DecodeError(Record(v, std::string("\x00\x00\x01\x03\x01"
                                              "a",
                                              6))),
            "corrupt layer index record: bad entry path prefix");
}

// A version 1 record (written by hoist before shared path prefixes) still decodes, so older
// caches keep working for mounts, `hoist images` and `hoist prune`; in it the "same digest"
// tag did not exist and is corrupt.
TEST(LayerIndexCodecTest, VersionOneRecordsAreStillRead) {
  const std::string d = Digest::Of("f").str();
  auto raw_of = [](const Digest& x) {
    const auto r = x.raw();
    return std::string(reinterpret_cast<const char*>(r.data()), r.size());
  };
  // blob size 9, format 0, 2 entries. Entry: path, type, mode 0644 (varint a4 03), uid 1, gid 2,
  // mtime 0, nsec 0, size, link "", dev 0 0, 0 xattrs, digest, prefetch, chunk count [chunks].
  std::string v1 = std::string("\x09\x00\x02", 3);
  v1 += std::string("\x03usr\x01\xa4\x03\x01\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 19);
  v1 += std::string("\x07usr/bin\x00\xa4\x03\x01\x02\x00\x00\x05\x00\x00\x00\x00\x01", 21) +
        raw_of(Digest::Of("f"));
  // prefetch 1; one chunk: file_offset 0, size 5, blob 7+3, inner 0, kZstdFrame, digest.
  v1 += std::string("\x01\x01\x00\x05\x07\x03\x00\x00\x01", 9) + raw_of(Digest::Of("f"));
  Result<LayerIndex> back = DecodeLayerIndex(Record(1, v1));
  ASSERT_TRUE(back) << back.error().message();
  ASSERT_EQ(back->entries.size(), 2u);
  EXPECT_EQ(back->blob_size, 9u);
  EXPECT_EQ(back->entries[0].path, "usr");
  EXPECT_EQ(back->entries[0].type, EntryType::kDirectory);
  EXPECT_EQ(back->entries[1].path, "usr/bin");
  EXPECT_EQ(back->entries[1].mode, 0644u);
  EXPECT_EQ(back->entries[1].uid, 1u);
  EXPECT_EQ(back->entries[1].gid, 2u);
  EXPECT_EQ(back->entries[1].size, 5u);
  EXPECT_TRUE(back->entries[1].prefetch);
  EXPECT_EQ(back->entries[1].digest.str(), d);
  ASSERT_EQ(back->entries[1].chunks.size(), 1u);
  EXPECT_EQ(back->entries[1].chunks[0].blob_offset, 7u);
  EXPECT_EQ(back->entries[1].chunks[0].blob_length, 3u);
  EXPECT_EQ(back->entries[1].chunks[0].digest.str(), d);
  // Re-encoding writes the current version, which reads back the same.
  const std::string v2 = EncodeLayerIndex(*back);
  EXPECT_EQ(static_cast<uint8_t>(v2[0]), kLayerIndexCodecVersion);
  Result<LayerIndex> again = DecodeLayerIndex(v2);
  ASSERT_TRUE(again) << again.error().message();
  ExpectSameIndex(*back, *again);
  // Tag 2 ("same as the file's digest") in a version 1 record is corrupt.
  std::string bad = v1;
  bad[bad.size() - 33] = '\x02';
  bad.resize(bad.size() - 32);
  EXPECT_EQ(DecodeError(Record(1, bad)), "corrupt layer index record: bad chunk digest");
}

// Shared path prefixes and chunk digests that repeat their file's digest are stored once, and
// come back whole.
TEST(LayerIndexCodecTest, SharedPrefixesAndRepeatedDigestsRoundTrip) {
  LayerIndex index;
  index.layer_digest = Digest::Of("layer");
  index.format = LayerFormat::kZstdChunked;
  const char* paths[] = {"usr", "usr/lib", "usr/lib/libfoo.so.1", "usr/lib/libfoo.so.2", "var"};
  for (const char* p : paths) {
    Entry& e = index.entries.emplace_back();
    e.path = p;
    e.type = EntryType::kRegular;
    e.size = 10;
    e.digest = Digest::Of(p);
    Chunk& c = e.chunks.emplace_back();
    c.size = 10;
    c.blob_length = 7;
    c.digest = e.digest;  // a lone chunk repeats its file's digest
  }
  index.entries[4].chunks[0].digest = Digest::Of("other");  // unless it does not
  const std::string bytes = EncodeLayerIndex(index);
  Result<LayerIndex> back = DecodeLayerIndex(bytes);
  ASSERT_TRUE(back) << back.error().message();
  ExpectSameIndex(index, *back);
  // Each file digest is stored once (its chunk says "the same" in one byte); the chunk digest
  // that differs is stored in full.
  auto stored = [&](const Digest& d) {
    const auto raw = d.raw();
    const std::string needle(reinterpret_cast<const char*>(raw.data()), raw.size());
    size_t n = 0;
    for (size_t at = bytes.find(needle); at != std::string::npos; at = bytes.find(needle, at + 1))
      ++n;
    return n;
  };
  for (const char* p : paths) EXPECT_EQ(stored(Digest::Of(p)), 1u) << p;
  EXPECT_EQ(stored(Digest::Of("other")), 1u);
  // "usr/lib/libfoo.so.2" shares 18 bytes with the path before it: only "2" is stored.
  EXPECT_EQ(bytes.find("usr/lib/libfoo.so.2"), std::string::npos);
  EXPECT_NE(bytes.find("libfoo.so.1"), std::string::npos);
}

}  // namespace
}  // namespace hoist
