// libFuzzer target: DecodePublishedLayerIndex on untrusted published layer index blobs (from a
// registry, index/published_index.h). The input is tried twice: as the blob itself (the zstd
// frame checks), and as a layer index record body that the target completes (XXH3 trailer) and
// compresses, checked against the layer the record itself names, so mutations get past the frame,
// the checksum and the layer checks into the checkpoint index and the entry rules. An index that
// is accepted must publish back to a blob that is accepted and decodes to the same record.
#include <xxhash.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

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
