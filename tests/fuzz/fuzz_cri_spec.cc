// libFuzzer target: hoist-cri's pod and container configs (tools/cri/cri_spec.h), JSON from a
// user's files. The first byte picks the parser (even: pod, odd: container); the rest is the
// JSON. A parse either fails with EINVAL and a one-line message, or yields a spec whose required
// fields are set.
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>

#include "tests/fuzz/fuzz_util.h"
#include "tools/cri/cri_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 16384) return 0;
  const std::string_view json = hoist::fuzz::AsView(data + 1, size - 1);
  auto one_line = [](const hoist::Error& e) {
    FUZZ_CHECK(e.code() == EINVAL);
    FUZZ_CHECK(e.message().starts_with("f.json: "));
  };
  if (data[0] % 2 == 0) {
    auto pod = hoist::cri::ParsePodSpec(json, "f.json");
    if (!pod) return one_line(pod.error()), 0;
    FUZZ_CHECK(!pod->name.empty() && !pod->uid.empty() && !pod->namespace_name.empty());
    FUZZ_CHECK(pod->log_directory.empty() || pod->log_directory[0] == '/');
  } else {
    auto c = hoist::cri::ParseContainerSpec(json, "f.json");
    if (!c) return one_line(c.error()), 0;
    FUZZ_CHECK(!c->name.empty() && !c->image.empty());
    FUZZ_CHECK(c->log_path.empty() || c->log_path[0] != '/');
  }
  return 0;
}
