// PublishedIndexes: the layer indexes published for an image by `hoist index` (issue 17 item 2),
// found and checked at mount so that an unconverted tar+gzip / tar+zstd layer that is not in
// the host store is lazy from its first read, with no whole-blob stream to index it.
//
// The artifact (index/FORMATS.md, "Published layer indexes"; index/published_index.h for a
// blob) is an OCI referrer of the platform manifest with artifactType kLayerIndexArtifactType
// and one blob per indexed layer, annotated with the layer digest.
//
// Timeline: the layer loader asks Get() from its worker threads, for each unconverted
// gzip/zstd layer it does not find in the store. The first caller does the lookup (the
// referrers listing, API and tag schema at once, then the newest artifact manifest that
// verifies), while the loader's other workers go on fetching the other layers' TOCs; callers
// that come meanwhile wait for it. Each caller then fetches and checks its own layer's blob,
// so the blobs of several layers arrive in parallel. Nothing is looked up again afterwards.
// A mount with -o offline (or one served from the local store) makes no PublishedIndexes.
//
// Trust: the listing is a claim. The artifact manifest must hash to its digest, name this
// manifest as its subject and have the artifact type; a blob must hash to its digest and
// DecodePublishedLayerIndex must accept it for exactly this layer (digest, size, format,
// checkpoints parsing against the blob). A refused candidate artifact is one warning line and
// the next (newest first, at most kMaxTraceCandidates) is tried; a refused layer blob is one
// warning line and that layer is indexed from its whole blob as without an artifact. A
// published index is a claim about the layer's file list that cannot be checked without the
// whole blob; docs/RELIABILITY.md says what that means.
//
// Thread-safety: Get may be called from several threads at once. Ownership: the client is
// borrowed and must outlive the object.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/mutex.h"
#include "fetcher/manifest.h"
#include "fetcher/reference.h"
#include "fetcher/registry.h"
#include "index/layer_index.h"
#include "index/published_index.h"

namespace hoist {

class PublishedIndexes {
 public:
  PublishedIndexes(RegistryClient* client, Reference repo, Digest manifest);

  // The published index of `layer`, checked; nullopt when there is none (or it was refused,
  // with one warning line).
  std::optional<LayerIndex> Get(const Descriptor& layer, LayerFormat format);

  // The artifact used ("" before the lookup or when there is none).
  Digest artifact() const;

 private:
  // The artifact's layers; the lookup itself, run by the first caller with no lock held.
  void LookUp(Digest* artifact, std::vector<Descriptor>* blobs);

  RegistryClient* client_;
  const Reference repo_;
  const Digest manifest_;
  mutable Mutex mu_;
  CondVar cv_;
  enum class State { kNotYet, kLooking, kDone };
  State state_ HOIST_GUARDED_BY(mu_) = State::kNotYet;
  Digest artifact_ HOIST_GUARDED_BY(mu_);
  std::vector<Descriptor> blobs_ HOIST_GUARDED_BY(mu_);  // the artifact's layers
};

}  // namespace hoist
