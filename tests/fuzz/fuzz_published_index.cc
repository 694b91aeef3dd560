// libFuzzer target: DecodePublishedLayerIndex on untrusted published layer index blobs (from a
// registry, index/published_index.h). The input is tried twice: as the blob itself (the zstd
// frame checks), and as a layer index record body that the target completes (XXH3 trailer) and
// compresses, checked against the layer the record itself names, so mutations get past the frame,
// the checksum and the layer checks into the checkpoint index and the entry rules. An index that
// is accepted must publish back to a blob that is accepted and decodes to the same record; its
// windows, when inline, moved into a windows blob (the version 2 table, PublishLayerIndex) must
// give a table that is accepted too, with every window range inside that blob and holding a
// window CheckWindow accepts.
#include <xxhash.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "index/gzip_index.h"
#include "index/layer_index_codec.h"
#include "index/published_index.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

void Check(std::string_view blob, const hoist::Digest& layer, uint64_t size,
           hoist::LayerFormat format) {
  auto index = hoist::DecodePublishedLayerIndex(blob, layer, size, format);
  if (!index) {
    FUZZ_CHECK(index.error().message().find('\n') == std::string::npos);
    return;
  }
  FUZZ_CHECK(index->layer_digest == layer && index->blob_size == size);
  FUZZ_CHECK(!index->stream_index.empty());
  const std::string again = hoist::EncodePublishedLayerIndex(*index, 1);
  auto decoded = hoist::DecodePublishedLayerIndex(again, layer, size, format);
  FUZZ_CHECK(decoded.has_value());
  FUZZ_CHECK(hoist::EncodeLayerIndex(*decoded) == hoist::EncodeLayerIndex(*index));
  auto checkpoints = hoist::ParseCheckpointIndex(index->stream_index, size, layer);
  FUZZ_CHECK(checkpoints.has_value());
  if (checkpoints->external_windows()) {
    for (const hoist::Checkpoint& cp : checkpoints->checkpoints) {
      if (cp.kind != hoist::CheckpointKind::kDeflateBlock) continue;
      FUZZ_CHECK(cp.window_offset <= checkpoints->windows_size &&
                 cp.window_size <= checkpoints->windows_size - cp.window_offset);
    }
    return;
  }
  auto published = hoist::PublishLayerIndex(*index, 1);
  FUZZ_CHECK(published.has_value());
  auto table = hoist::DecodePublishedLayerIndex(published->table, layer, size, format);
  FUZZ_CHECK(table.has_value());
  auto split = hoist::ParseCheckpointIndex(table->stream_index, size, layer);
  FUZZ_CHECK(split.has_value());
  FUZZ_CHECK(split->external_windows() == !published->windows.empty());
  for (const hoist::Checkpoint& cp : split->checkpoints) {
    if (cp.kind != hoist::CheckpointKind::kDeflateBlock) continue;
    FUZZ_CHECK(cp.window_offset + cp.window_size <= published->windows.size());
    FUZZ_CHECK(
        hoist::CheckWindow(
            cp, std::string_view(published->windows).substr(cp.window_offset, cp.window_size))
            .has_value());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = hoist::fuzz::AsView(data, size);
  static const hoist::Digest kLayer = hoist::Digest::FromSha256(std::array<uint8_t, 32>{1});
  Check(in, kLayer, 1 << 20, hoist::LayerFormat::kTarGzip);
  std::string record(in);
  const uint64_t sum = XXH3_64bits(data, size);
  for (int i = 0; i < 8; ++i) record.push_back(static_cast<char>(sum >> (8 * i)));
  auto named = hoist::DecodeLayerIndex(record);
  if (!named) return 0;
  const std::string blob = hoist::EncodePublishedLayerIndex(*named, 1);
  Check(blob, named->layer_digest, named->blob_size, named->format);
  return 0;
}
