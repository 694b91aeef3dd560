#include "fusefs/chunk_reader.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <set>
#include <utility>

#include "base/log.h"
#include "fetcher/metrics_transport.h"
#include "fusefs/stream_layer.h"
#include "index/chunk_codec.h"

namespace hoist {
namespace {

using Clock = std::chrono::steady_clock;

std::string RangeText(uint64_t offset, uint64_t length) {
  return "[" + std::to_string(offset) + ", " + std::to_string(offset + length) + ")";
}

std::string SecondsText(std::chrono::milliseconds d) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%.3gs", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

// The index of the chunk covering file offset `pos`, or chunks.size() if none.
size_t FindChunk(const std::vector<Chunk>& chunks, uint64_t pos) {
  auto it = std::upper_bound(chunks.begin(), chunks.end(), pos,
                             [](uint64_t p, const Chunk& c) { return p < c.file_offset; });
  if (it == chunks.begin()) return chunks.size();
  return static_cast<size_t>(it - chunks.begin()) - 1;
}

}  // namespace

std::string DescribeChunk(const Chunk& chunk) {
  std::string d = chunk.digest.empty() ? std::string("(no digest)") : chunk.digest.str();
  return "chunk " + d + " (blob range " + RangeText(chunk.blob_offset, chunk.blob_length) + ")";
}

bool NeedsStreamFetch(const Chunk& chunk) {
  return chunk.encoding == ChunkEncoding::kStream ||
         (chunk.encoding == ChunkEncoding::kRaw && chunk.digest.empty());
}

std::vector<std::vector<Chunk>> CoalesceChunks(std::vector<Chunk> chunks, uint64_t max_gap,
                                               uint64_t max_bytes) {
  std::sort(chunks.begin(), chunks.end(),
            [](const Chunk& a, const Chunk& b) { return a.blob_offset < b.blob_offset; });
  std::vector<std::vector<Chunk>> groups;
  std::set<std::string> seen;
  uint64_t group_start = 0, group_end = 0;
  for (Chunk& c : chunks) {
    if (!seen.insert(c.digest.str()).second) continue;
    uint64_t c_end = c.blob_offset + c.blob_length;
    bool join = !groups.empty() && c.blob_offset >= group_end &&
                c.blob_offset - group_end <= max_gap && c_end - group_start <= max_bytes;
    if (!groups.empty() && c.blob_offset < group_end && c_end - group_start <= max_bytes) {
      join = true;  // overlapping ranges (a lying TOC) still fetch once
    }
    if (join) {
      group_end = std::max(group_end, c_end);
      groups.back().push_back(std::move(c));
    } else {
      group_start = c.blob_offset;
      group_end = c_end;
      groups.emplace_back();
      groups.back().push_back(std::move(c));
    }
  }
  return groups;
}

ChunkReader::ChunkReader(BlobSource* source, ChunkCache* cache, MountStats* stats,
                         ChunkReaderOptions options, StreamLayers* streams)
    : source_(source),
      cache_(cache),
      stats_(stats),
      options_(options),
      streams_(streams),
      pool_(options.fetch_threads) {}

ChunkReader::~ChunkReader() = default;

uint64_t NeighborWindow(const ChunkReaderOptions& options, std::chrono::microseconds min_rtt) {
  const uint64_t base = options.neighbor_bytes;
  if (base == 0 || options.neighbor_bytes_per_rtt_ms == 0 || min_rtt.count() <= 0) return base;
  const uint64_t cap = std::max(base, options.neighbor_max_bytes);
  const uint64_t us = static_cast<uint64_t>(min_rtt.count());
  // bytes = us * per_ms / 1000, without overflow for any sane latency.
  if (us > cap / std::max<uint64_t>(options.neighbor_bytes_per_rtt_ms, 1) * 1000) return cap;
  const uint64_t want = us * options.neighbor_bytes_per_rtt_ms / 1000;
  return std::clamp(want, base, cap);
}

void MinRttWindow::Add(std::chrono::microseconds latency) {
  MutexLock lock(mu_);
  samples_[count_ % kRttSamples] = std::max<int64_t>(latency.count(), 1);
  ++count_;
  const int n = std::min(count_, kRttSamples);
  int64_t m = samples_[0];
  for (int i = 1; i < n; ++i) m = std::min(m, samples_[i]);
  min_us_.store(m, std::memory_order_relaxed);
}

std::chrono::microseconds MinRttWindow::Get() const {
  return std::chrono::microseconds(min_us_.load(std::memory_order_relaxed));
}

Result<size_t> ChunkReader::Read(const LayerIndex& layer, const Entry& entry, uint64_t offset,
                                 std::span<char> out) {
  return DoRead(layer, entry, offset, out, /*read_ahead=*/true);
}

Result<size_t> ChunkReader::ReadQuiet(const LayerIndex& layer, const Entry& entry, uint64_t offset,
                                      std::span<char> out) {
  return DoRead(layer, entry, offset, out, /*read_ahead=*/false);
}

Result<size_t> ChunkReader::DoRead(const LayerIndex& layer, const Entry& entry, uint64_t offset,
                                   std::span<char> out, bool read_ahead) {
  const auto deadline = Clock::now() + options_.timeout;
  auto fail = [&](Error e) -> Result<size_t> {
    stats_->RecordError();
    return Fail(e.Context("reading " + entry.path + " at " + std::to_string(offset)));
  };
  if (entry.type != EntryType::kRegular) {
    return Fail(EINVAL, "reading " + entry.path + ": not a regular file");
  }
  if (offset >= entry.size || out.empty()) return 0;
  const uint64_t len = std::min<uint64_t>(out.size(), entry.size - offset);
  const uint64_t end = offset + len;

  struct Pending {
    const Chunk* chunk;
    uint64_t in_chunk;
    std::span<char> dst;
    Flights::Future future;
  };
  std::vector<Pending> pending;
  std::vector<Chunk> leaders;
  struct StreamPart {
    const Chunk* chunk;
    uint64_t in_chunk;
    std::span<char> dst;
  };
  std::vector<StreamPart> stream_parts;

  // A bad index stops the walk, but flights this read leads are still dispatched (never left
  // dangling for other readers).
  std::optional<Error> index_error;
  size_t i = FindChunk(entry.chunks, offset);
  uint64_t pos = offset;
  size_t last_chunk = i;
  while (pos < end) {
    if (i >= entry.chunks.size() || entry.chunks[i].file_offset > pos ||
        entry.chunks[i].file_offset + entry.chunks[i].size <= pos) {
      index_error = Error(EIO, "the layer index has no chunk covering offset " +
                                   std::to_string(pos) + " of layer " + layer.layer_digest.str());
      break;
    }
    const Chunk& c = entry.chunks[i];
    const uint64_t in_chunk = pos - c.file_offset;
    const uint64_t n = std::min(c.size - in_chunk, end - pos);
    std::span<char> dst = out.subspan(pos - offset, n);
    last_chunk = i;
    pos += n;
    ++i;
    if (c.encoding == ChunkEncoding::kZeros) {
      std::memset(dst.data(), 0, dst.size());
      stats_->RecordZeroChunk();
      continue;
    }
    if (NeedsStreamFetch(c)) {
      stream_parts.push_back(StreamPart{&c, in_chunk, dst});
      continue;
    }
    if (c.digest.empty()) {
      index_error = Error(EIO, DescribeChunk(c) + ": no digest; refusing to serve");
      break;
    }
    if (auto bounds = CheckChunkBounds(c); !bounds) {
      index_error = bounds.error();
      break;
    }
    auto hit = cache_->Read(c.digest, in_chunk, dst);
    if (!hit) {
      HOIST_LOG(kWarning) << "chunk cache lookup of " << c.digest.str()
                          << " failed, fetching instead: " << hit.error().message();
    } else if (hit->has_value() && **hit == n) {
      stats_->RecordHit();
      continue;
    }
    stats_->RecordMiss();
    Flights::Joined j = flights_.Join(c.digest.str());
    if (j.leader) leaders.push_back(c);
    pending.push_back(Pending{&c, in_chunk, dst, std::move(j.future)});
  }

  // Read-ahead: the next chunks of the file, in requests of their own, so the bytes the reader
  // waits for are not queued behind a read-ahead window on the same connection.
  std::vector<Chunk> ahead;
  auto [ra_begin, ra_end] = index_error || !read_ahead ? std::pair<uint64_t, uint64_t>{0, 0}
                                                       : ReadaheadWindow(entry, offset, end);
  if (ra_end > ra_begin) {
    for (size_t k = last_chunk + 1; k < entry.chunks.size(); ++k) {
      const Chunk& c = entry.chunks[k];
      if (c.file_offset >= ra_end) break;
      if (c.file_offset < ra_begin) continue;
      if (c.encoding == ChunkEncoding::kZeros || NeedsStreamFetch(c) || c.digest.empty()) {
        continue;
      }
      auto present = cache_->Contains(c.digest);
      if (present && *present) continue;
      Flights::Joined j = flights_.Join(c.digest.str());
      if (j.leader) ahead.push_back(c);
    }
  }
  if (!pending.empty() && !index_error && read_ahead) AddNeighbors(layer, entry, leaders);
  if (!leaders.empty()) Dispatch(layer.layer_digest, std::move(leaders));
  if (!ahead.empty()) Dispatch(layer.layer_digest, std::move(ahead));
  if (index_error) return fail(*index_error);

  // Unconverted layers: wait for the background full fetch to cover the range.
  for (const StreamPart& p : stream_parts) {
    if (streams_ == nullptr) {
      return fail(Error(EIO, "layer " + layer.layer_digest.str() +
                                 " needs a full fetch and this mount has no stream fetcher"));
    }
    auto got = streams_->Read(layer, entry, *p.chunk, p.in_chunk, p.dst, deadline);
    if (!got) {
      if (got.error().code() == ETIMEDOUT) {
        stats_->RecordTimeout();
        return fail(Error(EIO, got.error().message()));
      }
      return fail(got.error());
    }
  }

  for (Pending& p : pending) {
    if (p.future.wait_until(deadline) == std::future_status::timeout) {
      stats_->RecordTimeout();
      HOIST_LOG(kWarning) << "reading " << entry.path << " at " << offset << ": timed out after "
                          << SecondsText(options_.timeout) << " waiting for "
                          << DescribeChunk(*p.chunk) << " of blob " << layer.layer_digest.str();
      return fail(Error(EIO, "timed out after " + SecondsText(options_.timeout) + " waiting for " +
                                 DescribeChunk(*p.chunk) + " of blob " + layer.layer_digest.str()));
    }
    const Result<ChunkBytes>& r = p.future.get();
    if (!r) return fail(r.error());
    const std::string& bytes = **r;
    if (p.in_chunk + p.dst.size() > bytes.size()) {
      return fail(Error(EIO, DescribeChunk(*p.chunk) + ": shorter than the index says"));
    }
    std::memcpy(p.dst.data(), bytes.data() + p.in_chunk, p.dst.size());
  }
  return static_cast<size_t>(len);
}

void ChunkReader::AddNeighbors(const LayerIndex& layer, const Entry& entry,
                               std::vector<Chunk>& leaders) {
  if (options_.neighbor_bytes == 0 || entry.chunks.empty()) return;
  const std::vector<Entry>& entries = layer.entries;
  if (entries.empty() || &entry < entries.data() || &entry >= entries.data() + entries.size()) {
    return;  // not an entry of this layer's array (a test's stand-alone Entry)
  }
  uint64_t begin = UINT64_MAX, end = 0;
  for (const Chunk& c : entry.chunks) {
    if (c.encoding == ChunkEncoding::kZeros) continue;
    begin = std::min(begin, c.blob_offset);
    end = std::max(end, c.blob_offset + c.blob_length);
    if (end - begin >= options_.neighbor_bytes) return;  // not a small file
  }
  if (begin >= end) return;  // nothing in the blob
  // Bounded walks: every entry and every chunk visited costs a step.
  constexpr size_t kMaxSteps = 1024;
  size_t steps = 0;
  const size_t at = static_cast<size_t>(&entry - entries.data());
  auto lead = [&](const Chunk& c) {
    auto present = cache_->Contains(c.digest);
    if (present && *present) return;
    Flights::Joined j = flights_.Join(c.digest.str());
    if (j.leader) leaders.push_back(c);
  };
  auto usable = [&](const Chunk& c) {
    return c.encoding != ChunkEncoding::kZeros && !NeedsStreamFetch(c) && !c.digest.empty() &&
           CheckChunkBounds(c).has_value();
  };
  // Before it: up to neighbor_back_bytes (programs also read the file stored just before the
  // one they read last: in bench/mount's python start, 7 of 37 requests were such files).
  const uint64_t back_limit = begin - std::min(begin, options_.neighbor_back_bytes);
  uint64_t low = begin;
  for (size_t k = at; k-- > 0 && ++steps <= kMaxSteps;) {
    const Entry& e = entries[k];
    if (e.type != EntryType::kRegular) continue;
    bool stop = false;
    for (auto c = e.chunks.rbegin(); c != e.chunks.rend() && !stop; ++c) {
      if (++steps > kMaxSteps) return;
      if (c->encoding == ChunkEncoding::kZeros) continue;
      if (!usable(*c) || c->blob_offset + c->blob_length > low || c->blob_offset < back_limit) {
        stop = true;
        break;
      }
      low = c->blob_offset;
      lead(*c);
    }
    if (stop) break;
  }
  // After it: up to the neighbour window of blob from its start.
  const uint64_t limit = begin + neighbor_window();
  steps = 0;
  for (size_t k = at + 1; k < entries.size() && ++steps <= kMaxSteps; ++k) {
    const Entry& e = entries[k];
    if (e.type != EntryType::kRegular) continue;
    for (const Chunk& c : e.chunks) {
      if (++steps > kMaxSteps) return;
      if (c.encoding == ChunkEncoding::kZeros) continue;
      // Chunks laid out elsewhere (a reordered prefetch section, another frame order) end it.
      if (!usable(c) || c.blob_offset < end || c.blob_offset + c.blob_length > limit) return;
      end = c.blob_offset + c.blob_length;
      lead(c);
    }
  }
}

std::pair<uint64_t, uint64_t> ChunkReader::ReadaheadWindow(const Entry& entry, uint64_t offset,
                                                           uint64_t end) {
  if (options_.readahead_bytes == 0) return {0, 0};
  MutexLock lock(seq_mu_);
  if (seq_.size() > 4096) seq_.clear();  // bounded: forget old files
  SeqState& s = seq_[&entry];
  const bool sequential = offset == 0 || offset == s.next_offset;
  s.next_offset = end;
  if (!sequential) {
    s.readahead_until = end;
    return {0, 0};
  }
  // Top the window up only when less than half of it is left ahead of the reader, so a
  // sequential reader causes requests of at least half a window, not one per chunk.
  if (s.readahead_until > end && s.readahead_until - end >= options_.readahead_bytes / 2) {
    return {0, 0};
  }
  uint64_t begin = std::max(end, s.readahead_until);
  uint64_t limit = std::min(entry.size, end + options_.readahead_bytes);
  if (begin >= limit) return {0, 0};
  s.readahead_until = limit;
  return {begin, limit};
}

void ChunkReader::Dispatch(const Digest& blob, std::vector<Chunk> leaders) {
  auto groups =
      CoalesceChunks(std::move(leaders), options_.max_coalesce_gap, options_.max_request_bytes);
  for (auto& g : groups) {
    auto group = std::make_shared<std::vector<Chunk>>(std::move(g));
    NoteOnDemand(+1);
    pool_.Submit(
        [this, blob, group] {
          (void)FetchGroup(blob, *group, /*prefetch=*/false);
          NoteOnDemand(-1);
        },
        [this, group] {
          for (const Chunk& c : *group) {
            flights_.Complete(c.digest.str(),
                              Fail(ECANCELED, "fetch cancelled: the mount is stopping"));
          }
          NoteOnDemand(-1);
        });
  }
}

void ChunkReader::NoteOnDemand(int delta) {
  const int64_t now =
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
  // The time is stored before the count drops to zero, so a reader of both never sees "idle"
  // with the dispatch time of the fetch that just ended.
  if (delta < 0) on_demand_changed_ns_.store(now);
  on_demand_in_flight_.fetch_add(delta);
  if (delta > 0) on_demand_changed_ns_.store(now);
}

std::chrono::nanoseconds ChunkReader::OnDemandIdleFor() const {
  if (on_demand_in_flight_.load() > 0) return std::chrono::nanoseconds(0);
  const int64_t changed = on_demand_changed_ns_.load();
  if (changed == 0) return std::chrono::nanoseconds::max();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()) -
         std::chrono::nanoseconds(changed);
}

Status ChunkReader::CheckChunkBounds(const Chunk& c) const {
  // Compressed data may exceed its content a little (incompressible frames), never by much.
  const uint64_t max_blob = options_.max_chunk_size + options_.max_chunk_size / 8 + 4096;
  if (c.size > options_.max_chunk_size || c.blob_length > max_blob) {
    return Fail(EIO, DescribeChunk(c) + ": " + std::to_string(c.size) + " bytes (" +
                         std::to_string(c.blob_length) + " in the blob) exceed the chunk cap of " +
                         std::to_string(options_.max_chunk_size));
  }
  return Ok();
}

Result<std::string> ChunkReader::Refetch(const Digest& blob, const Chunk& chunk, const Error& error,
                                         const ReadRoute& first, bool prefetch) {
  stats_->RecordDigestMismatch();
  CountBadBytes(first.served_url);
  // Bytes a mirror served are read again from the registry itself: the mirror would most likely
  // serve the same bytes again.
  ReadRoute route;
  route.skip_mirrors = first.served_by_mirror;
  if (first.served_by_mirror) {
    HOIST_LOG(kWarning) << "blob " << blob.str() << ": " << error.message()
                        << " in bytes served by mirror " << first.served_by
                        << "; refetching from the registry, skipping mirrors";
  } else {
    HOIST_LOG(kWarning) << "blob " << blob.str() << ": " << error.message()
                        << (first.served_by.empty() ? "" : " in bytes served by " + first.served_by)
                        << "; refetching";
  }
  const BlobOrigin origin = source_->IsLocal(blob) ? BlobOrigin::kLocalStore : BlobOrigin::kNetwork;
  const auto t0 = Clock::now();
  auto data = source_->ReadAtRouted(blob, chunk.blob_offset, chunk.blob_length, route);
  stats_->RecordFetch(blob, origin, data ? data->size() : 0,
                      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0),
                      prefetch);
  if (!data) {
    return Fail(
        data.error().Context("refetching " + DescribeChunk(chunk) + " of blob " + blob.str()));
  }
  auto bytes = DecodeAndVerifyChunkBytes(chunk, *data, options_.max_chunk_size);
  if (!bytes) {
    stats_->RecordDigestMismatch();
    CountBadBytes(route.served_url);
    std::string msg = "blob " + blob.str() + ": " + bytes.error().message() +
                      " (again after a refetch" +
                      (route.served_by.empty() ? "" : " from " + route.served_by) + "); not served";
    HOIST_LOG(kError) << msg;
    return Fail(EIO, msg);
  }
  return bytes;
}

Status ChunkReader::FetchGroup(const Digest& blob, const std::vector<Chunk>& group, bool prefetch) {
  if (group.empty()) return Ok();
  uint64_t start = group.front().blob_offset, stop = start;
  for (const Chunk& c : group) {
    start = std::min(start, c.blob_offset);
    stop = std::max(stop, c.blob_offset + c.blob_length);
  }
  const BlobOrigin origin = source_->IsLocal(blob) ? BlobOrigin::kLocalStore : BlobOrigin::kNetwork;
  const auto t0 = Clock::now();
  ReadRoute route;
  auto data = stop > start ? source_->ReadAtRouted(blob, start, stop - start, route)
                           : Result<std::string>();
  if (stop > start) {
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
    stats_->RecordFetch(blob, origin, data ? data->size() : 0, took, prefetch);
    // A local file's read time says nothing of the round trip.
    if (data && stop - start <= kRttSampleMaxBytes && origin == BlobOrigin::kNetwork) {
      rtt_.Add(took);
    }
    HOIST_LOG(kDebug) << (prefetch ? "prefetched " : "fetched ") << group.size() << " chunks, "
                      << RangeText(start, stop - start) << " of " << blob.str() << " in "
                      << took.count() << " us";
  }
  if (data && data->size() != stop - start) {
    data = Fail(EIO, "short read: " + std::to_string(data->size()) + " of " +
                         std::to_string(stop - start) + " bytes");
  }
  if (!data) {
    Error e = data.error().Context("fetching blob " + blob.str() + " range " +
                                   RangeText(start, stop - start));
    HOIST_LOG(kWarning) << e.message();
    for (const Chunk& c : group) flights_.Complete(c.digest.str(), Fail(e));
    return Fail(e);
  }
  Status first_error = Ok();
  for (const Chunk& c : group) {
    std::string_view slice = std::string_view(*data).substr(c.blob_offset - start, c.blob_length);
    auto bytes = DecodeAndVerifyChunkBytes(c, slice, options_.max_chunk_size);
    if (!bytes) bytes = Refetch(blob, c, bytes.error(), route, prefetch);
    if (!bytes) {
      if (first_error) first_error = Fail(bytes.error());
      flights_.Complete(c.digest.str(), Fail(bytes.error()));
      continue;
    }
    stats_->RecordChunkFetched();
    stats_->AddLocalBytes(blob, c.size);
    auto shared = std::make_shared<const std::string>(std::move(*bytes));
    // Into the cache before the flight is forgotten, so a later reader finds it in one place or
    // the other. Put only queues (the cache's writer thread commits).
    if (auto put = cache_->Put(c.digest, *shared); !put) {
      HOIST_LOG(kWarning) << "caching " << c.digest.str() << " failed: " << put.error().message();
    }
    flights_.Complete(c.digest.str(), std::move(shared));
  }
  return first_error;
}

Status ChunkReader::FetchForPrefetch(const Digest& blob, const std::vector<Chunk>& chunks) {
  const auto deadline = Clock::now() + options_.timeout;
  std::vector<Chunk> leaders;
  std::vector<std::pair<const Chunk*, Flights::Future>> waits;
  Status first_error = Ok();
  for (const Chunk& c : chunks) {
    if (c.encoding == ChunkEncoding::kZeros || NeedsStreamFetch(c) || c.digest.empty()) continue;
    if (auto bounds = CheckChunkBounds(c); !bounds) {
      if (first_error) first_error = Fail(bounds.error());
      continue;
    }
    Flights::Joined j = flights_.Join(c.digest.str());
    if (j.leader) {
      leaders.push_back(c);
    } else {
      waits.emplace_back(&c, std::move(j.future));
    }
  }
  if (!leaders.empty()) {
    auto groups = CoalesceChunks(std::move(leaders), options_.max_coalesce_gap,
                                 std::max(options_.max_request_bytes, uint64_t{1}));
    for (const auto& g : groups) {
      Status s = FetchGroup(blob, g, /*prefetch=*/true);
      if (!s && first_error) first_error = s;
    }
  }
  for (auto& [c, f] : waits) {
    if (f.wait_until(deadline) == std::future_status::timeout) {
      if (first_error) {
        first_error = Fail(EIO, "prefetch timed out waiting for " + DescribeChunk(*c));
      }
      continue;
    }
    const Result<ChunkBytes>& r = f.get();
    if (!r && first_error) first_error = Fail(r.error());
  }
  return first_error;
}

}  // namespace hoist
