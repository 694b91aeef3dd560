#include "fusefs/layer_loader.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <future>
#include <optional>
#include <thread>

#include "base/digest.h"
#include "base/file_util.h"
#include "base/log.h"
#include "base/parallel.h"
#include "index/estargz.h"
#include "index/gzip_index.h"
#include "index/tar_reader.h"

namespace hoist {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Pulls a blob through the BlobSource in pieces, hashes the compressed bytes and hands out the
// decompressed stream (a ReadCallback for TarReader).
class BlobStreamReader {
 public:
  BlobStreamReader(BlobSource& source, const Digest& blob, uint64_t blob_size, LayerFormat format,
                   const LayerLoaderOptions& options)
      : source_(source), blob_(blob), size_(blob_size), format_(format), options_(options) {
    // One decoder both feeds the tar walk and records the checkpoint index (no second pass).
    if (format_ == LayerFormat::kTarGzip || format_ == LayerFormat::kTarZstd) {
      decoder_ = std::make_unique<IndexingDecoder>(
          format_ == LayerFormat::kTarGzip ? CheckpointCodec::kGzip : CheckpointCodec::kZstd,
          options_.checkpoint_span,
          CheckpointLimits{.max_stream_bytes = options_.max_stream_bytes});
    }
  }
  BlobStreamReader(const BlobStreamReader&) = delete;
  BlobStreamReader& operator=(const BlobStreamReader&) = delete;

  Result<size_t> Read(char* buf, size_t n) {
    if (n == 0) return size_t{0};
    size_t got = 0;
    switch (format_) {
      case LayerFormat::kTar: {
        HOIST_ASSIGN_OR_RETURN(got, ReadRaw(buf, n));
        break;
      }
      case LayerFormat::kTarGzip:
      case LayerFormat::kTarZstd: {
        HOIST_ASSIGN_OR_RETURN(got, ReadCompressed(buf, n));
        break;
      }
      default:
        return Fail(EINVAL, "not an unconverted layer format");
    }
    if (got > 0 && tee_) Tee(std::string_view(buf, got));
    out_bytes_ += got;
    if (out_bytes_ > options_.max_stream_bytes)
      return Fail(EFBIG, "decompressed layer is larger than the cap of " +
                             std::to_string(options_.max_stream_bytes) + " bytes");
    return got;
  }

  // Also writes the decompressed stream to `file` (from its offset 0), counted against
  // options.stream_space. A write failure or the space running out drops the copy (logged); the
  // index is built all the same.
  void TeeTo(std::shared_ptr<ScopedFd> file) {
    tee_ = std::move(file);
    space_ = BudgetLease(options_.stream_space, 0);
  }
  // The checkpoint index, serialized, once Finish() has verified the blob: empty when there is
  // none worth keeping (plain tar, one zstd frame, a stream the decoder could not index).
  std::string TakeCheckpointIndex() {
    if (decoder_ == nullptr || options_.checkpoint_span == 0) return {};
    auto index = decoder_->Finish(blob_, size_);
    if (!index) {
      HOIST_LOG(kInfo) << "layer " << blob_.str() << ": " << index.error().message()
                       << "; it will be fetched whole";
      return {};
    }
    // A blob of a span or two is read whole through its one checkpoint (and its files then
    // stay in the chunk cache); a larger one with no checkpoint past its start (one zstd frame)
    // is left to the full fetch.
    if (index->checkpoints.size() < 2 && size_ > 2 * options_.checkpoint_span) {
      HOIST_LOG(kDebug) << "layer " << blob_.str() << ": "
                        << (format_ == LayerFormat::kTarZstd ? "a single zstd frame"
                                                             : "no deflate block boundary")
                        << ", no checkpoint to start a read from; it will be fetched whole";
      return {};
    }
    return SerializeCheckpointIndex(*index);
  }

  // The copy, once Finish() has verified the blob (null if it was dropped).
  VerifiedStream TakeVerifiedCopy() {
    return VerifiedStream{std::move(tee_), out_bytes_,
                          std::make_shared<BudgetLease>(std::move(space_))};
  }

  // Consumes the rest of the blob, then checks its size and digest.
  Status Finish() {
    std::string sink(1 << 16, '\0');
    while (true) {
      HOIST_ASSIGN_OR_RETURN(size_t n, Read(sink.data(), sink.size()));
      if (n == 0) break;
    }
    while (!AtBlobEnd()) {  // compressed bytes after the end of the stream
      HOIST_RETURN_IF_ERROR(Refill());
      pos_ = piece_.size();
    }
    Digest got = Digest::FromSha256(sha_.Final());
    if (got != blob_) return Fail(EIO, "digest mismatch: the blob hashes to " + got.str());
    return Ok();
  }

 private:
  bool AtBlobEnd() const { return offset_ >= size_ && pos_ >= piece_.size(); }

  void Tee(std::string_view data) {
    if (!space_.TryGrow(data.size())) {
      HOIST_LOG(kInfo) << "layer " << blob_.str() << ": its decompressed stream passes the "
                       << options_.stream_space->total()
                       << " bytes of stream space (cache_size); not kept";
      tee_.reset();  // the only reference: the unlinked file's blocks are freed now
      space_.Reset();
      return;
    }
    if (Status wrote = PWriteAll(tee_->get(), data, out_bytes_, "the layer stream file"); !wrote) {
      HOIST_LOG(kWarning) << "layer " << blob_.str() << ": could not keep its decompressed stream ("
                          << wrote.error().message()
                          << "); the mount will fetch the blob again to serve it";
      tee_.reset();
      space_.Reset();
    }
  }

  // The next piece is fetched (and hashed) on its own thread while this one is decoded, so the
  // fetch and the blob's sha256 overlap the inflate instead of adding to it.
  Status Refill() {
    const uint64_t len = std::min(options_.piece_bytes, size_ - offset_);
    if (!next_.valid()) next_ = FetchAsync(offset_, len);
    Result<std::string> got = next_.get();
    if (!got) return Fail(got.error());
    piece_ = std::move(*got);
    offset_ += len;
    pos_ = 0;
    if (offset_ < size_)
      next_ = FetchAsync(offset_, std::min(options_.piece_bytes, size_ - offset_));
    return Ok();
  }

  // Pieces are hashed in blob order: each is hashed by its own task, and a task starts only
  // after the previous one was collected (get() above).
  std::future<Result<std::string>> FetchAsync(uint64_t offset, uint64_t len) {
    return std::async(std::launch::async, [this, offset, len]() -> Result<std::string> {
      HOIST_ASSIGN_OR_RETURN(std::string piece, source_.ReadAt(blob_, offset, len));
      if (piece.size() != len) return Fail(EIO, "short read of the layer blob");
      sha_.Update(piece);
      return piece;
    });
  }

  // Makes input available; false at the end of the blob.
  Result<bool> Input() {
    if (pos_ < piece_.size()) return true;
    if (offset_ >= size_) return false;
    HOIST_RETURN_IF_ERROR(Refill());
    return true;
  }

  Result<size_t> ReadRaw(char* buf, size_t n) {
    HOIST_ASSIGN_OR_RETURN(bool more, Input());
    if (!more) return size_t{0};
    const size_t k = std::min(n, piece_.size() - pos_);
    std::memcpy(buf, piece_.data() + pos_, k);
    pos_ += k;
    return k;
  }

  Result<size_t> ReadCompressed(char* buf, size_t n) {
    const char* kind = format_ == LayerFormat::kTarGzip ? "gzip" : "zstd";
    while (true) {
      HOIST_ASSIGN_OR_RETURN(bool more, Input());
      if (!more) {
        if (!decoder_->at_member_end())
          return Fail(EBADMSG, std::string(kind) + " stream is truncated");
        return size_t{0};
      }
      HOIST_ASSIGN_OR_RETURN(
          IndexingDecoder::Step step,
          decoder_->Decode(std::string_view(piece_).substr(pos_), std::span<char>(buf, n)));
      pos_ += step.consumed;
      if (step.produced > 0) return step.produced;
      if (step.consumed == 0) return Fail(EBADMSG, std::string(kind) + ": no progress");
    }
  }

  BlobSource& source_;
  const Digest blob_;
  const uint64_t size_;
  const LayerFormat format_;
  const LayerLoaderOptions& options_;
  std::string piece_;
  size_t pos_ = 0;
  uint64_t offset_ = 0;
  uint64_t out_bytes_ = 0;
  Sha256 sha_;
  std::unique_ptr<IndexingDecoder> decoder_;  // gzip and zstd
  std::future<Result<std::string>> next_;     // the piece after piece_, in flight
  std::shared_ptr<ScopedFd> tee_;             // the copy of the stream, while it is being kept
  BudgetLease space_;                         // the stream space tee_ uses
};

// Whether a layer carries a zstd:chunked TOC we can verify (zstd media type for ctr-remote's
// stargz digest annotation, which on a gzip layer means eStargz).
Result<std::optional<ZstdChunkedAnnotations>> ChunkedAnnotations(const Descriptor& layer) {
  auto parsed = ParseZstdChunkedAnnotations(layer.annotations);
  if (!parsed) {
    if (parsed.error().code() == ENOENT) return std::nullopt;
    return Fail(parsed.error());
  }
  const bool has_containers_keys = !parsed->toc_digest.empty() || parsed->toc.has_value();
  if (!has_containers_keys) {
    // Only containerd.io/snapshot/stargz/toc.digest: zstd:chunked from ctr-remote on a zstd
    // layer (eStargz gzip layers are handled before this).
    if (!EndsWith(layer.media_type, "zstd")) return std::nullopt;
  }
  if (parsed->toc_digest.empty() && parsed->toc_json_digest.empty())
    return Fail(EBADMSG, "zstd:chunked annotations carry no TOC digest (manifest-checksum)");
  return parsed;
}

}  // namespace

Status CheckLazyLayer(const Descriptor& layer) {
  if (EndsWith(layer.media_type, "gzip")) {
    auto estargz = ParseEstargzAnnotations(layer.annotations);
    if (estargz) return Ok();
    if (estargz.error().code() != ENOENT) return Fail(estargz.error());
  }
  HOIST_ASSIGN_OR_RETURN(std::optional<ZstdChunkedAnnotations> chunked, ChunkedAnnotations(layer));
  if (chunked) return Ok();
  std::string kind = layer.media_type.empty() ? "no media type" : layer.media_type;
  return Fail(ENOTSUP,
              "layer " + layer.digest.str() + ": " + kind +
                  " without a TOC (not zstd:chunked or eStargz): it can only be read whole");
}

const char* LayerOriginName(LayerOrigin origin) {
  switch (origin) {
    case LayerOrigin::kStore:
      return "store";
    case LayerOrigin::kEstargz:
      return "eStargz";
    case LayerOrigin::kZstdChunked:
      return "zstd:chunked";
    case LayerOrigin::kTarStream:
      return "tar stream";
    case LayerOrigin::kPublished:
      return "published index";
  }
  return "?";
}

Result<LayerFormat> StreamFormatForMediaType(std::string_view media_type) {
  if (EndsWith(media_type, "+gzip") || EndsWith(media_type, ".tar.gzip") ||
      media_type == kMediaTypeDockerLayerGzip)
    return LayerFormat::kTarGzip;
  if (EndsWith(media_type, "+zstd") || EndsWith(media_type, ".tar.zstd"))
    return LayerFormat::kTarZstd;
  if (EndsWith(media_type, ".tar") || EndsWith(media_type, "layer.v1.tar") ||
      EndsWith(media_type, "rootfs.diff.tar"))
    return LayerFormat::kTar;
  return Fail(EINVAL, "unsupported layer media type \"" + std::string(media_type) + "\"");
}

Result<LayerIndex> IndexTarStream(BlobSource& source, const Digest& blob, uint64_t blob_size,
                                  LayerFormat format, const LayerLoaderOptions& options,
                                  VerifiedStream* kept) {
  BlobStreamReader stream(source, blob, blob_size, format, options);
  // Plain tar layers are served lazily by range (kRaw chunks): only compressed ones need it.
  if (kept != nullptr && !options.stream_temp_dir.empty() && format != LayerFormat::kTar) {
    auto file = OpenUnlinkedTempFile(options.stream_temp_dir);
    if (file) {
      stream.TeeTo(std::make_shared<ScopedFd>(std::move(*file)));
    } else {
      HOIST_LOG(kWarning) << "layer " << blob.str() << ": " << file.error().message()
                          << "; the mount will fetch the blob again to serve it";
    }
  }
  TarReader tar([&stream](char* buf, size_t n) { return stream.Read(buf, n); });
  LayerIndex index;
  index.layer_digest = blob;
  index.blob_size = blob_size;
  index.format = format;
  std::string buf(1 << 16, '\0');
  const uint64_t raw_chunk = std::max<uint64_t>(options.raw_chunk_bytes, 4096);
  while (true) {
    HOIST_ASSIGN_OR_RETURN(const TarMember* member, tar.Next());
    if (member == nullptr) break;
    Entry entry = member->entry;
    if (entry.type == EntryType::kRegular && entry.size > 0) {
      // The file is its data segments (one for a plain member; a PAX sparse member's map) with
      // kZeros chunks for the holes between them; the digest covers the expanded content.
      std::vector<SparseSegment> whole_file;
      if (!member->is_sparse)
        whole_file.push_back(SparseSegment{0, member->payload_size, member->payload_offset});
      const std::vector<SparseSegment>& segments = member->is_sparse ? member->sparse : whole_file;
      Sha256 whole;
      Sha256 piece;
      // A hole too large to hash at index time leaves the (optional) file digest empty.
      const bool hash_holes = entry.size - member->payload_size <= (uint64_t{1} << 30);
      uint64_t file_pos = 0;
      auto add_hole = [&](uint64_t end) {
        if (end == file_pos) return;
        Chunk c;
        c.file_offset = file_pos;
        c.size = end - file_pos;
        c.encoding = ChunkEncoding::kZeros;
        entry.chunks.push_back(c);
        static const std::string kZeroBuf(1 << 16, '\0');
        for (uint64_t left = hash_holes ? c.size : 0; left > 0;) {
          const size_t n = static_cast<size_t>(std::min<uint64_t>(left, kZeroBuf.size()));
          whole.Update(std::string_view(kZeroBuf.data(), n));
          left -= n;
        }
        file_pos = end;
      };
      for (const SparseSegment& seg : segments) {
        add_hole(seg.offset);
        uint64_t done = 0;
        uint64_t chunk_start = 0;
        auto close_chunk = [&](uint64_t end) {
          Chunk c;
          c.file_offset = seg.offset + chunk_start;
          c.size = end - chunk_start;
          if (format == LayerFormat::kTar) {
            c.encoding = ChunkEncoding::kRaw;
            c.blob_offset = seg.payload_offset + chunk_start;
            c.blob_length = c.size;
            c.digest = Digest::FromSha256(piece.Final());
            piece.Reset();
          } else {
            c.encoding = ChunkEncoding::kStream;
            c.inner_offset = seg.payload_offset + chunk_start;
          }
          entry.chunks.push_back(std::move(c));
          chunk_start = end;
        };
        while (done < seg.length) {
          const size_t want =
              static_cast<size_t>(std::min<uint64_t>(buf.size(), seg.length - done));
          HOIST_ASSIGN_OR_RETURN(size_t n, tar.ReadPayload(buf.data(), want));
          if (n == 0) return Fail(EBADMSG, "tar member " + entry.path + " is truncated");
          size_t at = 0;
          while (at < n) {
            // For plain tar, cut raw chunks at raw_chunk boundaries.
            size_t take = n - at;
            if (format == LayerFormat::kTar)
              take = static_cast<size_t>(
                  std::min<uint64_t>(take, chunk_start + raw_chunk - (done + at)));
            std::string_view part(buf.data() + at, take);
            whole.Update(part);
            if (format == LayerFormat::kTar) piece.Update(part);
            at += take;
            if (format == LayerFormat::kTar && done + at == chunk_start + raw_chunk)
              close_chunk(done + at);
          }
          done += n;
        }
        if (chunk_start < seg.length) close_chunk(seg.length);
        file_pos = seg.offset + seg.length;
      }
      add_hole(entry.size);
      if (!member->is_sparse || hash_holes) entry.digest = Digest::FromSha256(whole.Final());
    }
    index.entries.push_back(std::move(entry));
  }
  HOIST_RETURN_IF_ERROR(stream.Finish());
  index.stream_index = stream.TakeCheckpointIndex();
  if (kept != nullptr) *kept = stream.TakeVerifiedCopy();
  return index;
}

namespace {

// IndexLayer, taking the TOC's share of `toc_budget` (may be null) before the TOC is read.
Result<LayerIndex> IndexLayerWithin(BlobSource& source, const Descriptor& layer,
                                    const LayerLoaderOptions& options, LayerOrigin* origin,
                                    VerifiedStream* kept, ByteBudget* toc_budget) {
  // The TOC's share, held until this function returns (the TOC is parsed by then). Footers are
  // read with a few small reads first; the one large read is the TOC.
  BudgetLease toc_share;
  BlobRangeReader read = [&](uint64_t offset, uint64_t length) {
    constexpr uint64_t kFooterRead = 4096;
    if (toc_budget != nullptr && length > kFooterRead) {
      toc_share.Reset();
      toc_share = BudgetLease(toc_budget, toc_budget->Take(length + kTocWorkingSet));
    }
    return source.ReadAt(layer.digest, offset, length);
  };
  uint64_t blob_size = layer.size > 0 ? static_cast<uint64_t>(layer.size) : 0;
  if (blob_size == 0) {
    HOIST_ASSIGN_OR_RETURN(blob_size, source.Size(layer.digest));
  }
  // eStargz (a gzip layer whose TOC digest is annotated): lazy, through its TOC.
  if (EndsWith(layer.media_type, "gzip")) {
    auto estargz = ParseEstargzAnnotations(layer.annotations);
    if (estargz) {
      if (origin != nullptr) *origin = LayerOrigin::kEstargz;
      EstargzOptions eopts;
      eopts.limits.toc = options.limits.toc;
      HOIST_ASSIGN_OR_RETURN(EstargzLayer loaded,
                             LoadEstargzLayer(read, blob_size, layer.digest, *estargz, eopts));
      return std::move(loaded.index);
    }
    if (estargz.error().code() != ENOENT) return Fail(estargz.error());
  }
  HOIST_ASSIGN_OR_RETURN(std::optional<ZstdChunkedAnnotations> chunked, ChunkedAnnotations(layer));
  if (chunked) {
    if (origin != nullptr) *origin = LayerOrigin::kZstdChunked;
    HOIST_ASSIGN_OR_RETURN(
        ZstdChunkedLayer loaded,
        LoadZstdChunkedLayer(read, blob_size, layer.digest, *chunked, options.limits));
    return std::move(loaded.index);
  }
  if (origin != nullptr) *origin = LayerOrigin::kTarStream;
  HOIST_ASSIGN_OR_RETURN(LayerFormat format, StreamFormatForMediaType(layer.media_type));
  if (options.published && format != LayerFormat::kTar && layer.size > 0) {
    if (std::optional<LayerIndex> published = options.published(layer, format)) {
      if (origin != nullptr) *origin = LayerOrigin::kPublished;
      return std::move(*published);
    }
  }
  return IndexTarStream(source, layer.digest, blob_size, format, options, kept);
}

}  // namespace

Result<LayerIndex> IndexLayer(BlobSource& source, const Descriptor& layer,
                              const LayerLoaderOptions& options, LayerOrigin* origin,
                              VerifiedStream* kept) {
  ByteBudget toc_budget(options.toc_memory_budget);
  return IndexLayerWithin(source, layer, options, origin, kept, &toc_budget);
}

namespace {

void StoreIndex(Store& store, const LayerIndex& index) {
  if (Status put = store.PutLayerIndex(index); !put) {
    HOIST_LOG(kWarning) << "layer " << index.layer_digest.str()
                        << ": could not store its index: " << put.error().message();
  }
}

}  // namespace

void StoreFreshIndexes(Store& store, const LoadedLayers& loaded) {
  for (size_t i = 0; i < loaded.layers.size(); ++i) {
    if (loaded.origins[i] != LayerOrigin::kStore) StoreIndex(store, *loaded.layers[i]);
  }
}

Result<LoadedLayers> LoadLayers(BlobSource& source, Store* store,
                                std::span<const Descriptor> layers,
                                const LayerLoaderOptions& options) {
  const size_t n = layers.size();
  std::vector<std::optional<Result<std::shared_ptr<const LayerIndex>>>> results(n);
  std::vector<LayerOrigin> origins(n, LayerOrigin::kStore);
  std::vector<VerifiedStream> streams(n);
  ByteBudget toc_budget(options.toc_memory_budget);

  auto load_one = [&](size_t i) -> Result<std::shared_ptr<const LayerIndex>> {
    const Descriptor& d = layers[i];
    if (store != nullptr) {
      auto stored = store->GetLayerIndex(d.digest);
      if (!stored) {
        HOIST_LOG(kWarning) << "layer " << d.digest.str() << ": stored index unusable ("
                            << stored.error().message() << "); indexing it again";
        (void)store->DeleteLayerIndex(d.digest);
      } else if (stored->has_value()) {
        origins[i] = LayerOrigin::kStore;
        return std::make_shared<const LayerIndex>(std::move(**stored));
      }
    }
    HOIST_ASSIGN_OR_RETURN(LayerIndex index, IndexLayerWithin(source, d, options, &origins[i],
                                                              &streams[i], &toc_budget));
    if (store != nullptr && !options.defer_store) StoreIndex(*store, index);
    return std::make_shared<const LayerIndex>(std::move(index));
  };
  // Each layer keeps its own result; the first failure stops new layers, and the error
  // reported is that of the lowest failed layer (below), not whichever failed first.
  (void)ParallelFor(n, static_cast<size_t>(std::max(1, options.parallelism)),
                    [&](size_t i) -> Status {
                      auto r = load_one(i);
                      const bool ok = r.has_value();
                      results[i] = std::move(r);
                      if (!ok) return Fail(EIO, "layer failed");
                      return Ok();
                    });

  LoadedLayers out;
  for (size_t i = 0; i < n; ++i) {
    if (results[i] && !*results[i]) {
      return Fail(results[i]->error().Context(LayerLabel(i, n, layers[i].digest.str())));
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (!results[i]) return Fail(ECANCELED, "layer loading stopped early");
    out.layers.push_back(std::move(**results[i]));
    out.origins.push_back(origins[i]);
    out.streams.push_back(std::move(streams[i]));
  }
  return out;
}

}  // namespace hoist
