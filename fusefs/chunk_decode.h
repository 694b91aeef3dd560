// Chunk decoding for the read path: turns the blob bytes of one Chunk into exactly `chunk.size`
// verified bytes.
//
// This is a minimal decoder owned by the read path (fusefs/), written because index/ had no
// chunk decoder yet when it was needed. If index/ grows one, the read path should switch to it.
//
//   kZstdFrame  : the bytes are complete zstd frame(s); decoded output must be exactly `size`.
//   kGzipMember : gzip member(s); decode, skip `inner_offset` bytes, take exactly `size`.
//   kRaw        : the bytes are the content as is; their length must be `size`.
//   kZeros      : `size` zero bytes (nothing is fetched; the blob bytes are ignored).
//   kStream     : not decodable per chunk (EINVAL): served by StreamLayer after a full fetch.
// Output is capped at `max_size` bytes BEFORE anything is allocated or decompressed, and the
// cap is enforced while decompressing (size bombs stop at size + 1 bytes of output).
//
// Verification: VerifyChunk checks sha256(bytes) == chunk.digest. A chunk with an empty digest
// cannot be verified and is refused (EIO), except kZeros (zeros need no check).
//
// Thread-safety: free functions, no shared state. Errors: EIO with a one-line message naming the
// chunk (digest, blob range) and what was wrong ("decodes to more than N bytes", "digest
// mismatch", ...); EFBIG if chunk.size exceeds max_size.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "index/layer_index.h"

namespace hoist {

// "chunk sha256:ab12... (blob range [off, off+len))" for messages.
std::string DescribeChunk(const Chunk& chunk);

// Decodes `blob_bytes` (exactly blob[chunk.blob_offset, +chunk.blob_length)) into chunk.size
// bytes. Does not verify the digest.
[[nodiscard]] Result<std::string> DecodeChunk(const Chunk& chunk, std::string_view blob_bytes,
                                              uint64_t max_size);

// sha256(bytes) == chunk.digest (and bytes.size() == chunk.size). EIO "digest mismatch" if not.
[[nodiscard]] Status VerifyChunk(const Chunk& chunk, std::string_view bytes);

// DecodeChunk then VerifyChunk.
[[nodiscard]] Result<std::string> DecodeAndVerifyChunk(const Chunk& chunk,
                                                       std::string_view blob_bytes,
                                                       uint64_t max_size);

}  // namespace hoist
