#include "fusefs/prefetcher.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "base/log.h"
#include "base/parallel.h"
#include "base/thread_priority.h"
#include "fusefs/stream_layer.h"
#include "fusefs/zran_reader.h"

namespace hoist {

Result<PrefetchMode> ParsePrefetchMode(std::string_view text) {
  if (text == "none") return PrefetchMode::kNone;
  if (text == "priority") return PrefetchMode::kPriority;
  if (text == "all") return PrefetchMode::kAll;
  return Fail(EINVAL, "prefetch=" + std::string(text) + ": expected none, priority or all");
}

TokenBucket::TokenBucket(uint64_t bytes_per_sec)
    : rate_(static_cast<double>(bytes_per_sec)),
      balance_(0),
      last_(std::chrono::steady_clock::now()) {}

void TokenBucket::Refill() {
  auto now = std::chrono::steady_clock::now();
  double secs = std::chrono::duration<double>(now - last_).count();
  last_ = now;
  balance_ = std::min(rate_, balance_ + secs * rate_);
}

bool TokenBucket::Acquire(uint64_t bytes, Mutex& mu, CondVar& cv, const bool& stopped) {
  if (rate_ <= 0) return !stopped;
  while (true) {
    if (stopped) return false;
    Refill();
    if (balance_ >= 0) {
      balance_ -= static_cast<double>(bytes);
      return true;
    }
    auto wait = std::chrono::duration<double>(-balance_ / rate_);
    cv.WaitFor(mu, std::chrono::duration_cast<std::chrono::microseconds>(wait) +
                       std::chrono::microseconds(100));
  }
}

Prefetcher::Prefetcher(ChunkReader* reader, std::vector<std::shared_ptr<const LayerIndex>> layers,
                       PrefetcherOptions options)
    : reader_(reader),
      layers_(std::move(layers)),
      options_(options),
      bucket_(options.bandwidth_bytes_per_sec) {}

Prefetcher::~Prefetcher() { Stop(); }

void Prefetcher::Start() {
  MutexLock lock(mu_);
  if (started_ || stop_) return;
  started_ = true;
  started_at_ = std::chrono::steady_clock::now();
  thread_ = std::thread([this] { Run(); });
}

void Prefetcher::Stop() {
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

PrefetchProgress Prefetcher::Progress() const {
  MountStatsSnapshot s = reader_->stats()->Snapshot();
  MutexLock lock(mu_);
  return PrefetchProgress{s.image_bytes, s.local_bytes, failed_groups_, done_};
}

bool Prefetcher::WaitDone(std::chrono::milliseconds timeout) const {
  MutexLock lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done_ && !stop_ && cv_.WaitUntil(mu_, deadline)) {
  }
  return done_;
}

bool Prefetcher::Sleep(std::chrono::milliseconds d) {
  MutexLock lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() + d;
  while (!stop_ && cv_.WaitUntil(mu_, deadline)) {
  }
  return !stop_;
}

void Prefetcher::Scan() {
  ChunkCache* cache = reader_->cache();
  // The distinct chunks, as one sorted array of digests (one allocation, freed on return: a node
  // per chunk in a hash set cost more than the mount's own index for 100k small files).
  // A chunk shared by several layers counts in the first (items stay in layer order among equal
  // digests: stable sort).
  // A layer read through its checkpoint index counts by file: a verified file is cached under its
  // digest (zran_reader.h), so its whole size is one item.
  struct Item {
    std::array<uint8_t, 32> raw;
    const Digest* digest;
    uint64_t size;
    size_t layer;
  };
  std::vector<Item> items;
  std::vector<uint64_t> layer_total(layers_.size(), 0), layer_local(layers_.size(), 0);
  StreamLayers* streams = reader_->streams();
  for (size_t k = 0; k < layers_.size(); ++k) {
    const LayerIndex& layer = *layers_[k];
    const bool by_span = streams != nullptr && IsStreamFormat(layer.format) && streams->Lazy(layer);
    for (const Entry& e : layer.entries) {
      if (e.type != EntryType::kRegular) continue;
      if (by_span && streams->zran()->Serves(layer, e)) {
        auto span = streams->zran()->SpanBytes(layer, e);
        if (span && *span > 0) items.push_back(Item{e.digest.raw(), &e.digest, e.size, k});
        if (span) continue;
      }
      for (const Chunk& c : e.chunks) {
        if (c.encoding == ChunkEncoding::kZeros) continue;
        // A plain tar layer's digested kRaw chunks are cached like any chunk; the rest of an
        // unconverted layer only comes with its whole stream.
        if (NeedsStreamFetch(c) || c.digest.empty()) {
          // Local once the layer's full stream is verified (StreamLayer: MarkLayerLocal).
          layer_total[k] += c.size;
          continue;
        }
        items.push_back(Item{c.digest.raw(), &c.digest, c.size, k});
      }
    }
  }
  std::stable_sort(items.begin(), items.end(),
                   [](const Item& a, const Item& b) { return a.raw < b.raw; });
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0 && items[i].raw == items[i - 1].raw) continue;
    layer_total[items[i].layer] += items[i].size;
    auto present = cache->Contains(*items[i].digest);
    if (present && *present) layer_local[items[i].layer] += items[i].size;
    if (i % 4096 == 0) {
      MutexLock lock(mu_);
      if (stop_) return;
    }
  }
  // Per layer blob (an image naming one blob twice has it once), then the image.
  MountStats* stats = reader_->stats();
  std::unordered_map<Digest, uint64_t, DigestHash> blob_total;
  uint64_t total = 0;
  for (size_t k = 0; k < layers_.size(); ++k) {
    blob_total[layers_[k]->layer_digest] += layer_total[k];
    total += layer_total[k];
    if (layer_local[k] > 0) stats->AddLocalBytes(layers_[k]->layer_digest, layer_local[k]);
  }
  for (const auto& [blob, bytes] : blob_total) stats->SetLayerImageBytes(blob, bytes);
  stats->SetImageBytes(total);
}

uint64_t Prefetcher::Pass(bool marked_only) {
  ChunkCache* cache = reader_->cache();
  uint64_t failed = 0;
  for (const auto& layer : layers_) {
    if (IsStreamFormat(layer->format)) {
      if (CompletedBySpans(*layer)) failed += SpanPass(*layer, marked_only);
      MutexLock lock(mu_);
      if (stop_) break;
      continue;
    }
    std::vector<Chunk> missing;
    // Views into the layers' digests (they outlive the scan): no copy per chunk.
    std::unordered_set<Digest, DigestHash> seen;
    for (const Entry& e : layer->entries) {
      if (e.type != EntryType::kRegular || (marked_only && !e.prefetch)) continue;
      for (const Chunk& c : e.chunks) {
        if (c.encoding == ChunkEncoding::kZeros || NeedsStreamFetch(c) || c.digest.empty()) {
          continue;
        }
        if (!seen.insert(c.digest).second) continue;
        auto present = cache->Contains(c.digest);
        if (present && *present) continue;
        missing.push_back(c);
      }
    }
    auto groups = CoalesceChunks(std::move(missing), reader_->options().max_coalesce_gap,
                                 std::max<uint64_t>(options_.max_request_bytes, 1));
    // Marked files are what the workload is about to read: they go at full speed.
    failed += FetchGroups(layer->layer_digest, groups,
                          marked_only ? std::max(options_.priority_requests, 1) : 1,
                          /*yield=*/!marked_only);
    MutexLock lock(mu_);
    if (stop_) break;
  }
  return failed;
}

uint64_t Prefetcher::FetchFiles(const std::vector<FileRef>& files) {
  ChunkCache* cache = reader_->cache();
  // Per layer: the missing chunks, each with the position of the first file that needs it.
  struct Wanted {
    std::vector<Chunk> chunks;
    std::unordered_map<Digest, size_t, DigestHash> first;  // chunk digest -> file position
  };
  std::unordered_map<const LayerIndex*, Wanted> by_layer;
  std::vector<const LayerIndex*> layer_order;
  for (size_t pos = 0; pos < files.size(); ++pos) {
    const FileRef& f = files[pos];
    if (f.index == nullptr || f.entry == nullptr || IsStreamFormat(f.index->format)) continue;
    auto [it, fresh] = by_layer.try_emplace(f.index);
    if (fresh) layer_order.push_back(f.index);
    Wanted& w = it->second;
    for (const Chunk& c : f.entry->chunks) {
      if (c.encoding == ChunkEncoding::kZeros || NeedsStreamFetch(c) || c.digest.empty()) continue;
      if (!w.first.try_emplace(c.digest, pos).second) continue;
      auto present = cache->Contains(c.digest);
      if (present && *present) continue;
      w.chunks.push_back(c);
    }
  }
  // Every layer's groups, earliest-needed first, fetched together.
  struct Group {
    size_t first_file;
    const LayerIndex* layer;
    std::vector<Chunk> chunks;
  };
  std::vector<Group> groups;
  for (const LayerIndex* layer : layer_order) {
    Wanted& w = by_layer[layer];
    for (auto& g : CoalesceChunks(std::move(w.chunks), options_.trace_coalesce_gap,
                                  std::max<uint64_t>(options_.max_request_bytes, 1))) {
      size_t first = files.size();
      for (const Chunk& c : g) first = std::min(first, w.first[c.digest]);
      groups.push_back(Group{first, layer, std::move(g)});
    }
  }
  std::stable_sort(groups.begin(), groups.end(),
                   [](const Group& a, const Group& b) { return a.first_file < b.first_file; });
  std::atomic<uint64_t> failed{0};
  (void)ParallelFor(groups.size(), static_cast<size_t>(std::max(options_.trace_requests, 1)),
                    [&](size_t i) -> Status {
                      return FetchGroup(groups[i].layer->layer_digest, groups[i].chunks, &failed);
                    });
  return failed.load();
}

bool Prefetcher::LazyFromLocalBlob(const LayerIndex& layer) const {
  StreamLayers* streams = reader_->streams();
  return streams != nullptr && IsStreamFormat(layer.format) && streams->Lazy(layer) &&
         reader_->source()->IsLocal(layer.layer_digest);
}

bool Prefetcher::CompletedBySpans(const LayerIndex& layer) const {
  StreamLayers* streams = reader_->streams();
  if (streams == nullptr || !IsStreamFormat(layer.format) || !streams->Lazy(layer)) return false;
  if (reader_->source()->IsLocal(layer.layer_digest)) return false;
  return std::all_of(layer.entries.begin(), layer.entries.end(), [&](const Entry& e) {
    return e.type != EntryType::kRegular || e.size == 0 || streams->zran()->Serves(layer, e);
  });
}

uint64_t Prefetcher::SpanPass(const LayerIndex& layer, bool marked_only) {
  ZranReader* zran = reader_->streams()->zran();
  ChunkCache* cache = reader_->cache();
  std::unordered_set<Digest, DigestHash> seen;
  uint64_t failed = 0;
  // Stream order: a span's neighbours are cached by the fetch before them, so most files of a
  // layer of small files are found here already.
  for (const Entry& e : layer.entries) {
    if (e.type != EntryType::kRegular || e.size == 0 || (marked_only && !e.prefetch)) continue;
    if (!seen.insert(e.digest).second) continue;
    auto present = cache->Contains(e.digest);
    if (present && *present) continue;
    const uint64_t want = std::max<uint64_t>(options_.max_request_bytes, 1);
    auto span = zran->SpanBytes(layer, e, want);
    if (!span) {
      ++failed;
      HOIST_LOG(kDebug) << "prefetch of " << e.path << " of layer " << layer.layer_digest.str()
                        << ": " << span.error().message();
      continue;
    }
    if (*span == 0) continue;  // holes only: served as zeros, nothing to fetch
    // Marked files are what the workload is about to read: they go at full speed.
    if (!marked_only && !YieldToReads()) break;
    {
      MutexLock lock(mu_);
      if (!bucket_.Acquire(*span, mu_, cv_, stop_)) break;
    }
    if (Status s = zran->Prefetch(layer, e, want); !s) {
      ++failed;
      HOIST_LOG(kDebug) << "prefetch of layer " << layer.layer_digest.str()
                        << " failed: " << s.error().message();
    }
    MutexLock lock(mu_);
    if (stop_) break;
  }
  return failed;
}

bool Prefetcher::YieldToReads() {
  if (options_.yield_quiet.count() <= 0) return true;
  const auto give_up = std::chrono::steady_clock::now() + options_.yield_max;
  while (reader_->OnDemandIdleFor() < options_.yield_quiet &&
         std::chrono::steady_clock::now() < give_up) {
    if (!Sleep(std::chrono::milliseconds(5))) return false;
  }
  return true;
}

Status Prefetcher::FetchGroup(const Digest& layer, const std::vector<Chunk>& group,
                              std::atomic<uint64_t>* failed) {
  uint64_t span = 0;
  for (const Chunk& c : group) span += c.blob_length;
  {
    MutexLock lock(mu_);
    if (!bucket_.Acquire(span, mu_, cv_, stop_)) return Fail(ECANCELED, "stopped");
  }
  Status s = reader_->FetchForPrefetch(layer, group);
  if (!s) {
    failed->fetch_add(1);
    HOIST_LOG(kDebug) << "prefetch of layer " << layer.str() << " failed: " << s.error().message();
  }
  return Ok();
}

uint64_t Prefetcher::FetchGroups(const Digest& layer, const std::vector<std::vector<Chunk>>& groups,
                                 int parallel, bool yield) {
  std::atomic<uint64_t> failed{0};
  // A failed group is counted and the rest go on; only a stop ends the loop (ECANCELED).
  (void)ParallelFor(groups.size(), static_cast<size_t>(std::max(parallel, 1)),
                    [&](size_t i) -> Status {
                      if (yield && !YieldToReads()) return Fail(ECANCELED, "stopped");
                      return FetchGroup(layer, groups[i], &failed);
                    });
  return failed.load();
}

void Prefetcher::Run() {
  // The scan and the prefetch give way to the reads the mount is serving.
  LowerThisThreadPriority();
  MountStats* stats = reader_->stats();
  stats->SetPrefetchState("scanning");
  Scan();
  if (options_.mode == PrefetchMode::kNone) {
    stats->SetPrefetchState("none");
    MutexLock lock(mu_);
    done_ = true;
    cv_.NotifyAll();
    return;
  }
  std::vector<StreamLayer*> streams;
  if (reader_->streams() != nullptr) {
    for (const auto& layer : layers_) {
      if (!IsStreamFormat(layer->format)) continue;
      // Read lazily by range through its checkpoint index: completed span by span (Pass), or
      // on this host already (its blob file: a pulled image), so nothing to do.
      if (CompletedBySpans(*layer) || LazyFromLocalBlob(*layer)) continue;
      // Priority mode fetches an unconverted layer only if it holds a marked file (it cannot
      // fetch part of one).
      if (options_.mode == PrefetchMode::kPriority &&
          std::none_of(layer->entries.begin(), layer->entries.end(),
                       [](const Entry& e) { return e.prefetch; })) {
        continue;
      }
      streams.push_back(reader_->streams()->Get(*layer));
      streams.back()->Start();
    }
  }
  while (true) {
    stats->SetPrefetchState("priority");
    uint64_t failed = Pass(/*marked_only=*/true);
    if (options_.mode == PrefetchMode::kAll) {
      const auto begin = started_at_ + options_.start_delay;
      if (const auto now = std::chrono::steady_clock::now(); now < begin) {
        if (!Sleep(std::chrono::ceil<std::chrono::milliseconds>(begin - now))) break;
      }
      stats->SetPrefetchState("all");
      failed += Pass(/*marked_only=*/false);
    }
    // Unconverted layers: wait for their full fetches (restarting failed ones).
    bool streams_done = true;
    for (size_t i = 0; i < streams.size(); ++i) {
      while (true) {
        StreamProgress p = streams[i]->Progress();
        if (p.verified) break;  // counted local by the layer itself
        if (!p.running) {
          streams_done = false;
          streams[i]->Start();  // resume on the next pass
          break;
        }
        if (!Sleep(std::chrono::milliseconds(50))) break;
      }
    }
    {
      MutexLock lock(mu_);
      failed_groups_ = failed;
      if (stop_) break;
      if (failed == 0 && streams_done) {
        stats->SetPrefetchState("done");  // before done_: a waiter sees both
        const MountStatsSnapshot now = stats->Snapshot();
        HOIST_LOG(kInfo) << "prefetch done: " << now.local_bytes << " of " << now.image_bytes
                         << " bytes local";
        done_ = true;
        cv_.NotifyAll();
        break;
      }
    }
    HOIST_LOG(kInfo) << "prefetch: " << failed << " requests failed; retrying in "
                     << options_.retry_delay.count() << " ms";
    if (!Sleep(options_.retry_delay)) break;
  }
  MutexLock lock(mu_);
  stats->SetPrefetchState(done_ ? "done" : "stopped");
  cv_.NotifyAll();
}

}  // namespace hoist
