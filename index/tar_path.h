// Path cleaning for layer entry names and hardlink targets: one function shared by every format
// reader and writer, so that all of them accept and normalise exactly the same names.
//
// CleanEntryPath turns a raw archive name into the cleaned form used by LayerIndex:
//   - leading "/" and "./" are stripped, "//" collapses, "." components vanish, a trailing "/"
//     is dropped ("bin/" -> "bin"); "." "./" "/" all name the root, returned as "";
//   - ".." removes the previous component ("a/../b" -> "b"); a ".." that would climb above the
//     root is rejected (EINVAL "escapes the layer root");
//   - the empty name and names containing NUL are rejected (EINVAL);
//   - names longer than PATH_MAX (4096) bytes, raw or cleaned, or with a component longer than
//     NAME_MAX (255) are rejected (ENAMETOOLONG).
// Errors are one line and quote the (escaped, truncated) raw name.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace hoist {

inline constexpr size_t kMaxPathLength = 4096;  // PATH_MAX
inline constexpr size_t kMaxNameLength = 255;   // NAME_MAX

[[nodiscard]] Result<std::string> CleanEntryPath(std::string_view raw);

// For messages: the name with non-printable bytes escaped (\xNN), cut to `max` bytes.
std::string QuoteName(std::string_view raw, size_t max = 200);

}  // namespace hoist
