// TokenServer: runs tests/harness/token_server.py, a Bearer token issuer the distribution
// registry 2.8 trusts (`auth: token` mode), on a free 127.0.0.1 port.
//
// At start it generates an RSA key and a self-signed certificate (`openssl req -x509`) in `dir`;
// the registry's rootcertbundle is cert_path(). Tokens are RS256 JWTs whose header carries `x5c`
// (both `x5c` and `kid` were checked to work with 2.8), with claims iss, sub, aud, exp, nbf, iat,
// jti and access. The registry accepts a token until exp + 60 s; the server compensates, so a
// token issued with ttl T really stops working after T seconds (exp = now + T - 60).
//
// Credentials: with a user configured, Basic credentials on /token are checked (wrong -> 401)
// and anonymous requests get a token with no access; without one, every scope is granted.
//
// Thread-safety: the methods may be called from several threads (each is one HTTP request),
// except Start and destruction. The destructor stops the server.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "tests/harness/subprocess.h"

namespace hoist::harness {

struct TokenServerOptions {
  std::string dir;   // key, certificate and log go here (created if missing); REQUIRED
  std::string user;  // empty: no credentials checked, everything granted
  std::string password;
  int ttl_seconds = 300;  // lifetime of issued tokens (settable later with SetTokenTtl)
  std::string issuer = "hoist-test-issuer";
  std::string service = "hoist-test-registry";
  std::string key_id = "x5c";  // JWT header key naming: "x5c", "kid" or "x5c,kid"
};

struct TokenServerStats {
  int issued = 0;   // tokens minted so far
  int refused = 0;  // requests refused with 401 (wrong credentials)
  int ttl = 0;
  std::vector<std::string> last_scopes;  // scopes of the last token request
};

class TokenServer {
 public:
  [[nodiscard]] static Result<std::unique_ptr<TokenServer>> Start(TokenServerOptions options);
  ~TokenServer() = default;

  // "http://127.0.0.1:PORT/token": the registry's auth.token.realm.
  std::string realm() const;
  int port() const { return port_; }
  const TokenServerOptions& options() const { return options_; }
  std::string cert_path() const { return options_.dir + "/cert.pem"; }
  std::string log_path() const { return options_.dir + "/token_server.log"; }

  // Tokens issued from now on live `seconds` (>= 1). If `advertised_seconds` > 0, the reply's
  // expires_in claims that instead, so a client keeps using a token the registry already refuses
  // (exercises refresh-on-401 rather than refresh-before-expiry).
  [[nodiscard]] Status SetTokenTtl(int seconds, int advertised_seconds = 0);
  [[nodiscard]] Result<TokenServerStats> Stats() const;
  // GET realm?service=&scope=... (with Basic credentials if user is non-empty) -> the token.
  // A 401 from the server is EACCES.
  [[nodiscard]] Result<std::string> FetchToken(const std::vector<std::string>& scopes,
                                               const std::string& user = "",
                                               const std::string& password = "") const;

 private:
  TokenServer() = default;
  TokenServerOptions options_;
  int port_ = 0;
  ChildProcess process_;
};

// Where the harness sources live (token_server.py, registry.sh): HOIST_HARNESS_DIR at build time.
std::string HarnessSourceDir();

}  // namespace hoist::harness
