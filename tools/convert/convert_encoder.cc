#include "tools/convert/convert_encoder.h"

#include <unistd.h>

#include <vector>

#include "base/file_util.h"
#include "index/zstd_chunked_writer.h"

namespace hoist {
namespace {

// Collects the writer's (often small) frames into large write(2) calls.
class BufferedFdSink {
 public:
  explicit BufferedFdSink(int fd) : fd_(fd) { buf_.reserve(kSize); }
  Status Write(std::string_view data) {
    if (buf_.size() + data.size() > kSize) HOIST_RETURN_IF_ERROR(Flush());
    if (data.size() >= kSize) return WriteAll(data);
    buf_.insert(buf_.end(), data.begin(), data.end());
    return Ok();
  }
  Status Flush() {
    Status st = WriteAll(std::string_view(buf_.data(), buf_.size()));
    buf_.clear();
    return st;
  }

 private:
  static constexpr size_t kSize = 1 << 20;
  Status WriteAll(std::string_view data) {
    return hoist::WriteAll(fd_, data, "the converted layer");
  }
  int fd_;
  std::vector<char> buf_;
};

}  // namespace

Result<EncodedLayer> EncodeZstdChunked(ByteReader& tar, int out_fd, const LayerOptions& options) {
  ZstdChunkedWriterOptions wo;
  wo.compression_level = options.compression_level;
  wo.prefetch = options.prefetch;
  wo.threads = options.threads;
  BufferedFdSink sink(out_fd);
  HOIST_ASSIGN_OR_RETURN(
      ZstdChunkedWriteResult r,
      WriteZstdChunked([&tar](char* buf, size_t n) { return tar.Read(buf, n); },
                       [&sink](std::string_view data) { return sink.Write(data); }, wo));
  HOIST_RETURN_IF_ERROR(sink.Flush());
  EncodedLayer out;
  out.digest = r.blob_digest;
  out.size = r.blob_size;
  out.diff_id = r.diff_id;
  out.tar_size = r.tar_size;
  out.annotations = r.annotations;
  return out;
}

}  // namespace hoist
