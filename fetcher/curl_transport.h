// CurlTransport: the real HttpTransport, on libcurl (the only file in the project that includes
// curl is curl_transport.cc).
//
// - A pool of easy handles; every handle shares one CURLSH (connection cache, DNS cache, TLS
//   sessions), so connections are reused across threads. HTTP/1.1 keep-alive.
// - TLS peer and host verification are always on (ca_bundle may add a CA file for tests).
// - Connect timeout, a low-speed limit (below low_speed_bytes_per_second for low_speed_time is a
//   timeout: ETIMEDOUT) and an overall per-request bound (request.timeout, else
//   default_timeout; 0 = none).
// - Redirects are never followed (see http.h).
// - Concurrency: RoundTrip is thread-safe; N threads calling it run N transfers at once, each on
//   its own pooled handle (at most max_idle_handles are kept when idle).
// - curl_global_init runs once per process, thread-safely, on first construction.
//
// Lifetime: the transport must outlive every RoundTrip call in progress.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "base/status.h"
#include "fetcher/http.h"

namespace hoist {

struct CurlTransportOptions {
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds default_timeout{0};
  long low_speed_bytes_per_second = 1024;
  std::chrono::seconds low_speed_time{15};
  std::string user_agent = "hoist/0.1";
  std::string ca_bundle;  // extra CA file ("" = system store)
  size_t max_idle_handles = 16;
  // Idle connections the shared cache keeps open (CURLOPT_MAXCONNECTS; libcurl's default of 5
  // closed the connections of a prefetch burst, so the next on-demand read paid a new TCP
  // handshake: one more round trip on the start's critical path).
  long max_idle_connections = 64;
  bool verbose = false;  // CURLOPT_VERBOSE to stderr (debugging)
};

// While one lives, requests made by this thread open a new connection (CURLOPT_FRESH_CONNECT)
// instead of taking an idle one from the shared cache; the new connection joins the cache when
// the request ends. For warming connections (fusefs/mount.cc) without taking the one a
// concurrent request of the same mount was about to reuse.
class FreshConnections {
 public:
  FreshConnections();
  ~FreshConnections();
  FreshConnections(const FreshConnections&) = delete;
  FreshConnections& operator=(const FreshConnections&) = delete;

 private:
  bool previous_;
};

[[nodiscard]] Result<std::unique_ptr<HttpTransport>> NewCurlTransport(
    CurlTransportOptions options = {});

}  // namespace hoist
