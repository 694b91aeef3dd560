// ChunkReader: the read path of a mount. Read(layer, entry, offset, out) returns the bytes of a
// regular file for any offset and length (spanning chunks), every byte verified:
//
//   1. kZeros chunks are served as zeros, with no fetch and no cache lookup.
//   2. Every other chunk is looked up in the host's ChunkCache (one short read txn per lookup;
//      the cache checks its xxh3 and reports a corrupt record as a miss).
//   3. Misses become fetches, merged by SingleFlight on the chunk digest: however many readers
//      wait on a chunk, one fetch runs. Chunks whose blob ranges are adjacent (gap at most
//      max_coalesce_gap, span at most max_request_bytes) are coalesced into ONE range request.
//      For sequential access within a file (a read starting at 0 or where the previous read of
//      that file ended) the next readahead_bytes of the file are fetched too, in requests of
//      their own (dispatched after the read's), so the reader does not wait behind them.
//      A read of a small file that must go to the network also brings the files stored after it
//      in the blob, up to the neighbour window of blob from the file's start, and those just
//      before it, up to neighbor_back_bytes (neighbour read-ahead: programs open related files
//      one after another, in the order the producer wrote them, and a round trip costs more than
//      those bytes). The window can adapt to the round trip (off by default): clamp(min_rtt x
//      neighbor_bytes_per_rtt_ms, neighbor_bytes, neighbor_max_bytes), min_rtt the smallest
//      latency of the last 8 range requests of at most 1 MiB (see ChunkReaderOptions).
//      Groups run on a FetchPool (fetch_threads requests in flight at once).
//   4. Each fetched chunk is decoded (index/chunk_codec.h) and its sha256 checked against the chunk
//      digest; only then is it Put into the cache (a memory queue, committed by the cache's
//      writer thread) and handed to the waiters. A chunk that fails is refetched once, alone
//      (from the registry itself, skipping the mirrors, when a mirror served the bad bytes:
//      one warning names that host, counted in hoist_fetch_errors_total{kind="bad_bytes"}); if
//      it fails again the read fails with EIO and a log line naming the chunk, the blob and the
//      range. Unverified bytes are never served.
//   5. Chunks of unconverted layers (kStream, or kRaw without a digest) are served by the
//      layer's StreamLayer (background full fetch, verified by the blob digest) once their
//      range has arrived.
//
// Bounded failure: a Read gives up with EIO after `timeout` (the mount's -o timeout=) even if
// its fetch is still blocked in the network; the fetch carries on, and its result goes into the
// cache for the next reader. Nothing is remembered about a failure: once the registry is back
// the same Read succeeds. The fetch itself is bounded only by the BlobSource (the registry
// client's request_timeout and retry budget): the mount should configure those at most equal to
// `timeout`, since BlobSource takes no per-call deadline.
//
// Cache discipline: no read txn is held across a fetch (each ChunkCache call takes and ends its
// own); a cache error on lookup is logged and treated as a miss.
//
// Thread-safety: all methods are thread-safe; FUSE threads call Read concurrently.
// Ownership: `source`, `cache`, `stats` and `streams` are borrowed and must outlive the reader.
// LayerIndex/Entry arguments are borrowed for the call only (fetches copy what they need), but
// Entry addresses are used as identities for read-ahead state: entries must not move while the
// mount lives (they don't: indexes are immutable). Destroy the Prefetcher before the reader.
// Errors: EIO for a fetch, decode or verification failure or a timeout (message names the file,
// the offset and the cause); EINVAL for a non-regular entry; EIO for an index whose chunks do
// not cover the file.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/digest.h"
#include "base/mutex.h"
#include "base/status.h"
#include "fetcher/blob_source.h"
#include "fusefs/fetch_pool.h"
#include "fusefs/mount_stats.h"
#include "fusefs/single_flight.h"
#include "index/chunk_cache.h"
#include "index/layer_index.h"

namespace hoist {

class StreamLayers;

struct ChunkReaderOptions {
  // The bound on a Read that must wait for the network (-o timeout=SECONDS, default 30).
  std::chrono::milliseconds timeout{30000};
  // Read-ahead window for sequential reads within a file (0 disables it).
  uint64_t readahead_bytes = 4ull << 20;
  // Neighbour read-ahead window, in blob bytes from the start of a small file read on a miss
  // (0 disables it). Files whose own blob span is this large or larger get none.
  uint64_t neighbor_bytes = 256ull << 10;
  // Adaptive neighbour window: the window reaches
  //   clamp(min_rtt x neighbor_bytes_per_rtt_ms, neighbor_bytes, neighbor_max_bytes)
  // where min_rtt is the smallest latency of the last kRttSamples range requests (a windowed
  // minimum over requests of at most kRttSampleMaxBytes: a request's latency is one round trip
  // plus its transfer time, so the minimum over a few of them is near the round trip). A round trip
  // costs what that many bytes cost to transfer, so the farther the registry, the more neighbours
  // are worth fetching with a miss. Loopback (well under a millisecond) keeps neighbor_bytes. 0
  // (the default since the directory prefetch, which measured better without it: see
  // docs/ARCHITECTURE.md) disables the adaptation.
  uint64_t neighbor_bytes_per_rtt_ms = 0;
  uint64_t neighbor_max_bytes = 4ull << 20;
  // ...and this many blob bytes of the files stored just before it.
  uint64_t neighbor_back_bytes = 32ull << 10;
  // Coalescing: at most this many blob bytes per range request...
  uint64_t max_request_bytes = 8ull << 20;
  // ...and at most this many unused bytes between two chunks fetched in one request.
  uint64_t max_coalesce_gap = 16ull << 10;
  // Range requests in flight at once for on-demand reads.
  int fetch_threads = 8;
  // Cap on a chunk's declared uncompressed size (size bombs): larger chunks fail with EIO.
  uint64_t max_chunk_size = 256ull << 20;
};

using ChunkBytes = std::shared_ptr<const std::string>;

// Groups chunks (sorted by blob_offset here) into coalesced range requests: consecutive chunks
// whose gap is at most `max_gap` and whose total span is at most `max_bytes` (a single chunk
// larger than max_bytes is a group of its own). Chunks with the same digest appear once.
std::vector<std::vector<Chunk>> CoalesceChunks(std::vector<Chunk> chunks, uint64_t max_gap,
                                               uint64_t max_bytes);

// "chunk sha256:... (blob range [a, b))" for messages.
std::string DescribeChunk(const Chunk& chunk);

// Whether a chunk can only be served from the layer's full fetch (kStream; kRaw w/o digest).
bool NeedsStreamFetch(const Chunk& chunk);

// The adaptive neighbour window (ChunkReaderOptions): `min_rtt` zero (no sample yet) gives
// neighbor_bytes.
uint64_t NeighborWindow(const ChunkReaderOptions& options, std::chrono::microseconds min_rtt);

// A windowed minimum of request latencies: the smallest of the last kRttSamples. Thread-safe.
inline constexpr int kRttSamples = 8;
inline constexpr uint64_t kRttSampleMaxBytes = 1ull << 20;
class MinRttWindow {
 public:
  void Add(std::chrono::microseconds latency);
  // Zero before the first sample.
  std::chrono::microseconds Get() const;

 private:
  mutable Mutex mu_;
  int64_t samples_[kRttSamples] HOIST_GUARDED_BY(mu_) = {};
  int count_ HOIST_GUARDED_BY(mu_) = 0;
  std::atomic<int64_t> min_us_{0};
};

class ChunkReader {
 public:
  ChunkReader(BlobSource* source, ChunkCache* cache, MountStats* stats,
              ChunkReaderOptions options = {}, StreamLayers* streams = nullptr);
  // Cancels queued fetches (their waiters get ECANCELED) and joins the fetch threads.
  ~ChunkReader();
  ChunkReader(const ChunkReader&) = delete;
  ChunkReader& operator=(const ChunkReader&) = delete;

  // Reads file bytes [offset, offset + out.size()) into `out`. Returns the number of bytes read:
  // fewer than out.size() only at the end of the file, 0 at or past it.
  [[nodiscard]] Result<size_t> Read(const LayerIndex& layer, const Entry& entry, uint64_t offset,
                                    std::span<char> out);
  // Read with no read-ahead and no neighbours, leaving the file's sequential state alone: for
  // the ELF prefetch, whose header reads must not look like the program's own reads.
  [[nodiscard]] Result<size_t> ReadQuiet(const LayerIndex& layer, const Entry& entry,
                                         uint64_t offset, std::span<char> out);

  // A request latency measured elsewhere (the mount's registry requests before mounting), so the
  // neighbour window fits the network from the first read.
  void NoteLatency(std::chrono::microseconds latency) { rtt_.Add(latency); }
  // The neighbour window now in use (see ChunkReaderOptions).
  uint64_t neighbor_window() const { return NeighborWindow(options_, rtt_.Get()); }

  // For the prefetcher: makes `chunks` (one coalesced group, see CoalesceChunks) local, fetching
  // in the CALLING thread (not the on-demand pool, so prefetch never queues ahead of reads),
  // merged with any identical in-flight fetch. Waits at most `timeout`. Returns the first error.
  [[nodiscard]] Status FetchForPrefetch(const Digest& blob, const std::vector<Chunk>& chunks);

  // For the prefetcher's yield: how long no on-demand fetch has been in flight (zero while one
  // is; very long if there never was one).
  std::chrono::nanoseconds OnDemandIdleFor() const;

  const ChunkReaderOptions& options() const { return options_; }
  ChunkCache* cache() const { return cache_; }
  BlobSource* source() const { return source_; }
  MountStats* stats() const { return stats_; }
  StreamLayers* streams() const { return streams_; }

 private:
  using Flights = SingleFlight<Result<ChunkBytes>>;

  Result<size_t> DoRead(const LayerIndex& layer, const Entry& entry, uint64_t offset,
                        std::span<char> out, bool read_ahead);
  // Fetches one coalesced group (one range request), verifies and publishes each chunk.
  // Returns the first error. REQUIRES: the caller leads the flight of every chunk in `group`.
  Status FetchGroup(const Digest& blob, const std::vector<Chunk>& group, bool prefetch);
  // Refetches one chunk alone after a failed verification; the verified bytes or EIO. `first`
  // says where the failed bytes came from: bytes a mirror served are read again from the
  // registry itself (ReadRoute::skip_mirrors).
  Result<std::string> Refetch(const Digest& blob, const Chunk& chunk, const Error& error,
                              const ReadRoute& first, bool prefetch);
  // EIO for a chunk whose declared sizes exceed max_chunk_size (checked before fetching).
  Status CheckChunkBounds(const Chunk& c) const;
  // Queues the groups on the pool.
  void Dispatch(const Digest& blob, std::vector<Chunk> leaders);
  // Neighbour read-ahead: leads fetches of the chunks of the entries around `entry` in `layer`
  // that lie within neighbor_back_bytes before and neighbor_bytes after its first chunk.
  void AddNeighbors(const LayerIndex& layer, const Entry& entry, std::vector<Chunk>& leaders);
  // Read-ahead decision for `entry`: returns the [begin, end) file range to fetch ahead.
  std::pair<uint64_t, uint64_t> ReadaheadWindow(const Entry& entry, uint64_t offset, uint64_t end);

  BlobSource* source_;
  ChunkCache* cache_;
  MountStats* stats_;
  const ChunkReaderOptions options_;
  StreamLayers* streams_;

  Flights flights_;
  MinRttWindow rtt_;

  // On-demand request groups queued or running, and when the count last changed (steady clock).
  std::atomic<int> on_demand_in_flight_{0};
  std::atomic<int64_t> on_demand_changed_ns_{0};
  void NoteOnDemand(int delta);

  struct SeqState {
    uint64_t next_offset = 0;      // where the last read of the file ended
    uint64_t readahead_until = 0;  // file offset read-ahead was issued up to
  };
  Mutex seq_mu_;
  std::unordered_map<const Entry*, SeqState> seq_ HOIST_GUARDED_BY(seq_mu_);

  FetchPool pool_;  // last: its threads stop first
};

}  // namespace hoist
