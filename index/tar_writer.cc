#include "index/tar_writer.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>

namespace hoist {
namespace {

constexpr uint64_t kMax7 = 07777777;       // 8-byte octal fields
constexpr uint64_t kMax11 = 077777777777;  // 12-byte octal fields

// Octal, zero-padded to width-1 digits, NUL-terminated. REQUIRES: v fits.
void PutOctal(char* field, size_t width, uint64_t v) {
  for (size_t i = width - 1; i-- > 0;) {
    field[i] = static_cast<char>('0' + (v & 7));
    v >>= 3;
  }
  field[width - 1] = '\0';
}

// Octal when it fits, else base-256 (GNU/star extension understood by every modern reader).
void PutNumber(char* field, size_t width, uint64_t v) {
  const uint64_t max = width == 12 ? kMax11 : kMax7;
  if (v <= max) return PutOctal(field, width, v);
  std::memset(field, 0, width);
  field[0] = static_cast<char>(0x80);
  for (size_t i = width - 1; i > 0 && v; --i) {
    field[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

void PutString(char* field, size_t width, std::string_view s) {
  if (!s.empty()) std::memcpy(field, s.data(), std::min(width, s.size()));
}

char TypeFlag(EntryType t) {
  switch (t) {
    case EntryType::kRegular:
      return '0';
    case EntryType::kHardlink:
      return '1';
    case EntryType::kSymlink:
      return '2';
    case EntryType::kCharDevice:
      return '3';
    case EntryType::kBlockDevice:
      return '4';
    case EntryType::kDirectory:
      return '5';
    case EntryType::kFifo:
      return '6';
  }
  return '0';
}

struct UstarFields {
  std::string_view name, prefix, link, uname, gname;
  uint32_t mode = 0;
  uint64_t uid = 0, gid = 0, size = 0, mtime = 0, dev_major = 0, dev_minor = 0;
  char type = '0';
};

std::string UstarBlock(const UstarFields& f) {
  std::string b(kTarBlockSize, '\0');
  char* p = b.data();
  PutString(p + 0, 100, f.name);
  PutOctal(p + 100, 8, f.mode & 07777);
  PutNumber(p + 108, 8, f.uid);
  PutNumber(p + 116, 8, f.gid);
  PutNumber(p + 124, 12, f.size);
  PutNumber(p + 136, 12, f.mtime);
  std::memset(p + 148, ' ', 8);
  p[156] = f.type;
  PutString(p + 157, 100, f.link);
  std::memcpy(p + 257,
              "ustar\0"
              "00",
              8);
  PutString(p + 265, 32, f.uname);
  PutString(p + 297, 32, f.gname);
  PutNumber(p + 329, 8, f.dev_major);
  PutNumber(p + 337, 8, f.dev_minor);
  PutString(p + 345, 155, f.prefix);
  unsigned sum = 0;
  for (unsigned char c : b) sum += c;
  PutOctal(p + 148, 7, sum);  // 6 digits + NUL, then the space already there
  p[155] = ' ';
  return b;
}

// One pax record: "<len> key=value\n" where len counts the whole record.
std::string PaxRecord(std::string_view key, std::string_view value) {
  const size_t body = 1 + key.size() + 1 + value.size() + 1;  // " key=value\n"
  size_t len = body + 1;
  while (std::to_string(len).size() + body != len) len = std::to_string(len).size() + body;
  std::string r = std::to_string(len);
  r += ' ';
  r += key;
  r += '=';
  r += value;
  r += '\n';
  return r;
}

std::string PaxTime(int64_t sec, uint32_t nsec) {
  std::string s;
  if (sec < 0 && nsec) {  // -1.5 s is stored as sec=-2, nsec=5e8
    s = "-" + std::to_string(-(sec + 1));
    nsec = 1000000000 - nsec;
  } else {
    s = std::to_string(sec);
  }
  if (nsec) {
    char frac[16];
    std::snprintf(frac, sizeof frac, ".%09u", nsec);
    std::string f = frac;
    while (f.back() == '0') f.pop_back();
    s += f;
  }
  return s;
}

// Splits `path` into ustar prefix/name if possible (name non-empty, <= 100; prefix <= 155).
bool SplitUstar(std::string_view path, std::string_view* prefix, std::string_view* name) {
  if (path.size() <= 100) {
    *prefix = {};
    *name = path;
    return true;
  }
  if (path.size() > 256) return false;
  for (size_t i = 1; i < path.size() && i <= 155; ++i) {
    if (path[i] != '/') continue;
    if (path.size() - i - 1 > 100) continue;
    if (path.size() - i - 1 == 0 || (path.size() - i - 1 == 1 && path.back() == '/')) break;
    *prefix = path.substr(0, i);
    *name = path.substr(i + 1);
    return true;
  }
  return false;
}

constexpr std::array<char, 2 * kTarBlockSize> kZeros{};

}  // namespace

std::string_view TarEndOfArchive() { return std::string_view(kZeros.data(), kZeros.size()); }

Result<std::string> EncodeTarHeader(const TarWriteEntry& w) {
  const Entry& e = w.entry;
  if (e.path.empty()) return Fail(EINVAL, "tar entry with an empty name");
  std::string path = e.path;
  if (e.type == EntryType::kDirectory && path.back() != '/') path += '/';
  auto bad = [](std::string_view s) { return s.find('\0') != std::string_view::npos; };
  if (bad(path) || bad(e.link_name) || bad(w.uname) || bad(w.gname))
    return Fail(EINVAL, "tar entry " + path.substr(0, 200) + ": NUL byte in a name");

  std::map<std::string, std::string> pax;
  UstarFields f;
  f.type = TypeFlag(e.type);
  f.mode = e.mode;
  if (!SplitUstar(path, &f.prefix, &f.name)) {
    pax["path"] = path;
    f.name = std::string_view(path).substr(0, 100);
  }
  if (e.type == EntryType::kSymlink || e.type == EntryType::kHardlink) {
    if (e.link_name.empty())
      return Fail(EINVAL, "tar entry " + path.substr(0, 200) + ": empty link target");
    f.link = e.link_name;
    if (e.link_name.size() > 100) {
      pax["linkpath"] = e.link_name;
      f.link = f.link.substr(0, 100);
    }
  }
  f.uid = e.uid;
  if (e.uid > kMax7) {
    pax["uid"] = std::to_string(e.uid);
    f.uid = kMax7;
  }
  f.gid = e.gid;
  if (e.gid > kMax7) {
    pax["gid"] = std::to_string(e.gid);
    f.gid = kMax7;
  }
  f.size = e.type == EntryType::kRegular ? e.size : 0;
  if (f.size > kMax11) {
    pax["size"] = std::to_string(f.size);
    f.size = 0;
  }
  if (e.mtime_nsec >= 1000000000)
    return Fail(EINVAL, "tar entry " + path.substr(0, 200) + ": mtime nanoseconds out of range");
  if (e.mtime_nsec || e.mtime_sec < 0 || static_cast<uint64_t>(e.mtime_sec) > kMax11) {
    pax["mtime"] = PaxTime(e.mtime_sec, e.mtime_nsec);
    f.mtime = e.mtime_sec < 0 ? 0 : std::min<uint64_t>(e.mtime_sec, kMax11);
  } else {
    f.mtime = static_cast<uint64_t>(e.mtime_sec);
  }
  f.uname = w.uname;
  if (w.uname.size() >= 32) {
    pax["uname"] = w.uname;
    f.uname = {};
  }
  f.gname = w.gname;
  if (w.gname.size() >= 32) {
    pax["gname"] = w.gname;
    f.gname = {};
  }
  if (e.type == EntryType::kCharDevice || e.type == EntryType::kBlockDevice) {
    f.dev_major = e.dev_major;
    f.dev_minor = e.dev_minor;
  }
  for (const Xattr& x : e.xattrs) {
    if (x.name.empty() || x.name.find('=') != std::string::npos || bad(x.name))
      return Fail(EINVAL, "tar entry " + path.substr(0, 200) + ": bad xattr name");
    pax["SCHILY.xattr." + x.name] = x.value;
  }

  std::string out;
  if (!pax.empty()) {
    std::string records;
    for (const auto& [k, v] : pax) records += PaxRecord(k, v);
    std::string_view trimmed = path;
    if (trimmed.size() > 1 && trimmed.back() == '/') trimmed.remove_suffix(1);
    const size_t slash = trimmed.rfind('/');
    std::string pax_name = slash == std::string_view::npos
                               ? "PaxHeaders/" + std::string(trimmed)
                               : std::string(trimmed.substr(0, slash)) + "/PaxHeaders/" +
                                     std::string(trimmed.substr(slash + 1));
    if (pax_name.size() > 100) pax_name.resize(100);
    UstarFields x;
    x.name = pax_name;
    x.mode = 0644;
    x.size = records.size();
    x.mtime = f.mtime;
    x.type = 'x';
    out = UstarBlock(x);
    out += records;
    out.append(TarPadding(records.size()), '\0');
  }
  out += UstarBlock(f);
  return out;
}

Status TarWriter::Out(std::string_view d) {
  written_ += d.size();
  return sink_(d);
}

Status TarWriter::EndMember() {
  if (payload_left_)
    return Fail(EINVAL, "tar payload is " + std::to_string(payload_left_) + " bytes short");
  const uint64_t pad = TarPadding(payload_size_);
  payload_size_ = 0;
  if (pad) return Out(std::string_view(kZeros.data(), pad));
  return Ok();
}

Status TarWriter::WriteHeader(const TarWriteEntry& e) {
  if (finished_) return Fail(EINVAL, "tar writer already finished");
  HOIST_RETURN_IF_ERROR(EndMember());
  HOIST_ASSIGN_OR_RETURN(std::string h, EncodeTarHeader(e));
  payload_size_ = payload_left_ = e.entry.type == EntryType::kRegular ? e.entry.size : 0;
  return Out(h);
}

Status TarWriter::WritePayload(std::string_view data) {
  if (data.size() > payload_left_) return Fail(EINVAL, "tar payload longer than the declared size");
  payload_left_ -= data.size();
  return Out(data);
}

Status TarWriter::Finish() {
  if (finished_) return Ok();
  HOIST_RETURN_IF_ERROR(EndMember());
  finished_ = true;
  return Out(TarEndOfArchive());
}

}  // namespace hoist
