// zstd:chunked writer: turns a tar stream into a zstd:chunked blob whose plain `zstd -d` output
// is the source tar byte for byte (same diff_id), in one streaming pass with bounded memory.
//
// Output: [frame: tar metadata][frame: chunk]...[frame: metadata + trailer]
//         [skippable: TOC frame][skippable: tar-split frame][skippable: 72-byte v2 footer]
// - every non-empty file payload is cut into content-defined chunks (gear rolling hash, average
//   ~options.chunk_target bytes, min target/4, max target*4); each chunk is its own zstd frame;
// - runs of >= options.zero_run_min zero bytes inside a file become chunks of type "zeros"
//   (still a zstd frame of zeros, so decompression stays exact; readers make holes);
// - tar headers, pax data and padding between payloads go into the frames in between;
// - the TOC lists every tar member (entries in tar order; chunk entries follow their file),
//   with offset/endOffset for every chunk; paths in options.prefetch get "hoist.prefetch":true;
// - the tar-split (JSON lines, tar-split format) lets a reader rebuild the exact tar;
// - a PAX sparse member (tar_reader.h) gets the TOC entry of its expanded file: name and size
//   are the real ones, its data segments are chunked as above at their file offsets, its holes
//   are "zeros" chunks with no offsets (no frame), its digest is of the expanded content (left
//   out if the holes exceed 1 GiB). The stream keeps its bytes: the 1.0 map blocks go with the
//   headers, the stored data in chunk frames. Its stored data goes into the tar-split as raw
//   segments (a file record would copy the expanded file): at most options.max_sparse_inline
//   bytes of it per layer, else ENOTSUP.
// See index/FORMATS.md.
//
// Threads: with options.threads > 1, frames are compressed by a pool of that many workers while
// the calling thread reads, hashes and cuts the tar; frames are written in order, so the blob is
// byte-identical for every thread count (each frame is compressed on its own with the same
// parameters). At most 2*threads frames (and about 32 MiB of input) are in flight.
//
// Memory: O(in-flight frames + metadata of one member) for the data, plus the TOC and tar-split,
// which grow with the number of entries only. Each input byte is hashed once into the diff_id,
// once into its chunk digest (on a worker), and, for files of more than one chunk, once into the
// file digest (a one-chunk file's digest is its chunk digest); the CRC-64 for tar-split and
// the rolling hash also see each byte once. The blob digest covers the compressed output.
//
// Errors: those of the TarReader (EBADMSG/EINVAL/ENOTSUP/...), of the callbacks (unchanged), EIO
// from zstd. Thread-safety: one call per thread; callbacks are called from the calling thread
// only; the workers never touch them and are joined before WriteZstdChunked returns.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/status.h"
#include "index/byte_stream.h"
#include "index/zstd_chunked.h"

namespace hoist {

struct ZstdChunkedWriterOptions {
  int compression_level = 3;
  uint64_t chunk_target = 256 << 10;  // average content-defined chunk size (power of two)
  uint64_t zero_run_min = 1024;       // zero runs this long or longer become "zeros" chunks
  std::vector<std::string> prefetch;  // cleaned paths to mark in the TOC (the caller reorders)
  int threads = 1;                    // compression workers; <= 1 compresses on the calling thread
  uint64_t max_sparse_inline = 64 << 20;  // PAX sparse data put into the tar-split, per layer
};

struct ZstdChunkedWriteResult {
  Digest blob_digest;  // sha256 of the blob written
  uint64_t blob_size = 0;
  Digest diff_id;  // sha256 of the tar read
  uint64_t tar_size = 0;
  Digest toc_digest;  // sha256 of the compressed TOC frame (manifest-checksum)
  BlobRange toc;
  BlobRange tar_split;
  Digest tar_split_digest;  // sha256 of the compressed tar-split frame
  uint64_t entries = 0;
  uint64_t chunks = 0;
  // io.github.containers.zstd-chunked.{manifest-checksum,manifest-position,tarsplit-position}
  std::map<std::string, std::string> annotations;
};

[[nodiscard]] Result<ZstdChunkedWriteResult> WriteZstdChunked(
    ReadCallback tar, WriteCallback sink, const ZstdChunkedWriterOptions& options = {});

// CRC-64/ISO as tar-split stores it (Go hash/crc64 ISO table). Exposed for tests.
uint64_t Crc64Iso(uint64_t crc, const void* data, size_t size);

}  // namespace hoist
