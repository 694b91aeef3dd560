#include "index/blob_tail.h"

#include <algorithm>

namespace hoist {

uint64_t TailGuess(uint64_t blob_size, uint64_t min_bytes) {
  constexpr uint64_t kMin = 64 << 10;
  constexpr uint64_t kMax = 1 << 20;
  const uint64_t guess = std::clamp<uint64_t>(blob_size / 100, kMin, kMax);
  return std::min(blob_size, std::max(guess, min_bytes));
}

Result<BlobTail> ReadBlobTail(const BlobRangeReader& read, uint64_t blob_size, uint64_t min_bytes) {
  BlobTail tail;
  const uint64_t length = TailGuess(blob_size, min_bytes);
  tail.start = blob_size - length;
  HOIST_ASSIGN_OR_RETURN(tail.bytes, read(tail.start, length));
  if (tail.bytes.size() != length) return Fail(EIO, "short read of the blob's last bytes");
  return tail;
}

Result<std::string> ReadBlobRange(const BlobRangeReader& read, const BlobTail& tail,
                                  uint64_t offset, uint64_t length) {
  const uint64_t end = offset + length;
  const uint64_t tail_end = tail.start + tail.bytes.size();
  if (offset >= tail.start && end <= tail_end)
    return tail.bytes.substr(offset - tail.start, length);
  if (end <= tail.start || offset >= tail_end) {
    HOIST_ASSIGN_OR_RETURN(std::string bytes, read(offset, length));
    if (bytes.size() != length) return Fail(EIO, "short read of a blob range");
    return bytes;
  }
  // Starts before the tail and ends inside it: fetch the head, take the rest from the tail.
  const uint64_t head_len = tail.start - offset;
  HOIST_ASSIGN_OR_RETURN(std::string bytes, read(offset, head_len));
  if (bytes.size() != head_len) return Fail(EIO, "short read of a blob range");
  bytes.append(tail.bytes, 0, end - tail.start);
  return bytes;
}

}  // namespace hoist
