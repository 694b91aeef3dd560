// libFuzzer target: ParseToc on the input for each format (zstd:chunked, which picks its layout
// from the presence of endOffset, and eStargz) with a large and a small data end, then the stargz
// landmarks. On success: only regular files have chunks, and every regular file's chunks cover it
// exactly within [0, data_end) without overlap (identical ranges are allowed in the stargz
// layouts, where chunks share a frame or gzip member). Repeated paths and hardlink targets are
// the merge rules' (fuzz_merged_view), not the reader's.
// The same text is also read streamed, in pieces whose size the first byte picks, with a small
// string-buffer ceiling (TocLimits::max_token_buffer): it must accept exactly what the
// whole-text read accepts, with as many entries, and what it accepts keeps the string caps (names
// and link targets <= 4096 bytes, xattr values <= 64 KiB + 2 decoded).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "index/toc_json.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

void Check(const std::vector<hoist::Entry>& entries, bool stargz_layout, uint64_t data_end) {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const hoist::Entry& e : entries) {
    FUZZ_CHECK(e.path.size() <= 4096 && e.link_name.size() <= 4096);
    for (const hoist::Xattr& x : e.xattrs)
      FUZZ_CHECK(x.name.size() <= 255 && x.value.size() <= 65538);
    if (e.type != hoist::EntryType::kRegular) {
      FUZZ_CHECK(e.chunks.empty());
      continue;
    }
    uint64_t covered = 0;
    for (const hoist::Chunk& c : e.chunks) {
      FUZZ_CHECK(c.file_offset == covered);
      FUZZ_CHECK(c.size > 0 && c.size <= e.size - covered);
      covered += c.size;
      if (c.encoding == hoist::ChunkEncoding::kZeros) continue;
      FUZZ_CHECK(!c.digest.empty());
      FUZZ_CHECK(c.blob_length > 0);
      FUZZ_CHECK(c.blob_offset < data_end && c.blob_length <= data_end - c.blob_offset);
      ranges.emplace_back(c.blob_offset, c.blob_offset + c.blob_length);
    }
    FUZZ_CHECK(covered == e.size);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i] == ranges[i - 1] && stargz_layout) continue;
    FUZZ_CHECK(ranges[i].first >= ranges[i - 1].second);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (256 << 10)) return 0;
  hoist::TocLimits limits;
  limits.max_entries = 4096;
  limits.max_file_size = uint64_t{1} << 30;
  for (auto format : {hoist::TocFormat::kZstdChunked, hoist::TocFormat::kEstargz}) {
    for (uint64_t data_end : {uint64_t{1} << 40, uint64_t{4096}}) {
      const std::string_view text = hoist::fuzz::AsView(data, size);
      auto toc = hoist::ParseToc(text, format, data_end, limits);
      // Streamed in small pieces with a small ceiling (still above every cap's grown buffer).
      const size_t piece = size > 0 ? 1 + data[0] % 64 : 1;
      size_t at = 0;
      hoist::TocLimits small = limits;
      small.max_token_buffer = 120 << 10;
      auto streamed = hoist::ParseTocStream(
          [&]() -> hoist::Result<std::string_view> {
            std::string_view p = text.substr(at, piece);
            at += p.size();
            return p;
          },
          format, data_end, small);
      // The smaller ceiling may stop a bad TOC earlier, with another message, but never
      // changes whether it is accepted (no accepted string grows the buffer past 112,112).
      FUZZ_CHECK(toc.has_value() == streamed.has_value());
      if (!toc) continue;
      FUZZ_CHECK(toc->entries.size() == streamed->entries.size());
      Check(toc->entries, toc->stargz_layout, data_end);
      if (toc->stargz_layout) hoist::ApplyStargzLandmarks(toc->entries);
    }
  }
  return 0;
}
