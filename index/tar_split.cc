#include "index/tar_split.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <zstd.h>

#include <algorithm>

#include "index/zstd_chunked_writer.h"  // Crc64Iso

namespace hoist {
namespace {

constexpr size_t kFillChunk = 128 << 10;

bool Blank(std::string_view s) { return s.find_first_not_of(" \t\r") == std::string_view::npos; }

std::string QuoteShort(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 100)) {
    if (static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\' ||
        static_cast<unsigned char>(c) >= 0x7f) {
      char buf[5];
      snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  if (s.size() > 100) out += "...";
  return out + "\"";
}

}  // namespace

void TarSplitReader::DctxDeleter::operator()(ZSTD_DCtx_s* d) const { ZSTD_freeDCtx(d); }

TarSplitReader::TarSplitReader(std::string_view compressed, TarSplitLimits limits)
    : compressed_(compressed), limits_(limits), dctx_(ZSTD_createDCtx()) {
  if (dctx_) ZSTD_DCtx_setParameter(dctx_.get(), ZSTD_d_windowLogMax, 27);
}

Result<bool> TarSplitReader::Fill() {
  if (!dctx_) return Fail(ENOMEM, "ZSTD_createDCtx failed");
  if (buf_pos_ > 0) {  // compact: callers re-base their scan positions
    buf_.erase(0, buf_pos_);
    buf_pos_ = 0;
  }
  if (in_pos_ == compressed_.size()) {
    if (!frame_done_) return Fail(EBADMSG, "tar-split zstd data is truncated (incomplete frame)");
    return false;
  }
  const size_t old = buf_.size();
  buf_.resize(old + kFillChunk);
  ZSTD_inBuffer in{compressed_.data(), compressed_.size(), in_pos_};
  ZSTD_outBuffer out{buf_.data() + old, kFillChunk, 0};
  const size_t ret = ZSTD_decompressStream(dctx_.get(), &out, &in);
  if (ZSTD_isError(ret)) {
    buf_.resize(old);
    return Fail(EBADMSG, std::string("tar-split zstd data is corrupt: ") + ZSTD_getErrorName(ret));
  }
  const bool progress = in.pos > in_pos_ || out.pos > 0;
  in_pos_ = in.pos;
  buf_.resize(old + out.pos);
  total_ += out.pos;
  frame_done_ = ret == 0;
  if (total_ > limits_.max_uncompressed)
    return Fail(EFBIG, "tar-split decompresses to more than " +
                           std::to_string(limits_.max_uncompressed) + " bytes");
  if (!progress) return Fail(EBADMSG, "tar-split zstd data is corrupt (no progress)");
  return true;
}

Result<const TarSplitRecord*> TarSplitReader::Next() {
  if (eof_) return nullptr;
  if (compressed_.empty()) return Fail(EBADMSG, "tar-split is empty");
  size_t scanned = buf_pos_;
  for (;;) {
    const size_t nl = buf_.find('\n', scanned);
    std::string_view line;
    bool have = false;
    if (nl != std::string::npos) {
      line = std::string_view(buf_).substr(buf_pos_, nl - buf_pos_);
      buf_pos_ = nl + 1;
      scanned = buf_pos_;
      have = true;
    } else {
      if (buf_.size() - buf_pos_ > limits_.max_record)
        return Fail(EFBIG, "tar-split record " + std::to_string(count_) + " is longer than " +
                               std::to_string(limits_.max_record) + " bytes");
      scanned = buf_.size();
      const size_t consumed_before = buf_pos_;
      HOIST_ASSIGN_OR_RETURN(bool more, Fill());
      scanned -= consumed_before;  // Fill() compacted the buffer
      if (!more) {
        if (buf_pos_ == buf_.size()) {
          eof_ = true;
          return nullptr;
        }
        line = std::string_view(buf_).substr(buf_pos_);
        buf_pos_ = buf_.size();
        have = true;
      }
    }
    if (!have) continue;
    if (line.size() > limits_.max_record)
      return Fail(EFBIG, "tar-split record " + std::to_string(count_) + " is longer than " +
                             std::to_string(limits_.max_record) + " bytes");
    if (Blank(line)) continue;
    HOIST_RETURN_IF_ERROR(ParseRecord(line));
    ++count_;
    return &record_;
  }
}

Status TarSplitReader::ParseRecord(std::string_view line) {
  auto bad = [&](const std::string& what) {
    return Fail(EBADMSG, "tar-split record " + std::to_string(count_) + ": " + what);
  };
  rapidjson::Document doc;
  doc.Parse(line.data(), line.size());
  if (doc.HasParseError())
    return bad(std::string("not JSON (") + rapidjson::GetParseError_En(doc.GetParseError()) +
               " at offset " + std::to_string(doc.GetErrorOffset()) + ")");
  if (!doc.IsObject()) return bad("not a JSON object");
  record_ = TarSplitRecord{};
  auto uint_field = [&](const char* key, uint64_t* out, bool required) -> Status {
    auto it = doc.FindMember(key);
    if (it == doc.MemberEnd() || it->value.IsNull()) {
      if (required) return bad(std::string("no \"") + key + "\"");
      return Ok();
    }
    if (!it->value.IsUint64())
      return bad(std::string("\"") + key + "\" is not a non-negative integer");
    *out = it->value.GetUint64();
    return Ok();
  };
  auto bytes_field = [&](const char* key, std::string* out, bool* present) -> Status {
    auto it = doc.FindMember(key);
    if (present) *present = false;
    if (it == doc.MemberEnd() || it->value.IsNull()) return Ok();
    if (!it->value.IsString()) return bad(std::string("\"") + key + "\" is not a string");
    auto decoded =
        Base64Decode(std::string_view(it->value.GetString(), it->value.GetStringLength()));
    if (!decoded) return bad(std::string("\"") + key + "\" is not base64");
    *out = std::move(*decoded);
    if (present) *present = true;
    return Ok();
  };
  uint64_t type = 0;
  HOIST_RETURN_IF_ERROR(uint_field("type", &type, true));
  if (type != 1 && type != 2) return bad("unknown type " + std::to_string(type));
  record_.type = static_cast<TarSplitType>(type);
  HOIST_RETURN_IF_ERROR(uint_field("position", &record_.position, true));
  if (record_.position != count_)
    return bad("position " + std::to_string(record_.position) + " is out of order (want " +
               std::to_string(count_) + ")");
  HOIST_RETURN_IF_ERROR(bytes_field("payload", &record_.payload, nullptr));
  if (record_.type == TarSplitType::kSegment) return Ok();
  HOIST_RETURN_IF_ERROR(uint_field("size", &record_.size, false));
  if (record_.size > limits_.max_file_size)
    return Fail(EFBIG, "tar-split record " + std::to_string(count_) + ": size " +
                           std::to_string(record_.size) + " is over the cap");
  bool raw = false;
  HOIST_RETURN_IF_ERROR(bytes_field("name_raw", &record_.name, &raw));
  if (!raw || record_.name.empty()) {
    auto it = doc.FindMember("name");
    if (it != doc.MemberEnd() && !it->value.IsNull()) {
      if (!it->value.IsString()) return bad("\"name\" is not a string");
      record_.name.assign(it->value.GetString(), it->value.GetStringLength());
    }
  }
  if (record_.name.empty()) return bad("file record without a name");
  if (!record_.payload.empty() && record_.payload.size() != 8)
    return bad("file checksum is " + std::to_string(record_.payload.size()) +
               " bytes, not 8 (CRC-64)");
  return Ok();
}

Status VerifyTarSplit(std::string_view compressed, const Digest& digest) {
  if (digest.empty()) return Fail(EINVAL, "no tarSplitDigest to verify the tar-split against");
  const Digest got = Digest::Of(compressed);
  if (got != digest)
    return Fail(EIO, "tar-split digest mismatch: got " + got.str() + ", want " + digest.str());
  return Ok();
}

Result<TarSplitStats> ReassembleTar(std::string_view compressed_tar_split,
                                    const Digest& tar_split_digest,
                                    const TarSplitFileOpener& open_file, const WriteCallback& sink,
                                    const TarSplitLimits& limits) {
  HOIST_RETURN_IF_ERROR(VerifyTarSplit(compressed_tar_split, tar_split_digest));
  TarSplitReader reader(compressed_tar_split, limits);
  TarSplitStats stats;
  std::string buf;
  for (;;) {
    HOIST_ASSIGN_OR_RETURN(const TarSplitRecord* r, reader.Next());
    if (!r) break;
    ++stats.records;
    if (r->type == TarSplitType::kSegment) {
      if (r->payload.empty()) continue;
      HOIST_RETURN_IF_ERROR(sink(r->payload));
      stats.tar_size += r->payload.size();
      continue;
    }
    if (r->size == 0) continue;
    const std::string what = "tar-split file " + QuoteShort(r->name);
    auto content = open_file(r->name, r->size);
    if (!content) return Fail(content.error().Context(what));
    if (buf.empty()) buf.resize(1 << 20);
    uint64_t left = r->size;
    uint64_t crc = 0;
    while (left > 0) {
      auto n = (*content)(buf.data(), static_cast<size_t>(std::min<uint64_t>(left, buf.size())));
      if (!n) return Fail(n.error().Context(what));
      if (*n == 0)
        return Fail(EBADMSG, what + ": content ended after " + std::to_string(r->size - left) +
                                 " of " + std::to_string(r->size) + " bytes");
      if (*n > left) return Fail(EBADMSG, what + ": reader returned more than asked");
      crc = Crc64Iso(crc, buf.data(), *n);
      HOIST_RETURN_IF_ERROR(sink(std::string_view(buf.data(), *n)));
      left -= *n;
    }
    char extra;
    auto n = (*content)(&extra, 1);
    if (!n) return Fail(n.error().Context(what));
    if (*n != 0)
      return Fail(EBADMSG,
                  what + ": content is longer than its recorded size " + std::to_string(r->size));
    if (r->payload.size() == 8) {
      uint64_t want = 0;
      for (char c : r->payload) want = (want << 8) | static_cast<unsigned char>(c);
      if (crc != want) return Fail(EIO, what + ": content CRC-64 does not match the tar-split");
    }
    stats.tar_size += r->size;
    ++stats.files;
  }
  return stats;
}

}  // namespace hoist
