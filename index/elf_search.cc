#include "index/elf_search.h"

#include <elf.h>

#include <algorithm>
#include <deque>
#include <optional>
#include <set>
#include <utility>

namespace hoist {
namespace {

constexpr size_t kMaxVariants = 9;  // expansions of one search path element

bool IsIdentChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// The length of the token `name` at `s` (just after a '$'), as "NAME" or "{NAME}"; 0 if absent.
size_t TokenLength(std::string_view s, std::string_view name) {
  if (s.starts_with(name) && (s.size() == name.size() || !IsIdentChar(s[name.size()]))) {
    return name.size();
  }
  if (s.size() >= name.size() + 2 && s[0] == '{' && s.substr(1, name.size()) == name &&
      s[name.size() + 1] == '}') {
    return name.size() + 2;
  }
  return 0;
}

// AT_PLATFORM as the kernel sets it; empty when unknown.
std::string_view Platform(const ElfDeps& deps) {
  switch (deps.machine) {
    case EM_X86_64:
      return deps.elf_class == 64 ? "x86_64" : "";
    case EM_386:
      return "i686";
    case EM_AARCH64:
      return "aarch64";
    default:
      return "";
  }
}

std::vector<std::string> LibValues(const ElfDeps& deps) {
  std::vector<std::string> out;
  for (const std::string& t : MultiarchTriplets(deps)) out.push_back("lib/" + t);
  if (deps.elf_class == 64) out.push_back("lib64");
  out.push_back("lib");
  return out;
}

// Expansions of one element; empty if it names a token that cannot be expanded.
std::vector<std::string> ExpandElement(std::string_view elem, std::string_view origin,
                                       const ElfDeps& deps) {
  std::vector<std::string> out{""};
  auto append = [&](std::string_view text) {
    for (std::string& o : out) o += text;
  };
  while (!elem.empty()) {
    size_t dollar = elem.find('$');
    append(elem.substr(0, dollar));
    if (dollar == std::string_view::npos) break;
    std::string_view after = elem.substr(dollar + 1);
    std::vector<std::string> values;
    size_t len = 0;
    if ((len = TokenLength(after, "ORIGIN")) != 0) {
      values = {std::string(origin)};
    } else if ((len = TokenLength(after, "LIB")) != 0) {
      values = LibValues(deps);
    } else if ((len = TokenLength(after, "PLATFORM")) != 0) {
      if (Platform(deps).empty()) return {};
      values = {std::string(Platform(deps))};
    } else {
      append("$");  // not a token: kept, as glibc keeps it
      elem = after;
      continue;
    }
    std::vector<std::string> next;
    for (const std::string& o : out) {
      for (const std::string& v : values) {
        if (next.size() < kMaxVariants) next.push_back(o + v);
      }
    }
    out = std::move(next);
    elem = after.substr(len);
  }
  return out;
}

void AddDirs(const std::vector<std::string>& dirs, std::vector<std::string>& out) {
  for (const std::string& d : dirs) {
    if (out.size() >= kMaxSearchDirs) return;
    if (std::find(out.begin(), out.end(), d) == out.end()) out.push_back(d);
  }
}

// The regular file at `path`, symlinks followed; empty when there is none.
std::string RegularFile(const std::string& path, const ImageLstat& lstat) {
  Result<std::string> real = ResolveImagePath(path, lstat);
  if (!real || lstat(*real).type != ImageNode::Type::kRegular) return {};
  return *std::move(real);
}

// The directories searched for the needed names of `deps`, in order.
std::vector<std::string> SearchDirs(const ElfDeps& deps, std::string_view origin_dir,
                                    const LibrarySearch& search) {
  std::vector<std::string> dirs;
  if (!deps.has_runpath) {
    AddDirs(ExpandSearchPath(deps.rpath, origin_dir, deps), dirs);
    AddDirs(search.inherited_rpath, dirs);
  }
  AddDirs(ExpandSearchPath(deps.runpath, origin_dir, deps), dirs);
  AddDirs(search.conf_dirs, dirs);
  AddDirs(DefaultLibraryDirs(deps), dirs);
  return dirs;
}

std::optional<ResolvedDep> FindNeeded(const std::string& name, const std::vector<std::string>& dirs,
                                      const ImageLstat& lstat) {
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string::npos) {
    std::string path = CleanImagePath(name);
    std::string real = RegularFile(path, lstat);
    if (real.empty()) return std::nullopt;
    return ResolvedDep{name, path, real};
  }
  for (const std::string& dir : dirs) {
    std::string path = CleanImagePath(name, dir);
    std::string real = RegularFile(path, lstat);
    if (!real.empty()) return ResolvedDep{name, path, real};
  }
  return std::nullopt;
}

}  // namespace

std::vector<std::string> MultiarchTriplets(const ElfDeps& deps) {
  bool b64 = deps.elf_class == 64, be = deps.big_endian;
  switch (deps.machine) {
    case EM_X86_64:
      return {b64 ? "x86_64-linux-gnu" : "x86_64-linux-gnux32"};
    case EM_386:
      return {"i386-linux-gnu"};
    case EM_AARCH64:
      return {be ? "aarch64_be-linux-gnu" : "aarch64-linux-gnu"};
    case EM_ARM:  // hard or soft float is in e_flags, not read: both
      return {"arm-linux-gnueabihf", "arm-linux-gnueabi"};
    case EM_PPC64:
      return {be ? "powerpc64-linux-gnu" : "powerpc64le-linux-gnu"};
    case EM_PPC:
      return {"powerpc-linux-gnu"};
    case EM_S390:
      return {b64 ? "s390x-linux-gnu" : "s390-linux-gnu"};
    case EM_MIPS:
      if (b64) return {be ? "mips64-linux-gnuabi64" : "mips64el-linux-gnuabi64"};
      return {be ? "mips-linux-gnu" : "mipsel-linux-gnu"};
    case EM_RISCV:
      return {b64 ? "riscv64-linux-gnu" : "riscv32-linux-gnu"};
    case 258:  // EM_LOONGARCH (not in every <elf.h>)
      return {"loongarch64-linux-gnu"};
    case EM_SPARCV9:
      return {"sparc64-linux-gnu"};
    case EM_68K:
      return {"m68k-linux-gnu"};
    default:
      return {};
  }
}

std::vector<std::string> DefaultLibraryDirs(const ElfDeps& deps) {
  std::vector<std::string> out;
  for (const std::string& t : MultiarchTriplets(deps)) {
    out.push_back("/lib/" + t);
    out.push_back("/usr/lib/" + t);
  }
  if (deps.elf_class == 64) {
    out.push_back("/lib64");
    out.push_back("/usr/lib64");
  }
  out.push_back("/lib");
  if (deps.interp.find("ld-musl-") != std::string::npos) out.push_back("/usr/local/lib");
  out.push_back("/usr/lib");
  return out;
}

std::vector<std::string> ExpandSearchPath(const std::vector<std::string>& elements,
                                          std::string_view origin_dir, const ElfDeps& deps) {
  std::vector<std::string> out;
  for (const std::string& e : elements) {
    for (const std::string& x : ExpandElement(e, origin_dir, deps)) {
      AddDirs({CleanImagePath(x)}, out);
    }
  }
  return out;
}

std::vector<ResolvedDep> ResolveElfDepsDetailed(const ElfDeps& deps, std::string_view origin_dir,
                                                const LibrarySearch& search) {
  std::vector<ResolvedDep> out;
  if (!deps.interp.empty()) {
    std::string path = CleanImagePath(deps.interp);
    std::string real = RegularFile(path, search.lstat);
    if (!real.empty()) out.push_back({deps.interp, path, real});
  }
  std::vector<std::string> dirs = SearchDirs(deps, origin_dir, search);
  std::set<std::string> seen;
  for (const std::string& name : deps.needed) {
    if (!seen.insert(name).second) continue;
    if (auto dep = FindNeeded(name, dirs, search.lstat)) out.push_back(*std::move(dep));
  }
  return out;
}

std::vector<std::string> ResolveElfDeps(const ElfDeps& deps, std::string_view origin_dir,
                                        const LibrarySearch& search) {
  std::vector<std::string> out;
  for (ResolvedDep& d : ResolveElfDepsDetailed(deps, origin_dir, search)) {
    if (std::find(out.begin(), out.end(), d.real_path) == out.end()) {
      out.push_back(std::move(d.real_path));
    }
  }
  return out;
}

Result<std::vector<std::string>> CollectElfClosure(
    std::string_view path, const OpenImageElf& open, const LibrarySearch& search,
    const ElfClosureLimits& limits, const std::function<void(const std::string&)>& on_found) {
  HOIST_ASSIGN_OR_RETURN(std::string root, ResolveImagePath(path, search.lstat));
  HOIST_ASSIGN_OR_RETURN(ElfFile file, open(root));
  HOIST_ASSIGN_OR_RETURN(ElfDeps root_deps, ParseElfDeps(file.read, file.size, limits.elf));

  struct Loaded {
    ElfDeps deps;
    std::string origin;
    std::vector<std::string> rpath_chain;  // what its own dependencies inherit
  };
  std::vector<std::string> found;
  std::set<std::string> real_paths{root};
  std::set<std::string> names;  // DT_NEEDED names and sonames already loaded
  auto report = [&](const std::string& real) {
    if (!real_paths.insert(real).second) return false;
    found.push_back(real);
    if (on_found) on_found(real);
    return true;
  };
  std::deque<Loaded> queue;
  auto enqueue = [&](ElfDeps deps, std::string origin, const std::vector<std::string>& inherited) {
    if (!deps.soname.empty()) names.insert(deps.soname);
    std::vector<std::string> chain;
    if (!deps.has_runpath) chain = ExpandSearchPath(deps.rpath, origin, deps);
    AddDirs(inherited, chain);
    queue.push_back({std::move(deps), std::move(origin), std::move(chain)});
  };
  if (!root_deps.interp.empty()) {
    std::string real = RegularFile(CleanImagePath(root_deps.interp), search.lstat);
    if (!real.empty()) report(real);
  }
  enqueue(std::move(root_deps), ImageDirName(root), {});

  size_t parsed = 1;
  while (!queue.empty()) {
    Loaded obj = std::move(queue.front());
    queue.pop_front();
    LibrarySearch own = search;
    own.inherited_rpath = obj.rpath_chain;
    std::vector<std::string> dirs = SearchDirs(obj.deps, obj.origin, own);
    // Every name of this object is resolved (and reported) before any of them is read, so a
    // caller fetching on `on_found` has them all in flight while the walk waits on the first.
    std::vector<ResolvedDep> deps;
    for (const std::string& name : obj.deps.needed) {
      if (!names.insert(name).second) continue;
      std::optional<ResolvedDep> dep = FindNeeded(name, dirs, search.lstat);
      if (dep && report(dep->real_path)) deps.push_back(*std::move(dep));
    }
    for (const ResolvedDep& dep : deps) {
      if (parsed >= limits.max_objects) break;
      ++parsed;
      Result<ElfFile> lib = open(dep.real_path);
      if (!lib) continue;
      Result<ElfDeps> lib_deps = ParseElfDeps(lib->read, lib->size, limits.elf);
      if (!lib_deps) continue;
      enqueue(*std::move(lib_deps), ImageDirName(dep.path), obj.rpath_chain);
    }
  }
  return found;
}

}  // namespace hoist
