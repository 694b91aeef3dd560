// BlobTail: the end of a blob read in one request, sized so that a TOC-at-the-end format
// (eStargz, zstd:chunked without position annotations) usually gets its footer AND its TOC in
// that request, instead of reading the footer and then, one round trip later, the TOC.
//
// The guess is ~1% of the blob (TOCs measured ~0.5% of a layer: 706 KB for the 125 MB python
// layer, see docs/ARCHITECTURE.md), between 64 KiB and 1 MiB, never less than the footer and
// never more than the blob. When the TOC starts before the tail, ReadBlobRange fetches only the
// part the tail lacks: a wrong guess costs the round trip that was always paid, never bytes
// twice.
//
// Thread-safety: plain values and functions; `read` is called on the calling thread.
// Errors: those of `read`; EIO for a short read.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "base/status.h"

namespace hoist {

// Reads `length` bytes at `offset` of the blob.
using BlobRangeReader = std::function<Result<std::string>(uint64_t offset, uint64_t length)>;

struct BlobTail {
  uint64_t start = 0;  // blob offset of bytes[0]
  std::string bytes;   // up to the end of the blob
};

// How many bytes at the end of a `blob_size` blob to read (see the file comment); at least
// `min_bytes` (the footer), at most blob_size.
uint64_t TailGuess(uint64_t blob_size, uint64_t min_bytes);

// Reads the last TailGuess(blob_size, min_bytes) bytes.
[[nodiscard]] Result<BlobTail> ReadBlobTail(const BlobRangeReader& read, uint64_t blob_size,
                                            uint64_t min_bytes);

// Blob bytes [offset, offset + length): from `tail` where it covers them, the rest with one
// read. The range must lie within the blob (the caller checked it against the footer).
[[nodiscard]] Result<std::string> ReadBlobRange(const BlobRangeReader& read, const BlobTail& tail,
                                                uint64_t offset, uint64_t length);

}  // namespace hoist
