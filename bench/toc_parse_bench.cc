// zstd:chunked TOC -> LayerIndex: the CPU half of a cold mount (issue 4's "mount ready" for
// 100,000 files), without the network or the merged tree.
//
//   cmake -DHOIST_BUILD_BENCH=ON .. && ninja toc_parse_bench && ./bench/toc_parse_bench
//
// The TOC is synthetic but shaped like the one `hoist convert` writes for bench/mount's
// 100,000-file image: one "dir" per 100 files, every file a single-chunk "reg" with digest,
// chunkDigest, offset, endOffset, chunkSize and an RFC 3339 modtime (about 320 bytes of JSON per
// entry, 6 MB of zstd for 100,000 entries: the digests do not compress). Counters: entries/s,
// index_MB (heap the finished index holds, reserved but untouched capacity included) and peak_MB
// (resident memory the parse needed above what was resident before it: VmHWM reset through
// /proc/self/clear_refs).
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <zstd.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>

#include "index/zstd_chunked.h"

namespace hoist {
namespace {

struct SyntheticToc {
  std::string compressed;
  Digest digest;
  uint64_t text_size = 0;
  uint64_t data_end = 0;
};

std::string RandomHex(std::mt19937_64& rng) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(64, '0');
  for (char& c : s) c = kHex[rng() & 15];
  return s;
}

SyntheticToc MakeToc(int files) {
  std::mt19937_64 rng(42);
  std::string json = R"({"version":1,"entries":[{"type":"dir","name":"./","mode":493,)"
                     R"("modtime":"2023-11-14T22:13:20Z"})";
  uint64_t offset = 280;
  char buf[512];
  for (int i = 0; i < files; ++i) {
    if (i % 100 == 0) {
      std::snprintf(buf, sizeof buf,
                    R"(,{"type":"dir","name":"./d%03d/s%d/","mode":493,)"
                    R"("modtime":"2023-11-14T22:13:20Z"})",
                    i / 1000, i / 100 % 10);
      json += buf;
    }
    const uint64_t size = 100 + rng() % 2000;
    const uint64_t clen = 60 + size / 2;
    const std::string hex = RandomHex(rng);
    std::snprintf(buf, sizeof buf,
                  R"(,{"type":"reg","name":"./d%03d/s%d/f%03d.txt","mode":420,"size":%llu,)"
                  R"("modtime":"2023-11-14T22:13:20Z","digest":"sha256:%s","offset":%llu,)"
                  R"("endOffset":%llu,"chunkSize":%llu,"chunkDigest":"sha256:%s"})",
                  i / 1000, i / 100 % 10, i % 100, static_cast<unsigned long long>(size),
                  hex.c_str(), static_cast<unsigned long long>(offset),
                  static_cast<unsigned long long>(offset + clen),
                  static_cast<unsigned long long>(size), hex.c_str());
    json += buf;
    offset += clen + 150;
  }
  json += "]}";
  SyntheticToc toc;
  toc.text_size = json.size();
  toc.data_end = offset;
  toc.compressed.resize(ZSTD_compressBound(json.size()));
  toc.compressed.resize(
      ZSTD_compress(toc.compressed.data(), toc.compressed.size(), json.data(), json.size(), 3));
  toc.digest = Digest::Of(toc.compressed);
  return toc;
}

// A field of /proc/self/status in bytes ("VmRSS", "VmHWM").
size_t StatusBytes(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field + ":")) return std::stoull(line.substr(field.size() + 1)) * 1024;
  }
  return 0;
}

void ResetPeakRss() { std::ofstream("/proc/self/clear_refs") << "5"; }

void BM_ParseZstdChunkedToc(benchmark::State& state) {
  const SyntheticToc toc = MakeToc(static_cast<int>(state.range(0)));
  size_t entries = 0, kept = 0, peak = 0;
  for (auto _ : state) {
    state.PauseTiming();
    malloc_trim(0);
    const size_t heap_before = mallinfo2().uordblks + mallinfo2().hblkhd;
    ResetPeakRss();
    const size_t rss_before = StatusBytes("VmRSS");
    state.ResumeTiming();
    auto index =
        ParseZstdChunkedToc(toc.compressed, toc.digest, Digest(), toc.text_size, toc.data_end);
    if (!index) {
      state.SkipWithError(index.error().message().c_str());
      return;
    }
    entries = index->entries.size();
    state.PauseTiming();
    kept = std::max(kept, mallinfo2().uordblks + mallinfo2().hblkhd - heap_before);
    peak = std::max(peak, StatusBytes("VmHWM") - rss_before);
    index = {};
    state.ResumeTiming();
  }
  state.counters["entries"] = static_cast<double>(entries);
  state.counters["entries/s"] = benchmark::Counter(static_cast<double>(entries),
                                                   benchmark::Counter::kIsIterationInvariantRate);
  state.counters["index_MB"] = static_cast<double>(kept) / 1e6;
  state.counters["peak_MB"] = static_cast<double>(peak) / 1e6;
  state.counters["toc_MB"] = static_cast<double>(toc.compressed.size()) / 1e6;
}
BENCHMARK(BM_ParseZstdChunkedToc)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace hoist

BENCHMARK_MAIN();
