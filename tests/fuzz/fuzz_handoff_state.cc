// libFuzzer target: HandoffStateFromJson (fusefs/handoff_state.h), the state a daemon taking
// over a live mount reads from the memfd its predecessor stored. A state that parses must
// print (HandoffStateToJson) to text that parses back to the same fields.
#include <cstddef>
#include <cstdint>

#include "fusefs/handoff_state.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1 << 20)) return 0;
  auto state = hoist::HandoffStateFromJson(hoist::fuzz::AsView(data, size));
  if (!state) {
    FUZZ_CHECK(state.error().code() == EINVAL);
    return 0;
  }
  FUZZ_CHECK(!state->mountpoint.empty() && state->mountpoint[0] == '/');
  auto again = hoist::HandoffStateFromJson(hoist::HandoffStateToJson(*state));
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(again->mountpoint == state->mountpoint);
  FUZZ_CHECK(again->init == state->init);
  FUZZ_CHECK(again->reference == state->reference);
  FUZZ_CHECK(again->manifest_media_type == state->manifest_media_type);
  FUZZ_CHECK(again->manifest == state->manifest);
  FUZZ_CHECK(again->from_local_store == state->from_local_store);
  return 0;
}
