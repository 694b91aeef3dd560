// libFuzzer target: ParseToc on the input for each format (zstd:chunked, which picks its layout
// from the presence of endOffset, and eStargz) with a large and a small data end, then the stargz
// landmarks. On success: only regular files have chunks, and every regular file's chunks cover it
// exactly within [0, data_end) without overlap (identical ranges are allowed in the stargz
// layouts, where chunks share a frame or gzip member). Repeated paths and hardlink targets are
// the merge rules' (fuzz_merged_view), not the reader's.
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
      auto toc = hoist::ParseToc(hoist::fuzz::AsView(data, size), format, data_end, limits);
      if (!toc) continue;
      Check(toc->entries, toc->stargz_layout, data_end);
      if (toc->stargz_layout) hoist::ApplyStargzLandmarks(toc->entries);
    }
  }
  return 0;
}
