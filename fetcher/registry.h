// RegistryClient: the OCI distribution client. It alone knows the registry's HTTP API, auth,
// retries and redirects; callers see references, manifests, blobs and BlobSource.
//
// Transport choice: plain http only for loopback registries (localhost, 127.0.0.0/8, ::1) and
// for hosts listed in RegistryOptions::insecure_registries; https with verification otherwise.
//
// Every request: Authorization from RegistryAuth (same origin only), a 401 triggers one token
// refresh and a retry; connect errors, resets, truncated bodies, 5xx and 429 are retried with
// jittered exponential backoff (RetryPolicy; Retry-After honoured, capped), within the policy's
// total budget; redirects (301/302/303/307/308) are followed by the client itself, re-sending
// Range but never Authorization to another scheme, host or port.
//
// Errors: one line naming the registry, the repository and the object, e.g.
//   "localhost:5000/library/x: manifest latest: 404 Not Found (MANIFEST_UNKNOWN: manifest
//   unknown)". 404 -> ENOENT, 401/403 -> EACCES, other 4xx -> EIO, failures after retries -> EIO
//   (ETIMEDOUT when the budget ran out on timeouts), digest mismatches -> EIO ("digest
//   mismatch"), malformed manifests -> EINVAL.
//
// Thread-safety: every method may be called from many threads at once.
// Lifetime: BlobSources from OpenBlobSource share the client's internals (shared_ptr), so they
// stay valid after the client is destroyed. The transport and credential store are shared_ptr
// too.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/digest.h"
#include "base/status.h"
#include "fetcher/blob_source.h"
#include "fetcher/credentials.h"
#include "fetcher/http.h"
#include "fetcher/manifest.h"
#include "fetcher/reference.h"
#include "fetcher/request_log.h"
#include "fetcher/retry.h"

namespace hoist {

class MirrorResolver;

// What a registry request does, for the mirror configuration (fetcher/mirror_resolver.h): fetch
// content by digest, resolve a tag, push (uploads, manifest PUTs and deletes, and the existence
// checks made for them), or list a repository's tags.
enum class RegistryAccess { kPull, kResolve, kPush, kListTags };

struct RegistryOptions {
  // host[:port] entries (as in Reference::registry) that may be reached over plain http.
  std::vector<std::string> insecure_registries;
  Platform platform = Platform::Host();
  std::string user_agent = "hoist/0.1";
  RetryPolicy retry;
  // Per-request bound for small requests (manifests, HEAD, ranges, tokens).
  std::chrono::milliseconds request_timeout{30000};
  // Per-request bound for whole-blob GETs and uploads (0 = none; the low-speed limit applies).
  std::chrono::milliseconds blob_timeout{0};
  // Manifests and configs larger than this are refused (EFBIG).
  uint64_t max_manifest_size = 8 << 20;
  // ReadRanges keeps at most this many range requests in flight.
  int max_parallel_ranges = 8;
  // The time seam (nullptr = RealClock()). Must outlive the client.
  Clock* clock = nullptr;
  // CreateDefault only: when set, every request (tokens included) is recorded here
  // (fetcher/request_log.h).
  std::shared_ptr<RequestLog> request_log;
  // Registry mirrors (fetcher/mirror_resolver.h); nullptr = every request to the registry itself.
  std::shared_ptr<const MirrorResolver> mirrors;
  // Connect bound for a host that has a fallback (a mirror), so a dead one costs little.
  std::chrono::milliseconds mirror_connect_timeout{3000};
};

// A manifest or index exactly as the registry served it, verified.
struct ManifestBytes {
  std::string media_type;  // Content-Type without parameters
  Digest digest;           // sha256 of `bytes`
  std::string bytes;
};

// Whether Resolve fetches the image config.
enum class ConfigFetch { kFetch, kSkip };

// An image resolved down to one platform's manifest, with its config.
struct ResolvedImage {
  Reference reference;                 // as asked
  std::optional<ManifestBytes> index;  // the top-level index, if the reference named one
  ManifestBytes manifest_bytes;        // the platform's image manifest
  ImageManifest manifest;
  ImageConfig config;  // verified against manifest.config.digest (empty with ConfigFetch::kSkip)
};

// What a manifest PUT answered beyond success.
struct ManifestPutResult {
  Digest digest;  // sha256 of the bytes put
  // The OCI-Subject response header (OCI 1.1: the registry processed the manifest's `subject`
  // and its referrers API lists it), verbatim; nullopt when absent.
  std::optional<std::string> oci_subject;
};

// One page of GET /v2/<name>/referrers/<digest> (OCI 1.1).
struct ReferrersPage {
  bool supported = true;   // false: the first page answered 404 (no referrers API)
  std::string media_type;  // Content-Type without parameters
  std::string bytes;       // the image index, as served
  // The OCI-Filters-Applied header's entries ("artifactType" when the registry filtered).
  std::vector<std::string> filters_applied;
  std::string next_url;  // from Link rel="next" (same origin only); "" on the last page
};

// A source of bytes for a chunked upload: fills buf[0, max), returns the count (0 = end).
using BlobReader = std::function<Result<size_t>(char* buf, size_t max)>;

class RegistryCore;  // internal

// While a QuickAttempt lives, every registry request made on its thread gets ONE attempt,
// bounded by `bound` (no retry, whatever the client's RetryPolicy says). For a caller that has
// something else to fall back on (a local copy of the image, fusefs/local_image.h): a registry
// that is down or unknown to DNS must not hold it up for the whole retry budget. Nests: the
// innermost scope wins. Not copyable.
class QuickAttempt {
 public:
  explicit QuickAttempt(std::chrono::milliseconds bound);
  ~QuickAttempt();
  QuickAttempt(const QuickAttempt&) = delete;
  QuickAttempt& operator=(const QuickAttempt&) = delete;

 private:
  std::chrono::milliseconds previous_;
};

class RegistryClient {
 public:
  RegistryClient(std::shared_ptr<HttpTransport> transport,
                 std::shared_ptr<const CredentialStore> credentials, RegistryOptions options = {});
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  // A client on CurlTransport and DockerCredentialStore (environment defaults).
  [[nodiscard]] static Result<std::unique_ptr<RegistryClient>> CreateDefault(
      RegistryOptions options = {});

  const RegistryOptions& options() const;
  // "https://host:port" or "http://host:port" for a registry.
  std::string BaseUrl(std::string_view registry) const;

  // --- manifests ---
  // GET the manifest or index `ref` names (tag or digest), verified: sha256 of the bytes equals
  // ref.digest (if any) and Docker-Content-Digest (if sent); body mediaType agrees.
  [[nodiscard]] Result<ManifestBytes> GetManifest(const Reference& ref);
  // HEAD: media type, digest (Docker-Content-Digest) and size, without the body. `access`:
  // nullopt = as GetManifest (a tag on the resolve hosts); kPush = on the push host.
  [[nodiscard]] Result<Descriptor> HeadManifest(const Reference& ref,
                                                std::optional<RegistryAccess> access = {});
  // GetManifest, then down an index (nested ones too) to `platform` (nullopt = options().platform)
  // and fetch + verify + parse the config (unless `config` is kSkip: config left empty).
  [[nodiscard]] Result<ResolvedImage> Resolve(const Reference& ref,
                                              std::optional<Platform> platform = std::nullopt,
                                              ConfigFetch config = ConfigFetch::kFetch);

  // --- blobs (ref supplies registry + repository) ---
  // Whole blob into memory, verified. EFBIG if larger than max_size.
  [[nodiscard]] Result<std::string> GetBlob(const Reference& repo, const Digest& digest,
                                            uint64_t max_size);
  // Whole blob streamed into `sink`, digest checked at the end (EIO "digest mismatch" then; the
  // sink has seen the bad bytes, so the caller must discard them). On a retry the transfer
  // restarts: `restart` (if set) is called before the sink sees bytes again.
  [[nodiscard]] Status FetchBlob(const Reference& repo, const Digest& digest,
                                 const HttpBodySink& sink,
                                 const std::function<void()>& restart = {});
  // HEAD: the blob's size. ENOENT if absent.
  [[nodiscard]] Result<uint64_t> BlobSize(const Reference& repo, const Digest& digest);
  // HEAD: whether the blob exists, on the hosts that serve `access` (kPush before an upload:
  // the host the upload goes to).
  [[nodiscard]] Result<bool> BlobExists(const Reference& repo, const Digest& digest,
                                        RegistryAccess access = RegistryAccess::kPull);
  // Random access to the blobs of one repository (Range GETs; see registry_blob_source.h).
  std::unique_ptr<BlobSource> OpenBlobSource(const Reference& repo);

  // --- push ---
  // Cross-repository mount from `from_repository` (same registry). true = mounted (201);
  // false = the registry opened an upload instead (202), so upload the blob.
  [[nodiscard]] Result<bool> MountBlob(const Reference& target, const Digest& digest,
                                       std::string_view from_repository);
  // Monolithic upload: POST, then PUT <location>?digest=.
  [[nodiscard]] Status UploadBlob(const Reference& target, const Digest& digest,
                                  std::string_view data);
  // Chunked upload of `size` bytes read from `reader`: POST, PATCH chunks of chunk_size (raised
  // to OCI-Chunk-Min-Length if the registry asks), PUT ?digest= to close.
  [[nodiscard]] Status UploadBlobChunked(const Reference& target, const Digest& digest,
                                         uint64_t size, const BlobReader& reader,
                                         uint64_t chunk_size = 8 << 20);
  // PUT a manifest under target.Identifier() (tag or digest) with Content-Type = media_type.
  // Returns the digest of `bytes`.
  [[nodiscard]] Result<Digest> PutManifest(const Reference& target, std::string_view media_type,
                                           std::string_view bytes);
  // PutManifest, also reporting the response's OCI-Subject header (fetcher/referrers.h).
  [[nodiscard]] Result<ManifestPutResult> PutManifestReportingSubject(const Reference& target,
                                                                      std::string_view media_type,
                                                                      std::string_view bytes);
  // DELETE /v2/<repo>/manifests/<digest> (a tag is first resolved to its digest with HEAD, as
  // skopeo delete does, so every tag of that manifest goes with it), both on the push host. Returns
  // the deleted digest. ENOENT when the registry has no such manifest; ENOTSUP when it refuses
  // deletes (405: a distribution registry without storage.delete.enabled).
  [[nodiscard]] Result<Digest> DeleteManifest(const Reference& ref);
  // Tag = GET `source` manifest bytes, PUT them under `new_tag` in the same repository.
  [[nodiscard]] Status Tag(const Reference& source, std::string_view new_tag);

  // --- login ---
  // GET /v2/ with this client's credentials for `registry` (through the token flow when the
  // registry asks for one). Ok when the registry accepts them (or needs none); EACCES when it
  // refuses them; other errors as for any request.
  [[nodiscard]] Status CheckAuth(std::string_view registry);

  // --- referrers (OCI 1.1; fetcher/referrers.h builds on this) ---
  // One page of GET /v2/<repo>/referrers/<subject>[?artifactType=T] with Accept = the OCI index
  // type. `page_url` empty = the first page, else a ReferrersPage::next_url from before. A 404
  // on the first page is {.supported = false}; a body over `max_bytes` is EFBIG; a Link to
  // another origin is EIO.
  [[nodiscard]] Result<ReferrersPage> GetReferrersPage(const Reference& repo, const Digest& subject,
                                                       std::string_view artifact_type,
                                                       std::string_view page_url,
                                                       uint64_t max_bytes);

  // --- listing (Link pagination followed until absent; page_size 0 = registry default) ---
  // Tags through the mirror configuration (RegistryAccess::kListTags); the catalog from the
  // registry itself.
  [[nodiscard]] Result<std::vector<std::string>> ListTags(const Reference& repo, int page_size = 0);
  [[nodiscard]] Result<std::vector<std::string>> Catalog(std::string_view registry,
                                                         int page_size = 0);

 private:
  std::shared_ptr<RegistryCore> core_;
};

}  // namespace hoist
