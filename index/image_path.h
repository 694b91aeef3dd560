// Paths inside an image, as string operations only: cleaning (no host file system is touched,
// so no result can name a host path) and symlink resolution over a caller's view of the tree.
//
// CleanImagePath("a/../b", "/base") is "/base/b": a relative path is taken relative to `base`
// (itself an image path), "." and empty components vanish, ".." removes the previous component
// and at the root stays at the root ("/../etc" is "/etc"), as the kernel resolves ".." at a
// chroot's root. The result is absolute, has no trailing '/' ("/" for the root).
//
// ResolveImagePath follows symlinks in every component, as path lookup does: an absolute target
// restarts at the image root, a relative one continues from the link's directory. At most
// `max_symlinks` links are followed in one lookup (ELOOP past it, as the kernel's 40), and a
// path growing past 4096 bytes is ENAMETOOLONG. Returns the path of the final object with no
// symlink in it. Errors: ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG.
//
// Thread-safety: pure functions of their callback.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace hoist {

// What lstat(2) would say of an image path (absolute, cleaned, never a symlink in a parent).
struct ImageNode {
  enum class Type { kMissing, kRegular, kDirectory, kSymlink, kOther };
  Type type = Type::kMissing;
  std::string target;  // kSymlink: the link's target as stored
};
using ImageLstat = std::function<ImageNode(const std::string& path)>;

std::string CleanImagePath(std::string_view path, std::string_view base = "/");

// The directory of an image path ("/a/b" -> "/a", "/a" -> "/", "/" -> "/").
std::string ImageDirName(std::string_view path);

[[nodiscard]] Result<std::string> ResolveImagePath(std::string_view path, const ImageLstat& lstat,
                                                   int max_symlinks = 40);

}  // namespace hoist
