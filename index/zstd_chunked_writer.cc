#include "index/zstd_chunked_writer.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <zstd.h>

#include <array>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <thread>

#include "base/mutex.h"
#include "base/rfc3339.h"
#include "index/tar_path.h"
#include "index/tar_reader.h"

namespace hoist {
namespace {

constexpr uint64_t kMaxMetaFrame = 1 << 20;
constexpr uint64_t kMaxZeroChunk = 16 << 20;
// Sparse files: holes up to this many bytes are hashed into the file digest (beyond, the TOC
// entry has no digest).
constexpr uint64_t kMaxHashedHoles = uint64_t{1} << 30;

std::array<uint64_t, 256> MakeGear() {
  std::array<uint64_t, 256> g{};
  uint64_t x = 0x9E3779B97F4A7C15ull;  // splitmix64: a fixed table, so chunking is deterministic
  for (auto& v : g) {
    x += 0x9E3779B97F4A7C15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    v = z ^ (z >> 31);
  }
  return g;
}

std::string Le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}
std::string SkippableHeader(uint32_t len) {
  std::string s = "\x50\x2a\x4d\x18";
  for (int i = 0; i < 4; ++i) s += static_cast<char>(len >> (8 * i));
  return s;
}

using CCtxPtr = std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)>;

CCtxPtr NewCCtx() { return CCtxPtr(ZSTD_createCCtx(), ZSTD_freeCCtx); }

// One zstd frame per call; the same input and level always give the same bytes, whichever
// thread or context compresses it (no multi-threaded zstd, parameters reset per frame).
Result<std::string> CompressFrame(ZSTD_CCtx* cctx, int level, std::string_view data) {
  if (!cctx) return Fail(ENOMEM, "ZSTD_createCCtx failed");
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress2(cctx, out.data(), out.size(), data.data(), data.size());
  if (ZSTD_isError(n))
    return Fail(EIO, std::string("zstd compression failed: ") + ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

// A frame to compress; the worker fills output (and digest, when asked) and sets done.
struct FrameJob {
  std::string input;
  size_t input_size = 0;  // input.size() at submission (input is freed once compressed)
  bool want_digest = false;
  std::string output;
  Digest digest;  // sha256 of input
  std::optional<Error> error;
  bool done = false;  // guarded by FramePipeline::mu_
};

// Compresses frames on `threads` workers (or inline on the caller when threads <= 1) and hands
// them back in submission order. Submit/PopFront/Full/Empty are called by one producer thread.
class FramePipeline {
 public:
  FramePipeline(int level, int threads, size_t max_frames, size_t max_bytes)
      : level_(level), max_frames_(max_frames), max_bytes_(max_bytes) {
    if (threads <= 1) {
      inline_cctx_ = NewCCtx();
      return;
    }
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  }
  ~FramePipeline() {
    {
      MutexLock lock(mu_);
      stop_ = true;
    }
    work_cv_.NotifyAll();
    for (auto& t : workers_) t.join();
  }

  bool Full() const { return inflight_.size() >= max_frames_ || inflight_bytes_ >= max_bytes_; }
  bool Empty() const { return inflight_.empty(); }

  void Submit(std::unique_ptr<FrameJob> job) {
    job->input_size = job->input.size();
    inflight_bytes_ += job->input_size;
    FrameJob* raw = job.get();
    inflight_.push_back(std::move(job));
    if (workers_.empty()) {
      Run(inline_cctx_.get(), *raw);
      raw->done = true;
      return;
    }
    {
      MutexLock lock(mu_);
      todo_.push_back(raw);
    }
    work_cv_.NotifyOne();
  }

  // The oldest frame once it is compressed; nullptr if it is not done and !wait (or none).
  std::unique_ptr<FrameJob> PopFront(bool wait) {
    if (inflight_.empty()) return nullptr;
    FrameJob* front = inflight_.front().get();
    if (!workers_.empty()) {
      MutexLock lock(mu_);
      if (!front->done && !wait) return nullptr;
      while (!front->done) done_cv_.Wait(mu_);
    }
    std::unique_ptr<FrameJob> job = std::move(inflight_.front());
    inflight_.pop_front();
    inflight_bytes_ -= job->input_size;
    return job;
  }

 private:
  void Run(ZSTD_CCtx* cctx, FrameJob& job) {
    if (job.want_digest) job.digest = Digest::Of(job.input);
    auto out = CompressFrame(cctx, level_, job.input);
    if (out) {
      job.output = std::move(*out);
    } else {
      job.error = out.error();
    }
    std::string().swap(job.input);
  }
  void WorkerLoop() HOIST_EXCLUDES(mu_) {
    CCtxPtr cctx = NewCCtx();
    for (;;) {
      FrameJob* job;
      {
        MutexLock lock(mu_);
        while (!stop_ && todo_.empty()) work_cv_.Wait(mu_);
        if (stop_) return;
        job = todo_.front();
        todo_.pop_front();
      }
      Run(cctx.get(), *job);
      {
        MutexLock lock(mu_);
        job->done = true;
      }
      done_cv_.NotifyAll();
    }
  }

  const int level_;
  const size_t max_frames_, max_bytes_;
  CCtxPtr inline_cctx_{nullptr, ZSTD_freeCCtx};
  std::vector<std::thread> workers_;
  Mutex mu_;
  CondVar work_cv_, done_cv_;
  std::deque<FrameJob*> todo_ HOIST_GUARDED_BY(mu_);
  bool stop_ HOIST_GUARDED_BY(mu_) = false;
  // Producer-only state.
  std::deque<std::unique_ptr<FrameJob>> inflight_;
  size_t inflight_bytes_ = 0;
};

struct PendingChunk {
  uint64_t file_offset = 0, size = 0, seq = 0;
  bool zeros = false;
  bool hole = false;  // a sparse file's hole: no frame (a "zeros" chunk without offsets)
};

// A TOC entry waiting for the frames of its chunks to be written (their offsets are known only
// then). Entries are written to the TOC in tar order.
struct PendingEntry {
  Entry entry;  // metadata; chunks/digest unused
  std::string raw_name, raw_link;
  std::optional<Digest> file_digest;  // unset: the file is one chunk; use that chunk's digest
  std::vector<PendingChunk> chunks;
  bool closed = false;  // all chunks submitted
  bool sparse = false;  // a PAX sparse member: the digest is file_digest or none

  const PendingChunk* FirstFramed() const {
    for (const PendingChunk& c : chunks)
      if (!c.hole) return &c;
    return nullptr;
  }
  const PendingChunk* LastFramed() const {
    for (auto it = chunks.rbegin(); it != chunks.rend(); ++it)
      if (!it->hole) return &*it;
    return nullptr;
  }
};

struct FrameDone {
  uint64_t offset = 0, end = 0;
  Digest digest;
};

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

class Writer {
 public:
  Writer(WriteCallback sink, const ZstdChunkedWriterOptions& o)
      : sink_(std::move(sink)),
        opt_(o),
        gear_(MakeGear()),
        prefetch_(o.prefetch.begin(), o.prefetch.end()),
        pipe_(o.compression_level, o.threads, 2 * static_cast<size_t>(std::max(o.threads, 1)),
              kMaxInflightBytes) {
    uint64_t t = 1;
    while (t < opt_.chunk_target) t <<= 1;
    mask_ = t - 1;
    min_chunk_ = t / 4;
    max_chunk_ = t * 4;
    toc_.StartObject();
    toc_.Key("version");
    toc_.Int(1);
    toc_.Key("entries");
    toc_.StartArray();
  }

  Result<ZstdChunkedWriteResult> Run(ReadCallback tar_source);

 private:
  static constexpr size_t kMaxInflightBytes = 32 << 20;

  Status Emit(std::string_view data) {
    blob_hash_.Update(data);
    out_pos_ += data.size();
    return sink_(data);
  }

  // Writes the oldest compressed frame (waiting for it if `wait`); false if none was ready.
  Result<bool> EmitOne(bool wait) {
    std::unique_ptr<FrameJob> job = pipe_.PopFront(wait);
    if (!job) return false;
    if (job->error) return Fail(*job->error);
    FrameDone f;
    f.offset = out_pos_;
    HOIST_RETURN_IF_ERROR(Emit(job->output));
    f.end = out_pos_;
    f.digest = std::move(job->digest);
    frames_.push_back(std::move(f));
    HOIST_RETURN_IF_ERROR(FlushToc());
    return true;
  }

  // Queues one frame (after writing frames while the pipeline is full); returns its sequence
  // number. The caller records the number, then calls Drain().
  Result<uint64_t> Enqueue(std::string data, bool want_digest) {
    while (pipe_.Full()) HOIST_RETURN_IF_ERROR(EmitOne(true));
    auto job = std::make_unique<FrameJob>();
    job->input = std::move(data);
    job->want_digest = want_digest;
    pipe_.Submit(std::move(job));
    return next_seq_++;
  }
  // Writes the frames that are already compressed, in order.
  Status Drain() {
    for (;;) {
      HOIST_ASSIGN_OR_RETURN(bool emitted, EmitOne(false));
      if (!emitted) return Ok();
    }
  }

  Status FlushMeta() {
    if (meta_.empty()) return Ok();
    std::string data;
    data.swap(meta_);
    HOIST_RETURN_IF_ERROR(Enqueue(std::move(data), false));
    return Drain();
  }
  Status AddMeta(std::string_view data) {
    tar_hash_.Update(data);
    tar_size_ += data.size();
    meta_ += data;
    if (meta_.size() >= kMaxMetaFrame) return FlushMeta();
    return Ok();
  }
  // Cuts `data` as the next chunk of the current file. `final`: no more payload follows.
  Status EmitChunk(std::string& data, bool zeros, bool final) {
    if (data.empty()) return Ok();
    HOIST_RETURN_IF_ERROR(FlushMeta());
    PendingEntry& pe = pending_.back();
    // The file digest is hashed here (producer) unless the file is a single chunk, whose
    // digest the worker computes anyway: each byte is hashed once per digest it belongs to.
    if (!pe.chunks.empty() || !final || pe.sparse) file_hash_.Update(data);
    PendingChunk c;
    c.file_offset = file_pos_;
    c.size = data.size();
    c.zeros = zeros;
    file_pos_ += data.size();
    std::string frame;
    frame.swap(data);
    data.reserve(static_cast<size_t>(max_chunk_));
    hash_ = 0;
    HOIST_ASSIGN_OR_RETURN(c.seq, Enqueue(std::move(frame), true));
    pending_.back().chunks.push_back(c);
    return Drain();
  }
  Status ChunkPayload(TarReader& reader, uint64_t size);
  Status SparsePayload(TarReader& reader, const TarMember& m);
  Status FlushToc();
  void WriteTocEntry(const PendingEntry& pe);
  const FrameDone& Frame(uint64_t seq) const { return frames_[seq - frames_base_]; }
  void WriteTarSplitSegment(std::string_view bytes);
  void WriteTarSplitFile(const TarMember& m, uint64_t crc);

  WriteCallback sink_;
  ZstdChunkedWriterOptions opt_;
  std::array<uint64_t, 256> gear_;
  std::set<std::string> prefetch_;
  uint64_t mask_ = 0, min_chunk_ = 0, max_chunk_ = 0;
  uint64_t hash_ = 0;
  Sha256 blob_hash_, tar_hash_, file_hash_;
  uint64_t out_pos_ = 0, tar_size_ = 0, file_pos_ = 0;
  std::string meta_;
  rapidjson::StringBuffer toc_buf_;
  JsonWriter toc_{toc_buf_};
  std::string tar_split_;
  uint64_t ts_position_ = 0;
  uint64_t entries_ = 0, total_chunks_ = 0;
  uint64_t crc_ = 0;
  uint64_t next_seq_ = 0;
  std::deque<PendingEntry> pending_;    // TOC entries not yet written, in tar order
  std::deque<FrameDone> frames_;        // written frames from seq frames_base_ on
  std::string* sparse_data_ = nullptr;  // while set, ChunkPayload appends the bytes it reads
  uint64_t sparse_inline_ = 0;          // sparse data bytes put into the tar-split so far
  uint64_t frames_base_ = 0;
  FramePipeline pipe_;  // last: its workers stop before the state above goes away
};

// The cut rules, per payload byte b (zero_run counts the zero bytes ending at b):
// - in a zero run (in_zeros): a zero byte extends it (cut when it reaches kMaxZeroChunk); a
//   non-zero byte ends it (the zeros become a "zeros" chunk) and is then handled as below;
// - otherwise the gear hash takes b; when zero_run reaches zero_min, the bytes before the run are
//   a chunk and the run starts a zero run; else the chunk is cut after b when it reaches
//   max_chunk, or when it is at least min_chunk, the hash's low bits are zero and b is not zero.
// The scan runs in a tight loop over the buffer until one of these events, then handles it.
Status Writer::ChunkPayload(TarReader& reader, uint64_t size) {
  std::string cur;
  cur.reserve(static_cast<size_t>(std::min<uint64_t>(size, max_chunk_)));
  bool in_zeros = false;
  uint64_t zero_run = 0;
  std::string buf(1 << 16, '\0');
  uint64_t left = size;
  const uint64_t zero_min = opt_.zero_run_min > 0 ? opt_.zero_run_min : UINT64_MAX;
  const uint64_t mask = mask_, min_chunk = min_chunk_, max_chunk = max_chunk_;
  const uint64_t* gear = gear_.data();
  while (left > 0) {
    HOIST_ASSIGN_OR_RETURN(
        size_t n,
        reader.ReadPayload(buf.data(), static_cast<size_t>(std::min<uint64_t>(buf.size(), left))));
    if (n == 0) return Fail(EBADMSG, "tar payload ended early");
    left -= n;
    if (sparse_data_ != nullptr) sparse_data_->append(buf.data(), n);
    tar_hash_.Update(buf.data(), n);
    tar_size_ += n;
    crc_ = Crc64Iso(crc_, buf.data(), n);
    const unsigned char* p = reinterpret_cast<const unsigned char*>(buf.data());
    size_t span = 0;  // p[span, i) is part of the current chunk but not yet appended to cur
    auto take = [&](size_t upto) {
      cur.append(reinterpret_cast<const char*>(p) + span, upto - span);
      span = upto;
    };
    size_t i = 0;
    while (i < n) {
      uint64_t len = cur.size() + (i - span);  // bytes of the current chunk before p[i]
      if (in_zeros) {
        for (; i < n && p[i] == 0; ++i) {
          ++zero_run;
          if (++len >= kMaxZeroChunk) {
            take(i + 1);
            HOIST_RETURN_IF_ERROR(EmitChunk(cur, true, left == 0 && i + 1 == n));
            len = 0;
          }
        }
        if (i == n) break;
        take(i);
        HOIST_RETURN_IF_ERROR(EmitChunk(cur, true, false));
        in_zeros = false;
        continue;  // p[i] is not zero: the scan below takes it
      }
      uint64_t h = hash_, zr = zero_run;
      for (; i < n; ++i) {
        const unsigned char b = p[i];
        zr = b == 0 ? zr + 1 : 0;
        h = (h << 1) + gear[b];
        ++len;
        if (zr >= zero_min || len >= max_chunk || ((h & mask) == 0 && len >= min_chunk && zr == 0))
            [[unlikely]] {
          break;
        }
      }
      hash_ = h;
      zero_run = zr;
      if (i == n) break;
      if (zero_run >= zero_min) {
        take(i + 1);
        const size_t run = static_cast<size_t>(std::min<uint64_t>(zero_run, cur.size()));
        std::string data = cur.substr(0, cur.size() - run);
        HOIST_RETURN_IF_ERROR(EmitChunk(data, false, false));
        cur.assign(run, '\0');
        in_zeros = true;
      } else {
        take(i + 1);
        HOIST_RETURN_IF_ERROR(EmitChunk(cur, false, left == 0 && i + 1 == n));
      }
      ++i;
    }
    take(n);
  }
  return EmitChunk(cur, in_zeros, true);
}

// A PAX sparse member: the TOC entry is the expanded file (data segments chunked as usual at
// their file offsets, holes as frameless "zeros" chunks, the digest of the expanded content);
// the stored data bytes go into the tar-split as raw segments (a file record would make a
// reader copy the expanded file), capped per layer.
Status Writer::SparsePayload(TarReader& reader, const TarMember& m) {
  PendingEntry& pe = pending_.back();
  pe.sparse = true;
  file_hash_.Reset();
  const bool hash_holes = m.entry.size - m.payload_size <= kMaxHashedHoles;
  std::string data;
  auto hole = [&](uint64_t end) {
    if (end == file_pos_) return;
    PendingChunk c;
    c.file_offset = file_pos_;
    c.size = end - file_pos_;
    c.zeros = c.hole = true;
    pending_.back().chunks.push_back(c);
    static const std::string kZeroBuf(1 << 16, '\0');
    for (uint64_t left = hash_holes ? c.size : 0; left > 0;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, kZeroBuf.size()));
      file_hash_.Update(std::string_view(kZeroBuf.data(), n));
      left -= n;
    }
    file_pos_ = end;
  };
  for (const SparseSegment& seg : m.sparse) {
    hole(seg.offset);
    sparse_inline_ += seg.length;
    if (sparse_inline_ > opt_.max_sparse_inline)
      return Fail(ENOTSUP, "tar entry " + QuoteName(m.raw_name) + " at byte " +
                               std::to_string(m.header_offset) + ": PAX sparse data over " +
                               std::to_string(opt_.max_sparse_inline) +
                               " bytes in one layer is not supported by convert");
    data.clear();
    sparse_data_ = &data;
    Status st = ChunkPayload(reader, seg.length);
    sparse_data_ = nullptr;
    HOIST_RETURN_IF_ERROR(st);
    for (size_t at = 0; at < data.size(); at += kMaxMetaFrame)
      WriteTarSplitSegment(std::string_view(data).substr(at, kMaxMetaFrame));
  }
  hole(m.entry.size);
  if (hash_holes) pending_.back().file_digest = Digest::FromSha256(file_hash_.Final());
  return Ok();
}

Status Writer::FlushToc() {
  while (!pending_.empty()) {
    const PendingEntry& pe = pending_.front();
    if (!pe.closed) break;
    const PendingChunk* last = pe.LastFramed();
    if (last != nullptr && last->seq >= frames_base_ + frames_.size()) break;
    WriteTocEntry(pe);
    pending_.pop_front();
  }
  // Forget written frames that no pending entry refers to.
  uint64_t keep_from = next_seq_;
  for (const PendingEntry& pe : pending_) {
    if (const PendingChunk* first = pe.FirstFramed()) {
      keep_from = first->seq;
      break;
    }
  }
  while (!frames_.empty() && frames_base_ < keep_from) {
    frames_.pop_front();
    ++frames_base_;
  }
  return Ok();
}

void Writer::WriteTocEntry(const PendingEntry& pe) {
  const Entry& e = pe.entry;
  static const char* kTypes[] = {"reg", "dir", "symlink", "hardlink", "char", "block", "fifo"};
  toc_.StartObject();
  toc_.Key("type");
  toc_.String(kTypes[static_cast<int>(e.type)]);
  toc_.Key("name");
  toc_.String(pe.raw_name.data(), static_cast<rapidjson::SizeType>(pe.raw_name.size()));
  if (e.type == EntryType::kSymlink || e.type == EntryType::kHardlink) {
    toc_.Key("linkName");
    toc_.String(pe.raw_link.data(), static_cast<rapidjson::SizeType>(pe.raw_link.size()));
  }
  toc_.Key("mode");
  toc_.Uint(e.mode);
  if (e.size) {
    toc_.Key("size");
    toc_.Uint64(e.size);
  }
  if (e.uid) {
    toc_.Key("uid");
    toc_.Uint(e.uid);
  }
  if (e.gid) {
    toc_.Key("gid");
    toc_.Uint(e.gid);
  }
  toc_.Key("modtime");
  toc_.String(FormatRfc3339(e.mtime_sec, e.mtime_nsec).c_str());
  if (e.type == EntryType::kCharDevice || e.type == EntryType::kBlockDevice) {
    toc_.Key("devMajor");
    toc_.Uint(e.dev_major);
    toc_.Key("devMinor");
    toc_.Uint(e.dev_minor);
  }
  if (!e.xattrs.empty()) {
    toc_.Key("xattrs");
    toc_.StartObject();
    for (const auto& x : e.xattrs) {
      toc_.Key(x.name.data(), static_cast<rapidjson::SizeType>(x.name.size()));
      toc_.String(Base64Encode(x.value).c_str());
    }
    toc_.EndObject();
  }
  if (prefetch_.contains(e.path)) {
    toc_.Key(kTocPrefetchKey);
    toc_.Bool(true);
  }
  const PendingChunk* last_framed = pe.LastFramed();
  const uint64_t file_end = last_framed == nullptr ? 0 : Frame(last_framed->seq).end;
  auto chunk_fields = [&](const PendingChunk& c, bool first) {
    if (c.hole) {  // no bytes in the blob; the first record still says where the file ends
      if (first && last_framed != nullptr) {
        toc_.Key("endOffset");
        toc_.Uint64(file_end);
      }
      if (c.file_offset) {
        toc_.Key("chunkOffset");
        toc_.Uint64(c.file_offset);
      }
      toc_.Key("chunkSize");
      toc_.Uint64(c.size);
      toc_.Key("chunkType");
      toc_.String("zeros");
      return;
    }
    const FrameDone& f = Frame(c.seq);
    toc_.Key("offset");
    toc_.Uint64(f.offset);
    toc_.Key("endOffset");
    toc_.Uint64(first ? file_end : f.end);
    if (c.file_offset) {
      toc_.Key("chunkOffset");
      toc_.Uint64(c.file_offset);
    }
    toc_.Key("chunkSize");
    toc_.Uint64(c.size);
    toc_.Key("chunkDigest");
    toc_.String(f.digest.str().c_str());
    if (c.zeros) {
      toc_.Key("chunkType");
      toc_.String("zeros");
    }
  };
  if (e.type == EntryType::kRegular && !pe.chunks.empty()) {
    if (!pe.sparse || pe.file_digest) {
      toc_.Key("digest");
      toc_.String(
          (pe.file_digest ? *pe.file_digest : Frame(pe.chunks[0].seq).digest).str().c_str());
    }
    chunk_fields(pe.chunks[0], true);
  }
  toc_.EndObject();
  ++entries_;
  for (size_t i = 1; i < pe.chunks.size(); ++i) {
    toc_.StartObject();
    toc_.Key("type");
    toc_.String("chunk");
    toc_.Key("name");
    toc_.String(pe.raw_name.data(), static_cast<rapidjson::SizeType>(pe.raw_name.size()));
    chunk_fields(pe.chunks[i], false);
    toc_.EndObject();
  }
  total_chunks_ += pe.chunks.size();
}

void Writer::WriteTarSplitSegment(std::string_view bytes) {
  if (bytes.empty()) return;
  tar_split_ += "{\"type\":2,\"payload\":\"" + Base64Encode(bytes) +
                "\",\"position\":" + std::to_string(ts_position_++) + "}\n";
}

void Writer::WriteTarSplitFile(const TarMember& m, uint64_t crc) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::UTF8<>,
                    rapidjson::CrtAllocator, rapidjson::kWriteValidateEncodingFlag>
      w(sb);
  w.StartObject();
  w.Key("type");
  w.Int(1);
  bool ok = w.Key("name") &&
            w.String(m.raw_name.data(), static_cast<rapidjson::SizeType>(m.raw_name.size()));
  if (!ok) {  // not UTF-8: tar-split stores the raw bytes, base64 encoded
    sb.Clear();
    w.Reset(sb);
    w.StartObject();
    w.Key("type");
    w.Int(1);
    w.Key("name_raw");
    w.String(Base64Encode(m.raw_name).c_str());
  }
  w.Key("size");
  w.Uint64(m.payload_size);
  if (m.payload_size) {
    std::string be(8, '\0');
    for (int i = 0; i < 8; ++i) be[i] = static_cast<char>(crc >> (56 - 8 * i));
    w.Key("payload");
    w.String(Base64Encode(be).c_str());
  }
  w.Key("position");
  w.Uint64(ts_position_++);
  w.EndObject();
  tar_split_.append(sb.GetString(), sb.GetSize());
  tar_split_ += '\n';
}

Result<ZstdChunkedWriteResult> Writer::Run(ReadCallback tar_source) {
  TarReader reader(std::move(tar_source));
  std::string pending_padding;  // padding of the previous member (tar-split segment bytes)
  for (;;) {
    HOIST_ASSIGN_OR_RETURN(const TarMember* m, reader.Next());
    if (!m) break;
    std::string seg = pending_padding + std::string(reader.raw_header());
    HOIST_RETURN_IF_ERROR(AddMeta(reader.raw_header()));
    WriteTarSplitSegment(seg);
    PendingEntry& pe = pending_.emplace_back();
    pe.entry = m->entry;
    pe.raw_name = m->raw_name;
    pe.raw_link = m->raw_link;
    file_pos_ = 0;
    if (m->is_sparse) {
      HOIST_RETURN_IF_ERROR(SparsePayload(reader, *m));
    } else if (m->payload_size > 0) {
      file_hash_.Reset();
      HOIST_RETURN_IF_ERROR(ChunkPayload(reader, m->payload_size));
      PendingEntry& cur = pending_.back();  // (pe may have been written meanwhile? no: open)
      if (cur.chunks.size() > 1) cur.file_digest = Digest::FromSha256(file_hash_.Final());
    }
    const uint64_t crc = crc_;
    crc_ = 0;
    pending_.back().closed = true;
    HOIST_RETURN_IF_ERROR(FlushToc());
    if (!m->is_sparse) WriteTarSplitFile(*m, crc);
    HOIST_ASSIGN_OR_RETURN(std::string_view pad, reader.FinishMember());
    HOIST_RETURN_IF_ERROR(AddMeta(pad));
    pending_padding.assign(pad);
  }
  std::string trailer = pending_padding;
  std::string buf(1 << 16, '\0');
  for (;;) {
    HOIST_ASSIGN_OR_RETURN(size_t n, reader.ReadTrailer(buf.data(), buf.size()));
    if (!n) break;
    HOIST_RETURN_IF_ERROR(AddMeta(std::string_view(buf.data(), n)));
    trailer.append(buf.data(), n);
    if (trailer.size() > kMaxMetaFrame) {
      WriteTarSplitSegment(trailer);
      trailer.clear();
    }
  }
  WriteTarSplitSegment(trailer);
  HOIST_RETURN_IF_ERROR(FlushMeta());
  while (!pipe_.Empty()) HOIST_RETURN_IF_ERROR(EmitOne(true));
  HOIST_RETURN_IF_ERROR(FlushToc());
  if (!pending_.empty()) return Fail(EIO, "zstd:chunked writer: TOC entries left unwritten");
  CCtxPtr cctx = NewCCtx();

  ZstdChunkedWriteResult r;
  // tar-split first (its digest goes into the TOC), written after the TOC.
  HOIST_ASSIGN_OR_RETURN(std::string ts_frame,
                         CompressFrame(cctx.get(), opt_.compression_level, tar_split_));
  r.tar_split_digest = Digest::Of(ts_frame);
  toc_.EndArray();
  toc_.Key("tarSplitDigest");
  toc_.String(r.tar_split_digest.str().c_str());
  toc_.EndObject();
  std::string_view toc_json(toc_buf_.GetString(), toc_buf_.GetSize());
  HOIST_ASSIGN_OR_RETURN(std::string toc_frame,
                         CompressFrame(cctx.get(), opt_.compression_level, toc_json));
  r.toc_digest = Digest::Of(toc_frame);
  HOIST_RETURN_IF_ERROR(Emit(SkippableHeader(static_cast<uint32_t>(toc_frame.size()))));
  r.toc = BlobRange{out_pos_, toc_frame.size(), toc_json.size()};
  HOIST_RETURN_IF_ERROR(Emit(toc_frame));
  HOIST_RETURN_IF_ERROR(Emit(SkippableHeader(static_cast<uint32_t>(ts_frame.size()))));
  r.tar_split = BlobRange{out_pos_, ts_frame.size(), tar_split_.size()};
  HOIST_RETURN_IF_ERROR(Emit(ts_frame));
  std::string footer = SkippableHeader(64) + Le64(r.toc.offset) + Le64(r.toc.length) +
                       Le64(r.toc.uncompressed_length) + Le64(1) + Le64(r.tar_split.offset) +
                       Le64(r.tar_split.length) + Le64(r.tar_split.uncompressed_length) +
                       std::string(kZstdChunkedMagic, 8);
  HOIST_RETURN_IF_ERROR(Emit(footer));
  r.blob_digest = Digest::FromSha256(blob_hash_.Final());
  r.blob_size = out_pos_;
  r.diff_id = Digest::FromSha256(tar_hash_.Final());
  r.tar_size = tar_size_;
  r.entries = entries_;
  r.chunks = total_chunks_;
  r.annotations[kAnnotationTocChecksum] = r.toc_digest.str();
  r.annotations[kAnnotationTocPosition] = std::to_string(r.toc.offset) + ":" +
                                          std::to_string(r.toc.length) + ":" +
                                          std::to_string(r.toc.uncompressed_length) + ":1";
  r.annotations[kAnnotationTarSplitPosition] = std::to_string(r.tar_split.offset) + ":" +
                                               std::to_string(r.tar_split.length) + ":" +
                                               std::to_string(r.tar_split.uncompressed_length);
  return r;
}

}  // namespace

uint64_t Crc64Iso(uint64_t crc, const void* data, size_t size) {
  // Reflected CRC-64/ISO, 8 bytes per step (slicing-by-8 tables).
  static const std::array<std::array<uint64_t, 256>, 8> t = [] {
    std::array<std::array<uint64_t, 256>, 8> tab{};
    for (uint64_t i = 0; i < 256; ++i) {
      uint64_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0xD800000000000000ull : c >> 1;
      tab[0][i] = c;
    }
    for (int k = 1; k < 8; ++k)
      for (int i = 0; i < 256; ++i) tab[k][i] = (tab[k - 1][i] >> 8) ^ tab[0][tab[k - 1][i] & 0xff];
    return tab;
  }();
  crc = ~crc;
  const auto* p = static_cast<const unsigned char*>(data);
  while (size >= 8) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];  // little-endian load
    crc ^= v;
    crc = t[7][crc & 0xff] ^ t[6][(crc >> 8) & 0xff] ^ t[5][(crc >> 16) & 0xff] ^
          t[4][(crc >> 24) & 0xff] ^ t[3][(crc >> 32) & 0xff] ^ t[2][(crc >> 40) & 0xff] ^
          t[1][(crc >> 48) & 0xff] ^ t[0][crc >> 56];
    p += 8;
    size -= 8;
  }
  for (size_t i = 0; i < size; ++i) crc = t[0][(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

Result<ZstdChunkedWriteResult> WriteZstdChunked(ReadCallback tar, WriteCallback sink,
                                                const ZstdChunkedWriterOptions& options) {
  Writer w(std::move(sink), options);
  return w.Run(std::move(tar));
}

}  // namespace hoist
