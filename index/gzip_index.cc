#include "index/gzip_index.h"

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>

namespace hoist {
namespace {

constexpr char kMagic[8] = {'H', 'O', 'I', 'S', 'T', 'Z', 'R', 'N'};
constexpr uint16_t kVersion = 1;          // windows inline
constexpr uint16_t kVersionExternal = 2;  // windows in a blob of their own
constexpr size_t kHeaderBytes = 8 + 2 + 1 + 1 + 4 + 8 + 8 + 8 + 32;
constexpr size_t kExternalHeaderBytes = 8 + 32;  // v2: windows_size, windows_digest
constexpr size_t kCheckpointBytes = 8 + 8 + 1 + 1 + 2 + 4;
constexpr size_t kExternalWindowBytes = 8 + 32;  // v2, deflate block: window_offset, sha256
constexpr int kZstdWindowLogMax = 27;            // as the layer indexer decodes (128 MiB)

Error Refuse(const std::string& why) { return Error(EBADMSG, "checkpoint index: " + why); }

void PutLe(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

uint64_t GetLe(std::string_view in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{static_cast<uint8_t>(in[at + i])} << (8 * i);
  return v;
}

// Decompresses a stored window: exactly one zstd frame of exactly 32 KiB.
Result<std::string> UnpackWindow(std::string_view packed) {
  if (packed.empty() || packed.size() > ZSTD_compressBound(kDeflateWindowBytes))
    return Fail(Refuse("window of " + std::to_string(packed.size()) + " packed bytes"));
  if (ZSTD_findFrameCompressedSize(packed.data(), packed.size()) != packed.size())
    return Fail(Refuse("window is not exactly one zstd frame"));
  if (ZSTD_getFrameContentSize(packed.data(), packed.size()) != kDeflateWindowBytes)
    return Fail(Refuse("window does not declare 32768 bytes"));
  std::string window(kDeflateWindowBytes, '\0');
  const size_t n = ZSTD_decompress(window.data(), window.size(), packed.data(), packed.size());
  if (ZSTD_isError(n) || n != kDeflateWindowBytes)
    return Fail(Refuse("window does not decompress to exactly 32768 bytes"));
  return window;
}

struct ZStreamGuard {
  z_stream* zs;
  ~ZStreamGuard() { inflateEnd(zs); }
};

}  // namespace

struct IndexingDecoder::Impl {
  z_stream zs{};
  bool zs_init = false;
  gz_header header{};
  ZSTD_DCtx* dctx = nullptr;
  ~Impl() {
    if (zs_init) inflateEnd(&zs);
    if (dctx != nullptr) ZSTD_freeDCtx(dctx);
  }
};

IndexingDecoder::IndexingDecoder(CheckpointCodec codec, uint64_t span_bytes,
                                 const CheckpointLimits& limits)
    : codec_(codec),
      span_(std::max<uint64_t>(span_bytes, 4096)),
      limits_(limits),
      impl_(std::make_unique<Impl>()),
      ring_(kDeflateWindowBytes, '\0') {}

IndexingDecoder::~IndexingDecoder() = default;

bool IndexingDecoder::at_member_end() const { return member_done_; }

void IndexingDecoder::Remember(const char* data, size_t n) {
  if (n >= kDeflateWindowBytes) {
    std::memcpy(ring_.data(), data + n - kDeflateWindowBytes, kDeflateWindowBytes);
    ring_head_ = 0;
    return;
  }
  const size_t first = std::min(n, kDeflateWindowBytes - ring_head_);
  std::memcpy(ring_.data() + ring_head_, data, first);
  std::memcpy(ring_.data(), data + first, n - first);
  ring_head_ = (ring_head_ + n) % kDeflateWindowBytes;
}

void IndexingDecoder::AddCheckpoint(CheckpointKind kind, uint8_t bits) {
  if (checkpoints_.size() >= limits_.max_checkpoints) return;  // coarser from here on
  Checkpoint cp;
  cp.in_offset = in_pos_;
  cp.out_offset = out_pos_;
  cp.kind = kind;
  cp.bits = bits;
  if (kind == CheckpointKind::kDeflateBlock) {
    // Oldest byte first: the ring is full (member_out_ >= 32 KiB), its oldest byte at head.
    std::string window;
    window.reserve(kDeflateWindowBytes);
    window.append(ring_, ring_head_, std::string::npos);
    window.append(ring_, 0, ring_head_);
    std::string packed(ZSTD_compressBound(window.size()), '\0');
    const size_t n = ZSTD_compress(packed.data(), packed.size(), window.data(), window.size(), 3);
    if (ZSTD_isError(n)) return;  // one checkpoint fewer
    packed.resize(n);
    cp.window = std::move(packed);
  }
  checkpoints_.push_back(std::move(cp));
}

Result<IndexingDecoder::Step> IndexingDecoder::Decode(std::string_view in, std::span<char> out) {
  return codec_ == CheckpointCodec::kGzip ? DecodeGzip(in, out) : DecodeZstd(in, out);
}

Result<IndexingDecoder::Step> IndexingDecoder::DecodeGzip(std::string_view in,
                                                          std::span<char> out) {
  Step s;
  z_stream& zs = impl_->zs;
  while (s.consumed < in.size() && s.produced < out.size()) {
    if (member_done_) {
      if (!impl_->zs_init) {
        if (inflateInit2(&zs, 15 + 32) != Z_OK) return Fail(ENOMEM, "inflateInit2 failed");
        impl_->zs_init = true;
      } else if (inflateReset(&zs) != Z_OK) {
        return Fail(EBADMSG, "gzip: reset failed");
      }
      impl_->header = gz_header{};
      inflateGetHeader(&zs, &impl_->header);
      member_done_ = false;
      member_out_ = 0;
      if (checkpoints_.empty() || in_pos_ - checkpoints_.back().in_offset >= span_)
        AddCheckpoint(CheckpointKind::kMemberStart, 0);
    }
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + s.consumed));
    zs.avail_in = static_cast<uInt>(std::min<size_t>(in.size() - s.consumed, UINT_MAX));
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + s.produced);
    zs.avail_out = static_cast<uInt>(std::min<size_t>(out.size() - s.produced, UINT_MAX));
    const uInt avail_in = zs.avail_in, avail_out = zs.avail_out;
    const int rc = inflate(&zs, Z_BLOCK);
    const size_t c = avail_in - zs.avail_in, p = avail_out - zs.avail_out;
    Remember(out.data() + s.produced, p);
    s.consumed += c;
    s.produced += p;
    in_pos_ += c;
    out_pos_ += p;
    member_out_ += p;
    if (rc == Z_STREAM_END) {
      member_done_ = true;
      continue;
    }
    if (rc == Z_BUF_ERROR) {
      if (c == 0 && p == 0) break;
      continue;
    }
    if (rc != Z_OK)
      return Fail(EBADMSG, std::string("gzip: ") + (zs.msg ? zs.msg : "corrupt data"));
    const bool boundary = (zs.data_type & 128) != 0 && (zs.data_type & 64) == 0;
    if (boundary && member_out_ >= kDeflateWindowBytes &&
        in_pos_ - checkpoints_.back().in_offset >= span_ && !give_up_) {
      if (impl_->header.done != 1) {
        give_up_ = true;
        give_up_reason_ = "a member is not gzip (zlib or unknown wrapper)";
      } else {
        AddCheckpoint(CheckpointKind::kDeflateBlock, static_cast<uint8_t>(zs.data_type & 7));
      }
    }
  }
  return s;
}

Result<IndexingDecoder::Step> IndexingDecoder::DecodeZstd(std::string_view in,
                                                          std::span<char> out) {
  Step s;
  if (impl_->dctx == nullptr) {
    impl_->dctx = ZSTD_createDCtx();
    if (impl_->dctx == nullptr) return Fail(ENOMEM, "ZSTD_createDCtx failed");
    ZSTD_DCtx_setParameter(impl_->dctx, ZSTD_d_windowLogMax, kZstdWindowLogMax);
  }
  while (s.consumed < in.size() && s.produced < out.size()) {
    if (member_done_) {
      member_done_ = false;
      member_out_ = 0;
      if (checkpoints_.empty() || in_pos_ - checkpoints_.back().in_offset >= span_)
        AddCheckpoint(CheckpointKind::kMemberStart, 0);
    }
    ZSTD_inBuffer ib{in.data() + s.consumed, in.size() - s.consumed, 0};
    ZSTD_outBuffer ob{out.data() + s.produced, out.size() - s.produced, 0};
    const size_t rc = ZSTD_decompressStream(impl_->dctx, &ob, &ib);
    if (ZSTD_isError(rc)) return Fail(EBADMSG, std::string("zstd: ") + ZSTD_getErrorName(rc));
    s.consumed += ib.pos;
    s.produced += ob.pos;
    in_pos_ += ib.pos;
    out_pos_ += ob.pos;
    member_out_ += ob.pos;
    if (rc == 0) member_done_ = true;
    if (ib.pos == 0 && ob.pos == 0) break;
  }
  return s;
}

Result<CheckpointIndex> IndexingDecoder::Finish(const Digest& blob, uint64_t blob_size) {
  if (give_up_) return Fail(ENOTSUP, "no checkpoint index: " + give_up_reason_);
  if (!member_done_) return Fail(EBADMSG, "no checkpoint index: the stream is truncated");
  if (checkpoints_.empty()) return Fail(ENOTSUP, "no checkpoint index: empty stream");
  if (in_pos_ > blob_size) return Fail(EINVAL, "no checkpoint index: blob size below the input");
  if (out_pos_ > limits_.max_stream_bytes)
    return Fail(ENOTSUP, "no checkpoint index: stream larger than the cap");
  // A checkpoint at the very end (an empty last member) serves nothing.
  while (checkpoints_.size() > 1 && checkpoints_.back().out_offset >= out_pos_)
    checkpoints_.pop_back();
  CheckpointIndex index;
  index.codec = codec_;
  index.blob = blob;
  index.blob_size = blob_size;
  index.stream_size = out_pos_;
  index.span_bytes = span_;
  index.checkpoints = std::move(checkpoints_);
  checkpoints_.clear();
  uint64_t bytes = kHeaderBytes;
  for (const Checkpoint& cp : index.checkpoints) bytes += kCheckpointBytes + cp.window.size();
  if (bytes > limits_.max_index_bytes)
    return Fail(ENOTSUP,
                "no checkpoint index: " + std::to_string(bytes) + " bytes is over the cap");
  return index;
}

namespace {

void AppendDigest(std::string& out, const Digest& d) {
  if (d.empty()) {
    out.append(32, '\0');
  } else {
    auto raw = d.raw();
    out.append(reinterpret_cast<const char*>(raw.data()), raw.size());
  }
}

Digest ReadDigest(std::string_view bytes, size_t at) {
  std::array<uint8_t, 32> raw;
  std::memcpy(raw.data(), bytes.data() + at, raw.size());
  return Digest::FromSha256(raw);
}

}  // namespace

SplitIndex SplitWindows(const CheckpointIndex& index) {
  SplitIndex split{index, {}};
  for (Checkpoint& cp : split.index.checkpoints) {
    if (cp.kind != CheckpointKind::kDeflateBlock) continue;
    cp.window_offset = split.windows.size();
    cp.window_size = static_cast<uint32_t>(cp.window.size());
    cp.window_digest = Digest::Of(cp.window);
    split.windows += cp.window;
    cp.window.clear();
  }
  if (split.windows.empty()) return SplitIndex{index, {}};
  split.index.windows_blob = Digest::Of(split.windows);
  split.index.windows_size = split.windows.size();
  return split;
}

Status CheckWindow(const Checkpoint& checkpoint, std::string_view packed) {
  if (packed.size() != checkpoint.window_size)
    return Fail(Refuse("window of " + std::to_string(packed.size()) + " bytes, the index says " +
                       std::to_string(checkpoint.window_size)));
  if (Digest::Of(packed) != checkpoint.window_digest)
    return Fail(Refuse("window at " + std::to_string(checkpoint.window_offset) +
                       " does not match its sha256"));
  HOIST_ASSIGN_OR_RETURN(std::string window, UnpackWindow(packed));
  (void)window;
  return Ok();
}

std::string SerializeCheckpointIndex(const CheckpointIndex& index) {
  std::string out;
  const bool external = index.external_windows();
  size_t total = kHeaderBytes + (external ? kExternalHeaderBytes : 0);
  for (const Checkpoint& cp : index.checkpoints)
    total += kCheckpointBytes + (external ? kExternalWindowBytes : cp.window.size());
  out.reserve(total);
  out.append(kMagic, sizeof(kMagic));
  PutLe(out, external ? kVersionExternal : kVersion, 2);
  PutLe(out, static_cast<uint8_t>(index.codec), 1);
  PutLe(out, 0, 1);  // flags
  PutLe(out, index.checkpoints.size(), 4);
  PutLe(out, index.blob_size, 8);
  PutLe(out, index.stream_size, 8);
  PutLe(out, index.span_bytes, 8);
  AppendDigest(out, index.blob);
  if (external) {
    PutLe(out, index.windows_size, 8);
    AppendDigest(out, index.windows_blob);
  }
  for (const Checkpoint& cp : index.checkpoints) {
    PutLe(out, cp.in_offset, 8);
    PutLe(out, cp.out_offset, 8);
    PutLe(out, static_cast<uint8_t>(cp.kind), 1);
    PutLe(out, cp.bits, 1);
    PutLe(out, 0, 2);  // reserved
    if (!external) {
      PutLe(out, cp.window.size(), 4);
      out.append(cp.window);
    } else if (cp.kind == CheckpointKind::kDeflateBlock) {
      PutLe(out, cp.window_size, 4);
      PutLe(out, cp.window_offset, 8);
      AppendDigest(out, cp.window_digest);
    } else {
      PutLe(out, 0, 4);
    }
  }
  return out;
}

Result<CheckpointIndex> ParseCheckpointIndex(std::string_view bytes, uint64_t blob_size,
                                             const Digest& blob, const CheckpointLimits& limits) {
  if (bytes.size() < kHeaderBytes)
    return Fail(Refuse(std::to_string(bytes.size()) + " bytes is too short"));
  if (bytes.size() > limits.max_index_bytes)
    return Fail(Refuse(std::to_string(bytes.size()) + " bytes is over the cap of " +
                       std::to_string(limits.max_index_bytes)));
  if (std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) return Fail(Refuse("bad magic"));
  size_t at = sizeof(kMagic);
  const uint64_t version = GetLe(bytes, at, 2);
  at += 2;
  if (version != kVersion && version != kVersionExternal)
    return Fail(Refuse("unknown version " + std::to_string(version)));
  const bool external = version == kVersionExternal;
  CheckpointIndex index;
  const uint64_t codec = GetLe(bytes, at++, 1);
  if (codec != static_cast<uint8_t>(CheckpointCodec::kGzip) &&
      codec != static_cast<uint8_t>(CheckpointCodec::kZstd))
    return Fail(Refuse("unknown codec " + std::to_string(codec)));
  index.codec = static_cast<CheckpointCodec>(codec);
  if (GetLe(bytes, at++, 1) != 0) return Fail(Refuse("unknown flags"));
  const uint64_t count = GetLe(bytes, at, 4);
  at += 4;
  index.blob_size = GetLe(bytes, at, 8);
  at += 8;
  index.stream_size = GetLe(bytes, at, 8);
  at += 8;
  index.span_bytes = GetLe(bytes, at, 8);
  at += 8;
  index.blob = ReadDigest(bytes, at);
  at += 32;
  if (external) {
    if (bytes.size() - at < kExternalHeaderBytes) return Fail(Refuse("truncated header"));
    index.windows_size = GetLe(bytes, at, 8);
    index.windows_blob = ReadDigest(bytes, at + 8);
    at += kExternalHeaderBytes;
    if (index.windows_size == 0 || index.windows_size > limits.max_index_bytes)
      return Fail(Refuse("a windows blob of " + std::to_string(index.windows_size) + " bytes"));
  }
  if (index.blob_size != blob_size || blob_size == 0)
    return Fail(Refuse("built for a blob of " + std::to_string(index.blob_size) +
                       " bytes, this one has " + std::to_string(blob_size)));
  if (!blob.empty() && index.blob != blob) return Fail(Refuse("built for another blob"));
  if (index.stream_size > limits.max_stream_bytes)
    return Fail(
        Refuse("stream of " + std::to_string(index.stream_size) + " bytes is over the cap"));
  if (index.span_bytes == 0) return Fail(Refuse("span of 0 bytes"));
  if (count == 0 || count > limits.max_checkpoints)
    return Fail(Refuse(std::to_string(count) + " checkpoints"));
  if (count > (bytes.size() - at) / kCheckpointBytes)
    return Fail(Refuse(std::to_string(count) + " checkpoints do not fit in the index"));
  index.checkpoints.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    const std::string where = "checkpoint " + std::to_string(i) + ": ";
    if (bytes.size() - at < kCheckpointBytes) return Fail(Refuse(where + "truncated"));
    Checkpoint cp;
    cp.in_offset = GetLe(bytes, at, 8);
    cp.out_offset = GetLe(bytes, at + 8, 8);
    const uint64_t kind = GetLe(bytes, at + 16, 1);
    cp.bits = static_cast<uint8_t>(GetLe(bytes, at + 17, 1));
    const uint64_t reserved = GetLe(bytes, at + 18, 2);
    const uint64_t window_len = GetLe(bytes, at + 20, 4);
    at += kCheckpointBytes;
    if (reserved != 0) return Fail(Refuse(where + "reserved bytes set"));
    std::string_view packed;
    if (external) {
      if (kind == static_cast<uint8_t>(CheckpointKind::kDeflateBlock)) {
        if (bytes.size() - at < kExternalWindowBytes) return Fail(Refuse(where + "truncated"));
        cp.window_size = static_cast<uint32_t>(window_len);
        cp.window_offset = GetLe(bytes, at, 8);
        cp.window_digest = ReadDigest(bytes, at + 8);
        at += kExternalWindowBytes;
        if (window_len == 0 || window_len > ZSTD_compressBound(kDeflateWindowBytes))
          return Fail(Refuse(where + "window of " + std::to_string(window_len) + " packed bytes"));
        if (cp.window_offset > index.windows_size ||
            window_len > index.windows_size - cp.window_offset)
          return Fail(Refuse(where + "window [" + std::to_string(cp.window_offset) + ", +" +
                             std::to_string(window_len) + ") past the end of the windows blob of " +
                             std::to_string(index.windows_size) + " bytes"));
      }
    } else {
      if (window_len > bytes.size() - at) return Fail(Refuse(where + "window past the end"));
      packed = bytes.substr(at, window_len);
      at += window_len;
    }
    if (kind == static_cast<uint8_t>(CheckpointKind::kMemberStart)) {
      cp.kind = CheckpointKind::kMemberStart;
      if (cp.bits != 0 || window_len != 0)
        return Fail(Refuse(where + "a member start has no bits and no window"));
    } else if (kind == static_cast<uint8_t>(CheckpointKind::kDeflateBlock)) {
      cp.kind = CheckpointKind::kDeflateBlock;
      if (index.codec != CheckpointCodec::kGzip)
        return Fail(Refuse(where + "a deflate block in a zstd index"));
      if (cp.bits > 7) return Fail(Refuse(where + std::to_string(cp.bits) + " unread bits"));
      if (cp.out_offset < kDeflateWindowBytes)
        return Fail(Refuse(where + "a window before 32768 bytes of output"));
      if (!external) {
        HOIST_ASSIGN_OR_RETURN(std::string window, UnpackWindow(packed));
        (void)window;  // checked; kept packed
        cp.window.assign(packed);
      }
    } else {
      return Fail(Refuse(where + "unknown kind " + std::to_string(kind)));
    }
    if (i == 0) {
      if (cp.in_offset != 0 || cp.out_offset != 0 || cp.kind != CheckpointKind::kMemberStart)
        return Fail(Refuse("the first checkpoint is not the stream's start"));
    } else {
      const Checkpoint& prev = index.checkpoints.back();
      if (cp.in_offset <= prev.in_offset)
        return Fail(Refuse(where + "compressed offset " + std::to_string(cp.in_offset) +
                           " does not increase"));
      if (cp.out_offset < prev.out_offset)
        return Fail(
            Refuse(where + "uncompressed offset " + std::to_string(cp.out_offset) + " decreases"));
      if (cp.in_offset >= index.blob_size)
        return Fail(Refuse(where + "compressed offset " + std::to_string(cp.in_offset) +
                           " is past the blob's end"));
      if (cp.out_offset >= index.stream_size)
        return Fail(Refuse(where + "uncompressed offset " + std::to_string(cp.out_offset) +
                           " is past the stream's end"));
    }
    index.checkpoints.push_back(std::move(cp));
  }
  if (at != bytes.size()) return Fail(Refuse("trailing bytes"));
  return index;
}

Result<SpanPlan> PlanExtract(const CheckpointIndex& index, uint64_t begin, uint64_t end) {
  if (!(begin < end && end <= index.stream_size) || index.checkpoints.empty())
    return Fail(EINVAL, "range [" + std::to_string(begin) + ", " + std::to_string(end) +
                            ") is not inside the stream of " + std::to_string(index.stream_size) +
                            " bytes");
  const auto& cps = index.checkpoints;
  auto after = std::upper_bound(cps.begin(), cps.end(), begin,
                                [](uint64_t b, const Checkpoint& c) { return b < c.out_offset; });
  const size_t i = static_cast<size_t>(after - cps.begin()) - 1;  // cps[0].out_offset == 0
  SpanPlan plan;
  plan.checkpoint = i;
  plan.in_begin = cps[i].in_offset - (cps[i].bits != 0 ? 1 : 0);
  plan.in_end = index.blob_size;
  plan.out_begin = cps[i].out_offset;
  plan.out_end = index.stream_size;
  for (size_t j = i + 1; j < cps.size(); ++j) {
    if (cps[j].out_offset >= end) {
      plan.in_end = cps[j].in_offset;
      plan.out_end = cps[j].out_offset;
      break;
    }
  }
  return plan;
}

namespace {

// Appends the part of [at, at + data.size()) that lies in [begin, end) to `out`.
void Keep(std::string& out, std::string_view data, uint64_t at, uint64_t begin, uint64_t end) {
  const uint64_t lo = std::max(at, begin), hi = std::min(at + data.size(), end);
  if (lo < hi) out.append(data.substr(lo - at, hi - lo));
}

Result<std::string> ExtractGzip(const Checkpoint& cp, std::string_view packed_window,
                                std::string_view in, uint64_t begin, uint64_t end) {
  z_stream zs{};
  bool raw = cp.kind == CheckpointKind::kDeflateBlock;
  if (inflateInit2(&zs, raw ? -15 : 15 + 16) != Z_OK) return Fail(ENOMEM, "inflateInit2 failed");
  ZStreamGuard guard{&zs};
  size_t pos = 0;
  if (raw) {
    if (cp.bits != 0) {
      if (in.empty()) return Fail(EIO, "checkpoint span is empty");
      const int v = static_cast<uint8_t>(in[0]) >> (8 - cp.bits);
      if (inflatePrime(&zs, cp.bits, v) != Z_OK) return Fail(EIO, "inflatePrime failed");
      pos = 1;
    }
    if (packed_window.empty()) return Fail(EIO, "the checkpoint's window is missing");
    auto window = UnpackWindow(packed_window);
    if (!window) return Fail(EIO, window.error().message());
    if (inflateSetDictionary(&zs, reinterpret_cast<const Bytef*>(window->data()),
                             static_cast<uInt>(window->size())) != Z_OK)
      return Fail(EIO, "inflateSetDictionary failed");
  }
  std::string out;
  out.reserve(static_cast<size_t>(end - begin));
  std::string buf(256 << 10, '\0');
  uint64_t at = cp.out_offset;
  bool member_done = false;
  auto short_span = [&] {
    return Fail(EIO, "compressed span ends at stream offset " + std::to_string(at) +
                         ", before the range's end " + std::to_string(end));
  };
  while (at < end) {
    if (member_done) {
      if (raw) {  // skip the member's trailer (CRC-32, ISIZE), read the next member's header
        if (in.size() - pos < 8) return short_span();
        pos += 8;
        if (inflateReset2(&zs, 15 + 16) != Z_OK) return Fail(EIO, "inflateReset2 failed");
        raw = false;
      } else if (inflateReset(&zs) != Z_OK) {
        return Fail(EIO, "inflateReset failed");
      }
      member_done = false;
    }
    if (pos >= in.size()) return short_span();
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + pos));
    zs.avail_in = static_cast<uInt>(std::min<size_t>(in.size() - pos, UINT_MAX));
    const size_t room = static_cast<size_t>(std::min<uint64_t>(buf.size(), end - at));
    zs.next_out = reinterpret_cast<Bytef*>(buf.data());
    zs.avail_out = static_cast<uInt>(room);
    const uInt avail_in = zs.avail_in;
    const int rc = inflate(&zs, Z_NO_FLUSH);
    const size_t c = avail_in - zs.avail_in, p = room - zs.avail_out;
    pos += c;
    Keep(out, std::string_view(buf.data(), p), at, begin, end);
    at += p;
    if (rc == Z_STREAM_END) {
      member_done = true;
    } else if (rc == Z_BUF_ERROR) {
      if (c == 0 && p == 0) return short_span();
    } else if (rc != Z_OK) {
      return Fail(EIO, std::string("gzip at a checkpoint: ") + (zs.msg ? zs.msg : "inflate error"));
    }
  }
  return out;
}

Result<std::string> ExtractZstd(const Checkpoint& cp, std::string_view in, uint64_t begin,
                                uint64_t end) {
  std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!dctx) return Fail(ENOMEM, "ZSTD_createDCtx failed");
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, kZstdWindowLogMax);
  std::string out;
  out.reserve(static_cast<size_t>(end - begin));
  std::string buf(256 << 10, '\0');
  uint64_t at = cp.out_offset;
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  while (at < end) {
    const size_t room = static_cast<size_t>(std::min<uint64_t>(buf.size(), end - at));
    ZSTD_outBuffer ob{buf.data(), room, 0};
    const size_t before = ib.pos;
    const size_t rc = ZSTD_decompressStream(dctx.get(), &ob, &ib);
    if (ZSTD_isError(rc))
      return Fail(EIO, std::string("zstd at a checkpoint: ") + ZSTD_getErrorName(rc));
    Keep(out, std::string_view(buf.data(), ob.pos), at, begin, end);
    at += ob.pos;
    if (ob.pos == 0 && ib.pos == before && at < end)
      return Fail(EIO, "compressed span ends at stream offset " + std::to_string(at) +
                           ", before the range's end " + std::to_string(end));
  }
  return out;
}

}  // namespace

Result<std::string> ExtractRange(const CheckpointIndex& index, const SpanPlan& plan,
                                 std::string_view compressed, uint64_t begin, uint64_t end,
                                 std::string_view window) {
  if (!(begin < end && end <= index.stream_size) || plan.checkpoint >= index.checkpoints.size())
    return Fail(EINVAL, "range outside the stream");
  const Checkpoint& cp = index.checkpoints[plan.checkpoint];
  if (cp.out_offset > begin) return Fail(EINVAL, "the plan's checkpoint is after the range");
  if (compressed.size() != plan.in_end - plan.in_begin)
    return Fail(EINVAL, "compressed span of " + std::to_string(compressed.size()) +
                            " bytes, the plan says " + std::to_string(plan.in_end - plan.in_begin));
  const std::string_view packed = index.external_windows() ? window : cp.window;
  auto out = index.codec == CheckpointCodec::kGzip ? ExtractGzip(cp, packed, compressed, begin, end)
                                                   : ExtractZstd(cp, compressed, begin, end);
  if (out && out->size() != end - begin) return Fail(EIO, "checkpoint decode came up short");
  return out;
}

}  // namespace hoist
