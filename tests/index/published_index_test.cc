// Published layer index blobs (index/published_index.h): a blob round-trips for its layer and
// every way it can fail to be that layer's index is refused with one EBADMSG line.
#include "index/published_index.h"

#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <random>
#include <string>

#include "base/digest.h"
#include "index/gzip_index.h"
#include "index/layer_index_codec.h"
#include "tests/harness/gzip_bytes.h"

namespace hoist {
namespace {

using testing::Gzip;

class PublishedIndex : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937 rng(5);
    while (plain_.size() < (1u << 20)) {
      plain_ += "line " + std::to_string(rng() % 1000) + "\n";
      if (rng() % 40 == 0)
        for (int i = 0; i < 2000; ++i) plain_.push_back(static_cast<char>(rng()));
    }
    blob_ = Gzip(plain_);
    IndexingDecoder dec(CheckpointCodec::kGzip, 64 << 10);
    std::string out(1 << 16, '\0');
    size_t at = 0;
    while (at < blob_.size() || !dec.at_member_end()) {
      auto step = dec.Decode(std::string_view(blob_).substr(at), out);
      ASSERT_TRUE(step.has_value());
      at += step->consumed;
      if (step->consumed == 0 && step->produced == 0) break;
    }
    auto index = dec.Finish(Digest::Of(blob_), blob_.size());
    ASSERT_TRUE(index.has_value()) << index.error().message();
    ASSERT_GT(index->checkpoints.size(), 2u);
    layer_.layer_digest = Digest::Of(blob_);
    layer_.blob_size = blob_.size();
    layer_.format = LayerFormat::kTarGzip;
    layer_.stream_index = SerializeCheckpointIndex(*index);
    Entry root;
    root.type = EntryType::kDirectory;
    Entry dir;
    dir.path = "a";
    dir.type = EntryType::kDirectory;
    Entry file;
    file.path = "a/b";
    file.size = 5000;
    file.digest = Digest::Of(std::string_view(plain_).substr(700000, 5000));
    Chunk c;
    c.size = 5000;
    c.inner_offset = 700000;
    c.encoding = ChunkEncoding::kStream;
    file.chunks.push_back(c);
    Entry link;
    link.path = "a/c";
    link.type = EntryType::kHardlink;
    link.link_name = "a/b";
    Entry sym;
    sym.path = "a/d";
    sym.type = EntryType::kSymlink;
    sym.link_name = "../etc/passwd";
    layer_.entries = {root, dir, file, link, sym};
  }

  Result<LayerIndex> Decode(const std::string& blob) {
    return DecodePublishedLayerIndex(blob, layer_.layer_digest, layer_.blob_size,
                                     LayerFormat::kTarGzip);
  }
  void ExpectRefused(const LayerIndex& index, std::string_view why) {
    auto got = Decode(EncodePublishedLayerIndex(index));
    ASSERT_FALSE(got.has_value()) << why;
    EXPECT_EQ(got.error().code(), EBADMSG);
    EXPECT_NE(got.error().message().find("published layer index: "), std::string::npos);
    EXPECT_NE(got.error().message().find(why), std::string::npos) << got.error().message();
    EXPECT_EQ(got.error().message().find('\n'), std::string::npos);
  }

  std::string plain_, blob_;
  LayerIndex layer_;
};

TEST_F(PublishedIndex, RoundTripsForItsLayerOnly) {
  const std::string blob = EncodePublishedLayerIndex(layer_);
  auto got = Decode(blob);
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(EncodeLayerIndex(*got), EncodeLayerIndex(layer_));
  // Another layer, another size, another format: refused.
  EXPECT_FALSE(
      DecodePublishedLayerIndex(blob, Digest::Of("x"), layer_.blob_size, LayerFormat::kTarGzip));
  EXPECT_FALSE(DecodePublishedLayerIndex(blob, layer_.layer_digest, layer_.blob_size + 1,
                                         LayerFormat::kTarGzip));
  EXPECT_FALSE(DecodePublishedLayerIndex(blob, layer_.layer_digest, layer_.blob_size,
                                         LayerFormat::kTarZstd));
}

TEST_F(PublishedIndex, PublishingMovesTheWindowsIntoTheirOwnBlob) {
  auto published = PublishLayerIndex(layer_);
  ASSERT_TRUE(published.has_value()) << published.error().message();
  ASSERT_FALSE(published->windows.empty());
  auto got = Decode(published->table);
  ASSERT_TRUE(got.has_value()) << got.error().message();
  // The same record but for the checkpoint index, whose windows are now external.
  EXPECT_EQ(got->entries.size(), layer_.entries.size());
  auto inline_index = ParseCheckpointIndex(layer_.stream_index, layer_.blob_size);
  auto table = ParseCheckpointIndex(got->stream_index, layer_.blob_size, layer_.layer_digest);
  ASSERT_TRUE(inline_index.has_value());
  ASSERT_TRUE(table.has_value()) << table.error().message();
  EXPECT_EQ(*table, SplitWindows(*inline_index).index);
  EXPECT_EQ(table->windows_blob, Digest::Of(published->windows));
  EXPECT_LT(published->table.size(), EncodePublishedLayerIndex(layer_).size());
  // A table whose windows blob is refused as a layer index.
  EXPECT_FALSE(Decode(published->windows).has_value());
}

TEST_F(PublishedIndex, FramesThatAreNotOneSizedZstdFrameAreRefused) {
  const std::string blob = EncodePublishedLayerIndex(layer_);
  for (const std::string& bad :
       {std::string(), std::string("garbage"), blob.substr(0, blob.size() / 2), blob + "x",
        EncodeLayerIndex(layer_)}) {
    auto got = Decode(bad);
    ASSERT_FALSE(got.has_value());
    EXPECT_EQ(got.error().code(), EBADMSG);
  }
  // A frame without its content size.
  const std::string record = EncodeLayerIndex(layer_);
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
  std::string out(ZSTD_compressBound(record.size()), '\0');
  ZSTD_outBuffer ob{out.data(), out.size(), 0};
  ZSTD_inBuffer ib{record.data(), record.size(), 0};
  ASSERT_EQ(ZSTD_compressStream2(cctx, &ob, &ib, ZSTD_e_end), 0u);
  ZSTD_freeCCtx(cctx);
  out.resize(ob.pos);
  auto got = Decode(out);
  ASSERT_FALSE(got.has_value());
  EXPECT_NE(got.error().message().find("no content size"), std::string::npos);
  // A declared size over the cap.
  PublishedIndexLimits small;
  small.max_record_bytes = 100;
  EXPECT_FALSE(DecodePublishedLayerIndex(EncodePublishedLayerIndex(layer_), layer_.layer_digest,
                                         layer_.blob_size, LayerFormat::kTarGzip, small));
}

TEST_F(PublishedIndex, EveryBrokenRuleIsRefusedWithOneLine) {
  LayerIndex x = layer_;
  x.stream_index.resize(x.stream_index.size() - 100);
  ExpectRefused(x, "checkpoint index");
  x = layer_;
  x.stream_index.clear();
  ExpectRefused(x, "no checkpoint index");
  x = layer_;
  x.entries[2].path = "a/../../b";
  ExpectRefused(x, "is not clean");
  x = layer_;
  x.entries[3].link_name = "/a/b";
  ExpectRefused(x, "unclean target");
  x = layer_;
  x.entries[2].digest = Digest();
  ExpectRefused(x, "has no digest");
  x = layer_;
  x.entries[2].chunks[0].inner_offset = plain_.size() - 10;
  ExpectRefused(x, "outside the stream");
  x = layer_;
  x.entries[2].chunks[0].encoding = ChunkEncoding::kRaw;
  ExpectRefused(x, "not a stream range");
  x = layer_;
  x.entries[2].chunks[0].size = 4000;
  ExpectRefused(x, "do not cover it");
  x = layer_;
  x.entries[1].chunks = x.entries[2].chunks;
  ExpectRefused(x, "not a file but has content");
  x = layer_;
  x.layer_digest = Digest::Of("another");
  ExpectRefused(x, "indexes layer");
}

}  // namespace
}  // namespace hoist
