#include "index/toc_json.h"

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>
#include <sys/mman.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <optional>
#include <utility>

#include "base/rfc3339.h"
#include "index/tar_path.h"

namespace hoist {
namespace {

Error Bad(size_t index, std::string_view name, std::string_view what) {
  std::string msg = "TOC entry " + std::to_string(index);
  if (!name.empty()) msg += " " + QuoteName(name);
  msg += ": " + std::string(what);
  return Error(EBADMSG, msg);
}

}  // namespace

namespace {

// One JSON value of a field the TOC schema knows, as the SAX reader saw it. The checks that need
// the entry's name (for the error message) run when the entry's object ends.
struct FieldValue {
  enum Kind : uint8_t { kAbsent, kString, kUint, kOtherNumber, kBool, kNull, kContainer };
  Kind kind = kAbsent;
  bool boolean = false;
  uint64_t uint = 0;
  std::string text;  // keeps its capacity from entry to entry
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

constexpr std::string_view kFieldNames[kFieldCount] = {
    "name",        "type",        "linkName",  "modtime",      "digest",
    "chunkDigest", "chunkType",   "mode",      "uid",          "gid",
    "size",        "devMajor",    "devMinor",  "offset",       "endOffset",
    "innerOffset", "chunkOffset", "chunkSize", kTocPrefetchKey};

// The longest string each field may hold, from the formats' own limits (index/FORMATS.md):
// names and link targets PATH_MAX, digests "sha512:" + 128 hex digits with room to spare, an
// RFC 3339 time with nanoseconds and a zone is 35 bytes. Checked as each string arrives, before
// it is copied.
constexpr size_t kMaxFieldBytes[kFieldCount] = {
    kMaxPathLength,  // name
    64,              // type
    kMaxPathLength,  // linkName
    64,              // modtime
    256,             // digest
    256,             // chunkDigest
    64,              // chunkType
    // Numbers and the prefetch bool: a string there is an error named later, when the entry
    // ends; until then it is held like any other string.
    4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096};
// A key of an object hoist reads (field names; xattr names: XATTR_NAME_MAX), and any other
// string (values of unknown fields and of root fields hoist does not read, anything inside them).
constexpr size_t kMaxKeyBytes = 255;
constexpr size_t kMaxOtherStringBytes = 4096;
// One xattr value in base64: XATTR_SIZE_MAX (64 KiB) encoded, 4 * ceil(65536 / 3).
constexpr size_t kMaxXattrValueBytes = 87'384;
// All xattr values of one entry, in base64 (what the parser holds until the entry ends).
constexpr size_t kMaxEntryXattrBytes = 1 << 20;

// Runs once per key of every entry: picks candidates by length, so most keys cost one or two
// comparisons.
Field FieldOf(std::string_view key) {
  auto pick = [&](std::initializer_list<Field> fields) {
    for (Field f : fields) {
      if (key == kFieldNames[f]) return f;
    }
    return key == "xattrs" ? kXattrs : kUnknown;
  };
  switch (key.size()) {
    case 3:
      return pick({kUid, kGid});
    case 4:
      return pick({kName, kType, kMode, kSize});
    case 6:
      return pick({kDigest, kOffset});
    case 7:
      return pick({kModtime});
    case 8:
      return pick({kLinkName, kDevMajor, kDevMinor});
    case 9:
      return pick({kChunkSize, kEndOffset, kChunkType});
    case 11:
      return pick({kChunkDigest, kChunkOffset, kInnerOffset});
    case 14:
      return pick({kPrefetch});
    default:
      return kUnknown;
  }
}

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

// What a record says about where its bytes are: for a regular file, its first chunk; for a
// "chunk" record, a further one.
struct ChunkFields {
  bool zeros = false;  // chunkType "zeros"
  bool has_offset = false;
  bool has_end_offset = false;
  uint64_t offset = 0;        // "offset"
  uint64_t end_offset = 0;    // "endOffset" (zstd:chunked)
  uint64_t inner_offset = 0;  // "innerOffset" (eStargz)
  uint64_t chunk_offset = 0;
  uint64_t chunk_size = 0;  // 0: to the end of the file
  Digest chunk_digest;
};

Status ReadString(const RawEntry& raw, Field f, size_t index, std::string_view name,
                  std::string_view* dst) {
  const FieldValue& v = raw.fields[f];
  if (v.kind == FieldValue::kAbsent) return Ok();
  if (v.kind != FieldValue::kString)
    return Fail(Bad(index, name, std::string(kFieldNames[f]) + " is not a string"));
  *dst = v.text;
  return Ok();
}

Status ReadUint(const RawEntry& raw, Field f, size_t index, std::string_view name, uint64_t* dst,
                bool* present = nullptr) {
  const FieldValue& v = raw.fields[f];
  if (v.kind == FieldValue::kAbsent) return Ok();
  if (v.kind != FieldValue::kUint)
    return Fail(Bad(index, name, std::string(kFieldNames[f]) + " is not a non-negative integer"));
  if (v.uint > (uint64_t{1} << 62))
    return Fail(Bad(index, name, std::string(kFieldNames[f]) + " is out of range"));
  *dst = v.uint;
  if (present) *present = true;
  return Ok();
}

Result<EntryType> TypeOf(std::string_view type, size_t index, std::string_view name) {
  static constexpr std::pair<std::string_view, EntryType> kTypes[] = {
      {"reg", EntryType::kRegular},     {"dir", EntryType::kDirectory},
      {"symlink", EntryType::kSymlink}, {"hardlink", EntryType::kHardlink},
      {"char", EntryType::kCharDevice}, {"block", EntryType::kBlockDevice},
      {"fifo", EntryType::kFifo},       {"chunk", EntryType::kRegular},
  };
  for (const auto& [text, type_value] : kTypes) {
    if (text == type) return type_value;
  }
  return Fail(Bad(index, name, "unknown type \"" + std::string(type.substr(0, 20)) + "\""));
}

// Validates one entry's fields (the rules in toc_json.h) into `e` and `c`. `raw_name` views
// `raw` and stays valid until it is cleared.
Status MakeRecord(const RawEntry& raw, size_t index, const TocLimits& limits, Entry& e,
                  ChunkFields& c, std::string_view& raw_name) {
  std::string_view type;
  HOIST_RETURN_IF_ERROR(ReadString(raw, kName, index, "", &raw_name));
  HOIST_RETURN_IF_ERROR(ReadString(raw, kType, index, raw_name, &type));
  auto clean = CleanEntryPath(raw_name);
  if (!clean) return Fail(Bad(index, raw_name, clean.error().message()));
  e.path = std::move(*clean);
  HOIST_ASSIGN_OR_RETURN(e.type, TypeOf(type, index, raw_name));
  auto u32 = [&](Field f, uint32_t* dst, const char* what) -> Status {
    uint64_t v = 0;
    HOIST_RETURN_IF_ERROR(ReadUint(raw, f, index, raw_name, &v));
    if (v > UINT32_MAX) return Fail(Bad(index, raw_name, std::string(what) + " out of range"));
    *dst = static_cast<uint32_t>(v);
    return Ok();
  };
  uint64_t mode = 0;
  HOIST_RETURN_IF_ERROR(ReadUint(raw, kMode, index, raw_name, &mode));
  e.mode = static_cast<uint32_t>(mode & 07777);
  HOIST_RETURN_IF_ERROR(u32(kUid, &e.uid, "uid"));
  HOIST_RETURN_IF_ERROR(u32(kGid, &e.gid, "gid"));
  HOIST_RETURN_IF_ERROR(ReadUint(raw, kSize, index, raw_name, &e.size));
  if (e.size > limits.max_file_size)
    return Fail(Error(
        EFBIG,
        Bad(index, raw_name, "size " + std::to_string(e.size) + " is over the cap").message()));
  HOIST_RETURN_IF_ERROR(u32(kDevMajor, &e.dev_major, "devMajor"));
  HOIST_RETURN_IF_ERROR(u32(kDevMinor, &e.dev_minor, "devMinor"));
  HOIST_RETURN_IF_ERROR(ReadUint(raw, kOffset, index, raw_name, &c.offset, &c.has_offset));
  HOIST_RETURN_IF_ERROR(
      ReadUint(raw, kEndOffset, index, raw_name, &c.end_offset, &c.has_end_offset));
  HOIST_RETURN_IF_ERROR(ReadUint(raw, kInnerOffset, index, raw_name, &c.inner_offset));
  HOIST_RETURN_IF_ERROR(ReadUint(raw, kChunkOffset, index, raw_name, &c.chunk_offset));
  HOIST_RETURN_IF_ERROR(ReadUint(raw, kChunkSize, index, raw_name, &c.chunk_size));
  std::string_view link, mtime, digest, chunk_digest, chunk_type;
  HOIST_RETURN_IF_ERROR(ReadString(raw, kLinkName, index, raw_name, &link));
  HOIST_RETURN_IF_ERROR(ReadString(raw, kModtime, index, raw_name, &mtime));
  HOIST_RETURN_IF_ERROR(ReadString(raw, kDigest, index, raw_name, &digest));
  HOIST_RETURN_IF_ERROR(ReadString(raw, kChunkDigest, index, raw_name, &chunk_digest));
  HOIST_RETURN_IF_ERROR(ReadString(raw, kChunkType, index, raw_name, &chunk_type));
  if (!mtime.empty()) {
    auto t = ParseRfc3339(mtime);
    if (!t) return Fail(Bad(index, raw_name, "modtime: " + t.error().message()));
    e.mtime_sec = t->first;
    e.mtime_nsec = t->second;
  }
  if (!digest.empty()) {
    auto d = Digest::Parse(digest);
    if (!d) return Fail(Bad(index, raw_name, "digest: " + d.error().message()));
    e.digest = *d;
  }
  if (!chunk_digest.empty()) {
    // A single-chunk file usually repeats its digest as the chunk digest.
    if (chunk_digest == digest) {
      c.chunk_digest = e.digest;
    } else {
      auto d = Digest::Parse(chunk_digest);
      if (!d) return Fail(Bad(index, raw_name, "chunkDigest: " + d.error().message()));
      c.chunk_digest = *d;
    }
  }
  if (chunk_type == "zeros")
    c.zeros = true;
  else if (!chunk_type.empty())
    return Fail(Bad(index, raw_name, "unknown chunkType"));
  if (e.type == EntryType::kHardlink) {
    auto t = CleanEntryPath(link);
    if (!t) return Fail(Bad(index, raw_name, "hardlink target: " + t.error().message()));
    e.link_name = std::move(*t);
  } else if (e.type == EntryType::kSymlink) {
    if (link.empty() || link.find('\0') != std::string_view::npos || link.size() > kMaxPathLength)
      return Fail(Bad(index, raw_name, "bad symlink target"));
    e.link_name = link;
  }
  if (raw.xattrs_not_object) return Fail(Bad(index, raw_name, "xattrs is not an object"));
  if (raw.xattr_not_string) return Fail(Bad(index, raw_name, "xattr value is not a string"));
  for (const auto& [xname, b64] : raw.xattrs) {
    auto val = Base64Decode(b64);
    if (!val) return Fail(Bad(index, raw_name, "xattr value is not base64"));
    if (xname.empty() || xname.find('\0') != std::string::npos)
      return Fail(Bad(index, raw_name, "bad xattr name"));
    e.xattrs.push_back(Xattr{xname, std::move(*val)});
  }
  std::sort(e.xattrs.begin(), e.xattrs.end(),
            [](const Xattr& a, const Xattr& b) { return a.name < b.name; });
  const FieldValue& pf = raw.fields[kPrefetch];
  if (pf.kind != FieldValue::kAbsent) {
    if (pf.kind != FieldValue::kBool)
      return Fail(Bad(index, raw_name, "prefetch mark is not a bool"));
    e.prefetch = pf.boolean;
  }
  return Ok();
}

// Asks for transparent huge pages on the page-aligned part of a large array about to be filled:
// 2 MiB faults instead of 4 KiB ones (a 100,000-entry index touches ~20 MB of entries). Advice
// only: no effect where THP is off or the range is small.
void AdviseHugePages(void* data, size_t bytes) {
  constexpr uintptr_t kPage = 4096;
  if (bytes < (4u << 20)) return;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kPage - 1) & ~(kPage - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kPage - 1);
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

// Turns validated records into entries as they arrive: a regular file stays open while "chunk"
// records follow it; its chunks' blob ranges are finished once the whole TOC has been seen
// (a stargz-layout chunk ends at the next offset of any entry, anywhere in the TOC).
class EntryBuilder {
 public:
  EntryBuilder(TocFormat format, uint64_t data_end, size_t expected_entries, TocIndex& out)
      : format_(format), data_end_(data_end), out_(out) {
    out_.entries.reserve(expected_entries);
    ranges_.reserve(expected_entries);
    AdviseHugePages(out_.entries.data(), out_.entries.capacity() * sizeof(Entry));
  }

  Status Add(const RawEntry& raw, size_t index, const TocLimits& limits) {
    const FieldValue& type = raw.fields[kType];
    const bool chunk_record = type.kind == FieldValue::kString && type.text == "chunk";
    ChunkFields c;
    std::string_view raw_name;
    if (chunk_record) {
      scratch_ = Entry{};
      HOIST_RETURN_IF_ERROR(MakeRecord(raw, index, limits, scratch_, c, raw_name));
    } else {
      HOIST_RETURN_IF_ERROR(CloseFile());
      HOIST_RETURN_IF_ERROR(
          MakeRecord(raw, index, limits, out_.entries.emplace_back(), c, raw_name));
    }
    any_end_offset_ |= c.has_end_offset;
    if (c.has_offset && (format_ == TocFormat::kEstargz || !any_end_offset_))
      all_offsets_.push_back(c.offset);
    if (chunk_record) return AddChunkRecord(c, index, raw_name);
    return AddEntry(c, index, raw_name);
  }

  // After the last record: closes the open file, then computes and checks every chunk range.
  Status Finish() {
    HOIST_RETURN_IF_ERROR(CloseFile());
    const bool stargz = format_ == TocFormat::kEstargz || !any_end_offset_;
    out_.stargz_layout = stargz;
    if (stargz) {
      std::sort(all_offsets_.begin(), all_offsets_.end());
      all_offsets_.erase(std::unique(all_offsets_.begin(), all_offsets_.end()), all_offsets_.end());
    }
    const ChunkEncoding encoding = !stargz ? ChunkEncoding::kZstdFrame
                                   : format_ == TocFormat::kEstargz
                                       ? ChunkEncoding::kGzipMember
                                       : ChunkEncoding::kZstdFramePrefix;
    for (Range& r : ranges_) {
      if (stargz) {
        auto it = std::upper_bound(all_offsets_.begin(), all_offsets_.end(), r.begin);
        r.end = it == all_offsets_.end() ? data_end_ : *it;
      }
      const Entry& e = out_.entries[r.entry];
      if (r.end <= r.begin || r.end > data_end_)
        return Fail(Bad(r.record, e.path,
                        "chunk range [" + std::to_string(r.begin) + ", " + std::to_string(r.end) +
                            ") is empty or past the data end " + std::to_string(data_end_)));
      Chunk& ch = out_.entries[r.entry].chunks[r.chunk];
      ch.blob_offset = r.begin;
      ch.blob_length = r.end - r.begin;
      ch.encoding = encoding;
      if (!stargz) ch.inner_offset = 0;
    }
    std::sort(ranges_.begin(), ranges_.end(),
              [](const Range& a, const Range& b) { return a.begin < b.begin; });
    for (size_t k = 1; k < ranges_.size(); ++k) {
      const Range& a = ranges_[k - 1];
      const Range& b = ranges_[k];
      const bool same = a.begin == b.begin && a.end == b.end;
      if (b.begin < a.end && !(stargz && same)) {
        return Fail(EBADMSG, "TOC chunks of \"" + out_.entries[a.entry].path + "\" and \"" +
                                 out_.entries[b.entry].path + "\" overlap in the blob at " +
                                 std::to_string(b.begin));
      }
    }
    return Ok();
  }

 private:
  // A chunk's blob range: `end` is provisional until Finish (where a chunk ends may depend on
  // records that come later).
  struct Range {
    uint64_t begin = 0, end = 0;
    uint32_t entry = 0, chunk = 0;
    uint32_t record = 0;  // TOC entry index, for errors
  };

  Status AddEntry(const ChunkFields& c, size_t index, std::string_view raw_name) {
    const uint32_t at = static_cast<uint32_t>(out_.entries.size() - 1);
    Entry& e = out_.entries.back();
    last_record_ = index;
    last_name_.assign(raw_name);
    // Duplicate paths and hardlink targets are the merge rules' to decide, as for every other
    // layer format (CheckLayerRules, fusefs/merged_view.h): a repeated path is not an error.
    if (e.type != EntryType::kRegular) e.size = 0;
    if (e.type != EntryType::kRegular || e.size == 0) return Ok();
    open_ = at;
    file_end_ = c.has_end_offset ? c.end_offset : data_end_;
    return AddChunk(c, index, true);
  }

  Status AddChunkRecord(const ChunkFields& c, size_t index, std::string_view raw_name) {
    if (out_.entries.empty())
      return Fail(Bad(index, raw_name, "chunk entry without a preceding regular file"));
    const Entry& file = out_.entries.back();
    if (scratch_.path != file.path)
      return Fail(Bad(index, raw_name, "chunk entry does not follow its file"));
    if (file.type != EntryType::kRegular)
      return Fail(Bad(last_record_, last_name_, "chunk entries after a non-regular entry"));
    if (!open_) return Fail(Bad(last_record_, last_name_, "chunk entries for an empty file"));
    return AddChunk(c, index, false);
  }

  Status AddChunk(const ChunkFields& c, size_t index, bool first) {
    Entry& e = out_.entries[*open_];
    if (first && c.chunk_offset != 0)
      return Fail(Bad(index, last_name_, "first chunk does not start at 0"));
    uint64_t size = c.chunk_size;
    if (size == 0) {
      if (c.chunk_offset > e.size)
        return Fail(Bad(index, last_name_, "chunk offset past the end of the file"));
      size = e.size - c.chunk_offset;
    }
    Chunk& ch = e.chunks.emplace_back();
    ch.file_offset = c.chunk_offset;
    ch.size = size;
    ch.digest = c.chunk_digest;
    ch.inner_offset = c.inner_offset;
    if (c.has_offset) {
      // zstd:chunked: a chunk ends where the next record of its file with an offset starts.
      for (size_t p : pending_) ranges_[p].end = c.offset;
      pending_.clear();
    }
    if (c.zeros) {
      ch.encoding = ChunkEncoding::kZeros;
      return Ok();
    }
    if (!c.has_offset) return Fail(Bad(index, last_name_, "chunk without an offset"));
    Range& r = ranges_.emplace_back();
    r.begin = c.offset;
    r.entry = *open_;
    r.chunk = static_cast<uint32_t>(e.chunks.size() - 1);
    r.record = static_cast<uint32_t>(index);
    if (c.has_end_offset && !first)
      r.end = c.end_offset;
    else
      pending_.push_back(ranges_.size() - 1);
    return Ok();
  }

  // The open file has all its chunks: the last ones end at the file's endOffset (or the data
  // end), a lone chunk takes the file's digest, and the chunks must tile the file.
  Status CloseFile() {
    if (!open_) return Ok();
    Entry& e = out_.entries[*open_];
    open_.reset();
    for (size_t p : pending_) ranges_[p].end = file_end_;
    pending_.clear();
    if (e.chunks.size() == 1 && e.chunks[0].digest.empty()) e.chunks[0].digest = e.digest;
    for (size_t i = 0; i < e.chunks.size(); ++i) {
      if (e.chunks[i].encoding != ChunkEncoding::kZeros && e.chunks[i].digest.empty())
        return Fail(Bad(last_record_ + i, last_name_, "chunk without a digest"));
    }
    uint64_t expect = 0;
    for (const Chunk& ch : e.chunks) {
      if (ch.file_offset != expect || ch.size == 0)
        return Fail(
            Bad(last_record_, last_name_,
                "chunks do not tile the file (gap or overlap at " + std::to_string(expect) + ")"));
      expect += ch.size;
      if (expect > e.size) break;
    }
    if (expect != e.size)
      return Fail(Bad(last_record_, last_name_,
                      "chunk sizes add up to " + std::to_string(expect) + ", not the file size " +
                          std::to_string(e.size)));
    return Ok();
  }

  const TocFormat format_;
  const uint64_t data_end_;
  TocIndex& out_;
  Entry scratch_;  // a "chunk" record's fields
  size_t last_record_ = 0;
  std::string last_name_;         // raw name of the last non-chunk record
  std::optional<uint32_t> open_;  // the regular file chunk records may still extend
  uint64_t file_end_ = 0;         // where its last chunk ends (zstd:chunked)
  std::vector<size_t> pending_;   // its ranges still waiting for an end
  std::vector<Range> ranges_;
  bool any_end_offset_ = false;
  std::vector<uint64_t> all_offsets_;  // stargz layout: every record's offset
};

// RapidJSON SAX handler: builds entries as each JSON entry ends, with no document tree and no
// intermediate records. Returning false stops the parse; `error` then says why.
class TocHandler {
 public:
  TocHandler(const TocLimits& limits, TocFormat format, uint64_t data_end, size_t expected)
      : limits_(limits), builder_(format, data_end, expected, out) {}

  std::optional<Error> error;
  TocIndex out;
  bool saw_version = false;
  bool saw_entries = false;

  Status Finish() { return builder_.Finish(); }

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
    const auto [what, cap] = PendingString();
    after_key_ = false;
    if (n > cap) return Fail(TooLong(what, cap));
    if (at_ == At::kXattrs && skip_ == 0) {
      xattr_bytes_ += n;
      if (xattr_bytes_ > kMaxEntryXattrBytes)
        return Fail(TooLong("xattrs (in all)", kMaxEntryXattrBytes));
    }
    return Scalar(FieldValue::kString, 0, false, std::string_view(s, n));
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    const auto [what, cap] = PendingString();
    if (n > cap) return Fail(TooLong(what, cap));
    after_key_ = true;
    if (skip_ > 0) return true;
    if (at_ == At::kEntry)
      field_ = FieldOf(std::string_view(s, n));
    else
      key_.assign(s, n);
    return true;
  }
  bool StartObject() { return Start(true); }
  bool EndObject(rapidjson::SizeType) { return End(); }
  bool StartArray() { return Start(false); }
  bool EndArray(rapidjson::SizeType) { return End(); }

  // The error for a string still being read whose buffer passed `limit` bytes (the reader's
  // token buffer ceiling, TocLimits::max_token_buffer): it is longer than any cap.
  Error PendingTooLong() const {
    const auto [what, cap] = PendingString();
    return TooLong(what, cap);
  }

 private:
  // Where the parser is. Anything unknown (any depth) is skipped by counting.
  enum class At { kTop, kRoot, kEntries, kEntry, kXattrs, kDone };

  bool Fail(Error e) {
    error = std::move(e);
    return false;
  }

  bool Start(bool object) {
    after_key_ = false;
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
        xattr_bytes_ = 0;
        at_ = At::kEntry;
        return true;
      case At::kEntry: {
        if (field_ == kXattrs) {
          if (raw_.has_xattrs) break;
          raw_.has_xattrs = true;
          if (!object) {
            raw_.xattrs_not_object = true;
            break;
          }
          at_ = At::kXattrs;
          return true;
        }
        if (field_ < kFieldCount && raw_.fields[field_].kind == FieldValue::kAbsent)
          raw_.fields[field_].kind = FieldValue::kContainer;
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
        Status added = builder_.Add(raw_, index_, limits_);
        if (!added) return Fail(added.error());
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
    after_key_ = false;
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
        if (field_ == kXattrs) {
          if (!raw_.has_xattrs) raw_.has_xattrs = raw_.xattrs_not_object = true;
          return true;
        }
        if (field_ >= kFieldCount || raw_.fields[field_].kind != FieldValue::kAbsent) return true;
        FieldValue& v = raw_.fields[field_];
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

  // What the next string is and its cap: the value of the last key; else a key, in an object
  // hoist reads; else (an array element, or a key inside a skipped value) any string.
  std::pair<std::string_view, size_t> PendingString() const {
    if (!after_key_) {
      if (skip_ == 0 && (at_ == At::kRoot || at_ == At::kEntry || at_ == At::kXattrs))
        return {"a key", kMaxKeyBytes};
      return {"a JSON string", kMaxOtherStringBytes};
    }
    if (skip_ > 0) return {"a value", kMaxOtherStringBytes};
    switch (at_) {
      case At::kRoot:
        if (key_ == "tarSplitDigest") return {"tarSplitDigest", kMaxFieldBytes[kDigest]};
        return {"a value", kMaxOtherStringBytes};
      case At::kEntry:
        if (field_ < kFieldCount) return {kFieldNames[field_], kMaxFieldBytes[field_]};
        return {"a value", kMaxOtherStringBytes};
      case At::kXattrs:
        return {"xattr value", kMaxXattrValueBytes};
      default:
        return {"a JSON string", kMaxOtherStringBytes};
    }
  }

  // "TOC entry N: name longer than 4096 bytes" inside an entry, "TOC: ..." outside.
  Error TooLong(std::string_view what, size_t cap) const {
    const std::string text = std::string(what) + " longer than " + std::to_string(cap) + " bytes";
    if (at_ == At::kEntry || at_ == At::kXattrs) return Bad(index_, "", text);
    return Error(EBADMSG, "TOC: " + text);
  }

  const TocLimits& limits_;
  EntryBuilder builder_;
  At at_ = At::kTop;
  int skip_ = 0;            // depth inside a value being skipped
  std::string key_;         // the last key outside entries (root fields, xattr names)
  Field field_ = kUnknown;  // the last key inside an entry
  RawEntry raw_;
  size_t index_ = 0;
  bool saw_split_ = false;
  bool after_key_ = false;  // the last event was a key: a value comes next
  size_t xattr_bytes_ = 0;  // base64 text of the open entry's xattr values
};

// The allocator of the RapidJSON reader's own stack. With a SAX handler and no in-situ parsing,
// that stack holds only the string (or key) being read: the reader copies every byte of a string
// into it and hands the whole string to the handler once its closing quote arrives, and it has
// no option to stop a long one. So the stack's capacity is the one place where the length of a
// string still being read shows, and the stream below checks it (see PieceStream::Fill).
class TokenBufferAllocator {
 public:
  [[maybe_unused]] static const bool kNeedFree = true;  // RapidJSON's Allocator concept
  void* Malloc(size_t size) {
    capacity_ = size;
    return size == 0 ? nullptr : std::malloc(size);
  }
  void* Realloc(void* p, size_t, size_t size) {
    capacity_ = size;
    if (size == 0) {
      std::free(p);
      return nullptr;
    }
    return std::realloc(p, size);
  }
  static void Free(void* p) { std::free(p); }
  // The capacity last asked for: it grows by half each time a string outgrows it, and never
  // shrinks during a parse.
  size_t capacity() const { return capacity_; }

 private:
  size_t capacity_ = 0;
};

// A RapidJSON input stream over a TocTextSource. A source error ends the text (Peek() gives
// '\0', which fails the parse) and is kept for the caller; so does a string whose buffer has
// passed `max_token_buffer` bytes (`token_too_long`).
class PieceStream {
 public:
  using Ch = char;
  PieceStream(const TocTextSource& next, const TokenBufferAllocator& token_buffer,
              size_t max_token_buffer)
      : next_(next), token_buffer_(token_buffer), max_token_buffer_(max_token_buffer) {
    Fill();
  }

  // Peek and Take run once per byte of the TOC, so they are one load and one compare: `cur_`
  // always points at a readable byte, the '\0' sentinel once the text (or the source) ends.
  [[gnu::always_inline]] Ch Peek() const { return *cur_; }
  [[gnu::always_inline]] Ch Take() {
    const Ch c = *cur_;
    if (++cur_ == end_) Fill();
    return c;
  }
  size_t Tell() const { return consumed_ + static_cast<size_t>(cur_ - begin_); }
  // Output side: unused by a non-in-situ parse.
  Ch* PutBegin() { return nullptr; }
  void Put(Ch) {}
  void Flush() {}
  size_t PutEnd(Ch*) { return 0; }

  std::optional<Error> error;
  bool token_too_long = false;

 private:
  [[gnu::noinline]] void Fill() {
    if (begin_ != &kEnd) consumed_ += static_cast<size_t>(end_ - begin_);
    begin_ = cur_ = &kEnd;
    end_ = &kEnd + 1;
    // Once per piece, not per byte: the reader's string buffer grows by at most one piece (and
    // its growth step) past the ceiling before the parse stops here, however long the string.
    if (token_buffer_.capacity() > max_token_buffer_) {
      token_too_long = true;
      return;
    }
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
      begin_ = cur_ = p->data();
      end_ = p->data() + p->size();
      return;
    }
  }

  static constexpr Ch kEnd = '\0';
  const TocTextSource& next_;
  const TokenBufferAllocator& token_buffer_;
  const size_t max_token_buffer_;
  const Ch* begin_ = &kEnd;
  const Ch* cur_ = &kEnd;
  const Ch* end_ = &kEnd + 1;
  size_t consumed_ = 0;
  bool ended_ = false;
};

}  // namespace

Result<TocIndex> ParseTocStream(const TocTextSource& next, TocFormat format, uint64_t data_end,
                                const TocLimits& limits, uint64_t text_bytes) {
  // Real TOC entries take 150-400 bytes of text; at 128 bytes an entry this rarely
  // over-reserves by more than 3x, and the untouched part of a large array is never resident.
  constexpr uint64_t kMinEntryText = 128;
  const size_t expected = static_cast<size_t>(
      std::min<uint64_t>({text_bytes / kMinEntryText, limits.max_entries, uint64_t{1} << 20}));
  TocHandler handler(limits, format, data_end, expected);
  TokenBufferAllocator token_buffer;
  rapidjson::GenericReader<rapidjson::UTF8<>, rapidjson::UTF8<>, TokenBufferAllocator> reader(
      &token_buffer);
  PieceStream in(next, token_buffer, limits.max_token_buffer);
  rapidjson::ParseResult ok =
      // No kParseValidateEncodingFlag: checking UTF-8 byte by byte was 16% of a cold mount's
      // CPU, and names are bytes here as in tar (the TOC itself is verified by its digest).
      reader.Parse<rapidjson::kParseStopWhenDoneFlag>(in, handler);
  if (in.error) return Fail(*in.error);
  if (in.token_too_long) return Fail(handler.PendingTooLong());
  if (handler.error) return Fail(*handler.error);
  if (!ok) {
    return Fail(EBADMSG, std::string("TOC is not valid JSON: ") +
                             rapidjson::GetParseError_En(ok.Code()) + " at byte " +
                             std::to_string(ok.Offset()));
  }
  if (!handler.saw_version) return Fail(EBADMSG, "TOC version is missing or not 1");
  if (!handler.saw_entries) return Fail(EBADMSG, "TOC has no entries array");
  HOIST_RETURN_IF_ERROR(handler.Finish());
  return std::move(handler.out);
}

Result<TocIndex> ParseToc(std::string_view json, TocFormat format, uint64_t data_end,
                          const TocLimits& limits) {
  // In pieces, as if streamed, so a long string stops the parse (PieceStream::Fill) before the
  // reader has copied all of it.
  constexpr size_t kPiece = 256 << 10;
  size_t at = 0;
  return ParseTocStream(
      [&]() -> Result<std::string_view> {
        std::string_view piece = json.substr(at, kPiece);
        at += piece.size();
        return piece;
      },
      format, data_end, limits, json.size());
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
