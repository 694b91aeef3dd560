#include "fetcher/blob_source.h"

namespace hoist {

std::vector<Result<std::string>> BlobSource::ReadRanges(const Digest& blob,
                                                        std::span<const ByteRange> ranges) {
  std::vector<Result<std::string>> out;
  out.reserve(ranges.size());
  for (const ByteRange& r : ranges) out.push_back(ReadAt(blob, r.offset, r.length));
  return out;
}

}  // namespace hoist
