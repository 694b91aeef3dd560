#include "index/zstd_chunked.h"

#include <zstd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <thread>

#include "base/mutex.h"

namespace hoist {
namespace {

uint64_t Le64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
uint32_t Le32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

struct DctxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};
using DctxPtr = std::unique_ptr<ZSTD_DCtx, DctxDeleter>;

// A decoder whose window is limited, so a hostile frame cannot make it allocate a huge one.
Result<DctxPtr> NewBoundedDctx() {
  DctxPtr dctx(ZSTD_createDCtx());
  if (!dctx) return Fail(ENOMEM, "ZSTD_createDCtx failed");
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, 27);
  return dctx;
}

std::string RangeText(const BlobRange& r) {
  return "[" + std::to_string(r.offset) + ", +" + std::to_string(r.length) + ")";
}

Status CheckRange(const BlobRange& r, uint64_t limit, const char* what) {
  if (r.length == 0 || r.offset > limit || r.length > limit - r.offset)
    return Fail(EBADMSG, std::string("zstd:chunked ") + what + " range " + RangeText(r) +
                             " is empty or not before offset " + std::to_string(limit));
  return Ok();
}

}  // namespace

Result<ZstdChunkedFooter> ParseZstdChunkedFooter(std::string_view tail, uint64_t blob_size) {
  if (tail.size() > blob_size) return Fail(EINVAL, "footer tail longer than the blob");
  auto try_form = [&](uint64_t size, int version) -> std::optional<ZstdChunkedFooter> {
    if (tail.size() < size) return std::nullopt;
    const char* p = tail.data() + tail.size() - size;
    if (Le32(p) != kZstdSkippableMagic || Le32(p + 4) != size - 8) return std::nullopt;
    if (std::memcmp(p + size - 8, kZstdChunkedMagic, 8) != 0) return std::nullopt;
    ZstdChunkedFooter f;
    f.version = version;
    f.footer_size = size;
    f.toc = {Le64(p + 8), Le64(p + 16), Le64(p + 24)};
    f.toc_type = Le64(p + 32);
    if (version == 2) f.tar_split = BlobRange{Le64(p + 40), Le64(p + 48), Le64(p + 56)};
    return f;
  };
  std::optional<ZstdChunkedFooter> f = try_form(kZstdChunkedFooterV2Size, 2);
  if (!f) f = try_form(kZstdChunkedFooterV1Size, 1);
  if (!f)
    return Fail(EBADMSG,
                "no zstd:chunked footer (48- or 72-byte skippable frame ending in GnUlInUx) at the "
                "end of the blob");
  if (f->toc_type != 1)
    return Fail(EBADMSG, "zstd:chunked footer: unknown TOC type " + std::to_string(f->toc_type));
  const uint64_t footer_start = blob_size - f->footer_size;
  HOIST_RETURN_IF_ERROR(CheckRange(f->toc, footer_start, "footer TOC"));
  if (f->tar_split) {
    if (f->tar_split->offset == 0 && f->tar_split->length == 0 &&
        f->tar_split->uncompressed_length == 0) {
      f->tar_split.reset();
    } else {
      HOIST_RETURN_IF_ERROR(CheckRange(*f->tar_split, footer_start, "footer tar-split"));
      const BlobRange& a = f->toc;
      const BlobRange& b = *f->tar_split;
      if (a.offset < b.offset + b.length && b.offset < a.offset + a.length)
        return Fail(EBADMSG, "zstd:chunked footer: TOC and tar-split ranges overlap");
    }
  }
  return *f;
}

Result<BlobRange> ParseBlobPosition(std::string_view text, bool want_type, uint64_t* type) {
  uint64_t v[4] = {0, 0, 0, 0};
  size_t n = 0;
  std::string_view s = text;
  while (n < 4) {
    size_t colon = s.find(':');
    std::string_view part = s.substr(0, colon);
    auto r = std::from_chars(part.data(), part.data() + part.size(), v[n]);
    if (part.empty() || r.ec != std::errc() || r.ptr != part.data() + part.size())
      return Fail(EBADMSG, "bad zstd:chunked position \"" + std::string(text.substr(0, 80)) + "\"");
    ++n;
    if (colon == std::string_view::npos) break;
    s.remove_prefix(colon + 1);
  }
  if (n != (want_type ? 4u : 3u))
    return Fail(EBADMSG, "bad zstd:chunked position \"" + std::string(text.substr(0, 80)) + "\"");
  if (type) *type = v[3];
  return BlobRange{v[0], v[1], v[2]};
}

Result<ZstdChunkedAnnotations> ParseZstdChunkedAnnotations(
    const std::map<std::string, std::string>& annotations) {
  ZstdChunkedAnnotations out;
  bool any = false;
  auto find = [&](std::string_view suffix) -> const std::string* {
    for (const char* prefix : {"io.github.containers.", "io.containers."}) {
      auto it = annotations.find(std::string(prefix) + std::string(suffix));
      if (it != annotations.end()) return &it->second;
    }
    return nullptr;
  };
  if (const std::string* v = find("zstd-chunked.manifest-checksum")) {
    auto d = Digest::Parse(*v);
    if (!d)
      return Fail(EBADMSG, "zstd:chunked manifest-checksum annotation: " + d.error().message());
    out.toc_digest = *d;
    any = true;
  }
  if (const std::string* v = find("zstd-chunked.manifest-position")) {
    uint64_t type = 0;
    HOIST_ASSIGN_OR_RETURN(out.toc, ParseBlobPosition(*v, true, &type));
    if (type != 1)
      return Fail(EBADMSG,
                  "zstd:chunked manifest-position: unknown TOC type " + std::to_string(type));
    any = true;
  }
  if (const std::string* v = find("zstd-chunked.tarsplit-position")) {
    HOIST_ASSIGN_OR_RETURN(out.tar_split, ParseBlobPosition(*v, false));
    any = true;
  }
  if (auto it = annotations.find(kAnnotationStargzTocDigest); it != annotations.end()) {
    auto d = Digest::Parse(it->second);
    if (!d) return Fail(EBADMSG, "stargz toc.digest annotation: " + d.error().message());
    out.toc_json_digest = *d;
    any = true;
  }
  if (!any) return Fail(ENOENT, "layer has no zstd:chunked annotations");
  return out;
}

namespace {

// Decodes zstd frame(s) piece by piece, at most `cap` bytes in all, and tells a truncated input
// (an incomplete frame) from the end.
class CappedZstdStream {
 public:
  CappedZstdStream(DctxPtr dctx, std::string_view compressed, uint64_t cap)
      : dctx_(std::move(dctx)), in_{compressed.data(), compressed.size(), 0}, cap_(cap) {}

  // Decodes into `out` (REQUIRES: not empty): the bytes written, 0 at the end of the input.
  Result<size_t> Next(std::span<char> out) {
    while (true) {
      if (last_ret_ == 0 && in_.pos == in_.size) return 0;
      ZSTD_outBuffer ob{out.data(), out.size(), 0};
      const size_t in_before = in_.pos;
      const size_t ret = ZSTD_decompressStream(dctx_.get(), &ob, &in_);
      if (ZSTD_isError(ret))
        return Fail(EBADMSG, std::string("zstd decompression failed: ") + ZSTD_getErrorName(ret));
      last_ret_ = ret;
      produced_ += ob.pos;
      if (produced_ > cap_)
        return Fail(EFBIG,
                    "zstd data decompresses to more than " + std::to_string(cap_) + " bytes");
      if (ob.pos > 0) return ob.pos;
      if (ret == 0 && in_.pos == in_.size) return 0;
      if (in_.pos == in_before) return Fail(EBADMSG, "zstd data is truncated (incomplete frame)");
    }
  }

  uint64_t produced() const { return produced_; }

 private:
  DctxPtr dctx_;
  ZSTD_inBuffer in_;
  const uint64_t cap_;
  size_t last_ret_ = 1;
  uint64_t produced_ = 0;
};

}  // namespace

Result<std::string> ZstdDecompressCapped(std::string_view compressed, uint64_t cap,
                                         std::optional<uint64_t> expected_size) {
  if (expected_size && *expected_size > cap)
    return Fail(EFBIG, "declared uncompressed size " + std::to_string(*expected_size) +
                           " is over the cap of " + std::to_string(cap));
  HOIST_ASSIGN_OR_RETURN(DctxPtr dctx, NewBoundedDctx());
  CappedZstdStream stream(std::move(dctx), compressed, cap);
  std::string out(
      static_cast<size_t>(std::min<uint64_t>(expected_size.value_or(64 << 10), cap) + 1), '\0');
  size_t produced = 0;
  while (true) {
    if (produced == out.size()) {
      // Never past cap + 1 bytes: the stream fails before producing more than the cap.
      if (out.size() > cap)
        return Fail(EFBIG, "zstd data decompresses to more than " + std::to_string(cap) + " bytes");
      out.resize(static_cast<size_t>(std::min<uint64_t>(out.size() * 2, cap + 1)));
    }
    HOIST_ASSIGN_OR_RETURN(size_t n, stream.Next(std::span<char>(out).subspan(produced)));
    if (n == 0) break;
    produced += n;
  }
  out.resize(produced);
  if (expected_size && produced != *expected_size)
    return Fail(EBADMSG, "zstd data decompresses to " + std::to_string(produced) +
                             " bytes, not the declared " + std::to_string(*expected_size));
  return out;
}

namespace {

// Decompresses on a thread of its own, a few pieces ahead of the reader, so decompressing a TOC
// and parsing it run on two cores (decompression is ~15% of reading a 100,000-entry TOC). The
// same checks as ZstdDecompressCapped: at most `cap` bytes of text, complete frames. Pieces come
// in order; an error comes after the pieces decoded before it.
class AheadDecompressor {
 public:
  AheadDecompressor(DctxPtr dctx, std::string_view compressed, uint64_t cap)
      : stream_(std::move(dctx), compressed, cap) {
    for (std::string& b : buffers_) b.resize(kPieceSize);
    thread_ = std::thread([this] { Run(); });
  }
  ~AheadDecompressor() {
    {
      MutexLock lock(mu_);
      stop_ = true;
    }
    cv_.NotifyAll();
    thread_.join();
  }
  AheadDecompressor(const AheadDecompressor&) = delete;
  AheadDecompressor& operator=(const AheadDecompressor&) = delete;

  // The next piece, valid until the next call; empty at the end.
  Result<std::string_view> Next() {
    MutexLock lock(mu_);
    if (reading_) {
      ++released_;
      reading_ = false;
      cv_.NotifyAll();
    }
    while (published_ <= released_ && !done_) cv_.Wait(mu_);
    if (published_ > released_) {
      reading_ = true;
      const size_t slot = released_ % kSlots;
      return std::string_view(buffers_[slot].data(), lengths_[slot]);
    }
    if (error_) return Fail(*error_);
    return std::string_view();
  }

  // Bytes of text decoded so far (all of it once Next has returned the end).
  uint64_t produced() const {
    MutexLock lock(mu_);
    return produced_;
  }

 private:
  static constexpr size_t kSlots = 4;
  static constexpr size_t kPieceSize = 256 << 10;

  void Run() HOIST_EXCLUDES(mu_) {
    for (size_t piece = 0;; ++piece) {
      {
        MutexLock lock(mu_);
        while (!stop_ && piece - released_ >= kSlots) cv_.Wait(mu_);
        if (stop_) return;
      }
      // The slot is the reader's no more: decode into it without the lock.
      Result<size_t> n = stream_.Next(buffers_[piece % kSlots]);
      MutexLock lock(mu_);
      produced_ = stream_.produced();
      if (n && *n > 0) {
        lengths_[piece % kSlots] = *n;
        ++published_;
      } else {
        if (!n) error_ = n.error();
        done_ = true;
      }
      cv_.NotifyAll();
      if (done_) return;
    }
  }

  CappedZstdStream stream_;  // used by the thread only
  std::array<std::string, kSlots> buffers_;
  std::array<size_t, kSlots> lengths_{};
  mutable Mutex mu_;
  CondVar cv_;
  size_t published_ HOIST_GUARDED_BY(mu_) = 0;  // pieces decoded
  size_t released_ HOIST_GUARDED_BY(mu_) = 0;   // pieces the reader is done with
  bool reading_ HOIST_GUARDED_BY(mu_) = false;  // the reader holds piece `released_`
  uint64_t produced_ HOIST_GUARDED_BY(mu_) = 0;
  bool done_ HOIST_GUARDED_BY(mu_) = false;  // no more pieces: the end, or error_
  bool stop_ HOIST_GUARDED_BY(mu_) = false;
  std::optional<Error> error_ HOIST_GUARDED_BY(mu_);
  std::thread thread_;
};

// Parses a zstd-compressed TOC while it is decompressed in small pieces (AheadDecompressor), and
// checks that it decompresses to exactly `declared` bytes when the footer declares a size
// (after the parse, by decompressing what follows the root object). With `json_digest` (ctr-remote)
// the text is hashed as it goes: all of it is decoded even after a parse error, and a mismatch is
// the error (the parse of unverified text is thrown away either way).
Result<TocIndex> ParseZstdTocStream(std::string_view compressed, uint64_t data_end,
                                    const ZstdChunkedLimits& limits,
                                    std::optional<uint64_t> declared, const Digest& json_digest) {
  const uint64_t cap = limits.max_toc_size;
  if (declared && *declared > cap)
    return Fail(EFBIG, "declared uncompressed size " + std::to_string(*declared) +
                           " is over the cap of " + std::to_string(cap));
  HOIST_ASSIGN_OR_RETURN(DctxPtr dctx, NewBoundedDctx());
  AheadDecompressor ahead(std::move(dctx), compressed, cap);
  const bool hash = !json_digest.empty();
  Sha256 sha;
  auto next = [&]() -> Result<std::string_view> {
    Result<std::string_view> piece = ahead.Next();
    if (hash && piece) sha.Update(*piece);
    return piece;
  };
  // A size hint only (it sizes an array): the declared size, but no more than JSON compresses
  // (about 5-10x; 16x is generous), so a lying footer cannot make it reserve gigabytes.
  const uint64_t expected_text = std::min<uint64_t>(declared.value_or(0), compressed.size() * 16);
  Result<TocIndex> toc =
      ParseTocStream(next, TocFormat::kZstdChunked, data_end, limits.toc, expected_text);
  if (!toc && !hash) return toc;
  // Drain: the frames must be complete, and the total must match the declared size.
  while (true) {
    HOIST_ASSIGN_OR_RETURN(std::string_view rest, next());
    if (rest.empty()) break;
  }
  if (hash) {
    const Digest got = Digest::FromSha256(sha.Final());
    if (got != json_digest)
      return Fail(EIO, "zstd:chunked TOC (stargz toc.digest) mismatch: got " + got.str() +
                           ", want " + json_digest.str());
  }
  if (!toc) return toc;
  const uint64_t produced = ahead.produced();
  if (declared && produced != *declared)
    return Fail(EBADMSG, "zstd data decompresses to " + std::to_string(produced) +
                             " bytes, not the declared " + std::to_string(*declared));
  return toc;
}

}  // namespace

Result<LayerIndex> ParseZstdChunkedToc(std::string_view compressed_toc, const Digest& toc_digest,
                                       const Digest& toc_json_digest, uint64_t uncompressed_size,
                                       uint64_t data_end, const ZstdChunkedLimits& limits,
                                       Digest* tar_split_digest) {
  if (toc_digest.empty() && toc_json_digest.empty())
    return Fail(EBADMSG, "zstd:chunked TOC has no digest to verify it against");
  if (!toc_digest.empty()) {
    Digest got = Digest::Of(compressed_toc);
    if (got != toc_digest)
      return Fail(
          EIO, "zstd:chunked TOC digest mismatch: got " + got.str() + ", want " + toc_digest.str());
  }
  const std::optional<uint64_t> declared =
      uncompressed_size ? std::optional<uint64_t>(uncompressed_size) : std::nullopt;
  // The compressed bytes are verified (manifest-checksum), or the text is hashed as it is read
  // (ctr-remote's toc.digest): either way it is decompressed as the parser reads, so the JSON
  // text (tens of MB for 100,000 entries) is never held whole.
  HOIST_ASSIGN_OR_RETURN(TocIndex toc, ParseZstdTocStream(compressed_toc, data_end, limits,
                                                          declared, toc_json_digest));
  if (tar_split_digest) *tar_split_digest = toc.tar_split_digest;
  // Producers that write endOffset (skopeo, containers/storage, hoist) give exact frame ranges;
  // ctr-remote writes none, lays frames out like eStargz and may add its landmarks.
  if (toc.stargz_layout) ApplyStargzLandmarks(toc.entries);
  LayerIndex index;
  index.format = LayerFormat::kZstdChunked;
  index.entries = std::move(toc.entries);
  return index;
}

Result<ZstdChunkedLayer> LoadZstdChunkedLayer(const BlobRangeReader& read, uint64_t blob_size,
                                              const Digest& layer_digest,
                                              const ZstdChunkedAnnotations& annotations,
                                              const ZstdChunkedLimits& limits) {
  ZstdChunkedLayer out;
  BlobRange toc;
  std::string compressed;
  if (annotations.toc) {
    // The annotation's position: one request. The range must leave room for a footer.
    toc = *annotations.toc;
    if (blob_size < kZstdChunkedFooterV1Size)
      return Fail(EBADMSG, "zstd:chunked blob of " + std::to_string(blob_size) +
                               " bytes is too small to hold a footer");
    HOIST_RETURN_IF_ERROR(CheckRange(toc, blob_size - kZstdChunkedFooterV1Size, "TOC"));
    if (toc.length > limits.max_toc_size)
      return Fail(EFBIG, "zstd:chunked TOC of " + std::to_string(toc.length) +
                             " compressed bytes is over the cap");
    HOIST_ASSIGN_OR_RETURN(compressed, read(toc.offset, toc.length));
    out.footer.version = 0;
    out.footer.footer_size = 0;
    out.footer.toc = toc;
    out.footer.tar_split = annotations.tar_split;
  } else {
    HOIST_ASSIGN_OR_RETURN(BlobTail tail, ReadBlobTail(read, blob_size, kZstdChunkedFooterV2Size));
    const uint64_t footer_len = std::min<uint64_t>(kZstdChunkedFooterV2Size, blob_size);
    HOIST_ASSIGN_OR_RETURN(
        out.footer,
        ParseZstdChunkedFooter(std::string_view(tail.bytes).substr(tail.bytes.size() - footer_len),
                               blob_size));
    toc = out.footer.toc;
    HOIST_RETURN_IF_ERROR(CheckRange(toc, blob_size - out.footer.footer_size, "TOC"));
    if (toc.length > limits.max_toc_size)
      return Fail(EFBIG, "zstd:chunked TOC of " + std::to_string(toc.length) +
                             " compressed bytes is over the cap");
    HOIST_ASSIGN_OR_RETURN(compressed, ReadBlobRange(read, tail, toc.offset, toc.length));
  }
  if (compressed.size() != toc.length) return Fail(EIO, "short read of the zstd:chunked TOC");
  HOIST_ASSIGN_OR_RETURN(
      LayerIndex index,
      ParseZstdChunkedToc(compressed, annotations.toc_digest, annotations.toc_json_digest,
                          toc.uncompressed_length, toc.offset, limits, &out.tar_split_digest));
  index.layer_digest = layer_digest;
  index.blob_size = blob_size;
  out.index = std::move(index);
  return out;
}

}  // namespace hoist
