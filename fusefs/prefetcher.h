// Prefetcher: completes an image in the background after mount, so the mount keeps working
// offline. One thread, in this order:
//   1. scan: every distinct chunk of every layer is checked against the cache (Contains, one
//      short read txn each) to set MountStats image_bytes / local_bytes;
//   2. priority: the chunks of entries marked Entry::prefetch (the TOC marks that
//      `--prefetch-list` writes), layer by layer, coalesced, with up to priority_requests
//      requests in flight (a start reads these files right away; `--prefetch-list` puts them
//      at the front of the layer, so they coalesce into a few large ranges);
//   3. all (mode kAll only): every other chunk of the image, in blob order per layer, one
//      request at a time (on-demand reads keep most of the bandwidth), starting no earlier than
//      options.start_delay after Start().
// Unconverted (stream) layers read lazily through a checkpoint index (StreamLayers::Lazy,
// zran_reader.h) are completed file by file: each pass walks the layer in stream order and, for
// every file not in the cache yet (marked files only in the priority pass), takes the span's
// compressed bytes from the token bucket, yields to on-demand reads (whole-image pass), and has
// ZranReader::Prefetch fetch the span (widened to about max_request_bytes of blob), verify the
// file and cache it with every neighbour wholly inside it, so a layer of small files costs about
// one request per max_request_bytes, in blob order.
// The scan counts such a layer by distinct file digest (a file is local once it is cached).
// Such a layer whose blob the source holds locally (BlobSource::IsLocal: a pulled image) is
// neither completed nor fetched whole: it is on this host already.
// Other unconverted layers, and a lazy one holding a file the ZranReader does not serve (over its
// size cap, no digest), are fetched whole (StreamLayer::Start) in mode kAll, and in mode
// kPriority when they hold a marked entry; that full fetch is not bandwidth-capped (reads may be
// waiting on it).
// Missing chunks are coalesced like on-demand ones (CoalesceChunks) and fetched through
// ChunkReader::FetchForPrefetch in the prefetcher's own thread, so they share single-flight with
// on-demand reads but never queue on the on-demand pool. Before each request the prefetcher takes
// its blob bytes from a token bucket (bandwidth_bytes_per_sec; 0 = unlimited). Groups that fail
// are retried in a later pass after `retry_delay`, until everything is local or Stop().
//
// Stop() (and the destructor) returns promptly: the thread is woken from any wait; a request
// already in the BlobSource finishes first (bounded by the source's own timeout).
//
// Thread-safety: all methods are thread-safe. Ownership: the reader, its cache/stats/streams and
// the layers (shared_ptr) must outlive the prefetcher; destroy it before the ChunkReader.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "base/status.h"
#include "fusefs/chunk_reader.h"
#include "fusefs/merged_view.h"
#include "index/layer_index.h"

namespace hoist {

enum class PrefetchMode { kNone, kPriority, kAll };

// "none" | "priority" | "all". EINVAL otherwise.
[[nodiscard]] Result<PrefetchMode> ParsePrefetchMode(std::string_view text);

struct PrefetcherOptions {
  PrefetchMode mode = PrefetchMode::kAll;
  uint64_t bandwidth_bytes_per_sec = 0;  // 0: no cap
  // Blob bytes per prefetch request (coalescing limit).
  uint64_t max_request_bytes = 4ull << 20;
  // Requests in flight during the priority pass (each on its own short-lived thread).
  int priority_requests = 4;
  // FetchFiles (a trace's files, scattered over the layers when the image was not built with
  // the trace): requests in flight, and the unused blob bytes one request may span between two
  // wanted chunks. A gap costs bandwidth once; a second request costs a round trip (128 KiB is
  // 5 ms at 200 Mbit/s against a 40 ms RTT).
  int trace_requests = 16;
  uint64_t trace_coalesce_gap = 128ull << 10;
  std::chrono::milliseconds retry_delay{5000};
  // The whole-image pass yields to on-demand reads: before each request it waits until no
  // on-demand fetch has been in flight for `yield_quiet`, but at most `yield_max` (so a
  // workload that reads all the time cannot starve it). 0 disables the yield.
  std::chrono::milliseconds yield_quiet{20};
  std::chrono::milliseconds yield_max{500};
  // The whole-image pass starts no earlier than this after Start() (the priority pass is not
  // delayed): a container start right after a pull then reads without the whole-image pass
  // competing for the CPU, the registry and single-flight (hoist-snapshotter's layer store).
  std::chrono::milliseconds start_delay{0};
};

struct PrefetchProgress {
  uint64_t image_bytes = 0;
  uint64_t local_bytes = 0;
  uint64_t failed_groups = 0;  // in the last pass
  bool done = false;           // everything the mode asks for is local (or mode none)
};

// A token bucket of bytes per second, allowed to go into debt by one request: Acquire(n) waits
// until the balance is non-negative, then takes n. Burst: one second of rate.
class TokenBucket {
 public:
  explicit TokenBucket(uint64_t bytes_per_sec);
  // `mu` guards `stopped`; `cv` is notified when it changes.
  // Returns false (taking nothing) if `stopped` is or becomes true while waiting.
  bool Acquire(uint64_t bytes, Mutex& mu, CondVar& cv, const bool& stopped) HOIST_REQUIRES(mu);

 private:
  void Refill();
  const double rate_;
  double balance_;
  std::chrono::steady_clock::time_point last_;
};

class Prefetcher {
 public:
  Prefetcher(ChunkReader* reader, std::vector<std::shared_ptr<const LayerIndex>> layers,
             PrefetcherOptions options);
  ~Prefetcher();  // Stop()
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  void Start();  // starts the thread (once)
  void Stop();   // prompt; idempotent

  // Makes the chunks of `files` local now, on the calling thread, at full speed
  // (trace_requests in flight, no yielding; the bandwidth cap applies): the files a
  // published access trace says a start reads (trace_prefetch.h). Per layer, the missing chunks
  // are coalesced and the groups go in the order of the earliest file they hold. Runs alongside
  // the background passes (single-flight merges what both want). Returns the number of groups
  // that failed (they are left to the background passes and to on-demand reads). Thread-safe;
  // returns early on Stop().
  uint64_t FetchFiles(const std::vector<FileRef>& files);

  PrefetchProgress Progress() const;
  // Waits until done, stopped, or the timeout. True if done.
  bool WaitDone(std::chrono::milliseconds timeout) const;

 private:
  void Run();
  // One pass over the missing chunks of marked entries (marked_only) or of all entries. Returns
  // the number of groups that failed. Stops early if stopped.
  uint64_t Pass(bool marked_only);
  // Fetches `groups` of `layer` with up to `parallel` requests in flight, each after
  // YieldToReads if `yield`; returns the failures.
  uint64_t FetchGroups(const Digest& layer, const std::vector<std::vector<Chunk>>& groups,
                       int parallel, bool yield);
  // One group through the bucket and FetchForPrefetch; a failure is counted in *failed and
  // logged. ECANCELED only when stopped.
  Status FetchGroup(const Digest& layer, const std::vector<Chunk>& group,
                    std::atomic<uint64_t>* failed);
  // One pass over a layer read through its checkpoint index (see above): the missing files
  // (marked ones only if marked_only). Returns the number of files that failed.
  uint64_t SpanPass(const LayerIndex& layer, bool marked_only);
  // Whether `layer` is read through its checkpoint index and every file with content is served
  // that way (so SpanPass can complete it).
  bool CompletedBySpans(const LayerIndex& layer) const;
  // Whether `layer` is read through its checkpoint index from a local blob file (a pulled image):
  // all of it is on this host, so no pass copies it into the cache.
  bool LazyFromLocalBlob(const LayerIndex& layer) const;
  // Waits as PrefetcherOptions::yield_quiet says; false if stopped meanwhile.
  bool YieldToReads();
  void Scan();
  bool Sleep(std::chrono::milliseconds d) HOIST_EXCLUDES(mu_);  // false if stopped

  ChunkReader* reader_;
  const std::vector<std::shared_ptr<const LayerIndex>> layers_;
  const PrefetcherOptions options_;

  mutable Mutex mu_;
  mutable CondVar cv_;
  bool stop_ HOIST_GUARDED_BY(mu_) = false;
  bool done_ HOIST_GUARDED_BY(mu_) = false;
  bool started_ HOIST_GUARDED_BY(mu_) = false;
  uint64_t failed_groups_ HOIST_GUARDED_BY(mu_) = 0;
  TokenBucket bucket_ HOIST_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point started_at_;  // set by Start, before the thread
  std::thread thread_;
};

}  // namespace hoist
