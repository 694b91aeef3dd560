// zstd:chunked reading: footer, manifest annotations, TOC (see FORMATS.md, "zstd:chunked —
// layout" and "zstd:chunked — reading").
//
//   blob = [zstd frames: tar headers + payload chunks][skippable: TOC][skippable: tar-split]
//          [skippable: footer]
//
// The TOC is trusted only after its compressed bytes hash to the manifest annotation
// (manifest-checksum; for ctr-remote output, containerd.io/snapshot/stargz/toc.digest — see
// FORMATS.md for which bytes that covers). Decompression is capped before and while it runs.
//
// Errors: EBADMSG for malformed or lying data (footer, positions, TOC, JSON), EIO for a digest
// mismatch, EFBIG for a declared or actual size over a cap, ENOENT when a layer carries no
// zstd:chunked annotation at all (ParseZstdChunkedAnnotations), errors of the range reader
// unchanged (with context).
//
// Thread-safety: pure functions; LoadZstdChunkedIndex calls `read` from the calling thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "base/digest.h"
#include "base/status.h"
#include "index/blob_tail.h"  // BlobRangeReader
#include "index/layer_index.h"
#include "index/toc_json.h"

namespace hoist {

inline constexpr uint64_t kZstdChunkedFooterV1Size = 48;
inline constexpr uint64_t kZstdChunkedFooterV2Size = 72;
inline constexpr uint32_t kZstdSkippableMagic = 0x184D2A50;
inline constexpr char kZstdChunkedMagic[] = "GnUlInUx";

// Annotation keys (hoist writes the io.github.containers.* ones).
inline constexpr char kAnnotationTocChecksum[] =
    "io.github.containers.zstd-chunked.manifest-checksum";
inline constexpr char kAnnotationTocPosition[] =
    "io.github.containers.zstd-chunked.manifest-position";
inline constexpr char kAnnotationTarSplitPosition[] =
    "io.github.containers.zstd-chunked.tarsplit-position";
inline constexpr char kAnnotationStargzTocDigest[] = "containerd.io/snapshot/stargz/toc.digest";

struct BlobRange {
  uint64_t offset = 0;
  uint64_t length = 0;               // compressed bytes
  uint64_t uncompressed_length = 0;  // declared
};

struct ZstdChunkedFooter {
  int version = 1;  // 1 (48 bytes) or 2 (72 bytes)
  uint64_t footer_size = 0;
  BlobRange toc;  // offset of the TOC frame's compressed bytes
  uint64_t toc_type = 1;
  std::optional<BlobRange> tar_split;  // v2 only
};

// `tail` is the last min(72, blob_size) bytes of the blob. Validates that the ranges lie before
// the footer and do not overlap it or each other.
[[nodiscard]] Result<ZstdChunkedFooter> ParseZstdChunkedFooter(std::string_view tail,
                                                               uint64_t blob_size);

struct ZstdChunkedAnnotations {
  Digest toc_digest;       // manifest-checksum: sha256 of the compressed TOC frame bytes
  Digest toc_json_digest;  // stargz toc.digest (ctr-remote): sha256 of the uncompressed TOC JSON
  std::optional<BlobRange> toc;        // manifest-position (type must be 1)
  std::optional<BlobRange> tar_split;  // tarsplit-position
};

// Accepts both prefixes (io.github.containers.* and io.containers.*). ENOENT if none of the keys
// is present; EBADMSG if a present key is malformed.
[[nodiscard]] Result<ZstdChunkedAnnotations> ParseZstdChunkedAnnotations(
    const std::map<std::string, std::string>& annotations);

// "off:clen:ulen[:type]"; `want_type` says whether the 4th field is required.
[[nodiscard]] Result<BlobRange> ParseBlobPosition(std::string_view text, bool want_type,
                                                  uint64_t* type = nullptr);

struct ZstdChunkedLimits {
  uint64_t max_toc_size = 256ull << 20;         // uncompressed TOC cap
  uint64_t max_tar_split_size = 1024ull << 20;  // uncompressed tar-split cap
  TocLimits toc;
};

// Decompresses zstd frame(s) in `compressed`; the output must be <= cap (EFBIG, enforced while
// decompressing) and, if `expected_size` is set, exactly that size (EBADMSG).
[[nodiscard]] Result<std::string> ZstdDecompressCapped(std::string_view compressed, uint64_t cap,
                                                       std::optional<uint64_t> expected_size = {});

// Verifies sha256(compressed) == toc_digest and/or sha256(json) == toc_json_digest (EIO),
// decompresses (capped), parses and validates the TOC; `data_end` is where file data ends in the
// blob (the TOC offset). Either digest may be empty, not both. uncompressed_size 0 = not declared.
// `tar_split_digest`, if given, receives the TOC's tarSplitDigest (empty when absent).
[[nodiscard]] Result<LayerIndex> ParseZstdChunkedToc(std::string_view compressed_toc,
                                                     const Digest& toc_digest,
                                                     const Digest& toc_json_digest,
                                                     uint64_t uncompressed_size, uint64_t data_end,
                                                     const ZstdChunkedLimits& limits = {},
                                                     Digest* tar_split_digest = nullptr);

struct ZstdChunkedLayer {
  LayerIndex index;
  // The parsed footer; when the annotations gave the TOC's position it is not read, and this
  // holds version 0, footer_size 0 and the annotations' TOC and tar-split ranges.
  ZstdChunkedFooter footer;
  Digest tar_split_digest;  // the TOC's tarSplitDigest (sha256 of the compressed tar-split), may be
                            // empty
};

// The whole read path: positions from the annotations (or the footer), fetch, verify against
// the annotation digest, parse. Sets index.layer_digest, blob_size, format.
// Requests: with the manifest-position annotation, ONE (the TOC's range; the footer is not read,
// the TOC digest is the check that matters); without it, the blob's tail (blob_tail.h), which
// usually holds footer and TOC, plus the part of the TOC before it if not.
[[nodiscard]] Result<ZstdChunkedLayer> LoadZstdChunkedLayer(
    const BlobRangeReader& read, uint64_t blob_size, const Digest& layer_digest,
    const ZstdChunkedAnnotations& annotations, const ZstdChunkedLimits& limits = {});

}  // namespace hoist
