#include "index/toc_json.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <algorithm>
#include <charconv>
#include <unordered_map>

#include "index/tar_path.h"

namespace hoist {
namespace {

using JsonValue = rapidjson::Value;

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

Result<uint64_t> GetUint(const JsonValue& v, const char* key, size_t index, std::string_view name) {
  if (!v.IsUint64())
    return std::unexpected(Bad(index, name, std::string(key) + " is not a non-negative integer"));
  uint64_t u = v.GetUint64();
  if (u > (uint64_t{1} << 62))
    return std::unexpected(Bad(index, name, std::string(key) + " is out of range"));
  return u;
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

Result<TocJson> ParseTocJson(std::string_view json, const TocLimits& limits) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseStopWhenDoneFlag>(json.data(),
                                                                                       json.size());
  if (doc.HasParseError()) {
    return Fail(EBADMSG, std::string("TOC is not valid JSON: ") +
                             rapidjson::GetParseError_En(doc.GetParseError()) + " at byte " +
                             std::to_string(doc.GetErrorOffset()));
  }
  if (!doc.IsObject()) return Fail(EBADMSG, "TOC is not a JSON object");
  TocJson out;
  auto ver = doc.FindMember("version");
  if (ver == doc.MemberEnd() || !ver->value.IsInt() ||
      (ver->value.GetInt() != 1 && ver->value.GetInt() != 2))
    return Fail(EBADMSG, "TOC version is missing or not 1");
  out.version = ver->value.GetInt();
  if (auto ts = doc.FindMember("tarSplitDigest"); ts != doc.MemberEnd()) {
    if (!ts->value.IsString()) return Fail(EBADMSG, "TOC tarSplitDigest is not a string");
    auto d = Digest::Parse(std::string_view(ts->value.GetString(), ts->value.GetStringLength()));
    if (!d) return Fail(EBADMSG, "TOC tarSplitDigest: " + d.error().message());
    out.tar_split_digest = *d;
  }
  auto ents = doc.FindMember("entries");
  if (ents == doc.MemberEnd() || !ents->value.IsArray())
    return Fail(EBADMSG, "TOC has no entries array");
  const auto& arr = ents->value.GetArray();
  if (arr.Size() > limits.max_entries)
    return Fail(EFBIG, "TOC has " + std::to_string(arr.Size()) + " entries, over the cap");
  out.records.reserve(arr.Size());
  size_t index = 0;
  for (const auto& ev : arr) {
    if (!ev.IsObject()) return std::unexpected(Bad(index, "", "not an object"));
    TocRecord r;
    auto str = [&](const char* key, std::string* dst) -> Status {
      auto it = ev.FindMember(key);
      if (it == ev.MemberEnd()) return Ok();
      if (!it->value.IsString())
        return std::unexpected(Bad(index, r.raw_name, std::string(key) + " is not a string"));
      dst->assign(it->value.GetString(), it->value.GetStringLength());
      return Ok();
    };
    auto uint = [&](const char* key, uint64_t* dst, bool* present = nullptr) -> Status {
      auto it = ev.FindMember(key);
      if (it == ev.MemberEnd()) return Ok();
      HOIST_ASSIGN_OR_RETURN(*dst, GetUint(it->value, key, index, r.raw_name));
      if (present) *present = true;
      return Ok();
    };
    std::string type;
    HOIST_RETURN_IF_ERROR(str("name", &r.raw_name));
    HOIST_RETURN_IF_ERROR(str("type", &type));
    Entry& e = r.entry;
    auto clean = CleanEntryPath(r.raw_name);
    if (!clean) return std::unexpected(Bad(index, r.raw_name, clean.error().message()));
    e.path = *clean;
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
    uint64_t v = 0;
    HOIST_RETURN_IF_ERROR(uint("mode", &v));
    e.mode = static_cast<uint32_t>(v & 07777);
    v = 0;
    HOIST_RETURN_IF_ERROR(uint("uid", &v));
    if (v > UINT32_MAX) return std::unexpected(Bad(index, r.raw_name, "uid out of range"));
    e.uid = static_cast<uint32_t>(v);
    v = 0;
    HOIST_RETURN_IF_ERROR(uint("gid", &v));
    if (v > UINT32_MAX) return std::unexpected(Bad(index, r.raw_name, "gid out of range"));
    e.gid = static_cast<uint32_t>(v);
    HOIST_RETURN_IF_ERROR(uint("size", &e.size));
    if (e.size > limits.max_file_size)
      return std::unexpected(Error(
          EFBIG,
          Bad(index, r.raw_name, "size " + std::to_string(e.size) + " is over the cap").message()));
    v = 0;
    HOIST_RETURN_IF_ERROR(uint("devMajor", &v));
    if (v > UINT32_MAX) return std::unexpected(Bad(index, r.raw_name, "devMajor out of range"));
    e.dev_major = static_cast<uint32_t>(v);
    v = 0;
    HOIST_RETURN_IF_ERROR(uint("devMinor", &v));
    if (v > UINT32_MAX) return std::unexpected(Bad(index, r.raw_name, "devMinor out of range"));
    e.dev_minor = static_cast<uint32_t>(v);
    HOIST_RETURN_IF_ERROR(uint("offset", &r.offset, &r.has_offset));
    HOIST_RETURN_IF_ERROR(uint("endOffset", &r.end_offset, &r.has_end_offset));
    HOIST_RETURN_IF_ERROR(uint("innerOffset", &r.inner_offset));
    HOIST_RETURN_IF_ERROR(uint("chunkOffset", &r.chunk_offset));
    HOIST_RETURN_IF_ERROR(uint("chunkSize", &r.chunk_size));
    std::string link, mtime, digest, chunk_digest, chunk_type;
    HOIST_RETURN_IF_ERROR(str("linkName", &link));
    HOIST_RETURN_IF_ERROR(str("modtime", &mtime));
    HOIST_RETURN_IF_ERROR(str("digest", &digest));
    HOIST_RETURN_IF_ERROR(str("chunkDigest", &chunk_digest));
    HOIST_RETURN_IF_ERROR(str("chunkType", &chunk_type));
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
      e.link_name = *t;
    } else if (e.type == EntryType::kSymlink) {
      if (link.empty() || link.find('\0') != std::string::npos || link.size() > kMaxPathLength)
        return std::unexpected(Bad(index, r.raw_name, "bad symlink target"));
      e.link_name = link;
    }
    if (auto xs = ev.FindMember("xattrs"); xs != ev.MemberEnd()) {
      if (!xs->value.IsObject())
        return std::unexpected(Bad(index, r.raw_name, "xattrs is not an object"));
      for (const auto& m : xs->value.GetObject()) {
        if (!m.value.IsString())
          return std::unexpected(Bad(index, r.raw_name, "xattr value is not a string"));
        auto val = Base64Decode(std::string_view(m.value.GetString(), m.value.GetStringLength()));
        if (!val) return std::unexpected(Bad(index, r.raw_name, "xattr value is not base64"));
        std::string xname(m.name.GetString(), m.name.GetStringLength());
        if (xname.empty() || xname.find('\0') != std::string::npos)
          return std::unexpected(Bad(index, r.raw_name, "bad xattr name"));
        e.xattrs.push_back(Xattr{std::move(xname), std::move(*val)});
      }
      std::sort(e.xattrs.begin(), e.xattrs.end(),
                [](const Xattr& a, const Xattr& b) { return a.name < b.name; });
    }
    if (auto pf = ev.FindMember(kTocPrefetchKey); pf != ev.MemberEnd()) {
      if (!pf->value.IsBool())
        return std::unexpected(Bad(index, r.raw_name, "prefetch mark is not a bool"));
      e.prefetch = pf->value.GetBool();
    }
    out.records.push_back(std::move(r));
    ++index;
  }
  return out;
}

Result<std::vector<Entry>> FinishTocIndex(std::vector<TocRecord> records, TocFlavor flavor,
                                          uint64_t data_end, const TocLimits& limits) {
  (void)limits;
  // Group: each reg (size > 0) followed by its chunk records.
  std::vector<Entry> out;
  out.reserve(records.size());
  std::unordered_map<std::string, size_t> seen;  // path -> index in out
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
    seen.emplace(e.path, out.size());
    out.push_back(std::move(e));
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
