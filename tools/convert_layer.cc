#include "tools/convert_layer.h"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>

#include "base/scoped_fd.h"
#include "tools/convert_encoder.h"
#include "tools/image_manifest.h"

namespace hoist {
namespace {

constexpr uint64_t kMaxTocSize = 256ull << 20;

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

bool ParseU64(std::string_view s, uint64_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string Annotation(const Descriptor& d, std::string_view key) {
  auto it = d.annotations.find(std::string(key));
  return it == d.annotations.end() ? std::string() : it->second;
}

}  // namespace

Result<bool> IsValidZstdChunked(ImageSource& source, const Descriptor& layer) {
  std::string checksum = Annotation(layer, kTocChecksumKey);
  std::string position = Annotation(layer, kTocPositionKey);
  if (checksum.empty()) {
    checksum = Annotation(layer, kOldTocChecksumKey);
    position = Annotation(layer, "io.containers.zstd-chunked.manifest-position");
  }
  if (checksum.empty() || position.empty()) return false;
  if (layer.media_type != kMediaTypeOciLayerZstd) return false;
  // off:clen:ulen:type
  uint64_t f[4];
  std::string_view rest = position;
  for (int i = 0; i < 4; ++i) {
    size_t colon = rest.find(':');
    std::string_view part = rest.substr(0, colon);
    if (!ParseU64(part, &f[i])) return false;
    rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
    if (colon == std::string_view::npos && i < 3) return false;
  }
  auto want = Digest::Parse(checksum);
  if (!want) return false;
  if (f[1] == 0 || f[1] > kMaxTocSize || f[0] + f[1] > static_cast<uint64_t>(layer.size)) {
    return false;
  }
  HOIST_ASSIGN_OR_RETURN(std::string toc, source.ReadBlobRange(layer, f[0], f[1]));
  return Digest::Of(toc) == *want;
}

Result<LayerOutcome> ConvertLayer(ImageSource& source, const Descriptor& layer,
                                  const Digest& diff_id, const LayerOptions& options,
                                  LayerProgress* progress) {
  LayerOutcome out;
  HOIST_ASSIGN_OR_RETURN(bool chunked, IsValidZstdChunked(source, layer));
  if (chunked) {
    out.output = layer;
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
  auto decompressed = NewDecompressor(out.source_compression, &prefixed);
  HashingReader tar(std::make_unique<BorrowedReader>(decompressed.get()));

  std::string spool = options.work_dir + "/layer-XXXXXX";
  ScopedFd fd(::mkostemp(spool.data(), O_CLOEXEC));
  if (!fd.valid()) return Fail(ErrnoError("create a spool file in " + options.work_dir));
  auto fail = [&](Error e) -> Result<LayerOutcome> {
    ::unlink(spool.c_str());
    return Fail(std::move(e));
  };

  auto encoded = EncodeZstdChunked(tar, fd.get(), options);
  if (!encoded) return fail(encoded.error());
  // Whatever follows the tar's end (padding) is part of the stream: read it all, so the digests
  // below cover every byte and trailing garbage in the compressed data is caught.
  if (auto st = Drain(tar); !st) return fail(st.error());
  if (auto st = Drain(*blob); !st) return fail(st.error());

  out.bytes_in = counted.bytes();
  out.tar_bytes = tar.bytes();
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
  Digest got_diff = tar.Finish();
  if (!diff_id.empty() && got_diff != diff_id) {
    return fail(Error(EIO, "uncompressed tar has digest " + got_diff.str() +
                               ", config diff_id is " + diff_id.str()));
  }
  out.spool_path = spool;
  out.output.media_type = std::string(kMediaTypeOciLayerZstd);
  out.output.digest = encoded->digest;
  out.output.size = static_cast<int64_t>(encoded->size);
  out.output.annotations = encoded->annotations;
  if (progress) progress->bytes_out = encoded->size;
  return out;
}

}  // namespace hoist
