#include "fetcher/registry_core.h"

#include <algorithm>

#include "base/log.h"
#include "fetcher/reference.h"
#include "fetcher/retry_after.h"
#include "fetcher/url.h"
#include "rapidjson/document.h"

namespace hoist {
namespace {

// QuickAttempt's bound on this thread (0 = none).
thread_local std::chrono::milliseconds t_quick_attempt{0};

constexpr int kMaxRedirects = 10;

bool IsRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

bool IsRetryableStatus(int status) { return status == 429 || (status >= 500 && status != 501); }

std::string StatusText(int status) {
  std::string out = std::to_string(status);
  std::string_view reason = HttpReasonPhrase(status);
  if (!reason.empty()) out += " " + std::string(reason);
  return out;
}

}  // namespace

QuickAttempt::QuickAttempt(std::chrono::milliseconds bound) : previous_(t_quick_attempt) {
  t_quick_attempt = std::max(bound, std::chrono::milliseconds(1));
}

QuickAttempt::~QuickAttempt() { t_quick_attempt = previous_; }

std::optional<uint64_t> ParseDecimal(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  if (text.empty() || text.size() > 19) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

std::string SummariseRegistryErrors(std::string_view body) {
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject()) return "";
  auto errors = doc.FindMember("errors");
  if (errors == doc.MemberEnd() || !errors->value.IsArray()) return "";
  std::string out;
  for (const auto& e : errors->value.GetArray()) {
    if (!e.IsObject()) continue;
    std::string code, message;
    auto c = e.FindMember("code");
    if (c != e.MemberEnd() && c->value.IsString()) code = c->value.GetString();
    auto m = e.FindMember("message");
    if (m != e.MemberEnd() && m->value.IsString()) message = m->value.GetString();
    if (code.empty() && message.empty()) continue;
    if (!out.empty()) out += "; ";
    out += code;
    if (!code.empty() && !message.empty()) out += ": ";
    out += message;
  }
  for (char& ch : out) {
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = ' ';
  }
  if (out.size() > 300) out = out.substr(0, 300) + "...";
  return out;
}

RegistryCore::RegistryCore(std::shared_ptr<HttpTransport> transport,
                           std::shared_ptr<const CredentialStore> credentials,
                           RegistryOptions options)
    : transport_(std::move(transport)),
      credentials_(credentials ? std::move(credentials)
                               : std::make_shared<AnonymousCredentialStore>()),
      options_(std::move(options)),
      clock_(options_.clock ? options_.clock : RealClock()),
      auth_(transport_.get(), credentials_.get(), clock_,
            RegistryAuthOptions{.user_agent = options_.user_agent,
                                .request_timeout = options_.request_timeout}),
      rng_(std::random_device{}()) {}

bool RegistryCore::PlainHttp(std::string_view registry) const {
  std::string host = RegistryApiHost(registry);
  bool plain = IsLoopbackRegistry(registry);
  for (const std::string& r : options_.insecure_registries) {
    if (r == registry || r == host) plain = true;
  }
  return plain;
}

std::string RegistryCore::BaseUrl(std::string_view registry) const {
  return (PlainHttp(registry) ? "http://" : "https://") + RegistryApiHost(registry);
}

void RegistryCore::Route(RegistryCall& call, std::string_view registry, std::string_view repository,
                         std::string_view suffix, RegistryAccess access) const {
  call.url = RepoUrl(registry, repository, suffix);
  call.registry = std::string(registry);
  call.repository = std::string(repository);
  call.suffix = std::string(suffix);
  call.access = access;
}

std::string RegistryCore::RepoUrl(std::string_view registry, std::string_view repository,
                                  std::string_view suffix) const {
  return BaseUrl(registry) + "/v2/" + std::string(repository) + "/" + std::string(suffix);
}

Error RegistryCore::StatusError(const HttpResponse& response, std::string_view what) const {
  int code = EIO;
  if (response.status == 404) code = ENOENT;
  if (response.status == 401 || response.status == 403) code = EACCES;
  std::string message = std::string(what) + ": " + StatusText(response.status);
  std::string detail = SummariseRegistryErrors(response.body);
  if (!detail.empty()) message += " (" + detail + ")";
  return Error(code, message);
}

std::chrono::milliseconds RegistryCore::RetryDelay(int retry, const HttpResponse* response) {
  double r;
  {
    MutexLock lock(rng_mu_);
    r = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  }
  std::chrono::milliseconds delay = BackoffDelay(options_.retry, retry, r);
  if (response) {
    if (auto header = response->Header("retry-after")) {
      auto after = ParseRetryAfter(*header, clock_->UnixSeconds());
      if (after) {
        auto wanted = std::chrono::duration_cast<std::chrono::milliseconds>(*after);
        wanted = std::min(wanted, options_.retry.max_retry_after);
        delay = std::max(delay, wanted);
      }
    }
  }
  return delay;
}

Result<HttpResponse> RegistryCore::Attempt(RegistryCall& call, const Target& target,
                                           const std::optional<std::string>& auth,
                                           std::chrono::milliseconds timeout,
                                           std::string* final_url, HttpResponse* head) {
  std::string registry_origin;
  if (auto base = Url::Parse(target.base_url)) registry_origin = base->Origin();
  std::string url = call.url;
  std::string method = call.method;
  std::string body = call.body;
  for (int hop = 0;; ++hop) {
    HOIST_ASSIGN_OR_RETURN(Url parsed, Url::Parse(url));
    HttpRequest req;
    req.method = method;
    req.url = url;
    req.headers = call.headers;
    req.headers.insert(req.headers.end(), target.headers.begin(), target.headers.end());
    req.tls = target.tls;
    req.connect_timeout = target.connect_timeout;
    if (!options_.user_agent.empty()) req.headers.emplace_back("User-Agent", options_.user_agent);
    // Authorization only to the registry's own scheme, host and port.
    if (auth && parsed.Origin() == registry_origin)
      req.headers.emplace_back("Authorization", *auth);
    req.body = body;
    req.timeout = timeout;
    req.body_sink = call.sink;
    req.on_head = [&call, head](const HttpResponse& h) -> Status {
      *head = h;
      if (call.on_head) return call.on_head(h);
      return Ok();
    };
    *final_url = url;
    HOIST_ASSIGN_OR_RETURN(HttpResponse resp, transport_->RoundTrip(req));
    if (!call.follow_redirects || !IsRedirect(resp.status)) return resp;
    auto location = resp.Header("location");
    if (!location) return resp;
    if (hop >= kMaxRedirects) return Fail(EIO, call.what + ": too many redirects");
    HOIST_ASSIGN_OR_RETURN(url, ResolveUrl(url, *location));
    if (resp.status == 303 && method != "HEAD") {
      method = "GET";
      body.clear();
    }
  }
}

Result<HttpResponse> RegistryCore::Call(RegistryCall& call) {
  call.more_hosts = false;
  call.served_by_mirror = false;
  if (call.pin) {
    auto r = CallOn(call, HostTarget(call, *call.pin));
    call.served_by = call.pin->Host();
    call.served_by_mirror = call.pin->mirror;
    call.host = call.pin;
    return r;
  }
  if (!options_.mirrors || options_.mirrors->empty() || call.repository.empty()) {
    Target own{
        .base_url = BaseUrl(call.registry), .credentials = call.registry, .scopes = call.scopes};
    auto r = CallOn(call, own);
    call.served_by = RegistryApiHost(call.registry);
    return r;
  }
  HOIST_ASSIGN_OR_RETURN(std::vector<MirrorEndpoint> hosts,
                         options_.mirrors->Endpoints(
                             call.registry, call.repository, call.access, BaseUrl(call.registry),
                             [this](std::string_view h) { return PlainHttp(h); }));
  if (call.skip_mirrors) {
    std::string names;
    for (const MirrorEndpoint& ep : hosts) names += (names.empty() ? "" : ", ") + ep.Host();
    std::erase_if(hosts, [](const MirrorEndpoint& ep) { return ep.mirror; });
    if (hosts.empty()) {
      return Fail(EIO, call.what + ": every host configured for " + call.registry +
                           " is a mirror (" + names + "); no registry to read from without them");
    }
  }
  for (size_t i = 0; i < hosts.size(); ++i) {
    const MirrorEndpoint& ep = hosts[i];
    const bool last = i + 1 == hosts.size();
    Target t = HostTarget(call, ep);
    if (!last) {
      t.connect_timeout = options_.mirror_connect_timeout;
      t.max_attempts = 1;
    }
    call.url = ep.Url(call.suffix);
    call.more_hosts = !last;
    if (i > 0 && call.restart) call.restart();
    auto r = CallOn(call, t);
    call.served_by = ep.Host();
    call.served_by_mirror = ep.mirror;
    call.host = ep;
    if (last || (r && r->status < 400)) {
      if (r) {
        HOIST_LOG(kDebug) << call.what << ": served by " << ep.Host();
      }
      return r;
    }
    HOIST_LOG(kDebug) << call.what << ": " << ep.Host() << " failed ("
                      << (r ? "status " + std::to_string(r->status) : r.error().message())
                      << "); trying " << hosts[i + 1].Host();
  }
  return Fail(EIO, call.what + ": no host to try");  // not reached: hosts is never empty
}

RegistryCore::Target RegistryCore::HostTarget(const RegistryCall& call,
                                              const MirrorEndpoint& ep) const {
  Target t;
  t.base_url = ep.origin;
  t.credentials = ep.credentials_host;
  // The token scope names the repository as this host knows it.
  const std::string from = "repository:" + call.repository + ":";
  for (const std::string& scope : call.scopes) {
    if (!call.repository.empty() && scope.starts_with(from)) {
      t.scopes.push_back("repository:" + ep.repository + ":" + scope.substr(from.size()));
    } else {
      t.scopes.push_back(scope);
    }
  }
  t.tls = ep.tls;
  t.headers = ep.headers;
  return t;
}

Result<HttpResponse> RegistryCore::CallOn(RegistryCall& call, const Target& target) {
  const auto start = clock_->Now();
  const std::string& base_url = target.base_url;
  std::string registry_origin;
  if (auto base = Url::Parse(base_url)) registry_origin = base->Origin();
  RetryPolicy policy = options_.retry;
  const std::chrono::milliseconds quick = t_quick_attempt;
  if (quick.count() > 0) {
    policy.max_attempts = 1;
    policy.total_budget = quick;
  }

  std::optional<std::string> auth;
  bool have_auth = false;
  bool refreshed = false;
  // The request went out anonymous without probing (auth.h): its 401 brings the challenge, and
  // answering it is not the one refresh a call gets.
  bool challenge_unknown = false;
  bool redirect_refused_once = false;
  int attempt = 0;
  int retries = 0;
  int passes = 0;
  while (true) {
    ++attempt;
    if (passes++ > 0 && call.restart) call.restart();
    std::optional<Error> failure;  // a retryable failure
    const HttpResponse* retry_response = nullptr;
    HttpResponse head;
    Result<HttpResponse> result = HttpResponse{};
    if (!have_auth) {
      // A request without a body goes out without probing the endpoint first (auth.h).
      const bool bodiless = call.method == "GET" || call.method == "HEAD";
      challenge_unknown = bodiless && !auth_.Knows(base_url);
      auto a = auth_.Authorize(base_url, target.credentials, target.scopes, bodiless, target.tls);
      if (a) {
        auth = *a;
        have_auth = true;
      } else if (!IsTransientNetworkError(a.error())) {
        return Fail(a.error().Context(call.what));
      } else {
        failure = a.error();
      }
    }
    if (!failure) {
      // Small requests never outlast the retry budget; whole-blob transfers set their own bound.
      std::chrono::milliseconds timeout = call.timeout;
      if (timeout.count() == 0) {
        timeout = options_.request_timeout;
        if (policy.total_budget.count() > 0) {
          auto left = policy.total_budget -
                      std::chrono::duration_cast<std::chrono::milliseconds>(clock_->Now() - start);
          timeout = std::min(timeout, std::max(left, std::chrono::milliseconds(1000)));
        }
        if (quick.count() > 0) timeout = std::min(timeout, quick);
      }
      result = Attempt(call, target, auth, timeout, &call.final_url, &head);
    }
    if (failure) {
      // fall through to the retry decision below
    } else if (!result) {
      if (call.done && *call.done) return head;
      if (!IsTransientNetworkError(result.error())) {
        const std::string& m = result.error().message();
        if (m.starts_with(call.what)) return Fail(result.error());
        return Fail(result.error().Context(call.what));
      }
      failure = result.error();
    } else {
      HttpResponse& resp = *result;
      bool from_registry = SameOrigin(call.final_url, registry_origin);
      bool accepted = std::find(call.accept_statuses.begin(), call.accept_statuses.end(),
                                resp.status) != call.accept_statuses.end();
      if (resp.status == 401 && from_registry && !accepted) {
        if (refreshed) return Fail(StatusError(resp, call.what));
        if (challenge_unknown) {
          challenge_unknown = false;
        } else {
          refreshed = true;
        }
        auto www = resp.Header("www-authenticate");
        auto fresh = auth_.Reauthorize(base_url, target.credentials, target.scopes,
                                       www.value_or(""), target.tls);
        if (!fresh) {
          if (!IsTransientNetworkError(fresh.error()))
            return Fail(fresh.error().Context(call.what));
          failure = fresh.error();
          refreshed = false;  // the refresh itself failed: try it again after the backoff
        } else {
          auth = *fresh;
          --attempt;  // a token refresh is not a failed attempt
          continue;
        }
      } else if ((resp.status == 401 || resp.status == 403) && !from_registry && !accepted &&
                 !redirect_refused_once) {
        // A signed redirect URL expired between resolving and using it: resolve again.
        redirect_refused_once = true;
        --attempt;
        continue;
      } else if (IsRetryableStatus(resp.status) && !accepted) {
        failure = StatusError(resp, call.what);
        retry_response = &resp;
      } else if (resp.status >= 400 && !accepted) {
        return Fail(StatusError(resp, call.what));
      } else if (resp.status >= 200 && resp.status < 300 && call.check) {
        Status ok = call.check(resp);
        if (!ok) {
          if (!IsTransientNetworkError(ok.error())) return Fail(ok.error().Context(call.what));
          failure = ok.error();
        } else {
          return std::move(resp);
        }
      } else {
        return std::move(resp);
      }
    }
    // Retry, if the policy allows.
    ++retries;
    std::string cause = failure->message();
    if (!cause.starts_with(call.what)) cause = call.what + ": " + cause;
    const int code = failure->code();
    if ((code == ECONNREFUSED || code == EHOSTUNREACH || code == ENETUNREACH) &&
        policy.max_unreachable_attempts > 0 && attempt >= policy.max_unreachable_attempts) {
      return Fail(code, cause + " (gave up after " + std::to_string(attempt) + " attempts)");
    }
    const int max_attempts = target.max_attempts > 0 ? target.max_attempts : policy.max_attempts;
    if (attempt >= max_attempts) {
      return Fail(failure->code() == ETIMEDOUT ? ETIMEDOUT : EIO,
                  cause + " (gave up after " + std::to_string(attempt) + " attempts)");
    }
    auto delay = RetryDelay(retries, retry_response);
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock_->Now() - start);
    if (policy.total_budget.count() > 0 && elapsed + delay > policy.total_budget) {
      return Fail(ETIMEDOUT, cause + " (gave up after " + std::to_string(attempt) +
                                 " attempts, time budget " +
                                 std::to_string(policy.total_budget.count()) + " ms)");
    }
    HOIST_LOG(kInfo) << cause << "; retry " << retries << " in " << delay.count() << " ms";
    clock_->SleepFor(delay);
  }
}

}  // namespace hoist
