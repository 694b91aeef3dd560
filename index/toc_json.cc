#include "index/toc_json.h"

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <charconv>
#include <optional>
#include <unordered_map>

#include "index/tar_path.h"

namespace hoist {
namespace {

Error Bad(size_t index, std::string_view name, std::string_view what) {
  std::string msg = "TOC entry " + std::to_string(index);
  if (!name.empty()) msg += " " + QuoteName(name);
  msg += ": " + std::string(what);
  return Error(EBADMSG, msg);
}

// Days since 1970-01-01 for a proleptic Gregorian date.
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

}  // namespace

Result<std::pair<int64_t, uint32_t>> ParseRfc3339(std::string_view s) {
  int y, mo, d, h, mi, sec;
  if (!Digits(s, 0, 4, &y) || s.size() < 20 || s[4] != '-' || !Digits(s, 5, 2, &mo) ||
      s[7] != '-' || !Digits(s, 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !Digits(s, 11, 2, &h) || s[13] != ':' || !Digits(s, 14, 2, &mi) || s[16] != ':' ||
      !Digits(s, 17, 2, &sec))
    return Fail(EBADMSG, "bad RFC 3339 time \"" + std::string(s.substr(0, 40)) + "\"");
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
    return Fail(EBADMSG, "bad RFC 3339 time \"" + std::string(s.substr(0, 40)) + "\"");
  size_t pos = 19;
  uint32_t nsec = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t n = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (n < 9) nsec = nsec * 10 + (s[pos] - '0');
      ++n;
      ++pos;
    }
    if (n == 0) return Fail(EBADMSG, "bad RFC 3339 fraction");
    for (; n < 9; ++n) nsec *= 10;
  }
  int64_t offset = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!Digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !Digits(s, pos + 4, 2, &om) || oh > 23 || om > 59)
      return Fail(EBADMSG, "bad RFC 3339 zone");
    offset = (oh * 3600 + om * 60) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return Fail(EBADMSG, "RFC 3339 time without a zone");
  }
  if (pos != s.size()) return Fail(EBADMSG, "trailing bytes after RFC 3339 time");
  int64_t secs = DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset;
  return std::make_pair(secs, nsec);
}

namespace {

// One JSON value of a field the TOC schema knows, as the SAX reader saw it. The checks that need
// the entry's name (for the error message) run when the entry's object ends.
struct FieldValue {
  enum Kind : uint8_t { kAbsent, kString, kUint, kOtherNumber, kBool, kNull, kContainer };
  Kind kind = kAbsent;
  bool boolean = false;
  uint64_t uint = 0;
  std::string text;
};

enum Field : uint8_t {
  kName,
  kType,
  kLinkName,
  kModtime,
  kDigest,
  kChunkDigest,
  kChunkType,
  kMode,
  kUid,
  kGid,
  kSize,
  kDevMajor,
  kDevMinor,
  kOffset,
  kEndOffset,
  kInnerOffset,
  kChunkOffset,
  kChunkSize,
  kPrefetch,
  kFieldCount,
  kXattrs,
  kUnknown,
};

Field FieldOf(std::string_view key) {
  static constexpr std::pair<std::string_view, Field> kFields[] = {
      {"name", kName},
      {"type", kType},
      {"linkName", kLinkName},
      {"modtime", kModtime},
      {"digest", kDigest},
      {"chunkDigest", kChunkDigest},
      {"chunkType", kChunkType},
      {"mode", kMode},
      {"uid", kUid},
      {"gid", kGid},
      {"size", kSize},
      {"devMajor", kDevMajor},
      {"devMinor", kDevMinor},
      {"offset", kOffset},
      {"endOffset", kEndOffset},
      {"innerOffset", kInnerOffset},
      {"chunkOffset", kChunkOffset},
      {"chunkSize", kChunkSize},
      {kTocPrefetchKey, kPrefetch},
      {"xattrs", kXattrs},
  };
  for (const auto& [name, field] : kFields) {
    if (name == key) return field;
  }
  return kUnknown;
}

constexpr const char* kFieldNames[kFieldCount] = {
    "name",        "type",        "linkName",  "modtime",      "digest",
    "chunkDigest", "chunkType",   "mode",      "uid",          "gid",
    "size",        "devMajor",    "devMinor",  "offset",       "endOffset",
    "innerOffset", "chunkOffset", "chunkSize", kTocPrefetchKey};

// The fields of one TOC entry. A key given twice keeps its first value (as a DOM lookup would).
struct RawEntry {
  FieldValue fields[kFieldCount];
  bool has_xattrs = false;
  bool xattrs_not_object = false;
  bool xattr_not_string = false;
  std::vector<std::pair<std::string, std::string>> xattrs;  // name, base64 value

  void Clear() {
    for (FieldValue& f : fields) {
      f.kind = FieldValue::kAbsent;
      f.text.clear();
    }
    has_xattrs = xattrs_not_object = xattr_not_string = false;
    xattrs.clear();
  }
};

Status ReadString(const RawEntry& raw, Field f, size_t index, std::string_view name,
                  std::string* dst) {
  const FieldValue& v = raw.fields[f];
  if (v.kind == FieldValue::kAbsent) return Ok();
  if (v.kind != FieldValue::kString)
    return std::unexpected(Bad(index, name, std::string(kFieldNames[f]) + " is not a string"));
  *dst = v.text;
  return Ok();
}

Status ReadUint(const RawEntry& raw, Field f, size_t index, std::string_view name, uint64_t* dst,
                bool* present = nullptr) {
  const FieldValue& v = raw.fields[f];
  if (v.kind == FieldValue::kAbsent) return Ok();
  if (v.kind != FieldValue::kUint)
    return std::unexpected(
        Bad(index, name, std::string(kFieldNames[f]) + " is not a non-negative integer"));
  if (v.uint > (uint64_t{1} << 62))
    return std::unexpected(Bad(index, name, std::string(kFieldNames[f]) + " is out of range"));
  *dst = v.uint;
  if (present) *present = true;
  return Ok();
}

// Validates one entry's fields into a record (the rules in toc_json.h).
Result<TocRecord> MakeRecord(const RawEntry& raw, size_t index, const TocLimits& limits) {
  TocRecord r;
  std::string type;
  HOIST_RETURN_IF_ERROR(ReadString(raw, kName, index, "", &r.raw_name));
  HOIST_RETURN_IF_ERROR(ReadString(raw, kType, index, r.raw_name, &type));
  Entry& e = r.entry;
  auto clean = CleanEntryPath(r.raw_name);
  if (!clean) return std::unexpected(Bad(index, r.raw_name, clean.error().message()));
  e.path = std::move(*clean);
  if (type == "reg")
    e.type = EntryType::kRegular;
  else if (type == "dir")
    e.type = EntryType::kDirectory;
  else if (type == "symlink")
    e.type = EntryType::kSymlink;
  else if (type == "hardlink")
    e.type = EntryType::kHardlink;
  else if (type == "char")
    e.type = EntryType::kCharDevice;
  else if (type == "block")
    e.type = EntryType::kBlockDevice;
  else if (type == "fifo")
    e.type = EntryType::kFifo;
  else if (type == "chunk")
    r.is_chunk = true;
  else
    return std::unexpected(Bad(index, r.raw_name, "unknown type \"" + type.substr(0, 20) + "\""));
  auto u32 = [&](Field f, uint32_t* dst, const char* what) -> Status {
    uint64_t v = 0;
    HOIST_RETURN_IF_ERROR(ReadUint(raw, f, index, r.raw_name, &v));
    if (v > UINT32_MAX)
      return std::unexpected(Bad(index, r.raw_name, std::string(what) + " out of range"));
    *dst = static_cast<uint32_t>(v);
    return Ok();
  };
  uint64_t mode = 0;
  HOIST_RETURN_IF_ERROR(ReadUint(raw, kMode, index, r.raw_name, &mode));
  e.mode = static_cast<uint32_t>(mode & 07777);
  HOIST_RETURN_IF_ERROR(u32(kUid, &e.uid, "uid"));
  HOIST_RETURN_IF_ERROR(u32(kGid, &e.gid, "gid"));
  HOIST_RETURN_IF_ERROR(ReadUint(raw, kSize, index, r.raw_name, &e.size));
  if (e.size > limits.max_file_size)
    return std::unexpected(Error(
        EFBIG,
        Bad(index, r.raw_name, "size " + std::to_string(e.size) + " is over the cap").message()));
  HOIST_RETURN_IF_ERROR(u32(kDevMajor, &e.dev_major, "devMajor"));
  HOIST_RETURN_IF_ERROR(u32(kDevMinor, &e.dev_minor, "devMinor"));
  HOIST_RETURN_IF_ERROR(ReadUint(raw, kOffset, index, r.raw_name, &r.offset, &r.has_offset));
  HOIST_RETURN_IF_ERROR(
      ReadUint(raw, kEndOffset, index, r.raw_name, &r.end_offset, &r.has_end_offset));
  HOIST_RETURN_IF_ERROR(ReadUint(raw, kInnerOffset, index, r.raw_name, &r.inner_offset));
  HOIST_RETURN_IF_ERROR(ReadUint(raw, kChunkOffset, index, r.raw_name, &r.chunk_offset));
  HOIST_RETURN_IF_ERROR(ReadUint(raw, kChunkSize, index, r.raw_name, &r.chunk_size));
  std::string link, mtime, digest, chunk_digest, chunk_type;
  HOIST_RETURN_IF_ERROR(ReadString(raw, kLinkName, index, r.raw_name, &link));
  HOIST_RETURN_IF_ERROR(ReadString(raw, kModtime, index, r.raw_name, &mtime));
  HOIST_RETURN_IF_ERROR(ReadString(raw, kDigest, index, r.raw_name, &digest));
  HOIST_RETURN_IF_ERROR(ReadString(raw, kChunkDigest, index, r.raw_name, &chunk_digest));
  HOIST_RETURN_IF_ERROR(ReadString(raw, kChunkType, index, r.raw_name, &chunk_type));
  if (!mtime.empty()) {
    auto t = ParseRfc3339(mtime);
    if (!t) return std::unexpected(Bad(index, r.raw_name, "modtime: " + t.error().message()));
    e.mtime_sec = t->first;
    e.mtime_nsec = t->second;
  }
  if (!digest.empty()) {
    auto d = Digest::Parse(digest);
    if (!d) return std::unexpected(Bad(index, r.raw_name, "digest: " + d.error().message()));
    e.digest = *d;
  }
  if (!chunk_digest.empty()) {
    auto d = Digest::Parse(chunk_digest);
    if (!d) return std::unexpected(Bad(index, r.raw_name, "chunkDigest: " + d.error().message()));
    r.chunk_digest = *d;
  }
  if (chunk_type == "zeros")
    r.zeros = true;
  else if (!chunk_type.empty())
    return std::unexpected(Bad(index, r.raw_name, "unknown chunkType"));
  if (e.type == EntryType::kHardlink) {
    auto t = CleanEntryPath(link);
    if (!t)
      return std::unexpected(Bad(index, r.raw_name, "hardlink target: " + t.error().message()));
    e.link_name = std::move(*t);
  } else if (e.type == EntryType::kSymlink) {
    if (link.empty() || link.find('\0') != std::string::npos || link.size() > kMaxPathLength)
      return std::unexpected(Bad(index, r.raw_name, "bad symlink target"));
    e.link_name = std::move(link);
  }
  if (raw.xattrs_not_object)
    return std::unexpected(Bad(index, r.raw_name, "xattrs is not an object"));
  if (raw.xattr_not_string)
    return std::unexpected(Bad(index, r.raw_name, "xattr value is not a string"));
  for (const auto& [xname, b64] : raw.xattrs) {
    auto val = Base64Decode(b64);
    if (!val) return std::unexpected(Bad(index, r.raw_name, "xattr value is not base64"));
    if (xname.empty() || xname.find('\0') != std::string::npos)
      return std::unexpected(Bad(index, r.raw_name, "bad xattr name"));
    e.xattrs.push_back(Xattr{xname, std::move(*val)});
  }
  std::sort(e.xattrs.begin(), e.xattrs.end(),
            [](const Xattr& a, const Xattr& b) { return a.name < b.name; });
  const FieldValue& pf = raw.fields[kPrefetch];
  if (pf.kind != FieldValue::kAbsent) {
    if (pf.kind != FieldValue::kBool)
      return std::unexpected(Bad(index, r.raw_name, "prefetch mark is not a bool"));
    e.prefetch = pf.boolean;
  }
  return r;
}

// RapidJSON SAX handler: builds TocRecords entry by entry, with no document tree (a DOM of a
// 100,000-entry TOC costs tens of MB and most of the parse time). Returning false stops the
// parse; `error` then says why.
class TocHandler {
 public:
  explicit TocHandler(const TocLimits& limits) : limits_(limits) {}

  std::optional<Error> error;
  TocJson out;
  bool saw_version = false;
  bool saw_entries = false;

  bool Null() { return Scalar(FieldValue::kNull, 0, false, {}); }
  bool Bool(bool b) { return Scalar(FieldValue::kBool, 0, b, {}); }
  bool Int(int i) {
    return i >= 0 ? Uint(static_cast<unsigned>(i))
                  : Scalar(FieldValue::kOtherNumber, 0, false, {}, i);
  }
  bool Uint(unsigned u) {
    return Scalar(FieldValue::kUint, u, false, {}, u <= INT32_MAX ? int64_t{u} : -1);
  }
  bool Int64(int64_t i) {
    return i >= 0 ? Uint64(static_cast<uint64_t>(i))
                  : Scalar(FieldValue::kOtherNumber, 0, false, {});
  }
  bool Uint64(uint64_t u) { return Scalar(FieldValue::kUint, u, false, {}); }
  bool Double(double) { return Scalar(FieldValue::kOtherNumber, 0, false, {}); }
  bool RawNumber(const char*, rapidjson::SizeType, bool) { return false; }  // not requested
  bool String(const char* s, rapidjson::SizeType n, bool) {
    return Scalar(FieldValue::kString, 0, false, std::string_view(s, n));
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    if (skip_ > 0) return true;
    key_.assign(s, n);
    return true;
  }
  bool StartObject() { return Start(true); }
  bool EndObject(rapidjson::SizeType) { return End(); }
  bool StartArray() { return Start(false); }
  bool EndArray(rapidjson::SizeType) { return End(); }

 private:
  // Where the parser is. Anything unknown (any depth) is skipped by counting.
  enum class At { kTop, kRoot, kEntries, kEntry, kXattrs, kDone };

  bool Fail(Error e) {
    error = std::move(e);
    return false;
  }

  bool Start(bool object) {
    if (skip_ > 0) {
      ++skip_;
      return true;
    }
    switch (at_) {
      case At::kTop:
        if (!object) return Fail(Error(EBADMSG, "TOC is not a JSON object"));
        at_ = At::kRoot;
        return true;
      case At::kRoot:
        if (key_ == "entries") {
          if (object) return Fail(Error(EBADMSG, "TOC has no entries array"));
          if (saw_entries) break;  // a repeated key: the first one counts
          saw_entries = true;
          at_ = At::kEntries;
          return true;
        }
        if (key_ == "version" && !saw_version) return Fail(VersionError());
        if (key_ == "tarSplitDigest" && !saw_split_)
          return Fail(Error(EBADMSG, "TOC tarSplitDigest is not a string"));
        break;
      case At::kEntries:
        if (!object) return Fail(Bad(index_, "", "not an object"));
        if (index_ >= limits_.max_entries)
          return Fail(Error(EFBIG, "TOC has more than " + std::to_string(limits_.max_entries) +
                                       " entries, over the cap"));
        raw_.Clear();
        at_ = At::kEntry;
        return true;
      case At::kEntry: {
        const Field f = FieldOf(key_);
        if (f == kXattrs) {
          if (raw_.has_xattrs) break;
          raw_.has_xattrs = true;
          if (!object) {
            raw_.xattrs_not_object = true;
            break;
          }
          at_ = At::kXattrs;
          return true;
        }
        if (f < kFieldCount && raw_.fields[f].kind == FieldValue::kAbsent)
          raw_.fields[f].kind = FieldValue::kContainer;
        break;
      }
      case At::kXattrs:
        raw_.xattr_not_string = true;
        break;
      case At::kDone:
        return true;
    }
    skip_ = 1;
    return true;
  }

  bool End() {
    if (skip_ > 0) {
      --skip_;
      return true;
    }
    switch (at_) {
      case At::kRoot:
        at_ = At::kDone;
        return true;
      case At::kEntries:
        at_ = At::kRoot;
        return true;
      case At::kEntry: {
        Result<TocRecord> r = MakeRecord(raw_, index_, limits_);
        if (!r) return Fail(r.error());
        out.records.push_back(std::move(*r));
        ++index_;
        at_ = At::kEntries;
        return true;
      }
      case At::kXattrs:
        at_ = At::kEntry;
        return true;
      default:
        return true;
    }
  }

  bool Scalar(FieldValue::Kind kind, uint64_t u, bool b, std::string_view text,
              int64_t as_int = -1) {
    if (skip_ > 0) return true;
    switch (at_) {
      case At::kTop:
        return Fail(Error(EBADMSG, "TOC is not a JSON object"));
      case At::kRoot:
        if (key_ == "version" && !saw_version) {
          saw_version = true;
          if (as_int != 1 && as_int != 2) return Fail(VersionError());
          out.version = static_cast<int>(as_int);
        } else if (key_ == "tarSplitDigest" && !saw_split_) {
          saw_split_ = true;
          if (kind != FieldValue::kString)
            return Fail(Error(EBADMSG, "TOC tarSplitDigest is not a string"));
          auto d = Digest::Parse(text);
          if (!d) return Fail(Error(EBADMSG, "TOC tarSplitDigest: " + d.error().message()));
          out.tar_split_digest = *d;
        } else if (key_ == "entries" && !saw_entries) {
          return Fail(Error(EBADMSG, "TOC has no entries array"));
        }
        return true;
      case At::kEntries:
        return Fail(Bad(index_, "", "not an object"));
      case At::kEntry: {
        const Field f = FieldOf(key_);
        if (f == kXattrs) {
          if (!raw_.has_xattrs) raw_.has_xattrs = raw_.xattrs_not_object = true;
          return true;
        }
        if (f >= kFieldCount || raw_.fields[f].kind != FieldValue::kAbsent) return true;
        FieldValue& v = raw_.fields[f];
        v.kind = kind;
        v.uint = u;
        v.boolean = b;
        if (kind == FieldValue::kString) v.text.assign(text);
        return true;
      }
      case At::kXattrs:
        if (kind != FieldValue::kString) {
          raw_.xattr_not_string = true;
        } else {
          raw_.xattrs.emplace_back(key_, std::string(text));
        }
        return true;
      case At::kDone:
        return true;
    }
    return true;
  }

  static Error VersionError() { return Error(EBADMSG, "TOC version is missing or not 1"); }

  const TocLimits& limits_;
  At at_ = At::kTop;
  int skip_ = 0;  // depth inside a value being skipped
  std::string key_;
  RawEntry raw_;
  size_t index_ = 0;
  bool saw_split_ = false;
};

// A RapidJSON input stream over a TocTextSource. A source error ends the text (Peek() gives
// '\0', which fails the parse) and is kept for the caller.
class PieceStream {
 public:
  using Ch = char;
  explicit PieceStream(const TocTextSource& next) : next_(next) { Fill(); }

  // Peek and Take run once per byte of the TOC: kept inline, with the refill out of line.
  [[gnu::always_inline]] Ch Peek() const { return pos_ < piece_.size() ? piece_[pos_] : '\0'; }
  [[gnu::always_inline]] Ch Take() {
    if (pos_ >= piece_.size()) return '\0';
    const Ch c = piece_[pos_++];
    if (pos_ == piece_.size()) Fill();
    return c;
  }
  size_t Tell() const { return consumed_ + pos_; }
  // Output side: unused by a non-in-situ parse.
  Ch* PutBegin() { return nullptr; }
  void Put(Ch) {}
  void Flush() {}
  size_t PutEnd(Ch*) { return 0; }

  std::optional<Error> error;

 private:
  [[gnu::noinline]] void Fill() {
    consumed_ += piece_.size();
    piece_ = {};
    pos_ = 0;
    // Skip empty pieces that are not the end: only a source error or the end stops here.
    while (!error && !ended_) {
      Result<std::string_view> p = next_();
      if (!p) {
        error = p.error();
        return;
      }
      if (p->empty()) {
        ended_ = true;
        return;
      }
      piece_ = *p;
      return;
    }
  }

  const TocTextSource& next_;
  std::string_view piece_;
  size_t pos_ = 0;
  size_t consumed_ = 0;
  bool ended_ = false;
};

}  // namespace

Result<TocJson> ParseTocJsonStream(const TocTextSource& next, const TocLimits& limits,
                                   uint64_t text_bytes) {
  TocHandler handler(limits);
  // Real TOC entries take 150-400 bytes of text; at 128 bytes an entry this rarely
  // over-reserves by more than 3x, and the untouched part of a large array is never resident.
  constexpr uint64_t kMinEntryText = 128;
  handler.out.records.reserve(static_cast<size_t>(
      std::min<uint64_t>({text_bytes / kMinEntryText, limits.max_entries, uint64_t{1} << 20})));
  rapidjson::Reader reader;
  PieceStream in(next);
  rapidjson::ParseResult ok =
      // No kParseValidateEncodingFlag: checking UTF-8 byte by byte was 16% of a cold mount's
      // CPU, and names are bytes here as in tar (the TOC itself is verified by its digest).
      reader.Parse<rapidjson::kParseStopWhenDoneFlag>(in, handler);
  if (in.error) return std::unexpected(*in.error);
  if (handler.error) return std::unexpected(*handler.error);
  if (!ok) {
    return Fail(EBADMSG, std::string("TOC is not valid JSON: ") +
                             rapidjson::GetParseError_En(ok.Code()) + " at byte " +
                             std::to_string(ok.Offset()));
  }
  if (!handler.saw_version) return Fail(EBADMSG, "TOC version is missing or not 1");
  if (!handler.saw_entries) return Fail(EBADMSG, "TOC has no entries array");
  return std::move(handler.out);
}

Result<TocJson> ParseTocJson(std::string_view json, const TocLimits& limits) {
  bool given = false;
  return ParseTocJsonStream(
      [&]() -> Result<std::string_view> {
        if (given) return std::string_view();
        given = true;
        return json;
      },
      limits, json.size());
}

Result<std::vector<Entry>> FinishTocIndex(std::vector<TocRecord> records, TocFlavor flavor,
                                          uint64_t data_end, const TocLimits& limits) {
  (void)limits;
  // Group: each reg (size > 0) followed by its chunk records.
  std::vector<Entry> out;
  out.reserve(records.size());
  // path -> index in out. Keys view out[i].path: `out` never reallocates (reserved above), so
  // the views stay valid; no path is copied.
  std::unordered_map<std::string_view, size_t> seen;
  seen.reserve(records.size());
  std::vector<uint64_t> all_offsets;
  if (flavor != TocFlavor::kZstdChunked) {
    for (auto& r : records)
      if (r.has_offset) all_offsets.push_back(r.offset);
    std::sort(all_offsets.begin(), all_offsets.end());
    all_offsets.erase(std::unique(all_offsets.begin(), all_offsets.end()), all_offsets.end());
  }
  auto next_offset_after = [&](uint64_t off) -> uint64_t {
    auto it = std::upper_bound(all_offsets.begin(), all_offsets.end(), off);
    return it == all_offsets.end() ? data_end : *it;
  };

  struct Range {
    uint64_t begin, end;
    size_t entry;
  };
  std::vector<Range> ranges;

  for (size_t i = 0; i < records.size();) {
    TocRecord& r = records[i];
    if (r.is_chunk)
      return std::unexpected(Bad(i, r.raw_name, "chunk entry without a preceding regular file"));
    Entry e = std::move(r.entry);
    const size_t first = i;
    size_t last = i + 1;
    while (last < records.size() && records[last].is_chunk) {
      if (records[last].entry.path != e.path)
        return std::unexpected(
            Bad(last, records[last].raw_name, "chunk entry does not follow its file"));
      ++last;
    }
    if (last > first + 1 && e.type != EntryType::kRegular)
      return std::unexpected(
          Bad(first, records[first].raw_name, "chunk entries after a non-regular entry"));
    if (seen.contains(e.path))
      return std::unexpected(Bad(first, records[first].raw_name, "duplicate entry"));
    if (e.type == EntryType::kHardlink) {
      auto it = seen.find(e.link_name);
      if (it == seen.end())
        return std::unexpected(
            Bad(first, records[first].raw_name,
                "hardlink target \"" + e.link_name + "\" is not earlier in the layer"));
      if (out[it->second].type == EntryType::kDirectory ||
          out[it->second].type == EntryType::kHardlink)
        return std::unexpected(
            Bad(first, records[first].raw_name, "hardlink to a directory or hardlink"));
    }
    if (e.type != EntryType::kRegular) e.size = 0;
    if (e.type == EntryType::kRegular && e.size > 0) {
      // Chunks [first, last).
      const uint64_t file_end_offset =
          records[first].has_end_offset ? records[first].end_offset : data_end;
      for (size_t k = first; k < last; ++k) {
        TocRecord& c = records[k];
        Chunk ch;
        ch.file_offset = c.chunk_offset;
        if (k == first && c.chunk_offset != 0)
          return std::unexpected(Bad(k, c.raw_name, "first chunk does not start at 0"));
        uint64_t csize = c.chunk_size;
        if (csize == 0) {
          if (c.chunk_offset > e.size)
            return std::unexpected(Bad(k, c.raw_name, "chunk offset past the end of the file"));
          csize = e.size - c.chunk_offset;
        }
        ch.size = csize;
        ch.digest = c.chunk_digest;
        if (ch.digest.empty() && last == first + 1) ch.digest = e.digest;
        if (c.zeros) {
          ch.encoding = ChunkEncoding::kZeros;
        } else {
          if (!c.has_offset) return std::unexpected(Bad(k, c.raw_name, "chunk without an offset"));
          if (ch.digest.empty())
            return std::unexpected(Bad(k, c.raw_name, "chunk without a digest"));
          uint64_t end;
          if (flavor != TocFlavor::kZstdChunked) {
            end = next_offset_after(c.offset);
            ch.encoding = flavor == TocFlavor::kEstargz ? ChunkEncoding::kGzipMember
                                                        : ChunkEncoding::kZstdFramePrefix;
            ch.inner_offset = c.inner_offset;
          } else {
            ch.encoding = ChunkEncoding::kZstdFrame;
            if (c.has_end_offset && k != first) {
              end = c.end_offset;
            } else {
              end = file_end_offset;
              for (size_t n = k + 1; n < last; ++n) {
                if (records[n].has_offset) {
                  end = records[n].offset;
                  break;
                }
              }
              if (k == first && last == first + 1 && c.has_end_offset) end = c.end_offset;
            }
          }
          if (end <= c.offset || end > data_end)
            return std::unexpected(
                Bad(k, c.raw_name,
                    "chunk range [" + std::to_string(c.offset) + ", " + std::to_string(end) +
                        ") is empty or past the data end " + std::to_string(data_end)));
          ch.blob_offset = c.offset;
          ch.blob_length = end - c.offset;
          ranges.push_back(Range{ch.blob_offset, end, out.size()});
        }
        e.chunks.push_back(std::move(ch));
      }
      uint64_t expect = 0;
      for (auto& ch : e.chunks) {
        if (ch.file_offset != expect || ch.size == 0)
          return std::unexpected(Bad(
              first, records[first].raw_name,
              "chunks do not tile the file (gap or overlap at " + std::to_string(expect) + ")"));
        expect += ch.size;
        if (expect > e.size) break;
      }
      if (expect != e.size)
        return std::unexpected(Bad(first, records[first].raw_name,
                                   "chunk sizes add up to " + std::to_string(expect) +
                                       ", not the file size " + std::to_string(e.size)));
    } else if (last > first + 1) {
      return std::unexpected(
          Bad(first, records[first].raw_name, "chunk entries for an empty file"));
    }
    out.push_back(std::move(e));
    seen.emplace(std::string_view(out.back().path), out.size() - 1);
    i = last;
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t k = 1; k < ranges.size(); ++k) {
    const bool same = ranges[k].begin == ranges[k - 1].begin && ranges[k].end == ranges[k - 1].end;
    if (ranges[k].begin < ranges[k - 1].end && !(flavor != TocFlavor::kZstdChunked && same)) {
      return Fail(EBADMSG, "TOC chunks of \"" + out[ranges[k - 1].entry].path + "\" and \"" +
                               out[ranges[k].entry].path + "\" overlap in the blob at " +
                               std::to_string(ranges[k].begin));
    }
  }
  return out;
}

}  // namespace hoist

namespace hoist {
void ApplyStargzLandmarks(std::vector<Entry>& entries) {
  size_t landmark = entries.size();
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].path == ".prefetch.landmark") {
      landmark = i;
      break;
    }
  }
  for (size_t i = 0; i < landmark && landmark < entries.size(); ++i) {
    if (entries[i].type == EntryType::kRegular) entries[i].prefetch = true;
  }
  std::erase_if(entries, [](const Entry& e) {
    return e.path == ".prefetch.landmark" || e.path == ".no.prefetch.landmark" ||
           e.path == "stargz.index.json";
  });
}
}  // namespace hoist
