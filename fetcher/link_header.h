// Parser for the Link response header used for pagination (tags/list, _catalog):
//   Link: </v2/_catalog?last=b&n=2>; rel="next"
// Returns the URL of the first link whose rel (a space-separated list, case-insensitive)
// includes "next", resolved against `base_url` when relative (see url.h). nullopt if there is no
// next link. Errors: EINVAL for a malformed header (no <...>). Thread-safety: pure function.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace hoist {

[[nodiscard]] Result<std::optional<std::string>> ParseLinkNext(std::string_view header,
                                                               std::string_view base_url);

}  // namespace hoist
