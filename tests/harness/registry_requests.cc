#include "tests/harness/registry_requests.h"

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

std::string DescribeRequests(const std::vector<RegistryRequest>& requests) {
  std::string s;
  for (const RegistryRequest& r : requests) {
    s += r.method + " " + r.uri + " " + std::to_string(r.status) + " " +
         std::to_string(r.bytes_written) + "\n";
  }
  return s;
}

}  // namespace hoist::harness
