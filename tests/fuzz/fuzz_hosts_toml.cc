// libFuzzer target: ParseHostsToml (containerd's hosts.toml, fetcher/hosts_toml.h). A file that
// parses gives hosts with an http(s) scheme, a host and an API root ("" or "/..."); relative
// ca/client paths come back absolute under the base directory. No file is read.
#include <cstddef>
#include <cstdint>

#include "fetcher/hosts_toml.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

void CheckHost(const hoist::HostsTomlHost& h, bool server) {
  if (!server || !h.host.empty()) {
    FUZZ_CHECK(h.scheme == "http" || h.scheme == "https");
    FUZZ_CHECK(!h.host.empty());
    // "" = the server's root (override_path with no path); otherwise "/..." without a final '/'.
    FUZZ_CHECK(h.api_root.empty() || (h.api_root.front() == '/' && h.api_root.back() != '/'));
  }
  FUZZ_CHECK((h.capabilities & ~hoist::kHostAll) == 0);
  for (const std::string& ca : h.ca_files) FUZZ_CHECK(ca.empty() || ca.front() == '/');
  for (const auto& [name, value] : h.headers) {
    FUZZ_CHECK(value.find_first_of("\r\n") == std::string::npos);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16384) return 0;
  auto parsed = hoist::ParseHostsToml(hoist::fuzz::AsView(data, size), "hosts.toml", "/certs.d/r");
  if (!parsed) {
    FUZZ_CHECK(parsed.error().code() == EINVAL);
    return 0;
  }
  for (const auto& h : parsed->hosts) CheckHost(h, false);
  if (parsed->server) CheckHost(*parsed->server, true);
  return 0;
}
