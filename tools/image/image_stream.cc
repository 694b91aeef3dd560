#include "tools/image/image_stream.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace hoist {
namespace {

constexpr size_t kInBufSize = 1 << 17;

class GzipReader : public ByteReader {
 public:
  explicit GzipReader(ByteReader* inner) : inner_(inner), in_(kInBufSize) {
    std::memset(&z_, 0, sizeof(z_));
    init_ = inflateInit2(&z_, 15 + 16) == Z_OK;
  }
  ~GzipReader() override {
    if (init_) inflateEnd(&z_);
  }
  Result<size_t> Read(char* buf, size_t n) override {
    if (!init_) return Fail(ENOMEM, "gzip: cannot initialise zlib");
    if (n == 0 || done_) return 0;
    z_.next_out = reinterpret_cast<Bytef*>(buf);
    z_.avail_out = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    while (z_.avail_out > 0) {
      if (z_.avail_in == 0 && !eof_) {
        HOIST_ASSIGN_OR_RETURN(size_t got, inner_->Read(in_.data(), in_.size()));
        if (got == 0) {
          eof_ = true;
        } else {
          z_.next_in = reinterpret_cast<Bytef*>(in_.data());
          z_.avail_in = static_cast<uInt>(got);
        }
      }
      if (z_.avail_in == 0 && eof_) {
        if (member_end_) {
          done_ = true;
          break;
        }
        return Fail(EIO, "corrupt gzip: unexpected end of compressed data (truncated)");
      }
      if (member_end_) {
        // Another gzip member follows.
        inflateReset(&z_);
        member_end_ = false;
      }
      int rc = inflate(&z_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        member_end_ = true;
      } else if (rc == Z_BUF_ERROR) {
        continue;  // needs more input
      } else if (rc != Z_OK) {
        return Fail(EIO, std::string("corrupt gzip: ") + (z_.msg ? z_.msg : "inflate failed"));
      }
    }
    return n - z_.avail_out;
  }

 private:
  ByteReader* inner_;
  std::vector<char> in_;
  z_stream z_;
  bool init_ = false;
  bool eof_ = false;
  bool member_end_ = false;
  bool done_ = false;
};

class ZstdReader : public ByteReader {
 public:
  explicit ZstdReader(ByteReader* inner)
      : inner_(inner), in_(ZSTD_DStreamInSize()), dctx_(ZSTD_createDCtx()) {
    // Allow the large windows a --long compressor may use.
    ZSTD_DCtx_setParameter(dctx_, ZSTD_d_windowLogMax, 31);
  }
  ~ZstdReader() override { ZSTD_freeDCtx(dctx_); }
  Result<size_t> Read(char* buf, size_t n) override {
    if (dctx_ == nullptr) return Fail(ENOMEM, "zstd: cannot create a decompression context");
    ZSTD_outBuffer out{buf, n, 0};
    while (out.pos < out.size) {
      if (in_pos_ == in_len_ && !eof_) {
        HOIST_ASSIGN_OR_RETURN(size_t got, inner_->Read(in_.data(), in_.size()));
        if (got == 0) eof_ = true;
        in_pos_ = 0;
        in_len_ = got;
      }
      if (in_pos_ == in_len_ && eof_) {
        if (last_ret_ != 0)
          return Fail(EIO, "corrupt zstd: unexpected end of compressed data (truncated)");
        break;
      }
      ZSTD_inBuffer in{in_.data(), in_len_, in_pos_};
      size_t ret = ZSTD_decompressStream(dctx_, &out, &in);
      in_pos_ = in.pos;
      if (ZSTD_isError(ret))
        return Fail(EIO, std::string("corrupt zstd: ") + ZSTD_getErrorName(ret));
      last_ret_ = ret;
      // Output may be pending inside the context even when no input was consumed.
    }
    return out.pos;
  }

 private:
  ByteReader* inner_;
  std::vector<char> in_;
  size_t in_pos_ = 0;
  size_t in_len_ = 0;
  bool eof_ = false;
  size_t last_ret_ = 0;
  ZSTD_DCtx* dctx_;
};

class PassReader : public ByteReader {
 public:
  explicit PassReader(ByteReader* inner) : inner_(inner) {}
  Result<size_t> Read(char* buf, size_t n) override { return inner_->Read(buf, n); }

 private:
  ByteReader* inner_;
};

}  // namespace

Result<size_t> ReadFull(ByteReader& reader, char* buf, size_t n) {
  size_t total = 0;
  while (total < n) {
    HOIST_ASSIGN_OR_RETURN(size_t got, reader.Read(buf + total, n - total));
    if (got == 0) break;
    total += got;
  }
  return total;
}

Status Drain(ByteReader& reader) {
  std::vector<char> buf(1 << 16);
  for (;;) {
    HOIST_ASSIGN_OR_RETURN(size_t got, reader.Read(buf.data(), buf.size()));
    if (got == 0) return Ok();
  }
}

Result<std::unique_ptr<FileReader>> FileReader::Open(const std::string& path, uint64_t offset,
                                                     uint64_t length) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Fail(ErrnoError("open " + path));
  return Adopt(std::move(fd), path, offset, length);
}

std::unique_ptr<FileReader> FileReader::Adopt(ScopedFd fd, std::string path, uint64_t offset,
                                              uint64_t length) {
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  return std::unique_ptr<FileReader>(
      new FileReader(std::move(fd), std::move(path), offset, length));
}

Result<size_t> FileReader::Read(char* buf, size_t n) {
  if (remaining_ == 0 || n == 0) return 0;
  size_t want = static_cast<size_t>(std::min<uint64_t>(n, remaining_));
  for (;;) {
    ssize_t got = ::pread(fd_.get(), buf, want, static_cast<off_t>(offset_));
    if (got < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrnoError("read " + path_));
    }
    if (got == 0 && remaining_ != UINT64_MAX) {
      return Fail(EIO, "read " + path_ + ": file is shorter than expected (truncated)");
    }
    offset_ += static_cast<uint64_t>(got);
    if (remaining_ != UINT64_MAX) remaining_ -= static_cast<uint64_t>(got);
    return static_cast<size_t>(got);
  }
}

Result<size_t> HashingReader::Read(char* buf, size_t n) {
  HOIST_ASSIGN_OR_RETURN(size_t got, inner_->Read(buf, n));
  sha_.Update(buf, got);
  bytes_ += got;
  return got;
}

Result<size_t> StringReader::Read(char* buf, size_t n) {
  size_t take = std::min(n, data_.size() - pos_);
  std::memcpy(buf, data_.data() + pos_, take);
  pos_ += take;
  return take;
}

Result<size_t> PrefixedReader::Read(char* buf, size_t n) {
  if (pos_ < prefix_.size()) {
    size_t take = std::min(n, prefix_.size() - pos_);
    std::memcpy(buf, prefix_.data() + pos_, take);
    pos_ += take;
    return take;
  }
  return inner_->Read(buf, n);
}

ReadAheadReader::ReadAheadReader(std::unique_ptr<ByteReader> inner, size_t buffer_size,
                                 size_t depth)
    : inner_(std::move(inner)),
      buffer_size_(std::max<size_t>(buffer_size, 1)),
      depth_(std::max<size_t>(depth, 1)),
      thread_([this] { Loop(); }) {}

ReadAheadReader::~ReadAheadReader() {
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  thread_.join();
}

void ReadAheadReader::Loop() {
  for (;;) {
    Buffer b;
    {
      MutexLock lock(mu_);
      while (!stop_ && ready_.size() >= depth_) cv_.Wait(mu_);
      if (stop_) break;
      if (!spare_.empty()) {
        b = std::move(spare_.back());
        spare_.pop_back();
      }
    }
    if (!b.data) b.data = std::make_unique<char[]>(buffer_size_);
    auto got = inner_->Read(b.data.get(), buffer_size_);
    MutexLock lock(mu_);
    if (!got) {
      error_ = got.error();
      break;
    }
    if (*got == 0) break;
    b.size = *got;
    ready_.push_back(std::move(b));
    cv_.NotifyAll();
  }
  MutexLock lock(mu_);
  end_ = true;
  cv_.NotifyAll();
}

Result<size_t> ReadAheadReader::Read(char* buf, size_t n) {
  if (n == 0) return 0;
  if (pos_ == current_.size) {
    MutexLock lock(mu_);
    while (ready_.empty() && !end_) cv_.Wait(mu_);
    if (ready_.empty()) {
      if (error_) return Fail(*error_);
      return 0;
    }
    if (current_.data) spare_.push_back(std::move(current_));
    current_ = std::move(ready_.front());
    ready_.pop_front();
    pos_ = 0;
    cv_.NotifyAll();
  }
  size_t take = std::min(n, current_.size - pos_);
  std::memcpy(buf, current_.data.get() + pos_, take);
  pos_ += take;
  return take;
}

std::string_view CompressionName(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
    case Compression::kNone:
      break;
  }
  return "none";
}

Compression DetectCompression(std::string_view head) {
  auto at = [&](size_t i) { return static_cast<uint8_t>(head[i]); };
  if (head.size() >= 2 && at(0) == 0x1f && at(1) == 0x8b) return Compression::kGzip;
  if (head.size() >= 4) {
    uint32_t magic = at(0) | (at(1) << 8) | (at(2) << 16) | (uint32_t{at(3)} << 24);
    if (magic == ZSTD_MAGICNUMBER) return Compression::kZstd;
    if ((magic & ZSTD_MAGIC_SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START)
      return Compression::kZstd;
  }
  return Compression::kNone;
}

std::unique_ptr<ByteReader> NewDecompressor(Compression c, ByteReader* inner) {
  switch (c) {
    case Compression::kGzip:
      return std::make_unique<GzipReader>(inner);
    case Compression::kZstd:
      return std::make_unique<ZstdReader>(inner);
    case Compression::kNone:
      break;
  }
  return std::make_unique<PassReader>(inner);
}

}  // namespace hoist
