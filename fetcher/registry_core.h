// Internal to fetcher/ (not for other modules): the machinery every registry request goes
// through — base URLs, auth, retries with backoff, redirects, error mapping. RegistryClient and
// RegistryBlobSource share one RegistryCore through shared_ptr.
//
// Thread-safety: Call may run on many threads at once.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "base/mutex.h"
#include "base/status.h"
#include "fetcher/auth.h"
#include "fetcher/credentials.h"
#include "fetcher/http.h"
#include "fetcher/mirror_resolver.h"
#include "fetcher/registry.h"
#include "fetcher/retry.h"

namespace hoist {

// One logical registry request, retried as a whole.
struct RegistryCall {
  std::string method = "GET";
  std::string url;         // absolute
  HttpHeaderList headers;  // never Authorization (added here, same origin only)
  std::string body;
  std::string registry;  // Reference::registry (credentials, auth origin)
  std::vector<std::string> scopes;
  std::string what;                      // error prefix: "localhost:5000/x: blob sha256:..."
  std::chrono::milliseconds timeout{0};  // 0 = options().request_timeout
  bool follow_redirects = true;
  // Statuses >= 400 the caller handles itself (returned as responses, not errors).
  std::vector<int> accept_statuses;

  // For 2xx bodies: see HttpRequest. `restart` runs before every attempt after the first.
  HttpBodySink sink;
  std::function<Status(const HttpResponse&)> on_head;
  std::function<void()> restart;
  // Checks a complete 2xx response; a transient error (IsTransientNetworkError) retries.
  std::function<Status(const HttpResponse&)> check;
  // If the sink aborted on purpose (it has all it needs), it sets *done; Call then succeeds
  // with the response head.
  const bool* done = nullptr;

  // Out: the URL that produced the final response (after redirects).
  std::string final_url;

  // Mirror routing (RegistryCore::Route sets these): with RegistryOptions::mirrors and a
  // repository, `url` is ignored and each host the resolver names is tried in turn with
  // <host's API root>/<its repository>/<suffix>. Empty repository: `url` alone.
  std::string repository;
  std::string suffix;
  RegistryAccess access = RegistryAccess::kPull;
  // Skip the mirror hosts (MirrorEndpoint::mirror): only the registry's own hosts are tried. A
  // re-read after a mirror served bytes that failed a digest check. EIO when every host is one.
  bool skip_mirrors = false;
  // Set before each host is tried: another host follows this one, so an answer only the last
  // host may give (a 200 to a Range request) must fail instead of being used.
  bool more_hosts = false;
  // Out: the host[:port] that served the final response, and whether it was a mirror.
  std::string served_by;
  bool served_by_mirror = false;
  // Out: with mirrors configured, the host that gave the final response.
  std::optional<MirrorEndpoint> host;
  // In: send `url` (absolute: an upload's Location, a next page) to this host alone, with its
  // TLS settings, headers and credentials (a follow-up of an earlier call's `host`).
  std::optional<MirrorEndpoint> pin;
};

class RegistryCore {
 public:
  RegistryCore(std::shared_ptr<HttpTransport> transport,
               std::shared_ptr<const CredentialStore> credentials, RegistryOptions options);

  const RegistryOptions& options() const { return options_; }
  Clock* clock() const { return clock_; }
  // The per-request bound for whole-blob transfers (blob_timeout, or effectively none).
  std::chrono::milliseconds BlobTimeout() const {
    return options_.blob_timeout.count() > 0 ? options_.blob_timeout : std::chrono::hours(24 * 365);
  }
  // "https://host" / "http://host:port" for a registry (Docker Hub -> registry-1.docker.io).
  std::string BaseUrl(std::string_view registry) const;
  // BaseUrl + "/v2/" + repository + "/" + suffix.
  std::string RepoUrl(std::string_view registry, std::string_view repository,
                      std::string_view suffix) const;

  // Points `call` at registry/repository/suffix (url, registry, repository, suffix, access).
  void Route(RegistryCall& call, std::string_view registry, std::string_view repository,
             std::string_view suffix, RegistryAccess access = RegistryAccess::kPull) const;

  // Runs the call: auth, redirects, retries; through the mirrors, if any (each host in turn:
  // one attempt on a host that has a fallback, with the short mirror connect timeout; the
  // last host gets the full retry policy; with skip_mirrors, the mirrors are left out). Returns the
  // final response: a 2xx/3xx, or a status listed in accept_statuses. Everything else becomes an
  // Error (see registry.h).
  [[nodiscard]] Result<HttpResponse> Call(RegistryCall& call);

  // The error for an unexpected final status: "<what>: 404 Not Found (CODE: message)".
  Error StatusError(const HttpResponse& response, std::string_view what) const;

 private:
  // One host to send a call to.
  struct Target {
    std::string base_url;     // origin: auth key; Authorization only goes here
    std::string credentials;  // registry name for credential lookup
    std::vector<std::string> scopes;
    HttpTlsOptions tls;
    HttpHeaderList headers;
    std::chrono::milliseconds connect_timeout{0};
    int max_attempts = 0;  // 0 = the policy's
  };
  // The target for one of the resolver's hosts (scopes renamed to its repository).
  Target HostTarget(const RegistryCall& call, const MirrorEndpoint& ep) const;
  Result<HttpResponse> CallOn(RegistryCall& call, const Target& target);
  Result<HttpResponse> Attempt(RegistryCall& call, const Target& target,
                               const std::optional<std::string>& auth,
                               std::chrono::milliseconds timeout, std::string* final_url,
                               HttpResponse* head);
  bool PlainHttp(std::string_view registry) const;
  std::chrono::milliseconds RetryDelay(int retry, const HttpResponse* response);

  std::shared_ptr<HttpTransport> transport_;
  std::shared_ptr<const CredentialStore> credentials_;
  RegistryOptions options_;
  Clock* clock_;
  RegistryAuth auth_;

  Mutex rng_mu_;
  std::minstd_rand rng_ HOIST_GUARDED_BY(rng_mu_);
};

// Parses a decimal header value (Content-Length, OCI-Chunk-Min-Length); nullopt if malformed.
std::optional<uint64_t> ParseDecimal(std::string_view text);

// A one-line summary of a registry JSON error body ({"errors":[{code,message}]}), "" if none.
std::string SummariseRegistryErrors(std::string_view body);

}  // namespace hoist
