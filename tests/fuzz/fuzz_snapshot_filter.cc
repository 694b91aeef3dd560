// libFuzzer target: containerd's filter syntax as hoist-snapshotter parses it from List requests
// (tools/snapshotter/filter.h). The input is split at '\n' into several filter strings. A parse
// either fails with EINVAL and a one-line message, or yields a filter that can be matched against
// a snapshot's fields without crashing; an unquote of any quoted text never reads out of bounds.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_util.h"
#include "tools/snapshotter/filter.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  const std::string_view in = hoist::fuzz::AsView(data, size);
  std::vector<std::string> filters;
  size_t start = 0;
  for (size_t i = 0; i <= in.size(); ++i) {
    if (i == in.size() || in[i] == '\n') {
      filters.emplace_back(in.substr(start, i - start));
      start = i + 1;
    }
  }
  auto f = hoist::Filter::ParseAll(filters);
  if (!f) {
    FUZZ_CHECK(f.error().code() == EINVAL);
    FUZZ_CHECK(f.error().message().find('\n') == std::string::npos ||
               in.find('\n') != std::string_view::npos);
    return 0;
  }
  auto lookup = [](const std::vector<std::string>& path) -> std::optional<std::string> {
    if (path.empty()) return std::nullopt;
    if (path[0] == "name") return std::string("default/12/sha256:abc");
    if (path[0] == "kind") return std::string("committed");
    if (path[0] == "parent") return std::string();
    if (path[0] == "labels" && path.size() == 2 && path[1] == "containerd.io/snapshot.ref") {
      return std::string("sha256:abc");
    }
    return std::nullopt;
  };
  (void)f->Match(lookup);
  (void)hoist::UnquoteFilterString(in);
  return 0;
}
