// Whether a path is a mount point, from /proc/self/mountinfo (never by touching the path, which
// could hang on a dead FUSE mount).
//
// The path is compared with the decoded mount point (base/mountinfo.h): absolute, no trailing
// "/". Thread-safety: reads the file on each call.
#pragma once

#include <string>

namespace hoist::harness {

[[nodiscard]] bool IsMounted(const std::string& path);

}  // namespace hoist::harness
