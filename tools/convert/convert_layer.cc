#include "tools/convert/convert_layer.h"

#include <fcntl.h>
#include <unistd.h>

#include <set>

#include "base/log.h"
#include "base/scoped_fd.h"
#include "fusefs/merged_view.h"
#include "index/zstd_chunked.h"
#include "tools/convert/convert_encoder.h"
#include "tools/convert/tar_reorder.h"
#include "tools/image/image_manifest.h"

namespace hoist {
namespace {

// Counts bytes for the progress display.
class CountingReader : public ByteReader {
 public:
  CountingReader(std::unique_ptr<ByteReader> inner, LayerProgress* progress)
      : inner_(std::move(inner)), progress_(progress) {}
  Result<size_t> Read(char* buf, size_t n) override {
    HOIST_ASSIGN_OR_RETURN(size_t got, inner_->Read(buf, n));
    bytes_ += got;
    if (progress_) progress_->bytes_in.store(bytes_, std::memory_order_relaxed);
    return got;
  }
  uint64_t bytes() const { return bytes_; }

 private:
  std::unique_ptr<ByteReader> inner_;
  LayerProgress* progress_;
  uint64_t bytes_ = 0;
};

// Non-owning view so a reader can sit under a HashingReader without giving up ownership.
class BorrowedReader : public ByteReader {
 public:
  explicit BorrowedReader(ByteReader* inner) : inner_(inner) {}
  Result<size_t> Read(char* buf, size_t n) override { return inner_->Read(buf, n); }

 private:
  ByteReader* inner_;
};

// The converted blob as a mount will see it: its TOC read back by the mount's own reader, then
// the merge rules, so that convert refuses up front, with the mount's message, what the mount
// would refuse (the caller names the layer).
Status CheckAsMounted(int fd, const EncodedLayer& encoded) {
  HOIST_ASSIGN_OR_RETURN(ZstdChunkedAnnotations annotations,
                         ParseZstdChunkedAnnotations(encoded.annotations));
  auto read = [fd](uint64_t offset, uint64_t length) -> Result<std::string> {
    std::string buf(length, '\0');
    size_t done = 0;
    while (done < length) {
      ssize_t n = ::pread(fd, buf.data() + done, length - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Fail(ErrnoError("reading the converted blob back"));
      if (n == 0) return Fail(EIO, "the converted blob is shorter than written");
      done += static_cast<size_t>(n);
    }
    return buf;
  };
  HOIST_ASSIGN_OR_RETURN(ZstdChunkedLayer layer,
                         LoadZstdChunkedLayer(read, encoded.size, encoded.digest, annotations));
  return CheckLayerRules(layer.index);
}

}  // namespace

Result<bool> IsValidZstdChunked(ImageSource& source, const Descriptor& layer,
                                const std::vector<std::string>& prefetch) {
  if (layer.media_type != kMediaTypeOciLayerZstd || layer.size <= 0) return false;
  auto annotations = ParseZstdChunkedAnnotations(layer.annotations);
  if (!annotations) return false;  // none (ENOENT) or malformed: convert the layer
  auto loaded = LoadZstdChunkedLayer(
      [&](uint64_t offset, uint64_t length) { return source.ReadBlobRange(layer, offset, length); },
      static_cast<uint64_t>(layer.size), layer.digest, *annotations);
  if (!loaded) {
    HOIST_LOG(kWarning) << "layer " << layer.digest.str()
                        << " has zstd:chunked annotations but its TOC is not valid ("
                        << loaded.error().message() << "); converting it again";
    return false;
  }
  // Reused as it is, so it must mount as it is: a layer the merge rules refuse is refused here
  // (converting it again would keep the same entries).
  HOIST_RETURN_IF_ERROR(CheckLayerRules(loaded->index));
  if (!prefetch.empty()) {
    std::set<std::string_view> listed(prefetch.begin(), prefetch.end());
    for (const Entry& e : loaded->index.entries) {
      if (!e.prefetch && listed.contains(e.path)) {
        HOIST_LOG(kInfo) << "layer " << layer.digest.str() << " is zstd:chunked but '" << e.path
                         << "' is not marked for prefetch; converting it again";
        return false;
      }
    }
  }
  return true;
}

Result<LayerOutcome> ConvertLayer(ImageSource& source, const Descriptor& layer,
                                  const Digest& diff_id, const LayerOptions& options,
                                  LayerProgress* progress) {
  LayerOutcome out;
  HOIST_ASSIGN_OR_RETURN(bool chunked, IsValidZstdChunked(source, layer, options.prefetch));
  if (chunked) {
    out.output = layer;
    out.diff_id = diff_id;
    out.reused = true;
    out.bytes_in = static_cast<uint64_t>(layer.size);
    out.source_compression = Compression::kZstd;
    if (progress) {
      progress->bytes_in = out.bytes_in;
      progress->bytes_out = out.bytes_in;
    }
    return out;
  }

  HOIST_ASSIGN_OR_RETURN(auto raw, source.OpenBlob(layer));
  CountingReader counted(std::move(raw), progress);
  std::unique_ptr<HashingReader> blob_hash;
  ByteReader* blob = &counted;
  if (!source.VerifiesBlobs()) {
    blob_hash = std::make_unique<HashingReader>(std::make_unique<BorrowedReader>(&counted));
    blob = blob_hash.get();
  }
  std::string head(4, '\0');
  HOIST_ASSIGN_OR_RETURN(size_t head_len, ReadFull(*blob, head.data(), head.size()));
  head.resize(head_len);
  out.source_compression = DetectCompression(head);
  PrefixedReader prefixed(head, blob);
  auto tar = NewDecompressor(out.source_compression, &prefixed);
  // Decompress on a thread of its own, ahead of the writer's thread (the busiest one).
  if (out.source_compression != Compression::kNone) {
    tar = std::make_unique<ReadAheadReader>(std::move(tar));
  }

  std::string spool = options.work_dir + "/layer-XXXXXX";
  ScopedFd fd(::mkostemp(spool.data(), O_CLOEXEC));
  if (!fd.valid()) return Fail(ErrnoError("create a spool file in " + options.work_dir));
  auto fail = [&](Error e) -> Result<LayerOutcome> {
    ::unlink(spool.c_str());
    return Fail(std::move(e));
  };

  // With a prefetch list: spool the tar (pass 1), then feed it to the writer reordered (pass 2).
  ByteReader* writer_input = tar.get();
  LayerOptions writer_options = options;
  std::optional<TarLayout> layout;
  std::unique_ptr<ReorderedReader> reordered;
  if (!options.prefetch.empty()) {
    std::string tar_spool = options.work_dir + "/tar-XXXXXX";
    ScopedFd tar_fd(::mkostemp(tar_spool.data(), O_CLOEXEC));
    if (!tar_fd.valid()) return fail(ErrnoError("create a tar spool file in " + options.work_dir));
    ::unlink(tar_spool.c_str());  // the fd keeps it until the reader is gone
    auto spooled = SpoolTar(*tar, tar_fd.get());
    if (!spooled) return fail(spooled.error());
    layout = std::move(*spooled);
    std::optional<PrefetchPlan> plan = PrefetchOrder(*layout, options.prefetch);
    std::vector<size_t> order;
    if (plan) {
      order = std::move(plan->order);
      writer_options.prefetch = std::move(plan->marks);
    } else {
      order.resize(layout->members.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    }
    reordered = std::make_unique<ReorderedReader>(std::move(tar_fd), *layout, order);
    writer_input = reordered.get();
  }

  auto encoded = EncodeZstdChunked(*writer_input, fd.get(), writer_options);
  if (!encoded) return fail(encoded.error());
  if (auto st = CheckAsMounted(fd.get(), *encoded); !st) return fail(st.error());
  // The writer reads the tar to its end (trailer included), so its diff_id covers every byte.
  // Anything left is data after the end of the compressed stream.
  {
    char extra;
    auto got = tar->Read(&extra, 1);
    if (!got) return fail(got.error());
    if (*got != 0) return fail(Error(EIO, "data after the end of the tar stream"));
  }
  if (auto st = Drain(*blob); !st) return fail(st.error());

  out.bytes_in = counted.bytes();
  out.tar_bytes = encoded->tar_size;
  if (blob_hash) {
    Digest got = blob_hash->Finish();
    if (got != layer.digest) {
      return fail(Error(EIO, "blob digest mismatch: got " + got.str()));
    }
  }
  if (layer.size >= 0 && out.bytes_in != static_cast<uint64_t>(layer.size)) {
    return fail(Error(EIO, "blob has " + std::to_string(out.bytes_in) + " bytes, manifest says " +
                               std::to_string(layer.size)));
  }
  const Digest& got_diff = layout ? layout->digest : encoded->diff_id;
  if (!diff_id.empty() && got_diff != diff_id) {
    return fail(Error(EIO, "uncompressed tar has digest " + got_diff.str() +
                               ", config diff_id is " + diff_id.str()));
  }
  out.spool_path = spool;
  out.diff_id = encoded->diff_id;
  out.output.media_type = std::string(kMediaTypeOciLayerZstd);
  out.output.digest = encoded->digest;
  out.output.size = static_cast<int64_t>(encoded->size);
  out.output.annotations = encoded->annotations;
  if (progress) progress->bytes_out = encoded->size;
  return out;
}

}  // namespace hoist
