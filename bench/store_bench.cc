// Chunk cache throughput: inserts into a fresh store and after many fill/evict cycles (LMDB
// overflow pages and freelist fragmentation with mixed chunk sizes), for each body layout
// (whole values vs fixed-size segments); the hit path; and group commit vs one txn per chunk.
//
//   cmake -DHOIST_BUILD_BENCH=ON .. && ninja store_bench && ./bench/store_bench
//
// Chunk sizes are log-uniform in [16 KiB, 1 MiB] (zstd:chunked and eStargz chunk sizes). Digests
// are synthetic (the cache trusts its caller's verification), so hashing is not measured.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/file_util.h"
#include "index/store.h"

namespace hoist {
namespace {

// HOIST_BENCH_QUOTA_MIB overrides the 64 MiB quota (to see how space use scales).
const uint64_t kQuota = [] {
  const char* q = getenv("HOIST_BENCH_QUOTA_MIB");
  return (q != nullptr ? std::strtoull(q, nullptr, 10) : 64ull) << 20;
}();

class BenchDir {
 public:
  BenchDir() {
    const char* base = getenv("HOIST_BENCH_DIR");
    std::string tmpl = std::string(base ? base : "/var/tmp") + "/hoist-bench-XXXXXX";
    path_ = mkdtemp(tmpl.data());
  }
  ~BenchDir() { (void)RemoveTree(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Produces distinct chunks of random sizes out of one random buffer.
class ChunkSource {
 public:
  explicit ChunkSource(uint64_t seed, size_t min = 16 << 10, size_t max = 1 << 20)
      : rng_(seed), min_(min), max_(max), pool_(max + 4096, '\0') {
    for (char& c : pool_) c = static_cast<char>(rng_());
  }
  // The view stays valid until the next call.
  std::pair<Digest, std::string_view> Next() {
    double lo = std::log(static_cast<double>(min_)), hi = std::log(static_cast<double>(max_));
    size_t size =
        min_ == max_ ? min_
                     : static_cast<size_t>(
                           std::exp(lo + (hi - lo) * std::uniform_real_distribution<>(0, 1)(rng_)));
    size_t off = rng_() % 4096;
    uint64_t id = ++counter_ ^ (static_cast<uint64_t>(rng_()) << 32);
    std::memcpy(pool_.data() + off, &id, sizeof(id));
    std::array<uint8_t, 32> raw{};
    std::memcpy(raw.data(), &id, sizeof(id));
    std::memcpy(raw.data() + 8, &counter_, sizeof(counter_));
    return {Digest::FromSha256(raw), std::string_view(pool_).substr(off, size)};
  }

 private:
  std::mt19937_64 rng_;
  size_t min_, max_;
  std::string pool_;
  uint64_t counter_ = 0;
};

std::unique_ptr<Store> OpenStore(const std::string& dir, uint32_t segment_bytes) {
  StoreOptions o;
  o.cache.quota_bytes = kQuota;
  o.cache.segment_bytes = segment_bytes;
  auto s = Store::Open(dir, o);
  if (!s) abort();
  return std::move(*s);
}

void Fill(ChunkCache& cache, ChunkSource& src, uint64_t bytes) {
  for (uint64_t done = 0; done < bytes;) {
    auto [d, body] = src.Next();
    if (!cache.Put(d, body)) abort();
    done += body.size();
  }
  if (!cache.Flush()) abort();
}

// Args: segment_bytes, fill/evict cycles before measuring (each cycle writes one quota). The
// store starts half full; with 0 cycles nothing has been freed yet, with N cycles the freelist
// holds runs of every size and each batch also evicts.
void BM_Insert(benchmark::State& state) {
  BenchDir dir;
  auto store = OpenStore(dir.path(), static_cast<uint32_t>(state.range(0)));
  ChunkCache& cache = store->chunks();
  ChunkSource src(42);
  Fill(cache, src, kQuota / 2);
  for (int64_t i = 0; i < state.range(1); ++i) Fill(cache, src, kQuota);
  uint64_t bytes = 0, chunks = 0;
  for (auto _ : state) {
    // 32 chunks per group commit, as the writer thread batches them under load.
    for (int i = 0; i < 32; ++i) {
      auto [d, body] = src.Next();
      if (!cache.Put(d, body)) abort();
      bytes += body.size();
      ++chunks;
    }
    if (!cache.Flush()) abort();
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.SetItemsProcessed(static_cast<int64_t>(chunks));
  auto stats = store->Stats();
  state.counters["file_MiB"] = static_cast<double>(stats->file_bytes) / (1 << 20);
  state.counters["space_amp"] =
      static_cast<double>(stats->file_bytes) / static_cast<double>(stats->chunks.chunk_bytes);
  state.counters["evicted"] = static_cast<double>(stats->chunks.evicted_chunks);
}
BENCHMARK(BM_Insert)
    ->ArgNames({"segment", "cycles"})
    ->ArgsProduct({{0, 65536, 262144}, {0, 10, 40}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(8)  // ~60 MiB: a fresh store (half full) does not reach its watermark
    ->Repetitions(3)
    ->ReportAggregatesOnly(true);

// The hit path: Read() of whole chunks into a caller buffer (checksum + one copy).
void BM_ReadHit(benchmark::State& state) {
  BenchDir dir;
  auto store = OpenStore(dir.path(), static_cast<uint32_t>(state.range(0)));
  ChunkCache& cache = store->chunks();
  ChunkSource src(7);
  std::vector<Digest> digests;
  for (uint64_t done = 0; done < kQuota / 2;) {
    auto [d, body] = src.Next();
    if (!cache.Put(d, body)) abort();
    digests.push_back(d);
    done += body.size();
  }
  if (!cache.Flush()) abort();
  std::vector<char> buf(1 << 20);
  std::mt19937 rng(1);
  uint64_t bytes = 0;
  for (auto _ : state) {
    auto n = cache.Read(digests[rng() % digests.size()], 0, std::span<char>(buf));
    if (!n || !n->has_value()) abort();
    bytes += **n;
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_ReadHit)->ArgNames({"segment"})->Arg(0)->Arg(65536)->UseRealTime();

// Many threads putting 64 KiB chunks: group commit (Put returns at once, Flush at the end)
// against one txn per chunk (Put + Flush each time).
void BM_ConcurrentPut(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const bool flush_each = state.range(1) != 0;
  BenchDir dir;
  auto store = OpenStore(dir.path(), 0);
  ChunkCache& cache = store->chunks();
  uint64_t chunks = 0;
  int round = 0;
  for (auto _ : state) {
    std::vector<std::thread> ts;
    ++round;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        ChunkSource src(round * 1000 + t, 64 << 10, 64 << 10);
        for (int i = 0; i < 64; ++i) {
          auto [d, body] = src.Next();
          if (!cache.Put(d, body)) abort();
          if (flush_each && !cache.Flush()) abort();
        }
      });
    }
    for (auto& t : ts) t.join();
    if (!cache.Flush()) abort();
    chunks += 64 * threads;
  }
  state.SetItemsProcessed(static_cast<int64_t>(chunks));
  state.SetBytesProcessed(static_cast<int64_t>(chunks * (64 << 10)));
  state.counters["batches"] = static_cast<double>(cache.Stats()->batches);
}
BENCHMARK(BM_ConcurrentPut)
    ->ArgNames({"threads", "flush_each"})
    ->ArgsProduct({{1, 8}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace hoist

BENCHMARK_MAIN();
