// StreamLayer: the "correct but not lazy" path for unconverted layers (tar, tar+gzip,
// tar+zstd). The whole blob is fetched in the background, in pieces of `piece_bytes` through
// the BlobSource (so each request is bounded like any other range read, and a failed fetch
// resumes where it stopped), decompressed as it streams, and written to an unlinked temporary
// file under `temp_dir` (the mount's scratch directory under the cache dir). Readers wait on a
// condition variable for the range they need.
//
// Storage decision: the decompressed stream goes to a per-mount temporary file, not to the
// chunk cache. The cache is keyed by the sha256 of each body, and stream pieces have no digest of
// their own until the whole blob is verified. The file is gone when the mount ends (a remount
// fetches the layer again). Layers with a checkpoint index are read lazily by range instead
// (fusefs/zran_reader.h); this full fetch is their fallback only.
//
// Verification (nothing unverified is served): bytes of the stream are served when
//   - the whole blob has arrived and its sha256 equals the layer digest, or
//   - the entry being read has arrived completely and the sha256 of its content equals
//     Entry::digest (an index built from a verified stream carries these), which lets a read
//     finish before the rest of the layer arrives.
// A blob whose digest does not match is discarded (the file is truncated, the fetch starts again
// on the next demand) and the waiting reads fail with EIO.
//
// Disk: every byte written to the file is taken from `space` first (an adopted stream brings its
// share). When the decompressed stream would pass it (a decompression bomb, or a layer larger
// than the mount's cache quota) the file is dropped, and the blob is fetched once more and kept
// as it is, compressed, taking its size from `space`: reads then wait until the whole blob is
// verified and decode from the start of the kept blob to what they need (one decoder shared by
// the layer's readers, so reading in stream order costs one pass; a read behind it starts
// again). When even the blob does not fit, the layer's reads fail with EIO and a log line
// (for the mount's life: the blob is not fetched again). So a mount's stream files never use more
// than `space`.
//
// Stream offsets: a kStream chunk's bytes are at `inner_offset` of the decompressed stream; a
// kRaw chunk without a digest (plain tar) at `blob_offset` (for tar the stream is the blob).
//
// Bounded failure: Read waits at most until `deadline` (ETIMEDOUT then; the fetch goes on). A
// failed piece stops the fetch and fails the waiting reads with EIO; the next Read or Start()
// resumes from the last good piece, so no failure is permanent.
//
// Thread-safety: all methods are thread-safe. Ownership: `source` and `stats` are borrowed and
// must outlive the object; entries passed to Read are identified by address (immutable index).
// The destructor stops the fetch thread between pieces (a piece blocked in the network delays it
// until the BlobSource's own timeout).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>

#include "base/digest.h"
#include "base/mutex.h"
#include "base/scoped_fd.h"
#include "base/status.h"
#include "fetcher/blob_source.h"
#include "fusefs/byte_budget.h"
#include "fusefs/mount_stats.h"
#include "index/layer_index.h"

namespace hoist {

struct StreamLayerOptions {
  uint64_t piece_bytes = 4ull << 20;
  // Cap on the decompressed size of one layer (size bombs): EFBIG beyond it.
  uint64_t max_stream_bytes = 64ull << 30;
  // Where the unlinked temporary files go.
  std::string temp_dir = "/tmp";
  // Disk the files may use, shared by a mount's layers (borrowed; null: unbounded). See "Disk".
  ByteBudget* space = nullptr;
};

struct StreamProgress {
  uint64_t blob_size = 0;
  uint64_t blob_bytes = 0;    // compressed bytes fetched and consumed
  uint64_t stream_bytes = 0;  // decompressed bytes available in the file
  bool running = false;
  bool verified = false;
  std::optional<Error> last_error;
};

// Whether layers of this format are served by a StreamLayer.
bool IsStreamFormat(LayerFormat format);

// A layer's whole decompressed stream, already verified (the blob it came from hashed to the
// layer digest), in an unlinked file: what indexing an unconverted layer leaves behind.
struct VerifiedStream {
  std::shared_ptr<ScopedFd> file;
  uint64_t bytes = 0;
  // Its share of the mount's stream space, held while the file is kept (shared like the file).
  std::shared_ptr<BudgetLease> space;
};

class StreamLayer {
 public:
  // REQUIRES: IsStreamFormat(format). `blob_size` 0 means "ask the source".
  StreamLayer(BlobSource* source, Digest blob, uint64_t blob_size, LayerFormat format,
              MountStats* stats, StreamLayerOptions options);
  ~StreamLayer();
  StreamLayer(const StreamLayer&) = delete;
  StreamLayer& operator=(const StreamLayer&) = delete;

  // Starts (or resumes after a failure) the background fetch. No-op while running or verified.
  void Start();

  // Takes `stream` as this layer's whole, verified stream, so nothing is fetched. Ignored (false)
  // once a fetch has started or the layer is verified.
  bool Adopt(VerifiedStream stream);

  // Copies bytes [chunk_stream_offset + in_chunk, + out.size()) once available and verified
  // (see above), waiting until `deadline`. Returns out.size().
  // Errors: ETIMEDOUT at the deadline; EIO for a fetch/decode failure or digest mismatch.
  [[nodiscard]] Result<size_t> Read(const Entry& entry, const Chunk& chunk, uint64_t in_chunk,
                                    std::span<char> out,
                                    std::chrono::steady_clock::time_point deadline);

  StreamProgress Progress() const;
  const Digest& blob() const { return blob_; }

 private:
  class Decoder;
  class BlobCursor;
  void Run();
  // Read() once the kept compressed blob is verified (see "Disk").
  Result<size_t> ReadFromBlob(std::shared_ptr<ScopedFd> file, uint64_t blob_size, uint64_t begin,
                              std::span<char> out);
  // Discards everything fetched so far (after a digest mismatch).
  void ResetLocked() HOIST_REQUIRES(mu_);
  // sha256 of the entry's content read back from the file. REQUIRES: it has all arrived.
  Status VerifyEntry(const Entry& entry, int fd);

  BlobSource* source_;
  const Digest blob_;
  uint64_t blob_size_ HOIST_GUARDED_BY(mu_);  // 0 until known
  const LayerFormat format_;
  MountStats* stats_;
  const StreamLayerOptions options_;

  mutable Mutex mu_;
  CondVar cv_;
  // The stream file. Replaced (never truncated) after a failed verification, so a reader still
  // holding the old one reads what it verified.
  std::shared_ptr<ScopedFd> file_ HOIST_GUARDED_BY(mu_);
  uint64_t blob_bytes_ HOIST_GUARDED_BY(mu_) = 0;
  uint64_t stream_bytes_ HOIST_GUARDED_BY(mu_) = 0;
  bool running_ HOIST_GUARDED_BY(mu_) = false;
  bool verified_ HOIST_GUARDED_BY(mu_) = false;
  bool stop_ HOIST_GUARDED_BY(mu_) = false;
  std::optional<Error> last_error_ HOIST_GUARDED_BY(mu_);
  std::set<const Entry*> verified_entries_ HOIST_GUARDED_BY(mu_);
  BudgetLease space_ HOIST_GUARDED_BY(mu_);  // what file_ takes from `space`
  std::shared_ptr<BudgetLease> adopted_space_ HOIST_GUARDED_BY(mu_);  // an adopted file's share
  bool keep_blob_ HOIST_GUARDED_BY(mu_) = false;  // file_ holds the compressed blob
  bool no_space_ HOIST_GUARDED_BY(mu_) = false;   // not even the blob fits: EIO
  Mutex cursor_mu_;                               // serializes reads from a kept blob
  std::unique_ptr<BlobCursor> cursor_ HOIST_GUARDED_BY(cursor_mu_);
  std::unique_ptr<Decoder> decoder_;  // used by the fetch thread only
  Sha256 sha_;                        // used by the fetch thread only
  std::thread thread_;
};

class ZranReader;

// The StreamLayers of one mount, created on first use, by layer digest. With a ZranReader
// (borrowed, may be null), a layer that has a usable checkpoint index (LayerIndex::stream_index)
// is read lazily by range through it instead, file by file, unless its whole stream is already
// here (adopted from indexing, or fetched); only files it does not serve (too large, no digest)
// or a layer whose index is refused fall back to the full fetch.
class StreamLayers {
 public:
  StreamLayers(BlobSource* source, MountStats* stats, StreamLayerOptions options,
               ZranReader* zran = nullptr);
  ~StreamLayers();

  // The layer's StreamLayer (created if needed, not started).
  StreamLayer* Get(const LayerIndex& layer);
  // Whether the layer is read lazily through its checkpoint index (so nobody should start its
  // full fetch): it has a usable index and no whole stream here.
  bool Lazy(const LayerIndex& layer);
  // Get(layer)->Adopt(stream) for a stream-format layer with a kept stream; false otherwise
  // (and no StreamLayer is created).
  bool Adopt(const LayerIndex& layer, VerifiedStream stream);
  // The reader of layers with a checkpoint index (null: none).
  ZranReader* zran() const { return zran_; }
  // Get(layer)->Start(), then ->Read(...).
  [[nodiscard]] Result<size_t> Read(const LayerIndex& layer, const Entry& entry, const Chunk& chunk,
                                    uint64_t in_chunk, std::span<char> out,
                                    std::chrono::steady_clock::time_point deadline);

 private:
  // The layer's StreamLayer if one was created, else null.
  StreamLayer* Find(const Digest& layer);

  BlobSource* source_;
  MountStats* stats_;
  const StreamLayerOptions options_;
  ZranReader* zran_;
  Mutex mu_;
  std::map<Digest, std::unique_ptr<StreamLayer>> layers_ HOIST_GUARDED_BY(mu_);
};

}  // namespace hoist
