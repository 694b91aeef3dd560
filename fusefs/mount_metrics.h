// The mounts' share of the process's Prometheus metrics (metrics/registry.h): a MountMetrics
// registers one mount (or layer store) for its life, and one collector reports every registered
// mount at each scrape, summed over them:
//
//   hoist_mounts                         gauge    FUSE mounts served by this process
//   hoist_layers                         gauge    layers of those mounts
//   hoist_cache_hits_total               counter  chunks a read needed and found local
//   hoist_cache_misses_total             counter  chunks a read needed and had to fetch
//   hoist_cache_bytes                    gauge    chunk bytes in the host store's cache
//   hoist_cache_quota_bytes              gauge    its quota
//   hoist_errors_total{kind}             counter  read_error (reads that failed, timeouts
//                                                 included), timeout, digest_mismatch
//   hoist_chunks_fetched_total           counter  chunks fetched, decoded and verified
//   hoist_prefetch_requests_total        counter  network requests made by the prefetcher
//   hoist_prefetch_bytes_total           counter  their bytes
//   hoist_image_bytes                    gauge    uncompressed bytes of the images' chunks
//   hoist_local_bytes                    gauge    how many of them are local
//   hoist_prefetch_state{state}          gauge    mounts in each prefetch state (none,
//                                                 scanning, priority, all, done, stopped)
//   hoist_fuse_operation_duration_seconds{op}  histogram  FUSE request handling time by
//                                                 operation (FuseOpTimer; both mount kinds)
//
// The counters come from MountStats (mount_stats.h: what they count, including the counts a
// daemon carries over from the one it replaced); they drop if a mount goes away.
//
// Thread-safety: all of it is thread-safe. A MountMetrics must be destroyed before the
// MountStats, ChunkCache and layer-count function it was given.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include "fusefs/mount_stats.h"
#include "index/chunk_cache.h"

namespace hoist {

class MountMetrics {
 public:
  // `cache` (its quota `quota_bytes`) may be null. `layers` counts the mount's layers (null:
  // the stats' layer table).
  MountMetrics(const MountStats* stats, const ChunkCache* cache, uint64_t quota_bytes,
               std::function<uint64_t()> layers = nullptr);
  ~MountMetrics();
  MountMetrics(const MountMetrics&) = delete;
  MountMetrics& operator=(const MountMetrics&) = delete;

 private:
  uint64_t id_;
};

enum class FuseOp {
  kLookup,
  kGetattr,
  kReadlink,
  kOpen,
  kRead,
  kOpendir,
  kReaddir,
  kReaddirplus,
  kGetxattr,
  kListxattr,
  kCount
};

// Times one FUSE request from construction to destruction into
// hoist_fuse_operation_duration_seconds{op}. Lock-free.
class FuseOpTimer {
 public:
  explicit FuseOpTimer(FuseOp op) : op_(op), start_(std::chrono::steady_clock::now()) {}
  ~FuseOpTimer();
  FuseOpTimer(const FuseOpTimer&) = delete;
  FuseOpTimer& operator=(const FuseOpTimer&) = delete;

 private:
  FuseOp op_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace hoist
