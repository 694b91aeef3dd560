// Binary serialisation of a LayerIndex, as the store keeps it (one record per layer digest).
//
// Record layout (all integers are LEB128 varints unless noted; strings are varint length + bytes):
//   u8 version (= kLayerIndexCodecVersion)
//   layer digest: 32 raw sha256 bytes
//   blob_size, u8 format, entry count
//   per entry: path, u8 type, mode, uid, gid, zigzag mtime_sec, mtime_nsec, size, link_name,
//              dev_major, dev_minor, xattr count {name, value}*, optional digest, u8 prefetch,
//              chunk count {file_offset, size, blob_offset, blob_length, inner_offset,
//                           u8 encoding, optional digest}*
//   optional digest = u8 0 (empty) | u8 1 + 32 raw bytes
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
#include <string>
#include <string_view>

#include "base/status.h"
#include "index/layer_index.h"

namespace hoist {

inline constexpr uint8_t kLayerIndexCodecVersion = 1;

// REQUIRES: !index.layer_digest.empty().
std::string EncodeLayerIndex(const LayerIndex& index);

// Errors: EIO for any corrupt, truncated or unknown-version record.
[[nodiscard]] Result<LayerIndex> DecodeLayerIndex(std::string_view bytes);

}  // namespace hoist
