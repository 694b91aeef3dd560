// Parser for the Content-Range response header of a 206 (RFC 9110 §14.4):
//   "bytes 0-499/1234", "bytes 0-499/*", and "bytes */1234" (the 416 form).
// Errors: EINVAL naming the header for anything else (including first > last, last >= total,
// other units). Thread-safety: pure function.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "base/status.h"

namespace hoist {

struct ContentRange {
  // Both absent for the "bytes */N" form; both present otherwise (inclusive).
  std::optional<uint64_t> first;
  std::optional<uint64_t> last;
  std::optional<uint64_t> total;  // absent for "/*"
};

[[nodiscard]] Result<ContentRange> ParseContentRange(std::string_view header);

}  // namespace hoist
