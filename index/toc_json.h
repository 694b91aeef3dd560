// The TOC JSON shared by zstd:chunked and eStargz ({"version":1,"entries":[...]}), read into
// LayerIndex entries in one pass: each JSON entry becomes an Entry (or a Chunk of the regular
// file before it) as soon as its object ends, so no intermediate records or document tree exist
// (a 100,000-entry TOC is 32 MB of text; the index it becomes is about a third of that).
//
// Field rules: every field must have its JSON type, numbers must be non-negative integers in
// range, names must clean, digests must parse, modtimes must be RFC 3339, xattrs must be base64.
// String lengths are capped as each string arrives (index/FORMATS.md): name and linkName 4096
// bytes, digests 256, type/chunkType/modtime 64, keys and xattr names 255, one xattr value 87,384
// (64 KiB in base64), an entry's xattr values 1 MiB in all, any other string 4096; "TOC entry N:
// name longer than 4096 bytes" (EBADMSG). A string far past every cap stops the parse before the
// rest of it is read (TocLimits::max_token_buffer), so memory stays bounded whatever the text.
// Unknown fields are ignored; a key given twice keeps its first value. String bytes are taken as
// they are (no UTF-8 check: names are bytes, as in tar).
//
// Chunk ranges: the JSON gives only where each chunk starts in the blob. For zstd:chunked with
// endOffset (skopeo, containers/storage, hoist) a chunk ends at the next offset within its file,
// the last at the file's endOffset: encoding kZstdFrame. Without any endOffset (ctr-remote) and
// for eStargz a chunk ends at the next distinct offset of any entry, or at `data_end` (the TOC's
// offset): encoding kZstdFramePrefix or kGzipMember, with innerOffset.
//
// Hostile TOCs are rejected: chunk entries that do not follow their file, chunk ranges outside
// [0, data_end) or overlapping (identical ranges are allowed in the stargz layouts, where chunks
// share a frame or gzip member), chunk sizes that do not tile the file exactly, absurd sizes or
// entry counts (EFBIG). Other errors are EBADMSG and name the entry index and its name.
// Repeated paths and hardlink targets are not checked here: the merge rules decide them for
// every layer format alike (CheckLayerRules, fusefs/merged_view.h), the last entry of a path
// winning as in tar extraction.
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

// Whose conventions decide the chunk ranges and encodings (see above).
enum class TocFormat { kZstdChunked, kEstargz };

struct TocIndex {
  int version = 1;
  std::vector<Entry> entries;  // in TOC order, chunks attached
  Digest tar_split_digest;     // "tarSplitDigest" (zstd:chunked), may be empty
  // Chunks end at the next offset of any entry (eStargz, or zstd:chunked without endOffset):
  // such TOCs may carry eStargz landmark entries (ApplyStargzLandmarks).
  bool stargz_layout = false;
};

struct TocLimits {
  uint64_t max_entries = 10'000'000;
  uint64_t max_file_size = uint64_t{1} << 44;  // 16 TiB
  // Ceiling on the parser's buffer for the one JSON string it is reading: a longer string stops
  // the parse when the next piece of text is needed (so the buffer passes it by at most a piece
  // and one growth step). Must stay above the longest string a field may hold (87,384 bytes of
  // base64 xattr value, grown by halves: 112,112 bytes).
  size_t max_token_buffer = 256 << 10;
};

// The field hoist writes to mark a prefetch entry (see FORMATS.md).
inline constexpr const char kTocPrefetchKey[] = "hoist.prefetch";

// The next piece of a TOC's JSON text: an empty view at the end, or an error that ends the parse
// (returned as it is). A piece stays valid until the next call.
using TocTextSource = std::function<Result<std::string_view>()>;

// Reads a TOC whose text arrives in pieces (decompressed as it is read), so the whole text is
// never in memory at once. Parsing stops at the end of the root object; the source is not
// drained past it. `data_end`: blob offset where file data ends (the TOC's offset).
// `text_bytes`, when known (the footer's declared size), sizes the entry array up front.
[[nodiscard]] Result<TocIndex> ParseTocStream(const TocTextSource& next, TocFormat format,
                                              uint64_t data_end, const TocLimits& limits = {},
                                              uint64_t text_bytes = 0);

// ParseTocStream over text held whole.
[[nodiscard]] Result<TocIndex> ParseToc(std::string_view json, TocFormat format, uint64_t data_end,
                                        const TocLimits& limits = {});

}  // namespace hoist

namespace hoist {
// eStargz landmarks: removes ".prefetch.landmark", ".no.prefetch.landmark" and
// "stargz.index.json" at the layer root; entries before ".prefetch.landmark" get prefetch=true.
void ApplyStargzLandmarks(std::vector<Entry>& entries);
}  // namespace hoist
