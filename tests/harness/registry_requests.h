// Summaries of what a TestRegistry served (TestRegistry::Requests), shared by the tests that
// count the bytes a mount or a verb fetched.
//
//   auto requests = registry->Requests(mark);
//   BlobGets g = SumBlobGets(*requests, layer_digest, layer_size);  // g.bytes, g.count, g.whole
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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

// One line a request: "METHOD URI STATUS BYTES".
std::string DescribeRequests(const std::vector<RegistryRequest>& requests);

}  // namespace hoist::harness
