#include "fusefs/slot_log.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

namespace hoist {
namespace {

constexpr char kMagic[4] = {'H', 'S', 'L', '1'};
constexpr size_t kHeaderSize = 4 + 4 + 8;
constexpr uint32_t kMaxPayload = 16u << 20;  // a manifest is at most 4 MiB (fetcher's cap)

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutString(std::string& out, const std::string& s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out += s;
}

// Reads little-endian fields from a payload; false once past its end.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool U32(uint32_t* v) {
    if (data_.size() - pos_ < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i)
      *v |= static_cast<uint32_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
    pos_ += 4;
    return true;
  }
  bool U64(uint64_t* v) {
    if (data_.size() - pos_ < 8) return false;
    *v = 0;
    for (int i = 0; i < 8; ++i)
      *v |= static_cast<uint64_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
    pos_ += 8;
    return true;
  }
  bool Bytes(size_t n, std::string* out) {
    if (data_.size() - pos_ < n) return false;
    out->assign(data_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  bool String(std::string* out) {
    uint32_t n;
    return U32(&n) && Bytes(n, out);
  }
  bool AtEnd() const { return pos_ == data_.size(); }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

std::string Checksum(std::string_view payload) {
  const Digest digest = Digest::Of(payload);
  return std::string(reinterpret_cast<const char*>(digest.raw().data()), 8);
}

std::optional<SlotRecord> DecodePayload(std::string_view payload) {
  Reader r(payload);
  SlotRecord rec;
  std::string raw;
  if (!r.U64(&rec.slot) || !r.Bytes(32, &raw) || !r.String(&rec.reference) ||
      !r.String(&rec.manifest_media_type) || !r.String(&rec.manifest) || !r.AtEnd()) {
    return std::nullopt;
  }
  std::array<uint8_t, 32> bytes;
  std::memcpy(bytes.data(), raw.data(), 32);
  rec.layer = Digest::FromSha256(bytes);
  if (rec.slot == 0) return std::nullopt;
  return rec;
}

Result<std::string> PreadExactly(int fd, size_t n, uint64_t offset) {
  std::string buf(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, buf.data() + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrnoError("reading the layer slot log"));
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  buf.resize(got);
  return buf;
}

// An open-file-description lock on the whole memfd, shared by every process holding it.
class OfdLock {
 public:
  explicit OfdLock(int fd) : fd_(fd) {}
  Status Lock() {
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    while (::fcntl(fd_, F_OFD_SETLKW, &fl) != 0) {
      if (errno != EINTR) return Fail(ErrnoError("locking the layer slot log"));
    }
    locked_ = true;
    return Ok();
  }
  ~OfdLock() {
    if (!locked_) return;
    struct flock fl {};
    fl.l_type = F_UNLCK;
    fl.l_whence = SEEK_SET;
    (void)::fcntl(fd_, F_OFD_SETLK, &fl);
  }

 private:
  int fd_;
  bool locked_ = false;
};

}  // namespace

std::string EncodeSlotRecord(const SlotRecord& record) {
  std::string payload;
  PutU64(payload, record.slot);
  payload.append(reinterpret_cast<const char*>(record.layer.raw().data()), 32);
  PutString(payload, record.reference);
  PutString(payload, record.manifest_media_type);
  PutString(payload, record.manifest);
  std::string out(kMagic, sizeof(kMagic));
  PutU32(out, static_cast<uint32_t>(payload.size()));
  out += Checksum(payload);
  out += payload;
  return out;
}

Result<std::unique_ptr<SlotLog>> SlotLog::Create() {
  ScopedFd fd(::memfd_create("hoist-layer-slots", MFD_CLOEXEC));
  if (!fd.valid()) return Fail(ErrnoError("memfd_create for the layer slot log"));
  return std::unique_ptr<SlotLog>(new SlotLog(std::move(fd)));
}

Result<std::unique_ptr<SlotLog>> SlotLog::Adopt(ScopedFd fd) {
  std::unique_ptr<SlotLog> log(new SlotLog(std::move(fd)));
  OfdLock lock(log->fd());
  HOIST_RETURN_IF_ERROR(lock.Lock());
  MutexLock l(log->mu_);
  HOIST_RETURN_IF_ERROR(log->ReadTail());
  return log;
}

Status SlotLog::ReadTail() {
  while (true) {
    HOIST_ASSIGN_OR_RETURN(std::string header, PreadExactly(fd_.get(), kHeaderSize, end_));
    if (header.size() < kHeaderSize || std::memcmp(header.data(), kMagic, 4) != 0) return Ok();
    Reader r(std::string_view(header).substr(4, 4));
    uint32_t length = 0;
    (void)r.U32(&length);
    if (length > kMaxPayload) return Ok();
    HOIST_ASSIGN_OR_RETURN(std::string payload,
                           PreadExactly(fd_.get(), length, end_ + kHeaderSize));
    if (payload.size() < length || Checksum(payload) != header.substr(8, 8)) return Ok();
    auto rec = DecodePayload(payload);
    if (!rec) return Ok();
    end_ += kHeaderSize + length;
    max_slot_ = std::max(max_slot_, rec->slot);
    by_layer_.insert_or_assign(rec->layer, std::move(*rec));
  }
}

Result<uint64_t> SlotLog::Assign(const SlotRecord& record, SlotRecord* recorded) {
  MutexLock l(mu_);
  OfdLock lock(fd_.get());
  HOIST_RETURN_IF_ERROR(lock.Lock());
  HOIST_RETURN_IF_ERROR(ReadTail());
  if (auto it = by_layer_.find(record.layer); it != by_layer_.end()) {
    if (recorded != nullptr) *recorded = it->second;
    return it->second.slot;
  }
  SlotRecord rec = record;
  rec.slot = max_slot_ + 1;
  const std::string bytes = EncodeSlotRecord(rec);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::pwrite(fd_.get(), bytes.data() + done, bytes.size() - done,
                               static_cast<off_t>(end_ + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrnoError("writing the layer slot log"));
    }
    done += static_cast<size_t>(n);
  }
  end_ += bytes.size();
  max_slot_ = rec.slot;
  if (recorded != nullptr) *recorded = rec;
  by_layer_.emplace(rec.layer, std::move(rec));
  return max_slot_;
}

std::optional<SlotRecord> SlotLog::Find(const Digest& layer) {
  MutexLock l(mu_);
  OfdLock lock(fd_.get());
  if (lock.Lock()) (void)ReadTail();
  auto it = by_layer_.find(layer);
  if (it == by_layer_.end()) return std::nullopt;
  return it->second;
}

uint64_t SlotLog::max_slot() {
  MutexLock l(mu_);
  return max_slot_;
}

size_t SlotLog::record_count() {
  MutexLock l(mu_);
  return by_layer_.size();
}

}  // namespace hoist
