// Summaries of what a TestRegistry served (TestRegistry::Requests), shared by the tests that
// count the bytes a mount or a verb fetched.
//
//   auto requests = registry->Requests(mark);
//   BlobGets g = SumBlobGets(*requests, layer_digest, layer_size);  // g.bytes, g.count, g.whole
//   auto settled = RequestsUpToSentinel(*registry, mark, "sentinel-1");
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "tests/harness/test_registry.h"

namespace hoist::harness {

// The blob GETs of one digest: body bytes sent in all, how many GETs, and whether one GET sent
// at least the whole blob (`whole_size` bytes).
struct BlobGets {
  uint64_t bytes = 0;
  int count = 0;
  bool whole = false;
};
// `digest` is "sha256:<hex>"; a request counts when it IsBlobGet() and its URI names the digest.
BlobGets SumBlobGets(const std::vector<RegistryRequest>& requests, std::string_view digest,
                     uint64_t whole_size = UINT64_MAX);

// The requests `registry` completed since `mark`, up to a request of the caller's own sent now
// (GET /v2/?<sentinel>) and waited for in the log, so every request answered before the call is
// there. The caller's sentinels (any "/v2/?sentinel-..." request) are left out; `sentinel` should
// start with "sentinel-" and be new. ETIMEDOUT when the sentinel never shows (harness::WaitUntil's
// generous deadline); the GET's error if it could not be sent.
[[nodiscard]] Result<std::vector<RegistryRequest>> RequestsUpToSentinel(
    TestRegistry& registry, uint64_t mark, const std::string& sentinel);

// One line a request: "METHOD URI STATUS BYTES".
std::string DescribeRequests(const std::vector<RegistryRequest>& requests);

}  // namespace hoist::harness
