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
  EXPECT_EQ(DecodeError(Record(1, std::string("\x00\x00\x00", 3))), "ok");
  EXPECT_EQ(DecodeError(Record(2, std::string("\x00\x00\x00", 3))),
            "corrupt layer index record: unknown version 2");
  EXPECT_EQ(DecodeError(Record(1, std::string("\x00\x09\x00", 3))),
            "corrupt layer index record: bad layer format");
  // An entry count of 2^40 with no entries behind it: rejected before allocating anything.
  EXPECT_EQ(DecodeError(Record(1, std::string("\x00\x00\x80\x80\x80\x80\x80\x20", 8))),
            "corrupt layer index record: bad entry count");
  // An 11-byte varint overflows.
  EXPECT_EQ(DecodeError(Record(1, std::string(10, '\xff') + std::string("\x01\x00\x00", 3))),
            "corrupt layer index record: bad blob size");
  EXPECT_EQ(DecodeError(Record(1, std::string("\x00\x00\x00\x00", 4))),
            "corrupt layer index record: bad trailing bytes");
  // One entry: path "a", type 7 (no such type).
  EXPECT_EQ(DecodeError(Record(1, std::string("\x00\x00\x01\x01"
                                              "a\x07",
                                              6))),
            "corrupt layer index record: bad entry type");
  // One entry with mode 010000 (beyond 07777).
  EXPECT_EQ(DecodeError(Record(1, std::string("\x00\x00\x01\x01"
                                              "a\x00\x80\x80\x01",
                                              9))),
            "corrupt layer index record: bad entry mode");
  // A path length longer than the record.
  EXPECT_EQ(DecodeError(Record(1, std::string("\x00\x00\x01\x7f"
                                              "a",
                                              5))),
            "corrupt layer index record: bad entry path");
}

}  // namespace
}  // namespace hoist
