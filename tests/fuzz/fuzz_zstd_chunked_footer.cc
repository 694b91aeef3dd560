// libFuzzer target: ParseZstdChunkedFooter on the tail of a fuzzed blob, against the blob's own
// size and against a size taken from the input. Checks what zstd_chunked.h promises of a parsed
// footer: TOC (and tar-split) ranges are non-empty, lie before the footer and do not overlap.
#include <cstddef>
#include <cstdint>

#include "index/zstd_chunked.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

bool Overlap(const hoist::BlobRange& a, const hoist::BlobRange& b) {
  return a.offset < b.offset + b.length && b.offset < a.offset + a.length;
}

void Check(std::string_view tail, uint64_t blob_size) {
  auto footer = hoist::ParseZstdChunkedFooter(tail, blob_size);
  if (!footer) return;
  FUZZ_CHECK(footer->footer_size == 48 || footer->footer_size == 72);
  FUZZ_CHECK(footer->footer_size <= blob_size);
  const uint64_t end = blob_size - footer->footer_size;
  const hoist::BlobRange& toc = footer->toc;
  FUZZ_CHECK(toc.length > 0 && toc.offset <= end && toc.length <= end - toc.offset);
  if (footer->tar_split) {
    const hoist::BlobRange& ts = *footer->tar_split;
    FUZZ_CHECK(ts.length > 0 && ts.offset <= end && ts.length <= end - ts.offset);
    FUZZ_CHECK(!Overlap(toc, ts));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = hoist::fuzz::AsView(data, size);
  std::string_view tail = in.substr(in.size() > 72 ? in.size() - 72 : 0);
  Check(tail, in.size());
  if (in.size() >= 8) {
    hoist::fuzz::FuzzInput head(in);
    Check(tail, head.Uint(8));
  }
  return 0;
}
