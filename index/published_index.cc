#include "index/published_index.h"

#include <zstd.h>

#include "index/gzip_index.h"
#include "index/layer_index_codec.h"
#include "index/tar_path.h"

namespace hoist {
namespace {

std::unexpected<Error> Refuse(const std::string& why) {
  return Fail(EBADMSG, "published layer index: " + why);
}

Status CheckEntries(const LayerIndex& index, uint64_t stream_size,
                    const PublishedIndexLimits& limits) {
  if (index.entries.size() > limits.max_entries)
    return Refuse(std::to_string(index.entries.size()) + " entries, more than the cap of " +
                  std::to_string(limits.max_entries));
  for (const Entry& e : index.entries) {
    if (!e.path.empty()) {
      auto clean = CleanEntryPath(e.path);
      if (!clean || *clean != e.path) return Refuse("entry " + QuoteName(e.path) + " is not clean");
    }
    if (e.type == EntryType::kHardlink) {
      auto clean = CleanEntryPath(e.link_name);
      if (!clean || *clean != e.link_name || clean->empty())
        return Refuse("hardlink " + QuoteName(e.path) + " names an unclean target");
    }
    if (e.type != EntryType::kRegular) {
      if (!e.chunks.empty() || e.size != 0)
        return Refuse("entry " + QuoteName(e.path) + " is not a file but has content");
      continue;
    }
    if (e.size == 0) {
      if (!e.chunks.empty()) return Refuse("empty file " + QuoteName(e.path) + " has chunks");
      continue;
    }
    if (e.digest.empty()) return Refuse("file " + QuoteName(e.path) + " has no digest");
    uint64_t at = 0;
    for (const Chunk& c : e.chunks) {
      if (c.file_offset != at || c.size == 0 || c.size > e.size - at)
        return Refuse("file " + QuoteName(e.path) + ": chunks do not cover it in order");
      if (c.encoding == ChunkEncoding::kStream) {
        if (c.inner_offset > stream_size || c.size > stream_size - c.inner_offset)
          return Refuse("file " + QuoteName(e.path) + " lies outside the stream");
      } else if (c.encoding != ChunkEncoding::kZeros) {
        return Refuse("file " + QuoteName(e.path) + " has a chunk that is not a stream range");
      }
      at += c.size;
    }
    if (at != e.size) return Refuse("file " + QuoteName(e.path) + ": chunks do not cover it");
  }
  return Ok();
}

}  // namespace

std::string EncodePublishedLayerIndex(const LayerIndex& index, int level) {
  const std::string record = EncodeLayerIndex(index);
  std::string out(ZSTD_compressBound(record.size()), '\0');
  // ZSTD_compress writes the content size into the frame header.
  const size_t n = ZSTD_compress(out.data(), out.size(), record.data(), record.size(), level);
  if (ZSTD_isError(n)) return {};  // only for a bad level; the caller's REQUIRES
  out.resize(n);
  return out;
}

Result<PublishedLayerBlobs> PublishLayerIndex(const LayerIndex& index, int level) {
  HOIST_ASSIGN_OR_RETURN(CheckpointIndex checkpoints,
                         ParseCheckpointIndex(index.stream_index, index.blob_size));
  SplitIndex split = SplitWindows(checkpoints);
  LayerIndex table = index;
  table.stream_index = SerializeCheckpointIndex(split.index);
  return PublishedLayerBlobs{EncodePublishedLayerIndex(table, level), std::move(split.windows)};
}

Result<LayerIndex> DecodePublishedLayerIndex(std::string_view blob, const Digest& layer_digest,
                                             uint64_t layer_size, LayerFormat format,
                                             const PublishedIndexLimits& limits) {
  if (blob.size() > limits.max_blob_bytes)
    return Refuse("blob of " + std::to_string(blob.size()) + " bytes, more than the cap of " +
                  std::to_string(limits.max_blob_bytes));
  const size_t frame = ZSTD_findFrameCompressedSize(blob.data(), blob.size());
  if (ZSTD_isError(frame)) return Refuse("not a zstd frame");
  if (frame != blob.size()) return Refuse("bytes after the zstd frame");
  const unsigned long long declared = ZSTD_getFrameContentSize(blob.data(), blob.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN)
    return Refuse("the zstd frame declares no content size");
  if (declared > limits.max_record_bytes)
    return Refuse("record of " + std::to_string(declared) + " bytes, more than the cap of " +
                  std::to_string(limits.max_record_bytes));
  std::string record(static_cast<size_t>(declared), '\0');
  const size_t got = ZSTD_decompress(record.data(), record.size(), blob.data(), blob.size());
  if (ZSTD_isError(got) || got != record.size())
    return Refuse("the zstd frame does not decode to its declared size");
  auto decoded = DecodeLayerIndex(record);
  if (!decoded) return Refuse(decoded.error().message());
  LayerIndex& index = *decoded;
  if (index.layer_digest != layer_digest)
    return Refuse("indexes layer " + index.layer_digest.str() + ", not " + layer_digest.str());
  if (index.blob_size != layer_size)
    return Refuse("indexes a blob of " + std::to_string(index.blob_size) +
                  " bytes, the layer has " + std::to_string(layer_size));
  if (index.format != format) return Refuse("the layer format is not the manifest's");
  if (format != LayerFormat::kTarGzip && format != LayerFormat::kTarZstd)
    return Refuse("only tar+gzip and tar+zstd layers are published");
  if (index.stream_index.empty()) return Refuse("no checkpoint index");
  auto checkpoints = ParseCheckpointIndex(index.stream_index, layer_size, layer_digest);
  if (!checkpoints) return Refuse(checkpoints.error().message());
  const CheckpointCodec codec =
      format == LayerFormat::kTarGzip ? CheckpointCodec::kGzip : CheckpointCodec::kZstd;
  if (checkpoints->codec != codec) return Refuse("the checkpoint codec is not the layer's");
  HOIST_RETURN_IF_ERROR(CheckEntries(index, checkpoints->stream_size, limits));
  return std::move(index);
}

}  // namespace hoist
