// MountStats: the counters of one mount (fetches, reads of local blob files, cache hits and
// misses, latency, how much of the image is local, errors), in all and per layer, updated by the
// read path, the stream layers and the prefetcher, and a point-in-time MountStatsSnapshot of
// them with a JSON form (RapidJSON) for the state file that `hoist stats MOUNTPOINT` reads (see
// stats_file.h).
//
// What is counted:
//   requests / bytes_fetched   every BlobSource range request that went to the NETWORK
//                              (on-demand, read-ahead, prefetch, refetch, stream pieces, and the
//                              whole-blob read that indexes an unconverted layer at mount time)
//                              and the blob bytes it returned. TOC reads at mount time are not
//                              counted.
//   store_requests / _bytes    the same reads when the BlobSource served them from a local blob
//                              file (a pulled or loaded image: BlobSource::IsLocal), so no byte
//                              crossed the network: never part of requests / bytes_fetched
//   prefetch_requests / _bytes the part of requests / bytes_fetched made by the prefetcher
//   cache_hits / cache_misses  per chunk needed by a Read (not read-ahead, not prefetch)
//   zero_chunks                kZeros chunks served without a fetch
//   chunks_fetched             chunks decoded and verified after a fetch
//   digest_mismatches          chunks whose decoded bytes failed verification (never served)
//   timeouts                   Reads that gave up at the mount's time bound
//   errors                     Reads that returned an error (timeouts included)
//   fetch latency              one sample per network request, in a log2 histogram of
//                              microseconds; p50/p99 report the upper bound of the bucket holding
//                              them
//   image_bytes / local_bytes  uncompressed bytes of the image's distinct chunks, and how many
//                              of them are known to be local (set by the prefetcher's scan,
//                              raised as chunks are fetched; a layer served from its whole
//                              verified stream is local in full: MarkLayerLocal; local never
//                              exceeds image)
//   layers                     per layer blob (SetLayers, in manifest order; a blob first named
//                              by a Record/Add call is appended): requests, bytes_fetched,
//                              store_requests, store_bytes, image_bytes, local_bytes. A chunk
//                              shared by several layers counts in the image bytes of the first.
//
// Thread-safety: every method is thread-safe (relaxed atomics for the totals, a mutex for the
// per-layer table; a snapshot is not one instant across counters, each counter is exact).
// Ownership: plain object owned by the mount, which must outlive every ChunkReader/Prefetcher/
// StreamLayer given a pointer to it.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/digest.h"
#include "base/mutex.h"
#include "base/status.h"

namespace hoist {

// Where a BlobSource read was served from.
enum class BlobOrigin { kNetwork, kLocalStore };

struct LayerStatsSnapshot {
  Digest digest;
  uint64_t requests = 0;  // network
  uint64_t bytes_fetched = 0;
  uint64_t store_requests = 0;  // local blob file
  uint64_t store_bytes = 0;
  uint64_t image_bytes = 0;
  uint64_t local_bytes = 0;

  // local_bytes / image_bytes (1.0 for a layer with no content).
  double LocalShare() const;
  friend bool operator==(const LayerStatsSnapshot&, const LayerStatsSnapshot&) = default;
};

struct MountStatsSnapshot {
  uint64_t requests = 0;
  uint64_t bytes_fetched = 0;
  uint64_t store_requests = 0;
  uint64_t store_bytes = 0;
  uint64_t prefetch_requests = 0;
  uint64_t prefetch_bytes = 0;
  uint64_t cache_hits = 0;
  uint64_t cache_misses = 0;
  uint64_t zero_chunks = 0;
  uint64_t chunks_fetched = 0;
  uint64_t digest_mismatches = 0;
  uint64_t timeouts = 0;
  uint64_t errors = 0;
  uint64_t latency_p50_us = 0;
  uint64_t latency_p99_us = 0;
  uint64_t image_bytes = 0;
  uint64_t local_bytes = 0;
  // "none", "scanning", "priority", "all", "done", "stopped" (set by the prefetcher).
  std::string prefetch_state = "none";
  std::vector<LayerStatsSnapshot> layers;

  // local_bytes / image_bytes (1.0 for an empty image).
  double LocalShare() const;
  friend bool operator==(const MountStatsSnapshot&, const MountStatsSnapshot&) = default;
};

// A fixed log2 histogram: bucket i holds values in [2^(i-1), 2^i) (bucket 0 holds 0).
class LatencyHistogram {
 public:
  static constexpr int kBuckets = 40;
  void Record(uint64_t micros);
  // The upper bound of the bucket holding the q-quantile (0 < q <= 1); 0 if empty.
  uint64_t Quantile(double q) const;
  uint64_t count() const;

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
};

class MountStats {
 public:
  // The image's layer blobs, in manifest order (duplicates once), so the per-layer table lists
  // every layer even before it is read. Call before the first Record/Add naming a layer.
  void SetLayers(std::span<const Digest> layers) HOIST_EXCLUDES(mu_);

  // One BlobSource read of `blob` (network or local blob file, see the file comment).
  void RecordFetch(const Digest& blob, BlobOrigin origin, uint64_t bytes,
                   std::chrono::microseconds latency, bool prefetch) HOIST_EXCLUDES(mu_);
  void RecordHit() { hits_.fetch_add(1, std::memory_order_relaxed); }
  void RecordMiss() { misses_.fetch_add(1, std::memory_order_relaxed); }
  void RecordZeroChunk() { zeros_.fetch_add(1, std::memory_order_relaxed); }
  void RecordChunkFetched() { chunks_fetched_.fetch_add(1, std::memory_order_relaxed); }
  void RecordDigestMismatch() { mismatches_.fetch_add(1, std::memory_order_relaxed); }
  void RecordTimeout() { timeouts_.fetch_add(1, std::memory_order_relaxed); }
  void RecordError() { errors_.fetch_add(1, std::memory_order_relaxed); }

  void SetImageBytes(uint64_t bytes) { image_bytes_.store(bytes, std::memory_order_relaxed); }
  void AddLocalBytes(uint64_t bytes) { local_bytes_.fetch_add(bytes, std::memory_order_relaxed); }
  // Per layer (and in the totals for AddLocalBytes).
  void SetLayerImageBytes(const Digest& blob, uint64_t bytes) HOIST_EXCLUDES(mu_);
  void AddLocalBytes(const Digest& blob, uint64_t bytes) HOIST_EXCLUDES(mu_);
  // The whole layer is local (its full stream is on disk and verified): its local bytes are its
  // image bytes from now on, whenever those are set.
  void MarkLayerLocal(const Digest& blob) HOIST_EXCLUDES(mu_);
  void SetPrefetchState(std::string_view state);

  MountStatsSnapshot Snapshot() const HOIST_EXCLUDES(mu_);

  // Adds the counters of `earlier` (a previous daemon of the same mount, from its state file):
  // requests, bytes, store reads, prefetch, hits, misses, zero chunks, chunks fetched,
  // mismatches, timeouts and errors, in all and per layer (by digest). Not the latency
  // histogram, image_bytes or local_bytes (measured anew).
  void Carry(const MountStatsSnapshot& earlier) HOIST_EXCLUDES(mu_);

 private:
  struct Layer {
    Digest digest;
    uint64_t requests = 0, bytes = 0, store_requests = 0, store_bytes = 0, image_bytes = 0,
             local_bytes = 0;
    bool whole = false;  // MarkLayerLocal
  };
  Layer& LayerLocked(const Digest& blob) HOIST_REQUIRES(mu_);

  std::atomic<uint64_t> requests_{0}, bytes_{0}, store_requests_{0}, store_bytes_{0},
      prefetch_requests_{0}, prefetch_bytes_{0}, hits_{0}, misses_{0}, zeros_{0},
      chunks_fetched_{0}, mismatches_{0}, timeouts_{0}, errors_{0}, image_bytes_{0},
      local_bytes_{0};
  std::atomic<int> prefetch_state_{0};  // index into the state names
  LatencyHistogram latency_;
  mutable Mutex mu_;
  std::vector<Layer> layers_ HOIST_GUARDED_BY(mu_);
};

// {"requests":..,"bytes_fetched":..,...,"local_share":0.42,"prefetch_state":"all","layers":
// [{"digest":"sha256:..","requests":..,"bytes_fetched":..,"store_requests":..,"store_bytes":..,
// "image_bytes":..,"local_bytes":..,"local_share":1}]}. The state file (stats_file.h) adds
// "mountpoint", "image", "pid" and "updated_unix" around it.
std::string MountStatsToJson(const MountStatsSnapshot& s);
// Parses MountStatsToJson's output (unknown members ignored). EINVAL with the parse error.
[[nodiscard]] Result<MountStatsSnapshot> MountStatsFromJson(std::string_view json);

}  // namespace hoist
