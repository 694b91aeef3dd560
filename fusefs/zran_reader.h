// ZranReader: lazy reads of unconverted tar+gzip and tar+zstd layers through their checkpoint
// index (LayerIndex::stream_index, index/gzip_index.h), so neither a first read nor a remount
// fetches the whole blob.
//
// A read of a file that is not in the chunk cache:
//   1. finds the file's range of the decompressed stream (its kStream chunks' inner offsets);
//   2. plans the compressed span that covers it (nearest checkpoint at or before its start, up to
//      the first checkpoint at or after its end) and fetches it with ONE Range request through
//      the layer's BlobSource;
//   3. decodes from the checkpoint, up to the span's natural end (capped at max_decode_bytes
//      past the file's end, so a zero-bomb span cannot make a read decode gigabytes);
//   4. checks the file's sha256 against Entry::digest: only then are its bytes served, and Put
//      into the host's chunk cache under that digest, so the next read (in this mount or any
//      later one on the host) is local. Every other file of the layer wholly inside the decoded
//      bytes is checked and cached the same way (the neighbours arrive with the span for free).
// A file whose digest does not match (or whose span fails to decode) fails with EIO, counted as
// a digest mismatch, and nothing of it is served or cached (a lying checkpoint, or a blob that
// is not the one indexed); the layer's checkpoint index is then dropped with ONE warning line,
// so HasIndex/Serves turn false and the caller (StreamLayers) serves that read and every later
// one of the layer from the whole-blob fetch, which the blob digest verifies.
// External windows (a published index, index/published_index.h): when the span's checkpoint
// needs a window that is not in the chunk cache, it is fetched first with ONE Range request of
// the windows blob (its byte range in the table), checked (CheckWindow: size, sha256, exactly
// 32 KiB once unpacked), counted as a fetch of the layer, and Put into the chunk cache under its
// sha256, so a remount or a later read needs no request for it; identical window fetches are
// merged. A window that fails its check is a lying index: nothing is decoded with it, the read
// fails with EIO and the layer's index is dropped as above (one warning; the whole-blob fetch
// serves the layer). A window fetch that fails on the network fails the read only.
// Every file this puts into the cache that was not there counts its size as local for its layer
// (MountStats::AddLocalBytes), as the prefetcher's scan counts such a layer: by distinct file
// digest.
//
// Background completion (the prefetcher, prefetcher.h): SpanBytes says what one fetch of a file
// would cost (for the bandwidth cap, before the request), and Prefetch makes a file (and its
// span's neighbours) local in the calling thread, merged with an identical on-demand fetch,
// counted as prefetch. Both take `want_bytes`: the span is widened, checkpoint by checkpoint, to
// at most that many compressed bytes from its start (never narrower than the file's own span),
// so a pass over a layer of small files fetches it in requests of about that size, each
// overlapping the next by the checkpoint spans of the file the request's end cut.
//
// Which layers: Serves() is true for an entry when its layer has a stream_index that parses
// against the layer's blob (size and digest), the entry has a digest, all its chunks are
// kStream or kZeros, and it is at most max_file_bytes (larger files go to the StreamLayer full
// fetch). A refused index is logged once (one line) and the layer falls back to StreamLayer.
//
// Bounded failure: a waiter gives up at its deadline (ETIMEDOUT); the leader of a fetch runs
// it in its own thread and is bounded by the BlobSource's own timeout.
// Thread-safety: all methods are thread-safe. Ownership: `source`, `cache` (may be null: no
// caching) and `stats` are borrowed and must outlive the reader; entries are borrowed per call.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "base/digest.h"
#include "base/mutex.h"
#include "base/status.h"
#include "fetcher/blob_source.h"
#include "fusefs/mount_stats.h"
#include "fusefs/single_flight.h"
#include "index/chunk_cache.h"
#include "index/gzip_index.h"
#include "index/layer_index.h"

namespace hoist {

struct ZranReaderOptions {
  // Larger files are left to the full fetch (a file is decoded and held whole to verify it).
  uint64_t max_file_bytes = 64ull << 20;
  // Decoded bytes past a file's end that a read may decode for its neighbours.
  uint64_t max_decode_bytes = 32ull << 20;
};

class ZranReader {
 public:
  ZranReader(BlobSource* source, ChunkCache* cache, MountStats* stats,
             ZranReaderOptions options = {});
  ~ZranReader();
  ZranReader(const ZranReader&) = delete;
  ZranReader& operator=(const ZranReader&) = delete;

  // Whether the layer has a usable checkpoint index (parsed on first use).
  bool HasIndex(const LayerIndex& layer);
  // Whether reads of `entry` are served here (see above).
  bool Serves(const LayerIndex& layer, const Entry& entry);

  // File bytes [offset, offset + out.size()), verified. REQUIRES: Serves(layer, entry) and the
  // range inside the file. Errors: EIO (fetch, decode, digest mismatch), ETIMEDOUT.
  [[nodiscard]] Result<size_t> Read(const LayerIndex& layer, const Entry& entry, uint64_t offset,
                                    std::span<char> out,
                                    std::chrono::steady_clock::time_point deadline);

  // The compressed bytes one fetch of `entry` requests (its span); 0 when it needs none (no
  // content, or only holes: such a file is served as zeros and never cached).
  // REQUIRES: Serves(layer, entry). Errors: EIO (no index, a file past the indexed stream).
  [[nodiscard]] Result<uint64_t> SpanBytes(const LayerIndex& layer, const Entry& entry,
                                           uint64_t want_bytes = 0);
  // Makes `entry` local (fetched, verified, in the chunk cache, with its span's neighbours) in
  // the calling thread, or waits for an identical fetch already running. Ok at once when it is
  // cached already or has no content. REQUIRES: Serves(layer, entry). Errors as Read's.
  [[nodiscard]] Status Prefetch(const LayerIndex& layer, const Entry& entry,
                                uint64_t want_bytes = 0);

  // The blob holding the layer's external windows; empty when it has none (or no index).
  Digest WindowsBlob(const LayerIndex& layer);

  // Drops the parsed index of `layer` (parsed again on next use; an index refused by a failed
  // read stays refused): for a layer store whose layer went. Reads running on it keep their copy.
  void Forget(const Digest& layer);

 private:
  using Content = std::shared_ptr<const std::string>;
  std::shared_ptr<const CheckpointIndex> IndexFor(const LayerIndex& layer);
  // Refuses the layer's index from now on (one warning line, the first time).
  void Drop(const LayerIndex& layer, const std::string& why);
  // Fetches the span, decodes, verifies the file (and caches its neighbours).
  Result<Content> Fetch(const LayerIndex& layer, const CheckpointIndex& index, const Entry& entry,
                        bool prefetch, uint64_t want_bytes);
  // The packed window of checkpoint `cp` of an index with external windows, checked: from the
  // chunk cache, or fetched (merged with an identical fetch). EBADMSG: a window that fails its
  // check; EIO: the fetch failed.
  Result<Content> Window(const LayerIndex& layer, const CheckpointIndex& index, size_t cp,
                         bool prefetch);
  Result<Content> FetchWindow(const LayerIndex& layer, const CheckpointIndex& index,
                              const Checkpoint& cp, bool prefetch);
  // Puts a verified file into the cache; true if it was not there (and counts it local).
  bool Cache(const Digest& layer, const Entry& entry, std::string_view content);

  BlobSource* source_;
  ChunkCache* cache_;
  MountStats* stats_;
  const ZranReaderOptions options_;
  Mutex mu_;
  // By layer digest; null: refused (or none), logged once.
  std::map<Digest, std::shared_ptr<const CheckpointIndex>> indexes_ HOIST_GUARDED_BY(mu_);
  SingleFlight<Result<Content>> flights_;
  SingleFlight<Result<Content>> window_flights_;  // by window sha256
};

}  // namespace hoist
