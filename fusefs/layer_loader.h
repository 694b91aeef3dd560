// LayerLoader: turns the layer descriptors of an image manifest into LayerIndexes, every layer in
// parallel, before anything is mounted.
//
// Per layer, in this order:
//   1. The host store (LMDB): an index stored under the layer digest is used as it is, so a
//      remount (or another image sharing the layer) fetches and parses nothing. A corrupt record
//      is deleted and the layer is indexed again.
//   2. eStargz: a gzip layer annotated containerd.io/snapshot/stargz/toc.digest. The footer and
//      the TOC member are read with two Range GETs and the TOC JSON is checked against the
//      annotation before the index is accepted (estargz.h); chunks are kGzipMember.
//   3. zstd:chunked (annotations under io.github.containers.* or io.containers.*, or ctr-remote's
//      containerd.io/snapshot/stargz/toc.digest on a zstd layer): the footer is read with a Range
//      GET of the blob's last bytes (both footer versions; positions from the annotations win),
//      then the TOC, whose digest is checked against the manifest annotation BEFORE the index is
//      accepted (zstd_chunked.h).
//   4. Anything else that is a tar, tar+gzip or tar+zstd layer (no annotations): the whole blob is
//   streamed once through the BlobSource in
//      pieces (the next piece fetched and hashed on a second thread while the current one is
//      decoded), decompressed, and walked as tar; the blob's sha256 must equal the layer digest or
//      the index is rejected (EIO). Plain tar gets kRaw chunks of `raw_chunk_bytes` with their
//      own sha256, so its reads are lazy Range reads; compressed layers get one kStream chunk per
//      file and Entry::digest set, and the same decoding pass records a checkpoint index
//      (LayerIndex::stream_index, index/gzip_index.h) every `checkpoint_span` compressed bytes,
//      so the mount reads each file by range (ZranReader); without one (a single zstd frame)
//      the layer is served by StreamLayer after a background full fetch.
//      Before that, a tar+gzip / tar+zstd layer asks options.published for an index published
//      next to the image (`hoist index`); one it gives is used instead of the blob stream.
//   Every index built in 2, 3 or 4 is stored (a store error is logged, not fatal), unless
//   options.defer_store leaves that to the caller (StoreFreshIndexes).
//
// Memory: LoadLayers indexes up to `parallelism` layers at once, but their TOCs together hold
// at most toc_memory_budget (plus kTocWorkingSet each): a layer waits for its share before it
// reads its TOC. One JSON string of a TOC is capped as it is read (toc_json.h).
//
// Errors: the first failing layer's error, with "layer N (sha256:...)" context; EINVAL for a
// layer media type that is neither tar, gzip nor zstd; errnos as zstd_chunked.h / tar_reader.h
// / BlobSource give them otherwise.
// Thread-safety: LoadLayers runs its own worker threads and joins them before returning; the
// source and store are used concurrently (both are thread-safe). Ownership: borrowed arguments
// are used for the call only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "fetcher/blob_source.h"
#include "fetcher/manifest.h"
#include "fusefs/byte_budget.h"
#include "fusefs/stream_layer.h"
#include "index/gzip_index.h"
#include "index/layer_index.h"
#include "index/store.h"
#include "index/zstd_chunked.h"

namespace hoist {

enum class LayerOrigin { kStore, kZstdChunked, kEstargz, kTarStream, kPublished };
const char* LayerOriginName(LayerOrigin origin);

struct LayerLoaderOptions {
  int parallelism = 8;
  ZstdChunkedLimits limits;
  // Plain tar layers: file contents are cut into kRaw chunks of this size.
  uint64_t raw_chunk_bytes = 4ull << 20;
  // Unconverted layers are read in pieces of this size.
  uint64_t piece_bytes = 4ull << 20;
  // tar+gzip / tar+zstd: compressed bytes between the checkpoints recorded while the blob is
  // indexed (LayerIndex::stream_index, index/gzip_index.h); 0 records none.
  uint64_t checkpoint_span = kDefaultCheckpointSpan;
  // Cap on the decompressed size of an unconverted layer (EFBIG beyond it).
  uint64_t max_stream_bytes = 64ull << 30;
  // Leave freshly built indexes unstored (the caller stores them later, e.g. once the mount is
  // ready, with StoreFreshIndexes): encoding and committing 100k entries is ~10% of a cold mount.
  bool defer_store = false;
  // When set, indexing an unconverted tar+gzip or tar+zstd layer keeps its decompressed stream
  // in an unlinked file in this directory (LoadedLayers::streams), so the mount serves the
  // layer without fetching the blob a second time. A failure to write it only loses that.
  std::string stream_temp_dir;
  // Disk the kept streams may use in all (borrowed; null: unbounded). A stream that would pass
  // it is dropped as soon as it would (its file closed, so its blocks are freed at once) and the
  // mount serves that layer as if nothing had been kept. Each kept stream holds its share
  // (VerifiedStream::space) until its file is closed.
  ByteBudget* stream_space = nullptr;
  // TOC bytes that the layers indexed at once may hold in all: an eStargz or zstd:chunked layer
  // takes its compressed TOC's size plus kTocWorkingSet before it reads the TOC, and gives them
  // back once the TOC is parsed; a TOC over the whole budget waits until it is all free.
  uint64_t toc_memory_budget = 256ull << 20;
  // An unconverted tar+gzip / tar+zstd layer (step 4) first asks this for a published index
  // (fusefs/published_indexes.h: already checked against the layer); one given is used as it
  // is (origin kPublished, no blob read, no stream kept). Unset or nullopt: the whole blob is
  // streamed as without it. Called from the loader's worker threads.
  std::function<std::optional<LayerIndex>(const Descriptor& layer, LayerFormat format)> published;
};

// What parsing one TOC holds besides its compressed bytes: the decoder's pieces (4 x 256 KiB),
// the parser's string buffer (at most TocLimits::max_token_buffer plus a piece, grown by half),
// eStargz's 256 KiB text piece, and the decoders' own state.
inline constexpr uint64_t kTocWorkingSet = 4ull << 20;

struct LoadedLayers {
  std::vector<std::shared_ptr<const LayerIndex>> layers;  // lowest first, as in the manifest
  std::vector<LayerOrigin> origins;                       // parallel to layers
  // Parallel to layers: the verified stream an unconverted layer was indexed from (see
  // LayerLoaderOptions::stream_temp_dir); empty otherwise.
  std::vector<VerifiedStream> streams;
};

// Stores every index of `loaded` that did not come from the store (errors are logged, not
// returned: the store is a cache). For LayerLoaderOptions::defer_store.
void StoreFreshIndexes(Store& store, const LoadedLayers& loaded);

// Whether `layer` can be served lazily through a TOC: eStargz (a gzip layer with the
// containerd.io/snapshot/stargz/toc.digest annotation) or zstd:chunked (annotations as in step 3).
// Ok, or ENOTSUP with a one-line reason ("layer sha256:...: plain tar+gzip without a TOC: it can
// only be read whole"), or the annotation parser's error (EBADMSG) for lying annotations.
[[nodiscard]] Status CheckLazyLayer(const Descriptor& layer);

// The unconverted format a media type names (tar / tar+gzip / tar+zstd), EINVAL otherwise.
[[nodiscard]] Result<LayerFormat> StreamFormatForMediaType(std::string_view media_type);

// Indexes one layer without the store (steps 2 and 3 above). `kept` (may be null) receives the
// verified stream of an unconverted gzip/zstd layer when options.stream_temp_dir is set.
[[nodiscard]] Result<LayerIndex> IndexLayer(BlobSource& source, const Descriptor& layer,
                                            const LayerLoaderOptions& options, LayerOrigin* origin,
                                            VerifiedStream* kept = nullptr);

// Indexes an unconverted layer by streaming the whole blob (step 3); `kept` as for IndexLayer.
[[nodiscard]] Result<LayerIndex> IndexTarStream(BlobSource& source, const Digest& blob,
                                                uint64_t blob_size, LayerFormat format,
                                                const LayerLoaderOptions& options,
                                                VerifiedStream* kept = nullptr);

// All layers, in parallel, through the store (`store` may be null: no caching).
[[nodiscard]] Result<LoadedLayers> LoadLayers(BlobSource& source, Store* store,
                                              std::span<const Descriptor> layers,
                                              const LayerLoaderOptions& options = {});

}  // namespace hoist
