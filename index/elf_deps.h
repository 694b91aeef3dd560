// ELF dependency headers: what the dynamic loader will open after a program or library, read
// from the file's own bytes (index/FORMATS.md, "ELF dependencies").
//
// ParseElfDeps reads, through a caller-given reader, only what names the dependencies: the ELF
// header, the program header table, PT_INTERP's string, PT_DYNAMIC's entries (up to DT_NULL),
// and the DT_STRTAB strings that DT_NEEDED, DT_SONAME, DT_RPATH and DT_RUNPATH point at
// (DT_STRTAB is a virtual address, mapped to a file offset through the PT_LOAD segments). Each
// read may be a network fetch, so there are few and they are small: one for the header, one for
// the program headers, one for the interpreter, one for the dynamic entries, and the strings in
// as few spans as their spread allows (nearby strings share one read). Works the same on any
// host: ELF32 and ELF64, little and big endian, every field decoded byte by byte.
//
// Bounded on hostile input: at most `max_program_headers` program headers and
// `max_dynamic_entries` dynamic entries are read, at most `max_needed` DT_NEEDED entries are
// accepted, a string longer than `max_string_length` (no NUL within) is an error, and the sum
// of the lengths asked of the reader never passes `max_read_bytes`. Every read lies inside
// [0, file_size); offset arithmetic is checked for overflow.
//
// Errors:
//   ENOEXEC  not an ELF file (the 4-byte magic differs, or fewer than 4 bytes), or an ELF file
//            that is neither ET_EXEC nor ET_DYN (an object file, a core dump): nothing to load;
//   EBADMSG  a malformed or hostile ELF file, or one past a limit (one line naming what);
//   anything the reader returns (passed on unchanged); a reader returning fewer bytes than
//            asked is EBADMSG ("short read").
//
// Thread-safety: a pure function of its reader; calls may run concurrently with different
// readers. Ownership: nothing is kept after the call returns.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"

namespace hoist {

// Reads `length` bytes at `offset` of the file. The parser never asks for a range outside
// [0, file_size) nor for 0 bytes. Should return exactly `length` bytes.
using ElfReader = std::function<Result<std::string>(uint64_t offset, uint64_t length)>;

struct ElfLimits {
  uint32_t max_program_headers = 256;
  uint32_t max_dynamic_entries = 1024;
  uint32_t max_needed = 256;
  uint32_t max_string_length = 4096;  // bytes before the NUL
  uint64_t max_read_bytes = uint64_t{1} << 20;
};

struct ElfDeps {
  int elf_class = 0;                 // 32 or 64
  bool big_endian = false;           // EI_DATA == ELFDATA2MSB
  uint16_t machine = 0;              // e_machine (EM_X86_64 = 62, EM_AARCH64 = 183, ...)
  uint16_t type = 0;                 // e_type: ET_EXEC (2) or ET_DYN (3)
  std::string interp;                // PT_INTERP's path; empty for a static program or a library
  std::vector<std::string> needed;   // DT_NEEDED sonames in dynamic-section order
  std::string soname;                // DT_SONAME, or empty
  std::vector<std::string> rpath;    // DT_RPATH split on ':' (empty elements dropped)
  std::vector<std::string> runpath;  // DT_RUNPATH split on ':' (empty elements dropped)
  bool has_runpath = false;          // a DT_RUNPATH entry exists (even an empty one)
};

[[nodiscard]] Result<ElfDeps> ParseElfDeps(const ElfReader& reader, uint64_t file_size,
                                           const ElfLimits& limits = {});

}  // namespace hoist
