// RegistryAuth: turns a registry's challenge plus the user's credentials into the Authorization
// header for each request, and keeps Bearer tokens.
//
// Protocol (index/FORMATS.md, "Registry API (fetcher/)", Auth):
//   - On first use of an endpoint it probes `GET <origin>/v2/`. 200 = anonymous. 401 carries
//     WWW-Authenticate: Basic (send "Basic b64(user:pass)" on every request) or Bearer.
//     A caller whose request has no body (GET, HEAD) may skip the probe (Authorize's
//     `may_skip_probe`): the request goes out anonymous, and a 401 brings the challenge to
//     Reauthorize. That saves the probe's round trip whenever the registry serves anonymously
//     and costs nothing otherwise (the 401 stands in for the probe's).
//   - Bearer: scopes "repository:NAME:pull" / "repository:NAME:pull,push" (plus the `from`
//     repository's pull scope for a cross-repository mount). Token request:
//       * identity token -> form POST realm {grant_type=refresh_token, refresh_token, service,
//         client_id=hoist, scope}; on 404 (or 405) fall back to GET;
//       * GET realm?service=..&scope=..(repeated) with Basic user:pass when there are
//         credentials, else anonymous.
//     Reply: `token` or `access_token`, `expires_in` (default 60 s), `issued_at`.
//   - registrytoken credentials are sent as "Bearer <token>" without a token request.
//   - The probe and the token requests use the TLS settings (HttpTlsOptions: a mirror's `ca`,
//     `client`, `skip_verify`) of the host that issued the challenge, as containerd's authorizer
//     uses that host's HTTP client: a mirror with a private CA also signs its token realm's
//     certificate. A realm on another host gets the same settings.
//   - Tokens are cached by (realm, service, sorted scopes) and fetched anew when within
//     refresh_margin of expiry, or after a 401 (Reauthorize). One token request per key runs at
//     a time: threads that need the same token meanwhile wait for it (a mount's layers all ask
//     at once). A 401 whose challenge has
//     error="insufficient_scope" widens the scopes with the challenge's `scope`.
//
// Thread-safety: all methods are safe from many threads; a token fetch happens outside the lock.
// Lifetime: transport, credentials and clock must outlive the RegistryAuth.
// Errors: EACCES when the token server refuses the credentials (401/403), ENOENT/EIO for other
// token-server failures (message names the realm), transport errors passed through (they are
// transient and the caller's retry loop retries them).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/mutex.h"
#include "base/status.h"
#include "fetcher/credentials.h"
#include "fetcher/http.h"
#include "fetcher/retry.h"
#include "fetcher/www_authenticate.h"

namespace hoist {

struct RegistryAuthOptions {
  std::string user_agent = "hoist/0.1";
  std::chrono::seconds refresh_margin{10};
  std::chrono::milliseconds request_timeout{30000};
};

// "repository:NAME:pull" or "repository:NAME:pull,push".
std::string RepositoryScope(std::string_view repository, bool push);

class RegistryAuth {
 public:
  RegistryAuth(HttpTransport* transport, const CredentialStore* credentials, Clock* clock,
               RegistryAuthOptions options = {});
  RegistryAuth(const RegistryAuth&) = delete;
  RegistryAuth& operator=(const RegistryAuth&) = delete;

  // The Authorization header value for a request to the registry whose base URL is `origin`
  // ("https://host" or "http://host:port", no path) and whose Reference::registry is `registry`
  // (the Reference::registry, used for the credential lookup) needing `scopes`; nullopt for
  // anonymous access.
  // `may_skip_probe`: see the file comment (only for requests without a body). `tls`: the
  // origin's TLS settings, used for the probe and the token request.
  [[nodiscard]] Result<std::optional<std::string>> Authorize(std::string_view origin,
                                                             std::string_view registry,
                                                             const std::vector<std::string>& scopes,
                                                             bool may_skip_probe = false,
                                                             const HttpTlsOptions& tls = {});

  // Whether `origin`'s challenge is known (probed, or learned from a 401).
  bool Knows(std::string_view origin);

  // After a 401 from `origin`: learns the challenge in `www_authenticate` (may be empty: then
  // the endpoint is probed again), drops the cached token for `scopes` and returns a fresh
  // header. EACCES if no credentials can satisfy the challenge.
  [[nodiscard]] Result<std::optional<std::string>> Reauthorize(
      std::string_view origin, std::string_view registry, const std::vector<std::string>& scopes,
      std::string_view www_authenticate, const HttpTlsOptions& tls = {});

 private:
  struct Token {
    std::string value;
    Clock::TimePoint expires;
  };
  struct EndpointState {
    bool probed = false;
    std::optional<AuthChallenge> challenge;  // nullopt = anonymous
  };

  Result<EndpointState> Probe(std::string_view origin, const HttpTlsOptions& tls);
  Result<std::optional<std::string>> HeaderFor(const EndpointState& state,
                                               std::string_view registry,
                                               std::vector<std::string> scopes, bool force_new,
                                               const HttpTlsOptions& tls);
  Result<Token> FetchToken(const AuthChallenge& challenge, const Credential& credential,
                           const std::vector<std::string>& scopes, const HttpTlsOptions& tls);
  Result<HttpResponse> OAuthPost(const AuthChallenge& challenge, const Credential& credential,
                                 const std::vector<std::string>& scopes, const HttpTlsOptions& tls);

  HttpTransport* transport_;
  const CredentialStore* credentials_;
  Clock* clock_;
  RegistryAuthOptions options_;

  Mutex mu_;
  std::map<std::string, EndpointState, std::less<>> endpoints_ HOIST_GUARDED_BY(mu_);
  std::map<std::string, Token, std::less<>> tokens_ HOIST_GUARDED_BY(mu_);
  // Keys whose token request is running; token_cv_ is notified when one ends.
  std::set<std::string, std::less<>> fetching_ HOIST_GUARDED_BY(mu_);
  CondVar token_cv_;
};

}  // namespace hoist
