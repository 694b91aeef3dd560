// libFuzzer target: DecodeLayerIndex on stored records. The input is decoded twice: as it is (so
// the checksum check is exercised) and as a record body with a correct XXH3 trailer appended (so
// mutations get past the checksum into the varint, count, enum and digest parsing). A record
// that decodes must re-encode to bytes that decode to the same re-encoding.
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "index/layer_index_codec.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

void Check(std::string_view record) {
  auto index = hoist::DecodeLayerIndex(record);
  if (!index) return;
  FUZZ_CHECK(!index->layer_digest.empty());
  std::string encoded = hoist::EncodeLayerIndex(*index);
  auto again = hoist::DecodeLayerIndex(encoded);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(hoist::EncodeLayerIndex(*again) == encoded);
  FUZZ_CHECK(again->entries.size() == index->entries.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = hoist::fuzz::AsView(data, size);
  Check(in);
  std::string record(in);
  uint64_t sum = XXH3_64bits(data, size);
  for (int i = 0; i < 8; ++i) record.push_back(static_cast<char>(sum >> (8 * i)));
  Check(record);
  return 0;
}
