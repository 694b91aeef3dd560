#include "fusefs/zran_reader.h"

#include <algorithm>
#include <cstring>
#include <future>

#include "base/log.h"

namespace hoist {
namespace {

using SteadyClock = std::chrono::steady_clock;

// The entry's bytes in the decompressed stream: [lo, hi), or lo == hi if it has none.
struct StreamRange {
  uint64_t lo = UINT64_MAX;
  uint64_t hi = 0;
  bool ok = true;  // every chunk is kStream or kZeros
};

StreamRange RangeOf(const Entry& e) {
  StreamRange r;
  for (const Chunk& c : e.chunks) {
    if (c.encoding == ChunkEncoding::kZeros) continue;
    if (c.encoding != ChunkEncoding::kStream) {
      r.ok = false;
      continue;
    }
    r.lo = std::min(r.lo, c.inner_offset);
    r.hi = std::max(r.hi, c.inner_offset + c.size);
  }
  if (r.lo > r.hi) r.lo = r.hi;
  return r;
}

// The file's content from decoded stream bytes `data` that start at stream offset `base`.
// REQUIRES: RangeOf(e) inside [base, base + data.size()).
std::string Assemble(const Entry& e, std::string_view data, uint64_t base) {
  std::string content(static_cast<size_t>(e.size), '\0');
  for (const Chunk& c : e.chunks) {
    if (c.encoding != ChunkEncoding::kStream) continue;
    if (c.file_offset + c.size > e.size) continue;  // a lying index: the digest check fails
    std::memcpy(content.data() + c.file_offset, data.data() + (c.inner_offset - base),
                static_cast<size_t>(c.size));
  }
  return content;
}

// The span to fetch for stream bytes [lo, hi): the file's own, widened to the last checkpoint
// at most `want_bytes` compressed bytes past its start (0: not widened).
Result<SpanPlan> PlanSpan(const CheckpointIndex& index, uint64_t lo, uint64_t hi,
                          uint64_t want_bytes) {
  HOIST_ASSIGN_OR_RETURN(SpanPlan plan, PlanExtract(index, lo, hi));
  if (want_bytes == 0 || plan.in_end - plan.in_begin >= want_bytes) return plan;
  uint64_t wider = hi;
  for (const Checkpoint& c : index.checkpoints) {
    if (c.in_offset > plan.in_begin + want_bytes) break;
    if (c.out_offset > wider) wider = c.out_offset;
  }
  if (wider == hi) return plan;
  return PlanExtract(index, lo, wider);
}

}  // namespace

ZranReader::ZranReader(BlobSource* source, ChunkCache* cache, MountStats* stats,
                       ZranReaderOptions options)
    : source_(source), cache_(cache), stats_(stats), options_(options) {}

ZranReader::~ZranReader() = default;

std::shared_ptr<const CheckpointIndex> ZranReader::IndexFor(const LayerIndex& layer) {
  if (layer.stream_index.empty()) return nullptr;
  MutexLock lock(mu_);
  auto it = indexes_.find(layer.layer_digest);
  if (it != indexes_.end()) return it->second;
  std::shared_ptr<const CheckpointIndex> index;
  auto parsed = ParseCheckpointIndex(layer.stream_index, layer.blob_size, layer.layer_digest);
  const bool codec_ok =
      parsed &&
      ((layer.format == LayerFormat::kTarGzip && parsed->codec == CheckpointCodec::kGzip) ||
       (layer.format == LayerFormat::kTarZstd && parsed->codec == CheckpointCodec::kZstd));
  if (!parsed) {
    HOIST_LOG(kWarning) << "layer " << layer.layer_digest.str() << ": " << parsed.error().message()
                        << "; refused, the layer will be fetched whole";
  } else if (!codec_ok) {
    HOIST_LOG(kWarning) << "layer " << layer.layer_digest.str()
                        << ": checkpoint index: its codec is not the layer's; refused, the layer "
                           "will be fetched whole";
  } else {
    index = std::make_shared<const CheckpointIndex>(std::move(*parsed));
    HOIST_LOG(kDebug) << "layer " << layer.layer_digest.str() << ": lazy through "
                      << index->checkpoints.size() << " checkpoints";
  }
  indexes_.emplace(layer.layer_digest, index);
  return index;
}

bool ZranReader::HasIndex(const LayerIndex& layer) { return IndexFor(layer) != nullptr; }

void ZranReader::Drop(const LayerIndex& layer, const std::string& why) {
  bool first = false;
  {
    MutexLock lock(mu_);
    std::shared_ptr<const CheckpointIndex>& slot = indexes_[layer.layer_digest];
    first = slot != nullptr;
    slot = nullptr;
  }
  if (first) {
    HOIST_LOG(kWarning) << "layer " << layer.layer_digest.str() << ": " << why
                        << ": its checkpoint index does not fit the blob; refused, the layer "
                           "will be fetched whole";
  } else {
    HOIST_LOG(kDebug) << why << " (checkpoint index already refused)";
  }
}

bool ZranReader::Serves(const LayerIndex& layer, const Entry& entry) {
  if (entry.type != EntryType::kRegular || entry.digest.empty() ||
      entry.size > options_.max_file_bytes) {
    return false;
  }
  const StreamRange r = RangeOf(entry);
  if (!r.ok) return false;
  return HasIndex(layer);
}

Result<size_t> ZranReader::Read(const LayerIndex& layer, const Entry& entry, uint64_t offset,
                                std::span<char> out, SteadyClock::time_point deadline) {
  if (offset >= entry.size || out.empty()) return size_t{0};
  const size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), entry.size - offset));
  if (cache_ != nullptr) {
    auto hit = cache_->Read(entry.digest, offset, out.first(n));
    if (hit && hit->has_value() && **hit == n) {
      stats_->RecordHit();
      return n;
    }
  }
  stats_->RecordMiss();
  std::shared_ptr<const CheckpointIndex> index = IndexFor(layer);
  if (!index) return Fail(EIO, "layer " + layer.layer_digest.str() + ": no checkpoint index");
  const std::string key = entry.digest.str();
  SingleFlight<Result<Content>>::Joined joined = flights_.Join(key);
  if (joined.leader) flights_.Complete(key, Fetch(layer, *index, entry, /*prefetch=*/false, 0));
  if (joined.future.wait_until(deadline) == std::future_status::timeout) {
    return Fail(ETIMEDOUT, "timed out waiting for " + entry.path + " from layer " +
                               layer.layer_digest.str() + " (by checkpoint)");
  }
  const Result<Content>& got = joined.future.get();
  if (!got) return Fail(got.error());
  const std::string& content = **got;
  if (content.size() != entry.size) return Fail(EIO, "file content of the wrong size");
  std::memcpy(out.data(), content.data() + offset, n);
  return n;
}

Result<uint64_t> ZranReader::SpanBytes(const LayerIndex& layer, const Entry& entry,
                                       uint64_t want_bytes) {
  const StreamRange r = RangeOf(entry);
  if (r.lo == r.hi) return uint64_t{0};
  std::shared_ptr<const CheckpointIndex> index = IndexFor(layer);
  if (!index) return Fail(EIO, "layer " + layer.layer_digest.str() + ": no checkpoint index");
  if (r.hi > index->stream_size) {
    return Fail(EIO, "file " + entry.path + " of layer " + layer.layer_digest.str() +
                         ": past the end of the indexed stream");
  }
  HOIST_ASSIGN_OR_RETURN(SpanPlan plan, PlanSpan(*index, r.lo, r.hi, want_bytes));
  return plan.in_end - plan.in_begin;
}

Status ZranReader::Prefetch(const LayerIndex& layer, const Entry& entry, uint64_t want_bytes) {
  const StreamRange r = RangeOf(entry);
  if (r.lo == r.hi) return Ok();
  if (cache_ != nullptr) {
    auto present = cache_->Contains(entry.digest);
    if (present && *present) return Ok();
  }
  std::shared_ptr<const CheckpointIndex> index = IndexFor(layer);
  if (!index) return Fail(EIO, "layer " + layer.layer_digest.str() + ": no checkpoint index");
  const std::string key = entry.digest.str();
  SingleFlight<Result<Content>>::Joined joined = flights_.Join(key);
  if (joined.leader) {
    flights_.Complete(key, Fetch(layer, *index, entry, /*prefetch=*/true, want_bytes));
  }
  // A leader elsewhere is bounded by the BlobSource's own timeout, as this thread would be.
  const Result<Content>& got = joined.future.get();
  if (!got) return Fail(got.error());
  return Ok();
}

Digest ZranReader::WindowsBlob(const LayerIndex& layer) {
  std::shared_ptr<const CheckpointIndex> index = IndexFor(layer);
  return index ? index->windows_blob : Digest();
}

Result<ZranReader::Content> ZranReader::FetchWindow(const LayerIndex& layer,
                                                    const CheckpointIndex& index,
                                                    const Checkpoint& cp, bool prefetch) {
  if (cache_ != nullptr) {
    auto hit = cache_->Get(cp.window_digest);
    if (hit && hit->has_value() && CheckWindow(cp, **hit)) {
      return std::make_shared<const std::string>(std::move(**hit));
    }
  }
  const BlobOrigin origin =
      source_->IsLocal(index.windows_blob) ? BlobOrigin::kLocalStore : BlobOrigin::kNetwork;
  const auto t0 = SteadyClock::now();
  auto packed = source_->ReadAt(index.windows_blob, cp.window_offset, cp.window_size);
  stats_->RecordFetch(
      layer.layer_digest, origin, packed ? packed->size() : 0,
      std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - t0), prefetch);
  if (!packed) {
    return Fail(packed.error().Context("window at " + std::to_string(cp.window_offset) +
                                       " of windows blob " + index.windows_blob.str()));
  }
  HOIST_RETURN_IF_ERROR(CheckWindow(cp, *packed));
  if (cache_ != nullptr) {
    if (Status put = cache_->Put(cp.window_digest, *packed); !put) {
      HOIST_LOG(kWarning) << "window " << cp.window_digest.str() << " of layer "
                          << layer.layer_digest.str() << ": not cached: " << put.error().message();
    }
  }
  return std::make_shared<const std::string>(std::move(*packed));
}

Result<ZranReader::Content> ZranReader::Window(const LayerIndex& layer,
                                               const CheckpointIndex& index, size_t cp,
                                               bool prefetch) {
  const Checkpoint& checkpoint = index.checkpoints.at(cp);
  const std::string key = checkpoint.window_digest.str();
  SingleFlight<Result<Content>>::Joined joined = window_flights_.Join(key);
  if (joined.leader) window_flights_.Complete(key, FetchWindow(layer, index, checkpoint, prefetch));
  // A leader elsewhere is bounded by the BlobSource's own timeout, as this thread would be.
  return joined.future.get();
}

void ZranReader::Forget(const Digest& layer) {
  MutexLock lock(mu_);
  auto it = indexes_.find(layer);
  // A refused index (Drop) stays refused: the layer added again is served whole.
  if (it != indexes_.end() && it->second != nullptr) indexes_.erase(it);
}

bool ZranReader::Cache(const Digest& layer, const Entry& entry, std::string_view content) {
  auto present = cache_->Contains(entry.digest);
  if (present && *present) return false;
  if (Status put = cache_->Put(entry.digest, content); !put) {
    HOIST_LOG(kWarning) << "file " << entry.path << " of layer " << layer.str()
                        << ": not cached: " << put.error().message();
    return false;
  }
  stats_->AddLocalBytes(layer, entry.size);
  return true;
}

Result<ZranReader::Content> ZranReader::Fetch(const LayerIndex& layer, const CheckpointIndex& index,
                                              const Entry& entry, bool prefetch,
                                              uint64_t want_bytes) {
  const std::string what = "file " + entry.path + " of layer " + layer.layer_digest.str();
  const StreamRange r = RangeOf(entry);
  if (r.lo == r.hi) {  // all holes
    std::string zeros(static_cast<size_t>(entry.size), '\0');
    if (Digest::Of(zeros) != entry.digest) return Fail(EIO, what + ": digest mismatch");
    return std::make_shared<const std::string>(std::move(zeros));
  }
  if (r.hi > index.stream_size) return Fail(EIO, what + ": past the end of the indexed stream");
  HOIST_ASSIGN_OR_RETURN(SpanPlan plan, PlanSpan(index, r.lo, r.hi, want_bytes));
  // The checkpoint's external window, fetched at the same time as the span (one round trip).
  std::future<Result<Content>> window_future;
  if (index.external_windows() &&
      index.checkpoints[plan.checkpoint].kind == CheckpointKind::kDeflateBlock) {
    window_future = std::async(std::launch::async, [this, &layer, &index, &plan, prefetch] {
      return Window(layer, index, plan.checkpoint, prefetch);
    });
  }
  const BlobOrigin origin =
      source_->IsLocal(layer.layer_digest) ? BlobOrigin::kLocalStore : BlobOrigin::kNetwork;
  const auto t0 = SteadyClock::now();
  auto span = source_->ReadAt(layer.layer_digest, plan.in_begin, plan.in_end - plan.in_begin);
  stats_->RecordFetch(
      layer.layer_digest, origin, span ? span->size() : 0,
      std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - t0), prefetch);
  Result<Content> window = window_future.valid() ? window_future.get() : Result<Content>(Content());
  if (!span) return Fail(span.error().Context(what));
  if (span->size() != plan.in_end - plan.in_begin)
    return Fail(EIO, what + ": short read of the compressed span");
  if (!window) {
    if (window.error().code() == EBADMSG) {  // a lying index: nothing decoded with it
      stats_->RecordDigestMismatch();
      Drop(layer, what + ": " + window.error().message());
    }
    return Fail(EIO, what + ": " + window.error().message());
  }
  // Decode from the checkpoint through the span's end, within the cap past the file's end.
  const uint64_t decode_end =
      std::max(r.hi, std::min(plan.out_end, r.hi + options_.max_decode_bytes));
  auto decoded = ExtractRange(index, plan, *span, plan.out_begin, decode_end,
                              *window ? std::string_view(**window) : std::string_view());
  if (!decoded) {
    stats_->RecordDigestMismatch();
    Drop(layer, what + ": " + decoded.error().message());
    return Fail(EIO, what + ": " + decoded.error().message());
  }
  std::string content = Assemble(entry, *decoded, plan.out_begin);
  if (Digest::Of(content) != entry.digest) {
    stats_->RecordDigestMismatch();
    Drop(layer, what + ": digest mismatch after decoding at checkpoint " +
                    std::to_string(plan.checkpoint));
    return Fail(EIO, what + ": digest mismatch; not served");
  }
  if (cache_ != nullptr) {
    (void)Cache(layer.layer_digest, entry, content);
    // The neighbours: every other file wholly inside the decoded bytes. Entries are in tar
    // (stream) order, so the walk stops at the first file outside them, either way.
    const std::vector<Entry>& entries = layer.entries;
    if (!entries.empty() && &entry >= entries.data() && &entry < entries.data() + entries.size()) {
      const size_t at = static_cast<size_t>(&entry - entries.data());
      int cached = 0;
      auto visit = [&](const Entry& e) -> bool {  // false: stop walking this way
        if (e.type != EntryType::kRegular) return true;
        const StreamRange er = RangeOf(e);
        if (er.lo == er.hi) return true;
        if (er.lo < plan.out_begin || er.hi > plan.out_begin + decoded->size()) return false;
        if (!er.ok || e.digest.empty() || e.size > options_.max_file_bytes) return true;
        auto present = cache_->Contains(e.digest);
        if (present && *present) return true;
        std::string c = Assemble(e, *decoded, plan.out_begin);
        if (Digest::Of(c) != e.digest) return true;  // not served, so no harm; the read will say
        if (Cache(layer.layer_digest, e, c)) ++cached;
        return true;
      };
      constexpr size_t kMaxSteps = 65536;
      for (size_t k = at, steps = 0; k-- > 0 && ++steps < kMaxSteps;) {
        if (!visit(entries[k])) break;
      }
      for (size_t k = at + 1, steps = 0; k < entries.size() && ++steps < kMaxSteps; ++k) {
        if (!visit(entries[k])) break;
      }
      HOIST_LOG(kDebug) << what << ": span [" << plan.in_begin << ", " << plan.in_end
                        << ") from checkpoint " << plan.checkpoint << ", " << decoded->size()
                        << " bytes decoded, " << cached << " neighbour files cached";
    }
  }
  return std::make_shared<const std::string>(std::move(content));
}

}  // namespace hoist
