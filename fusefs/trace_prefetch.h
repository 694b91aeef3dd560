// TracePrefetch: the files a start of this image read, fetched first (issue 16, learned
// prefetch). The trace (fusefs/access_trace.h) comes from a file the admin gives
// (-o prefetch_trace=FILE) or, by default, from the registry: an OCI referrer of the image
// manifest with artifactType kAccessTraceArtifactType, published by `hoist optimize --attach`
// on any host (fetcher/referrers.h; the tag-schema fallback on registries without the
// referrers API).
//
// Timeline: the constructor starts a thread that looks the trace up at once, alongside the
// mount's own TOC fetches, so the lookup's round trips overlap the mount's. Begin() hands it
// the layers and the prefetcher once the mount is up; the thread then maps the trace to files
// (layer digest + path; files the layers do not hold are skipped and counted) and fetches them
// with Prefetcher::FetchFiles, earliest-opened first, before and beside the whole-image pass.
//
// Trust: a listed referrer is only a claim. FetchReferrer verifies the artifact manifest and
// blob by digest and that its subject is this manifest; the trace itself must name this
// manifest as its image. Anything that fails is refused with ONE warning line, the next
// candidate (newest first, at most kMaxCandidates) is tried, and the mount works on without a
// trace. A trace only decides what is fetched early: every byte is still verified by its chunk
// digest, so a wrong trace can waste bandwidth but never change what is read.
//
// Thread-safety: Begin and Stop from the mount's thread. Ownership: the client, prefetcher and
// layers must outlive Stop() (the destructor calls it).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/digest.h"
#include "base/mutex.h"
#include "base/status.h"
#include "fetcher/reference.h"
#include "fetcher/registry.h"
#include "fusefs/access_trace.h"
#include "fusefs/merged_view.h"
#include "fusefs/prefetcher.h"
#include "index/layer_index.h"

namespace hoist {

inline constexpr size_t kMaxTraceCandidates = 4;
inline constexpr uint64_t kMaxTraceBytes = 16ull << 20;

struct FoundTrace {
  Digest artifact;  // the artifact manifest's digest ("" for a file)
  AccessTrace trace;
};

// The newest verified trace published for `manifest` in `repo`'s repository; nullopt if none.
// Refused candidates are logged (one warning each) and skipped; an error only when the listing
// itself fails.
[[nodiscard]] Result<std::optional<FoundTrace>> FindPublishedTrace(RegistryClient& client,
                                                                   const Reference& repo,
                                                                   const Digest& manifest);

// A trace file on the host (capped at kMaxTraceBytes), which must name `manifest`.
[[nodiscard]] Result<AccessTrace> ReadTraceFile(const std::string& path, const Digest& manifest);

// The trace's files as FileRefs into `layers` (regular files only), in trace order; files the
// layers do not hold are skipped and counted in *missing (may be null).
std::vector<FileRef> TracedFiles(const AccessTrace& trace,
                                 const std::vector<std::shared_ptr<const LayerIndex>>& layers,
                                 size_t* missing);

class TracePrefetch {
 public:
  // `file` non-empty: read the trace from that host file instead of the registry.
  TracePrefetch(RegistryClient* client, Reference repo, Digest manifest, std::string file);
  ~TracePrefetch();
  TracePrefetch(const TracePrefetch&) = delete;
  TracePrefetch& operator=(const TracePrefetch&) = delete;

  void Begin(Prefetcher* prefetcher, const std::vector<std::shared_ptr<const LayerIndex>>* layers);
  // Ends the thread (a lookup in flight finishes first, bounded by the client's timeouts; stop
  // the prefetcher first so that a FetchFiles in progress returns at once). Idempotent.
  void Stop();

 private:
  void Run();

  RegistryClient* client_;
  const Reference repo_;
  const Digest manifest_;
  const std::string file_;
  Mutex mu_;
  CondVar cv_;
  bool stop_ HOIST_GUARDED_BY(mu_) = false;
  Prefetcher* prefetcher_ HOIST_GUARDED_BY(mu_) = nullptr;
  const std::vector<std::shared_ptr<const LayerIndex>>* layers_ HOIST_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

}  // namespace hoist
