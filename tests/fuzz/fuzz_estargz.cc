// libFuzzer target: the eStargz reader's parsers on a fuzzed blob: ParseEstargzFooter on its
// last 51 bytes, GunzipCapped with a small cap, and ParseEstargzToc on the whole input as the TOC
// gzip member (no digest: the TOC JSON, tar extraction and chunk ranges are reached). Caps are
// small (64 KiB, 4096 entries). On success the footer's TOC offset lies before the footer, and
// the chunks of every regular file cover it exactly.
#include <cstddef>
#include <cstdint>

#include "base/digest.h"
#include "index/estargz.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = hoist::fuzz::AsView(data, size);
  std::string_view tail = in.substr(in.size() > 51 ? in.size() - 51 : 0);
  auto footer = hoist::ParseEstargzFooter(tail, in.size());
  if (footer) {
    FUZZ_CHECK(footer->footer_size == 51 || footer->footer_size == 47);
    FUZZ_CHECK(footer->toc_offset < in.size() - footer->footer_size);
  }
  auto plain = hoist::GunzipCapped(in, 4096);
  if (plain) FUZZ_CHECK(plain->size() <= 4096);

  hoist::EstargzLimits limits;
  limits.max_toc_compressed = 64 << 10;
  limits.max_toc_size = 64 << 10;
  limits.toc.max_entries = 4096;
  limits.toc.max_file_size = uint64_t{1} << 30;
  constexpr uint64_t kTocOffset = 1 << 20;
  hoist::Digest json_digest;
  auto entries = hoist::ParseEstargzToc(in, hoist::Digest(), kTocOffset, limits, &json_digest);
  if (!entries) return 0;
  for (const hoist::Entry& e : *entries) {
    uint64_t covered = 0;
    for (const hoist::Chunk& c : e.chunks) {
      FUZZ_CHECK(c.file_offset == covered);
      covered += c.size;
      if (c.encoding != hoist::ChunkEncoding::kZeros) {
        FUZZ_CHECK(c.blob_offset < kTocOffset && c.blob_length <= kTocOffset - c.blob_offset);
      }
    }
    if (e.type == hoist::EntryType::kRegular) FUZZ_CHECK(covered == e.size);
  }
  return 0;
}
