// The mount table of this process (/proc/self/mountinfo), parsed once, in one place.
//
// Each line is "id parent major:minor root mount_point options [optional...] - fstype source
// super_options"; paths are decoded from the kernel's octal escapes (\040 space, \011 tab, \012
// newline, \134 backslash). Reading the table never touches the mount points themselves, so a
// dead FUSE mount cannot hang the caller. Lines that do not parse are skipped.
// Thread-safety: plain functions; ReadMountInfo reads the file on each call.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace hoist {

struct MountInfoEntry {
  std::string dev;          // "major:minor" of the filesystem (a FUSE connection's id is minor)
  std::string root;         // the root of the mount within its filesystem
  std::string mount_point;  // absolute, decoded
  std::string options;      // per-mount options ("ro,nodev,relatime")
  std::string fs_type;      // "fuse.hoistfs", "overlay", ...
  std::string source;       // decoded
};

std::string UnescapeMountInfo(std::string_view s);
std::vector<MountInfoEntry> ParseMountInfo(std::string_view text);
Result<std::vector<MountInfoEntry>> ReadMountInfo(const std::string& path = "/proc/self/mountinfo");

// The mount points at `dir` or below it, in table order (mount order).
Result<std::vector<std::string>> MountPointsUnder(const std::string& dir);

// True when `path` is a FUSE mount whose connection is gone (its daemon and every holder of its
// /dev/fuse fd died): statfs(2) answers ENOTCONN (or ECONNABORTED). statfs, not stat: the kernel
// answers stat of a dead mount from cached attributes (hoist caches them for a day) without asking
// anyone, but always sends statfs, and a dead connection fails it at once. On a live mount whose
// daemon is stuck, statfs waits like any request.
bool IsDeadFuseMount(const std::string& path);

}  // namespace hoist
