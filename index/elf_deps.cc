#include "index/elf_deps.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>

namespace hoist {
namespace {

// Layout of the parts read, per class (ELF spec, "ELF Header", "Program Header", "Dynamic
// Section"). Only <elf.h>'s constants and struct sizes are used; fields are decoded by offset.
struct Layout {
  uint64_t ehdr_size;
  uint64_t phoff_at, phentsize_at, phnum_at;
  uint64_t phdr_size;
  uint64_t p_offset_at, p_vaddr_at, p_filesz_at;
  int word;  // 4 or 8: the size of an address, offset or d_tag/d_val
  uint64_t dyn_size;
};

constexpr Layout kElf32{sizeof(Elf32_Ehdr), 28, 42, 44, sizeof(Elf32_Phdr), 4, 8, 16, 4,
                        sizeof(Elf32_Dyn)};
constexpr Layout kElf64{sizeof(Elf64_Ehdr), 32, 54, 56, sizeof(Elf64_Phdr), 8, 16, 32, 8,
                        sizeof(Elf64_Dyn)};
static_assert(sizeof(Elf32_Ehdr) == 52 && sizeof(Elf64_Ehdr) == 64);
static_assert(sizeof(Elf32_Phdr) == 32 && sizeof(Elf64_Phdr) == 56);
static_assert(sizeof(Elf32_Dyn) == 8 && sizeof(Elf64_Dyn) == 16);

// Unsigned integer of `bytes` bytes at `pos` of `data` in the file's byte order.
// REQUIRES: pos + bytes <= data.size().
uint64_t Decode(std::string_view data, uint64_t pos, int bytes, bool big_endian) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    uint64_t b = static_cast<unsigned char>(data[pos + i]);
    v |= big_endian ? b << (8 * (bytes - 1 - i)) : b << (8 * i);
  }
  return v;
}

// Every read goes through here: inside [0, size), within the byte budget, exact length.
class BoundedReader {
 public:
  BoundedReader(const ElfReader& reader, uint64_t size, uint64_t budget)
      : reader_(reader), size_(size), budget_(budget) {}

  Result<std::string> Read(uint64_t offset, uint64_t length, std::string_view what) {
    if (offset > size_ || length > size_ - offset) {
      return Fail(EBADMSG, std::string(what) + " (offset " + std::to_string(offset) + ", " +
                               std::to_string(length) + " bytes) lies past the end of the file (" +
                               std::to_string(size_) + " bytes)");
    }
    if (length == 0) return std::string();
    if (length > budget_ - used_) {
      return Fail(EBADMSG, "reading " + std::string(what) + " would pass the limit of " +
                               std::to_string(budget_) + " bytes read");
    }
    used_ += length;
    HOIST_ASSIGN_OR_RETURN(std::string data, reader_(offset, length));
    if (data.size() < length) {
      return Fail(EBADMSG, "short read of " + std::string(what) + ": " +
                               std::to_string(data.size()) + " of " + std::to_string(length) +
                               " bytes");
    }
    data.resize(length);
    return data;
  }

 private:
  const ElfReader& reader_;
  uint64_t size_;
  uint64_t budget_;
  uint64_t used_ = 0;
};

struct Segment {
  uint64_t offset, vaddr, filesz;
};

std::vector<std::string> SplitPath(std::string_view list) {
  std::vector<std::string> out;
  while (true) {
    size_t colon = list.find(':');
    std::string_view part = list.substr(0, colon);
    if (!part.empty()) out.emplace_back(part);
    if (colon == std::string_view::npos) break;
    list.remove_prefix(colon + 1);
  }
  return out;
}

// The file range of the string table and the strings wanted from it.
class StringTable {
 public:
  StringTable(uint64_t begin, uint64_t end, const ElfLimits& limits)
      : begin_(begin), end_(end), limits_(limits) {}

  // Reads the NUL-terminated strings at `offsets` (relative to the table), in as few reads as
  // their spread allows. Returns them in the order of `offsets`.
  Result<std::vector<std::string>> ReadStrings(BoundedReader& in,
                                               const std::vector<uint64_t>& offsets) {
    std::vector<uint64_t> sorted = offsets;
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    std::vector<std::pair<uint64_t, std::string>> found;  // offset -> string, sorted
    size_t i = 0;
    while (i < sorted.size()) {
      // One span: strings no further apart than kGap, each with kWindow bytes after it.
      uint64_t first = sorted[i];
      size_t j = i;
      while (j + 1 < sorted.size() && sorted[j + 1] - sorted[j] <= kGap) ++j;
      uint64_t span_end = std::min(Size(), sorted[j] + kWindow);
      HOIST_ASSIGN_OR_RETURN(std::string span,
                             in.Read(begin_ + first, span_end - first, "the string table"));
      for (; i <= j; ++i) {
        uint64_t rel = sorted[i] - first;
        size_t nul = span.find('\0', rel);
        std::string s;
        if (nul != std::string::npos && nul - rel <= limits_.max_string_length) {
          s = span.substr(rel, nul - rel);
        } else if (nul != std::string::npos) {
          return TooLong(sorted[i]);
        } else {
          HOIST_ASSIGN_OR_RETURN(s, ReadLong(in, sorted[i]));
        }
        found.emplace_back(sorted[i], std::move(s));
      }
    }
    std::vector<std::string> out;
    out.reserve(offsets.size());
    for (uint64_t off : offsets) {
      auto it = std::lower_bound(found.begin(), found.end(), off,
                                 [](const auto& e, uint64_t o) { return e.first < o; });
      out.push_back(it->second);
    }
    return out;
  }

  uint64_t Size() const { return end_ - begin_; }

 private:
  static constexpr uint64_t kGap = 4096;
  static constexpr uint64_t kWindow = 256;

  // A string whose NUL was not in its span: read up to the length limit from its start.
  Result<std::string> ReadLong(BoundedReader& in, uint64_t off) {
    uint64_t want = std::min<uint64_t>(Size() - off, uint64_t{limits_.max_string_length} + 1);
    HOIST_ASSIGN_OR_RETURN(std::string s, in.Read(begin_ + off, want, "a long string"));
    size_t nul = s.find('\0');
    if (nul != std::string::npos) return s.substr(0, nul);
    if (want > limits_.max_string_length) return TooLong(off);
    return Fail(EBADMSG, "the string at offset " + std::to_string(off) +
                             " of the string table has no NUL before the table's end");
  }

  std::unexpected<Error> TooLong(uint64_t off) const {
    return Fail(EBADMSG, "the string at offset " + std::to_string(off) +
                             " of the string table is longer than " +
                             std::to_string(limits_.max_string_length) + " bytes");
  }

  uint64_t begin_, end_;
  const ElfLimits& limits_;
};

struct DynamicRefs {
  std::vector<uint64_t> needed;
  std::optional<uint64_t> strtab, strsz, soname, rpath, runpath;
};

Result<DynamicRefs> ReadDynamic(BoundedReader& in, const Layout& l, bool big,
                                const Segment& dynamic, const ElfLimits& limits) {
  uint64_t count = dynamic.filesz / l.dyn_size;
  uint64_t n = std::min<uint64_t>(count, limits.max_dynamic_entries);
  if (n == 0) return Fail(EBADMSG, "PT_DYNAMIC holds no entry");
  HOIST_ASSIGN_OR_RETURN(std::string dyn,
                         in.Read(dynamic.offset, n * l.dyn_size, "the dynamic section"));
  DynamicRefs refs;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t tag = Decode(dyn, i * l.dyn_size, l.word, big);
    uint64_t val = Decode(dyn, i * l.dyn_size + l.word, l.word, big);
    switch (tag) {
      case DT_NULL:
        return refs;
      case DT_NEEDED:
        if (refs.needed.size() >= limits.max_needed) {
          return Fail(EBADMSG,
                      "more than " + std::to_string(limits.max_needed) + " DT_NEEDED entries");
        }
        refs.needed.push_back(val);
        break;
      case DT_STRTAB:
        refs.strtab = val;
        break;
      case DT_STRSZ:
        refs.strsz = val;
        break;
      case DT_SONAME:
        refs.soname = val;
        break;
      case DT_RPATH:
        refs.rpath = val;
        break;
      case DT_RUNPATH:
        refs.runpath = val;
        break;
      default:
        break;
    }
  }
  if (count > n) {
    return Fail(EBADMSG, "no DT_NULL in the first " + std::to_string(n) + " dynamic entries");
  }
  return refs;  // the segment ends without DT_NULL: its end ends the entries
}

// The file range [begin, end) holding the string table at virtual address `addr`.
Result<std::pair<uint64_t, uint64_t>> MapStringTable(const std::vector<Segment>& loads,
                                                     uint64_t addr, std::optional<uint64_t> strsz,
                                                     uint64_t file_size) {
  for (const Segment& s : loads) {
    if (addr < s.vaddr || addr - s.vaddr >= s.filesz) continue;
    uint64_t begin = s.offset + (addr - s.vaddr);
    uint64_t end = s.offset + s.filesz;  // checked against overflow when the segment was read
    if (strsz && *strsz < end - begin) end = begin + *strsz;
    if (begin >= file_size) break;
    return std::pair{begin, std::min(end, file_size)};
  }
  return Fail(EBADMSG, "DT_STRTAB address " + std::to_string(addr) +
                           " is in no PT_LOAD segment's file bytes");
}

}  // namespace

Result<ElfDeps> ParseElfDeps(const ElfReader& reader, uint64_t file_size, const ElfLimits& limits) {
  if (file_size < SELFMAG) return Fail(ENOEXEC, "not an ELF file (shorter than its magic)");
  BoundedReader in(reader, file_size, limits.max_read_bytes);
  // One read for the magic and the whole header: each read may be a round trip.
  HOIST_ASSIGN_OR_RETURN(
      std::string ehdr,
      in.Read(0, std::min<uint64_t>(file_size, sizeof(Elf64_Ehdr)), "the ELF header"));
  if (std::memcmp(ehdr.data(), ELFMAG, SELFMAG) != 0) {
    return Fail(ENOEXEC, "not an ELF file (no ELF magic)");
  }
  if (ehdr.size() < EI_NIDENT) return Fail(EBADMSG, "truncated ELF header");
  ElfDeps deps;
  unsigned char cls = ehdr[EI_CLASS], data = ehdr[EI_DATA];
  if (cls != ELFCLASS32 && cls != ELFCLASS64) {
    return Fail(EBADMSG, "unknown ELF class " + std::to_string(cls));
  }
  if (data != ELFDATA2LSB && data != ELFDATA2MSB) {
    return Fail(EBADMSG, "unknown ELF data encoding " + std::to_string(data));
  }
  const Layout& l = cls == ELFCLASS32 ? kElf32 : kElf64;
  bool big = data == ELFDATA2MSB;
  deps.elf_class = cls == ELFCLASS32 ? 32 : 64;
  deps.big_endian = big;
  if (ehdr.size() < l.ehdr_size) return Fail(EBADMSG, "truncated ELF header");
  deps.type = static_cast<uint16_t>(Decode(ehdr, 16, 2, big));
  deps.machine = static_cast<uint16_t>(Decode(ehdr, 18, 2, big));
  if (deps.type != ET_EXEC && deps.type != ET_DYN) {
    return Fail(ENOEXEC, "ELF type " + std::to_string(deps.type) +
                             " is neither an executable nor a shared object");
  }

  uint64_t phoff = Decode(ehdr, l.phoff_at, l.word, big);
  uint64_t phentsize = Decode(ehdr, l.phentsize_at, 2, big);
  uint64_t phnum = Decode(ehdr, l.phnum_at, 2, big);
  if (phnum == 0) return deps;     // nothing is loaded, so nothing more is opened
  if (phentsize != l.phdr_size) {  // as glibc's loader checks
    return Fail(EBADMSG, "program header size " + std::to_string(phentsize) + " is not " +
                             std::to_string(l.phdr_size));
  }
  if (phnum > limits.max_program_headers) {
    return Fail(EBADMSG, std::to_string(phnum) + " program headers (more than " +
                             std::to_string(limits.max_program_headers) + ")");
  }
  HOIST_ASSIGN_OR_RETURN(std::string phdrs,
                         in.Read(phoff, phnum * phentsize, "the program header table"));

  std::vector<Segment> loads;
  std::optional<Segment> interp, dynamic;
  for (uint64_t i = 0; i < phnum; ++i) {
    uint64_t at = i * phentsize;
    uint64_t type = Decode(phdrs, at, 4, big);
    Segment s{Decode(phdrs, at + l.p_offset_at, l.word, big),
              Decode(phdrs, at + l.p_vaddr_at, l.word, big),
              Decode(phdrs, at + l.p_filesz_at, l.word, big)};
    if (type != PT_LOAD && type != PT_INTERP && type != PT_DYNAMIC) continue;
    if (s.offset > file_size || s.filesz > file_size - s.offset) {
      return Fail(EBADMSG, "program header " + std::to_string(i) + " (type " +
                               std::to_string(type) + ") lies past the end of the file");
    }
    if (type == PT_LOAD) loads.push_back(s);
    if (type == PT_INTERP && !interp) interp = s;
    if (type == PT_DYNAMIC && !dynamic) dynamic = s;
  }

  if (interp) {
    if (interp->filesz == 0) return Fail(EBADMSG, "empty PT_INTERP");
    if (interp->filesz > uint64_t{limits.max_string_length} + 1) {
      return Fail(EBADMSG, "PT_INTERP is longer than " + std::to_string(limits.max_string_length) +
                               " bytes");
    }
    HOIST_ASSIGN_OR_RETURN(std::string path,
                           in.Read(interp->offset, interp->filesz, "the PT_INTERP path"));
    size_t nul = path.find('\0');
    if (nul == std::string::npos) return Fail(EBADMSG, "PT_INTERP has no NUL");
    if (nul == 0) return Fail(EBADMSG, "empty PT_INTERP");
    path.resize(nul);
    deps.interp = std::move(path);
  }
  if (!dynamic) return deps;  // a static program

  HOIST_ASSIGN_OR_RETURN(DynamicRefs refs, ReadDynamic(in, l, big, *dynamic, limits));
  std::vector<uint64_t> offsets = refs.needed;
  for (const auto& ref : {refs.soname, refs.rpath, refs.runpath}) {
    if (ref) offsets.push_back(*ref);
  }
  if (offsets.empty()) return deps;
  if (!refs.strtab) return Fail(EBADMSG, "dynamic strings without DT_STRTAB");
  HOIST_ASSIGN_OR_RETURN(auto range, MapStringTable(loads, *refs.strtab, refs.strsz, file_size));
  StringTable table(range.first, range.second, limits);
  for (uint64_t off : offsets) {
    if (off >= table.Size()) {
      return Fail(EBADMSG, "string offset " + std::to_string(off) +
                               " lies past the string table (" + std::to_string(table.Size()) +
                               " bytes)");
    }
  }
  HOIST_ASSIGN_OR_RETURN(std::vector<std::string> strings, table.ReadStrings(in, offsets));
  size_t k = 0;
  for (; k < refs.needed.size(); ++k) deps.needed.push_back(std::move(strings[k]));
  if (refs.soname) deps.soname = std::move(strings[k++]);
  if (refs.rpath) deps.rpath = SplitPath(strings[k++]);
  if (refs.runpath) {
    deps.has_runpath = true;
    deps.runpath = SplitPath(strings[k++]);
  }
  return deps;
}

}  // namespace hoist
