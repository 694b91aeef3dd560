#include "index/estargz.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>

#include "index/byte_stream.h"
#include "index/tar_reader.h"

namespace hoist {
namespace {

uint16_t Le16(const char* p) {
  return static_cast<uint16_t>(static_cast<unsigned char>(p[0]) |
                               (static_cast<unsigned char>(p[1]) << 8));
}

std::optional<uint64_t> ParseHex16(std::string_view s) {
  if (s.size() != 16) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return std::nullopt;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  return v;
}

// Checks the fixed gzip header fields of a footer (magic, deflate, FLG = FEXTRA only) and the
// XLEN; returns the extra field.
std::optional<std::string_view> FooterExtra(std::string_view f, uint16_t xlen) {
  if (f.size() < 12u + xlen) return std::nullopt;
  if (static_cast<unsigned char>(f[0]) != 0x1f || static_cast<unsigned char>(f[1]) != 0x8b ||
      f[2] != 8 || f[3] != 4)
    return std::nullopt;
  if (Le16(f.data() + 10) != xlen) return std::nullopt;
  return f.substr(12, xlen);
}

}  // namespace

Result<std::string> GunzipCapped(std::string_view compressed, uint64_t cap) {
  if (compressed.size() > UINT32_MAX)
    return Fail(EFBIG,
                "gzip input of " + std::to_string(compressed.size()) + " bytes is too large");
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) return Fail(ENOMEM, "inflateInit2 failed");
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, inflateEnd);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  zs.avail_in = static_cast<uInt>(compressed.size());
  std::string out(static_cast<size_t>(std::min<uint64_t>(cap, 64 << 10) + 1), '\0');
  size_t produced = 0;
  const std::string too_big =
      "gzip data decompresses to more than " + std::to_string(cap) + " bytes";
  if (compressed.empty()) return Fail(EBADMSG, "gzip data is empty");
  for (;;) {
    if (produced == out.size()) {
      if (out.size() > cap) return Fail(EFBIG, too_big);
      out.resize(static_cast<size_t>(std::min<uint64_t>(uint64_t{out.size()} * 2, cap + 1)));
    }
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    const size_t room = std::min<size_t>(out.size() - produced, UINT32_MAX);
    zs.avail_out = static_cast<uInt>(room);
    const int r = inflate(&zs, Z_NO_FLUSH);
    produced += room - zs.avail_out;
    if (produced > cap) return Fail(EFBIG, too_big);
    if (r == Z_STREAM_END) {
      if (zs.avail_in == 0) break;
      if (inflateReset(&zs) != Z_OK) return Fail(EBADMSG, "gzip: inflateReset failed");
      continue;
    }
    if (r == Z_OK) continue;
    if (r == Z_BUF_ERROR && zs.avail_out == 0) continue;  // needs more room
    if (r == Z_BUF_ERROR) return Fail(EBADMSG, "gzip data is truncated (incomplete member)");
    return Fail(EBADMSG,
                std::string("gzip data is corrupt: ") + (zs.msg ? zs.msg : "inflate error"));
  }
  out.resize(produced);
  return out;
}

Result<EstargzFooter> ParseEstargzFooter(std::string_view tail, uint64_t blob_size) {
  if (tail.size() > blob_size) return Fail(EINVAL, "footer tail longer than the blob");
  auto try_form = [&](uint64_t size) -> std::optional<EstargzFooter> {
    if (tail.size() < size) return std::nullopt;
    std::string_view f = tail.substr(tail.size() - size);
    std::optional<uint64_t> off;
    if (size == kEstargzFooterSize) {
      auto extra = FooterExtra(f, 26);
      if (!extra || (*extra)[0] != 'S' || (*extra)[1] != 'G' || Le16(extra->data() + 2) != 22 ||
          extra->substr(20, 6) != "STARGZ")
        return std::nullopt;
      off = ParseHex16(extra->substr(4, 16));
    } else {
      auto extra = FooterExtra(f, 22);
      if (!extra || extra->substr(16, 6) != "STARGZ") return std::nullopt;
      off = ParseHex16(extra->substr(0, 16));
    }
    if (!off) return std::nullopt;
    // The footer must be a complete gzip member with no content.
    auto body = GunzipCapped(f, 0);
    if (!body) return std::nullopt;
    return EstargzFooter{size, *off};
  };
  std::optional<EstargzFooter> f = try_form(kEstargzFooterSize);
  if (!f) f = try_form(kEstargzLegacyFooterSize);
  if (!f)
    return Fail(EBADMSG,
                "no eStargz footer (51- or 47-byte empty gzip member with a STARGZ extra field) at "
                "the end of the blob");
  const uint64_t footer_start = blob_size - f->footer_size;
  if (f->toc_offset >= footer_start)
    return Fail(EBADMSG, "eStargz footer: TOC offset " + std::to_string(f->toc_offset) +
                             " is not before the footer at " + std::to_string(footer_start));
  return *f;
}

Result<EstargzAnnotations> ParseEstargzAnnotations(
    const std::map<std::string, std::string>& annotations) {
  auto it = annotations.find(kAnnotationStargzTocDigest);
  if (it == annotations.end())
    return Fail(ENOENT, std::string("layer has no ") + kAnnotationStargzTocDigest + " annotation");
  auto d = Digest::Parse(it->second);
  if (!d) return Fail(EBADMSG, "stargz toc.digest annotation: " + d.error().message());
  return EstargzAnnotations{*d};
}

namespace {

// Gunzips one or more concatenated members piece by piece (a ReadCallback), at most `cap` bytes
// in all, with GunzipCapped's errors.
class CappedGunzipReader {
 public:
  CappedGunzipReader(std::string_view compressed, uint64_t cap)
      : cap_(cap),
        too_big_("gzip data decompresses to more than " + std::to_string(cap) + " bytes") {
    ok_ = compressed.size() <= UINT32_MAX && inflateInit2(&zs_, 15 + 16) == Z_OK;
    zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
    zs_.avail_in = static_cast<uInt>(compressed.size());
    done_ = compressed.empty();
    empty_ = compressed.empty();
  }
  ~CappedGunzipReader() {
    if (ok_) inflateEnd(&zs_);
  }
  CappedGunzipReader(const CappedGunzipReader&) = delete;
  CappedGunzipReader& operator=(const CappedGunzipReader&) = delete;

  Result<size_t> Read(char* buf, size_t n) {
    if (!ok_) return Fail(EFBIG, "gzip input is too large, or inflateInit2 failed");
    if (empty_) return Fail(EBADMSG, "gzip data is empty");
    while (!done_ && n > 0) {
      zs_.next_out = reinterpret_cast<Bytef*>(buf);
      const size_t room = std::min<size_t>(n, UINT32_MAX);
      zs_.avail_out = static_cast<uInt>(room);
      const int r = inflate(&zs_, Z_NO_FLUSH);
      const size_t got = room - zs_.avail_out;
      produced_ += got;
      if (produced_ > cap_) return Fail(EFBIG, too_big_);
      if (r == Z_STREAM_END) {
        if (zs_.avail_in == 0) {
          done_ = true;
        } else if (inflateReset(&zs_) != Z_OK) {
          return Fail(EBADMSG, "gzip: inflateReset failed");
        }
      } else if (r == Z_BUF_ERROR && zs_.avail_out > 0) {
        return Fail(EBADMSG, "gzip data is truncated (incomplete member)");
      } else if (r != Z_OK && r != Z_BUF_ERROR) {
        return Fail(EBADMSG,
                    std::string("gzip data is corrupt: ") + (zs_.msg ? zs_.msg : "inflate error"));
      }
      if (got > 0) return got;
    }
    return size_t{0};
  }

 private:
  z_stream zs_{};
  const uint64_t cap_;
  const std::string too_big_;
  uint64_t produced_ = 0;
  bool ok_ = false;
  bool done_ = false;
  bool empty_ = false;
};

}  // namespace

Result<std::vector<Entry>> ParseEstargzToc(std::string_view compressed_toc_member,
                                           const Digest& toc_digest, uint64_t toc_offset,
                                           const EstargzLimits& limits, Digest* json_digest) {
  // Streamed: gunzip -> tar -> JSON text -> SAX parse, hashing the text on the way, so neither
  // the tar nor the JSON text is ever held whole. The parse of text that turns out not to match
  // the digest is thrown away.
  CappedGunzipReader gunzip(compressed_toc_member, limits.max_toc_size);
  auto member_error = [](const Error& e) { return Fail(e.Context("eStargz TOC member")); };
  TarReader reader([&gunzip](char* buf, size_t n) { return gunzip.Read(buf, n); });
  auto member = reader.Next();
  if (!member) return member_error(member.error());
  const TarMember* m = *member;
  if (!m) return Fail(EBADMSG, "eStargz TOC member holds no tar entry");
  if (m->entry.path != kEstargzTocName || m->entry.type != EntryType::kRegular || m->is_sparse)
    return Fail(EBADMSG, "eStargz TOC member holds \"" + m->raw_name.substr(0, 100) +
                             "\", not the regular file " + kEstargzTocName);
  const uint64_t json_size = m->payload_size;
  Sha256 sha;
  std::string piece(256 << 10, '\0');
  uint64_t got = 0;
  std::optional<Error> read_error;
  const TocTextSource next = [&]() -> Result<std::string_view> {
    if (got >= json_size) return std::string_view();
    auto n = reader.ReadPayload(piece.data(), std::min<uint64_t>(piece.size(), json_size - got));
    if (!n) {
      read_error = n.error().Context("eStargz TOC member");
      return Fail(*read_error);
    }
    if (*n == 0) {
      read_error = Error(EBADMSG, "eStargz TOC entry is truncated");
      return Fail(*read_error);
    }
    got += *n;
    sha.Update(std::string_view(piece.data(), *n));
    return std::string_view(piece.data(), *n);
  };
  // A size hint only (it sizes an array): no more than JSON compresses, as for zstd:chunked.
  const uint64_t expected_text =
      std::min<uint64_t>(json_size, uint64_t{compressed_toc_member.size()} * 16);
  Result<TocIndex> toc =
      ParseTocStream(next, TocFormat::kEstargz, toc_offset, limits.toc, expected_text);
  if (read_error) return Fail(*read_error);
  // The rest of the text (after the root object), then the rest of the member.
  while (true) {
    HOIST_ASSIGN_OR_RETURN(std::string_view rest, next());
    if (rest.empty()) break;
  }
  while (true) {
    auto n = gunzip.Read(piece.data(), piece.size());
    if (!n) return member_error(n.error());
    if (*n == 0) break;
  }
  const Digest digest = Digest::FromSha256(sha.Final());
  if (json_digest) *json_digest = digest;
  if (!toc_digest.empty() && digest != toc_digest)
    return Fail(EIO,
                "eStargz TOC digest mismatch: got " + digest.str() + ", want " + toc_digest.str());
  if (!toc) return Fail(toc.error());
  ApplyStargzLandmarks(toc->entries);
  return std::move(toc->entries);
}

Result<EstargzLayer> LoadEstargzLayer(const BlobRangeReader& read, uint64_t blob_size,
                                      const Digest& layer_digest,
                                      const EstargzAnnotations& annotations,
                                      const EstargzOptions& options) {
  if (annotations.toc_digest.empty() && !options.trust_unverified_toc)
    return Fail(EPERM, std::string("eStargz layer ") + layer_digest.str() + " has no " +
                           kAnnotationStargzTocDigest +
                           " annotation; its TOC cannot be verified (mount it as tar+gzip)");
  if (blob_size < kEstargzLegacyFooterSize)
    return Fail(EBADMSG, "blob of " + std::to_string(blob_size) +
                             " bytes is too small to hold an eStargz footer");
  EstargzLayer out;
  // The footer and, usually, the TOC member in one request (blob_tail.h).
  auto tail = ReadBlobTail(read, blob_size, kEstargzFooterSize);
  if (!tail) return Fail(tail.error().Context("reading the eStargz footer"));
  const uint64_t footer_len = std::min<uint64_t>(kEstargzFooterSize, blob_size);
  HOIST_ASSIGN_OR_RETURN(
      out.footer,
      ParseEstargzFooter(std::string_view(tail->bytes).substr(tail->bytes.size() - footer_len),
                         blob_size));
  const uint64_t toc_len = blob_size - out.footer.footer_size - out.footer.toc_offset;
  if (toc_len > options.limits.max_toc_compressed)
    return Fail(EFBIG, "eStargz TOC member of " + std::to_string(toc_len) +
                           " compressed bytes is over the cap");
  auto member = ReadBlobRange(read, *tail, out.footer.toc_offset, toc_len);
  if (!member) return Fail(member.error().Context("reading the eStargz TOC"));
  HOIST_ASSIGN_OR_RETURN(out.index.entries,
                         ParseEstargzToc(*member, annotations.toc_digest, out.footer.toc_offset,
                                         options.limits, &out.toc_json_digest));
  out.toc_verified = !annotations.toc_digest.empty();
  out.index.layer_digest = layer_digest;
  out.index.blob_size = blob_size;
  out.index.format = LayerFormat::kEstargz;
  return out;
}

}  // namespace hoist
