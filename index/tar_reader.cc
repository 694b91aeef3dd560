#include "index/tar_reader.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <vector>

#include "base/digest.h"
#include "index/tar_path.h"

namespace hoist {
namespace {

constexpr size_t kBlock = 512;

std::string_view Field(const char* block, size_t off, size_t len) {
  std::string_view f(block + off, len);
  size_t nul = f.find('\0');
  return nul == std::string_view::npos ? f : f.substr(0, nul);
}

bool AllZero(const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != 0) return false;
  return true;
}

uint64_t PaddingFor(uint64_t size) { return (kBlock - size % kBlock) % kBlock; }

bool IsHeaderOnly(char t) {
  return t == '1' || t == '2' || t == '3' || t == '4' || t == '5' || t == '6';
}

Result<std::string> UrlDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) return Fail(EBADMSG, "bad %-escape");
      int v = 0;
      auto r = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (r.ec != std::errc() || r.ptr != s.data() + i + 3) return Fail(EBADMSG, "bad %-escape");
      out += static_cast<char>(v);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// "123.456789" -> (sec, nsec). Negative values allowed ("-1.5" = -2 s + 0.5e9 ns).
Result<std::pair<int64_t, uint32_t>> ParsePaxTime(std::string_view v) {
  bool neg = false;
  std::string_view s = v;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  size_t dot = s.find('.');
  std::string_view whole = s.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
  if (whole.empty() && frac.empty()) return Fail(EBADMSG, "bad pax time");
  int64_t sec = 0;
  if (!whole.empty()) {
    auto r = std::from_chars(whole.data(), whole.data() + whole.size(), sec);
    if (r.ec != std::errc() || r.ptr != whole.data() + whole.size() || sec < 0)
      return Fail(EBADMSG, "bad pax time");
  }
  uint32_t nsec = 0;
  for (size_t i = 0; i < frac.size(); ++i) {
    if (frac[i] < '0' || frac[i] > '9') return Fail(EBADMSG, "bad pax time");
    if (i < 9) nsec = nsec * 10 + (frac[i] - '0');
  }
  for (size_t i = frac.size(); i < 9; ++i) nsec *= 10;
  if (neg) {
    sec = -sec;
    if (nsec) {
      sec -= 1;
      nsec = 1000000000 - nsec;
    }
  }
  return std::make_pair(sec, nsec);
}

Result<uint64_t> ParsePaxUint(std::string_view v) {
  uint64_t out = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || r.ec != std::errc() || r.ptr != v.data() + v.size())
    return Fail(EBADMSG, "bad pax number \"" + std::string(v.substr(0, 40)) + "\"");
  return out;
}

}  // namespace

Result<int64_t> ParseTarNumber(std::string_view f, bool allow_negative) {
  if (!f.empty() && (static_cast<unsigned char>(f[0]) & 0x80)) {
    // Base-256, two's complement, big-endian; bit 6 of byte 0 is the sign.
    bool neg = static_cast<unsigned char>(f[0]) & 0x40;
    if (neg && !allow_negative) return Fail(EBADMSG, "negative base-256 number");
    uint64_t v = neg ? ~uint64_t{0} : 0;
    for (size_t i = 0; i < f.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(f[i]);
      if (i == 0) c &= 0x7f;
      if (i == 0 && neg) c |= 0x80;
      if (((v >> 56) & 0xff) != (neg ? 0xffu : 0u)) return Fail(EBADMSG, "base-256 overflow");
      v = (v << 8) | c;
    }
    int64_t s = static_cast<int64_t>(v);
    if ((s < 0) != neg) return Fail(EBADMSG, "base-256 overflow");
    return s;
  }
  size_t i = 0;
  while (i < f.size() && (f[i] == ' ' || f[i] == '\0')) ++i;
  uint64_t v = 0;
  size_t digits = 0;
  for (; i < f.size() && f[i] >= '0' && f[i] <= '7'; ++i, ++digits) {
    if (v >> 60) return Fail(EBADMSG, "octal number overflow");
    v = v * 8 + (f[i] - '0');
  }
  for (; i < f.size(); ++i) {
    if (f[i] != ' ' && f[i] != '\0')
      return Fail(EBADMSG, "bad octal number \"" + std::string(f) + "\"");
  }
  (void)digits;
  if (v > static_cast<uint64_t>(INT64_MAX)) return Fail(EBADMSG, "octal number overflow");
  return static_cast<int64_t>(v);
}

namespace {

using PaxList = std::vector<std::pair<std::string, std::string>>;

// The records in stream order (GNU sparse 0.0 repeats keys, so order matters there).
Result<PaxList> ParsePaxRecordList(std::string_view data) {
  PaxList out;
  while (!data.empty()) {
    // Some writers pad the pax payload with NULs; stop there.
    if (data[0] == '\0' && AllZero(data.data(), data.size())) break;
    size_t sp = data.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp > 20) return Fail(EBADMSG, "bad pax record");
    uint64_t len = 0;
    auto r = std::from_chars(data.data(), data.data() + sp, len);
    if (r.ec != std::errc() || r.ptr != data.data() + sp || len <= sp + 1 || len > data.size())
      return Fail(EBADMSG, "bad pax record length");
    std::string_view rec = data.substr(sp + 1, len - sp - 1);
    if (rec.empty() || rec.back() != '\n') return Fail(EBADMSG, "pax record not ended by newline");
    rec.remove_suffix(1);
    size_t eq = rec.find('=');
    if (eq == std::string_view::npos || eq == 0) return Fail(EBADMSG, "pax record without key");
    out.emplace_back(std::string(rec.substr(0, eq)), std::string(rec.substr(eq + 1)));
    data.remove_prefix(len);
  }
  return out;
}

enum class SparseFormat { kNone, k0x, k1x0 };

// Which PAX sparse format the records describe, decided as Go's archive/tar decides it.
SparseFormat SparseFormatOf(const std::map<std::string, std::string>& recs) {
  auto get = [&](const char* k) {
    auto it = recs.find(k);
    return it == recs.end() ? std::string_view() : std::string_view(it->second);
  };
  std::string_view major = get("GNU.sparse.major"), minor = get("GNU.sparse.minor");
  if (major == "0" && (minor == "0" || minor == "1")) return SparseFormat::k0x;
  if (major == "1" && minor == "0") return SparseFormat::k1x0;
  if (!major.empty() || !minor.empty()) return SparseFormat::kNone;  // unknown: a plain file
  if (!get("GNU.sparse.map").empty()) return SparseFormat::k0x;
  return SparseFormat::kNone;
}

using SparsePairs = std::vector<std::pair<uint64_t, uint64_t>>;  // (offset, length)

// Format 0.0 / 0.1: GNU.sparse.numblocks and GNU.sparse.map="off,len,off,len,...".
Result<SparsePairs> ParseSparseMap0x(const std::map<std::string, std::string>& recs) {
  auto nb = recs.find("GNU.sparse.numblocks");
  if (nb == recs.end()) return Fail(EBADMSG, "sparse map without GNU.sparse.numblocks");
  auto count = ParsePaxUint(nb->second);
  if (!count) return Fail(EBADMSG, "bad GNU.sparse.numblocks");
  if (*count > kMaxSparseSegments)
    return Fail(EFBIG, "sparse map of " + std::to_string(*count) + " segments is over the cap of " +
                           std::to_string(kMaxSparseSegments));
  auto m = recs.find("GNU.sparse.map");
  std::string_view map = m == recs.end() ? std::string_view() : std::string_view(m->second);
  SparsePairs out;
  std::vector<uint64_t> nums;
  while (!map.empty()) {
    if (nums.size() >= 2 * *count)
      return Fail(EBADMSG, "GNU.sparse.map does not match GNU.sparse.numblocks");
    size_t comma = map.find(',');
    auto v = ParsePaxUint(map.substr(0, comma));
    if (!v) return Fail(EBADMSG, "bad number in GNU.sparse.map");
    nums.push_back(*v);
    if (comma == std::string_view::npos) break;
    map.remove_prefix(comma + 1);
    if (map.empty()) return Fail(EBADMSG, "bad number in GNU.sparse.map");
  }
  if (nums.size() != 2 * *count)
    return Fail(EBADMSG, "GNU.sparse.map does not match GNU.sparse.numblocks");
  for (size_t i = 0; i < nums.size(); i += 2) out.emplace_back(nums[i], nums[i + 1]);
  return out;
}

// Go's rules: offsets increase, segments do not overlap and end within the real size.
Status ValidateSparse(const SparsePairs& pairs, uint64_t real_size) {
  uint64_t prev_end = 0;
  for (const auto& [off, len] : pairs) {
    if (off > real_size || len > real_size - off)
      return Fail(EBADMSG, "sparse segment at " + std::to_string(off) + "+" + std::to_string(len) +
                               " ends beyond the real size " + std::to_string(real_size));
    if (off < prev_end)
      return Fail(EBADMSG,
                  "sparse segments out of order or overlapping at offset " + std::to_string(off));
    prev_end = off + len;
  }
  return Ok();
}

}  // namespace

Result<std::map<std::string, std::string>> ParsePaxRecords(std::string_view data) {
  HOIST_ASSIGN_OR_RETURN(PaxList list, ParsePaxRecordList(data));
  std::map<std::string, std::string> out;
  for (auto& [k, v] : list) out[std::move(k)] = std::move(v);
  return out;
}

Result<std::vector<std::pair<uint64_t, uint64_t>>> TarReader::ReadSparseMap1x0(
    uint64_t stored_size, uint64_t* map_bytes) {
  // Decimal numbers, each ended by '\n': the count, then offset and length per segment; the
  // map fills whole 512-byte blocks at the start of the data.
  std::string text;
  size_t pos = 0;
  auto next_number = [&]() -> Result<uint64_t> {
    for (;;) {
      size_t nl = text.find('\n', pos);
      if (nl != std::string::npos) {
        auto v = ParsePaxUint(std::string_view(text).substr(pos, nl - pos));
        if (!v || nl - pos > 20) return Fail(Corrupt(position_, "bad number in the sparse map"));
        pos = nl + 1;
        return *v;
      }
      if (text.size() - pos > 20) return Fail(Corrupt(position_, "bad number in the sparse map"));
      if (text.size() + kBlock > stored_size)
        return Fail(Corrupt(position_, "sparse map runs past the member's data"));
      const uint64_t at = position_;
      char block[kBlock];
      HOIST_ASSIGN_OR_RETURN(size_t got, ReadUpTo(block, kBlock));
      if (got < kBlock) return Fail(Corrupt(at + got, "truncated sparse map"));
      raw_header_.append(block, kBlock);
      text.append(block, kBlock);
    }
  };
  HOIST_ASSIGN_OR_RETURN(uint64_t count, next_number());
  if (count > kMaxSparseSegments)
    return Fail(Error(EFBIG, Corrupt(position_, "sparse map of " + std::to_string(count) +
                                                    " segments is over the cap of " +
                                                    std::to_string(kMaxSparseSegments))
                                 .message()));
  SparsePairs out;
  out.reserve(static_cast<size_t>(count));
  for (uint64_t i = 0; i < count; ++i) {
    HOIST_ASSIGN_OR_RETURN(uint64_t off, next_number());
    HOIST_ASSIGN_OR_RETURN(uint64_t len, next_number());
    out.emplace_back(off, len);
  }
  *map_bytes = text.size();
  return out;
}

TarReader::TarReader(ReadCallback source, TarReaderOptions options)
    : source_(std::move(source)), options_(options) {}

Error TarReader::Corrupt(uint64_t offset, std::string_view what) const {
  std::string msg = "tar";
  if (!member_.raw_name.empty()) msg += " entry " + QuoteName(member_.raw_name);
  msg += " at byte " + std::to_string(offset) + ": " + std::string(what);
  return Error(EBADMSG, msg);
}

Result<size_t> TarReader::ReadUpTo(char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    HOIST_ASSIGN_OR_RETURN(size_t r, source_(buf + got, n - got));
    if (r == 0) break;
    if (r > n - got) return Fail(EIO, "tar source returned more bytes than asked for");
    got += r;
  }
  position_ += got;
  return got;
}

Result<size_t> TarReader::ReadPayload(char* buf, size_t n) {
  if (member_finished_ || payload_left_ == 0) return 0;
  size_t want = static_cast<size_t>(std::min<uint64_t>(n, payload_left_));
  uint64_t at = position_;
  HOIST_ASSIGN_OR_RETURN(size_t got, ReadUpTo(buf, want));
  if (got < want) return Fail(Corrupt(at + got, "truncated payload"));
  payload_left_ -= got;
  return got;
}

Result<std::string_view> TarReader::FinishMember() {
  if (member_finished_) return std::string_view(padding_);
  char buf[16384];
  while (payload_left_ > 0) {
    HOIST_ASSIGN_OR_RETURN(size_t got, ReadPayload(buf, sizeof buf));
    if (got == 0) break;
  }
  padding_.assign(member_.padding, '\0');
  uint64_t at = position_;
  HOIST_ASSIGN_OR_RETURN(size_t got, ReadUpTo(padding_.data(), padding_.size()));
  if (got < padding_.size()) {
    // EOF inside the padding of the last member: tolerated by GNU tar only for the last block;
    // we are strict, the stream cannot be reproduced.
    return Fail(Corrupt(at + got, "truncated padding"));
  }
  member_finished_ = true;
  return std::string_view(padding_);
}

Result<size_t> TarReader::ReadTrailer(char* buf, size_t n) {
  if (!at_end_) return Fail(EINVAL, "tar trailer read before the end of the archive");
  if (trailer_pos_ < trailer_buf_.size()) {
    size_t take = std::min(n, trailer_buf_.size() - trailer_pos_);
    std::memcpy(buf, trailer_buf_.data() + trailer_pos_, take);
    trailer_pos_ += take;
    return take;
  }
  HOIST_ASSIGN_OR_RETURN(size_t r, source_(buf, n));
  position_ += r;
  return r;
}

Result<const TarMember*> TarReader::Next() {
  if (at_end_) return nullptr;
  HOIST_RETURN_IF_ERROR(FinishMember());
  member_ = TarMember();
  raw_header_.clear();
  padding_.clear();
  const uint64_t start = position_;
  member_.header_offset = start;

  std::map<std::string, std::string> pax;
  std::vector<std::string> sparse00;  // GNU.sparse.offset/numbytes values, in stream order
  bool have_pax = false;
  std::string long_name, long_link;
  bool have_long_name = false, have_long_link = false;
  char block[kBlock];

  for (;;) {
    const uint64_t block_at = position_;
    HOIST_ASSIGN_OR_RETURN(size_t got, ReadUpTo(block, kBlock));
    const bool only_globals = !have_pax && !have_long_name && !have_long_link;
    if (got == 0 && only_globals) {  // EOF at a member boundary: end without zero blocks
      at_end_ = true;
      trailer_offset_ = start;
      trailer_buf_ = raw_header_;  // global headers not followed by a member
      return nullptr;
    }
    if (got < kBlock) return Fail(Corrupt(block_at, "truncated header block"));
    if (AllZero(block, kBlock)) {
      if (!only_globals)
        return Fail(Corrupt(block_at, "end-of-archive block after a metadata header"));
      char second[kBlock];
      HOIST_ASSIGN_OR_RETURN(size_t got2, ReadUpTo(second, kBlock));
      if (got2 == kBlock && !AllZero(second, kBlock))
        return Fail(Corrupt(block_at + kBlock, "non-zero block after a zero block"));
      at_end_ = true;
      trailer_offset_ = start;
      trailer_buf_ = raw_header_;
      trailer_buf_.append(block, kBlock);
      trailer_buf_.append(second, got2);
      return nullptr;
    }
    raw_header_.append(block, kBlock);

    // Checksum: sum of the block with the checksum field read as spaces.
    uint64_t usum = 0;
    int64_t ssum = 0;
    for (size_t i = 0; i < kBlock; ++i) {
      unsigned char c = (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(block[i]);
      usum += c;
      ssum += static_cast<signed char>(c);
    }
    auto stored = ParseTarNumber(std::string_view(block + 148, 8), false);
    if (!stored || (static_cast<uint64_t>(*stored) != usum && *stored != ssum))
      return Fail(Corrupt(block_at, "header checksum mismatch"));

    const char type = block[156];
    auto size_or = ParseTarNumber(std::string_view(block + 124, 12), false);
    if (!size_or) return Fail(Corrupt(block_at, "bad size field: " + size_or.error().message()));
    uint64_t size = static_cast<uint64_t>(*size_or);

    if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
      if (size > options_.max_metadata_size)
        return Fail(Error(EFBIG, Corrupt(block_at, "metadata header of " + std::to_string(size) +
                                                       " bytes is over the cap")
                                     .message()));
      std::string data(size + PaddingFor(size), '\0');
      HOIST_ASSIGN_OR_RETURN(size_t dgot, ReadUpTo(data.data(), data.size()));
      if (dgot < data.size()) return Fail(Corrupt(block_at, "truncated metadata header"));
      raw_header_ += data;
      data.resize(size);
      if (type == 'x' || type == 'g') {
        auto recs = ParsePaxRecordList(data);
        if (!recs) return Fail(Corrupt(block_at, recs.error().message()));
        for (auto& [k, v] : *recs) {
          if (type == 'g' && k.starts_with("GNU.sparse."))
            return Fail(
                Error(ENOTSUP,
                      Corrupt(block_at, "GNU sparse records in a global header are not supported")
                          .message()));
          if (k == "GNU.sparse.offset" || k == "GNU.sparse.numbytes") {
            // Format 0.0: offset/numbytes pairs in order, gathered into a map as Go does.
            const bool want_offset = sparse00.size() % 2 == 0;
            if ((k == "GNU.sparse.offset") != want_offset || v.find(',') != std::string::npos)
              return Fail(Corrupt(block_at, "GNU.sparse.offset/numbytes records out of order"));
            if (sparse00.size() >= 2 * kMaxSparseSegments)
              return Fail(Error(
                  EFBIG, Corrupt(block_at, "sparse map over the cap of " +
                                               std::to_string(kMaxSparseSegments) + " segments")
                             .message()));
            sparse00.push_back(v);
          }
        }
        if (type == 'g') {
          for (auto& [k, v] : *recs) global_pax_[k] = v;
        } else {
          for (auto& [k, v] : *recs) pax[k] = v;
          have_pax = true;
        }
      } else {
        size_t nul = data.find('\0');
        if (nul != std::string::npos) data.resize(nul);
        if (type == 'L') {
          long_name = std::move(data);
          have_long_name = true;
        } else {
          long_link = std::move(data);
          have_long_link = true;
        }
      }
      continue;
    }

    // The main header.
    if (!sparse00.empty()) {
      std::string joined;
      for (const std::string& v : sparse00) joined += (joined.empty() ? "" : ",") + v;
      pax["GNU.sparse.map"] = std::move(joined);
    }
    if (type == 'S')
      return Fail(
          Error(ENOTSUP, Corrupt(block_at, "GNU sparse files are not supported").message()));
    const bool known = type == '0' || type == '\0' || type == '7' || IsHeaderOnly(type);
    std::string_view magic(block + 257, 6);
    const bool posix = magic == std::string_view("ustar\0", 6);
    std::string name(Field(block, 0, 100));
    if (posix) {
      std::string_view prefix = Field(block, 345, 155);
      if (!prefix.empty()) name = std::string(prefix) + "/" + name;
    }
    if (have_long_name) name = long_name;
    std::string link(Field(block, 157, 100));
    if (have_long_link) link = long_link;

    // Global records apply first, local ones override.
    std::map<std::string, std::string> recs = global_pax_;
    for (auto& [k, v] : pax) recs[k] = v;
    (void)have_pax;
    if (auto it = recs.find("path"); it != recs.end() && !it->second.empty()) name = it->second;
    if (auto it = recs.find("linkpath"); it != recs.end() && !it->second.empty()) link = it->second;
    const SparseFormat sparse_format = SparseFormatOf(recs);
    if (sparse_format != SparseFormat::kNone) {
      if (auto it = recs.find("GNU.sparse.name"); it != recs.end() && !it->second.empty())
        name = it->second;
    }
    member_.raw_name = name;
    member_.raw_link = link;
    if (!known) {
      std::string t = type >= 0x20 && type < 0x7f
                          ? std::string(1, type)
                          : "\\x" + std::to_string(static_cast<unsigned char>(type));
      return Fail(Corrupt(start, "unsupported typeflag '" + t + "'"));
    }

    Entry& e = member_.entry;
    auto num = [&](size_t off, size_t len, const char* what, bool neg) -> Result<int64_t> {
      auto v = ParseTarNumber(std::string_view(block + off, len), neg);
      if (!v) return Fail(Corrupt(start, std::string("bad ") + what + " field"));
      return *v;
    };
    HOIST_ASSIGN_OR_RETURN(int64_t mode, num(100, 8, "mode", false));
    HOIST_ASSIGN_OR_RETURN(int64_t uid, num(108, 8, "uid", false));
    HOIST_ASSIGN_OR_RETURN(int64_t gid, num(116, 8, "gid", false));
    HOIST_ASSIGN_OR_RETURN(int64_t mtime, num(136, 12, "mtime", true));
    e.mode = static_cast<uint32_t>(mode & 07777);
    e.mtime_sec = mtime;
    e.mtime_nsec = 0;
    auto id_ok = [](uint64_t v) { return v <= UINT32_MAX; };
    if (!id_ok(uid) || !id_ok(gid)) return Fail(Corrupt(start, "uid/gid out of range"));
    e.uid = static_cast<uint32_t>(uid);
    e.gid = static_cast<uint32_t>(gid);
    if (type == '3' || type == '4') {
      HOIST_ASSIGN_OR_RETURN(int64_t maj, num(329, 8, "devmajor", false));
      HOIST_ASSIGN_OR_RETURN(int64_t min, num(337, 8, "devminor", false));
      if (!id_ok(maj) || !id_ok(min)) return Fail(Corrupt(start, "device number out of range"));
      e.dev_major = static_cast<uint32_t>(maj);
      e.dev_minor = static_cast<uint32_t>(min);
    }
    for (auto& [k, v] : recs) {
      if (k == "size") {
        auto s = ParsePaxUint(v);
        if (!s) return Fail(Corrupt(start, "bad pax size"));
        size = *s;
      } else if (k == "uid" || k == "gid") {
        auto s = ParsePaxUint(v);
        if (!s || *s > UINT32_MAX) return Fail(Corrupt(start, "bad pax " + k));
        (k == "uid" ? e.uid : e.gid) = static_cast<uint32_t>(*s);
      } else if (k == "mtime") {
        auto t = ParsePaxTime(v);
        if (!t) return Fail(Corrupt(start, "bad pax mtime"));
        e.mtime_sec = t->first;
        e.mtime_nsec = t->second;
      } else if (k.starts_with("SCHILY.xattr.")) {
        e.xattrs.push_back(Xattr{k.substr(13), v});
      } else if (k.starts_with("LIBARCHIVE.xattr.")) {
        auto xname = UrlDecode(std::string_view(k).substr(17));
        std::string b64 = v;
        while (b64.size() % 4) b64 += '=';
        auto xval = Base64Decode(b64);
        if (!xname || !xval) return Fail(Corrupt(start, "bad LIBARCHIVE.xattr record"));
        bool dup = false;
        for (auto& x : e.xattrs) dup |= x.name == *xname;
        if (!dup) e.xattrs.push_back(Xattr{*xname, *xval});
      }
    }
    if (size > (uint64_t{1} << 62)) return Fail(Corrupt(start, "absurd size"));
    uint64_t real_size = size;
    if (sparse_format != SparseFormat::kNone) {
      const bool regular =
          type == '0' || type == '7' || (type == '\0' && !(!name.empty() && name.back() == '/'));
      if (!regular)
        return Fail(Corrupt(start, "GNU sparse records on a member that is not a file"));
      auto it = recs.find("GNU.sparse.size");
      if (it == recs.end()) it = recs.find("GNU.sparse.realsize");
      if (it != recs.end()) {
        auto r = ParsePaxUint(it->second);
        if (!r || *r > (uint64_t{1} << 62)) return Fail(Corrupt(start, "bad sparse real size"));
        real_size = *r;
      }
    }

    switch (type) {
      case '1':
        e.type = EntryType::kHardlink;
        break;
      case '2':
        e.type = EntryType::kSymlink;
        break;
      case '3':
        e.type = EntryType::kCharDevice;
        break;
      case '4':
        e.type = EntryType::kBlockDevice;
        break;
      case '5':
        e.type = EntryType::kDirectory;
        break;
      case '6':
        e.type = EntryType::kFifo;
        break;
      default:
        e.type = (type == '\0' && !name.empty() && name.back() == '/') ? EntryType::kDirectory
                                                                       : EntryType::kRegular;
    }
    member_.typeflag = type;
    auto clean = CleanEntryPath(name);
    if (!clean)
      return Fail(Error(clean.error().code(), Corrupt(start, clean.error().message()).message()));
    e.path = std::move(*clean);
    if (e.type == EntryType::kHardlink) {
      auto target = CleanEntryPath(link);
      if (!target)
        return Fail(
            Error(target.error().code(),
                  Corrupt(start, "hardlink target: " + target.error().message()).message()));
      e.link_name = std::move(*target);
    } else if (e.type == EntryType::kSymlink) {
      if (link.empty()) return Fail(Corrupt(start, "symlink with an empty target"));
      if (link.find('\0') != std::string::npos || link.size() > kMaxPathLength)
        return Fail(Corrupt(start, "bad symlink target"));
      e.link_name = link;
    }
    const bool has_payload = !IsHeaderOnly(type) && e.type == EntryType::kRegular;
    member_.payload_size = has_payload ? size : 0;
    e.size = member_.payload_size;
    if (sparse_format != SparseFormat::kNone) {
      SparsePairs pairs;
      uint64_t map_bytes = 0;
      if (sparse_format == SparseFormat::k1x0) {
        HOIST_ASSIGN_OR_RETURN(pairs, ReadSparseMap1x0(size, &map_bytes));
      } else {
        auto parsed = ParseSparseMap0x(recs);
        if (!parsed)
          return Fail(
              Error(parsed.error().code(), Corrupt(start, parsed.error().message()).message()));
        pairs = std::move(*parsed);
      }
      if (Status v = ValidateSparse(pairs, real_size); !v)
        return Fail(Corrupt(start, v.error().message()));
      const uint64_t stored = size - map_bytes;
      uint64_t at = position_, total = 0;
      member_.is_sparse = true;
      for (const auto& [off, len] : pairs) {
        total += len;  // no overflow: each len <= real_size <= 2^62, count <= 2^18
        if (len == 0) continue;
        member_.sparse.push_back(SparseSegment{off, len, at});
        at += len;
      }
      if (total != stored)
        return Fail(Corrupt(start, "sparse map holds " + std::to_string(total) +
                                       " data bytes but the member stores " +
                                       std::to_string(stored)));
      member_.payload_size = stored;
      e.size = real_size;
    }
    member_.header_length = position_ - start;
    member_.payload_offset = position_;
    member_.padding = PaddingFor(member_.payload_size);
    payload_left_ = member_.payload_size;
    member_finished_ = false;
    return &member_;
  }
}

}  // namespace hoist
