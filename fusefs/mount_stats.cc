#include "fusefs/mount_stats.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <bit>

namespace hoist {
namespace {

constexpr const char* kPrefetchStates[] = {"none", "scanning", "priority",
                                           "all",  "done",     "stopped"};
constexpr int kPrefetchStateCount = sizeof(kPrefetchStates) / sizeof(kPrefetchStates[0]);

}  // namespace

double LayerStatsSnapshot::LocalShare() const {
  if (image_bytes == 0) return 1.0;
  return static_cast<double>(std::min(local_bytes, image_bytes)) / static_cast<double>(image_bytes);
}

double MountStatsSnapshot::LocalShare() const {
  if (image_bytes == 0) return 1.0;
  return static_cast<double>(std::min(local_bytes, image_bytes)) / static_cast<double>(image_bytes);
}

void LatencyHistogram::Record(uint64_t micros) {
  int bucket = micros == 0 ? 0 : std::bit_width(micros);
  bucket = std::min(bucket, kBuckets - 1);
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
}

uint64_t LatencyHistogram::count() const {
  uint64_t n = 0;
  for (const auto& b : buckets_) n += b.load(std::memory_order_relaxed);
  return n;
}

uint64_t LatencyHistogram::Quantile(double q) const {
  std::array<uint64_t, kBuckets> counts;
  uint64_t total = 0;
  for (int i = 0; i < kBuckets; ++i) {
    counts[i] = buckets_[i].load(std::memory_order_relaxed);
    total += counts[i];
  }
  if (total == 0) return 0;
  // The rank of the q-quantile, 1-based: ceil(q * total).
  uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total));
  if (static_cast<double>(rank) < q * static_cast<double>(total)) ++rank;
  rank = std::clamp<uint64_t>(rank, 1, total);
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts[i];
    if (seen >= rank) return i == 0 ? 0 : (uint64_t{1} << i) - 1;
  }
  return (uint64_t{1} << (kBuckets - 1)) - 1;
}

void MountStats::SetLayers(std::span<const Digest> layers) {
  MutexLock lock(mu_);
  for (const Digest& d : layers) (void)LayerLocked(d);
}

MountStats::Layer& MountStats::LayerLocked(const Digest& blob) {
  for (Layer& l : layers_) {
    if (l.digest == blob) return l;
  }
  layers_.push_back(Layer{.digest = blob});
  return layers_.back();
}

void MountStats::RecordFetch(const Digest& blob, BlobOrigin origin, uint64_t bytes,
                             std::chrono::microseconds latency, bool prefetch) {
  constexpr auto r = std::memory_order_relaxed;
  if (origin == BlobOrigin::kLocalStore) {
    store_requests_.fetch_add(1, r);
    store_bytes_.fetch_add(bytes, r);
    MutexLock lock(mu_);
    Layer& l = LayerLocked(blob);
    ++l.store_requests;
    l.store_bytes += bytes;
    return;
  }
  requests_.fetch_add(1, r);
  bytes_.fetch_add(bytes, r);
  if (prefetch) {
    prefetch_requests_.fetch_add(1, r);
    prefetch_bytes_.fetch_add(bytes, r);
  }
  latency_.Record(static_cast<uint64_t>(std::max<int64_t>(0, latency.count())));
  MutexLock lock(mu_);
  Layer& l = LayerLocked(blob);
  ++l.requests;
  l.bytes += bytes;
}

void MountStats::SetLayerImageBytes(const Digest& blob, uint64_t bytes) {
  MutexLock lock(mu_);
  LayerLocked(blob).image_bytes = bytes;
}

void MountStats::AddLocalBytes(const Digest& blob, uint64_t bytes) {
  local_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  MutexLock lock(mu_);
  LayerLocked(blob).local_bytes += bytes;
}

void MountStats::MarkLayerLocal(const Digest& blob) {
  MutexLock lock(mu_);
  LayerLocked(blob).whole = true;
}

void MountStats::SetPrefetchState(std::string_view state) {
  for (int i = 0; i < kPrefetchStateCount; ++i) {
    if (state == kPrefetchStates[i]) {
      prefetch_state_.store(i, std::memory_order_relaxed);
      return;
    }
  }
}

void MountStats::Carry(const MountStatsSnapshot& e) {
  constexpr auto r = std::memory_order_relaxed;
  requests_.fetch_add(e.requests, r);
  bytes_.fetch_add(e.bytes_fetched, r);
  store_requests_.fetch_add(e.store_requests, r);
  store_bytes_.fetch_add(e.store_bytes, r);
  prefetch_requests_.fetch_add(e.prefetch_requests, r);
  prefetch_bytes_.fetch_add(e.prefetch_bytes, r);
  hits_.fetch_add(e.cache_hits, r);
  misses_.fetch_add(e.cache_misses, r);
  zeros_.fetch_add(e.zero_chunks, r);
  chunks_fetched_.fetch_add(e.chunks_fetched, r);
  mismatches_.fetch_add(e.digest_mismatches, r);
  timeouts_.fetch_add(e.timeouts, r);
  errors_.fetch_add(e.errors, r);
  MutexLock lock(mu_);
  for (const LayerStatsSnapshot& el : e.layers) {
    Layer& l = LayerLocked(el.digest);
    l.requests += el.requests;
    l.bytes += el.bytes_fetched;
    l.store_requests += el.store_requests;
    l.store_bytes += el.store_bytes;
  }
}

MountStatsSnapshot MountStats::Snapshot() const {
  MountStatsSnapshot s;
  auto ld = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  s.requests = ld(requests_);
  s.bytes_fetched = ld(bytes_);
  s.store_requests = ld(store_requests_);
  s.store_bytes = ld(store_bytes_);
  s.prefetch_requests = ld(prefetch_requests_);
  s.prefetch_bytes = ld(prefetch_bytes_);
  s.cache_hits = ld(hits_);
  s.cache_misses = ld(misses_);
  s.zero_chunks = ld(zeros_);
  s.chunks_fetched = ld(chunks_fetched_);
  s.digest_mismatches = ld(mismatches_);
  s.timeouts = ld(timeouts_);
  s.errors = ld(errors_);
  s.latency_p50_us = latency_.Quantile(0.50);
  s.latency_p99_us = latency_.Quantile(0.99);
  s.image_bytes = ld(image_bytes_);
  uint64_t local = ld(local_bytes_);
  {
    MutexLock lock(mu_);
    s.layers.reserve(layers_.size());
    for (const Layer& l : layers_) {
      LayerStatsSnapshot& ls = s.layers.emplace_back();
      ls.digest = l.digest;
      ls.requests = l.requests;
      ls.bytes_fetched = l.bytes;
      ls.store_requests = l.store_requests;
      ls.store_bytes = l.store_bytes;
      ls.image_bytes = l.image_bytes;
      ls.local_bytes = l.whole ? l.image_bytes : std::min(l.local_bytes, l.image_bytes);
      // A whole layer counts its image bytes in the total instead of what was added for it.
      if (l.whole) local = local - std::min(local, l.local_bytes) + l.image_bytes;
    }
  }
  s.local_bytes = std::min(local, s.image_bytes);
  s.prefetch_state = kPrefetchStates[prefetch_state_.load(std::memory_order_relaxed)];
  return s;
}

namespace {

// The numeric members, in output order.
struct Field {
  const char* name;
  uint64_t MountStatsSnapshot::*member;
};
constexpr Field kFields[] = {
    {"requests", &MountStatsSnapshot::requests},
    {"bytes_fetched", &MountStatsSnapshot::bytes_fetched},
    {"store_requests", &MountStatsSnapshot::store_requests},
    {"store_bytes", &MountStatsSnapshot::store_bytes},
    {"prefetch_requests", &MountStatsSnapshot::prefetch_requests},
    {"prefetch_bytes", &MountStatsSnapshot::prefetch_bytes},
    {"cache_hits", &MountStatsSnapshot::cache_hits},
    {"cache_misses", &MountStatsSnapshot::cache_misses},
    {"zero_chunks", &MountStatsSnapshot::zero_chunks},
    {"chunks_fetched", &MountStatsSnapshot::chunks_fetched},
    {"digest_mismatches", &MountStatsSnapshot::digest_mismatches},
    {"timeouts", &MountStatsSnapshot::timeouts},
    {"errors", &MountStatsSnapshot::errors},
    {"latency_p50_us", &MountStatsSnapshot::latency_p50_us},
    {"latency_p99_us", &MountStatsSnapshot::latency_p99_us},
    {"image_bytes", &MountStatsSnapshot::image_bytes},
    {"local_bytes", &MountStatsSnapshot::local_bytes},
};

struct LayerField {
  const char* name;
  uint64_t LayerStatsSnapshot::*member;
};
constexpr LayerField kLayerFields[] = {
    {"requests", &LayerStatsSnapshot::requests},
    {"bytes_fetched", &LayerStatsSnapshot::bytes_fetched},
    {"store_requests", &LayerStatsSnapshot::store_requests},
    {"store_bytes", &LayerStatsSnapshot::store_bytes},
    {"image_bytes", &LayerStatsSnapshot::image_bytes},
    {"local_bytes", &LayerStatsSnapshot::local_bytes},
};

}  // namespace

std::string MountStatsToJson(const MountStatsSnapshot& s) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  for (const Field& f : kFields) {
    w.Key(f.name);
    w.Uint64(s.*(f.member));
  }
  w.Key("local_share");
  w.Double(s.LocalShare());
  w.Key("prefetch_state");
  w.String(s.prefetch_state.data(), static_cast<rapidjson::SizeType>(s.prefetch_state.size()));
  w.Key("layers");
  w.StartArray();
  for (const LayerStatsSnapshot& l : s.layers) {
    w.StartObject();
    w.Key("digest");
    const std::string digest = l.digest.str();
    w.String(digest.data(), static_cast<rapidjson::SizeType>(digest.size()));
    for (const LayerField& f : kLayerFields) {
      w.Key(f.name);
      w.Uint64(l.*(f.member));
    }
    w.Key("local_share");
    w.Double(l.LocalShare());
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

Result<MountStatsSnapshot> MountStatsFromJson(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError()) {
    return Fail(EINVAL, std::string("mount stats: invalid JSON at offset ") +
                            std::to_string(doc.GetErrorOffset()) + ": " +
                            rapidjson::GetParseError_En(doc.GetParseError()));
  }
  if (!doc.IsObject()) return Fail(EINVAL, "mount stats: not a JSON object");
  MountStatsSnapshot s;
  for (const Field& f : kFields) {
    auto it = doc.FindMember(f.name);
    if (it == doc.MemberEnd()) continue;
    if (!it->value.IsUint64()) {
      return Fail(EINVAL,
                  std::string("mount stats: \"") + f.name + "\" is not an unsigned integer");
    }
    s.*(f.member) = it->value.GetUint64();
  }
  auto it = doc.FindMember("prefetch_state");
  if (it != doc.MemberEnd()) {
    if (!it->value.IsString())
      return Fail(EINVAL, "mount stats: \"prefetch_state\" is not a string");
    s.prefetch_state.assign(it->value.GetString(), it->value.GetStringLength());
  }
  it = doc.FindMember("layers");
  if (it != doc.MemberEnd()) {
    if (!it->value.IsArray()) return Fail(EINVAL, "mount stats: \"layers\" is not an array");
    for (const auto& v : it->value.GetArray()) {
      if (!v.IsObject()) return Fail(EINVAL, "mount stats: a layer is not an object");
      LayerStatsSnapshot l;
      auto d = v.FindMember("digest");
      if (d == v.MemberEnd() || !d->value.IsString())
        return Fail(EINVAL, "mount stats: a layer has no \"digest\" string");
      auto digest =
          Digest::Parse(std::string_view(d->value.GetString(), d->value.GetStringLength()));
      if (!digest) return Fail(digest.error().Context("mount stats: layer digest"));
      l.digest = *digest;
      for (const LayerField& f : kLayerFields) {
        auto m = v.FindMember(f.name);
        if (m == v.MemberEnd()) continue;
        if (!m->value.IsUint64()) {
          return Fail(EINVAL, std::string("mount stats: layer \"") + f.name +
                                  "\" is not an unsigned integer");
        }
        l.*(f.member) = m->value.GetUint64();
      }
      s.layers.push_back(std::move(l));
    }
  }
  return s;
}

}  // namespace hoist
