#include "index/layer_index_codec.h"

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace hoist {
namespace {

constexpr size_t kChecksumBytes = 8;

// Writes into a buffer of the exact size, or (with no buffer) only counts the bytes, so an
// index is encoded once to size it and once into its final place.
class Writer {
 public:
  explicit Writer(char* out = nullptr) : out_(out) {}
  size_t size() const { return n_; }
  void U8(uint8_t v) {
    if (out_ != nullptr) out_[n_] = static_cast<char>(v);
    ++n_;
  }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      U8(static_cast<uint8_t>(v) | 0x80);
      v >>= 7;
    }
    U8(static_cast<uint8_t>(v));
  }
  void Zigzag(int64_t v) {
    Varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  void String(std::string_view s) {
    Varint(s.size());
    Raw(s.data(), s.size());
  }
  void Raw(const void* data, size_t n) {
    if (out_ != nullptr && n > 0) std::memcpy(out_ + n_, data, n);
    n_ += n;
  }
  // `same`: a digest this one may repeat (a lone chunk's is usually its file's).
  void OptDigest(const Digest& d, const Digest* same = nullptr) {
    if (d.empty()) {
      U8(0);
      return;
    }
    if (same != nullptr && d == *same) {
      U8(2);
      return;
    }
    U8(1);
    auto raw = d.raw();
    Raw(raw.data(), raw.size());
  }
  // The checksum trailer over everything written so far (a buffer is required).
  void Trailer() {
    const uint64_t sum = XXH3_64bits(out_, n_);
    for (int i = 0; i < 8; ++i) U8(static_cast<uint8_t>(sum >> (8 * i)));
  }

 private:
  char* out_;
  size_t n_ = 0;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  size_t left() const { return in_.size() - pos_; }
  bool ok() const { return error_ == nullptr; }
  const char* error() const { return error_; }

  uint8_t U8(const char* what) {
    if (!ok()) return 0;
    if (left() < 1) return Bad(what), 0;
    return static_cast<uint8_t>(in_[pos_++]);
  }
  uint64_t Varint(const char* what) {
    uint64_t v = 0;
    for (int shift = 0; ok(); shift += 7) {
      if (shift > 63) return Bad(what), 0;
      if (left() < 1) return Bad(what), 0;
      uint8_t b = static_cast<uint8_t>(in_[pos_++]);
      if (shift == 63 && (b & 0x7e) != 0) return Bad(what), 0;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    return 0;
  }
  uint32_t U32(const char* what) {
    uint64_t v = Varint(what);
    if (v > UINT32_MAX) return Bad(what), 0;
    return static_cast<uint32_t>(v);
  }
  int64_t Zigzag(const char* what) {
    uint64_t v = Varint(what);
    return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
  }
  std::string String(const char* what) {
    std::string s;
    AppendString(what, s);
    return s;
  }
  // Reads a string onto the end of `s`.
  void AppendString(const char* what, std::string& s) {
    uint64_t n = Varint(what);
    if (!ok()) return;
    if (n > left()) return Bad(what);
    s.append(in_.substr(pos_, n));
    pos_ += n;
  }
  // A count of items that each take at least one byte: never more than the bytes left.
  uint64_t Count(const char* what) {
    uint64_t n = Varint(what);
    if (n > left()) return Bad(what), 0;
    return n;
  }
  Digest OptDigest(const char* what, const Digest* same = nullptr) {
    uint8_t tag = U8(what);
    if (!ok() || tag == 0) return {};
    // "The same as the file's": only where one is expected, and only if the file has one.
    if (tag == 2 && same != nullptr && !same->empty()) return *same;
    if (tag != 1 || left() < 32) return Bad(what), Digest();
    std::array<uint8_t, 32> raw;
    std::memcpy(raw.data(), in_.data() + pos_, 32);
    pos_ += 32;
    return Digest::FromSha256(raw);
  }
  void Bad(const char* what) {
    if (ok()) error_ = what;
  }

 private:
  std::string_view in_;
  size_t pos_ = 0;
  const char* error_ = nullptr;
};

// Paths come sorted-ish (tar order): each is stored as the length it shares with the previous
// path, then the rest.
size_t SharedPrefix(std::string_view a, std::string_view b) {
  size_t n = 0;
  const size_t max = std::min(a.size(), b.size());
  while (n < max && a[n] == b[n]) ++n;
  return n;
}

void EncodeChunk(Writer& w, const Chunk& c, const Digest& file_digest) {
  w.Varint(c.file_offset);
  w.Varint(c.size);
  w.Varint(c.blob_offset);
  w.Varint(c.blob_length);
  w.Varint(c.inner_offset);
  w.U8(static_cast<uint8_t>(c.encoding));
  w.OptDigest(c.digest, &file_digest);
}

void EncodeEntry(Writer& w, const Entry& e, std::string_view previous_path) {
  const size_t shared = SharedPrefix(previous_path, e.path);
  w.Varint(shared);
  w.String(std::string_view(e.path).substr(shared));
  w.U8(static_cast<uint8_t>(e.type));
  w.Varint(e.mode);
  w.Varint(e.uid);
  w.Varint(e.gid);
  w.Zigzag(e.mtime_sec);
  w.Varint(e.mtime_nsec);
  w.Varint(e.size);
  w.String(e.link_name);
  w.Varint(e.dev_major);
  w.Varint(e.dev_minor);
  w.Varint(e.xattrs.size());
  for (const Xattr& x : e.xattrs) {
    w.String(x.name);
    w.String(x.value);
  }
  w.OptDigest(e.digest);
  w.U8(e.prefetch ? 1 : 0);
  w.Varint(e.chunks.size());
  for (const Chunk& c : e.chunks) EncodeChunk(w, c, e.digest);
}

// `version` 1 records (before shared prefixes and repeated digests) are still read: caches
// written by older hoist keep working for mounts, `hoist images` and `hoist prune`.
void DecodeChunk(Reader& r, Chunk& c, const Digest& file_digest, uint8_t version) {
  c.file_offset = r.Varint("chunk file_offset");
  c.size = r.Varint("chunk size");
  c.blob_offset = r.Varint("chunk blob_offset");
  c.blob_length = r.Varint("chunk blob_length");
  c.inner_offset = r.Varint("chunk inner_offset");
  uint8_t enc = r.U8("chunk encoding");
  if (enc > static_cast<uint8_t>(ChunkEncoding::kZstdFramePrefix)) r.Bad("chunk encoding");
  c.encoding = static_cast<ChunkEncoding>(enc);
  c.digest = r.OptDigest("chunk digest", version >= 2 ? &file_digest : nullptr);
}

void DecodeEntry(Reader& r, Entry& e, std::string_view previous_path, uint8_t version) {
  const uint64_t shared = version >= 2 ? r.Varint("entry path prefix") : 0;
  if (shared > previous_path.size()) r.Bad("entry path prefix");
  if (!r.ok()) return;
  e.path.assign(previous_path.substr(0, shared));
  r.AppendString("entry path", e.path);
  uint8_t type = r.U8("entry type");
  if (type > static_cast<uint8_t>(EntryType::kFifo)) r.Bad("entry type");
  e.type = static_cast<EntryType>(type);
  e.mode = r.U32("entry mode");
  if (e.mode > 07777) r.Bad("entry mode");
  e.uid = r.U32("entry uid");
  e.gid = r.U32("entry gid");
  e.mtime_sec = r.Zigzag("entry mtime");
  e.mtime_nsec = r.U32("entry mtime_nsec");
  if (e.mtime_nsec >= 1000000000) r.Bad("entry mtime_nsec");
  e.size = r.Varint("entry size");
  e.link_name = r.String("entry link_name");
  e.dev_major = r.U32("entry dev_major");
  e.dev_minor = r.U32("entry dev_minor");
  uint64_t nx = r.Count("xattr count");
  for (uint64_t i = 0; i < nx && r.ok(); ++i) {
    Xattr& x = e.xattrs.emplace_back();
    x.name = r.String("xattr name");
    x.value = r.String("xattr value");
  }
  e.digest = r.OptDigest("entry digest");
  uint8_t prefetch = r.U8("entry prefetch");
  if (prefetch > 1) r.Bad("entry prefetch");
  e.prefetch = prefetch == 1;
  uint64_t nc = r.Count("chunk count");
  for (uint64_t i = 0; i < nc && r.ok(); ++i) {
    DecodeChunk(r, e.chunks.emplace_back(), e.digest, version);
  }
}

}  // namespace

namespace {

void EncodeBody(Writer& w, const LayerIndex& index) {
  w.U8(kLayerIndexCodecVersion);
  auto raw = index.layer_digest.raw();
  w.Raw(raw.data(), raw.size());
  w.Varint(index.blob_size);
  w.U8(static_cast<uint8_t>(index.format));
  w.Varint(index.entries.size());
  std::string_view previous;
  for (const Entry& e : index.entries) {
    EncodeEntry(w, e, previous);
    previous = e.path;
  }
  w.String(index.stream_index);
}

}  // namespace

size_t EncodedLayerIndexSize(const LayerIndex& index) {
  Writer counter;
  EncodeBody(counter, index);
  return counter.size() + kChecksumBytes;
}

void EncodeLayerIndexInto(const LayerIndex& index, std::span<char> out) {
  Writer w(out.data());
  EncodeBody(w, index);
  w.Trailer();
}

std::string EncodeLayerIndex(const LayerIndex& index) {
  std::string out(EncodedLayerIndexSize(index), '\0');
  EncodeLayerIndexInto(index, out);
  return out;
}

Result<LayerIndex> DecodeLayerIndex(std::string_view bytes) {
  if (bytes.size() < 1 + 32 + kChecksumBytes) {
    return Fail(
        EIO, "corrupt layer index record: " + std::to_string(bytes.size()) + " bytes is too short");
  }
  std::string_view body = bytes.substr(0, bytes.size() - kChecksumBytes);
  uint64_t stored = 0;
  for (size_t i = 0; i < 8; ++i) {
    stored |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[body.size() + i])) << (8 * i);
  }
  if (XXH3_64bits(body.data(), body.size()) != stored) {
    return Fail(EIO, "corrupt layer index record: checksum mismatch");
  }
  const uint8_t version = static_cast<uint8_t>(body[0]);
  if (version < kOldestLayerIndexCodecVersion || version > kLayerIndexCodecVersion) {
    return Fail(EIO, "corrupt layer index record: unknown version " + std::to_string(version));
  }
  LayerIndex index;
  std::array<uint8_t, 32> raw;
  std::memcpy(raw.data(), body.data() + 1, 32);
  index.layer_digest = Digest::FromSha256(raw);
  Reader rest(body.substr(33));
  index.blob_size = rest.Varint("blob size");
  uint8_t format = rest.U8("layer format");
  if (format > static_cast<uint8_t>(LayerFormat::kTarZstd)) rest.Bad("layer format");
  index.format = static_cast<LayerFormat>(format);
  uint64_t n = rest.Count("entry count");
  // Reserve what the bytes present can hold (an entry encodes to at least 16 bytes), so a
  // 100k-entry index decodes without regrowing, and a lying count cannot allocate more.
  index.entries.reserve(static_cast<size_t>(std::min<uint64_t>(n, rest.left() / 16)));
  for (uint64_t i = 0; i < n && rest.ok(); ++i) {
    Entry& e = index.entries.emplace_back();  // may move the entries: take the view after it
    DecodeEntry(rest, e, i == 0 ? std::string_view() : std::string_view(index.entries[i - 1].path),
                version);
  }
  if (version >= 3 && rest.ok()) index.stream_index = rest.String("stream index");
  if (rest.ok() && rest.left() != 0) rest.Bad("trailing bytes");
  if (!rest.ok()) return Fail(EIO, std::string("corrupt layer index record: bad ") + rest.error());
  return index;
}

}  // namespace hoist
