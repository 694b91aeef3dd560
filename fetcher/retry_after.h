// Parser for the Retry-After header: delta-seconds ("120") or an HTTP-date
// ("Wed, 21 Oct 2015 07:28:00 GMT", plus the obsolete RFC 850 and asctime forms).
// For a date, the delay is date - now_unix_seconds, floored at 0.
// Errors: EINVAL for anything else. Thread-safety: pure function.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include "base/status.h"

namespace hoist {

[[nodiscard]] Result<std::chrono::seconds> ParseRetryAfter(std::string_view header,
                                                           int64_t now_unix_seconds);

// Parses an HTTP-date to seconds since the epoch. EINVAL if malformed.
[[nodiscard]] Result<int64_t> ParseHttpDate(std::string_view text);

}  // namespace hoist
