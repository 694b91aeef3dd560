// libFuzzer target: the tar-split reader. The input is taken as JSON lines and compressed here
// with zstd (so mutations reach the record parser), then read with TarSplitReader and rebuilt
// with ReassembleTar (file contents are zeros of the recorded size, capped at 64 KiB). The raw
// input is also read as if it were the compressed tar-split. Caps are small.
// Checks: positions count from 0; the rebuilt tar has exactly the bytes the records describe.
#include <zstd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/digest.h"
#include "index/byte_stream.h"
#include "index/tar_split.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr uint64_t kMaxFile = 64 << 10;

hoist::TarSplitLimits SmallLimits() {
  hoist::TarSplitLimits limits;
  limits.max_uncompressed = 1 << 20;
  limits.max_record = 64 << 10;
  limits.max_file_size = kMaxFile;
  return limits;
}

// Reads every record; returns the tar size they describe, or -1 on an error.
int64_t ReadAll(std::string_view compressed) {
  hoist::TarSplitReader reader(compressed, SmallLimits());
  int64_t tar_size = 0;
  for (uint64_t i = 0; i < 100000; ++i) {
    auto r = reader.Next();
    if (!r) return -1;
    if (*r == nullptr) return tar_size;
    FUZZ_CHECK((*r)->position == i);
    tar_size += (*r)->type == hoist::TarSplitType::kFile
                    ? static_cast<int64_t>((*r)->size)
                    : static_cast<int64_t>((*r)->payload.size());
  }
  return -1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (256 << 10)) return 0;
  std::string_view in = hoist::fuzz::AsView(data, size);
  (void)ReadAll(in);

  std::string compressed(ZSTD_compressBound(size), '\0');
  size_t n = ZSTD_compress(compressed.data(), compressed.size(), data, size, 1);
  if (ZSTD_isError(n)) return 0;
  compressed.resize(n);
  const int64_t described = ReadAll(compressed);

  const std::string zeros(kMaxFile, '\0');
  auto open = [&](std::string_view, uint64_t file_size) -> hoist::Result<hoist::ReadCallback> {
    if (file_size > kMaxFile) return hoist::Fail(EFBIG, "fuzz: file too large");
    return hoist::MemoryReader(std::string_view(zeros).substr(0, file_size));
  };
  uint64_t written = 0;
  auto sink = [&](std::string_view chunk) -> hoist::Status {
    written += chunk.size();
    return hoist::Ok();
  };
  auto stats =
      hoist::ReassembleTar(compressed, hoist::Digest::Of(compressed), open, sink, SmallLimits());
  if (stats) {
    FUZZ_CHECK(stats->tar_size == written);
    FUZZ_CHECK(described >= 0 && static_cast<uint64_t>(described) == written);
  }
  return 0;
}
