// LayerIndex: the format-independent description of one layer, built from a zstd:chunked or
// eStargz TOC, from a plain tar walk, or (later) from a zran index. Everything above index/ (the
// merged view, the prefetcher, the stats) works on this model and never on a format.
//
// Entries keep tar order and raw semantics: a whiteout is still an entry named ".wh.x" and an
// opaque marker is still ".wh..wh..opq"; the merged view (fusefs/) interprets them. Paths are
// cleaned by the format readers (no leading "/" or "./", no "." or ".." components, no trailing
// "/"); "" names the layer root. A reader rejects a name it cannot clean safely.
//
// A Chunk says how to get `size` bytes of a file: which byte range of the blob to fetch, how to
// decode it, and the sha256 the decoded bytes must have. Nothing is served without a check:
// either the chunk digest, or (for kStream chunks) the digest of the whole blob.
//
// Thread-safety: plain values. An index is immutable once built and may be shared read-only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/digest.h"

namespace hoist {

enum class EntryType : uint8_t {
  kRegular = 0,
  kDirectory = 1,
  kSymlink = 2,
  kHardlink = 3,
  kCharDevice = 4,
  kBlockDevice = 5,
  kFifo = 6,
};

enum class ChunkEncoding : uint8_t {
  // blob[blob_offset, blob_offset + blob_length) holds complete zstd frame(s) that decode to
  // exactly `size` bytes (zstd:chunked).
  kZstdFrame = 0,
  // blob range holds gzip member(s); decode, skip `inner_offset` bytes, take `size` (eStargz).
  kGzipMember = 1,
  // `size` zero bytes; nothing is fetched.
  kZeros = 2,
  // `size` uncompressed bytes stored as they are at blob_offset (plain tar layers).
  kRaw = 3,
  // `size` bytes at `inner_offset` of the decompressed stream of the whole blob (unconverted
  // tar+gzip / tar+zstd layers: served through LayerIndex::stream_index by range, verified by
  // the file's digest, or after a full fetch, verified by the blob digest).
  kStream = 4,
  // blob range holds zstd frame(s); decode, skip `inner_offset` bytes, take `size`; the decoded
  // bytes after that are ignored (ctr-remote's zstd:chunked, laid out like eStargz: the frame
  // that starts a payload also holds the tar headers that follow it).
  kZstdFramePrefix = 5,
};

struct Chunk {
  uint64_t file_offset = 0;  // where the chunk starts within the file
  uint64_t size = 0;         // uncompressed bytes
  uint64_t blob_offset = 0;
  uint64_t blob_length = 0;
  uint64_t inner_offset = 0;
  ChunkEncoding encoding = ChunkEncoding::kZstdFrame;
  Digest digest;  // sha256 of the `size` uncompressed bytes; may be empty for kZeros/kStream
};

struct Xattr {
  std::string name;
  std::string value;  // raw bytes
  friend bool operator==(const Xattr&, const Xattr&) = default;
};

// Fields are ordered by alignment (no padding holes): an image index holds one per file.
struct Entry {
  std::string path;       // cleaned; "" is the root
  std::string link_name;  // symlink: target as stored; hardlink: cleaned path of the target
  std::vector<Xattr> xattrs;
  std::vector<Chunk> chunks;  // regular files with size > 0: cover [0, size) in order
  uint64_t size = 0;          // regular files: content size; symlinks: 0 (use link_name)
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint32_t mode = 0;  // permission bits incl. setuid/setgid/sticky (07777); no S_IFMT bits
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
  Digest digest;  // regular files: sha256 of the whole content (may be empty)
  EntryType type = EntryType::kRegular;
  bool prefetch = false;  // marked for priority prefetch by the producer
};
static_assert(sizeof(Entry) <= 192, "Entry grew: every file of every mounted layer pays for it");

enum class LayerFormat : uint8_t {
  kZstdChunked = 0,
  kEstargz = 1,
  kTar = 2,
  kTarGzip = 3,
  kTarZstd = 4,
};

struct LayerIndex {
  Digest layer_digest;  // digest of the compressed blob
  uint64_t blob_size = 0;
  LayerFormat format = LayerFormat::kZstdChunked;
  std::vector<Entry> entries;
  // tar+gzip / tar+zstd: the serialized checkpoint index of the blob (index/gzip_index.h), so
  // kStream chunks can be read lazily by range; empty when there is none (a single zstd frame,
  // a refused or unbuilt index: the layer is then fetched whole).
  std::string stream_index;
};

// How every message names a layer of an image: "layer 2 of 3 (sha256:...)", numbered from 1 as
// users count, bottom layer first. `index` is 0-based; `id` is the layer digest (or, for an
// archive, the member name); an empty `id` leaves the parenthesis out.
std::string LayerLabel(size_t index, size_t count, std::string_view id);

}  // namespace hoist
