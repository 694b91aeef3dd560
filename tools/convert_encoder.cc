#include "tools/convert_encoder.h"

namespace hoist {

// Placeholder until index/'s zstd:chunked writer is committed.
Result<EncodedLayer> EncodeZstdChunked(ByteReader&, int, const LayerOptions&) {
  return Fail(ENOTSUP, "the zstd:chunked writer is not available yet");
}

}  // namespace hoist
