// tar-split reading: the zstd-compressed JSON-lines record (vbatts/tar-split format) that a
// zstd:chunked layer carries so the exact original tar stream can be rebuilt from the file
// contents (see FORMATS.md, "zstd:chunked — layout" and "tar-split — reading").
//
//   {"type":2,"payload":"<base64 raw tar bytes>","position":0}
//   {"type":1,"name":"./etc/hosts","size":12,"payload":"<base64 CRC-64/ISO, 8 bytes
//   BE>","position":1}
//   ...
// type 2 (segment): bytes copied verbatim (headers, pax data, padding, trailer);
// type 1 (file): `size` bytes of the named file's content; the name is `name_raw` (base64 of the
// raw bytes, used when the name is not UTF-8) when present, else `name`, exactly as stored in the
// tar. `position` counts the records from 0. Unknown JSON fields are ignored.
//
// Trust: the TOC's tarSplitDigest is the sha256 of the *compressed* tar-split bytes (what
// containers/storage and hoist's writer record); it is checked before anything is decompressed.
//
// Errors: EIO for a digest or CRC mismatch, EBADMSG for malformed records (not JSON, unknown
// type, bad base64, negative or non-integer numbers, positions out of order, a file record
// without a name, file content shorter or longer than its size, truncated zstd), EFBIG for a
// record or the whole record stream over its cap or a file size over the cap, EINVAL for a
// missing digest; errors of the callbacks pass through with context naming the file.
//
// Thread-safety: a TarSplitReader is used by one thread; ReassembleTar calls its callbacks from
// the calling thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/digest.h"
#include "base/status.h"
#include "index/byte_stream.h"

struct ZSTD_DCtx_s;  // zstd.h

namespace hoist {

struct TarSplitLimits {
  uint64_t max_uncompressed = 4ull << 30;      // all JSON lines together
  uint64_t max_record = 64ull << 20;           // one JSON line
  uint64_t max_file_size = uint64_t{1} << 44;  // 16 TiB
};

enum class TarSplitType : uint8_t { kFile = 1, kSegment = 2 };

struct TarSplitRecord {
  TarSplitType type = TarSplitType::kSegment;
  std::string name;     // kFile: the tar name as stored (name_raw decoded if present)
  uint64_t size = 0;    // kFile: content bytes
  std::string payload;  // kSegment: raw tar bytes; kFile: 8-byte big-endian CRC-64 or empty
  uint64_t position = 0;
};

// Streams records out of the compressed tar-split without holding the decompressed whole.
// `compressed` is borrowed and must outlive the reader. It is NOT verified here (see
// VerifyTarSplit).
class TarSplitReader {
 public:
  explicit TarSplitReader(std::string_view compressed, TarSplitLimits limits = {});
  TarSplitReader(const TarSplitReader&) = delete;
  TarSplitReader& operator=(const TarSplitReader&) = delete;

  // The next record, or nullptr after the last one. The pointer stays valid until the next call.
  [[nodiscard]] Result<const TarSplitRecord*> Next();

 private:
  struct DctxDeleter {
    void operator()(ZSTD_DCtx_s* d) const;
  };
  Result<bool> Fill();  // decompresses more into buf_; false at the end of the input
  Status ParseRecord(std::string_view line);

  std::string_view compressed_;
  TarSplitLimits limits_;
  std::unique_ptr<ZSTD_DCtx_s, DctxDeleter> dctx_;
  size_t in_pos_ = 0;
  bool frame_done_ = true;  // the last ZSTD_decompressStream call ended a frame
  std::string buf_;         // decompressed, not yet consumed
  size_t buf_pos_ = 0;
  uint64_t total_ = 0;  // decompressed bytes so far
  uint64_t count_ = 0;  // records returned so far
  bool eof_ = false;
  TarSplitRecord record_;
};

// sha256(compressed) must equal `digest` (EIO); an empty digest is EINVAL.
[[nodiscard]] Status VerifyTarSplit(std::string_view compressed, const Digest& digest);

// Opens the content of a file record: must return a reader of exactly `size` bytes. Called once
// per file record with size > 0, in tar order (a name can repeat if the tar repeats it).
using TarSplitFileOpener =
    std::function<Result<ReadCallback>(std::string_view name, uint64_t size)>;

struct TarSplitStats {
  uint64_t tar_size = 0;  // bytes written to the sink
  uint64_t records = 0;
  uint64_t files = 0;  // file records with content
};

// Verifies the compressed tar-split against `tar_split_digest`, then rebuilds the tar stream into
// `sink`: segments verbatim, file records from `open_file` (length and, when recorded, CRC-64
// checked). The output is the original tar byte for byte.
[[nodiscard]] Result<TarSplitStats> ReassembleTar(std::string_view compressed_tar_split,
                                                  const Digest& tar_split_digest,
                                                  const TarSplitFileOpener& open_file,
                                                  const WriteCallback& sink,
                                                  const TarSplitLimits& limits = {});

}  // namespace hoist
