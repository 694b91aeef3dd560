// libFuzzer target: ParseCheckpointIndex on untrusted checkpoint (zran) indexes (from the store,
// later from a registry). The blob size the index is checked against is taken from the input's
// own header field, so mutations get past that check. An index that parses must serialize back
// to exactly the input (the parser is strict: no field is ignored), every planned span must lie
// inside the blob, and extracting a few bytes at each checkpoint from junk compressed bytes must
// return an error or exactly the bytes asked for, never crash or overrun.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "index/gzip_index.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = hoist::fuzz::AsView(data, size);
  uint64_t blob_size = 0;
  if (size >= 24) {
    for (int i = 0; i < 8; ++i) blob_size |= uint64_t{data[16 + i]} << (8 * i);
  }
  auto index = hoist::ParseCheckpointIndex(in, blob_size);
  if (!index) {
    FUZZ_CHECK(index.error().message().find('\n') == std::string::npos);
    return 0;
  }
  FUZZ_CHECK(hoist::SerializeCheckpointIndex(*index) == in);
  FUZZ_CHECK(!index->checkpoints.empty());
  if (index->stream_size == 0 || index->blob_size > (1u << 20)) return 0;
  // Junk "compressed" bytes: the input itself, repeated to the blob's size.
  std::string blob(static_cast<size_t>(index->blob_size), '\0');
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>(data[i % size]);
  size_t tries = 0;
  for (const hoist::Checkpoint& cp : index->checkpoints) {
    if (++tries > 8) break;
    const uint64_t begin = cp.out_offset;
    const uint64_t end = std::min<uint64_t>(index->stream_size, begin + 4096);
    if (begin >= end) continue;
    auto plan = hoist::PlanExtract(*index, begin, end);
    FUZZ_CHECK(plan.has_value());
    FUZZ_CHECK(plan->in_begin <= plan->in_end && plan->in_end <= index->blob_size);
    FUZZ_CHECK(plan->out_begin <= begin && end <= plan->out_end);
    // External windows: a junk window (a piece of the input) of the recorded size.
    const std::string_view window =
        in.substr(0, std::min<size_t>(in.size(), index->checkpoints[plan->checkpoint].window_size));
    auto got = hoist::ExtractRange(
        *index, *plan, std::string_view(blob).substr(plan->in_begin, plan->in_end - plan->in_begin),
        begin, end, window);
    if (got) FUZZ_CHECK(got->size() == end - begin);
    if (index->external_windows())
      (void)hoist::CheckWindow(index->checkpoints[plan->checkpoint], window);
  }
  return 0;
}
