// RFC 3339 times, the one parser and formatter of hoist (TOC mtimes, image `created`, token
// `issued_at`, `hoist images`).
//
// ParseRfc3339 accepts "2006-01-02T15:04:05[.fraction](Z|+hh:mm|-hh:mm)" ('T' may be 't' or a
// space, 'Z' may be 'z'); fractions beyond nanoseconds are truncated. Errors are EBADMSG with a
// message naming what is wrong. FormatRfc3339 writes UTC with 'Z' and the fraction only when it is
// non-zero, without trailing zeros ("2021-02-03T04:05:06.5Z"), as Go's time.RFC3339Nano does.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "base/status.h"

namespace hoist {

// {seconds since the epoch, nanoseconds}.
[[nodiscard]] Result<std::pair<int64_t, uint32_t>> ParseRfc3339(std::string_view text);
std::string FormatRfc3339(int64_t sec, uint32_t nsec = 0);

}  // namespace hoist
