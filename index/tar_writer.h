// Tar writer: encodes entries as POSIX ustar headers, adding a pax extended header ('x') only
// when a value does not fit ustar. The output is deterministic (same entries, same bytes) and is
// read back exactly by index/tar_reader.h and by GNU tar (`tar --xattrs -xf`).
//
// When pax is used (records sorted by key; header name "<dir>/PaxHeaders/<base>", cut to 100):
//   - path: longer than 100 bytes and not splittable into prefix (<= 155) "/" name (<= 100);
//   - linkpath: longer than 100 bytes;
//   - uid / gid: above 07777777; size: above 077777777777 (8 GiB - 1);
//   - mtime: a sub-second part, a negative value, or above 077777777777 ("sec[.frac]");
//   - uname / gname: 32 bytes or longer;
//   - every xattr: "SCHILY.xattr.<name>" = raw value.
// The ustar field of a value moved to pax holds the value clamped to what the field can hold.
// devmajor/devminor above 07777777 are written base-256 (there is no pax key for them).
// Directory names get a trailing "/" if they lack one. Hardlinks, symlinks, devices, fifos and
// directories are written with size 0 and have no payload.
//
// Thread-safety: EncodeTarHeader is a pure function; a TarWriter is used by one thread at a time.
// Errors: EINVAL for an entry that cannot be encoded (empty path, NUL in a name, xattr name with
// '=' or NUL, a payload longer/shorter than declared), errors of the WriteCallback unchanged.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "index/byte_stream.h"
#include "index/layer_index.h"

namespace hoist {

inline constexpr size_t kTarBlockSize = 512;

// What one tar member header says. `entry.path` and `entry.link_name` are written as given (not
// cleaned; the caller decides on "./" prefixes); entry.digest/chunks/prefetch are ignored.
// entry.size is the payload size of regular files and is ignored for other types.
struct TarWriteEntry {
  Entry entry;
  std::string uname;  // optional owner names
  std::string gname;
};

// The header blocks of one member (pax 'x' header + its records + the ustar block when needed,
// else one 512-byte ustar block). The payload and its padding are not included.
[[nodiscard]] Result<std::string> EncodeTarHeader(const TarWriteEntry& e);

// Zero bytes needed after `size` payload bytes to reach a 512-byte boundary.
inline uint64_t TarPadding(uint64_t size) {
  return (kTarBlockSize - size % kTarBlockSize) % kTarBlockSize;
}

// The end-of-archive marker: two zero blocks.
std::string_view TarEndOfArchive();

// Streaming writer over a sink: WriteHeader, then exactly entry.size bytes of WritePayload for a
// regular file, ..., then Finish (two zero blocks). The writer pads payloads itself.
class TarWriter {
 public:
  explicit TarWriter(WriteCallback sink) : sink_(std::move(sink)) {}
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;

  // REQUIRES: the previous member's payload is complete.
  [[nodiscard]] Status WriteHeader(const TarWriteEntry& e);
  // Appends payload bytes of the current member (EINVAL past its declared size).
  [[nodiscard]] Status WritePayload(std::string_view data);
  // Checks the last payload is complete, writes its padding and the end-of-archive blocks.
  [[nodiscard]] Status Finish();

  uint64_t bytes_written() const { return written_; }

 private:
  Status Out(std::string_view d);
  Status EndMember();

  WriteCallback sink_;
  uint64_t payload_left_ = 0;
  uint64_t payload_size_ = 0;
  uint64_t written_ = 0;
  bool finished_ = false;
};

}  // namespace hoist
