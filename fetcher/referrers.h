// OCI 1.1 referrers: publish a small artifact that refers to an image manifest (its `subject`),
// find the artifacts that refer to an image, and fetch one back verified. Built on
// RegistryClient; the byte-level facts are in index/FORMATS.md ("Referrers").
//
// Publishing (PushReferrer): the artifact is an OCI image manifest with `artifactType`, the
// empty config (application/vnd.oci.empty.v1+json, `{}`), the given blobs as `layers`, the image
// as `subject`, and annotations (org.opencontainers.image.created is added when absent). Blobs
// are uploaded unless the registry has them; the manifest is PUT by digest. A registry that
// answers the PUT with `OCI-Subject: <subject digest>` indexes it itself. Otherwise the
// referrers tag schema is used: the tag `sha256-<hex of the subject digest>` holds an OCI image
// index of referrer descriptors, which PushReferrer reads (404: empty), extends with the new
// descriptor (unless listed already) and PUTs back. That update is read-modify-write with no
// lock the registry enforces: two publishers racing on the same subject can lose one of the
// two entries (the OCI distribution spec says so too). The artifact manifest itself is never
// lost; publishing again restores the entry.
//
// Discovery (ListReferrers): GET /v2/<name>/referrers/<digest>?artifactType=T, Link pages
// followed; a 404 on the first page means no referrers API, and the tag schema index is used
// instead (404 there too: no referrers). The tag schema index is fetched at the same time as
// the first page (on a second thread), so a registry without the API costs one round trip,
// not two; one with the API pays one extra small request. The artifactType filter is applied here
// too, whatever the registry's OCI-Filters-Applied header claims (checking costs nothing). Entries
// are de-duplicated by digest. Listing does not fetch the artifacts, so an entry is only a claim: a
// hostile registry or whoever can push tags can list anything. Sizes are capped (ReferrerLimits):
// the index bytes over all pages, the pages, the entries.
//
// Fetching (FetchReferrer): the artifact manifest by digest (sha256 verified, size as listed
// and capped), which must be an OCI image manifest whose `subject` is the image and whose
// artifact type (`artifactType`, else config.mediaType) is the one asked for; then its first
// layer of the asked media type, sha256 and size verified. This is what makes a listed entry
// trustworthy: it names content by digest, and the content names the image.
//
// Errors: registry errors as RegistryClient reports them (ENOENT, EACCES, EIO: "digest
// mismatch" for tampered bytes); EBADMSG for an index or artifact that is not what it must be
// (wrong subject, wrong artifact type, not an OCI manifest/index, size not as listed, malformed
// JSON); EFBIG beyond a cap; EINVAL for bad arguments. Each is one line naming the repository
// and the object.
// Thread-safety: free functions; as thread-safe as the RegistryClient they use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/digest.h"
#include "base/status.h"
#include "fetcher/manifest.h"
#include "fetcher/reference.h"
#include "fetcher/registry.h"

namespace hoist {

inline constexpr std::string_view kMediaTypeOciEmpty = "application/vnd.oci.empty.v1+json";
// The empty JSON object `{}` the empty descriptor names.
inline constexpr std::string_view kEmptyJson = "{}";
inline constexpr std::string_view kEmptyJsonDigest =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
inline constexpr std::string_view kAnnotationCreated = "org.opencontainers.image.created";

// The empty descriptor {mediaType: application/vnd.oci.empty.v1+json, digest of `{}`, size 2}.
Descriptor EmptyJsonDescriptor();

// "sha256-<hex>": the referrers tag schema's tag for `subject`.
std::string ReferrersTag(const Digest& subject);

struct ReferrerLimits {
  uint64_t max_index_bytes = 4 << 20;     // an index (tag schema) or all pages together
  int max_pages = 64;                     // referrers API pages
  size_t max_referrers = 10000;           // descriptors in one listing
  uint64_t max_manifest_bytes = 4 << 20;  // one artifact manifest
};

// One blob of an artifact (a layer of its manifest).
struct ReferrerBlob {
  std::string media_type;
  std::string data;
  std::map<std::string, std::string> annotations;  // e.g. org.opencontainers.image.title
};

// Publishes an artifact of `artifact_type` whose subject is `subject` (the image manifest's
// mediaType, digest and size) in the repository `repo` names (its tag/digest are ignored).
// `blobs` may be empty (the layers are then the empty descriptor). Returns the descriptor of the
// artifact manifest: OCI manifest type, its digest and size, artifactType and annotations.
[[nodiscard]] Result<Descriptor> PushReferrer(RegistryClient& client, const Reference& repo,
                                              const Descriptor& subject,
                                              std::string_view artifact_type,
                                              const std::vector<ReferrerBlob>& blobs,
                                              std::map<std::string, std::string> annotations,
                                              const ReferrerLimits& limits = {});

// The descriptors of the manifests that refer to `subject` in `repo`'s repository, in the
// registry's order (tag schema: the index's order, oldest first). `artifact_type` empty = all.
[[nodiscard]] Result<std::vector<Descriptor>> ListReferrers(RegistryClient& client,
                                                            const Reference& repo,
                                                            const Digest& subject,
                                                            std::string_view artifact_type,
                                                            const ReferrerLimits& limits = {});

// Newest first by org.opencontainers.image.created (unparsable or missing: oldest), then in
// listing order, latest listed first: the order to try listed candidates in.
void SortReferrersNewestFirst(std::vector<Descriptor>* referrers);

// An artifact manifest fetched and verified (digest, size as listed, OCI manifest, subject,
// artifact type), without its blobs: for artifacts of several blobs (FetchReferrerBlob each).
struct ReferrerManifest {
  Descriptor descriptor;  // the artifact manifest (OCI manifest type, digest, size)
  ImageManifest manifest;
};
[[nodiscard]] Result<ReferrerManifest> FetchReferrerManifest(
    RegistryClient& client, const Reference& repo, const Digest& subject,
    const Descriptor& referrer, std::string_view artifact_type, const ReferrerLimits& limits = {});

// One blob of a verified artifact manifest (a layer descriptor of it): sha256 and size checked,
// EFBIG beyond `max_blob_size`.
[[nodiscard]] Result<std::string> FetchReferrerBlob(RegistryClient& client, const Reference& repo,
                                                    const Descriptor& blob, uint64_t max_blob_size);

// An artifact fetched and verified (see the contract above).
struct ReferrerArtifact {
  Descriptor descriptor;  // the artifact manifest (OCI manifest type, digest, size)
  ImageManifest manifest;
  Descriptor blob;   // the layer fetched
  std::string data;  // its bytes, verified
};

// Fetches the artifact `referrer` (a ListReferrers entry: digest and size are checked; its
// artifactType, when set, must agree) and the first of its layers of `blob_media_type` (at most
// `max_blob_size` bytes), all verified against `subject` and `artifact_type`. ENOENT when the
// artifact has no layer of that media type.
[[nodiscard]] Result<ReferrerArtifact> FetchReferrer(
    RegistryClient& client, const Reference& repo, const Digest& subject,
    const Descriptor& referrer, std::string_view artifact_type, std::string_view blob_media_type,
    uint64_t max_blob_size, const ReferrerLimits& limits = {});

}  // namespace hoist
