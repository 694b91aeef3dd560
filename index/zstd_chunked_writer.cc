#include "index/zstd_chunked_writer.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <zstd.h>

#include <array>
#include <cstring>
#include <memory>
#include <set>

#include "index/tar_reader.h"

namespace hoist {
namespace {

constexpr uint64_t kMaxMetaFrame = 1 << 20;
constexpr uint64_t kMaxZeroChunk = 16 << 20;

std::array<uint64_t, 256> MakeGear() {
  std::array<uint64_t, 256> g{};
  uint64_t x = 0x9E3779B97F4A7C15ull;  // splitmix64: a fixed table, so chunking is deterministic
  for (auto& v : g) {
    x += 0x9E3779B97F4A7C15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    v = z ^ (z >> 31);
  }
  return g;
}

std::string Le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}
std::string SkippableHeader(uint32_t len) {
  std::string s = "\x50\x2a\x4d\x18";
  for (int i = 0; i < 4; ++i) s += static_cast<char>(len >> (8 * i));
  return s;
}

struct ChunkOut {
  uint64_t file_offset = 0, size = 0, offset = 0, end = 0;
  Digest digest;
  bool zeros = false;
};

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

class Writer {
 public:
  Writer(WriteCallback sink, const ZstdChunkedWriterOptions& o)
      : sink_(std::move(sink)),
        opt_(o),
        gear_(MakeGear()),
        prefetch_(o.prefetch.begin(), o.prefetch.end()) {
    cctx_.reset(ZSTD_createCCtx());
    uint64_t t = 1;
    while (t < opt_.chunk_target) t <<= 1;
    mask_ = t - 1;
    min_chunk_ = t / 4;
    max_chunk_ = t * 4;
    toc_.StartObject();
    toc_.Key("version");
    toc_.Int(1);
    toc_.Key("entries");
    toc_.StartArray();
  }

  Result<ZstdChunkedWriteResult> Run(ReadCallback tar_source);

 private:
  Status Emit(std::string_view data) {
    blob_hash_.Update(data);
    out_pos_ += data.size();
    return sink_(data);
  }
  Result<std::string> Compress(std::string_view data) {
    if (!cctx_) return Fail(ENOMEM, "ZSTD_createCCtx failed");
    ZSTD_CCtx_reset(cctx_.get(), ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(cctx_.get(), ZSTD_c_compressionLevel, opt_.compression_level);
    ZSTD_CCtx_setParameter(cctx_.get(), ZSTD_c_contentSizeFlag, 1);
    std::string out(ZSTD_compressBound(data.size()), '\0');
    size_t n = ZSTD_compress2(cctx_.get(), out.data(), out.size(), data.data(), data.size());
    if (ZSTD_isError(n))
      return Fail(EIO, std::string("zstd compression failed: ") + ZSTD_getErrorName(n));
    out.resize(n);
    return out;
  }
  Status FlushMeta() {
    if (meta_.empty()) return Ok();
    HOIST_ASSIGN_OR_RETURN(std::string frame, Compress(meta_));
    meta_.clear();
    return Emit(frame);
  }
  Status AddMeta(std::string_view data) {
    tar_hash_.Update(data);
    tar_size_ += data.size();
    meta_ += data;
    if (meta_.size() >= kMaxMetaFrame) return FlushMeta();
    return Ok();
  }
  Status EmitChunk(std::string& data, bool zeros) {
    if (data.empty()) return Ok();
    HOIST_RETURN_IF_ERROR(FlushMeta());
    ChunkOut c;
    c.file_offset = file_pos_;
    c.size = data.size();
    c.zeros = zeros;
    c.digest = Digest::Of(data);
    HOIST_ASSIGN_OR_RETURN(std::string frame, Compress(data));
    c.offset = out_pos_;
    HOIST_RETURN_IF_ERROR(Emit(frame));
    c.end = out_pos_;
    file_pos_ += data.size();
    chunks_.push_back(std::move(c));
    data.clear();
    hash_ = 0;
    return Ok();
  }
  Status ChunkPayload(TarReader& reader, uint64_t size, Sha256& file_hash);
  void WriteTocEntry(const TarMember& m, const Digest& file_digest);
  void WriteTarSplitSegment(std::string_view bytes);
  void WriteTarSplitFile(const TarMember& m, uint64_t crc);

  WriteCallback sink_;
  ZstdChunkedWriterOptions opt_;
  std::array<uint64_t, 256> gear_;
  std::set<std::string> prefetch_;
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> cctx_{nullptr, ZSTD_freeCCtx};
  uint64_t mask_ = 0, min_chunk_ = 0, max_chunk_ = 0;
  uint64_t hash_ = 0;
  Sha256 blob_hash_, tar_hash_;
  uint64_t out_pos_ = 0, tar_size_ = 0, file_pos_ = 0;
  std::string meta_;
  std::vector<ChunkOut> chunks_;
  rapidjson::StringBuffer toc_buf_;
  JsonWriter toc_{toc_buf_};
  std::string tar_split_;
  uint64_t ts_position_ = 0;
  uint64_t entries_ = 0, total_chunks_ = 0;
  uint64_t crc_ = 0;
};

Status Writer::ChunkPayload(TarReader& reader, uint64_t size, Sha256& file_hash) {
  std::string cur;
  cur.reserve(static_cast<size_t>(std::min<uint64_t>(size, max_chunk_)));
  bool in_zeros = false;
  uint64_t zero_run = 0;
  std::string buf(1 << 16, '\0');
  uint64_t left = size;
  while (left > 0) {
    HOIST_ASSIGN_OR_RETURN(size_t n, reader.ReadPayload(buf.data(), buf.size()));
    if (n == 0) return Fail(EBADMSG, "tar payload ended early");
    left -= n;
    tar_hash_.Update(buf.data(), n);
    tar_size_ += n;
    file_hash.Update(buf.data(), n);
    crc_ = Crc64Iso(crc_, buf.data(), n);
    for (size_t i = 0; i < n; ++i) {
      const unsigned char b = static_cast<unsigned char>(buf[i]);
      zero_run = b == 0 ? zero_run + 1 : 0;
      if (in_zeros) {
        if (b == 0) {
          cur.push_back(0);
          if (cur.size() >= kMaxZeroChunk) HOIST_RETURN_IF_ERROR(EmitChunk(cur, true));
          continue;
        }
        HOIST_RETURN_IF_ERROR(EmitChunk(cur, true));
        in_zeros = false;
      }
      cur.push_back(static_cast<char>(b));
      hash_ = (hash_ << 1) + gear_[b];
      if (zero_run >= opt_.zero_run_min && opt_.zero_run_min > 0) {
        const size_t run = static_cast<size_t>(std::min<uint64_t>(zero_run, cur.size()));
        std::string data = cur.substr(0, cur.size() - run);
        HOIST_RETURN_IF_ERROR(EmitChunk(data, false));
        cur.assign(run, '\0');
        in_zeros = true;
        continue;
      }
      if (cur.size() >= max_chunk_ ||
          (cur.size() >= min_chunk_ && (hash_ & mask_) == 0 && zero_run == 0)) {
        HOIST_RETURN_IF_ERROR(EmitChunk(cur, false));
      }
    }
  }
  return EmitChunk(cur, in_zeros);
}

void Writer::WriteTocEntry(const TarMember& m, const Digest& file_digest) {
  const Entry& e = m.entry;
  static const char* kTypes[] = {"reg", "dir", "symlink", "hardlink", "char", "block", "fifo"};
  toc_.StartObject();
  toc_.Key("type");
  toc_.String(kTypes[static_cast<int>(e.type)]);
  toc_.Key("name");
  toc_.String(m.raw_name.data(), static_cast<rapidjson::SizeType>(m.raw_name.size()));
  if (e.type == EntryType::kSymlink || e.type == EntryType::kHardlink) {
    toc_.Key("linkName");
    toc_.String(m.raw_link.data(), static_cast<rapidjson::SizeType>(m.raw_link.size()));
  }
  toc_.Key("mode");
  toc_.Uint(e.mode);
  if (e.size) {
    toc_.Key("size");
    toc_.Uint64(e.size);
  }
  if (e.uid) {
    toc_.Key("uid");
    toc_.Uint(e.uid);
  }
  if (e.gid) {
    toc_.Key("gid");
    toc_.Uint(e.gid);
  }
  toc_.Key("modtime");
  toc_.String(FormatRfc3339(e.mtime_sec, e.mtime_nsec).c_str());
  if (e.type == EntryType::kCharDevice || e.type == EntryType::kBlockDevice) {
    toc_.Key("devMajor");
    toc_.Uint(e.dev_major);
    toc_.Key("devMinor");
    toc_.Uint(e.dev_minor);
  }
  if (!e.xattrs.empty()) {
    toc_.Key("xattrs");
    toc_.StartObject();
    for (const auto& x : e.xattrs) {
      toc_.Key(x.name.data(), static_cast<rapidjson::SizeType>(x.name.size()));
      toc_.String(Base64Encode(x.value).c_str());
    }
    toc_.EndObject();
  }
  if (prefetch_.contains(e.path)) {
    toc_.Key(kTocPrefetchKey);
    toc_.Bool(true);
  }
  auto chunk_fields = [&](const ChunkOut& c, bool first) {
    toc_.Key("offset");
    toc_.Uint64(c.offset);
    toc_.Key("endOffset");
    toc_.Uint64(first ? chunks_.back().end : c.end);
    if (c.file_offset) {
      toc_.Key("chunkOffset");
      toc_.Uint64(c.file_offset);
    }
    toc_.Key("chunkSize");
    toc_.Uint64(c.size);
    toc_.Key("chunkDigest");
    toc_.String(c.digest.str().c_str());
    if (c.zeros) {
      toc_.Key("chunkType");
      toc_.String("zeros");
    }
  };
  if (e.type == EntryType::kRegular && !chunks_.empty()) {
    toc_.Key("digest");
    toc_.String(file_digest.str().c_str());
    chunk_fields(chunks_[0], true);
  }
  toc_.EndObject();
  ++entries_;
  for (size_t i = 1; i < chunks_.size(); ++i) {
    toc_.StartObject();
    toc_.Key("type");
    toc_.String("chunk");
    toc_.Key("name");
    toc_.String(m.raw_name.data(), static_cast<rapidjson::SizeType>(m.raw_name.size()));
    chunk_fields(chunks_[i], false);
    toc_.EndObject();
  }
  total_chunks_ += chunks_.size();
}

void Writer::WriteTarSplitSegment(std::string_view bytes) {
  if (bytes.empty()) return;
  tar_split_ += "{\"type\":2,\"payload\":\"" + Base64Encode(bytes) +
                "\",\"position\":" + std::to_string(ts_position_++) + "}\n";
}

void Writer::WriteTarSplitFile(const TarMember& m, uint64_t crc) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::UTF8<>,
                    rapidjson::CrtAllocator, rapidjson::kWriteValidateEncodingFlag>
      w(sb);
  w.StartObject();
  w.Key("type");
  w.Int(1);
  bool ok = w.Key("name") &&
            w.String(m.raw_name.data(), static_cast<rapidjson::SizeType>(m.raw_name.size()));
  if (!ok) {  // not UTF-8: tar-split stores the raw bytes, base64 encoded
    sb.Clear();
    w.Reset(sb);
    w.StartObject();
    w.Key("type");
    w.Int(1);
    w.Key("name_raw");
    w.String(Base64Encode(m.raw_name).c_str());
  }
  w.Key("size");
  w.Uint64(m.payload_size);
  if (m.payload_size) {
    std::string be(8, '\0');
    for (int i = 0; i < 8; ++i) be[i] = static_cast<char>(crc >> (56 - 8 * i));
    w.Key("payload");
    w.String(Base64Encode(be).c_str());
  }
  w.Key("position");
  w.Uint64(ts_position_++);
  w.EndObject();
  tar_split_.append(sb.GetString(), sb.GetSize());
  tar_split_ += '\n';
}

Result<ZstdChunkedWriteResult> Writer::Run(ReadCallback tar_source) {
  TarReader reader(std::move(tar_source));
  std::string pending_padding;  // padding of the previous member (tar-split segment bytes)
  for (;;) {
    HOIST_ASSIGN_OR_RETURN(const TarMember* m, reader.Next());
    if (!m) break;
    std::string seg = pending_padding + std::string(reader.raw_header());
    HOIST_RETURN_IF_ERROR(AddMeta(reader.raw_header()));
    WriteTarSplitSegment(seg);
    chunks_.clear();
    file_pos_ = 0;
    Digest file_digest;
    uint64_t crc = 0;
    if (m->payload_size > 0) {
      Sha256 fh;
      // CRC for tar-split is computed from the chunk data as it is hashed.
      HOIST_RETURN_IF_ERROR(ChunkPayload(reader, m->payload_size, fh));
      file_digest = Digest::FromSha256(fh.Final());
      (void)crc;
    }
    crc = crc_;
    crc_ = 0;
    WriteTocEntry(*m, file_digest);
    WriteTarSplitFile(*m, crc);
    HOIST_ASSIGN_OR_RETURN(std::string_view pad, reader.FinishMember());
    HOIST_RETURN_IF_ERROR(AddMeta(pad));
    pending_padding.assign(pad);
  }
  std::string trailer = pending_padding;
  std::string buf(1 << 16, '\0');
  for (;;) {
    HOIST_ASSIGN_OR_RETURN(size_t n, reader.ReadTrailer(buf.data(), buf.size()));
    if (!n) break;
    HOIST_RETURN_IF_ERROR(AddMeta(std::string_view(buf.data(), n)));
    trailer.append(buf.data(), n);
    if (trailer.size() > kMaxMetaFrame) {
      WriteTarSplitSegment(trailer);
      trailer.clear();
    }
  }
  WriteTarSplitSegment(trailer);
  HOIST_RETURN_IF_ERROR(FlushMeta());

  ZstdChunkedWriteResult r;
  // tar-split first (its digest goes into the TOC), written after the TOC.
  HOIST_ASSIGN_OR_RETURN(std::string ts_frame, Compress(tar_split_));
  r.tar_split_digest = Digest::Of(ts_frame);
  toc_.EndArray();
  toc_.Key("tarSplitDigest");
  toc_.String(r.tar_split_digest.str().c_str());
  toc_.EndObject();
  std::string_view toc_json(toc_buf_.GetString(), toc_buf_.GetSize());
  HOIST_ASSIGN_OR_RETURN(std::string toc_frame, Compress(toc_json));
  r.toc_digest = Digest::Of(toc_frame);
  HOIST_RETURN_IF_ERROR(Emit(SkippableHeader(static_cast<uint32_t>(toc_frame.size()))));
  r.toc = BlobRange{out_pos_, toc_frame.size(), toc_json.size()};
  HOIST_RETURN_IF_ERROR(Emit(toc_frame));
  HOIST_RETURN_IF_ERROR(Emit(SkippableHeader(static_cast<uint32_t>(ts_frame.size()))));
  r.tar_split = BlobRange{out_pos_, ts_frame.size(), tar_split_.size()};
  HOIST_RETURN_IF_ERROR(Emit(ts_frame));
  std::string footer = SkippableHeader(64) + Le64(r.toc.offset) + Le64(r.toc.length) +
                       Le64(r.toc.uncompressed_length) + Le64(1) + Le64(r.tar_split.offset) +
                       Le64(r.tar_split.length) + Le64(r.tar_split.uncompressed_length) +
                       std::string(kZstdChunkedMagic, 8);
  HOIST_RETURN_IF_ERROR(Emit(footer));
  r.blob_digest = Digest::FromSha256(blob_hash_.Final());
  r.blob_size = out_pos_;
  r.diff_id = Digest::FromSha256(tar_hash_.Final());
  r.tar_size = tar_size_;
  r.entries = entries_;
  r.chunks = total_chunks_;
  r.annotations[kAnnotationTocChecksum] = r.toc_digest.str();
  r.annotations[kAnnotationTocPosition] = std::to_string(r.toc.offset) + ":" +
                                          std::to_string(r.toc.length) + ":" +
                                          std::to_string(r.toc.uncompressed_length) + ":1";
  r.annotations[kAnnotationTarSplitPosition] = std::to_string(r.tar_split.offset) + ":" +
                                               std::to_string(r.tar_split.length) + ":" +
                                               std::to_string(r.tar_split.uncompressed_length);
  return r;
}

}  // namespace

std::string FormatRfc3339(int64_t sec, uint32_t nsec) {
  int64_t days = sec >= 0 ? sec / 86400 : -((-sec + 86399) / 86400);
  int64_t rem = sec - days * 86400;
  // civil_from_days
  int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld", static_cast<long long>(y),
                m, d, static_cast<long long>(rem / 3600), static_cast<long long>(rem / 60 % 60),
                static_cast<long long>(rem % 60));
  std::string out = buf;
  if (nsec) {
    std::snprintf(buf, sizeof buf, ".%09u", nsec);
    std::string frac = buf;
    while (frac.back() == '0') frac.pop_back();
    out += frac;
  }
  return out + "Z";
}

uint64_t Crc64Iso(uint64_t crc, const void* data, size_t size) {
  static const std::array<uint64_t, 256> table = [] {
    std::array<uint64_t, 256> t{};
    for (uint64_t i = 0; i < 256; ++i) {
      uint64_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0xD800000000000000ull : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

Result<ZstdChunkedWriteResult> WriteZstdChunked(ReadCallback tar, WriteCallback sink,
                                                const ZstdChunkedWriterOptions& options) {
  Writer w(std::move(sink), options);
  return w.Run(std::move(tar));
}

}  // namespace hoist
