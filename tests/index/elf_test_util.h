// Hand-built ELF files for the ELF dependency tests: a header, three program headers (PT_LOAD
// over the whole file, PT_INTERP, PT_DYNAMIC), the interpreter string, a string table and the
// dynamic entries, in either class and byte order, every field written byte by byte. Also a
// reader over a byte string that counts what is asked of it and checks every range.
//
// Thread-safety: plain values, one thread.
#pragma once

#include <elf.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "index/elf_deps.h"

namespace hoist::testing {

struct ElfSpec {
  int elf_class = 64;
  bool big_endian = false;
  uint16_t type = ET_DYN;
  uint16_t machine = EM_X86_64;
  std::string interp;  // no PT_INTERP when empty
  std::vector<std::string> needed;
  std::string soname, rpath, runpath;  // no entry when empty
  bool no_dynamic = false;             // no PT_DYNAMIC at all (a static program)
};

// Offsets of the built parts, for tests that damage them.
struct ElfParts {
  std::string bytes;
  uint64_t phoff = 0, strtab_off = 0, dynamic_off = 0, interp_off = 0;
  uint64_t vaddr_base = 0;
};

class ElfWriter {
 public:
  ElfWriter(int elf_class, bool big) : word_(elf_class == 64 ? 8 : 4), big_(big) {}
  void Put(std::string& out, uint64_t pos, uint64_t v, int bytes) const {
    if (out.size() < pos + bytes) out.resize(pos + bytes, '\0');
    for (int i = 0; i < bytes; ++i) {
      int shift = big_ ? 8 * (bytes - 1 - i) : 8 * i;
      out[pos + i] = static_cast<char>((v >> shift) & 0xff);
    }
  }
  int word() const { return word_; }

 private:
  int word_;
  bool big_;
};

inline ElfParts BuildElf(const ElfSpec& spec) {
  ElfWriter w(spec.elf_class, spec.big_endian);
  bool b64 = spec.elf_class == 64;
  uint64_t ehsize = b64 ? 64 : 52, phentsize = b64 ? 56 : 32, dynsize = b64 ? 16 : 8;
  ElfParts p;
  p.vaddr_base = spec.type == ET_EXEC ? 0x400000 : 0;
  std::string& out = p.bytes;
  out.assign(ehsize, '\0');
  out[0] = 0x7f;
  out[1] = 'E';
  out[2] = 'L';
  out[3] = 'F';
  out[EI_CLASS] = static_cast<char>(b64 ? ELFCLASS64 : ELFCLASS32);
  out[EI_DATA] = static_cast<char>(spec.big_endian ? ELFDATA2MSB : ELFDATA2LSB);
  out[EI_VERSION] = EV_CURRENT;
  w.Put(out, 16, spec.type, 2);
  w.Put(out, 18, spec.machine, 2);
  w.Put(out, 20, EV_CURRENT, 4);
  int phnum = 1 + (spec.interp.empty() ? 0 : 1) + (spec.no_dynamic ? 0 : 1);
  p.phoff = ehsize;
  w.Put(out, b64 ? 32 : 28, p.phoff, w.word());
  w.Put(out, b64 ? 52 : 40, ehsize, 2);
  w.Put(out, b64 ? 54 : 42, phentsize, 2);
  w.Put(out, b64 ? 56 : 44, phnum, 2);
  out.resize(ehsize + phnum * phentsize, '\0');

  p.interp_off = out.size();
  if (!spec.interp.empty()) out += spec.interp + '\0';
  // String table: "\0" then each string.
  p.strtab_off = out.size();
  out += '\0';
  auto add_string = [&](const std::string& s) {
    uint64_t off = out.size() - p.strtab_off;
    out += s + '\0';
    return off;
  };
  std::vector<std::pair<uint64_t, uint64_t>> dyn;
  for (const std::string& n : spec.needed) dyn.emplace_back(DT_NEEDED, add_string(n));
  if (!spec.soname.empty()) dyn.emplace_back(DT_SONAME, add_string(spec.soname));
  if (!spec.rpath.empty()) dyn.emplace_back(DT_RPATH, add_string(spec.rpath));
  if (!spec.runpath.empty()) dyn.emplace_back(DT_RUNPATH, add_string(spec.runpath));
  uint64_t strsz = out.size() - p.strtab_off;
  dyn.emplace_back(DT_STRTAB, p.vaddr_base + p.strtab_off);
  dyn.emplace_back(DT_STRSZ, strsz);
  dyn.emplace_back(DT_NULL, 0);
  out.resize((out.size() + 7) / 8 * 8, '\0');
  p.dynamic_off = out.size();
  if (!spec.no_dynamic) {
    for (const auto& [tag, val] : dyn) {
      uint64_t at = out.size();
      w.Put(out, at, tag, w.word());
      w.Put(out, at + w.word(), val, w.word());
    }
  }
  uint64_t dynamic_size = out.size() - p.dynamic_off;

  auto phdr = [&](int i, uint32_t type, uint64_t off, uint64_t size) {
    uint64_t at = p.phoff + i * phentsize;
    w.Put(out, at, type, 4);
    if (b64) {
      w.Put(out, at + 8, off, 8);
      w.Put(out, at + 16, p.vaddr_base + off, 8);
      w.Put(out, at + 24, p.vaddr_base + off, 8);
      w.Put(out, at + 32, size, 8);
      w.Put(out, at + 40, size, 8);
    } else {
      w.Put(out, at + 4, off, 4);
      w.Put(out, at + 8, p.vaddr_base + off, 4);
      w.Put(out, at + 12, p.vaddr_base + off, 4);
      w.Put(out, at + 16, size, 4);
      w.Put(out, at + 20, size, 4);
    }
  };
  int i = 0;
  phdr(i++, PT_LOAD, 0, out.size());
  if (!spec.interp.empty()) phdr(i++, PT_INTERP, p.interp_off, spec.interp.size() + 1);
  if (!spec.no_dynamic) phdr(i++, PT_DYNAMIC, p.dynamic_off, dynamic_size);
  (void)dynsize;
  return p;
}

// A reader over `data` that records what was asked and fails the test on a range outside it.
struct CountingReader {
  std::string data;
  uint64_t bytes = 0;
  int reads = 0;
  bool out_of_range = false;

  ElfReader Reader() {
    return [this](uint64_t off, uint64_t len) -> Result<std::string> {
      ++reads;
      bytes += len;
      if (len == 0 || off > data.size() || len > data.size() - off) {
        out_of_range = true;
        return Fail(EIO, "read outside the file");
      }
      return data.substr(off, len);
    };
  }
};

}  // namespace hoist::testing
