// The library directories an image's /etc/ld.so.conf names, as glibc's ldconfig reads it
// (index/FORMATS.md, "ELF dependencies"), read through callbacks over the image's tree: nothing
// on the host is read or globbed.
//
// Syntax: one directory a line; '#' starts a comment; blank lines are skipped; leading and
// trailing blanks are dropped; "include PATTERN..." reads each pattern's files in turn (a
// relative pattern is relative to the directory of the file that names it; '*', '?' and '[...]'
// are matched in the last component only, against the caller's directory listing, and the
// matches are read in byte order of names, as glob(3) sorts them); "hwcap ..." lines are
// ignored; a libc5-era "DIR=TYPE" keeps DIR. Directories are cleaned as image paths (absolute,
// "..", "." and "//" resolved, ".." at the root stays at the root), relative ones dropped (ldconfig
// warns and skips them), repeats dropped; order is kept.
//
// Bounded: includes nest at most `max_depth` deep (an include loop stops there), at most
// `max_files` files and `max_lines` lines are read in all, and at most `max_dirs` directories are
// kept. A file the reader says is missing (ENOENT) is skipped, as ldconfig skips it; a pattern in
// a directory that does not exist matches nothing.
//
// Errors: EBADMSG past a limit; anything else the callbacks return.
// Thread-safety: pure; calls may run concurrently with different callbacks.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"

namespace hoist {

// The whole content of the image file at `path` (absolute, cleaned). ENOENT when missing.
using ReadImageFile = std::function<Result<std::string>(const std::string& path)>;
// The names (no "." or "..") in image directory `dir` (absolute, cleaned). ENOENT when missing.
using ListImageDir = std::function<Result<std::vector<std::string>>(const std::string& dir)>;

struct LdSoConfLimits {
  int max_depth = 8;
  int max_files = 64;
  int max_lines = 10000;
  size_t max_dirs = 256;
};

[[nodiscard]] Result<std::vector<std::string>> ParseLdSoConf(
    const ReadImageFile& read_file, const ListImageDir& list_dir, const LdSoConfLimits& limits = {},
    const std::string& path = "/etc/ld.so.conf");

}  // namespace hoist
