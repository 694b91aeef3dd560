// The TOC JSON shared by zstd:chunked and eStargz ({"version":1,"entries":[...]}), parsed into
// LayerIndex entries. Format-specific code computes chunk blob ranges afterwards: the JSON only
// gives chunk start offsets (see zstd_chunked.h and estargz.h).
//
// ParseTocJson validates types and shapes (every field must have its JSON type, numbers must be
// non-negative integers in range, names must clean, digests must parse, modtimes must be RFC
// 3339, xattrs must be base64) and builds TocRecords in document order; `chunk` records are kept
// as separate records so the caller can attach them. Unknown fields are ignored; a key given
// twice keeps its first value. String bytes are taken as they are (no UTF-8 check: names are
// bytes, as in tar). The text is read by a SAX handler, so no document tree is built. Errors
// are EBADMSG and name the entry index and its name.
//
// FinishTocIndex then attaches chunks to their regular files, computes Chunk.blob_offset and
// blob_length, and rejects hostile TOCs: duplicate paths, hardlinks to names not earlier in the
// layer, chunk ranges outside [0, data_end) or overlapping, chunk sizes that do not cover the
// file exactly, absurd sizes (EFBIG).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "index/layer_index.h"

namespace hoist {

struct TocRecord {
  Entry entry;  // for `chunk` records only path and size are meaningful
  bool is_chunk = false;
  bool zeros = false;  // chunkType "zeros"
  bool has_offset = false;
  bool has_end_offset = false;
  uint64_t offset = 0;        // "offset"
  uint64_t end_offset = 0;    // "endOffset" (zstd:chunked)
  uint64_t inner_offset = 0;  // "innerOffset" (eStargz)
  uint64_t chunk_offset = 0;
  uint64_t chunk_size = 0;  // 0: to the end of the file
  Digest chunk_digest;
  std::string raw_name;
};

struct TocJson {
  int version = 1;
  std::vector<TocRecord> records;
  Digest tar_split_digest;  // "tarSplitDigest" (zstd:chunked), may be empty
};

struct TocLimits {
  uint64_t max_entries = 10'000'000;
  uint64_t max_file_size = uint64_t{1} << 44;  // 16 TiB
};

// The field hoist writes to mark a prefetch entry (see FORMATS.md).
inline constexpr const char kTocPrefetchKey[] = "hoist.prefetch";

[[nodiscard]] Result<TocJson> ParseTocJson(std::string_view json, const TocLimits& limits = {});

// The next piece of a TOC's JSON text: an empty view at the end, or an error that ends the parse
// (returned as it is). A piece stays valid until the next call.
using TocTextSource = std::function<Result<std::string_view>()>;

// ParseTocJson over text that arrives in pieces (a TOC decompressed as it is read), so the
// whole JSON text is never in memory at once. Parsing stops at the end of the root object; the
// source is not drained past it. `text_bytes`, when known (the footer's declared size), sizes
// the record array up front so it is not regrown (each regrowth moved every record so far).
[[nodiscard]] Result<TocJson> ParseTocJsonStream(const TocTextSource& next,
                                                 const TocLimits& limits = {},
                                                 uint64_t text_bytes = 0);

// Parses "2006-01-02T15:04:05.999999999Z07:00" style times. Exposed for tests.
[[nodiscard]] Result<std::pair<int64_t, uint32_t>> ParseRfc3339(std::string_view text);

// kZstdChunked: chunk i ends at the next chunk's offset, the last at the file's endOffset
//   (skopeo / containers/storage); encoding kZstdFrame.
// kZstdChunkedStargzLayout: no endOffset (ctr-remote); a chunk ends at the next distinct offset
//   of any entry or at data_end; encoding kZstdFramePrefix.
// kEstargz: as above, encoding kGzipMember with innerOffset.
enum class TocFlavor { kZstdChunked, kZstdChunkedStargzLayout, kEstargz };

// Builds entries (chunks attached, ranges computed, validated). `data_end`: blob offset where
// file data ends (the TOC offset). Chunk encodings: kZstdFrame / kZeros, or kGzipMember.
[[nodiscard]] Result<std::vector<Entry>> FinishTocIndex(std::vector<TocRecord> records,
                                                        TocFlavor flavor, uint64_t data_end,
                                                        const TocLimits& limits = {});

}  // namespace hoist

namespace hoist {
// eStargz landmarks: removes ".prefetch.landmark", ".no.prefetch.landmark" and
// "stargz.index.json" at the layer root; entries before ".prefetch.landmark" get prefetch=true.
void ApplyStargzLandmarks(std::vector<Entry>& entries);
}  // namespace hoist
