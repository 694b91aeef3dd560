// Where the dynamic loader finds an ELF file's interpreter and libraries inside an image, so a
// mount can fetch them as soon as the file is opened instead of one round trip per library
// (index/FORMATS.md, "ELF dependencies"). Pure string logic over a caller's view of the image
// tree (ImageLstat, image_path.h): every path is an image path, absolute and cleaned, never a
// host path; ".." at the image root stays at the root.
//
// Search order for one DT_NEEDED name, as glibc's ld.so (no LD_LIBRARY_PATH, no ld.so.cache,
// whose content is the ld.so.conf and default directories below):
//   - a name holding '/' is a path (a relative one is taken from "/", the usual container cwd);
//   - if the object has no DT_RUNPATH: its DT_RPATH, then the DT_RPATH of the object that loaded
//     it, and so on up to the program (LibrarySearch::inherited_rpath; an object with a
//     DT_RUNPATH contributes nothing to that chain);
//   - its DT_RUNPATH;
//   - the image's ld.so.conf directories (LibrarySearch::conf_dirs, from ParseLdSoConf);
//   - the default directories for the ELF's machine (DefaultLibraryDirs).
// In DT_RPATH/DT_RUNPATH, $ORIGIN and ${ORIGIN} become the directory of the object (origin_dir),
// $LIB/${LIB} each of lib/<multiarch triplet>, lib64 (64-bit) and lib (glibc's value depends on
// the distribution), $PLATFORM/${PLATFORM} the kernel's AT_PLATFORM for the machine (x86_64,
// i686, aarch64; an element naming it for another machine is skipped); any other '$' is kept
// as it is, as glibc keeps it. The first candidate that resolves (symlinks followed inside the
// image) to a regular file wins, as the loader takes the first file it can open; glibc would go
// on past a file of the wrong class or machine, which is not checked here.
//
// Not modelled: LD_LIBRARY_PATH and LD_PRELOAD (the environment is the caller's), glibc-hwcaps
// subdirectories, DF_1_NODEFLIB, musl's /etc/ld-musl-ARCH.path.
//
// Bounded: at most kMaxSearchDirs directories are tried per name.
// Thread-safety: pure functions of their callbacks.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "index/elf_deps.h"
#include "index/image_path.h"

namespace hoist {

inline constexpr size_t kMaxSearchDirs = 512;

struct LibrarySearch {
  ImageLstat lstat;                    // the image tree; required
  std::vector<std::string> conf_dirs;  // ParseLdSoConf of the image's /etc/ld.so.conf
  // The DT_RPATH directories of the objects that loaded this one, nearest first, already
  // expanded (ExpandSearchPath). Empty for the program itself.
  std::vector<std::string> inherited_rpath;
};

// One dependency found: `name` as written (PT_INTERP path or DT_NEEDED), the path the loader
// opens it by (`path`: search directory + name; its directory is the library's $ORIGIN), and
// that path with every symlink resolved (`real_path`: a regular file, what to fetch).
struct ResolvedDep {
  std::string name;
  std::string path;
  std::string real_path;
};

// The default library directories of a machine (e_machine, class 32/64, byte order): the
// Debian multiarch triplet's /lib/<triplet> and /usr/lib/<triplet> (for example
// x86_64-linux-gnu), then for 64-bit /lib64 and /usr/lib64, then /lib, /usr/local/lib (musl
// only, recognised by an interpreter named ld-musl-*) and /usr/lib.
std::vector<std::string> DefaultLibraryDirs(const ElfDeps& deps);

// The Debian multiarch triplets of a machine, preferred first; empty for an unknown machine.
std::vector<std::string> MultiarchTriplets(const ElfDeps& deps);

// DT_RPATH/DT_RUNPATH elements as cleaned image directories, with the tokens above expanded.
std::vector<std::string> ExpandSearchPath(const std::vector<std::string>& elements,
                                          std::string_view origin_dir, const ElfDeps& deps);

// The interpreter (if any) then each DT_NEEDED name found, in that order; names not found are
// left out, a name listed twice is resolved once.
std::vector<ResolvedDep> ResolveElfDepsDetailed(const ElfDeps& deps, std::string_view origin_dir,
                                                const LibrarySearch& search);

// The real paths of ResolveElfDepsDetailed, without repeats: the files to prefetch.
std::vector<std::string> ResolveElfDeps(const ElfDeps& deps, std::string_view origin_dir,
                                        const LibrarySearch& search);

// ---- The whole closure: the program, then its libraries' libraries, breadth first (the order
// the loader maps them).

// A regular file of the image opened for ParseElfDeps.
struct ElfFile {
  uint64_t size = 0;
  ElfReader read;
};
using OpenImageElf = std::function<Result<ElfFile>(const std::string& real_path)>;

struct ElfClosureLimits {
  size_t max_objects = 256;  // ELF files parsed, the program included
  ElfLimits elf;
};

// Every file the loader opens to start the ELF file at image path `path` (its $ORIGIN is the
// directory of its real path, as for a program): the interpreter and the libraries, each real
// path once, breadth first. `on_found`, when set, is called with each real path as soon as it
// is known, before the walk reads that library (so the caller can start fetching it while the
// walk goes on); all the names of one object are resolved and reported before the first of them
// is read, so its libraries can be fetched in parallel. A library that cannot be opened or parsed
// contributes no dependencies of its own (it is still listed); a name already loaded (by DT_NEEDED
// name or DT_SONAME) is not searched again. Errors: those of resolving `path` (ENOENT, ELOOP, ...),
// ENOEXEC/EBADMSG and the reader's errors for `path` itself.
[[nodiscard]] Result<std::vector<std::string>> CollectElfClosure(
    std::string_view path, const OpenImageElf& open, const LibrarySearch& search,
    const ElfClosureLimits& limits = {},
    const std::function<void(const std::string&)>& on_found = nullptr);

}  // namespace hoist
