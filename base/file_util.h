// Small file helpers built on POSIX calls. Errors carry the errno and name the path.
//
// WriteFileAtomic writes to a temporary file in the same directory, fsyncs it and renames it
// over `path`, so readers see either the old or the new content, never a partial file.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace hoist {

Result<std::string> ReadFile(const std::string& path);
Status WriteFileAtomic(const std::string& path, std::string_view data, int mode = 0644);
// mkdir -p.
Status MakeDirs(const std::string& path, int mode = 0755);
// rm -rf (no error if absent). Does not follow symlinks.
Status RemoveTree(const std::string& path);

}  // namespace hoist
