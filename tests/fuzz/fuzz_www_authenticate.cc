// libFuzzer target: ParseWwwAuthenticate (registry auth challenges). A parsed header has at
// least one challenge, each with a lower-cased scheme and lower-cased parameter names.
#include <cctype>
#include <cstddef>
#include <cstdint>

#include "fetcher/www_authenticate.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

bool IsLower(std::string_view s) {
  for (char c : s) {
    if (std::isupper(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16384) return 0;
  auto challenges = hoist::ParseWwwAuthenticate(hoist::fuzz::AsView(data, size));
  if (!challenges) return 0;
  FUZZ_CHECK(!challenges->empty());
  for (const hoist::AuthChallenge& c : *challenges) {
    FUZZ_CHECK(!c.scheme.empty() && IsLower(c.scheme));
    for (const auto& [name, value] : c.params) FUZZ_CHECK(IsLower(name));
    (void)c.Param("realm");
    (void)c.Param("Scope");
  }
  return 0;
}
