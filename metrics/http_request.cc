#include "metrics/http_request.h"

#include <algorithm>

namespace hoist::metrics {

RequestKind ClassifyRequest(std::string_view head) {
  const std::string_view line = head.substr(0, head.find_first_of("\r\n"));
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return RequestKind::kBadRequest;
  const size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return RequestKind::kBadRequest;
  if (line.find(' ', sp2 + 1) != std::string_view::npos) return RequestKind::kBadRequest;
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!version.starts_with("HTTP/1.") || version.size() != 8 || target[0] != '/') {
    return RequestKind::kBadRequest;
  }
  if (method != "GET" && method != "HEAD") return RequestKind::kMethodNotAllowed;
  if (target.substr(0, target.find('?')) != "/metrics") return RequestKind::kNotFound;
  return method == "GET" ? RequestKind::kGetMetrics : RequestKind::kHeadMetrics;
}

size_t RequestHeadEnd(std::string_view in) {
  return std::min(in.find("\r\n\r\n"), in.find("\n\n"));
}

}  // namespace hoist::metrics
