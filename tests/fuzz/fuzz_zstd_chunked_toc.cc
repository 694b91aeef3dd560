// libFuzzer target: the zstd:chunked TOC path. The input is used twice:
//   - as compressed bytes: ZstdDecompressCapped with a small cap (with and without a declared
//     size), and ParseZstdChunkedToc with a digest that matches, so decompression is reached;
//   - as TOC JSON: compressed here with zstd, then ParseZstdChunkedToc (digest check, capped
//     decompression, JSON, chunk ranges), so mutations reach the JSON and range checks.
// Caps are small (64 KiB TOC, 4096 entries, 1 GiB files). On success, the chunks of every
// regular file must cover it exactly and lie in [0, data_end).
#include <zstd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/digest.h"
#include "index/zstd_chunked.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr uint64_t kCap = 64 << 10;
constexpr uint64_t kDataEnd = 1 << 20;

hoist::ZstdChunkedLimits SmallLimits() {
  hoist::ZstdChunkedLimits limits;
  limits.max_toc_size = kCap;
  limits.max_tar_split_size = kCap;
  limits.toc.max_entries = 4096;
  limits.toc.max_file_size = uint64_t{1} << 30;
  return limits;
}

void CheckIndex(const hoist::LayerIndex& index) {
  for (const hoist::Entry& e : index.entries) {
    if (e.type != hoist::EntryType::kRegular) {
      FUZZ_CHECK(e.chunks.empty());
      continue;
    }
    uint64_t covered = 0;
    for (const hoist::Chunk& c : e.chunks) {
      FUZZ_CHECK(c.file_offset == covered);
      FUZZ_CHECK(c.size > 0 && c.size <= e.size);
      covered += c.size;
      if (c.encoding != hoist::ChunkEncoding::kZeros) {
        FUZZ_CHECK(c.blob_offset <= kDataEnd && c.blob_length <= kDataEnd - c.blob_offset);
      }
    }
    FUZZ_CHECK(covered == e.size);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = hoist::fuzz::AsView(data, size);
  const hoist::ZstdChunkedLimits limits = SmallLimits();

  // Raw input as compressed bytes.
  auto plain = hoist::ZstdDecompressCapped(in, 4096);
  if (plain) FUZZ_CHECK(plain->size() <= 4096);
  auto exact = hoist::ZstdDecompressCapped(in, kCap, size % 1024);
  if (exact) FUZZ_CHECK(exact->size() == size % 1024);
  auto raw =
      hoist::ParseZstdChunkedToc(in, hoist::Digest::Of(in), hoist::Digest(), 0, kDataEnd, limits);
  if (raw) CheckIndex(*raw);

  // Input as TOC JSON, compressed here.
  if (size > kCap) return 0;
  std::string compressed(ZSTD_compressBound(size), '\0');
  size_t n = ZSTD_compress(compressed.data(), compressed.size(), data, size, 1);
  if (ZSTD_isError(n)) return 0;
  compressed.resize(n);
  hoist::Digest digest = hoist::Digest::Of(compressed);
  auto toc =
      hoist::ParseZstdChunkedToc(compressed, digest, hoist::Digest::Of(in), size, kDataEnd, limits);
  if (toc) CheckIndex(*toc);
  return 0;
}
