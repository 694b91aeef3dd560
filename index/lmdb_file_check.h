// CheckLmdbHeader / CheckLmdbDataFile: a check of an LMDB data file (data.mdb) against LMDB's own
// metadata, done BEFORE mdb_env_open maps it. liblmdb trusts its file: a data file shorter than
// the last page its meta page records is mapped anyway, and the first read past the end raises
// SIGBUS; a meta page with garbage fields makes it fail or crash later. This check rejects such a
// file so the caller can set it aside (see LmdbEnv::Open).
//
// What is checked (layout facts of LMDB 0.9 data format version 1, the format liblmdb 0.9.x
// writes on 64-bit Linux; see index/FORMATS.md "LMDB data file"):
//  - the file holds at least two pages (the two meta pages);
//  - both pages 0 and 1 are meta pages: page flag P_META (0x08) at byte 10, magic 0xBEEFC0DE at
//    byte 16, data version 1 at byte 20, the same page size (a power of two, 512..65536) at
//    byte 40 of each;
//  - the meta page with the larger txnid (LMDB uses that one) records a last page (byte 136)
//    whose end (last+1)*psize the file covers, and root pages (bytes 80 and 128) below it.
// A file that passes may still hold damaged pages: the caller's structural check after
// mdb_env_open (and the run-time handling) covers those.
//
// Thread-safety: pure functions. Errors: CheckLmdbDataFile returns the errno of open/fstat/pread
// (ENOENT if there is no file, which is not damage: a fresh cache).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "base/status.h"

namespace hoist {

// How many bytes of the file CheckLmdbHeader wants: page 0 and page 1 of the largest page size.
inline constexpr size_t kLmdbHeaderBytes = 2 * 65536;

// `head`: the first min(file_size, kLmdbHeaderBytes) bytes of the file. Returns nullopt if the
// header is sound (or file_size is 0), else a short reason ("shorter than its last page: 8192 of
// 1052672 bytes").
std::optional<std::string> CheckLmdbHeader(std::span<const uint8_t> head, uint64_t file_size);

// Reads the head of `path` and calls CheckLmdbHeader. An empty file is sound (LMDB initialises
// it as a new environment).
[[nodiscard]] Result<std::optional<std::string>> CheckLmdbDataFile(const std::string& path);

}  // namespace hoist
