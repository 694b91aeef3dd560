#include "tools/image/image_impl.h"

namespace hoist {

Result<std::string> TreeBlobSource::ReadBlob(const Descriptor& blob) {
  // Configs only: at most kMaxJsonBytes whatever the (untrusted) descriptor says, as the registry
  // (max_manifest_size) and the archive sources cap them.
  if (blob.size > static_cast<int64_t>(kMaxJsonBytes)) {
    return Fail(EFBIG, "blob " + blob.digest.str() + " in " + dir_ + ": " +
                           std::to_string(blob.size) + " bytes, more than the " +
                           std::to_string(kMaxJsonBytes >> 20) + " MiB read whole");
  }
  const size_t cap = blob.size > 0 ? static_cast<size_t>(blob.size) : kMaxJsonBytes;
  HOIST_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                         root_.ReadRegularFile(BlobName(blob.digest), cap));
  if (!bytes) return Fail(ENOENT, "blob " + blob.digest.str() + " is missing from " + dir_);
  if (Digest::Of(*bytes) != blob.digest) {
    return Fail(EIO, "blob " + blob.digest.str() + " in " + dir_ + " does not match its digest");
  }
  return std::move(*bytes);
}

Result<std::unique_ptr<ByteReader>> TreeBlobSource::OpenBlob(const Descriptor& blob) {
  const uint64_t length = blob.size > 0 ? static_cast<uint64_t>(blob.size) : UINT64_MAX;
  return OpenRange(blob, 0, length);
}

Result<std::string> TreeBlobSource::ReadBlobRange(const Descriptor& blob, uint64_t offset,
                                                  uint64_t length) {
  HOIST_ASSIGN_OR_RETURN(auto reader, OpenRange(blob, offset, length));
  std::string out(length, '\0');
  HOIST_ASSIGN_OR_RETURN(size_t got, ReadFull(*reader, out.data(), length));
  if (got != length) return Fail(EIO, "blob " + blob.digest.str() + " is shorter than expected");
  return out;
}

Result<std::unique_ptr<ByteReader>> TreeBlobSource::OpenRange(const Descriptor& blob,
                                                              uint64_t offset, uint64_t length) {
  auto fd = root_.OpenRegularFile(BlobName(blob.digest));
  if (!fd) {
    if (fd.error().code() == ENOENT) {
      return Fail(ENOENT, "blob " + blob.digest.str() + " is missing from " + dir_);
    }
    return Fail(fd.error());
  }
  return std::unique_ptr<ByteReader>(
      FileReader::Adopt(std::move(*fd), dir_ + "/" + BlobName(blob.digest), offset, length));
}

}  // namespace hoist
