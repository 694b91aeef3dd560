// Chunk decoding for readers of index/ formats: turns the fetched blob bytes of one Chunk into
// exactly `chunk.size` bytes, then verifies them against chunk.digest.
//
//   kZstdFrame       : complete zstd frame(s) decoding to exactly `size` bytes
//   kZstdFramePrefix : zstd frame(s); skip inner_offset, take `size`, ignore the rest
//   kGzipMember      : gzip member(s); skip inner_offset, take `size`, ignore the rest
//   kRaw             : the bytes themselves (length must be `size`)
//   kZeros           : `size` zero bytes (blob bytes ignored)
//   kStream          : EINVAL (served from a full fetch, not per chunk)
// `chunk.size` is checked against `max_size` before anything is allocated (EFBIG); decoders stop
// as soon as they hold inner_offset + size bytes (+1 for the exact form), so a bomb costs at
// most that much memory.
//
// Errors: EBADMSG for undecodable data or a wrong decoded length, EIO for a digest mismatch (or
// a missing digest on a chunk that needs one), EFBIG, EINVAL; one line naming the chunk.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "index/layer_index.h"

namespace hoist {

[[nodiscard]] Result<std::string> DecodeChunkBytes(const Chunk& chunk, std::string_view blob_bytes,
                                                   uint64_t max_size);

// sha256(data) must equal chunk.digest; kZeros chunks without a digest are accepted if all-zero.
[[nodiscard]] Status VerifyChunkBytes(const Chunk& chunk, std::string_view data);

[[nodiscard]] Result<std::string> DecodeAndVerifyChunkBytes(const Chunk& chunk,
                                                            std::string_view blob_bytes,
                                                            uint64_t max_size);

}  // namespace hoist
