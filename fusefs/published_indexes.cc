#include "fusefs/published_indexes.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "base/log.h"
#include "fetcher/referrers.h"
#include "fusefs/trace_prefetch.h"
#include "index/gzip_index.h"

namespace hoist {

PublishedIndexes::PublishedIndexes(RegistryClient* client, Reference repo, Digest manifest)
    : client_(client), repo_(std::move(repo)), manifest_(std::move(manifest)) {}

Digest PublishedIndexes::artifact() const {
  MutexLock lock(mu_);
  return artifact_;
}

void PublishedIndexes::LookUp(Digest* artifact, std::vector<Descriptor>* blobs) {
  // Every referrer, so that a version 1 artifact (no longer read) can be named.
  auto all = ListReferrers(*client_, repo_, manifest_, "");
  if (!all) {
    HOIST_LOG(kInfo) << "no published layer index: " << all.error().message();
    return;
  }
  auto listed = std::make_optional<std::vector<Descriptor>>();
  bool old = false;
  for (Descriptor& d : *all) {
    old = old || d.artifact_type == kLayerIndexArtifactTypeV1;
    if (d.artifact_type == kLayerIndexArtifactType) listed->push_back(std::move(d));
  }
  if (old && listed->empty()) {
    HOIST_LOG(kWarning) << "the published layer index of " << manifest_.str() << " is version 1 ("
                        << kLayerIndexArtifactTypeV1
                        << "), no longer read; its layers are indexed from their whole blobs "
                           "(run `hoist index` again to publish version 2)";
    return;
  }
  if (listed->empty()) {
    HOIST_LOG(kDebug) << "no published layer index for " << manifest_.str();
    return;
  }
  SortReferrersNewestFirst(&*listed);
  for (size_t i = 0; i < listed->size() && i < kMaxTraceCandidates; ++i) {
    const Descriptor& d = (*listed)[i];
    auto fetched = FetchReferrerManifest(*client_, repo_, manifest_, d, kLayerIndexArtifactType);
    if (!fetched) {
      HOIST_LOG(kWarning) << "published layer index " << d.digest.str()
                          << " refused: " << fetched.error().message();
      continue;
    }
    *artifact = fetched->descriptor.digest;
    *blobs = std::move(fetched->manifest.layers);
    return;
  }
}

std::optional<LayerIndex> PublishedIndexes::Get(const Descriptor& layer, LayerFormat format) {
  Digest artifact;
  std::vector<Descriptor> blobs;
  bool lead = false;
  {
    MutexLock lock(mu_);
    while (state_ == State::kLooking) cv_.Wait(mu_);
    if (state_ == State::kNotYet) {
      state_ = State::kLooking;
      lead = true;
    } else {
      artifact = artifact_;
      blobs = blobs_;
    }
  }
  if (lead) {
    LookUp(&artifact, &blobs);
    MutexLock lock(mu_);
    artifact_ = artifact;
    blobs_ = blobs;
    state_ = State::kDone;
    cv_.NotifyAll();
  }
  if (artifact.empty()) return std::nullopt;
  const std::string layer_digest = layer.digest.str();
  const Descriptor* blob = nullptr;
  for (const Descriptor& b : blobs) {
    auto it = b.annotations.find(std::string(kLayerIndexLayerAnnotation));
    if (b.media_type == kLayerIndexBlobMediaType && it != b.annotations.end() &&
        it->second == layer_digest) {
      blob = &b;
      break;
    }
  }
  if (blob == nullptr) {
    HOIST_LOG(kInfo) << "layer " << layer_digest << ": not in the published layer index "
                     << artifact.str();
    return std::nullopt;
  }
  const PublishedIndexLimits limits;
  auto data = FetchReferrerBlob(*client_, repo_, *blob, limits.max_blob_bytes);
  Result<LayerIndex> index =
      data ? DecodePublishedLayerIndex(*data, layer.digest, static_cast<uint64_t>(layer.size),
                                       format, limits)
           : Result<LayerIndex>(Fail(data.error()));
  if (index) {
    // External windows: the artifact must hold their blob, of the digest and size the table
    // names (each window's range was checked against that size).
    auto checkpoints = ParseCheckpointIndex(index->stream_index, index->blob_size);
    if (!checkpoints) {
      index = Fail(checkpoints.error());
    } else if (checkpoints->external_windows()) {
      const bool listed = std::any_of(blobs.begin(), blobs.end(), [&](const Descriptor& b) {
        return b.media_type == kLayerIndexWindowsMediaType &&
               b.digest == checkpoints->windows_blob &&
               b.size == static_cast<int64_t>(checkpoints->windows_size);
      });
      if (!listed)
        index = Fail(EBADMSG, "published layer index: its windows blob " +
                                  checkpoints->windows_blob.str() + " of " +
                                  std::to_string(checkpoints->windows_size) +
                                  " bytes is not in the artifact");
    }
  }
  if (!index) {
    HOIST_LOG(kWarning) << "layer " << layer_digest << ": published index " << artifact.str()
                        << " refused (" << index.error().message()
                        << "); indexing it from the whole blob";
    return std::nullopt;
  }
  HOIST_LOG(kInfo) << "layer " << layer_digest << ": index from the published artifact "
                   << artifact.str() << " (" << blob->size << " bytes)";
  return std::move(*index);
}

}  // namespace hoist
