#include "fusefs/chunk_decode.h"

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <memory>

namespace hoist {
namespace {

struct ZstdDctxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

Result<std::string> DecodeZstd(const Chunk& chunk, std::string_view in) {
  std::unique_ptr<ZSTD_DCtx, ZstdDctxDeleter> dctx(ZSTD_createDCtx());
  if (!dctx) return Fail(ENOMEM, "zstd: cannot create a decompression context");
  std::string out(chunk.size + 1, '\0');  // one spare byte detects "too long"
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  ZSTD_outBuffer ob{out.data(), out.size(), 0};
  size_t last = 0;
  while (ib.pos < ib.size) {
    last = ZSTD_decompressStream(dctx.get(), &ob, &ib);
    if (ZSTD_isError(last)) {
      return Fail(EIO, DescribeChunk(chunk) + ": zstd: " + ZSTD_getErrorName(last));
    }
    if (ob.pos > chunk.size) {
      return Fail(EIO, DescribeChunk(chunk) + ": decodes to more than " +
                           std::to_string(chunk.size) + " bytes");
    }
  }
  if (last != 0) return Fail(EIO, DescribeChunk(chunk) + ": truncated zstd frame");
  if (ob.pos != chunk.size) {
    return Fail(EIO, DescribeChunk(chunk) + ": decodes to " + std::to_string(ob.pos) +
                         " bytes, expected " + std::to_string(chunk.size));
  }
  out.resize(chunk.size);
  return out;
}

// eStargz: several small chunks may share one gzip member, so the member may decode past
// inner_offset + size; decoding stops once `size` bytes are taken.
Result<std::string> DecodeGzip(const Chunk& chunk, std::string_view in) {
  if (in.size() > (1u << 31)) return Fail(EIO, DescribeChunk(chunk) + ": gzip range too large");
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) return Fail(ENOMEM, "zlib: inflateInit2 failed");
  struct Guard {
    z_stream* z;
    ~Guard() { inflateEnd(z); }
  } guard{&zs};
  std::string out(chunk.size, '\0');
  uint64_t to_skip = chunk.inner_offset;
  char skip_buf[16384];
  uint64_t produced = 0;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  while (produced < chunk.size) {
    if (to_skip > 0) {
      zs.next_out = reinterpret_cast<Bytef*>(skip_buf);
      zs.avail_out = static_cast<uInt>(std::min<uint64_t>(sizeof(skip_buf), to_skip));
    } else {
      zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
      zs.avail_out = static_cast<uInt>(std::min<uint64_t>(chunk.size - produced, 1u << 30));
    }
    uInt before = zs.avail_out;
    int rc = inflate(&zs, Z_NO_FLUSH);
    uint64_t n = before - zs.avail_out;
    if (to_skip > 0) {
      to_skip -= n;
    } else {
      produced += n;
    }
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) break;
      if (inflateReset(&zs) != Z_OK) return Fail(EIO, DescribeChunk(chunk) + ": gzip reset");
      continue;  // the next gzip member
    }
    if (rc == Z_BUF_ERROR) break;  // input exhausted mid-member
    if (rc != Z_OK) {
      return Fail(EIO, DescribeChunk(chunk) + ": gzip: " + (zs.msg ? zs.msg : "inflate error"));
    }
  }
  if (to_skip > 0 || produced != chunk.size) {
    return Fail(EIO, DescribeChunk(chunk) + ": gzip decodes to " + std::to_string(produced) +
                         " bytes after the inner offset, expected " + std::to_string(chunk.size));
  }
  return out;
}

}  // namespace

std::string DescribeChunk(const Chunk& chunk) {
  std::string d = chunk.digest.empty() ? std::string("(no digest)") : chunk.digest.str();
  return "chunk " + d + " (blob range [" + std::to_string(chunk.blob_offset) + ", " +
         std::to_string(chunk.blob_offset + chunk.blob_length) + "))";
}

Result<std::string> DecodeChunk(const Chunk& chunk, std::string_view blob_bytes,
                                uint64_t max_size) {
  if (chunk.size > max_size) {
    return Fail(EFBIG, DescribeChunk(chunk) + ": size " + std::to_string(chunk.size) +
                           " exceeds the cap of " + std::to_string(max_size) + " bytes");
  }
  switch (chunk.encoding) {
    case ChunkEncoding::kZeros:
      return std::string(chunk.size, '\0');
    case ChunkEncoding::kRaw:
      if (blob_bytes.size() != chunk.size) {
        return Fail(EIO, DescribeChunk(chunk) + ": raw chunk of " +
                             std::to_string(blob_bytes.size()) + " bytes, expected " +
                             std::to_string(chunk.size));
      }
      return std::string(blob_bytes);
    case ChunkEncoding::kZstdFrame:
      return DecodeZstd(chunk, blob_bytes);
    case ChunkEncoding::kGzipMember:
      return DecodeGzip(chunk, blob_bytes);
    case ChunkEncoding::kStream:
      return Fail(EINVAL, DescribeChunk(chunk) + ": stream chunks are not decodable alone");
  }
  return Fail(EINVAL, DescribeChunk(chunk) + ": unknown encoding");
}

Status VerifyChunk(const Chunk& chunk, std::string_view bytes) {
  if (chunk.encoding == ChunkEncoding::kZeros && chunk.digest.empty()) return Ok();
  if (chunk.digest.empty()) return Fail(EIO, DescribeChunk(chunk) + ": no digest to verify");
  if (bytes.size() != chunk.size) {
    return Fail(EIO, DescribeChunk(chunk) + ": " + std::to_string(bytes.size()) +
                         " bytes, expected " + std::to_string(chunk.size));
  }
  Digest got = Digest::Of(bytes);
  if (got != chunk.digest) {
    return Fail(EIO, DescribeChunk(chunk) + ": digest mismatch (got " + got.str() + ")");
  }
  return Ok();
}

Result<std::string> DecodeAndVerifyChunk(const Chunk& chunk, std::string_view blob_bytes,
                                         uint64_t max_size) {
  HOIST_ASSIGN_OR_RETURN(std::string bytes, DecodeChunk(chunk, blob_bytes, max_size));
  HOIST_RETURN_IF_ERROR(VerifyChunk(chunk, bytes));
  return bytes;
}

}  // namespace hoist
