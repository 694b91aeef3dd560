// A minimal blocking HTTP client for the harness itself (readiness probes, token server control)
// and for tests that want to poke a registry directly without going through hoist's fetcher.
// Built on libcurl; no redirects are followed, no retries.
//
// Thread-safety: each call is independent (its own easy handle); safe from many threads.
// Errors: no response at all (connection refused, timeout) -> the errno (ECONNREFUSED,
// ETIMEDOUT, EIO) with the URL in the message. Any HTTP status is a successful Result.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace hoist::harness {

struct SimpleHttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  // The first value of header `name` (lower-case), or nullopt.
  std::optional<std::string> Header(const std::string& name) const;
};

struct SimpleHttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  std::string basic_user;  // set both for Basic auth
  std::string basic_password;
  std::chrono::milliseconds timeout{10000};
};

[[nodiscard]] Result<SimpleHttpResponse> HttpFetch(const SimpleHttpRequest& request);
[[nodiscard]] Result<SimpleHttpResponse> HttpGet(const std::string& url,
                                                 std::vector<std::string> headers = {});

}  // namespace hoist::harness
