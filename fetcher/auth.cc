#include "fetcher/auth.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "base/digest.h"
#include "base/log.h"
#include "base/rfc3339.h"
#include "fetcher/url.h"
#include "rapidjson/document.h"

namespace hoist {
namespace {

constexpr int64_t kDefaultTokenLifetimeSeconds = 60;

std::string JoinScopes(const std::vector<std::string>& scopes, char sep) {
  std::string out;
  for (const std::string& s : scopes) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

std::vector<std::string> Normalise(std::vector<std::string> scopes) {
  std::sort(scopes.begin(), scopes.end());
  scopes.erase(std::unique(scopes.begin(), scopes.end()), scopes.end());
  return scopes;
}

// Picks the challenge we can answer: Bearer before Basic; nullopt if neither is offered.
std::optional<AuthChallenge> PickChallenge(const std::vector<AuthChallenge>& challenges) {
  for (const AuthChallenge& c : challenges) {
    if (c.scheme == "bearer") return c;
  }
  for (const AuthChallenge& c : challenges) {
    if (c.scheme == "basic") return c;
  }
  return std::nullopt;
}

std::string Summarise(const HttpResponse& r) {
  std::string out = std::to_string(r.status);
  std::string_view reason = HttpReasonPhrase(r.status);
  if (!reason.empty()) out += " " + std::string(reason);
  return out;
}

}  // namespace

std::string RepositoryScope(std::string_view repository, bool push) {
  return "repository:" + std::string(repository) + (push ? ":pull,push" : ":pull");
}

RegistryAuth::RegistryAuth(HttpTransport* transport, const CredentialStore* credentials,
                           Clock* clock, RegistryAuthOptions options)
    : transport_(transport),
      credentials_(credentials),
      clock_(clock ? clock : RealClock()),
      options_(std::move(options)) {}

Result<RegistryAuth::EndpointState> RegistryAuth::Probe(std::string_view origin,
                                                        const HttpTlsOptions& tls) {
  HttpRequest req;
  req.method = "GET";
  req.url = std::string(origin) + "/v2/";
  req.tls = tls;
  req.timeout = options_.request_timeout;
  if (!options_.user_agent.empty()) req.headers.emplace_back("User-Agent", options_.user_agent);
  HOIST_ASSIGN_OR_RETURN(HttpResponse resp, transport_->RoundTrip(req));
  EndpointState state;
  state.probed = true;
  if (resp.status == 401) {
    for (const std::string& h : resp.Headers("www-authenticate")) {
      auto parsed = ParseWwwAuthenticate(h);
      if (!parsed) return Fail(parsed.error().Context(std::string("probing ") + req.url));
      state.challenge = PickChallenge(*parsed);
      if (state.challenge) break;
    }
    if (!state.challenge) {
      return Fail(EACCES, "probing " + req.url + ": 401 without a usable WWW-Authenticate");
    }
  } else if (resp.status >= 500 || resp.status == 429) {
    return Fail(EAGAIN, "probing " + req.url + ": " + Summarise(resp));
  }
  return state;
}

Result<std::optional<std::string>> RegistryAuth::Authorize(std::string_view origin,
                                                           std::string_view registry,
                                                           const std::vector<std::string>& scopes,
                                                           bool may_skip_probe,
                                                           const HttpTlsOptions& tls) {
  EndpointState state;
  {
    MutexLock lock(mu_);
    auto it = endpoints_.find(origin);
    if (it != endpoints_.end()) state = it->second;
  }
  if (!state.probed && may_skip_probe) return std::optional<std::string>();
  if (!state.probed) {
    HOIST_ASSIGN_OR_RETURN(state, Probe(origin, tls));
    MutexLock lock(mu_);
    endpoints_[std::string(origin)] = state;
  }
  return HeaderFor(state, registry, scopes, /*force_new=*/false, tls);
}

bool RegistryAuth::Knows(std::string_view origin) {
  MutexLock lock(mu_);
  auto it = endpoints_.find(origin);
  return it != endpoints_.end() && it->second.probed;
}

Result<std::optional<std::string>> RegistryAuth::Reauthorize(std::string_view origin,
                                                             std::string_view registry,
                                                             const std::vector<std::string>& scopes,
                                                             std::string_view www_authenticate,
                                                             const HttpTlsOptions& tls) {
  EndpointState state;
  std::vector<std::string> wanted = scopes;
  if (!www_authenticate.empty()) {
    auto parsed = ParseWwwAuthenticate(www_authenticate);
    if (!parsed) return Fail(parsed.error());
    state.probed = true;
    state.challenge = PickChallenge(*parsed);
    if (!state.challenge) {
      return Fail(EACCES, std::string(origin) + ": 401 with no Basic or Bearer challenge");
    }
    if (state.challenge->scheme == "bearer") {
      std::string extra = state.challenge->Param("scope");
      size_t i = 0;
      while (i < extra.size()) {
        size_t j = extra.find(' ', i);
        if (j == std::string::npos) j = extra.size();
        if (j > i) wanted.push_back(extra.substr(i, j - i));
        i = j + 1;
      }
    }
  } else {
    HOIST_ASSIGN_OR_RETURN(state, Probe(origin, tls));
  }
  {
    MutexLock lock(mu_);
    endpoints_[std::string(origin)] = state;
  }
  return HeaderFor(state, registry, std::move(wanted), /*force_new=*/true, tls);
}

Result<std::optional<std::string>> RegistryAuth::HeaderFor(const EndpointState& state,
                                                           std::string_view registry,
                                                           std::vector<std::string> scopes,
                                                           bool force_new,
                                                           const HttpTlsOptions& tls) {
  if (!state.challenge) return std::optional<std::string>();
  HOIST_ASSIGN_OR_RETURN(Credential cred, credentials_->Lookup(registry));
  const AuthChallenge& challenge = *state.challenge;
  if (challenge.scheme == "basic") {
    if (cred.username.empty() && cred.password.empty()) return std::optional<std::string>();
    return std::optional<std::string>("Basic " + Base64Encode(cred.username + ":" + cred.password));
  }
  if (!cred.registry_token.empty()) {
    return std::optional<std::string>("Bearer " + cred.registry_token);
  }
  scopes = Normalise(std::move(scopes));
  std::string key =
      challenge.Param("realm") + "\n" + challenge.Param("service") + "\n" + JoinScopes(scopes, ' ');
  {
    // One token request per key at a time; the others wait for it and use what it got.
    MutexLock lock(mu_);
    bool waited = false;
    while (fetching_.contains(key)) {
      token_cv_.Wait(mu_);
      waited = true;
    }
    auto it = tokens_.find(key);
    if ((!force_new || waited) && it != tokens_.end() &&
        clock_->Now() + options_.refresh_margin < it->second.expires) {
      return std::optional<std::string>("Bearer " + it->second.value);
    }
    fetching_.insert(key);
  }
  Result<Token> token = FetchToken(challenge, cred, scopes, tls);
  MutexLock lock(mu_);
  fetching_.erase(key);
  token_cv_.NotifyAll();
  if (!token) return Fail(token.error());
  std::string header = "Bearer " + token->value;
  tokens_[key] = std::move(*token);
  return std::optional<std::string>(std::move(header));
}

Result<HttpResponse> RegistryAuth::OAuthPost(const AuthChallenge& challenge,
                                             const Credential& credential,
                                             const std::vector<std::string>& scopes,
                                             const HttpTlsOptions& tls) {
  HttpRequest req;
  req.method = "POST";
  req.url = challenge.Param("realm");
  req.tls = tls;
  req.timeout = options_.request_timeout;
  req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
  if (!options_.user_agent.empty()) req.headers.emplace_back("User-Agent", options_.user_agent);
  req.body = "grant_type=refresh_token&refresh_token=" + QueryEscape(credential.identity_token) +
             "&service=" + QueryEscape(challenge.Param("service")) + "&client_id=hoist";
  if (!scopes.empty()) req.body += "&scope=" + QueryEscape(JoinScopes(scopes, ' '));
  return transport_->RoundTrip(req);
}

Result<RegistryAuth::Token> RegistryAuth::FetchToken(const AuthChallenge& challenge,
                                                     const Credential& credential,
                                                     const std::vector<std::string>& scopes,
                                                     const HttpTlsOptions& tls) {
  std::string realm = challenge.Param("realm");
  auto realm_url = Url::Parse(realm);
  if (!realm_url) {
    return Fail(EACCES, "Bearer challenge has no usable realm (\"" + realm.substr(0, 100) + "\")");
  }
  std::string what = "token from " + realm + " for \"" + JoinScopes(scopes, ' ') + "\"";
  std::optional<HttpResponse> resp;
  if (!credential.identity_token.empty()) {
    HOIST_ASSIGN_OR_RETURN(HttpResponse r, OAuthPost(challenge, credential, scopes, tls));
    if (r.status != 404 && r.status != 405) resp = std::move(r);
  }
  if (!resp) {
    HttpRequest req;
    req.method = "GET";
    req.url = realm;
    req.tls = tls;
    if (!challenge.Param("service").empty()) {
      req.url = AppendQuery(req.url, "service", challenge.Param("service"));
    }
    for (const std::string& s : scopes) req.url = AppendQuery(req.url, "scope", s);
    req.timeout = options_.request_timeout;
    if (!options_.user_agent.empty()) req.headers.emplace_back("User-Agent", options_.user_agent);
    if (!credential.username.empty() || !credential.password.empty()) {
      req.headers.emplace_back("Authorization", "Basic " + Base64Encode(credential.username + ":" +
                                                                        credential.password));
    }
    HOIST_ASSIGN_OR_RETURN(HttpResponse r, transport_->RoundTrip(req));
    resp = std::move(r);
  }
  if (resp->status == 401 || resp->status == 403) {
    return Fail(EACCES, what + ": credentials refused (" + Summarise(*resp) + ")");
  }
  if (resp->status >= 500 || resp->status == 429) {
    return Fail(EAGAIN, what + ": " + Summarise(*resp));
  }
  if (resp->status != 200) return Fail(EACCES, what + ": " + Summarise(*resp));
  rapidjson::Document doc;
  doc.Parse(resp->body.data(), resp->body.size());
  if (doc.HasParseError() || !doc.IsObject()) return Fail(EIO, what + ": reply is not JSON");
  Token token;
  for (const char* name : {"token", "access_token"}) {
    auto it = doc.FindMember(name);
    if (it != doc.MemberEnd() && it->value.IsString() && it->value.GetStringLength() > 0) {
      token.value = it->value.GetString();
      break;
    }
  }
  if (token.value.empty()) return Fail(EIO, what + ": reply has no token");
  for (char c : token.value) {
    if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f) {
      return Fail(EIO, what + ": token has control characters");
    }
  }
  int64_t lifetime = kDefaultTokenLifetimeSeconds;
  auto exp = doc.FindMember("expires_in");
  if (exp != doc.MemberEnd() && exp->value.IsInt64() && exp->value.GetInt64() > 0) {
    lifetime = exp->value.GetInt64();
  }
  // issued_at (if present and in the past) shortens the remaining lifetime.
  auto issued = doc.FindMember("issued_at");
  if (issued != doc.MemberEnd() && issued->value.IsString()) {
    if (auto t = ParseRfc3339(issued->value.GetString())) {
      int64_t age = clock_->UnixSeconds() - t->first;
      if (age > 0 && age < lifetime) lifetime -= age;
    }
  }
  token.expires = clock_->Now() + std::chrono::seconds(lifetime);
  return token;
}

}  // namespace hoist
