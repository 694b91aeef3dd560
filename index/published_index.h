// Published layer indexes (issue 17 item 2, "Share it"): the LayerIndex of an unconverted
// tar+gzip or tar+zstd layer, checkpoint index included, as a blob of an OCI artifact that
// refers to the image's platform manifest, so that a first mount on any host reads such a layer
// lazily without streaming the whole blob once to index it. The artifact itself (manifest,
// annotations) is index/FORMATS.md, "Published layer indexes"; this header is the blob.
//
// Two blobs per layer (artifact version 2):
//   - the table: one zstd frame that declares its content size, whose content is the layer's
//     index record exactly as the store keeps it (index/layer_index_codec.h, version 3, checksum
//     trailer included) with LayerIndex::stream_index set (index/gzip_index.h), a checkpoint
//     index whose windows are external (format version 2) when it has any;
//   - the windows blob: the checkpoints' packed 32 KiB windows back to back, each a byte range
//     the table records with its sha256, so a mount fetches the table whole and each window by
//     HTTP Range only when a read starts at its checkpoint (fusefs/zran_reader.h).
// Version 1 artifacts (one blob per layer, windows inline) are no longer read: a mount lists
// only version 2 artifacts, so an image indexed by an older hoist is indexed from its whole blob
// as if it had no artifact, until `hoist index` is run again.
//
// Trust: the table is untrusted input. DecodePublishedLayerIndex refuses (EBADMSG, one line)
// anything that is not a well-formed index of exactly the layer the caller names: the frame
// and its declared size (capped), the record (checksum, every field), the layer digest, blob
// size and format, a checkpoint index that parses against the layer's size and digest, clean
// entry paths and hardlink targets, and for every regular file a digest and kStream / kZeros
// chunks that cover it in order and lie inside the decompressed stream. What it cannot check
// without the whole blob: that the entries are the layer's tar (metadata such as modes and
// symlink targets, and which stream bytes a file is) and that every window is right. Each
// window range lies inside the windows blob's declared size (checked here; the caller checks
// that the artifact's windows blob has that digest and size), and each window fetched is
// checked against its sha256 and size and unpacked before use (CheckWindow). File
// bytes are still served only once they hash to Entry::digest (fusefs/zran_reader.h), but
// that digest comes from the same artifact: a published index is trusted for the layer's file
// list as much as whoever can push to the repository (docs/RELIABILITY.md).
//
// Errors: EBADMSG "published layer index: ..." (one line). Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/digest.h"
#include "base/status.h"
#include "index/layer_index.h"

namespace hoist {

// The artifact's type and its blobs' media types.
inline constexpr std::string_view kLayerIndexArtifactType = "application/vnd.hoist.layer-index.v2";
inline constexpr std::string_view kLayerIndexBlobMediaType =
    "application/vnd.hoist.layer-index.v2.table+zstd";
inline constexpr std::string_view kLayerIndexWindowsMediaType =
    "application/vnd.hoist.layer-index.v2.windows";
// The version 1 artifact type, recognised only to say it is no longer read.
inline constexpr std::string_view kLayerIndexArtifactTypeV1 =
    "application/vnd.hoist.layer-index.v1";
// Blob annotations (table and windows blob): the layer digest the blob indexes (required) and
// the layer's compressed size (informational).
inline constexpr std::string_view kLayerIndexLayerAnnotation = "io.hoist.layer-index.layer.digest";
inline constexpr std::string_view kLayerIndexLayerSizeAnnotation =
    "io.hoist.layer-index.layer.size";

struct PublishedIndexLimits {
  uint64_t max_blob_bytes = 128ull << 20;    // the compressed blob
  uint64_t max_record_bytes = 512ull << 20;  // its declared content size
  uint64_t max_entries = 4u << 20;
};

// The table blob for `index` as it is (REQUIRES: an index of a kTarGzip / kTarZstd layer,
// stream_index set). `level`: zstd compression level.
std::string EncodePublishedLayerIndex(const LayerIndex& index, int level = 10);

// What `hoist index` publishes for `index` (an index as the indexer builds it, windows inline):
// the table, with the windows moved out, and the windows blob ("" when the index has no window).
struct PublishedLayerBlobs {
  std::string table;
  std::string windows;
};
[[nodiscard]] Result<PublishedLayerBlobs> PublishLayerIndex(const LayerIndex& index,
                                                            int level = 10);

// The blob decoded and checked against the layer it must index (see "Trust").
[[nodiscard]] Result<LayerIndex> DecodePublishedLayerIndex(std::string_view blob,
                                                           const Digest& layer_digest,
                                                           uint64_t layer_size, LayerFormat format,
                                                           const PublishedIndexLimits& limits = {});

}  // namespace hoist
