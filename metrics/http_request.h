// The one thing the metrics endpoint (http_server.h) parses from its clients: the request line
// of an HTTP/1.x request head. Pure functions over untrusted bytes (fuzzed:
// tests/fuzz/fuzz_metrics_request.cc).
//
// A request line is exactly "METHOD SP TARGET SP HTTP/1.x" (single spaces, TARGET starting with
// '/'); anything else is kBadRequest. The path is TARGET up to '?'. GET or HEAD of "/metrics"
// is served; another method is kMethodNotAllowed; another path kNotFound. Header lines are not
// interpreted.
#pragma once

#include <cstddef>
#include <string_view>

namespace hoist::metrics {

enum class RequestKind { kGetMetrics, kHeadMetrics, kBadRequest, kNotFound, kMethodNotAllowed };

// `head` is the request head without its terminating blank line.
RequestKind ClassifyRequest(std::string_view head);

// The length of the request head before its blank line ("\r\n\r\n" or "\n\n"), or npos if the
// blank line has not arrived.
size_t RequestHeadEnd(std::string_view in);

}  // namespace hoist::metrics
