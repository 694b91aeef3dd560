#include "fetcher/referrers.h"

#include <algorithm>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include "base/rfc3339.h"
#include "fetcher/retry.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace hoist {
namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void WriteString(JsonWriter& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void WriteAnnotations(JsonWriter& w, const std::map<std::string, std::string>& annotations) {
  w.StartObject();
  for (const auto& [k, v] : annotations) {  // std::map: sorted, so the bytes are deterministic
    WriteString(w, k);
    WriteString(w, v);
  }
  w.EndObject();
}

// {mediaType, digest, size[, artifactType][, annotations]}
void WriteDescriptor(JsonWriter& w, const Descriptor& d) {
  w.StartObject();
  w.Key("mediaType");
  WriteString(w, d.media_type);
  w.Key("digest");
  WriteString(w, d.digest.str());
  w.Key("size");
  w.Int64(d.size);
  if (!d.artifact_type.empty()) {
    w.Key("artifactType");
    WriteString(w, d.artifact_type);
  }
  if (!d.annotations.empty()) {
    w.Key("annotations");
    WriteAnnotations(w, d.annotations);
  }
  w.EndObject();
}

std::string ArtifactManifestJson(std::string_view artifact_type,
                                 const std::vector<Descriptor>& layers, const Descriptor& subject,
                                 const std::map<std::string, std::string>& annotations) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartObject();
  w.Key("schemaVersion");
  w.Int(2);
  w.Key("mediaType");
  WriteString(w, kMediaTypeOciManifest);
  w.Key("artifactType");
  WriteString(w, artifact_type);
  w.Key("config");
  WriteDescriptor(w, EmptyJsonDescriptor());
  w.Key("layers");
  w.StartArray();
  for (const Descriptor& l : layers) WriteDescriptor(w, l);
  w.EndArray();
  w.Key("subject");
  Descriptor s;
  s.media_type = subject.media_type;
  s.digest = subject.digest;
  s.size = subject.size;
  WriteDescriptor(w, s);
  w.Key("annotations");
  WriteAnnotations(w, annotations);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::string Serialize(const rapidjson::Document& doc) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  doc.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

// An index's entries, checked: EBADMSG when it is not an OCI image index, EFBIG over the caps.
Result<std::vector<Descriptor>> IndexEntries(std::string_view content_type, std::string_view bytes,
                                             const std::string& what,
                                             const ReferrerLimits& limits) {
  if (bytes.size() > limits.max_index_bytes) {
    return Fail(EFBIG, what + ": index is larger than " + std::to_string(limits.max_index_bytes) +
                           " bytes");
  }
  auto type = ManifestMediaType(content_type, bytes);
  if (!type) return Fail(EBADMSG, type.error().Context(what).message());
  if (*type != kMediaTypeOciIndex) {
    return Fail(EBADMSG, what + ": " + *type + " is not an OCI image index");
  }
  auto index = ParseImageIndex(bytes, *type);
  if (!index) return Fail(EBADMSG, index.error().Context(what).message());
  if (index->manifests.size() > limits.max_referrers) {
    return Fail(EFBIG, what + ": more than " + std::to_string(limits.max_referrers) + " referrers");
  }
  return std::move(index->manifests);
}

// Appends the entries of `page` that pass the filter and are not listed yet.
Status AddEntries(std::vector<Descriptor> page, std::string_view artifact_type,
                  std::set<Digest>* seen, std::vector<Descriptor>* out, const std::string& what,
                  const ReferrerLimits& limits) {
  for (Descriptor& d : page) {
    if (!artifact_type.empty() && d.artifact_type != artifact_type) continue;
    if (!seen->insert(d.digest).second) continue;
    if (out->size() >= limits.max_referrers) {
      return Fail(EFBIG,
                  what + ": more than " + std::to_string(limits.max_referrers) + " referrers");
    }
    out->push_back(std::move(d));
  }
  return Ok();
}

// The tag schema index of `subject`: nullopt when the tag does not exist.
Result<std::optional<ManifestBytes>> GetTagSchemaIndex(RegistryClient& client,
                                                       const Reference& repo,
                                                       const Digest& subject) {
  auto got = client.GetManifest(repo.WithTag(ReferrersTag(subject)));
  if (!got) {
    if (got.error().code() == ENOENT) return std::optional<ManifestBytes>();
    return Fail(got.error());
  }
  return std::optional<ManifestBytes>(std::move(*got));
}

Result<std::vector<Descriptor>> ListFromTagSchema(RegistryClient& client, const Reference& repo,
                                                  const Digest& subject,
                                                  std::string_view artifact_type,
                                                  const ReferrerLimits& limits) {
  std::string what = repo.Name() + ": referrers tag " + ReferrersTag(subject);
  HOIST_ASSIGN_OR_RETURN(std::optional<ManifestBytes> index,
                         GetTagSchemaIndex(client, repo, subject));
  std::vector<Descriptor> out;
  if (!index) return out;
  HOIST_ASSIGN_OR_RETURN(std::vector<Descriptor> entries,
                         IndexEntries(index->media_type, index->bytes, what, limits));
  std::set<Digest> seen;
  HOIST_RETURN_IF_ERROR(AddEntries(std::move(entries), artifact_type, &seen, &out, what, limits));
  return out;
}

// Adds `referrer` to the tag schema index of `subject` (read-modify-write; see the header).
Status AddToTagSchema(RegistryClient& client, const Reference& repo, const Digest& subject,
                      const Descriptor& referrer, const ReferrerLimits& limits) {
  std::string tag = ReferrersTag(subject);
  std::string what = repo.Name() + ": referrers tag " + tag;
  HOIST_ASSIGN_OR_RETURN(std::optional<ManifestBytes> current,
                         GetTagSchemaIndex(client, repo, subject));
  rapidjson::Document doc;
  auto& a = doc.GetAllocator();
  if (current) {
    // Check it first (type, caps, every entry well-formed), then edit the document itself so
    // members hoist does not know survive the rewrite.
    HOIST_ASSIGN_OR_RETURN(std::vector<Descriptor> entries,
                           IndexEntries(current->media_type, current->bytes, what, limits));
    for (const Descriptor& d : entries) {
      if (d.digest == referrer.digest) return Ok();  // listed already
    }
    if (entries.size() >= limits.max_referrers) {
      return Fail(EFBIG, what + ": already lists " + std::to_string(entries.size()) + " referrers");
    }
    doc.Parse(current->bytes.data(), current->bytes.size());
    if (doc.HasParseError() || !doc.IsObject()) return Fail(EBADMSG, what + ": not JSON");
    auto manifests = doc.FindMember("manifests");
    if (manifests == doc.MemberEnd()) {
      doc.AddMember("manifests", rapidjson::Value(rapidjson::kArrayType), a);
    } else if (!manifests->value.IsArray()) {
      return Fail(EBADMSG, what + ": manifests is not an array");
    }
    if (!doc.HasMember("mediaType")) {
      doc.AddMember("mediaType", rapidjson::Value(kMediaTypeOciIndex.data(), a), a);
    }
  } else {
    doc.SetObject();
    doc.AddMember("schemaVersion", 2, a);
    doc.AddMember("mediaType", rapidjson::Value(kMediaTypeOciIndex.data(), a), a);
    doc.AddMember("manifests", rapidjson::Value(rapidjson::kArrayType), a);
  }
  // The entry, written and parsed back into the document's allocator.
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  WriteDescriptor(w, referrer);
  rapidjson::Document entry;
  entry.Parse(buf.GetString(), buf.GetSize());
  doc["manifests"].PushBack(rapidjson::Value(entry, a), a);
  std::string bytes = Serialize(doc);
  if (bytes.size() > limits.max_index_bytes) {
    return Fail(EFBIG, what + ": the index would be larger than " +
                           std::to_string(limits.max_index_bytes) + " bytes");
  }
  HOIST_ASSIGN_OR_RETURN(Digest put,
                         client.PutManifest(repo.WithTag(tag), kMediaTypeOciIndex, bytes));
  (void)put;
  return Ok();
}

}  // namespace

Descriptor EmptyJsonDescriptor() {
  Descriptor d;
  d.media_type = std::string(kMediaTypeOciEmpty);
  d.digest = *Digest::Parse(kEmptyJsonDigest);
  d.size = static_cast<int64_t>(kEmptyJson.size());
  return d;
}

std::string ReferrersTag(const Digest& subject) { return "sha256-" + subject.hex(); }

Result<Descriptor> PushReferrer(RegistryClient& client, const Reference& repo,
                                const Descriptor& subject, std::string_view artifact_type,
                                const std::vector<ReferrerBlob>& blobs,
                                std::map<std::string, std::string> annotations,
                                const ReferrerLimits& limits) {
  std::string what = repo.Name() + ": referrer of " + subject.digest.str();
  if (subject.digest.empty()) return Fail(EINVAL, what + ": the subject has no digest");
  if (subject.media_type.empty() || subject.size <= 0) {
    return Fail(EINVAL, what + ": the subject needs a media type and a size");
  }
  if (artifact_type.empty()) return Fail(EINVAL, what + ": no artifact type");
  Reference target = repo.WithTag("");

  // Blobs first (the config is the empty JSON), each uploaded only when missing.
  std::vector<Descriptor> layers;
  std::vector<std::pair<Digest, std::string_view>> uploads = {
      {EmptyJsonDescriptor().digest, kEmptyJson}};
  for (const ReferrerBlob& b : blobs) {
    if (b.media_type.empty()) return Fail(EINVAL, what + ": a blob has no media type");
    Descriptor d;
    d.media_type = b.media_type;
    d.digest = Digest::Of(b.data);
    d.size = static_cast<int64_t>(b.data.size());
    d.annotations = b.annotations;
    layers.push_back(d);
    uploads.emplace_back(d.digest, b.data);
  }
  if (layers.empty()) layers.push_back(EmptyJsonDescriptor());
  std::set<Digest> done;
  for (const auto& [digest, data] : uploads) {
    if (!done.insert(digest).second) continue;
    HOIST_ASSIGN_OR_RETURN(bool exists, client.BlobExists(target, digest, RegistryAccess::kPush));
    if (!exists) HOIST_RETURN_IF_ERROR(client.UploadBlob(target, digest, data));
  }

  if (!annotations.contains(std::string(kAnnotationCreated))) {
    Clock* clock = client.options().clock ? client.options().clock : RealClock();
    annotations[std::string(kAnnotationCreated)] = FormatRfc3339(clock->UnixSeconds());
  }
  std::string bytes = ArtifactManifestJson(artifact_type, layers, subject, annotations);
  if (bytes.size() > limits.max_manifest_bytes) {
    return Fail(EFBIG, what + ": the manifest would be " + std::to_string(bytes.size()) + " bytes");
  }
  Descriptor out;
  out.media_type = std::string(kMediaTypeOciManifest);
  out.digest = Digest::Of(bytes);
  out.size = static_cast<int64_t>(bytes.size());
  out.artifact_type = std::string(artifact_type);
  out.annotations = std::move(annotations);
  HOIST_ASSIGN_OR_RETURN(ManifestPutResult put,
                         client.PutManifestReportingSubject(target.WithDigest(out.digest),
                                                            kMediaTypeOciManifest, bytes));
  // OCI-Subject naming the subject: the registry's referrers API lists the artifact now.
  if (put.oci_subject && *put.oci_subject == subject.digest.str()) return out;
  HOIST_RETURN_IF_ERROR(AddToTagSchema(client, target, subject.digest, out, limits));
  return out;
}

Result<std::vector<Descriptor>> ListReferrers(RegistryClient& client, const Reference& repo,
                                              const Digest& subject, std::string_view artifact_type,
                                              const ReferrerLimits& limits) {
  std::string what = repo.Name() + ": referrers of " + subject.str();
  // The tag schema is read at the same time as the API's first page: a registry without the
  // API (most today) then costs one round trip, not two; one with it, one request more.
  std::optional<Result<std::vector<Descriptor>>> from_tag;
  std::thread tag_lookup(
      [&] { from_tag.emplace(ListFromTagSchema(client, repo, subject, artifact_type, limits)); });
  Result<ReferrersPage> first =
      client.GetReferrersPage(repo, subject, artifact_type, "", limits.max_index_bytes);
  tag_lookup.join();
  HOIST_ASSIGN_OR_RETURN(ReferrersPage page, std::move(first));
  if (!page.supported) return std::move(*from_tag);
  std::vector<Descriptor> out;
  std::set<Digest> seen;
  std::set<std::string> seen_urls;
  uint64_t total = 0;
  for (int pages = 1;; ++pages) {
    total += page.bytes.size();
    HOIST_ASSIGN_OR_RETURN(std::vector<Descriptor> entries,
                           IndexEntries(page.media_type, page.bytes, what, limits));
    // Filtered here whether or not the registry says it did (OCI-Filters-Applied: artifactType):
    // one that ignores the filter is allowed to, and one that claims it falsely costs nothing
    // to catch.
    HOIST_RETURN_IF_ERROR(AddEntries(std::move(entries), artifact_type, &seen, &out, what, limits));
    if (page.next_url.empty()) return out;
    if (pages >= limits.max_pages) {
      return Fail(EFBIG, what + ": more than " + std::to_string(limits.max_pages) + " pages");
    }
    if (!seen_urls.insert(page.next_url).second) {
      return Fail(EIO, what + ": Link pagination loops");
    }
    if (total >= limits.max_index_bytes) {
      return Fail(EFBIG, what + ": the pages are larger than " +
                             std::to_string(limits.max_index_bytes) + " bytes");
    }
    HOIST_ASSIGN_OR_RETURN(page,
                           client.GetReferrersPage(repo, subject, artifact_type, page.next_url,
                                                   limits.max_index_bytes - total));
  }
}

Result<ReferrerManifest> FetchReferrerManifest(RegistryClient& client, const Reference& repo,
                                               const Digest& subject, const Descriptor& referrer,
                                               std::string_view artifact_type,
                                               const ReferrerLimits& limits) {
  std::string what = repo.Name() + ": referrer " + referrer.digest.str();
  if (referrer.digest.empty()) return Fail(EINVAL, what + ": no digest");
  if (referrer.size < 0 || static_cast<uint64_t>(referrer.size) > limits.max_manifest_bytes) {
    return Fail(EFBIG, what + ": listed as " + std::to_string(referrer.size) +
                           " bytes, more than " + std::to_string(limits.max_manifest_bytes));
  }
  if (!referrer.media_type.empty() && referrer.media_type != kMediaTypeOciManifest) {
    return Fail(EBADMSG, what + ": listed as " + referrer.media_type + ", not an OCI manifest");
  }
  // GetManifest checks that the bytes hash to the digest.
  HOIST_ASSIGN_OR_RETURN(ManifestBytes got, client.GetManifest(repo.WithDigest(referrer.digest)));
  if (static_cast<int64_t>(got.bytes.size()) != referrer.size) {
    return Fail(EBADMSG, what + ": is " + std::to_string(got.bytes.size()) +
                             " bytes, the listing says " + std::to_string(referrer.size));
  }
  if (got.media_type != kMediaTypeOciManifest) {
    return Fail(EBADMSG, what + ": is " + got.media_type + ", not an OCI image manifest");
  }
  auto manifest = ParseImageManifest(got.bytes, got.media_type);
  if (!manifest) return Fail(EBADMSG, manifest.error().Context(what).message());
  if (!manifest->subject) return Fail(EBADMSG, what + ": has no subject");
  if (manifest->subject->digest != subject) {
    return Fail(EBADMSG, what + ": refers to " + manifest->subject->digest.str() + ", not to " +
                             subject.str());
  }
  std::string type =
      manifest->artifact_type.empty() ? manifest->config.media_type : manifest->artifact_type;
  if (!artifact_type.empty() && type != artifact_type) {
    return Fail(EBADMSG, what + ": artifact type is \"" + type + "\", not \"" +
                             std::string(artifact_type) + "\"");
  }
  if (!referrer.artifact_type.empty() && type != referrer.artifact_type) {
    return Fail(EBADMSG, what + ": artifact type is \"" + type + "\", the listing says \"" +
                             referrer.artifact_type + "\"");
  }
  ReferrerManifest out;
  out.descriptor.media_type = got.media_type;
  out.descriptor.digest = got.digest;
  out.descriptor.size = static_cast<int64_t>(got.bytes.size());
  out.descriptor.artifact_type = type;
  out.descriptor.annotations = manifest->annotations;
  out.manifest = std::move(*manifest);
  return out;
}

Result<ReferrerArtifact> FetchReferrer(RegistryClient& client, const Reference& repo,
                                       const Digest& subject, const Descriptor& referrer,
                                       std::string_view artifact_type,
                                       std::string_view blob_media_type, uint64_t max_blob_size,
                                       const ReferrerLimits& limits) {
  std::string what = repo.Name() + ": referrer " + referrer.digest.str();
  HOIST_ASSIGN_OR_RETURN(
      ReferrerManifest fetched,
      FetchReferrerManifest(client, repo, subject, referrer, artifact_type, limits));
  const ImageManifest* manifest = &fetched.manifest;
  const Descriptor* layer = nullptr;
  for (const Descriptor& l : manifest->layers) {
    if (l.media_type == blob_media_type) {
      layer = &l;
      break;
    }
  }
  if (!layer) {
    return Fail(ENOENT, what + ": has no layer of type " + std::string(blob_media_type));
  }
  if (static_cast<uint64_t>(layer->size) > max_blob_size) {
    return Fail(EFBIG, what + ": blob " + layer->digest.str() + " is " +
                           std::to_string(layer->size) + " bytes, more than " +
                           std::to_string(max_blob_size));
  }
  // GetBlob checks the digest (EIO "digest mismatch").
  HOIST_ASSIGN_OR_RETURN(std::string data, client.GetBlob(repo, layer->digest, max_blob_size));
  if (static_cast<int64_t>(data.size()) != layer->size) {
    return Fail(EBADMSG, what + ": blob " + layer->digest.str() + " is " +
                             std::to_string(data.size()) + " bytes, the manifest says " +
                             std::to_string(layer->size));
  }
  ReferrerArtifact out;
  out.descriptor = std::move(fetched.descriptor);
  out.blob = *layer;
  out.manifest = std::move(fetched.manifest);
  out.data = std::move(data);
  return out;
}

Result<std::string> FetchReferrerBlob(RegistryClient& client, const Reference& repo,
                                      const Descriptor& blob, uint64_t max_blob_size) {
  std::string what = repo.Name() + ": referrer blob " + blob.digest.str();
  if (blob.size < 0 || static_cast<uint64_t>(blob.size) > max_blob_size) {
    return Fail(EFBIG, what + " is " + std::to_string(blob.size) + " bytes, more than " +
                           std::to_string(max_blob_size));
  }
  // GetBlob checks the digest (EIO "digest mismatch").
  HOIST_ASSIGN_OR_RETURN(std::string data, client.GetBlob(repo, blob.digest, max_blob_size));
  if (static_cast<int64_t>(data.size()) != blob.size) {
    return Fail(EBADMSG, what + " is " + std::to_string(data.size()) +
                             " bytes, the manifest says " + std::to_string(blob.size));
  }
  return data;
}

void SortReferrersNewestFirst(std::vector<Descriptor>* referrers) {
  auto created = [](const Descriptor& d) -> std::pair<int64_t, uint32_t> {
    auto it = d.annotations.find(std::string(kAnnotationCreated));
    if (it == d.annotations.end()) return {INT64_MIN, 0};
    auto t = ParseRfc3339(it->second);
    return t ? *t : std::pair<int64_t, uint32_t>{INT64_MIN, 0};
  };
  std::reverse(referrers->begin(), referrers->end());
  std::stable_sort(
      referrers->begin(), referrers->end(),
      [&](const Descriptor& a, const Descriptor& b) { return created(a) > created(b); });
}

}  // namespace hoist
