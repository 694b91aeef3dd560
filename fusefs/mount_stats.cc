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

void MountStats::RecordFetch(uint64_t bytes, std::chrono::microseconds latency, bool prefetch) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  bytes_.fetch_add(bytes, std::memory_order_relaxed);
  if (prefetch) {
    prefetch_requests_.fetch_add(1, std::memory_order_relaxed);
    prefetch_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  latency_.Record(static_cast<uint64_t>(std::max<int64_t>(0, latency.count())));
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
  prefetch_requests_.fetch_add(e.prefetch_requests, r);
  prefetch_bytes_.fetch_add(e.prefetch_bytes, r);
  hits_.fetch_add(e.cache_hits, r);
  misses_.fetch_add(e.cache_misses, r);
  zeros_.fetch_add(e.zero_chunks, r);
  chunks_fetched_.fetch_add(e.chunks_fetched, r);
  mismatches_.fetch_add(e.digest_mismatches, r);
  timeouts_.fetch_add(e.timeouts, r);
  errors_.fetch_add(e.errors, r);
}

MountStatsSnapshot MountStats::Snapshot() const {
  MountStatsSnapshot s;
  auto ld = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  s.requests = ld(requests_);
  s.bytes_fetched = ld(bytes_);
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
  s.local_bytes = std::min(ld(local_bytes_), s.image_bytes);
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
  return s;
}

}  // namespace hoist
