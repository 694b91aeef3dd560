// The metrics endpoint: a tiny HTTP/1.1 server that answers GET /metrics (and nothing else) on a
// loopback TCP address or a unix socket, with the text a callback renders (registry.h).
//
//   auto addr = metrics::ParseAddress("127.0.0.1:9108");   // or "[::1]:9108", "localhost:0",
//   auto server = metrics::MetricsServer::Start(*addr,     // "unix:/run/hoist/metrics.sock"
//                                              [] { return metrics::Global().Render(); });
//   (*server)->port();   // the bound TCP port (useful with port 0)
//
// Addresses: HOST:PORT where HOST is a loopback IPv4 address (127.0.0.0/8), "[::1]" or
// "localhost" (127.0.0.1), PORT 0-65535; or unix:PATH with an absolute PATH. Anything else is
// EINVAL with one line naming the address and the rule ("not a loopback address": metrics are
// served without authentication, so never to the network). A unix socket path left by a dead
// process is replaced; one a live process answers on is EADDRINUSE. The socket file is removed
// when the server stops.
//
// Protocol: one request per connection (the response carries Connection: close).
//   GET /metrics[?query]  -> 200, Content-Type: text/plain; version=0.0.4; charset=utf-8
//   HEAD /metrics         -> 200, the same headers, no body
//   another method        -> 405 (Allow: GET, HEAD)
//   another path          -> 404
//   malformed request     -> 400; a request head over max_request_bytes -> 431
// Hostile clients: each connection has a deadline (io_timeout) from accept to the last byte of
// the response; a client that sends too slowly or does not read is dropped then. At most
// max_connections are open at once; beyond that new connections wait in the listen backlog
// until one closes (at the latest at its deadline). Nothing a client sends can block the server
// thread: every socket is non-blocking and served from one poll loop.
//
// Thread-safety: one server thread runs `render` (which must be thread-safe against the rest of
// the process). Start/destruction from one thread. The destructor stops the thread (and closes
// every connection) within one poll round.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "base/scoped_fd.h"
#include "base/status.h"

namespace hoist::metrics {

struct Address {
  enum class Kind { kTcp, kUnix };
  Kind kind = Kind::kTcp;
  std::string host;  // numeric: "127.0.0.1", "::1"
  uint16_t port = 0;
  std::string path;  // unix
  std::string text;  // as given
};

// Parses an address as above. EINVAL with one line on anything else.
[[nodiscard]] Result<Address> ParseAddress(std::string_view text);

struct ServerOptions {
  size_t max_request_bytes = 8192;
  std::chrono::milliseconds io_timeout{5000};
  int max_connections = 16;
};

class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  // Binds and listens (errors: EADDRINUSE, EACCES, ... naming the address), then serves from a
  // thread of its own.
  [[nodiscard]] static Result<std::unique_ptr<MetricsServer>> Start(const Address& address,
                                                                    Render render,
                                                                    ServerOptions options = {});
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound TCP port (0 for a unix socket).
  uint16_t port() const { return port_; }
  // Connections open now (accepted, not yet closed).
  int open_connections() const { return open_.load(); }

 private:
  MetricsServer() = default;
  void Loop();

  Address address_;
  Render render_;
  ServerOptions options_;
  ScopedFd listen_fd_;
  ScopedFd wake_read_, wake_write_;
  uint16_t port_ = 0;
  std::atomic<int> open_{0};
  std::thread thread_;
};

// The daemons' endpoint: serves Global().Render() (registry.h) at `address` (ParseAddress).
// With `retry_while_busy` (a daemon taking over from the one it replaces, which still holds the
// address), EADDRINUSE is not an error: binding is retried every 100 ms from a thread of its own
// until it succeeds or the endpoint is destroyed. Other errors are returned, naming the address.
class MetricsEndpoint {
 public:
  [[nodiscard]] static Result<std::unique_ptr<MetricsEndpoint>> Start(std::string_view address,
                                                                      bool retry_while_busy);
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

 private:
  MetricsEndpoint() = default;
  Address address_;
  std::unique_ptr<MetricsServer> server_;
  std::thread retry_;
  std::atomic<bool> stop_{false};
};

}  // namespace hoist::metrics
