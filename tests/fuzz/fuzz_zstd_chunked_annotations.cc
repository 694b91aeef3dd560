// libFuzzer target: the layer annotations of zstd:chunked and eStargz. The input is lines taken
// in pairs (key, value); a key "0".."7" stands for one of the real annotation keys (both
// prefixes), so mutations reach the value parsers. Also feeds each value to ParseBlobPosition.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "index/estargz.h"
#include "index/zstd_chunked.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

std::string KeyFor(std::string_view key) {
  static constexpr const char* kKeys[] = {
      "io.github.containers.zstd-chunked.manifest-checksum",
      "io.github.containers.zstd-chunked.manifest-position",
      "io.github.containers.zstd-chunked.tarsplit-position",
      "containerd.io/snapshot/stargz/toc.digest",
      "io.containers.zstd-chunked.manifest-checksum",
      "io.containers.zstd-chunked.manifest-position",
      "io.containers.zstd-chunked.tarsplit-position",
      "containerd.io/snapshot/stargz/uncompressed_size",
  };
  if (key.size() == 1 && key[0] >= '0' && key[0] <= '7') return kKeys[key[0] - '0'];
  return std::string(key);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = hoist::fuzz::AsView(data, size);
  std::vector<std::string_view> lines;
  while (!in.empty() && lines.size() < 64) {
    size_t nl = in.find('\n');
    lines.push_back(in.substr(0, nl));
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  }
  std::map<std::string, std::string> annotations;
  for (size_t i = 0; i + 1 < lines.size(); i += 2) {
    annotations[KeyFor(lines[i])] = std::string(lines[i + 1]);
  }
  auto zc = hoist::ParseZstdChunkedAnnotations(annotations);
  if (zc) {
    FUZZ_CHECK(zc->toc_digest.empty() || zc->toc_digest.str().size() == 71);
    FUZZ_CHECK(zc->toc_json_digest.empty() || zc->toc_json_digest.str().size() == 71);
  }
  (void)hoist::ParseEstargzAnnotations(annotations);
  for (std::string_view line : lines) {
    uint64_t type = 0;
    (void)hoist::ParseBlobPosition(line, true, &type);
    (void)hoist::ParseBlobPosition(line, false);
  }
  return 0;
}
