// The seam between `hoist convert` and index/'s zstd:chunked writer: a tar stream in, a
// zstd:chunked blob written to `out_fd`, its digest, size and manifest annotations out.
// (Adapter only; the format lives in index/.)
//
// Thread-safety: independent calls may run concurrently. Errors: those of the writer (EIO for a
// truncated or corrupt tar, EINVAL for hostile names), naming the entry.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "base/digest.h"
#include "base/status.h"
#include "tools/convert/convert_layer.h"
#include "tools/image/image_stream.h"

namespace hoist {

struct EncodedLayer {
  Digest digest;
  uint64_t size = 0;
  Digest diff_id;  // sha256 of the tar read (computed by the writer, once per byte)
  uint64_t tar_size = 0;
  std::map<std::string, std::string> annotations;
};

Result<EncodedLayer> EncodeZstdChunked(ByteReader& tar, int out_fd, const LayerOptions& options);

}  // namespace hoist
