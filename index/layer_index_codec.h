// Binary serialisation of a LayerIndex, as the store keeps it (one record per layer digest).
//
// Record layout (all integers are LEB128 varints unless noted; strings are varint length + bytes):
//   u8 version (= kLayerIndexCodecVersion)
//   layer digest: 32 raw sha256 bytes
//   blob_size, u8 format, entry count
//   per entry: path (varint length shared with the previous entry's path, then the rest as a
//              string), u8 type, mode, uid, gid, zigzag mtime_sec, mtime_nsec, size, link_name,
//              dev_major, dev_minor, xattr count {name, value}*, optional digest, u8 prefetch,
//              chunk count {file_offset, size, blob_offset, blob_length, inner_offset,
//                           u8 encoding, optional digest}*
//   version >= 3: stream_index (a string: the serialized checkpoint index, may be empty)
//   optional digest = u8 0 (empty) | u8 1 + 32 raw bytes | u8 2 (a chunk's only: the same as
//                     its entry's digest)
//   trailer: u64 little-endian XXH3_64bits of every byte before it
//
// Decode treats the bytes as untrusted: the checksum, the version, every enum, every length and
// count (bounded by the bytes left, so a lying count cannot allocate), varint overflow and
// trailing bytes are checked. A bad record is an error (EIO, "corrupt layer index record: ..."),
// never a crash. Decode does not re-check semantic rules the format readers enforce (chunk
// coverage, path cleanliness).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/status.h"
#include "index/layer_index.h"

namespace hoist {

// 2: shared path prefixes and chunk digests that repeat the file's (about 60% of version 1's
// size for small files). 3: LayerIndex::stream_index after the entries. Encode writes version
// 3; decode also reads versions 1 and 2 (older caches; their stream_index is empty).
inline constexpr uint8_t kLayerIndexCodecVersion = 3;
inline constexpr uint8_t kOldestLayerIndexCodecVersion = 1;

// REQUIRES: !index.layer_digest.empty().
std::string EncodeLayerIndex(const LayerIndex& index);

// The same in two steps, to encode straight into storage: the exact record size, then the
// record into `out`. REQUIRES: out.size() == EncodedLayerIndexSize(index).
size_t EncodedLayerIndexSize(const LayerIndex& index);
void EncodeLayerIndexInto(const LayerIndex& index, std::span<char> out);

// Errors: EIO for any corrupt, truncated or unknown-version record.
[[nodiscard]] Result<LayerIndex> DecodeLayerIndex(std::string_view bytes);

}  // namespace hoist
