// libFuzzer target: ParseAccessTrace (fusefs/access_trace.h), which reads traces fetched from a
// registry (referrer artifacts) and files users pass. A trace that parses must serialize to
// bytes that parse back to the same trace, and serializing that again must give the same bytes.
#include <cstddef>
#include <cstdint>

#include "fusefs/access_trace.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1 << 20)) return 0;
  auto trace = hoist::ParseAccessTrace(hoist::fuzz::AsView(data, size), 1000);
  if (!trace) return 0;
  const std::string bytes = hoist::SerializeAccessTrace(*trace);
  auto again = hoist::ParseAccessTrace(bytes, 1000);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(again->image == trace->image);
  FUZZ_CHECK(again->files.size() == trace->files.size());
  for (size_t i = 0; i < trace->files.size(); ++i) {
    FUZZ_CHECK(again->files[i].layer == trace->files[i].layer);
    FUZZ_CHECK(again->files[i].path == trace->files[i].path);
  }
  FUZZ_CHECK(hoist::SerializeAccessTrace(*again) == bytes);
  return 0;
}
