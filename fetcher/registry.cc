#include "fetcher/registry.h"

#include <set>

#include "fetcher/auth.h"
#include "fetcher/curl_transport.h"
#include "fetcher/link_header.h"
#include "fetcher/metrics_transport.h"
#include "fetcher/registry_blob_source.h"
#include "fetcher/registry_core.h"
#include "fetcher/url.h"
#include "rapidjson/document.h"

namespace hoist {
namespace {

constexpr int kMaxIndexDepth = 4;
constexpr int kMaxPages = 100000;

std::string PullScope(const Reference& r) { return RepositoryScope(r.repository, false); }
std::string PushScope(const Reference& r) { return RepositoryScope(r.repository, true); }

// A sink that collects up to `max` bytes (EFBIG beyond).
HttpBodySink CollectInto(std::string* out, uint64_t max, std::string what) {
  return [out, max, what = std::move(what)](std::string_view chunk) -> Status {
    if (out->size() + chunk.size() > max) {
      return Fail(EFBIG, what + ": larger than " + std::to_string(max) + " bytes");
    }
    out->append(chunk);
    return Ok();
  };
}

}  // namespace

RegistryClient::RegistryClient(std::shared_ptr<HttpTransport> transport,
                               std::shared_ptr<const CredentialStore> credentials,
                               RegistryOptions options)
    : core_(std::make_shared<RegistryCore>(std::move(transport), std::move(credentials),
                                           std::move(options))) {}

RegistryClient::~RegistryClient() = default;

Result<std::unique_ptr<RegistryClient>> RegistryClient::CreateDefault(RegistryOptions options) {
  CurlTransportOptions topts;
  topts.user_agent = options.user_agent;
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<HttpTransport> curl, NewCurlTransport(topts));
  std::shared_ptr<HttpTransport> transport = NewMetricsTransport(std::move(curl));
  if (options.request_log) transport = NewLoggingTransport(transport, options.request_log);
  return std::make_unique<RegistryClient>(
      std::move(transport), std::make_shared<DockerCredentialStore>(), std::move(options));
}

const RegistryOptions& RegistryClient::options() const { return core_->options(); }

std::string RegistryClient::BaseUrl(std::string_view registry) const {
  return core_->BaseUrl(registry);
}

namespace {
// A GET or HEAD of `ref`'s manifest, with the pull scope and the Accept header listing all four
// manifest media types.
RegistryCall ManifestCall(RegistryCore& core, const char* method, const Reference& ref,
                          const std::string& what, std::optional<RegistryAccess> access = {}) {
  RegistryCall call;
  call.method = method;
  // A manifest by tag is resolved only on hosts allowed to; by digest it is plain content.
  core.Route(
      call, ref.registry, ref.repository, "manifests/" + ref.Identifier(),
      access.value_or(ref.digest.empty() ? RegistryAccess::kResolve : RegistryAccess::kPull));
  call.scopes = {PullScope(ref)};
  call.what = what;
  call.headers.emplace_back("Accept", ManifestAcceptHeader());
  return call;
}
}  // namespace

Result<ManifestBytes> RegistryClient::GetManifest(const Reference& ref) {
  std::string what = ref.Name() + ": manifest " + ref.Identifier();
  std::string bytes;
  RegistryCall call = ManifestCall(*core_, "GET", ref, what);
  call.sink = CollectInto(&bytes, core_->options().max_manifest_size, what);
  call.restart = [&bytes] { bytes.clear(); };
  // Checked per response, so wrong bytes from a mirror fall through to the next host.
  call.check = [&](const HttpResponse& resp) -> Status {
    Digest got = Digest::Of(bytes);
    if (!ref.digest.empty() && got != ref.digest) {
      return Fail(EIO, "digest mismatch: the bytes hash to " + got.str());
    }
    if (auto header = resp.Header("docker-content-digest")) {
      if (header->starts_with("sha256:") && *header != got.str()) {
        return Fail(EIO, "digest mismatch: Docker-Content-Digest is " + *header +
                             " but the bytes hash to " + got.str());
      }
    }
    return Ok();
  };
  HOIST_ASSIGN_OR_RETURN(HttpResponse resp, core_->Call(call));
  if (resp.status != 200) {
    return Fail(EIO, what + ": unexpected status " + std::to_string(resp.status));
  }
  ManifestBytes out;
  out.digest = Digest::Of(bytes);
  if (!ref.digest.empty() && out.digest != ref.digest) {
    return Fail(EIO, what + ": digest mismatch: the bytes hash to " + out.digest.str());
  }
  if (auto header = resp.Header("docker-content-digest")) {
    if (header->starts_with("sha256:") && *header != out.digest.str()) {
      return Fail(EIO, what + ": digest mismatch: Docker-Content-Digest is " + *header +
                           " but the bytes hash to " + out.digest.str());
    }
  }
  auto type = ManifestMediaType(resp.Header("content-type").value_or(""), bytes);
  if (!type) return Fail(type.error().Context(what));
  out.media_type = *type;
  out.bytes = std::move(bytes);
  return out;
}

Result<Descriptor> RegistryClient::HeadManifest(const Reference& ref,
                                                std::optional<RegistryAccess> access) {
  std::string what = ref.Name() + ": manifest " + ref.Identifier();
  RegistryCall call = ManifestCall(*core_, "HEAD", ref, what, access);
  if (access == RegistryAccess::kPush) call.scopes = {PushScope(ref)};
  HOIST_ASSIGN_OR_RETURN(HttpResponse resp, core_->Call(call));
  if (resp.status != 200) {
    return Fail(EIO, what + ": unexpected status " + std::to_string(resp.status));
  }
  Descriptor d;
  d.media_type = MediaTypeWithoutParams(resp.Header("content-type").value_or(""));
  if (auto header = resp.Header("docker-content-digest")) {
    auto digest = Digest::Parse(*header);
    if (!digest) return Fail(EIO, what + ": bad Docker-Content-Digest \"" + *header + "\"");
    if (!ref.digest.empty() && *digest != ref.digest) {
      return Fail(
          EIO, what + ": Docker-Content-Digest " + digest->str() + " is not the digest asked for");
    }
    d.digest = *digest;
  } else if (!ref.digest.empty()) {
    d.digest = ref.digest;
  } else {
    return Fail(EIO, what + ": HEAD answer has no Docker-Content-Digest");
  }
  if (auto cl = resp.Header("content-length")) {
    if (auto size = ParseDecimal(*cl)) d.size = static_cast<int64_t>(*size);
  }
  return d;
}

Result<ResolvedImage> RegistryClient::Resolve(const Reference& ref,
                                              std::optional<Platform> platform,
                                              ConfigFetch config_fetch) {
  Platform want = platform.value_or(core_->options().platform);
  ResolvedImage out;
  out.reference = ref;
  HOIST_ASSIGN_OR_RETURN(ManifestBytes current, GetManifest(ref));
  for (int depth = 0; IsIndexMediaType(current.media_type); ++depth) {
    std::string what = ref.Name() + ": index " + current.digest.str();
    if (depth >= kMaxIndexDepth) return Fail(EINVAL, what + ": indexes nested too deep");
    auto index = ParseImageIndex(current.bytes, current.media_type);
    if (!index) return Fail(index.error().Context(what));
    auto chosen = SelectPlatform(*index, want);
    if (!chosen) return Fail(chosen.error().Context(what));
    if (!IsIndexMediaType(chosen->media_type) && !IsManifestMediaType(chosen->media_type) &&
        !chosen->media_type.empty()) {
      return Fail(EINVAL, what + ": entry " + chosen->digest.str() + " has media type \"" +
                              chosen->media_type + "\"");
    }
    HOIST_ASSIGN_OR_RETURN(ManifestBytes next, GetManifest(ref.WithDigest(chosen->digest)));
    if (static_cast<int64_t>(next.bytes.size()) != chosen->size) {
      return Fail(EIO, what + ": manifest " + chosen->digest.str() + " is " +
                           std::to_string(next.bytes.size()) + " bytes, the index says " +
                           std::to_string(chosen->size));
    }
    if (!out.index) out.index = std::move(current);
    current = std::move(next);
  }
  std::string what = ref.Name() + ": manifest " + current.digest.str();
  auto manifest = ParseImageManifest(current.bytes, current.media_type);
  if (!manifest) return Fail(manifest.error().Context(what));
  out.manifest_bytes = std::move(current);
  out.manifest = std::move(*manifest);
  if (config_fetch == ConfigFetch::kSkip) return out;
  const Descriptor& config = out.manifest.config;
  if (config.size < 0 || static_cast<uint64_t>(config.size) > core_->options().max_manifest_size) {
    return Fail(EFBIG, what + ": config is " + std::to_string(config.size) + " bytes");
  }
  HOIST_ASSIGN_OR_RETURN(std::string config_bytes,
                         GetBlob(ref, config.digest, core_->options().max_manifest_size));
  if (static_cast<int64_t>(config_bytes.size()) != config.size) {
    return Fail(EIO, what + ": config " + config.digest.str() + " is " +
                         std::to_string(config_bytes.size()) + " bytes, the manifest says " +
                         std::to_string(config.size));
  }
  auto parsed = ParseImageConfig(config_bytes);
  if (!parsed) return Fail(parsed.error().Context(what));
  out.config = std::move(*parsed);
  return out;
}

Result<std::string> RegistryClient::GetBlob(const Reference& repo, const Digest& digest,
                                            uint64_t max_size) {
  std::string data;
  std::string what = repo.Name() + ": blob " + digest.str();
  HOIST_RETURN_IF_ERROR(
      FetchBlob(repo, digest, CollectInto(&data, max_size, what), [&data] { data.clear(); }));
  return data;
}

Status RegistryClient::FetchBlob(const Reference& repo, const Digest& digest,
                                 const HttpBodySink& sink, const std::function<void()>& restart) {
  std::string what = repo.Name() + ": blob " + digest.str();
  Sha256 hasher;
  std::optional<Digest> final_digest;  // set by `check` (which consumes the hasher)
  uint64_t received = 0;
  RegistryCall call;
  call.method = "GET";
  core_->Route(call, repo.registry, repo.repository, "blobs/" + digest.str());
  call.scopes = {PullScope(repo)};
  call.what = what;
  call.timeout = core_->BlobTimeout();
  call.sink = [&](std::string_view chunk) -> Status {
    hasher.Update(chunk);
    received += chunk.size();
    return sink(chunk);
  };
  call.restart = [&] {
    hasher.Reset();
    final_digest.reset();
    received = 0;
    if (restart) restart();
  };
  call.check = [&](const HttpResponse& resp) -> Status {
    if (auto cl = resp.Header("content-length")) {
      auto size = ParseDecimal(*cl);
      if (size && *size != received) {
        return Fail(ECONNRESET, "truncated body: " + std::to_string(received) + " of " +
                                    std::to_string(*size) + " bytes");
      }
    }
    // Only a host with a fallback is checked here (the last host's mismatch is reported below,
    // after the sink saw the bytes, as before): its wrong bytes mean "try the next host".
    final_digest = Digest::FromSha256(hasher.Final());
    if (call.more_hosts && *final_digest != digest) {
      return Fail(EIO, "digest mismatch: the bytes hash to " + final_digest->str());
    }
    return Ok();
  };
  HOIST_ASSIGN_OR_RETURN(HttpResponse resp, core_->Call(call));
  if (resp.status != 200) {
    return Fail(EIO, what + ": unexpected status " + std::to_string(resp.status));
  }
  Digest got = final_digest ? *final_digest : Digest::FromSha256(hasher.Final());
  if (got != digest) {
    return Fail(EIO, what + ": digest mismatch: the bytes hash to " + got.str());
  }
  return Ok();
}

Result<uint64_t> RegistryClient::BlobSize(const Reference& repo, const Digest& digest) {
  RegistryBlobSource source(core_, repo);
  return source.Size(digest);
}

Result<bool> RegistryClient::BlobExists(const Reference& repo, const Digest& digest,
                                        RegistryAccess access) {
  RegistryCall call;
  call.method = "HEAD";
  core_->Route(call, repo.registry, repo.repository, "blobs/" + digest.str(), access);
  call.scopes = {access == RegistryAccess::kPush ? PushScope(repo) : PullScope(repo)};
  call.what = repo.Name() + ": blob " + digest.str();
  call.accept_statuses = {404};
  HOIST_ASSIGN_OR_RETURN(HttpResponse resp, core_->Call(call));
  return resp.status == 200;
}

std::unique_ptr<BlobSource> RegistryClient::OpenBlobSource(const Reference& repo) {
  return std::make_unique<RegistryBlobSource>(core_, repo);
}

Result<bool> RegistryClient::MountBlob(const Reference& target, const Digest& digest,
                                       std::string_view from_repository) {
  RegistryCall call;
  call.method = "POST";
  std::string suffix = AppendQuery("blobs/uploads/", "mount", digest.str());
  suffix = AppendQuery(suffix, "from", from_repository);
  core_->Route(call, target.registry, target.repository, suffix, RegistryAccess::kPush);
  call.scopes = {PushScope(target), RepositoryScope(from_repository, false)};
  call.what =
      target.Name() + ": mount of blob " + digest.str() + " from " + std::string(from_repository);
  HOIST_ASSIGN_OR_RETURN(HttpResponse resp, core_->Call(call));
  if (resp.status == 201) return true;
  if (resp.status == 202) {
    // The registry opened an upload session instead; cancel it (best effort).
    if (auto location = resp.Header("location")) {
      if (auto url = ResolveUrl(call.final_url, *location)) {
        RegistryCall cancel;
        cancel.method = "DELETE";
        cancel.url = *url;
        cancel.registry = target.registry;
        cancel.pin = call.host;
        cancel.scopes = {PushScope(target)};
        cancel.what = target.Name() + ": cancel upload";
        cancel.accept_statuses = {400, 404, 405};
        (void)core_->Call(cancel);
      }
    }
    return false;
  }
  return Fail(EIO, call.what + ": unexpected status " + std::to_string(resp.status));
}

namespace {

struct UploadSession {
  std::string location;  // absolute
  uint64_t min_chunk = 0;
  std::optional<MirrorEndpoint> host;  // the push host (mirrors configured), for the follow-ups
};

// POSTs a new upload session on the push host.
Result<UploadSession> StartUpload(RegistryCore& core, const Reference& target,
                                  const std::string& what) {
  RegistryCall call;
  call.method = "POST";
  core.Route(call, target.registry, target.repository, "blobs/uploads/", RegistryAccess::kPush);
  call.scopes = {PushScope(target)};
  call.what = what;
  call.headers.emplace_back("Content-Length", "0");
  HOIST_ASSIGN_OR_RETURN(HttpResponse resp, core.Call(call));
  if (resp.status != 202) {
    return Fail(EIO, what + ": POST answered " + std::to_string(resp.status) + ", expected 202");
  }
  auto location = resp.Header("location");
  if (!location) return Fail(EIO, what + ": upload POST answer has no Location");
  HOIST_ASSIGN_OR_RETURN(std::string url, ResolveUrl(call.final_url, *location));
  uint64_t min_chunk = 0;
  if (auto m = resp.Header("oci-chunk-min-length")) min_chunk = ParseDecimal(*m).value_or(0);
  return UploadSession{std::move(url), min_chunk, std::move(call.host)};
}

Status FinishUpload(RegistryCore& core, const Reference& target, const Digest& digest,
                    const UploadSession& session, std::string body, const std::string& what) {
  RegistryCall call;
  call.method = "PUT";
  call.url = AppendQuery(session.location, "digest", digest.str());
  call.registry = target.registry;
  call.pin = session.host;
  call.scopes = {PushScope(target)};
  call.what = what;
  call.headers.emplace_back("Content-Type", "application/octet-stream");
  if (body.empty()) call.headers.emplace_back("Content-Length", "0");
  call.body = std::move(body);
  call.timeout = core.BlobTimeout();
  HOIST_ASSIGN_OR_RETURN(HttpResponse resp, core.Call(call));
  if (resp.status != 201) {
    return Fail(EIO, what + ": PUT answered " + std::to_string(resp.status) + ", expected 201");
  }
  if (auto header = resp.Header("docker-content-digest")) {
    if (header->starts_with("sha256:") && *header != digest.str()) {
      return Fail(EIO, what + ": registry stored digest " + *header);
    }
  }
  return Ok();
}

}  // namespace

Status RegistryClient::UploadBlob(const Reference& target, const Digest& digest,
                                  std::string_view data) {
  std::string what = target.Name() + ": upload of blob " + digest.str();
  if (Digest::Of(data) != digest) return Fail(EINVAL, what + ": the data does not hash to it");
  HOIST_ASSIGN_OR_RETURN(UploadSession session, StartUpload(*core_, target, what));
  return FinishUpload(*core_, target, digest, session, std::string(data), what);
}

Status RegistryClient::UploadBlobChunked(const Reference& target, const Digest& digest,
                                         uint64_t size, const BlobReader& reader,
                                         uint64_t chunk_size) {
  std::string what = target.Name() + ": upload of blob " + digest.str();
  HOIST_ASSIGN_OR_RETURN(UploadSession session, StartUpload(*core_, target, what));
  uint64_t chunk = std::max<uint64_t>({chunk_size, session.min_chunk, 1});
  chunk = std::min<uint64_t>(chunk, 1ull << 30);
  Sha256 hasher;
  uint64_t offset = 0;
  std::string buf;
  while (offset < size) {
    uint64_t want = std::min(chunk, size - offset);
    buf.resize(want);
    uint64_t filled = 0;
    while (filled < want) {
      HOIST_ASSIGN_OR_RETURN(size_t got, reader(buf.data() + filled, want - filled));
      if (got == 0) {
        return Fail(EIO, what + ": the reader ended at byte " + std::to_string(offset + filled) +
                             " of " + std::to_string(size));
      }
      filled += got;
    }
    hasher.Update(buf);
    RegistryCall call;
    call.method = "PATCH";
    call.url = session.location;
    call.registry = target.registry;
    call.pin = session.host;
    call.scopes = {PushScope(target)};
    call.what = what;
    call.headers.emplace_back("Content-Type", "application/octet-stream");
    call.headers.emplace_back("Content-Range",
                              std::to_string(offset) + "-" + std::to_string(offset + want - 1));
    call.body = buf;
    call.timeout = core_->BlobTimeout();
    HOIST_ASSIGN_OR_RETURN(HttpResponse resp, core_->Call(call));
    if (resp.status != 202) {
      return Fail(EIO, what + ": PATCH answered " + std::to_string(resp.status) + ", expected 202");
    }
    if (auto next = resp.Header("location")) {
      HOIST_ASSIGN_OR_RETURN(session.location, ResolveUrl(call.final_url, *next));
    }
    offset += want;
  }
  // Make sure the reader has nothing more and the bytes are the blob we claim.
  char extra;
  HOIST_ASSIGN_OR_RETURN(size_t more, reader(&extra, 1));
  if (more != 0)
    return Fail(EIO, what + ": the reader has more than " + std::to_string(size) + " bytes");
  Digest got = Digest::FromSha256(hasher.Final());
  if (got != digest) return Fail(EIO, what + ": the data hashes to " + got.str());
  return FinishUpload(*core_, target, digest, session, std::string(), what);
}

Result<Digest> RegistryClient::PutManifest(const Reference& target, std::string_view media_type,
                                           std::string_view bytes) {
  HOIST_ASSIGN_OR_RETURN(ManifestPutResult put,
                         PutManifestReportingSubject(target, media_type, bytes));
  return put.digest;
}

Result<ManifestPutResult> RegistryClient::PutManifestReportingSubject(const Reference& target,
                                                                      std::string_view media_type,
                                                                      std::string_view bytes) {
  Digest digest = Digest::Of(bytes);
  std::string what = target.Name() + ": manifest " + target.Identifier();
  if (!target.digest.empty() && target.digest != digest) {
    return Fail(EINVAL, what + ": the bytes hash to " + digest.str());
  }
  if (target.Identifier().empty()) return Fail(EINVAL, what + ": no tag or digest to put it under");
  RegistryCall call;
  call.method = "PUT";
  core_->Route(call, target.registry, target.repository, "manifests/" + target.Identifier(),
               RegistryAccess::kPush);
  call.scopes = {PushScope(target)};
  call.what = what;
  call.headers.emplace_back("Content-Type", std::string(media_type));
  call.body = std::string(bytes);
  HOIST_ASSIGN_OR_RETURN(HttpResponse resp, core_->Call(call));
  if (resp.status != 201 && resp.status != 200) {
    return Fail(EIO, what + ": PUT answered " + std::to_string(resp.status) + ", expected 201");
  }
  if (auto header = resp.Header("docker-content-digest")) {
    if (header->starts_with("sha256:") && *header != digest.str()) {
      return Fail(EIO, what + ": registry stored digest " + *header + ", not " + digest.str());
    }
  }
  ManifestPutResult out;
  out.digest = digest;
  out.oci_subject = resp.Header("oci-subject");
  return out;
}

Result<Digest> RegistryClient::DeleteManifest(const Reference& ref) {
  Digest digest = ref.digest;
  if (digest.empty()) {
    HOIST_ASSIGN_OR_RETURN(Descriptor d, HeadManifest(ref, RegistryAccess::kPush));
    digest = d.digest;
  }
  const Reference target = ref.WithDigest(digest);
  std::string what = target.Name() + ": manifest " + digest.str();
  RegistryCall call;
  call.method = "DELETE";
  core_->Route(call, target.registry, target.repository, "manifests/" + digest.str(),
               RegistryAccess::kPush);
  // Token servers grant DELETE under the "delete" action (distribution's token auth).
  call.scopes = {"repository:" + target.repository + ":pull,push,delete"};
  call.what = what;
  call.accept_statuses = {404, 405};
  HOIST_ASSIGN_OR_RETURN(HttpResponse resp, core_->Call(call));
  if (resp.status == 405) {
    return Fail(ENOTSUP, what +
                             ": the registry does not allow deletes (405 Method Not Allowed; a "
                             "distribution registry needs storage.delete.enabled: true)");
  }
  if (resp.status == 404) return Fail(core_->StatusError(resp, what));
  if (resp.status != 202 && resp.status != 200) {
    return Fail(EIO, what + ": DELETE answered " + std::to_string(resp.status) + ", expected 202");
  }
  return digest;
}

Status RegistryClient::Tag(const Reference& source, std::string_view new_tag) {
  auto check = Reference::Parse(source.Name() + ":" + std::string(new_tag));
  if (!check || check->tag != new_tag) {
    return Fail(EINVAL, "invalid tag \"" + std::string(new_tag) + "\"");
  }
  HOIST_ASSIGN_OR_RETURN(ManifestBytes m, GetManifest(source));
  HOIST_ASSIGN_OR_RETURN(Digest d, PutManifest(source.WithTag(new_tag), m.media_type, m.bytes));
  (void)d;
  return Ok();
}

namespace {

// `first` names the first page (routed, or with its url), with its registry and scopes; the next
// pages go to the host that served the first.
Result<std::vector<std::string>> ListPaged(RegistryCore& core, const RegistryCall& first,
                                           const std::string& what, const char* field) {
  std::vector<std::string> out;
  std::set<std::string> seen_urls;
  std::string url;
  std::optional<MirrorEndpoint> host;
  for (int page = 0; page < kMaxPages; ++page) {
    std::string body;
    RegistryCall call;
    if (page == 0) {
      call = first;
    } else {
      if (!seen_urls.insert(url).second) return Fail(EIO, what + ": Link pagination loops");
      call.url = url;
      call.registry = first.registry;
      call.scopes = first.scopes;
      call.pin = host;
    }
    call.method = "GET";
    call.what = what;
    call.sink = CollectInto(&body, 64 << 20, what);
    call.restart = [&body] { body.clear(); };
    HOIST_ASSIGN_OR_RETURN(HttpResponse resp, core.Call(call));
    if (resp.status != 200) {
      return Fail(EIO, what + ": unexpected status " + std::to_string(resp.status));
    }
    if (page == 0) {
      seen_urls.insert(call.final_url);
      host = call.host;
    }
    rapidjson::Document doc;
    doc.Parse(body.data(), body.size());
    if (doc.HasParseError() || !doc.IsObject())
      return Fail(EIO, what + ": reply is not a JSON object");
    auto list = doc.FindMember(field);
    if (list != doc.MemberEnd() && !list->value.IsNull()) {
      if (!list->value.IsArray()) return Fail(EIO, what + ": \"" + field + "\" is not an array");
      for (const auto& v : list->value.GetArray()) {
        if (!v.IsString()) return Fail(EIO, what + ": \"" + field + "\" has a non-string");
        out.emplace_back(v.GetString(), v.GetStringLength());
      }
    }
    auto link = resp.Header("link");
    if (!link) return out;
    auto next = ParseLinkNext(*link, call.final_url);
    if (!next) return Fail(EIO, next.error().Context(what).message());
    if (!*next) return out;
    if (!SameOrigin(**next, call.final_url)) {
      return Fail(EIO, what + ": Link points to another host: " + **next);
    }
    url = **next;
  }
  return Fail(EIO, what + ": too many pages");
}

}  // namespace

Result<ReferrersPage> RegistryClient::GetReferrersPage(const Reference& repo, const Digest& subject,
                                                       std::string_view artifact_type,
                                                       std::string_view page_url,
                                                       uint64_t max_bytes) {
  std::string what = repo.Name() + ": referrers of " + subject.str();
  bool first = page_url.empty();
  RegistryCall call;
  call.method = "GET";
  if (first) {
    call.url = core_->RepoUrl(repo.registry, repo.repository, "referrers/" + subject.str());
    if (!artifact_type.empty()) call.url = AppendQuery(call.url, "artifactType", artifact_type);
  } else {
    call.url = std::string(page_url);
  }
  call.registry = repo.registry;
  call.scopes = {PullScope(repo)};
  call.what = what;
  call.headers.emplace_back("Accept", std::string(kMediaTypeOciIndex));
  if (first) call.accept_statuses = {404};
  std::string body;
  call.sink = CollectInto(&body, max_bytes, what);
  call.restart = [&body] { body.clear(); };
  HOIST_ASSIGN_OR_RETURN(HttpResponse resp, core_->Call(call));
  ReferrersPage page;
  if (resp.status == 404) {
    page.supported = false;
    return page;
  }
  if (resp.status != 200) {
    return Fail(EIO, what + ": unexpected status " + std::to_string(resp.status));
  }
  page.media_type = MediaTypeWithoutParams(resp.Header("content-type").value_or(""));
  page.bytes = std::move(body);
  if (auto filters = resp.Header("oci-filters-applied")) {
    // A comma-separated list of the filters applied.
    std::string_view rest = *filters;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
      while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
      if (!item.empty()) page.filters_applied.emplace_back(item);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  if (auto link = resp.Header("link")) {
    auto next = ParseLinkNext(*link, call.final_url);
    if (!next) return Fail(EIO, next.error().Context(what).message());
    if (*next) {
      if (!SameOrigin(**next, call.final_url)) {
        return Fail(EIO, what + ": Link points to another host: " + **next);
      }
      page.next_url = **next;
    }
  }
  return page;
}

Result<std::vector<std::string>> RegistryClient::ListTags(const Reference& repo, int page_size) {
  std::string suffix = "tags/list";
  if (page_size > 0) suffix = AppendQuery(suffix, "n", std::to_string(page_size));
  RegistryCall first;
  core_->Route(first, repo.registry, repo.repository, suffix, RegistryAccess::kListTags);
  first.scopes = {PullScope(repo)};
  return ListPaged(*core_, first, repo.Name() + ": tags", "tags");
}

Status RegistryClient::CheckAuth(std::string_view registry) {
  RegistryCall call;
  call.url = core_->BaseUrl(registry) + "/v2/";
  call.registry = std::string(registry);
  call.what = std::string(registry) + ": login";
  HOIST_ASSIGN_OR_RETURN(HttpResponse resp, core_->Call(call));
  (void)resp;
  return Ok();
}

Result<std::vector<std::string>> RegistryClient::Catalog(std::string_view registry, int page_size) {
  std::string url = core_->BaseUrl(registry) + "/v2/_catalog";
  if (page_size > 0) url = AppendQuery(url, "n", std::to_string(page_size));
  RegistryCall first;
  first.url = url;
  first.registry = std::string(registry);
  first.scopes = {"registry:catalog:*"};
  return ListPaged(*core_, first, std::string(registry) + ": catalog", "repositories");
}

}  // namespace hoist
