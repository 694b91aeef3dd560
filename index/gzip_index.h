// Checkpoint ("zran") indexes of gzip and zstd blobs: random access into a compressed stream that
// was not written to be seekable (an unconverted tar+gzip or tar+zstd layer).
//
// While the blob is decompressed once (the pass that walks its tar), an IndexingDecoder records
// a checkpoint about every `span_bytes` of compressed input:
//   - gzip: at a deflate block boundary (inflate(Z_BLOCK); data_type bit 128 set, bit 64 clear),
//     the compressed offset of the first byte not wholly consumed, how many bits of the byte
//     before it are still unread (data_type & 7), the uncompressed offset, and the 32 KiB of
//     output before it (the window the next block may refer back into), stored zstd-compressed.
//     Only once a member has produced 32 KiB, so every window is exactly 32 KiB. The start of a
//     gzip member (concatenated members) is a checkpoint with no window.
//   - zstd: the start of a frame (no window needed). A blob of one frame has only checkpoint 0,
//     so it cannot be read lazily (the caller fetches it whole).
// Checkpoint 0 is always {compressed 0, uncompressed 0, member start}.
//
// Windows inline or external. An index as built holds each packed window inline (format
// version 1: what the store keeps for a layer it indexed itself). SplitWindows moves them into a
// windows blob of their own (format version 2, for publishing: index/published_index.h): each
// deflate block checkpoint then records its packed window's byte range in that blob and the
// window's sha256, and the index names the windows blob (digest, size). A reader fetches a
// window by range only when a read starts at its checkpoint, checks it with CheckWindow, and
// passes it to ExtractRange.
//
// To read uncompressed bytes [a, b): PlanExtract gives the nearest checkpoint at or before `a`
// and the compressed range [in_begin, in_end) that covers [a, b) (up to the first checkpoint at
// or after `b`, or the blob's end); fetch those bytes and call ExtractRange. A checkpoint is
// primed with inflatePrime (the unread bits) and inflateSetDictionary (the window) on a raw
// inflater (windowBits -15); the end of a member inside the span is followed through its trailer
// into the next member.
//
// Trust: the serialized index (index/FORMATS.md, "Checkpoint index") is untrusted input (it may
// come from the store or, later, from a registry). ParseCheckpointIndex checks every field
// (monotonic offsets inside the blob and the stream, bounded counts and sizes, windows of
// exactly 32 KiB once decompressed, empty at member starts; external windows: each range inside
// the windows blob's declared size, which the caller checks against the blob it fetches from). A
// structurally valid index can still lie (a wrong bit count, a wrong window): ExtractRange then
// fails with an inflate error or returns wrong bytes, so callers MUST check what they serve against
// a digest (a file's sha256, Entry::digest) before serving it. Nothing here is a trust root.
//
// Errors: EBADMSG "checkpoint index: ..." for a refused index (one line); EIO for a decode
// failure in ExtractRange; EINVAL for a range outside the stream; ENOTSUP from
// IndexingDecoder::Finish for a stream it could not index (a zlib-wrapped member, an index over
// the caps).
// Thread-safety: plain values and pure functions; an IndexingDecoder is used by one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/digest.h"
#include "base/status.h"

namespace hoist {

enum class CheckpointCodec : uint8_t { kGzip = 1, kZstd = 2 };

enum class CheckpointKind : uint8_t {
  kMemberStart = 0,   // a gzip member's or zstd frame's first byte; no window
  kDeflateBlock = 1,  // gzip: a deflate block boundary inside a member; window set
};

inline constexpr size_t kDeflateWindowBytes = 32768;

struct Checkpoint {
  uint64_t in_offset = 0;   // compressed: the first byte not wholly consumed
  uint64_t out_offset = 0;  // uncompressed offset in the whole stream
  CheckpointKind kind = CheckpointKind::kMemberStart;
  uint8_t bits = 0;    // kDeflateBlock: unread bits (0..7) of byte in_offset - 1
  std::string window;  // kDeflateBlock: the 32 KiB window, as one zstd frame; else empty
                       // (always empty when the index's windows are external)
  // External windows only (CheckpointIndex::windows_blob set), kDeflateBlock: the packed
  // window is windows blob bytes [window_offset, window_offset + window_size), of sha256
  // window_digest.
  uint64_t window_offset = 0;
  uint32_t window_size = 0;
  Digest window_digest;
  friend bool operator==(const Checkpoint&, const Checkpoint&) = default;
};

struct CheckpointIndex {
  CheckpointCodec codec = CheckpointCodec::kGzip;
  Digest blob;               // sha256 of the compressed blob
  uint64_t blob_size = 0;    // compressed bytes
  uint64_t stream_size = 0;  // uncompressed bytes
  uint64_t span_bytes = 0;   // the span it was built with (informational)
  std::vector<Checkpoint> checkpoints;
  // Set: the windows are external (format version 2), in the blob of this digest and size.
  Digest windows_blob;
  uint64_t windows_size = 0;
  bool external_windows() const { return !windows_blob.empty(); }
  friend bool operator==(const CheckpointIndex&, const CheckpointIndex&) = default;
};

struct CheckpointLimits {
  uint64_t max_checkpoints = 1u << 20;
  uint64_t max_index_bytes = 256ull << 20;
  uint64_t max_stream_bytes = 64ull << 30;
};

// The span the mount's indexer uses (measured: docs/ARCHITECTURE.md, "Lazy gzip and zstd").
inline constexpr uint64_t kDefaultCheckpointSpan = 512ull << 10;

// Decompresses a gzip (one or more members) or zstd (one or more frames) stream piece by piece
// and records checkpoints as it goes: the same pass that feeds the consumer, never a second one.
class IndexingDecoder {
 public:
  // span_bytes: compressed bytes between checkpoints, at least (clamped to >= 4 KiB).
  IndexingDecoder(CheckpointCodec codec, uint64_t span_bytes, const CheckpointLimits& limits = {});
  ~IndexingDecoder();
  IndexingDecoder(const IndexingDecoder&) = delete;
  IndexingDecoder& operator=(const IndexingDecoder&) = delete;

  struct Step {
    size_t consumed = 0;  // bytes of `in` used
    size_t produced = 0;  // bytes written to `out`
  };
  // Decodes from `in` (the compressed bytes that follow those already consumed) into `out`.
  // Stops when `in` is used up or `out` is full. Errors: EBADMSG for corrupt data, ENOMEM.
  [[nodiscard]] Result<Step> Decode(std::string_view in, std::span<char> out);

  // Whether the input so far ends exactly at the end of a member / frame.
  bool at_member_end() const;
  uint64_t in_offset() const { return in_pos_; }
  uint64_t out_offset() const { return out_pos_; }

  // The index (call once, after the whole blob went through Decode and at_member_end()).
  // ENOTSUP if indexing was given up (see above).
  [[nodiscard]] Result<CheckpointIndex> Finish(const Digest& blob, uint64_t blob_size);

 private:
  struct Impl;
  void AddCheckpoint(CheckpointKind kind, uint8_t bits);
  Result<Step> DecodeGzip(std::string_view in, std::span<char> out);
  Result<Step> DecodeZstd(std::string_view in, std::span<char> out);
  void Remember(const char* data, size_t n);

  const CheckpointCodec codec_;
  const uint64_t span_;
  const CheckpointLimits limits_;
  std::unique_ptr<Impl> impl_;
  uint64_t in_pos_ = 0;
  uint64_t out_pos_ = 0;
  uint64_t member_out_ = 0;  // output of the current member so far
  bool member_done_ = true;  // at a member / frame boundary
  bool give_up_ = false;
  std::string give_up_reason_;
  std::vector<Checkpoint> checkpoints_;
  std::string ring_;  // the last 32 KiB of output, circular
  size_t ring_head_ = 0;
};

// The serialized index (index/FORMATS.md): version 1 with inline windows, version 2 when they
// are external. REQUIRES: a valid index (as Finish or SplitWindows returns).
std::string SerializeCheckpointIndex(const CheckpointIndex& index);

// The index with its windows moved out, and the windows blob: the packed windows, in
// checkpoint order, back to back. REQUIRES: an index with inline windows. An index with no
// window (zstd, or gzip of one span) is returned unchanged with an empty blob.
struct SplitIndex {
  CheckpointIndex index;
  std::string windows;
};
SplitIndex SplitWindows(const CheckpointIndex& index);

// Checks the packed window fetched for an external checkpoint: its size and sha256 are the
// checkpoint's, and it is one zstd frame of exactly 32 KiB. Errors: EBADMSG, one line.
[[nodiscard]] Status CheckWindow(const Checkpoint& checkpoint, std::string_view packed);

// Parses and validates `bytes` for a blob of `blob_size` bytes (and digest `blob`, unless empty).
// Errors: EBADMSG with a one-line reason.
[[nodiscard]] Result<CheckpointIndex> ParseCheckpointIndex(std::string_view bytes,
                                                           uint64_t blob_size,
                                                           const Digest& blob = {},
                                                           const CheckpointLimits& limits = {});

// What to fetch to extract uncompressed [begin, end).
struct SpanPlan {
  size_t checkpoint = 0;  // the index of the checkpoint decoding starts at
  uint64_t in_begin = 0;  // compressed range to fetch: [in_begin, in_end)
  uint64_t in_end = 0;
  // Uncompressed [out_begin, out_end) is what those bytes can decode to (the checkpoint's
  // offset to the next checkpoint's, or the stream's end): a caller may extract more than it
  // asked for from the same bytes (the files next to the one it reads).
  uint64_t out_begin = 0;
  uint64_t out_end = 0;
};
// EINVAL unless begin < end <= stream_size.
[[nodiscard]] Result<SpanPlan> PlanExtract(const CheckpointIndex& index, uint64_t begin,
                                           uint64_t end);

// Uncompressed [begin, end), decoded from `compressed` = blob bytes [plan.in_begin, plan.in_end).
// `window`: the plan's checkpoint's packed window when the index's windows are external (as
// CheckWindow accepted it); ignored otherwise.
// Unverified: see "Trust". Errors: EIO (corrupt data, the span ends too early, a bad or missing
// window).
[[nodiscard]] Result<std::string> ExtractRange(const CheckpointIndex& index, const SpanPlan& plan,
                                               std::string_view compressed, uint64_t begin,
                                               uint64_t end, std::string_view window = {});

}  // namespace hoist
