#include "tests/harness/registry_requests.h"

#include <errno.h>

#include "tests/harness/simple_http.h"
#include "tests/harness/wait.h"

namespace hoist::harness {

BlobGets SumBlobGets(const std::vector<RegistryRequest>& requests, std::string_view digest,
                     uint64_t whole_size) {
  BlobGets out;
  for (const RegistryRequest& r : requests) {
    if (!r.IsBlobGet() || r.uri.find(digest) == std::string::npos) continue;
    out.bytes += r.bytes_written;
    ++out.count;
    if (r.bytes_written >= whole_size) out.whole = true;
  }
  return out;
}

Result<std::vector<RegistryRequest>> RequestsUpToSentinel(TestRegistry& registry, uint64_t mark,
                                                          const std::string& sentinel) {
  HOIST_RETURN_IF_ERROR(HttpGet(registry.base_url() + "/v2/?" + sentinel));
  std::vector<RegistryRequest> out;
  const bool seen = WaitUntil([&] {
    auto all = registry.Requests(mark);
    if (!all) return false;
    out.clear();
    for (RegistryRequest& r : *all) {
      if (r.uri.find(sentinel) != std::string::npos) return true;
      // Earlier sentinels are the caller's own requests too.
      if (r.uri.find("/v2/?sentinel-") == 0) continue;
      out.push_back(std::move(r));
    }
    return false;
  });
  if (!seen) return Fail(ETIMEDOUT, "the registry never logged " + sentinel);
  return out;
}

std::string DescribeRequests(const std::vector<RegistryRequest>& requests) {
  std::string s;
  for (const RegistryRequest& r : requests) {
    s += r.method + " " + r.uri + " " + std::to_string(r.status) + " " +
         std::to_string(r.bytes_written) + "\n";
  }
  return s;
}

}  // namespace hoist::harness
