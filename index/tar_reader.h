// Streaming tar reader: pulls a tar stream through a ReadCallback and yields one TarMember at a
// time, never holding more than one member's metadata (headers, pax records, GNU long names;
// capped) in memory. File payloads are read by the caller with ReadPayload, or skipped.
//
// Accepted: ustar, pax (local 'x' and global 'g' headers; keys path, linkpath, size, uid, gid,
// mtime with fractional seconds, SCHILY.xattr.*, LIBARCHIVE.xattr.*), GNU (long name 'L', long
// link 'K', base-256 numbers), old v7 headers; typeflags 0 \0 7 1 2 3 4 5 6. End of archive is
// a zero block followed by a zero block or by EOF; EOF at a block boundary is also accepted.
// PAX sparse files (GNU tar --sparse --format=pax; GNU.sparse.* records, formats 0.0, 0.1 and
// 1.0) are read as Go's archive/tar (umoci, containerd) reads them: the member is the expanded
// file (GNU.sparse.name, real size from GNU.sparse.size / GNU.sparse.realsize) and
// TarMember::sparse maps its data segments; holes read as zeros. A GNU.sparse.major/minor pair
// other than 0.0, 0.1, 1.0 makes a plain file, as in Go. Sparse maps must have offsets that
// increase without overlap, segments within the real size, at most kMaxSparseSegments entries,
// and data lengths that add up to the bytes the member stores.
// Rejected (with an error naming the member and its byte offset): bad checksums, truncated
// members, old GNU sparse ('S') and GNU.sparse.* in a global header (ENOTSUP), bad sparse maps
// (EBADMSG; over the segment cap EFBIG), other typeflags, malformed pax
// records, numbers that do not parse or overflow, metadata over the cap (EFBIG), names that
// CleanEntryPath rejects (EINVAL / ENAMETOOLONG), a zero block followed by a non-zero block.
// Corrupt or truncated data is EBADMSG; errors from the ReadCallback pass through.
//
// Byte accounting (for the zstd:chunked converter, which must reproduce the stream byte for
// byte): every byte of the stream belongs to exactly one of a member's raw header (all its
// metadata blocks, pax/L/K payloads included, and the sparse map blocks that start a format 1.0
// sparse member's data), its payload, its padding, or the trailer (from
// the end-of-archive block to EOF; this includes any global header not followed by a member).
//
// Thread-safety: one thread at a time. The TarMember pointer and string_views returned stay
// valid until the next call to Next().
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "index/byte_stream.h"
#include "index/layer_index.h"

namespace hoist {

// One data segment of a sparse member: `length` bytes of the file from `offset` on are stored in
// the tar stream at `payload_offset` (segments are stored back to back, in file order).
struct SparseSegment {
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t payload_offset = 0;
  friend bool operator==(const SparseSegment&, const SparseSegment&) = default;
};

inline constexpr size_t kMaxSparseSegments = size_t{1} << 18;

struct TarMember {
  Entry entry;                  // cleaned path, metadata; chunks and digest are left empty
  char typeflag = '0';          // of the main header block
  std::string raw_name;         // the name as stored (pax path, GNU long name or prefix/name)
  std::string raw_link;         // the link name as stored
  uint64_t header_offset = 0;   // stream offset of the member's first metadata block
  uint64_t header_length = 0;   // bytes from header_offset through the main 512-byte header
  uint64_t payload_offset = 0;  // == header_offset + header_length
  uint64_t payload_size = 0;    // content bytes (0 for header-only types)
  uint64_t padding = 0;         // bytes after the payload up to the next 512-byte boundary
  // PAX sparse members: entry.size is the real (expanded) size, the payload is the stored data
  // segments back to back (payload_size is their sum), and this lists them in file order
  // (zero-length segments left out). Everything not in a segment reads as zeros.
  bool is_sparse = false;
  std::vector<SparseSegment> sparse;
};

struct TarReaderOptions {
  uint64_t max_metadata_size = 1 << 20;  // cap on one pax record set or GNU long name/link
};

class TarReader {
 public:
  explicit TarReader(ReadCallback source, TarReaderOptions options = {});
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;

  // Advances to the next member (skipping the rest of the current payload and its padding).
  // Returns nullptr at the end of the archive.
  [[nodiscard]] Result<const TarMember*> Next();

  // Reads up to n bytes of the current member's payload; 0 once it is exhausted.
  [[nodiscard]] Result<size_t> ReadPayload(char* buf, size_t n);

  // Skips what is left of the payload and reads the padding; returns the exact padding bytes.
  // Idempotent; Next() calls it if the caller did not.
  [[nodiscard]] Result<std::string_view> FinishMember();

  // The exact bytes [header_offset, header_offset + header_length) of the current member.
  std::string_view raw_header() const { return raw_header_; }

  // After Next() returned nullptr: the stream from trailer_offset() to EOF, in pieces.
  [[nodiscard]] Result<size_t> ReadTrailer(char* buf, size_t n);
  uint64_t trailer_offset() const { return trailer_offset_; }

  // Bytes consumed from the source so far.
  uint64_t position() const { return position_; }

 private:
  Result<size_t> ReadUpTo(char* buf, size_t n);  // loops until n bytes or EOF
  // Reads a format 1.0 sparse map (appended to raw_header_) from a member storing stored_size.
  Result<std::vector<std::pair<uint64_t, uint64_t>>> ReadSparseMap1x0(uint64_t stored_size,
                                                                      uint64_t* map_bytes);
  Error Corrupt(uint64_t offset, std::string_view what) const;

  ReadCallback source_;
  TarReaderOptions options_;
  uint64_t position_ = 0;
  TarMember member_;
  std::string raw_header_;
  std::string padding_;
  uint64_t payload_left_ = 0;
  bool member_finished_ = true;
  bool at_end_ = false;
  std::string trailer_buf_;  // consumed bytes that belong to the trailer
  size_t trailer_pos_ = 0;
  uint64_t trailer_offset_ = 0;
  std::map<std::string, std::string> global_pax_;
};

// Parses a tar numeric field (octal ASCII, or base-256 when byte0 & 0x80). Exposed for tests.
[[nodiscard]] Result<int64_t> ParseTarNumber(std::string_view field, bool allow_negative);

// Parses pax records ("<len> key=value\n"...). Exposed for tests and fuzzing.
[[nodiscard]] Result<std::map<std::string, std::string>> ParsePaxRecords(std::string_view data);

}  // namespace hoist
