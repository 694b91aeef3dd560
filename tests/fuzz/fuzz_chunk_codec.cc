// libFuzzer target: DecodeChunkBytes / DecodeAndVerifyChunkBytes with a Chunk built from the
// first bytes of the input (encoding, size, inner offset, digest choice) and the rest as the
// fetched blob bytes (zstd frames, gzip members, raw bytes). The cap is 64 KiB.
// On success the output has exactly chunk.size bytes, and decoding again with the digest of that
// output verifies and gives the same bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/digest.h"
#include "index/chunk_codec.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr uint64_t kMaxSize = 64 << 10;
  hoist::fuzz::FuzzInput input(hoist::fuzz::AsView(data, size));
  hoist::Chunk chunk;
  chunk.encoding = static_cast<hoist::ChunkEncoding>(input.Below(8));  // 6, 7: unknown
  const uint8_t size_mode = input.Byte();
  chunk.size = size_mode == 0xff ? input.Uint(8) : input.Uint(2);  // sometimes absurd
  chunk.inner_offset = input.Byte() == 0xff ? input.Uint(8) : input.Uint(2);
  const uint8_t digest_mode = input.Below(3);
  chunk.blob_offset = 4096;
  std::string_view blob = input.Rest();
  chunk.blob_length = blob.size();
  if (digest_mode == 1) chunk.digest = hoist::Digest::Of(blob);
  if (digest_mode == 2 && chunk.size <= kMaxSize) {
    chunk.digest = hoist::Digest::Of(std::string(chunk.size, '\0'));
  }

  auto decoded = hoist::DecodeChunkBytes(chunk, blob, kMaxSize);
  auto verified = hoist::DecodeAndVerifyChunkBytes(chunk, blob, kMaxSize);
  if (verified) {
    FUZZ_CHECK(decoded.has_value() && *decoded == *verified);
  }
  if (!decoded) return 0;
  FUZZ_CHECK(decoded->size() == chunk.size);
  FUZZ_CHECK(chunk.size <= kMaxSize);
  hoist::Chunk same = chunk;
  same.digest = hoist::Digest::Of(*decoded);
  FUZZ_CHECK(hoist::VerifyChunkBytes(same, *decoded).has_value());
  auto again = hoist::DecodeAndVerifyChunkBytes(same, blob, kMaxSize);
  FUZZ_CHECK(again.has_value() && *again == *decoded);
  return 0;
}
