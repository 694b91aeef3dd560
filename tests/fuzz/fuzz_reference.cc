// libFuzzer target: Reference::Parse (image references as users and manifests give them). A
// reference that parses must print (String()) to a reference that parses back to the same value,
// and its accessors must not crash.
#include <cstddef>
#include <cstdint>

#include "fetcher/reference.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  auto ref = hoist::Reference::Parse(hoist::fuzz::AsView(data, size));
  if (!ref) return 0;
  FUZZ_CHECK(!ref->registry.empty() && !ref->repository.empty());
  FUZZ_CHECK(!ref->tag.empty() || !ref->digest.empty());
  auto again = hoist::Reference::Parse(ref->String());
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(*again == *ref);
  (void)ref->ApiHost();
  (void)ref->Identifier();
  (void)hoist::RegistryHostName(ref->registry);
  (void)hoist::IsLoopbackRegistry(ref->registry);
  return 0;
}
