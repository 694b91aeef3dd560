#include "tools/image/archive_writer.h"

#include "base/file_util.h"

namespace hoist {

ArchiveWriter::ArchiveWriter(int fd)
    : fd_(fd), tar_([this](std::string_view d) { return WriteAll(fd_, d, "the archive"); }) {}

Status ArchiveWriter::File(const std::string& path, std::string_view data) {
  HOIST_RETURN_IF_ERROR(Header(path, EntryType::kRegular, data.size(), ""));
  return tar_.WritePayload(data);
}

Status ArchiveWriter::Symlink(const std::string& path, const std::string& target) {
  return Header(path, EntryType::kSymlink, 0, target);
}

Status ArchiveWriter::Dir(const std::string& path) {
  return Header(path, EntryType::kDirectory, 0, "");
}

Status ArchiveWriter::Stream(const std::string& path, uint64_t size, ByteReader& reader) {
  HOIST_RETURN_IF_ERROR(Header(path, EntryType::kRegular, size, ""));
  std::string buf(1 << 20, '\0');
  uint64_t done = 0;
  while (true) {
    HOIST_ASSIGN_OR_RETURN(size_t n, reader.Read(buf.data(), buf.size()));
    if (n == 0) break;
    done += n;
    if (done > size) return Fail(EIO, path + ": more bytes than the declared size");
    HOIST_RETURN_IF_ERROR(tar_.WritePayload(std::string_view(buf.data(), n)));
  }
  if (done != size) {
    return Fail(EIO,
                path + ": " + std::to_string(done) + " bytes, expected " + std::to_string(size));
  }
  return Ok();
}

Status ArchiveWriter::Header(const std::string& path, EntryType type, uint64_t size,
                             const std::string& link) {
  TarWriteEntry e;
  e.entry.path = path;
  e.entry.type = type;
  e.entry.mode = type == EntryType::kDirectory ? 0755 : 0644;
  e.entry.size = size;
  e.entry.link_name = link;
  return tar_.WriteHeader(e);
}

}  // namespace hoist
