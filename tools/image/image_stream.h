// Byte streams used by `hoist convert`: a pull-style ByteReader and the readers stacked on it to
// move a layer blob from its source to the zstd:chunked writer without holding it in memory:
//
//   FileReader / blob stream  ->  HashingReader (compressed digest)  ->  decompressor
//     ->  HashingReader (diff_id)  ->  writer
//
// Compression is detected from the first bytes (magic), not from the media type.
//
// Thread-safety: a reader is used by one thread at a time (ReadAheadReader runs its inner reader
// on a thread of its own; its caller still uses it from one thread). Ownership: stacked readers own
// the reader they wrap (unique_ptr). Errors: EIO for corrupt compressed data or a truncated stream
// (the message says which), the errno of the failed system call otherwise.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/digest.h"
#include "base/mutex.h"
#include "base/scoped_fd.h"
#include "base/status.h"

namespace hoist {

class ByteReader {
 public:
  virtual ~ByteReader() = default;
  // Reads up to `n` bytes into `buf`; returns the count, 0 only at the end of the stream.
  virtual Result<size_t> Read(char* buf, size_t n) = 0;
};

// Reads until `n` bytes or the end; returns the count read.
Result<size_t> ReadFull(ByteReader& reader, char* buf, size_t n);
// Reads the rest of the stream and discards it (so a hashing reader below sees every byte).
Status Drain(ByteReader& reader);

// Reads a file (or a range of it) with pread.
class FileReader : public ByteReader {
 public:
  // Opens `path`; reads [offset, offset+length) (length UINT64_MAX = to the end).
  static Result<std::unique_ptr<FileReader>> Open(const std::string& path, uint64_t offset = 0,
                                                  uint64_t length = UINT64_MAX);
  // The same on an fd the caller opened (e.g. through a RootDir); `path` names it in errors.
  static std::unique_ptr<FileReader> Adopt(ScopedFd fd, std::string path, uint64_t offset,
                                           uint64_t length);
  Result<size_t> Read(char* buf, size_t n) override;

 private:
  FileReader(ScopedFd fd, std::string path, uint64_t offset, uint64_t length)
      : fd_(std::move(fd)), path_(std::move(path)), offset_(offset), remaining_(length) {}
  ScopedFd fd_;
  std::string path_;
  uint64_t offset_;
  uint64_t remaining_;
};

// Passes bytes through, hashing them (sha256) and counting them.
class HashingReader : public ByteReader {
 public:
  explicit HashingReader(std::unique_ptr<ByteReader> inner) : inner_(std::move(inner)) {}
  Result<size_t> Read(char* buf, size_t n) override;
  uint64_t bytes() const { return bytes_; }
  // The digest of everything read so far. Call once, at the end.
  Digest Finish() { return Digest::FromSha256(sha_.Final()); }

 private:
  std::unique_ptr<ByteReader> inner_;
  Sha256 sha_;
  uint64_t bytes_ = 0;
};

// Reads from a string it owns.
class StringReader : public ByteReader {
 public:
  explicit StringReader(std::string data) : data_(std::move(data)) {}
  Result<size_t> Read(char* buf, size_t n) override;

 private:
  std::string data_;
  size_t pos_ = 0;
};

// Puts bytes back in front of a reader (used after peeking at the magic).
class PrefixedReader : public ByteReader {
 public:
  PrefixedReader(std::string prefix, ByteReader* inner)
      : prefix_(std::move(prefix)), inner_(inner) {}
  Result<size_t> Read(char* buf, size_t n) override;

 private:
  std::string prefix_;
  size_t pos_ = 0;
  ByteReader* inner_;  // not owned
};

// Reads `inner` ahead on a thread of its own, up to `depth` buffers of `buffer_size` bytes, so the
// work behind it (decompression, hashing the compressed bytes) overlaps the caller's. Bytes come
// out in order and unchanged; an error of `inner` is returned after the bytes read before it, and
// again on every later Read. Once Read has returned 0 or an error, the thread no longer touches
// `inner` (or what `inner` reads from), so the caller may use those again. The destructor stops
// the thread after the inner Read in progress, if any, returns.
class ReadAheadReader : public ByteReader {
 public:
  explicit ReadAheadReader(std::unique_ptr<ByteReader> inner, size_t buffer_size = 1 << 20,
                           size_t depth = 4);
  ~ReadAheadReader() override;
  ReadAheadReader(const ReadAheadReader&) = delete;
  ReadAheadReader& operator=(const ReadAheadReader&) = delete;
  Result<size_t> Read(char* buf, size_t n) override;

 private:
  struct Buffer {
    std::unique_ptr<char[]> data;
    size_t size = 0;
  };
  void Loop() HOIST_EXCLUDES(mu_);

  std::unique_ptr<ByteReader> inner_;  // used by the thread only
  const size_t buffer_size_, depth_;
  Mutex mu_;
  CondVar cv_;
  std::deque<Buffer> ready_ HOIST_GUARDED_BY(mu_);   // filled, in order
  std::vector<Buffer> spare_ HOIST_GUARDED_BY(mu_);  // consumed, for reuse
  std::optional<Error> error_ HOIST_GUARDED_BY(mu_);
  bool end_ HOIST_GUARDED_BY(mu_) = false;  // the thread is done with inner_
  bool stop_ HOIST_GUARDED_BY(mu_) = false;
  Buffer current_;      // consumer only
  size_t pos_ = 0;      // consumer only
  std::thread thread_;  // last: started once the state above exists
};

enum class Compression { kNone, kGzip, kZstd };
std::string_view CompressionName(Compression c);
// Classifies a stream from its first bytes (at least 4 are needed to see zstd).
Compression DetectCompression(std::string_view head);

// Decompresses `inner` (not owned; must outlive the reader). gzip accepts concatenated members;
// zstd accepts concatenated and skippable frames. Trailing garbage or a truncated stream is EIO.
std::unique_ptr<ByteReader> NewDecompressor(Compression c, ByteReader* inner);

}  // namespace hoist
