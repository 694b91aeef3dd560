// libFuzzer target: the metrics endpoint's request parsing (metrics/http_request.h), fed what a
// hostile local client could send. Served requests really are GET or HEAD of /metrics; the head
// end, when found, is inside the input and before a blank line.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "metrics/http_request.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16384) return 0;
  const std::string_view in = hoist::fuzz::AsView(data, size);
  const size_t end = hoist::metrics::RequestHeadEnd(in);
  if (end != std::string_view::npos) {
    FUZZ_CHECK(end < in.size());
    FUZZ_CHECK(in.substr(end).starts_with("\r\n\r\n") || in.substr(end).starts_with("\n\n"));
  }
  const std::string_view head = end == std::string_view::npos ? in : in.substr(0, end);
  switch (hoist::metrics::ClassifyRequest(head)) {
    case hoist::metrics::RequestKind::kGetMetrics:
      FUZZ_CHECK(head.starts_with("GET /metrics"));
      break;
    case hoist::metrics::RequestKind::kHeadMetrics:
      FUZZ_CHECK(head.starts_with("HEAD /metrics"));
      break;
    default:
      break;
  }
  return 0;
}
