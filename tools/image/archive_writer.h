// ArchiveWriter: writes an image archive (docker-archive, oci-archive) as a tar to a file
// descriptor, member by member, with fixed metadata (mode 0644 files, 0755 directories, uid 0,
// mtime 0), so the same content gives the same bytes. Used by `hoist save` and the oci-archive:
// destination.
//
// Thread-safety: one thread at a time. Errors: EIO when a streamed member delivers more or fewer
// bytes than declared, the tar writer's and write(2)'s errors otherwise.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "index/tar_writer.h"
#include "tools/image/image_stream.h"

namespace hoist {

class ArchiveWriter {
 public:
  // `fd` is not owned and must stay open until Finish.
  explicit ArchiveWriter(int fd);

  Status File(const std::string& path, std::string_view data);
  Status Symlink(const std::string& path, const std::string& target);
  Status Dir(const std::string& path);
  // A member of `size` bytes read from `reader` (must deliver exactly `size`).
  Status Stream(const std::string& path, uint64_t size, ByteReader& reader);
  // The end-of-archive blocks.
  Status Finish() { return tar_.Finish(); }

 private:
  Status Header(const std::string& path, EntryType type, uint64_t size, const std::string& link);
  int fd_;
  TarWriter tar_;
};

}  // namespace hoist
