// The HTTP seam of the fetcher: one abstract transport that sends a request and returns the
// response. The registry client (registry.h) is written against this interface only; the real
// implementation is CurlTransport (curl_transport.h) and tests plug in scripted fakes here to
// inject faults. Nothing outside fetcher/ sees HTTP.
//
// Semantics every implementation follows:
//   - Redirects are NOT followed: a 3xx comes back as a response with its `location` header; the
//     caller decides where to go next and which headers to send there.
//   - Headers in the response have lower-cased names, in arrival order (repeats kept).
//   - Body: for a 2xx response with `body_sink` set, the body bytes are passed to the sink as they
//     arrive and `body` stays empty; otherwise (no sink, or a non-2xx status) the body is
//     collected in `body` (non-2xx bodies are capped at kMaxErrorBodySize; the rest is dropped).
//   - A HEAD request never has a body.
//   - A body shorter than the response's Content-Length is an error (ECONNRESET, "truncated"),
//     never a short success.
//
// Errors (no response at all, or the transfer broke): the errno says what happened, the message
// names the method and URL. Transient codes (see IsTransientNetworkError): ECONNRESET,
// ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH, EPIPE, EAGAIN, ECONNABORTED. Not transient:
// EPROTO (TLS / certificate / protocol errors), EINVAL (bad URL), ECANCELED (cancelled), and any
// error a body sink or body reader returned, which is passed through unchanged.
//
// Thread-safety: RoundTrip may be called from many threads at once; each call blocks its thread
// until the response is complete. Callbacks run on the calling thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace hoist {

inline constexpr size_t kMaxErrorBodySize = 64 * 1024;

using HttpHeaderList = std::vector<std::pair<std::string, std::string>>;

// Receives body bytes. Returning an error aborts the transfer; RoundTrip then returns that error.
using HttpBodySink = std::function<Status(std::string_view chunk)>;
// Produces request body bytes into buf[0, max). Returns the count written; 0 means the end.
using HttpBodyReader = std::function<Result<size_t>(char* buf, size_t max)>;

struct HttpResponse;

// Per-request TLS settings (a mirror's skip_verify / ca / client from hosts.toml).
struct HttpTlsOptions {
  bool skip_verify = false;  // no peer or host name verification
  std::string ca_pem;        // trusted CAs (PEM) replacing the default bundle; "" = default
  std::string client_cert;   // client certificate file (PEM); "" = none
  std::string client_key;    // its key file; "" = in client_cert

  bool empty() const {
    return !skip_verify && ca_pem.empty() && client_cert.empty() && client_key.empty();
  }
};

struct HttpRequest {
  std::string method = "GET";  // GET HEAD POST PUT PATCH DELETE
  std::string url;             // absolute http:// or https:// URL
  HttpHeaderList headers;      // sent exactly as given (no Authorization is ever added)

  // Request body: `body`, unless `body_reader` is set, in which case the reader is drained and
  // `body_size` is the exact Content-Length.
  std::string body;
  HttpBodyReader body_reader;
  uint64_t body_size = 0;

  // Where a 2xx response body goes (see the file comment). Optional.
  HttpBodySink body_sink;
  // Called once for a 2xx response that has a body, when `body_sink` is set: with the status and
  // headers (body empty), before the sink sees any byte. An error aborts like a sink error.
  std::function<Status(const HttpResponse& head)> on_head;

  // Overall bound for this request (connect to last byte). 0 = the transport's default.
  std::chrono::milliseconds timeout{0};
  // Bound for establishing the connection. 0 = the transport's default.
  std::chrono::milliseconds connect_timeout{0};
  HttpTlsOptions tls;

  // Polled during the transfer; returning true aborts it with ECANCELED. Optional.
  std::function<bool()> cancelled;
};

struct HttpResponse {
  int status = 0;
  HttpHeaderList headers;  // names lower-cased
  std::string body;        // see the file comment for when this is filled

  // The first value of header `name` (give it lower-cased), or nullopt.
  std::optional<std::string> Header(std::string_view name) const;
  // All values of header `name` (lower-cased), in order.
  std::vector<std::string> Headers(std::string_view name) const;
};

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  // Sends one request and waits for the whole response. See the file comment.
  [[nodiscard]] virtual Result<HttpResponse> RoundTrip(const HttpRequest& request) = 0;
};

// For transports that wrap another and count what a request's body sink receives: a copy of
// `request` whose sink adds each chunk's size to *counted before passing it on, or nullopt when
// the request has no sink (use it as is; an upload's body is never copied). `request` and
// `counted` must outlive the copy.
std::optional<HttpRequest> WithCountingSink(const HttpRequest& request, uint64_t* counted);

// True for transport errors worth retrying (connection failures, resets, timeouts).
bool IsTransientNetworkError(const Error& error);

// "Not Found" for 404 etc. ("" if unknown).
std::string_view HttpReasonPhrase(int status);

}  // namespace hoist
