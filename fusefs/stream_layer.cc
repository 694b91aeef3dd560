#include "fusefs/stream_layer.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <functional>

#include "base/file_util.h"
#include "base/log.h"
#include "fusefs/zran_reader.h"

namespace hoist {
namespace {

using SteadyClock = std::chrono::steady_clock;

uint64_t StreamOffset(const Chunk& c) {
  return c.encoding == ChunkEncoding::kStream ? c.inner_offset : c.blob_offset;
}

// The end of the entry's content in the stream (the furthest chunk end).
uint64_t EntryStreamEnd(const Entry& e) {
  uint64_t end = 0;
  for (const Chunk& c : e.chunks) {
    if (c.encoding == ChunkEncoding::kZeros) continue;
    end = std::max(end, StreamOffset(c) + c.size);
  }
  return end;
}

Status PReadAll(int fd, std::span<char> out, uint64_t offset) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n =
        ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrnoError("reading the layer stream file"));
    }
    if (n == 0) return Fail(EIO, "layer stream file shorter than expected");
    done += static_cast<size_t>(n);
  }
  return Ok();
}

}  // namespace

bool IsStreamFormat(LayerFormat format) {
  return format == LayerFormat::kTar || format == LayerFormat::kTarGzip ||
         format == LayerFormat::kTarZstd;
}

// Streaming decompression of the blob: identity (tar), gzip (multi-member) or zstd.
class StreamLayer::Decoder {
 public:
  using Sink = std::function<Status(std::string_view)>;
  explicit Decoder(LayerFormat format) : format_(format) { Reset(); }
  ~Decoder() { Free(); }

  void Reset() {
    Free();
    finished_ = format_ == LayerFormat::kTar;
    if (format_ == LayerFormat::kTarGzip) {
      zs_ = std::make_unique<z_stream>();
      *zs_ = z_stream{};
      inflateInit2(zs_.get(), 15 + 32);
    } else if (format_ == LayerFormat::kTarZstd) {
      dctx_ = ZSTD_createDCtx();
    }
  }

  Status Feed(std::string_view in, const Sink& sink) {
    if (format_ == LayerFormat::kTar) return sink(in);
    std::string buf(1 << 17, '\0');
    if (format_ == LayerFormat::kTarZstd) {
      ZSTD_inBuffer ib{in.data(), in.size(), 0};
      while (ib.pos < ib.size) {
        ZSTD_outBuffer ob{buf.data(), buf.size(), 0};
        size_t rc = ZSTD_decompressStream(dctx_, &ob, &ib);
        if (ZSTD_isError(rc)) return Fail(EIO, std::string("zstd: ") + ZSTD_getErrorName(rc));
        finished_ = rc == 0;
        if (ob.pos > 0) HOIST_RETURN_IF_ERROR(sink(std::string_view(buf.data(), ob.pos)));
      }
      return Ok();
    }
    zs_->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs_->avail_in = static_cast<uInt>(in.size());
    while (zs_->avail_in > 0) {
      if (finished_) {
        // Another gzip member follows.
        if (inflateReset(zs_.get()) != Z_OK) return Fail(EIO, "gzip: reset failed");
        finished_ = false;
      }
      zs_->next_out = reinterpret_cast<Bytef*>(buf.data());
      zs_->avail_out = static_cast<uInt>(buf.size());
      int rc = inflate(zs_.get(), Z_NO_FLUSH);
      size_t n = buf.size() - zs_->avail_out;
      if (rc == Z_STREAM_END) {
        finished_ = true;
      } else if (rc != Z_OK && !(rc == Z_BUF_ERROR && n > 0)) {
        return Fail(EIO, std::string("gzip: ") + (zs_->msg ? zs_->msg : "inflate error"));
      }
      if (n > 0) HOIST_RETURN_IF_ERROR(sink(std::string_view(buf.data(), n)));
    }
    return Ok();
  }

  // Whether the compressed stream ended cleanly.
  bool finished() const { return finished_; }

 private:
  void Free() {
    if (zs_) {
      inflateEnd(zs_.get());
      zs_.reset();
    }
    if (dctx_) {
      ZSTD_freeDCtx(dctx_);
      dctx_ = nullptr;
    }
  }
  LayerFormat format_;
  bool finished_ = false;
  std::unique_ptr<z_stream> zs_;
  ZSTD_DCtx* dctx_ = nullptr;
};

// Pull decoding of a kept compressed blob (a file), from its start: identity (tar), gzip
// (multi-member) or zstd. position() is the stream offset of the next byte Read gives.
class StreamLayer::BlobCursor {
 public:
  BlobCursor(LayerFormat format, std::shared_ptr<ScopedFd> file, uint64_t blob_size)
      : format_(format), file_(std::move(file)), blob_size_(blob_size), in_(256 << 10, '\0') {
    if (format_ == LayerFormat::kTarGzip) {
      zs_ok_ = inflateInit2(&zs_, 15 + 32) == Z_OK;
    } else if (format_ == LayerFormat::kTarZstd) {
      dctx_ = ZSTD_createDCtx();
    }
  }
  ~BlobCursor() {
    if (zs_ok_) inflateEnd(&zs_);
    if (dctx_ != nullptr) ZSTD_freeDCtx(dctx_);
  }
  BlobCursor(const BlobCursor&) = delete;
  BlobCursor& operator=(const BlobCursor&) = delete;

  uint64_t position() const { return pos_; }
  const ScopedFd* file() const { return file_.get(); }

  // Decodes up to n (> 0) bytes at position(); 0 at the end of the stream.
  Result<size_t> Read(char* buf, size_t n) {
    Result<size_t> got = format_ == LayerFormat::kTarGzip   ? ReadGzip(buf, n)
                         : format_ == LayerFormat::kTarZstd ? ReadZstd(buf, n)
                                                            : ReadRaw(buf, n);
    if (got) pos_ += *got;
    return got;
  }

 private:
  bool AtFileEnd() const { return in_pos_ == in_len_ && file_off_ >= blob_size_; }

  // Reads the next input piece once the last one is used up.
  Status Refill() {
    if (in_pos_ < in_len_ || file_off_ >= blob_size_) return Ok();
    const size_t n = static_cast<size_t>(std::min<uint64_t>(in_.size(), blob_size_ - file_off_));
    HOIST_RETURN_IF_ERROR(PReadAll(file_->get(), std::span<char>(in_.data(), n), file_off_));
    file_off_ += n;
    in_pos_ = 0;
    in_len_ = n;
    return Ok();
  }

  Result<size_t> ReadRaw(char* buf, size_t n) {
    const uint64_t left = blob_size_ - pos_;
    const size_t k = static_cast<size_t>(std::min<uint64_t>(n, left));
    if (k > 0) HOIST_RETURN_IF_ERROR(PReadAll(file_->get(), std::span<char>(buf, k), pos_));
    return k;
  }

  Result<size_t> ReadGzip(char* buf, size_t n) {
    if (!zs_ok_) return Fail(ENOMEM, "inflateInit2 failed");
    n = std::min<size_t>(n, 1u << 30);
    while (true) {
      HOIST_RETURN_IF_ERROR(Refill());
      if (member_done_) {
        if (AtFileEnd()) return size_t{0};
        if (inflateReset(&zs_) != Z_OK) return Fail(EIO, "gzip: reset failed");
        member_done_ = false;
      }
      zs_.next_in = reinterpret_cast<Bytef*>(in_.data() + in_pos_);
      zs_.avail_in = static_cast<uInt>(in_len_ - in_pos_);
      zs_.next_out = reinterpret_cast<Bytef*>(buf);
      zs_.avail_out = static_cast<uInt>(n);
      const int rc = inflate(&zs_, Z_NO_FLUSH);
      in_pos_ = in_len_ - zs_.avail_in;
      const size_t got = n - zs_.avail_out;
      if (rc == Z_STREAM_END) {
        member_done_ = true;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        return Fail(EIO, std::string("gzip: ") + (zs_.msg ? zs_.msg : "inflate error"));
      }
      if (got > 0) return got;
      if (!member_done_ && AtFileEnd()) return Fail(EIO, "gzip stream is truncated");
    }
  }

  Result<size_t> ReadZstd(char* buf, size_t n) {
    if (dctx_ == nullptr) return Fail(ENOMEM, "ZSTD_createDCtx failed");
    while (true) {
      HOIST_RETURN_IF_ERROR(Refill());
      ZSTD_inBuffer in{in_.data(), in_len_, in_pos_};
      ZSTD_outBuffer out{buf, n, 0};
      const size_t rc = ZSTD_decompressStream(dctx_, &out, &in);
      if (ZSTD_isError(rc)) return Fail(EIO, std::string("zstd: ") + ZSTD_getErrorName(rc));
      in_pos_ = in.pos;
      frame_done_ = rc == 0;
      if (out.pos > 0) return out.pos;
      if (AtFileEnd()) {
        if (!frame_done_) return Fail(EIO, "zstd stream is truncated");
        return size_t{0};
      }
    }
  }

  const LayerFormat format_;
  const std::shared_ptr<ScopedFd> file_;
  const uint64_t blob_size_;
  std::string in_;
  size_t in_pos_ = 0;
  size_t in_len_ = 0;
  uint64_t file_off_ = 0;
  uint64_t pos_ = 0;
  z_stream zs_{};
  bool zs_ok_ = false;
  bool member_done_ = false;
  ZSTD_DCtx* dctx_ = nullptr;
  bool frame_done_ = true;
};

StreamLayer::StreamLayer(BlobSource* source, Digest blob, uint64_t blob_size, LayerFormat format,
                         MountStats* stats, StreamLayerOptions options)
    : source_(source),
      blob_(std::move(blob)),
      blob_size_(blob_size),
      format_(format),
      stats_(stats),
      options_(std::move(options)),
      decoder_(std::make_unique<Decoder>(format)) {}

StreamLayer::~StreamLayer() {
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

void StreamLayer::Start() {
  MutexLock lock(mu_);
  if (running_ || verified_ || stop_ || no_space_) return;
  if (thread_.joinable()) thread_.join();  // the previous run has finished (running_ is false)
  running_ = true;
  last_error_.reset();
  thread_ = std::thread([this] { Run(); });
}

bool StreamLayer::Adopt(VerifiedStream stream) {
  if (!stream.file) return false;
  MutexLock lock(mu_);
  if (running_ || verified_ || stop_ || blob_bytes_ > 0) return false;
  file_ = std::move(stream.file);
  adopted_space_ = std::move(stream.space);
  stream_bytes_ = stream.bytes;
  blob_bytes_ = blob_size_;
  verified_ = true;
  stats_->MarkLayerLocal(blob_);
  cv_.NotifyAll();
  return true;
}

void StreamLayer::ResetLocked() {
  blob_bytes_ = 0;
  stream_bytes_ = 0;
  verified_entries_.clear();
  decoder_->Reset();
  sha_.Reset();
  file_.reset();
  space_.Reset();
  adopted_space_.reset();
}

void StreamLayer::Run() {
  auto finish = [this](std::optional<Error> error) {
    MutexLock lock(mu_);
    running_ = false;
    if (error) {
      HOIST_LOG(kWarning) << "full fetch of layer " << blob_.str() << ": " << error->message();
      last_error_ = std::move(error);
    }
    cv_.NotifyAll();
  };
  uint64_t blob_bytes, stream_bytes, blob_size;
  std::shared_ptr<ScopedFd> file;
  bool keep_blob;
  {
    MutexLock lock(mu_);
    keep_blob = keep_blob_;
    if (space_.budget() == nullptr) space_ = BudgetLease(options_.space, 0);
    if (!file_) {
      auto fd = OpenUnlinkedTempFile(options_.temp_dir);
      if (!fd) {
        running_ = false;
        last_error_ = fd.error();
        cv_.NotifyAll();
        return;
      }
      file_ = std::make_shared<ScopedFd>(std::move(*fd));
    }
    file = file_;
    blob_bytes = blob_bytes_;
    stream_bytes = stream_bytes_;
    blob_size = blob_size_;
  }
  if (blob_size == 0) {
    auto size = source_->Size(blob_);
    if (!size) return finish(size.error().Context("layer " + blob_.str()));
    blob_size = *size;
    MutexLock lock(mu_);
    blob_size_ = blob_size;
  }
  const int fd = file->get();
  while (blob_bytes < blob_size) {
    {
      MutexLock lock(mu_);
      if (stop_) {
        running_ = false;
        return;
      }
    }
    const uint64_t n = std::min(options_.piece_bytes, blob_size - blob_bytes);
    const BlobOrigin origin =
        source_->IsLocal(blob_) ? BlobOrigin::kLocalStore : BlobOrigin::kNetwork;
    const auto t0 = SteadyClock::now();
    auto data = source_->ReadAt(blob_, blob_bytes, n);
    stats_->RecordFetch(
        blob_, origin, data ? data->size() : 0,
        std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - t0),
        /*prefetch=*/true);
    if (data && data->size() != n) data = Fail(EIO, "short read from the blob source");
    if (!data) return finish(data.error());
    sha_.Update(*data);
    auto take_space = [&](uint64_t bytes) {
      MutexLock lock(mu_);
      return space_.TryGrow(bytes);
    };
    if (keep_blob) {
      // The compressed blob as it is (see "Disk" in stream_layer.h).
      if (!take_space(n)) {
        MutexLock lock(mu_);
        ResetLocked();
        running_ = false;
        no_space_ = true;
        last_error_ =
            Error(EIO, "layer " + blob_.str() + ": neither its decompressed stream nor its " +
                           std::to_string(blob_size) + "-byte blob fits in the " +
                           std::to_string(options_.space->total()) +
                           " bytes of stream space (cache_size); its files cannot be read");
        HOIST_LOG(kError) << last_error_->message();
        cv_.NotifyAll();
        return;
      }
      if (Status wrote = PWriteAll(fd, *data, blob_bytes, "the layer stream file"); !wrote)
        return finish(wrote.error());
      blob_bytes += n;
      MutexLock lock(mu_);
      blob_bytes_ = blob_bytes;
      continue;
    }
    uint64_t written = stream_bytes;
    bool out_of_space = false;
    Status fed = decoder_->Feed(*data, [&](std::string_view out) -> Status {
      if (written + out.size() > options_.max_stream_bytes) {
        return Fail(EFBIG, "decompressed layer exceeds " +
                               std::to_string(options_.max_stream_bytes) + " bytes");
      }
      if (!take_space(out.size())) {
        out_of_space = true;
        return Fail(ENOSPC, "out of stream space");
      }
      HOIST_RETURN_IF_ERROR(PWriteAll(fd, out, written, "the layer stream file"));
      written += out.size();
      return Ok();
    });
    if (out_of_space) {
      // Start again, keeping the compressed blob instead (one more fetch of the blob).
      {
        MutexLock lock(mu_);
        HOIST_LOG(kWarning) << "layer " << blob_.str() << ": its decompressed stream passes the "
                            << options_.space->total()
                            << " bytes of stream space (cache_size); keeping its " << blob_size
                            << "-byte blob instead and decoding reads from it";
        ResetLocked();
        keep_blob_ = true;
      }
      file.reset();
      return Run();
    }
    if (!fed) {
      MutexLock lock(mu_);
      ResetLocked();
      running_ = false;
      last_error_ = fed.error().Context("decompressing layer " + blob_.str());
      HOIST_LOG(kError) << last_error_->message();
      cv_.NotifyAll();
      return;
    }
    blob_bytes += n;
    stream_bytes = written;
    {
      MutexLock lock(mu_);
      blob_bytes_ = blob_bytes;
      stream_bytes_ = stream_bytes;
    }
    cv_.NotifyAll();
  }
  Digest got = Digest::FromSha256(sha_.Final());
  MutexLock lock(mu_);
  running_ = false;
  if (got != blob_ || (!keep_blob && !decoder_->finished())) {
    std::string why = got != blob_ ? "digest mismatch (got " + got.str() + ")"
                                   : std::string("compressed stream ends early");
    last_error_ = Error(EIO, "layer " + blob_.str() + ": " + why + "; discarded");
    HOIST_LOG(kError) << last_error_->message();
    stats_->RecordDigestMismatch();
    ResetLocked();
  } else {
    verified_ = true;
    stats_->MarkLayerLocal(blob_);
    HOIST_LOG(kInfo) << "layer " << blob_.str() << " fetched in full ("
                     << (keep_blob ? blob_bytes_ : stream_bytes_)
                     << (keep_blob ? " compressed" : "") << " bytes), verified";
  }
  cv_.NotifyAll();
}

Status StreamLayer::VerifyEntry(const Entry& entry, int fd) {
  if (entry.digest.empty()) return Fail(EIO, "no file digest");
  Sha256 sha;
  std::string buf;
  for (const Chunk& c : entry.chunks) {
    buf.assign(c.size, '\0');
    if (c.encoding != ChunkEncoding::kZeros) {
      HOIST_RETURN_IF_ERROR(PReadAll(fd, std::span<char>(buf.data(), buf.size()), StreamOffset(c)));
    }
    sha.Update(buf);
  }
  Digest got = Digest::FromSha256(sha.Final());
  if (got != entry.digest) {
    return Fail(EIO, "file " + entry.path + " in layer " + blob_.str() + ": digest mismatch (got " +
                         got.str() + ")");
  }
  return Ok();
}

Result<size_t> StreamLayer::Read(const Entry& entry, const Chunk& chunk, uint64_t in_chunk,
                                 std::span<char> out, SteadyClock::time_point deadline) {
  const uint64_t begin = StreamOffset(chunk) + in_chunk;
  const uint64_t end = begin + out.size();
  const uint64_t entry_end = std::max(EntryStreamEnd(entry), end);
  Start();
  MutexLock lock(mu_);
  while (true) {
    if (verified_ && keep_blob_) {
      std::shared_ptr<ScopedFd> file = file_;
      const uint64_t blob_size = blob_size_;
      lock.Unlock();
      return ReadFromBlob(std::move(file), blob_size, begin, out);
    }
    if (verified_ && stream_bytes_ >= end) break;
    if (verified_) return Fail(EIO, "layer " + blob_.str() + ": stream shorter than the index");
    if (stream_bytes_ >= entry_end && !entry.digest.empty()) {
      if (verified_entries_.count(&entry)) break;
      std::shared_ptr<ScopedFd> file = file_;
      lock.Unlock();  // the bytes below stream_bytes_ never change in this file
      Status ok = VerifyEntry(entry, file->get());
      lock.Lock();
      if (ok) {
        verified_entries_.insert(&entry);
        break;
      }
      if (!verified_ && stream_bytes_ >= entry_end) return Fail(ok.error());
      continue;  // the stream was reset meanwhile; wait again
    }
    if (!running_) {
      if (last_error_) return Fail(last_error_->Context("layer " + blob_.str() + " full fetch"));
      return Fail(EIO, "layer " + blob_.str() + ": full fetch stopped");
    }
    if (!cv_.WaitUntil(mu_, deadline)) {
      return Fail(ETIMEDOUT, "timed out waiting for bytes [" + std::to_string(begin) + ", " +
                                 std::to_string(end) + ") of layer " + blob_.str() + " (" +
                                 std::to_string(stream_bytes_) + " bytes arrived)");
    }
  }
  std::shared_ptr<ScopedFd> file = file_;
  lock.Unlock();
  HOIST_RETURN_IF_ERROR(PReadAll(file->get(), out, begin));
  return out.size();
}

Result<size_t> StreamLayer::ReadFromBlob(std::shared_ptr<ScopedFd> file, uint64_t blob_size,
                                         uint64_t begin, std::span<char> out) {
  MutexLock lock(cursor_mu_);
  if (!cursor_ || cursor_->file() != file.get() || cursor_->position() > begin)
    cursor_ = std::make_unique<BlobCursor>(format_, std::move(file), blob_size);
  auto shorter = [&] {
    return Fail(EIO, "layer " + blob_.str() + ": stream shorter than the index");
  };
  std::string skip;
  while (cursor_->position() < begin) {
    skip.resize(static_cast<size_t>(std::min<uint64_t>(256 << 10, begin - cursor_->position())));
    auto n = cursor_->Read(skip.data(), skip.size());
    if (!n) return Fail(n.error().Context("layer " + blob_.str()));
    if (*n == 0) return shorter();
  }
  size_t done = 0;
  while (done < out.size()) {
    auto n = cursor_->Read(out.data() + done, out.size() - done);
    if (!n) return Fail(n.error().Context("layer " + blob_.str()));
    if (*n == 0) return shorter();
    done += *n;
  }
  return out.size();
}

StreamProgress StreamLayer::Progress() const {
  MutexLock lock(mu_);
  return StreamProgress{blob_size_, blob_bytes_, stream_bytes_, running_, verified_, last_error_};
}

StreamLayers::StreamLayers(BlobSource* source, MountStats* stats, StreamLayerOptions options,
                           ZranReader* zran)
    : source_(source), stats_(stats), options_(std::move(options)), zran_(zran) {}

StreamLayer* StreamLayers::Find(const Digest& layer) {
  MutexLock lock(mu_);
  auto it = layers_.find(layer);
  return it == layers_.end() ? nullptr : it->second.get();
}

bool StreamLayers::Lazy(const LayerIndex& layer) {
  if (zran_ == nullptr || !IsStreamFormat(layer.format) || !zran_->HasIndex(layer)) return false;
  StreamLayer* s = Find(layer.layer_digest);
  return s == nullptr || !s->Progress().verified;
}

StreamLayers::~StreamLayers() = default;

StreamLayer* StreamLayers::Get(const LayerIndex& layer) {
  MutexLock lock(mu_);
  auto& slot = layers_[layer.layer_digest];
  if (!slot) {
    slot = std::make_unique<StreamLayer>(source_, layer.layer_digest, layer.blob_size, layer.format,
                                         stats_, options_);
  }
  return slot.get();
}

bool StreamLayers::Adopt(const LayerIndex& layer, VerifiedStream stream) {
  if (!stream.file || !IsStreamFormat(layer.format)) return false;  // nothing to create one for
  return Get(layer)->Adopt(std::move(stream));
}

Result<size_t> StreamLayers::Read(const LayerIndex& layer, const Entry& entry, const Chunk& chunk,
                                  uint64_t in_chunk, std::span<char> out,
                                  SteadyClock::time_point deadline) {
  if (!IsStreamFormat(layer.format) && layer.format != LayerFormat::kTar) {
    return Fail(EIO, "layer " + layer.layer_digest.str() +
                         ": stream chunk in a layer that is not tar, tar+gzip or tar+zstd");
  }
  if (zran_ != nullptr && chunk.encoding == ChunkEncoding::kStream && zran_->Serves(layer, entry)) {
    // Lazy by range, unless the whole stream is here already (adopted or fetched: local).
    StreamLayer* s = Find(layer.layer_digest);
    if (s == nullptr || !s->Progress().verified) {
      auto read = zran_->Read(layer, entry, chunk.file_offset + in_chunk, out, deadline);
      // An index that does not fit the blob is dropped (zran_reader.h): the whole blob then.
      if (read || zran_->HasIndex(layer)) return read;
    }
  }
  return Get(layer)->Read(entry, chunk, in_chunk, out, deadline);
}

}  // namespace hoist
