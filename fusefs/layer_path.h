// Layer entry names as the merged view sees them: validation (defence in depth behind the format
// readers, which already clean names) and the OCI whiteout naming rules.
//
// Pure functions on string_views; no allocation except in error messages. Thread-safe.
//
// Whiteout rules (index/FORMATS.md, "Layer semantics"):
//   ".wh.<name>"    hides <name> of the LOWER layers only; the marker itself is never shown.
//   ".wh..wh..opq"  the containing directory is opaque: all lower content in it is hidden.
//   ".wh."          (bare) is an error.
//   ".wh..wh.<x>"   any other ".wh..wh." name is AUFS metadata (e.g. ".wh..wh.plnk"): the entry
//                   and everything under it is skipped, as Docker does.
// A ".wh." prefix on a non-final component (".wh.x/y") is an error, except AUFS metadata.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "base/status.h"

namespace hoist {

inline constexpr std::string_view kWhiteoutPrefix = ".wh.";
inline constexpr std::string_view kWhiteoutMetaPrefix = ".wh..wh.";
inline constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
inline constexpr size_t kMaxNameLength = 255;  // NAME_MAX

enum class EntryNameKind {
  kNormal,    // an ordinary entry
  kWhiteout,  // ".wh.<target>": hides `target` in the same directory of lower layers
  kOpaque,    // ".wh..wh..opq": the parent directory is opaque
  kSkip,      // AUFS metadata: ignore the entry
};

struct EntryName {
  EntryNameKind kind = EntryNameKind::kNormal;
  std::string_view parent;  // "" for entries directly under the root
  std::string_view base;    // last component ("" only for the root entry)
  std::string_view target;  // kWhiteout only: the hidden name
};

// Checks a cleaned entry path: "" (the root) or components separated by single '/', none empty,
// "." or "..", none longer than NAME_MAX, no NUL byte, no leading or trailing '/'.
// Error: EINVAL (or ENAMETOOLONG) with a message naming the problem.
[[nodiscard]] Status ValidateEntryPath(std::string_view path);

// Splits a validated path and classifies it by the whiteout rules above.
// Error: EINVAL for a bare ".wh.", a whiteout of "." or "..", or a ".wh." directory component.
[[nodiscard]] Result<EntryName> ClassifyEntryPath(std::string_view path);

// `path` quoted for a one-line message: control bytes and non-ASCII escaped as \xNN, long paths
// shortened in the middle.
std::string QuotePath(std::string_view path);

}  // namespace hoist
