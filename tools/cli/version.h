// What `hoist --version` and `hoist version` print: the project version (CMake's
// project(VERSION)), and, when the build ran in a git checkout, the commit and its date, read
// at build time by cmake/version_info.cmake (which writes the definitions of the constants
// below; an unchanged checkout recompiles nothing). Empty strings where git was not available.
#pragma once

#include <string>

namespace hoist {

extern const char* const kHoistVersion;      // "0.1.0"
extern const char* const kHoistGitDescribe;  // `git describe --tags --always --dirty`
extern const char* const kHoistGitCommit;    // 12 hex digits, "-dirty" for a modified tree
extern const char* const kHoistCommitDate;   // the commit's date, "2026-12-07T21:03:00Z"

// "hoist version 0.1.0, commit 1a22479a3b2c" (like `skopeo --version`); without git,
// "hoist version 0.1.0".
std::string VersionLine();

}  // namespace hoist
