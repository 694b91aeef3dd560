#include "index/chunk_codec.h"

#include <zlib.h>
#include <zstd.h>

#include <memory>

#include "base/digest.h"

namespace hoist {
namespace {

std::string Describe(const Chunk& c) {
  return "chunk " + (c.digest.empty() ? std::string("(no digest)") : c.digest.str()) +
         " (blob range [" + std::to_string(c.blob_offset) + ", +" + std::to_string(c.blob_length) +
         "))";
}

// Decodes until `want` bytes are produced or the input ends; returns what was produced.
Result<std::string> ZstdUpTo(std::string_view in_bytes, size_t want, bool* ended_cleanly) {
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> d(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!d) return Fail(ENOMEM, "ZSTD_createDCtx failed");
  ZSTD_DCtx_setParameter(d.get(), ZSTD_d_windowLogMax, 27);
  std::string out(want, '\0');
  ZSTD_inBuffer in{in_bytes.data(), in_bytes.size(), 0};
  ZSTD_outBuffer ob{out.data(), out.size(), 0};
  size_t ret = 1;
  while (ob.pos < ob.size) {
    size_t before_in = in.pos, before_out = ob.pos;
    ret = ZSTD_decompressStream(d.get(), &ob, &in);
    if (ZSTD_isError(ret)) return Fail(EBADMSG, std::string("zstd: ") + ZSTD_getErrorName(ret));
    if (ret == 0 && in.pos == in.size) break;  // every frame complete
    if (in.pos == before_in && ob.pos == before_out) break;
  }
  *ended_cleanly = ret == 0 && in.pos == in.size;
  out.resize(ob.pos);
  return out;
}

Result<std::string> GzipUpTo(std::string_view in_bytes, size_t want) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) return Fail(ENOMEM, "inflateInit2 failed");
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, inflateEnd);
  std::string out(want, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in_bytes.data()));
  zs.avail_in = static_cast<uInt>(std::min<size_t>(in_bytes.size(), UINT32_MAX));
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(want);
  while (zs.avail_out > 0) {
    int r = inflate(&zs, Z_NO_FLUSH);
    if (r == Z_STREAM_END) {
      if (zs.avail_in == 0) break;
      if (inflateReset(&zs) != Z_OK) return Fail(EBADMSG, "gzip: reset failed");
      continue;
    }
    if (r == Z_BUF_ERROR && zs.avail_in == 0) break;
    if (r != Z_OK) return Fail(EBADMSG, std::string("gzip: ") + (zs.msg ? zs.msg : "corrupt data"));
  }
  out.resize(want - zs.avail_out);
  return out;
}

}  // namespace

Result<std::string> DecodeChunkBytes(const Chunk& chunk, std::string_view blob, uint64_t max_size) {
  if (chunk.size > max_size)
    return Fail(EFBIG,
                Describe(chunk) + ": size " + std::to_string(chunk.size) + " is over the cap");
  const size_t size = static_cast<size_t>(chunk.size);
  switch (chunk.encoding) {
    case ChunkEncoding::kZeros:
      return std::string(size, '\0');
    case ChunkEncoding::kRaw:
      if (blob.size() != size)
        return Fail(EBADMSG, Describe(chunk) + ": raw bytes are " + std::to_string(blob.size()) +
                                 " long, not " + std::to_string(size));
      return std::string(blob);
    case ChunkEncoding::kZstdFrame: {
      bool clean = false;
      auto out = ZstdUpTo(blob, size + 1, &clean);
      if (!out) return Fail(out.error().Context(Describe(chunk)));
      if (out->size() != size || !clean)
        return Fail(EBADMSG, Describe(chunk) + ": decodes to " +
                                 (out->size() > size ? "more" : std::to_string(out->size())) +
                                 " bytes, not " + std::to_string(size) +
                                 (clean || out->size() != size ? "" : " (truncated frame)"));
      return std::move(*out);
    }
    case ChunkEncoding::kZstdFramePrefix:
    case ChunkEncoding::kGzipMember: {
      if (chunk.inner_offset > max_size)
        return Fail(EFBIG, Describe(chunk) + ": inner offset over the cap");
      const size_t want = static_cast<size_t>(chunk.inner_offset) + size;
      bool clean = false;
      auto out = chunk.encoding == ChunkEncoding::kGzipMember ? GzipUpTo(blob, want)
                                                              : ZstdUpTo(blob, want, &clean);
      if (!out) return Fail(out.error().Context(Describe(chunk)));
      if (out->size() != want)
        return Fail(EBADMSG, Describe(chunk) + ": decodes to only " + std::to_string(out->size()) +
                                 " bytes, need " + std::to_string(want));
      return out->substr(static_cast<size_t>(chunk.inner_offset));
    }
    case ChunkEncoding::kStream:
      return Fail(EINVAL, Describe(chunk) + ": stream chunks are not decodable on their own");
  }
  return Fail(EINVAL, Describe(chunk) + ": unknown encoding");
}

Status VerifyChunkBytes(const Chunk& chunk, std::string_view data) {
  if (data.size() != chunk.size)
    return Fail(EIO, Describe(chunk) + ": " + std::to_string(data.size()) + " bytes, not " +
                         std::to_string(chunk.size));
  if (chunk.digest.empty()) {
    if (chunk.encoding == ChunkEncoding::kZeros &&
        data.find_first_not_of('\0') == std::string_view::npos)
      return Ok();
    return Fail(EIO, Describe(chunk) + ": no digest to verify against");
  }
  Digest got = Digest::Of(data);
  if (got != chunk.digest)
    return Fail(EIO, Describe(chunk) + ": digest mismatch (got " + got.str() + ")");
  return Ok();
}

Result<std::string> DecodeAndVerifyChunkBytes(const Chunk& chunk, std::string_view blob,
                                              uint64_t max_size) {
  HOIST_ASSIGN_OR_RETURN(std::string out, DecodeChunkBytes(chunk, blob, max_size));
  HOIST_RETURN_IF_ERROR(VerifyChunkBytes(chunk, out));
  return out;
}

}  // namespace hoist
