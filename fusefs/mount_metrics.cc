#include "fusefs/mount_metrics.h"

#include <array>
#include <map>
#include <set>
#include <string>

#include "base/log.h"
#include "base/mutex.h"
#include "metrics/registry.h"

namespace hoist {
namespace {

constexpr std::array<const char*, static_cast<size_t>(FuseOp::kCount)> kOpNames = {
    "lookup",  "getattr", "readlink",    "open",     "read",
    "opendir", "readdir", "readdirplus", "getxattr", "listxattr"};
constexpr std::array<const char*, 6> kPrefetchStates = {"none", "scanning", "priority",
                                                        "all",  "done",     "stopped"};

struct Registered {
  const MountStats* stats;
  const ChunkCache* cache;
  uint64_t quota;
  std::function<uint64_t()> layers;
};

struct Mounts {
  Mutex mu;
  std::map<uint64_t, Registered> by_id HOIST_GUARDED_BY(mu);
  uint64_t next HOIST_GUARDED_BY(mu) = 1;
};

Mounts& AllMounts() {
  static Mounts* m = new Mounts();  // never destroyed: scrapes may run until exit
  return *m;
}

using metrics::Type;

void Collect(metrics::Exposition& out) {
  Mounts& all = AllMounts();
  MountStatsSnapshot sum;
  uint64_t mounts = 0, layers = 0, cache_bytes = 0, quota = 0;
  std::map<std::string, uint64_t> states;
  std::set<const ChunkCache*> caches;
  {
    MutexLock lock(all.mu);
    for (const auto& [id, r] : all.by_id) {
      const MountStatsSnapshot s = r.stats->Snapshot();
      ++mounts;
      layers += r.layers ? r.layers() : s.layers.size();
      sum.cache_hits += s.cache_hits;
      sum.cache_misses += s.cache_misses;
      sum.errors += s.errors;
      sum.timeouts += s.timeouts;
      sum.digest_mismatches += s.digest_mismatches;
      sum.chunks_fetched += s.chunks_fetched;
      sum.prefetch_requests += s.prefetch_requests;
      sum.prefetch_bytes += s.prefetch_bytes;
      sum.image_bytes += s.image_bytes;
      sum.local_bytes += s.local_bytes;
      ++states[s.prefetch_state];
      if (r.cache != nullptr && caches.insert(r.cache).second) {
        quota += r.quota;
        if (auto cs = r.cache->Stats()) {
          cache_bytes += cs->chunk_bytes;
        } else {
          HOIST_LOG(kWarning) << "metrics: reading the cache's size: " << cs.error().message();
        }
      }
    }
  }
  auto one = [&](const char* name, const char* help, Type type, uint64_t value) {
    out.Header(name, help, type);
    out.Sample(name, static_cast<double>(value));
  };
  one("hoist_mounts", "FUSE mounts served by this process.", Type::kGauge, mounts);
  one("hoist_layers", "Layers of the mounts served by this process.", Type::kGauge, layers);
  one("hoist_cache_hits_total", "Chunks a read needed that were local (cache hits).",
      Type::kCounter, sum.cache_hits);
  one("hoist_cache_misses_total", "Chunks a read needed that had to be fetched (cache misses).",
      Type::kCounter, sum.cache_misses);
  one("hoist_cache_bytes", "Chunk bytes stored in the host store's chunk cache.", Type::kGauge,
      cache_bytes);
  one("hoist_cache_quota_bytes", "The chunk cache's byte quota.", Type::kGauge, quota);
  out.Header("hoist_errors_total",
             "Read errors by kind: read_error (reads that failed, timeouts included), timeout, "
             "digest_mismatch.",
             Type::kCounter);
  using L = std::pair<std::string_view, std::string_view>;
  const std::pair<const char*, uint64_t> kinds[] = {{"digest_mismatch", sum.digest_mismatches},
                                                    {"read_error", sum.errors},
                                                    {"timeout", sum.timeouts}};
  for (const auto& [kind, value] : kinds) {
    const L label[] = {{"kind", kind}};
    out.Sample("hoist_errors_total", label, static_cast<double>(value));
  }
  one("hoist_chunks_fetched_total", "Chunks fetched, decoded and verified.", Type::kCounter,
      sum.chunks_fetched);
  one("hoist_prefetch_requests_total", "Network requests made by the prefetcher.", Type::kCounter,
      sum.prefetch_requests);
  one("hoist_prefetch_bytes_total", "Bytes fetched by the prefetcher.", Type::kCounter,
      sum.prefetch_bytes);
  one("hoist_image_bytes", "Uncompressed bytes of the mounted images' chunks.", Type::kGauge,
      sum.image_bytes);
  one("hoist_local_bytes", "Uncompressed bytes of the mounted images' chunks that are local.",
      Type::kGauge, sum.local_bytes);
  out.Header("hoist_prefetch_state", "Mounts in each prefetch state.", Type::kGauge);
  for (const char* state : kPrefetchStates) {
    const L label[] = {{"state", state}};
    out.Sample("hoist_prefetch_state", label, static_cast<double>(states[state]));
  }
}

// Registers the collector once, outside any lock of this file (Render holds the registry's lock
// while it calls Collect, which takes AllMounts().mu: always in that order).
void EnsureCollector() {
  static const bool registered = [] {
    metrics::Global().AddCollector(Collect);
    return true;
  }();
  (void)registered;
}

std::array<metrics::Histogram*, static_cast<size_t>(FuseOp::kCount)>& OpHistograms() {
  static auto* histograms = [] {
    auto* h = new std::array<metrics::Histogram*, static_cast<size_t>(FuseOp::kCount)>();
    auto& family = metrics::Global().Histogram("hoist_fuse_operation_duration_seconds",
                                               "Time to handle a FUSE request, by operation.",
                                               {"op"}, metrics::FuseLatencyBounds());
    for (size_t i = 0; i < h->size(); ++i) (*h)[i] = &family.With({kOpNames[i]});
    return h;
  }();
  return *histograms;
}

}  // namespace

MountMetrics::MountMetrics(const MountStats* stats, const ChunkCache* cache, uint64_t quota_bytes,
                           std::function<uint64_t()> layers) {
  EnsureCollector();
  (void)OpHistograms();  // the FUSE families are listed from the first scrape on
  Mounts& all = AllMounts();
  MutexLock lock(all.mu);
  id_ = all.next++;
  all.by_id.emplace(id_, Registered{stats, cache, quota_bytes, std::move(layers)});
}

MountMetrics::~MountMetrics() {
  Mounts& all = AllMounts();
  MutexLock lock(all.mu);
  all.by_id.erase(id_);
}

FuseOpTimer::~FuseOpTimer() {
  OpHistograms()[static_cast<size_t>(op_)]->Observe(std::chrono::steady_clock::now() - start_);
}

}  // namespace hoist
