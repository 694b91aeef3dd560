// zstd:chunked writer throughput and output size over a real tar, for threads x level x chunk
// target. The tar is streamed from the file named by $HOIST_BENCH_TAR (see
// bench/zstd_chunked_writer.sh, which builds one from /usr and adds the zstd and skopeo
// references). Counters: MB/s of tar input (wall time), out/in size ratio, chunks.
//
//   HOIST_BENCH_TAR=/tmp/usr.tar ./bench/zstd_chunked_writer_bench --benchmark_filter=...
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "base/scoped_fd.h"
#include "index/zstd_chunked_writer.h"

namespace hoist {
namespace {

void BM_WriteZstdChunked(benchmark::State& state) {
  const char* path = std::getenv("HOIST_BENCH_TAR");
  if (!path) {
    state.SkipWithError("set HOIST_BENCH_TAR to a tar file");
    return;
  }
  ZstdChunkedWriterOptions opt;
  opt.threads = static_cast<int>(state.range(0));
  opt.compression_level = static_cast<int>(state.range(1));
  opt.chunk_target = static_cast<uint64_t>(state.range(2)) << 10;
  uint64_t in = 0, out = 0, chunks = 0;
  for (auto _ : state) {
    ScopedFd fd(::open(path, O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
      state.SkipWithError("cannot open HOIST_BENCH_TAR");
      return;
    }
    uint64_t written = 0;
    auto r = WriteZstdChunked(
        [&fd](char* buf, size_t n) -> Result<size_t> {
          ssize_t k = ::read(fd.get(), buf, n);
          if (k < 0) return Fail(ErrnoError("read tar"));
          return static_cast<size_t>(k);
        },
        [&written](std::string_view d) -> Status {
          written += d.size();  // discarded: measures the writer, not the disk
          return Ok();
        },
        opt);
    if (!r) {
      state.SkipWithError(r.error().message().c_str());
      return;
    }
    in += r->tar_size;
    out += written;
    chunks = r->chunks;
  }
  state.SetBytesProcessed(static_cast<int64_t>(in));
  state.counters["ratio"] = static_cast<double>(out) / static_cast<double>(in);
  state.counters["out_MB"] = static_cast<double>(out) / state.iterations() / 1e6;
  state.counters["chunks"] = static_cast<double>(chunks);
}

BENCHMARK(BM_WriteZstdChunked)
    ->ArgNames({"threads", "level", "chunk_kib"})
    ->ArgsProduct({{1, 2}, {1, 3}, {64, 256, 1024}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);

}  // namespace
}  // namespace hoist

BENCHMARK_MAIN();
