// libFuzzer target: ParseElfDeps over the input as a whole file, read through a reader that
// checks every range and counts bytes; then the library search over a small fixed image tree
// (with a symlink loop and a link climbing above the root), and ParseLdSoConf with the input as
// every configuration file (so an "include" of itself loops until the depth bound). Checks what
// the headers promise: reads never leave [0, size) nor pass max_read_bytes; a parse yields at
// most max_needed names, each at most max_string_length bytes; resolved paths and ld.so.conf
// directories are absolute, cleaned image paths; errors are one line.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "index/elf_deps.h"
#include "index/elf_search.h"
#include "index/image_path.h"
#include "index/ld_so_conf.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

bool IsCleanImagePath(const std::string& p) {
  return !p.empty() && p.front() == '/' && hoist::CleanImagePath(p) == p;
}

void CheckError(const hoist::Error& e) { FUZZ_CHECK(e.message().find('\n') == std::string::npos); }

hoist::ImageNode FakeLstat(const std::string& path) {
  using T = hoist::ImageNode::Type;
  if (path == "/" || path == "/usr" || path == "/usr/lib" || path == "/opt")
    return {T::kDirectory, ""};
  if (path == "/lib") return {T::kSymlink, "usr/lib"};
  if (path == "/lib64") return {T::kSymlink, "../../../lib"};
  if (path == "/usr/lib/libc.so.6" || path == "/opt/ld.so") return {T::kRegular, ""};
  if (path == "/usr/lib/libloop.so") return {T::kSymlink, "libloop.so"};
  if (path == "/usr/lib/libz.so.1") return {T::kSymlink, "/lib/libc.so.6"};
  return {};
}

void ParseAndResolve(std::string_view in, const hoist::ElfLimits& limits) {
  uint64_t bytes = 0;
  bool out_of_range = false;
  hoist::ElfReader reader = [&](uint64_t off, uint64_t len) -> hoist::Result<std::string> {
    if (len == 0 || off > in.size() || len > in.size() - off) out_of_range = true;
    FUZZ_CHECK(!out_of_range);
    bytes += len;
    return std::string(in.substr(off, len));
  };
  auto deps = hoist::ParseElfDeps(reader, in.size(), limits);
  FUZZ_CHECK(!out_of_range);
  FUZZ_CHECK(bytes <= limits.max_read_bytes);
  if (!deps) {
    CheckError(deps.error());
    FUZZ_CHECK(deps.error().code() == ENOEXEC || deps.error().code() == EBADMSG);
    return;
  }
  FUZZ_CHECK(deps->elf_class == 32 || deps->elf_class == 64);
  FUZZ_CHECK(deps->needed.size() <= limits.max_needed);
  FUZZ_CHECK(deps->interp.size() <= limits.max_string_length);
  for (const std::string& n : deps->needed) FUZZ_CHECK(n.size() <= limits.max_string_length);
  for (const auto* list : {&deps->rpath, &deps->runpath}) {
    for (const std::string& e : *list) FUZZ_CHECK(!e.empty() && e.find(':') == std::string::npos);
  }
  hoist::LibrarySearch search{.lstat = FakeLstat, .conf_dirs = {"/opt", "/lib64"}};
  for (const hoist::ResolvedDep& d : hoist::ResolveElfDepsDetailed(*deps, "/usr/bin", search)) {
    FUZZ_CHECK(IsCleanImagePath(d.path));
    FUZZ_CHECK(IsCleanImagePath(d.real_path));
    FUZZ_CHECK(FakeLstat(d.real_path).type == hoist::ImageNode::Type::kRegular);
  }
}

void ParseConf(std::string_view in) {
  int reads = 0;
  hoist::ReadImageFile read = [&](const std::string& path) -> hoist::Result<std::string> {
    FUZZ_CHECK(IsCleanImagePath(path));
    ++reads;
    return std::string(in);
  };
  hoist::ListImageDir list =
      [&](const std::string& dir) -> hoist::Result<std::vector<std::string>> {
    FUZZ_CHECK(IsCleanImagePath(dir));
    return std::vector<std::string>{"a.conf", "b.conf", ".x.conf", "..", "c"};
  };
  hoist::LdSoConfLimits limits{.max_depth = 4, .max_files = 16, .max_lines = 2000};
  auto dirs = hoist::ParseLdSoConf(read, list, limits);
  FUZZ_CHECK(reads <= limits.max_files);
  if (!dirs) {
    CheckError(dirs.error());
    return;
  }
  FUZZ_CHECK(dirs->size() <= limits.max_dirs);
  for (const std::string& d : *dirs) FUZZ_CHECK(IsCleanImagePath(d));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = hoist::fuzz::AsView(data, size);
  ParseAndResolve(in, {});
  // Tight limits: every cap is reached by small inputs.
  ParseAndResolve(in, {.max_program_headers = 4,
                       .max_dynamic_entries = 16,
                       .max_needed = 3,
                       .max_string_length = 32,
                       .max_read_bytes = 512});
  ParseConf(in.substr(0, 4096));
  // Image path resolution of the input as a path.
  std::string path(in.substr(0, 512));
  FUZZ_CHECK(IsCleanImagePath(hoist::CleanImagePath(path, "/usr/lib")));
  auto real = hoist::ResolveImagePath(path, FakeLstat);
  if (real) FUZZ_CHECK(IsCleanImagePath(*real));
  return 0;
}
