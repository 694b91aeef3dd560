// Read path tests: ChunkReader, StreamLayer, Prefetcher, MountStats and the state file, on the
// REAL LMDB chunk cache (index/store.h) and real zstd frames / gzip streams built here with
// libzstd and zlib, served by a fault-injecting BlobSource fake (the seam; the registry-backed
// BlobSource is exercised by the integration tests).
#include <gtest/gtest.h>

#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>
#include <algorithm>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "fetcher/blob_source.h"
#include "fusefs/chunk_reader.h"
#include "fusefs/mount_stats.h"
#include "fusefs/prefetcher.h"
#include "fusefs/stats_file.h"
#include "fusefs/stream_layer.h"
#include "index/store.h"
#include "tests/harness/gzip_bytes.h"
#include "tests/harness/wait.h"

namespace hoist {
namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;
using harness::WaitUntil;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/hoist-readpath-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { (void)RemoveTree(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

std::string ZstdFrame(std::string_view data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 1);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

std::string ZstdSkippable(size_t payload) {
  std::string out(8 + payload, 'h');
  uint32_t magic = 0x184D2A50, size = static_cast<uint32_t>(payload);
  std::memcpy(out.data(), &magic, 4);  // little-endian host
  std::memcpy(out.data() + 4, &size, 4);
  return out;
}

using testing::Gzip;

// A zstd:chunked-shaped layer: each file chunk its own zstd frame, a skippable "tar header"
// frame before each file. Chunks of one file are adjacent in the blob.
struct TestLayer {
  LayerIndex index;
  std::string blob;
  std::map<std::string, std::string> content;  // path -> bytes
  const Entry& entry(const std::string& path) const {
    for (const Entry& e : index.entries)
      if (e.path == path) return e;
    ADD_FAILURE() << "no entry " << path;
    return index.entries.front();
  }
};

struct FileSpec {
  std::string path;
  std::string data;
  size_t chunk_size;
  bool prefetch = false;
  std::set<size_t> zero_chunks = {};  // chunk indexes stored as kZeros (data must be zeros)
};

TestLayer BuildLayer(const std::vector<FileSpec>& files) {
  TestLayer t;
  t.index.format = LayerFormat::kZstdChunked;
  for (const FileSpec& f : files) {
    t.blob += ZstdSkippable(100);
    Entry e;
    e.path = f.path;
    e.type = EntryType::kRegular;
    e.mode = 0644;
    e.size = f.data.size();
    e.prefetch = f.prefetch;
    e.digest = Digest::Of(f.data);
    size_t k = 0;
    for (size_t off = 0; off < f.data.size(); off += f.chunk_size, ++k) {
      std::string_view piece = std::string_view(f.data).substr(off, f.chunk_size);
      Chunk c;
      c.file_offset = off;
      c.size = piece.size();
      if (f.zero_chunks.count(k)) {
        c.encoding = ChunkEncoding::kZeros;
      } else {
        std::string frame = ZstdFrame(piece);
        c.blob_offset = t.blob.size();
        c.blob_length = frame.size();
        c.encoding = ChunkEncoding::kZstdFrame;
        c.digest = Digest::Of(piece);
        t.blob += frame;
      }
      e.chunks.push_back(c);
    }
    t.content[f.path] = f.data;
    t.index.entries.push_back(std::move(e));
  }
  t.blob += ZstdSkippable(200);  // the TOC stands in here
  t.index.layer_digest = Digest::Of(t.blob);
  t.index.blob_size = t.blob.size();
  return t;
}

// The seam fake: serves blobs from memory, counts requests, injects faults.
class FakeBlobSource : public BlobSource {
 public:
  ~FakeBlobSource() override { Release(); }

  void Add(const Digest& d, std::string bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    blobs_[d.str()] = std::move(bytes);
  }

  Result<std::string> ReadAt(const Digest& blob, uint64_t offset, uint64_t length) override {
    ReadRoute route;
    return ReadAtRouted(blob, offset, length, route);
  }

  // With SetMirror: a read that does not skip mirrors is served by "mirror.test:5000", and only
  // such reads are corrupted (Corrupt); a skipping one by "registry.test", with the true bytes.
  Result<std::string> ReadAtRouted(const Digest& blob, uint64_t offset, uint64_t length,
                                   ReadRoute& route) override {
    std::unique_lock<std::mutex> lock(mu_);
    requests_++;
    ranges_.push_back(ByteRange{offset, length});
    skips_.push_back(route.skip_mirrors);
    const bool corruptible = !mirror_ || !route.skip_mirrors;
    if (mirror_) {
      route.served_by = route.skip_mirrors ? "registry.test" : "mirror.test:5000";
      route.served_by_mirror = !route.skip_mirrors;
      route.served_url = "http://" + route.served_by + "/v2/x/blobs/" + blob.str();
    }
    if (silent_ && offset >= silent_from_ && (silent_blob_.empty() || silent_blob_ == blob.str())) {
      blocked_++;
      max_blocked_ = std::max(max_blocked_, blocked_);
      cv_.wait(lock, [this] { return !silent_; });
      blocked_--;
      if (release_error_) return Fail(EIO, "connection reset by peer");
    }
    if (fail_all_) return Fail(EIO, "registry unavailable");
    auto delay = delay_;
    lock.unlock();
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    lock.lock();
    auto it = blobs_.find(blob.str());
    if (it == blobs_.end()) return Fail(ENOENT, "no blob " + blob.str());
    if (offset + length > it->second.size()) return Fail(EIO, "range past the end");
    std::string out = it->second.substr(offset, length);
    for (uint64_t pos : corrupt_) {
      if (corruptible && pos >= offset && pos < offset + length && corrupt_reads_left_ != 0) {
        out[pos - offset] ^= 0x40;
      }
    }
    if (!corrupt_.empty() && corrupt_reads_left_ > 0) {
      for (uint64_t pos : corrupt_) {
        if (pos >= offset && pos < offset + length) {
          corrupt_reads_left_--;
          break;
        }
      }
    }
    return out;
  }

  Result<uint64_t> Size(const Digest& blob) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = blobs_.find(blob.str());
    if (it == blobs_.end()) return Fail(ENOENT, "no blob");
    return it->second.size();
  }

  // Reads of `blob` stand for reads of a local blob file (IsLocal).
  void SetLocal(const Digest& blob) {
    std::lock_guard<std::mutex> lock(mu_);
    local_.insert(blob.str());
  }
  bool IsLocal(const Digest& blob) override {
    std::lock_guard<std::mutex> lock(mu_);
    return local_.count(blob.str()) > 0;
  }

  int requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  std::vector<ByteRange> ranges() {
    std::lock_guard<std::mutex> lock(mu_);
    return ranges_;
  }
  int blocked() {
    std::lock_guard<std::mutex> lock(mu_);
    return blocked_;
  }
  // The most reads ever blocked at once.
  int max_blocked() {
    std::lock_guard<std::mutex> lock(mu_);
    return max_blocked_;
  }
  void SetFailAll(bool v) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_all_ = v;
  }
  void SetDelay(milliseconds d) {
    std::lock_guard<std::mutex> lock(mu_);
    delay_ = d;
  }
  // Reads at or after `from` block until Release().
  void SetSilent(uint64_t from = 0, std::string only_blob = "") {
    std::lock_guard<std::mutex> lock(mu_);
    silent_ = true;
    silent_from_ = from;
    silent_blob_ = std::move(only_blob);
  }
  // Unblocks silent reads; with `error` they fail (a reset), else they are served.
  void Release(bool error = false) {
    std::lock_guard<std::mutex> lock(mu_);
    silent_ = false;
    release_error_ = error;
    cv_.notify_all();
  }
  // Reads are served by a mirror unless they skip mirrors (ReadAtRouted).
  void SetMirror() {
    std::lock_guard<std::mutex> lock(mu_);
    mirror_ = true;
  }
  // ReadRoute::skip_mirrors of each read, in order.
  std::vector<bool> skips() {
    std::lock_guard<std::mutex> lock(mu_);
    return skips_;
  }
  // Flips a bit at blob offset `pos` in the next `reads` reads covering it (-1: always).
  void Corrupt(uint64_t pos, int reads) {
    std::lock_guard<std::mutex> lock(mu_);
    corrupt_.insert(pos);
    corrupt_reads_left_ = reads;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::string> blobs_;
  int requests_ = 0;
  int blocked_ = 0;
  int max_blocked_ = 0;
  std::vector<ByteRange> ranges_;
  bool fail_all_ = false;
  bool silent_ = false;
  uint64_t silent_from_ = 0;
  std::string silent_blob_;
  bool release_error_ = false;
  milliseconds delay_{0};
  std::set<uint64_t> corrupt_;
  int corrupt_reads_left_ = 0;
  std::set<std::string> local_;
  bool mirror_ = false;
  std::vector<bool> skips_;
};

class ReadPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::Open(dir_.path() + "/cache");
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(*store);
  }
  void TearDown() override {
    source_.Release();
    prefetcher_.reset();
    reader_.reset();
    streams_.reset();
  }

  void MakeReader(ChunkReaderOptions options = {}) {
    streams_ = std::make_unique<StreamLayers>(
        &source_, &stats_, StreamLayerOptions{.piece_bytes = 64 << 10, .temp_dir = dir_.path()});
    reader_ = std::make_unique<ChunkReader>(&source_, &store_->chunks(), &stats_, options,
                                            streams_.get());
  }

  Result<std::string> ReadFile(const LayerIndex& layer, const Entry& e, uint64_t off,
                               uint64_t len) {
    std::string buf(len, '\x55');
    HOIST_ASSIGN_OR_RETURN(size_t n, reader_->Read(layer, e, off, std::span<char>(buf)));
    buf.resize(n);
    return buf;
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  FakeBlobSource source_;
  MountStats stats_;
  std::unique_ptr<StreamLayers> streams_;
  std::unique_ptr<ChunkReader> reader_;
  std::unique_ptr<Prefetcher> prefetcher_;
};

ChunkReaderOptions NoReadahead() {
  ChunkReaderOptions o;
  o.readahead_bytes = 0;
  o.neighbor_bytes = 0;
  return o;
}

TEST(CoalesceTest, AdjacentGapAndLimit) {
  auto chunk = [](uint64_t off, uint64_t len, int id) {
    return Chunk{.blob_offset = off, .blob_length = len, .digest = Digest::Of(std::to_string(id))};
  };
  auto groups = CoalesceChunks({chunk(200, 100, 3), chunk(0, 100, 1), chunk(100, 100, 2),
                                chunk(1000, 10, 4), chunk(100, 100, 2)},
                               /*max_gap=*/0, /*max_bytes=*/1000);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].size(), 3u);  // duplicate digest dropped, sorted by offset
  EXPECT_EQ(groups[0][0].blob_offset, 0u);
  EXPECT_EQ(groups[1].size(), 1u);
  EXPECT_EQ(CoalesceChunks({chunk(0, 100, 1), chunk(150, 10, 2)}, 50, 1000).size(), 1u);
  EXPECT_EQ(CoalesceChunks({chunk(0, 100, 1), chunk(150, 10, 2)}, 49, 1000).size(), 2u);
  EXPECT_EQ(CoalesceChunks({chunk(0, 600, 1), chunk(600, 600, 2)}, 0, 1000).size(), 2u);
}

// The adaptive neighbour window: clamp(min_rtt x bytes_per_rtt_ms, neighbor_bytes, max).
TEST(NeighborWindowTest, ScalesWithTheRoundTripBetweenTheBaseAndTheCap) {
  using std::chrono::microseconds;
  ChunkReaderOptions o;  // 256 KiB base, not scaled by default (0 per ms), 4 MiB cap
  EXPECT_EQ(NeighborWindow(o, microseconds(10000)), 256u << 10);
  EXPECT_EQ(NeighborWindow(o, microseconds(40000)), 256u << 10);
  o.neighbor_bytes_per_rtt_ms = 16 << 10;
  EXPECT_EQ(NeighborWindow(o, microseconds(10000)), 256u << 10);  // 10 ms: 160 KiB < the base
  EXPECT_EQ(NeighborWindow(o, microseconds(40000)), 640u << 10);  // 40 ms
  o.neighbor_bytes_per_rtt_ms = 64 << 10;
  EXPECT_EQ(NeighborWindow(o, microseconds(0)), 256u << 10);     // no sample yet
  EXPECT_EQ(NeighborWindow(o, microseconds(300)), 256u << 10);   // loopback: the base
  EXPECT_EQ(NeighborWindow(o, microseconds(4000)), 256u << 10);  // 4 ms: exactly the base
  EXPECT_EQ(NeighborWindow(o, microseconds(10000)), 640u << 10);
  EXPECT_EQ(NeighborWindow(o, microseconds(40000)), 2560u << 10);
  EXPECT_EQ(NeighborWindow(o, microseconds(64000)), 4u << 20);  // the cap
  EXPECT_EQ(NeighborWindow(o, microseconds(1000000000)), 4u << 20);
  o.neighbor_bytes_per_rtt_ms = 0;  // adaptation off
  EXPECT_EQ(NeighborWindow(o, microseconds(40000)), 256u << 10);
  o.neighbor_bytes_per_rtt_ms = 64 << 10;
  o.neighbor_bytes = 0;  // neighbours off stay off
  EXPECT_EQ(NeighborWindow(o, microseconds(40000)), 0u);
  o.neighbor_bytes = 8u << 20;  // a base above the cap wins
  EXPECT_EQ(NeighborWindow(o, microseconds(40000)), 8u << 20);
}

TEST(MinRttWindowTest, TheSmallestOfTheLastEightSamples) {
  using std::chrono::microseconds;
  MinRttWindow w;
  EXPECT_EQ(w.Get(), microseconds(0));
  w.Add(microseconds(50000));
  EXPECT_EQ(w.Get(), microseconds(50000));
  w.Add(microseconds(40000));
  w.Add(microseconds(90000));  // a large transfer does not raise it
  EXPECT_EQ(w.Get(), microseconds(40000));
  for (int i = 0; i < 7; ++i) w.Add(microseconds(10000 + i));
  EXPECT_EQ(w.Get(), microseconds(10000));
  // Eight later samples push the 10 ms ones out: the network got slower.
  for (int i = 0; i < 8; ++i) w.Add(microseconds(30000));
  EXPECT_EQ(w.Get(), microseconds(30000));
}

TEST_F(ReadPathTest, ReadsSpanningChunksReturnExactBytes) {
  TestLayer t =
      BuildLayer({{"a", RandomBytes(1 << 20, 2), 64 << 10}, {"b", RandomBytes(100000, 3), 30000}});
  source_.Add(t.index.layer_digest, t.blob);
  MakeReader(NoReadahead());
  std::mt19937 rng(7);
  for (const auto& [path, data] : t.content) {
    const Entry& e = t.entry(path);
    for (int i = 0; i < 40; ++i) {
      uint64_t off = rng() % data.size();
      uint64_t len = 1 + rng() % (200 << 10);
      auto got = ReadFile(t.index, e, off, len);
      ASSERT_TRUE(got) << got.error().message();
      ASSERT_EQ(*got, data.substr(off, len)) << path << " at " << off << " len " << len;
    }
    // Whole file, and reads at and past the end.
    EXPECT_EQ(*ReadFile(t.index, e, 0, data.size() + 10), data);
    EXPECT_EQ(ReadFile(t.index, e, data.size(), 10)->size(), 0u);
    EXPECT_EQ(ReadFile(t.index, e, data.size() + 5, 10)->size(), 0u);
  }
  EXPECT_EQ(stats_.Snapshot().errors, 0u);
  EXPECT_EQ(stats_.Snapshot().digest_mismatches, 0u);
}

TEST_F(ReadPathTest, AdjacentChunksCoalescedIntoOneRequest) {
  TestLayer t = BuildLayer({{"a", RandomBytes(1 << 20, 4), 64 << 10}});
  source_.Add(t.index.layer_digest, t.blob);
  MakeReader(NoReadahead());
  const Entry& e = t.entry("a");
  // [10, 3*64K + 10) touches chunks 0..3.
  auto got = ReadFile(t.index, e, 10, 3 * (64 << 10));
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(*got, t.content["a"].substr(10, 3 * (64 << 10)));
  ASSERT_EQ(source_.requests(), 1);
  ByteRange r = source_.ranges()[0];
  EXPECT_EQ(r.offset, e.chunks[0].blob_offset);
  EXPECT_EQ(r.offset + r.length, e.chunks[3].blob_offset + e.chunks[3].blob_length);
  // Again: all four from the cache, no request.
  ASSERT_TRUE(ReadFile(t.index, e, 10, 3 * (64 << 10)));
  EXPECT_EQ(source_.requests(), 1);
  auto s = stats_.Snapshot();
  EXPECT_EQ(s.cache_misses, 4u);
  EXPECT_EQ(s.cache_hits, 4u);
}

// The read's own chunk in one request, the read-ahead window in a request of its own (so the
// reader does not wait behind the window's bytes).
TEST_F(ReadPathTest, SequentialReadAheadFetchesTheNextChunksInARequestOfItsOwn) {
  TestLayer t = BuildLayer({{"a", RandomBytes(1 << 20, 5), 64 << 10}});
  source_.Add(t.index.layer_digest, t.blob);
  ChunkReaderOptions o;
  o.readahead_bytes = 256 << 10;
  MakeReader(o);
  const Entry& e = t.entry("a");
  ASSERT_TRUE(ReadFile(t.index, e, 0, 64 << 10));
  ASSERT_TRUE(WaitUntil([&] { return source_.requests() >= 2; }));
  ASSERT_EQ(source_.requests(), 2);
  std::vector<ByteRange> first = {source_.ranges()[0], source_.ranges()[1]};
  std::sort(first.begin(), first.end(),
            [](const ByteRange& a, const ByteRange& b) { return a.offset < b.offset; });
  EXPECT_EQ(first[0].offset, e.chunks[0].blob_offset);
  EXPECT_EQ(first[0].length, e.chunks[0].blob_length);
  EXPECT_EQ(first[1].offset, e.chunks[1].blob_offset);
  EXPECT_EQ(first[1].offset + first[1].length, e.chunks[4].blob_offset + e.chunks[4].blob_length);
  // The read-ahead chunks are verified and cached after chunk 0 is served: wait for them.
  ASSERT_TRUE(WaitUntil([&] { return *store_->chunks().Contains(e.chunks[4].digest); }));
  for (int k = 1; k <= 4; ++k) {
    auto got = ReadFile(t.index, e, k * (64 << 10), 64 << 10);
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, t.content["a"].substr(k * (64 << 10), 64 << 10));
  }
  // Chunks 1..4 came from the cache. Reading chunk 3 left less than half a window ahead, so one
  // more request topped the window up to 512 KiB (chunks 5..7).
  EXPECT_EQ(stats_.Snapshot().cache_hits, 4u);
  ASSERT_TRUE(WaitUntil([&] { return source_.requests() >= 3; }));
  ASSERT_EQ(source_.requests(), 3);
  ByteRange r2 = source_.ranges()[2];
  EXPECT_EQ(r2.offset, e.chunks[5].blob_offset);
  EXPECT_EQ(r2.offset + r2.length, e.chunks[7].blob_offset + e.chunks[7].blob_length);
  // A random (non-sequential) read fetches only what it needs.
  ASSERT_TRUE(ReadFile(t.index, e, 900 << 10, 10));
  EXPECT_EQ(source_.requests(), 4);
  EXPECT_EQ(source_.ranges()[3].length, e.chunks[14].blob_length);
}

// A small file read from the network brings the files after it in the blob, up to the window,
// in the same request; a file whose own span fills the window brings none.
TEST_F(ReadPathTest, NeighbourReadAheadBringsTheFilesAfterASmallFile) {
  std::vector<FileSpec> files;
  for (int i = 0; i < 6; ++i) {
    files.push_back({"f" + std::to_string(i), RandomBytes(10000, 20 + i), 1 << 20});
  }
  files.push_back({"big", RandomBytes(1 << 20, 30), 64 << 10});
  TestLayer t = BuildLayer(files);
  source_.Add(t.index.layer_digest, t.blob);
  auto blob_end = [&](const std::string& path) {
    const Chunk& c = t.entry(path).chunks.back();
    return c.blob_offset + c.blob_length;
  };
  const uint64_t f0 = t.entry("f0").chunks[0].blob_offset;
  ChunkReaderOptions o = NoReadahead();
  o.neighbor_bytes = blob_end("f3") - f0;  // f0 and the three files after it
  MakeReader(o);
  auto read_whole = [&](const std::string& path) {
    auto got = ReadFile(t.index, t.entry(path), 0, t.content[path].size());
    ASSERT_TRUE(got) << got.error().message();
    EXPECT_EQ(*got, t.content[path]) << path;
  };
  read_whole("f0");
  ASSERT_EQ(source_.requests(), 1);
  EXPECT_EQ(source_.ranges()[0].offset, f0);
  EXPECT_EQ(source_.ranges()[0].offset + source_.ranges()[0].length, blob_end("f3"));
  // The neighbours are verified and cached after f0 is served: wait for the last one.
  ASSERT_TRUE(
      WaitUntil([&] { return *store_->chunks().Contains(t.entry("f3").chunks[0].digest); }));
  for (const char* path : {"f1", "f2", "f3"}) read_whole(path);
  EXPECT_EQ(source_.requests(), 1);
  EXPECT_EQ(stats_.Snapshot().cache_hits, 3u);
  // f4 starts a window of its own: f4 and f5 (big's first chunk does not fit in it).
  read_whole("f4");
  ASSERT_EQ(source_.requests(), 2);
  EXPECT_EQ(source_.ranges()[1].offset, t.entry("f4").chunks[0].blob_offset);
  EXPECT_EQ(source_.ranges()[1].offset + source_.ranges()[1].length, blob_end("f5"));
  // A chunk of a file larger than the window: that chunk alone.
  ASSERT_TRUE(ReadFile(t.index, t.entry("big"), 0, 100));
  ASSERT_TRUE(WaitUntil([&] { return source_.requests() >= 3; }));
  ASSERT_EQ(source_.requests(), 3);
  EXPECT_EQ(source_.ranges()[2].offset, t.entry("big").chunks[0].blob_offset);
  EXPECT_EQ(source_.ranges()[2].length, t.entry("big").chunks[0].blob_length);
  EXPECT_EQ(stats_.Snapshot().digest_mismatches, 0u);
}

// ...and the files stored just before it, up to neighbor_back_bytes.
TEST_F(ReadPathTest, NeighbourReadAheadAlsoBringsTheFilesJustBefore) {
  std::vector<FileSpec> files;
  for (int i = 0; i < 4; ++i) {
    files.push_back({"f" + std::to_string(i), RandomBytes(10000, 50 + i), 1 << 20});
  }
  TestLayer t = BuildLayer(files);
  source_.Add(t.index.layer_digest, t.blob);
  auto start = [&](const std::string& path) { return t.entry(path).chunks[0].blob_offset; };
  ChunkReaderOptions o = NoReadahead();
  o.neighbor_bytes = 1 << 20;
  o.neighbor_back_bytes = start("f2") - start("f1");  // f1 fits, f0 does not
  MakeReader(o);
  auto got = ReadFile(t.index, t.entry("f2"), 0, 10000);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(*got, t.content["f2"]);
  ASSERT_EQ(source_.requests(), 1);
  const Chunk& last = t.entry("f3").chunks[0];
  EXPECT_EQ(source_.ranges()[0].offset, start("f1"));
  EXPECT_EQ(source_.ranges()[0].offset + source_.ranges()[0].length,
            last.blob_offset + last.blob_length);
  ASSERT_TRUE(
      WaitUntil([&] { return *store_->chunks().Contains(t.entry("f1").chunks[0].digest); }));
  EXPECT_TRUE(*store_->chunks().Contains(t.entry("f1").chunks[0].digest));
  EXPECT_FALSE(*store_->chunks().Contains(t.entry("f0").chunks[0].digest));
}

TEST_F(ReadPathTest, ConcurrentReadersOfOneChunkShareOneFetch) {
  TestLayer t = BuildLayer({{"a", RandomBytes(256 << 10, 6), 64 << 10}});
  source_.Add(t.index.layer_digest, t.blob);
  source_.SetDelay(milliseconds(300));
  MakeReader(NoReadahead());
  const Entry& e = t.entry("a");
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 32; ++i) {
    threads.emplace_back([&, i] {
      auto got = ReadFile(t.index, e, 70000 + i, 1000);
      if (got && *got == t.content["a"].substr(70000 + i, 1000)) ok++;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 32);
  EXPECT_EQ(source_.requests(), 1);
  EXPECT_EQ(stats_.Snapshot().chunks_fetched, 1u);
}

TEST_F(ReadPathTest, CorruptChunkIsNeverServed) {
  TestLayer t = BuildLayer({{"a", RandomBytes(256 << 10, 8), 64 << 10}});
  source_.Add(t.index.layer_digest, t.blob);
  const Entry& e = t.entry("a");
  const Chunk& c2 = e.chunks[2];
  source_.Corrupt(c2.blob_offset + c2.blob_length / 2, /*reads=*/-1);
  MakeReader(NoReadahead());
  auto bad = ReadFile(t.index, e, 2 * (64 << 10) + 5, 100);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), EIO);
  EXPECT_NE(bad.error().message().find("digest mismatch"), std::string::npos)
      << bad.error().message();
  EXPECT_NE(bad.error().message().find(c2.digest.str()), std::string::npos);
  EXPECT_EQ(source_.requests(), 2);  // the fetch and one refetch
  // No mirror served the bad bytes: the refetch is routed as the fetch was.
  EXPECT_EQ(source_.skips(), (std::vector<bool>{false, false}));
  auto s = stats_.Snapshot();
  EXPECT_EQ(s.digest_mismatches, 2u);
  EXPECT_EQ(s.errors, 1u);
  ASSERT_TRUE(store_->chunks().Flush());
  EXPECT_FALSE(*store_->chunks().Contains(c2.digest));
  // Other chunks of the file are fine.
  EXPECT_EQ(*ReadFile(t.index, e, 0, 100), t.content["a"].substr(0, 100));
  // A transient flip (first read only) is healed by the refetch.
  TestLayer t2 = BuildLayer({{"b", RandomBytes(64 << 10, 9), 64 << 10}});
  source_.Add(t2.index.layer_digest, t2.blob);
  const Chunk& b0 = t2.entry("b").chunks[0];
  source_.Corrupt(b0.blob_offset + 10, 1);
  auto healed = ReadFile(t2.index, t2.entry("b"), 0, 64 << 10);
  ASSERT_TRUE(healed) << healed.error().message();
  EXPECT_EQ(*healed, t2.content["b"]);
}

// A mirror serves a chunk with wrong bytes every time: the refetch skips mirrors, gets the
// registry's bytes, and the read succeeds; the chunk is cached.
TEST_F(ReadPathTest, ChunkAMirrorServesWrongIsRefetchedSkippingMirrors) {
  TestLayer t = BuildLayer({{"a", RandomBytes(256 << 10, 12), 64 << 10}});
  source_.Add(t.index.layer_digest, t.blob);
  source_.SetMirror();
  const Entry& e = t.entry("a");
  const Chunk& c1 = e.chunks[1];
  source_.Corrupt(c1.blob_offset + c1.blob_length / 3, /*reads=*/-1);
  MakeReader(NoReadahead());
  auto got = ReadFile(t.index, e, 0, 3 * (64 << 10));
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(*got, t.content["a"].substr(0, 3 * (64 << 10)));
  // One coalesced read of chunks 0-2 from the mirror, then chunk 1 alone, skipping mirrors.
  auto ranges = source_.ranges();
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0].offset, e.chunks[0].blob_offset);
  EXPECT_EQ(ranges[1].offset, c1.blob_offset);
  EXPECT_EQ(ranges[1].length, c1.blob_length);
  EXPECT_EQ(source_.skips(), (std::vector<bool>{false, true}));
  auto s = stats_.Snapshot();
  EXPECT_EQ(s.digest_mismatches, 1u);
  EXPECT_EQ(s.errors, 0u);
  ASSERT_TRUE(store_->chunks().Flush());
  EXPECT_TRUE(*store_->chunks().Contains(c1.digest));
  // Read again: from the cache, no request.
  EXPECT_EQ(*ReadFile(t.index, e, 64 << 10, 100), t.content["a"].substr(64 << 10, 100));
  EXPECT_EQ(source_.requests(), 2);
}

TEST_F(ReadPathTest, SilentSourceFailsWithinTheBoundThenRecovers) {
  TestLayer t = BuildLayer({{"a", RandomBytes(128 << 10, 10), 64 << 10}});
  source_.Add(t.index.layer_digest, t.blob);
  ChunkReaderOptions o = NoReadahead();
  o.timeout = milliseconds(500);
  MakeReader(o);
  const Entry& e = t.entry("a");
  source_.SetSilent();
  auto t0 = SteadyClock::now();
  auto got = ReadFile(t.index, e, 0, 100);
  auto elapsed = SteadyClock::now() - t0;
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), EIO);
  EXPECT_NE(got.error().message().find("timed out after 0.5s"), std::string::npos)
      << got.error().message();
  EXPECT_GE(elapsed, milliseconds(500));
  EXPECT_LT(elapsed, milliseconds(1500));
  // A second reader joins the blocked fetch and times out too; still one request.
  EXPECT_FALSE(ReadFile(t.index, e, 10, 100));
  EXPECT_EQ(source_.requests(), 1);
  EXPECT_EQ(stats_.Snapshot().timeouts, 2u);
  // The registry "comes back" by resetting the stuck connection: the fetch fails, and the next
  // read fetches again and succeeds.
  source_.Release(/*error=*/true);
  // The failed fetch is over (its flight completed) once no on-demand fetch is in flight.
  ASSERT_TRUE(WaitUntil([&] { return reader_->OnDemandIdleFor() > std::chrono::nanoseconds(0); }));
  auto again = ReadFile(t.index, e, 0, 100);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(*again, t.content["a"].substr(0, 100));
  // A silent source released normally: the blocked fetch completes into the cache.
  source_.SetSilent();
  EXPECT_FALSE(ReadFile(t.index, e, 70000, 100));
  source_.Release(/*error=*/false);
  auto late = ReadFile(t.index, e, 70000, 100);
  ASSERT_TRUE(late) << late.error().message();
  EXPECT_EQ(*late, t.content["a"].substr(70000, 100));
}

TEST_F(ReadPathTest, ZeroChunksFetchNothing) {
  std::string data = RandomBytes(64 << 10, 11) + std::string(128 << 10, '\0');
  TestLayer t = BuildLayer({{"sparse", data, 64 << 10, false, {1, 2}}});
  source_.Add(t.index.layer_digest, t.blob);
  MakeReader(NoReadahead());
  const Entry& e = t.entry("sparse");
  auto got = ReadFile(t.index, e, 64 << 10, 128 << 10);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, std::string(128 << 10, '\0'));
  EXPECT_EQ(source_.requests(), 0);
  EXPECT_EQ(stats_.Snapshot().zero_chunks, 2u);
  EXPECT_EQ(*ReadFile(t.index, e, 0, data.size()), data);
  EXPECT_EQ(source_.requests(), 1);
}

TEST_F(ReadPathTest, StatsAreExactForAScriptedSequence) {
  std::string data = RandomBytes(128 << 10, 12) + std::string(64 << 10, '\0');
  TestLayer t = BuildLayer({{"a", data, 64 << 10, false, {2}}});
  source_.Add(t.index.layer_digest, t.blob);
  MakeReader(NoReadahead());
  const Entry& e = t.entry("a");
  ASSERT_TRUE(ReadFile(t.index, e, 0, 128 << 10));         // 2 misses, 1 request
  ASSERT_TRUE(ReadFile(t.index, e, 100, 64 << 10));        // 2 hits
  ASSERT_TRUE(ReadFile(t.index, e, 128 << 10, 64 << 10));  // 1 zero chunk
  source_.SetFailAll(true);
  TestLayer t2 = BuildLayer({{"b", RandomBytes(1000, 13), 1000}});
  EXPECT_FALSE(ReadFile(t2.index, t2.entry("b"), 0, 10));  // 1 miss, 1 request, 1 error
  auto s = stats_.Snapshot();
  const uint64_t span = e.chunks[1].blob_offset + e.chunks[1].blob_length - e.chunks[0].blob_offset;
  EXPECT_EQ(s.requests, 2u);
  EXPECT_EQ(s.bytes_fetched, span);
  EXPECT_EQ(s.prefetch_requests, 0u);
  EXPECT_EQ(s.cache_misses, 3u);
  EXPECT_EQ(s.cache_hits, 2u);
  EXPECT_EQ(s.zero_chunks, 1u);
  EXPECT_EQ(s.chunks_fetched, 2u);
  EXPECT_EQ(s.errors, 1u);
  EXPECT_EQ(s.timeouts, 0u);
  EXPECT_EQ(s.digest_mismatches, 0u);
  EXPECT_GT(s.latency_p99_us, 0u);
  EXPECT_GE(s.latency_p99_us, s.latency_p50_us);

  // JSON and the state file round-trip exactly.
  auto back = MountStatsFromJson(MountStatsToJson(s));
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, s);
  std::string state_dir = dir_.path() + "/run";
  std::string mp = dir_.path() + "/mnt";
  ASSERT_TRUE(MakeDirs(mp));
  auto path = StateFileForMountpoint(mp + "/./", state_dir);
  ASSERT_TRUE(path) << path.error().message();
  EXPECT_EQ(*path, StateFileForCanonicalMountpoint(mp, state_dir));
  EXPECT_EQ(path->rfind(state_dir + "/mounts/", 0), 0u);
  MountStateFile f{.mountpoint = mp,
                   .image = "localhost:5000/x:1",
                   .pid = 42,
                   .updated_unix = 1700000000,
                   .stats = s};
  ASSERT_TRUE(WriteMountStateFile(*path, f));
  auto read = ReadMountStateFile(*path);
  ASSERT_TRUE(read) << read.error().message();
  EXPECT_EQ(read->mountpoint, mp);
  EXPECT_EQ(read->image, "localhost:5000/x:1");
  EXPECT_EQ(read->pid, 42);
  EXPECT_EQ(read->stats, s);
  EXPECT_EQ(ReadMountStateFile(state_dir + "/mounts/none.json").error().code(), ENOENT);
  EXPECT_EQ(MountStateFromJson("{\"requests\": -1}").error().code(), EINVAL);
  EXPECT_EQ(DefaultStateDir(0, "/x"), "/run/hoist");
  EXPECT_EQ(DefaultStateDir(1000, "/run/user/1000"), "/run/user/1000/hoist");
  EXPECT_EQ(DefaultStateDir(1000, ""), "/tmp/hoist-1000");
}

TEST(LatencyHistogramTest, Quantiles) {
  LatencyHistogram h;
  EXPECT_EQ(h.Quantile(0.5), 0u);
  for (int i = 0; i < 98; ++i) h.Record(100);  // bucket [64, 128)
  h.Record(5000);                              // [4096, 8192)
  h.Record(5000);
  EXPECT_EQ(h.Quantile(0.5), 127u);
  EXPECT_EQ(h.Quantile(0.98), 127u);
  EXPECT_EQ(h.Quantile(0.99), 8191u);
}

TEST_F(ReadPathTest, PrefetchAllThenReadsWorkWithTheSourceGone) {
  TestLayer t = BuildLayer({{"a", RandomBytes(300 << 10, 14), 64 << 10},
                            {"b", RandomBytes(50000, 15), 64 << 10, true},
                            {"z", std::string(64 << 10, '\0'), 64 << 10, false, {0}}});
  source_.Add(t.index.layer_digest, t.blob);
  MakeReader(NoReadahead());
  auto layer = std::make_shared<const LayerIndex>(t.index);
  prefetcher_ = std::make_unique<Prefetcher>(reader_.get(), std::vector{layer},
                                             PrefetcherOptions{.mode = PrefetchMode::kAll});
  prefetcher_->Start();
  ASSERT_TRUE(prefetcher_->WaitDone(milliseconds(10000)));
  PrefetchProgress p = prefetcher_->Progress();
  EXPECT_EQ(p.image_bytes, (300u << 10) + 50000u);
  EXPECT_EQ(p.local_bytes, p.image_bytes);
  EXPECT_EQ(stats_.Snapshot().prefetch_state, "done");
  EXPECT_DOUBLE_EQ(stats_.Snapshot().LocalShare(), 1.0);
  ASSERT_TRUE(store_->chunks().Flush());
  int before = source_.requests();
  EXPECT_EQ(stats_.Snapshot().prefetch_requests, static_cast<uint64_t>(before));
  source_.SetFailAll(true);
  for (const auto& [path, data] : t.content) {
    auto got = ReadFile(*layer,
                        layer->entries[path == "a"   ? 0
                                       : path == "b" ? 1
                                                     : 2],
                        0, data.size());
    ASSERT_TRUE(got) << got.error().message();
    EXPECT_EQ(*got, data);
  }
  EXPECT_EQ(source_.requests(), before);
  EXPECT_EQ(stats_.Snapshot().errors, 0u);
}

TEST_F(ReadPathTest, PriorityPrefetchFetchesOnlyMarkedFiles) {
  TestLayer t = BuildLayer({{"a", RandomBytes(200 << 10, 16), 64 << 10},
                            {"b", RandomBytes(100 << 10, 17), 64 << 10, true}});
  source_.Add(t.index.layer_digest, t.blob);
  MakeReader(NoReadahead());
  auto layer = std::make_shared<const LayerIndex>(t.index);
  prefetcher_ = std::make_unique<Prefetcher>(reader_.get(), std::vector{layer},
                                             PrefetcherOptions{.mode = PrefetchMode::kPriority});
  prefetcher_->Start();
  ASSERT_TRUE(prefetcher_->WaitDone(milliseconds(10000)));
  for (const Chunk& c : t.entry("b").chunks) EXPECT_TRUE(*store_->chunks().Contains(c.digest));
  for (const Chunk& c : t.entry("a").chunks) EXPECT_FALSE(*store_->chunks().Contains(c.digest));
  EXPECT_EQ(prefetcher_->Progress().local_bytes, 100u << 10);
  EXPECT_EQ(ParsePrefetchMode("all").value(), PrefetchMode::kAll);
  EXPECT_EQ(ParsePrefetchMode("some").error().code(), EINVAL);
}

TEST_F(ReadPathTest, WholeImagePassWaitsForTheStartDelayButThePriorityPassDoesNot) {
  TestLayer t = BuildLayer({{"a", RandomBytes(200 << 10, 40), 64 << 10},
                            {"b", RandomBytes(100 << 10, 41), 64 << 10, true}});
  source_.Add(t.index.layer_digest, t.blob);
  MakeReader(NoReadahead());
  auto layer = std::make_shared<const LayerIndex>(t.index);
  auto local = [&](const std::string& path) {
    for (const Chunk& c : t.entry(path).chunks) {
      if (!*store_->chunks().Contains(c.digest)) return false;
    }
    return true;
  };
  const milliseconds delay(1500);
  const auto started = std::chrono::steady_clock::now();
  prefetcher_ = std::make_unique<Prefetcher>(
      reader_.get(), std::vector{layer},
      PrefetcherOptions{.mode = PrefetchMode::kAll, .start_delay = delay});
  prefetcher_->Start();
  // The marked file comes at once (well inside the delay on any machine: no wait is involved).
  ASSERT_TRUE(WaitUntil([&] { return local("b"); }));
  const bool a_local = local("a");
  if (std::chrono::steady_clock::now() - started < delay) {
    EXPECT_FALSE(a_local) << "the whole-image pass fetched before its start delay";
  }
  ASSERT_TRUE(prefetcher_->WaitDone(milliseconds(30000)));
  // Done, so the whole-image pass ran: never before the delay had passed since Start.
  EXPECT_GE(std::chrono::steady_clock::now() - started, delay);
  EXPECT_TRUE(local("a"));
  EXPECT_EQ(prefetcher_->Progress().local_bytes, (300u << 10));
}

TEST_F(ReadPathTest, PrefetchHonoursTheBandwidthCapAndStopsPromptly) {
  // ~2 MiB of incompressible chunks, 256 KiB per request, capped at 1 MiB/s: the first request
  // is free, the other ~1.75 MiB take ~1.75 s.
  TestLayer t = BuildLayer({{"a", RandomBytes(2 << 20, 18), 64 << 10}});
  source_.Add(t.index.layer_digest, t.blob);
  MakeReader(NoReadahead());
  auto layer = std::make_shared<const LayerIndex>(t.index);
  PrefetcherOptions po{.mode = PrefetchMode::kAll,
                       .bandwidth_bytes_per_sec = 1 << 20,
                       .max_request_bytes = 256 << 10};
  auto t0 = SteadyClock::now();
  prefetcher_ = std::make_unique<Prefetcher>(reader_.get(), std::vector{layer}, po);
  prefetcher_->Start();
  ASSERT_TRUE(prefetcher_->WaitDone(milliseconds(10000)));
  double secs = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  EXPECT_GE(secs, 1.4);
  EXPECT_LE(secs, 3.5);
  EXPECT_EQ(stats_.Snapshot().prefetch_bytes, t.index.entries[0].chunks.back().blob_offset +
                                                  t.index.entries[0].chunks.back().blob_length -
                                                  t.index.entries[0].chunks.front().blob_offset);

  // Stop while it waits for tokens: prompt.
  TestLayer t2 = BuildLayer({{"b", RandomBytes(2 << 20, 19), 64 << 10}});
  source_.Add(t2.index.layer_digest, t2.blob);
  auto layer2 = std::make_shared<const LayerIndex>(t2.index);
  po.bandwidth_bytes_per_sec = 64 << 10;
  Prefetcher slow(reader_.get(), {layer2}, po);
  const uint64_t before = stats_.Snapshot().prefetch_bytes;
  slow.Start();
  // Its first request (free) is done; the second waits ~4 s for 256 KiB of tokens at 64 KiB/s.
  ASSERT_TRUE(WaitUntil([&] { return stats_.Snapshot().prefetch_bytes > before; }));
  auto s0 = SteadyClock::now();
  slow.Stop();
  EXPECT_LT(SteadyClock::now() - s0, milliseconds(300));
  EXPECT_FALSE(slow.Progress().done);
}

// The whole-image pass waits while an on-demand fetch is in flight (so it does not compete with
// the reads a starting program is blocked on), but only up to yield_max.
TEST_F(ReadPathTest, WholeImagePrefetchYieldsToOnDemandReadsUpToABound) {
  TestLayer busy = BuildLayer({{"r", RandomBytes(64 << 10, 40), 64 << 10}});
  TestLayer bg = BuildLayer({{"p", RandomBytes(256 << 10, 41), 64 << 10}});
  source_.Add(busy.index.layer_digest, busy.blob);
  source_.Add(bg.index.layer_digest, bg.blob);
  ChunkReaderOptions o = NoReadahead();
  o.timeout = milliseconds(10000);
  MakeReader(o);
  auto bg_layer = std::vector{std::make_shared<const LayerIndex>(bg.index)};
  auto all_local = [&] {
    for (const Chunk& c : bg.entry("p").chunks) {
      if (!*store_->chunks().Contains(c.digest)) return false;
    }
    return true;
  };
  // 60 s: far longer than the test holds the read, so only a pass that does not yield sends.
  for (milliseconds yield_max : {milliseconds(60000), milliseconds(100)}) {
    SCOPED_TRACE("yield_max " + std::to_string(yield_max.count()) + " ms");
    source_.SetSilent(0, busy.index.layer_digest.str());
    Result<std::string> got = std::string();
    std::thread reader([&] { got = ReadFile(busy.index, busy.entry("r"), 0, 100); });
    ASSERT_TRUE(WaitUntil([&] { return source_.blocked() == 1; }));
    const int before = source_.requests();
    prefetcher_ = std::make_unique<Prefetcher>(
        reader_.get(), bg_layer,
        PrefetcherOptions{
            .mode = PrefetchMode::kAll, .yield_quiet = milliseconds(20), .yield_max = yield_max});
    prefetcher_->Start();
    if (yield_max > milliseconds(1000)) {
      // The pass is running, and while the read is blocked it sends nothing. (An absence needs
      // a window to be seen in; 300 ms of it, far inside yield_max, whatever the machine's
      // load: a correct pass cannot fail this.)
      ASSERT_TRUE(WaitUntil([&] { return stats_.Snapshot().prefetch_state == "all"; }));
      std::this_thread::sleep_for(milliseconds(300));
      EXPECT_EQ(source_.requests(), before);
      EXPECT_FALSE(all_local());
      source_.Release();
    } else {
      // It gives up waiting after 100 ms and completes while the read is still blocked.
      ASSERT_TRUE(prefetcher_->WaitDone(milliseconds(30000)));
      EXPECT_EQ(source_.blocked(), 1);
      EXPECT_TRUE(all_local());
      source_.Release();
    }
    reader.join();
    ASSERT_TRUE(got) << got.error().message();
    EXPECT_EQ(*got, busy.content["r"].substr(0, 100));
    ASSERT_TRUE(prefetcher_->WaitDone(milliseconds(30000)));
    EXPECT_TRUE(all_local());
    prefetcher_.reset();
    // The next round starts from an empty cache for `bg`, and `r` is cached: use a new store.
    reader_.reset();
    streams_.reset();
    store_.reset();
    auto store = Store::Open(dir_.path() + "/cache-" + std::to_string(yield_max.count()));
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(*store);
    MakeReader(o);
  }
}

TEST_F(ReadPathTest, OnDemandReadsDoNotQueueBehindPrefetch) {
  // Prefetch blocked in the network (its layer's blob hangs) must not delay an on-demand read
  // of another layer.
  TestLayer slow = BuildLayer({{"s", RandomBytes(64 << 10, 20), 64 << 10}});
  TestLayer fast = BuildLayer({{"f", RandomBytes(64 << 10, 21), 64 << 10}});
  source_.Add(slow.index.layer_digest, slow.blob);
  source_.Add(fast.index.layer_digest, fast.blob);
  ChunkReaderOptions o = NoReadahead();
  o.timeout = milliseconds(2000);
  o.fetch_threads = 1;
  MakeReader(o);
  source_.SetSilent(0, slow.index.layer_digest.str());
  prefetcher_ = std::make_unique<Prefetcher>(
      reader_.get(), std::vector{std::make_shared<const LayerIndex>(slow.index)},
      PrefetcherOptions{.mode = PrefetchMode::kAll});
  prefetcher_->Start();
  ASSERT_TRUE(WaitUntil([&] { return source_.blocked() == 1; }));
  auto t0 = SteadyClock::now();
  auto got = ReadFile(fast.index, fast.entry("f"), 0, 100);
  EXPECT_LT(SteadyClock::now() - t0, milliseconds(500));
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(*got, fast.content["f"].substr(0, 100));
  source_.Release();
  prefetcher_->Stop();
}

TEST_F(ReadPathTest, LyingIndexFailsWithEioAndLeavesNoStuckFetch) {
  TestLayer t = BuildLayer({{"a", RandomBytes(192 << 10, 22), 64 << 10}});
  source_.Add(t.index.layer_digest, t.blob);
  ChunkReaderOptions o = NoReadahead();
  o.timeout = milliseconds(2000);
  o.max_chunk_size = 100 << 10;
  MakeReader(o);
  // A gap: chunk 2 claims to start past where chunk 1 ends.
  Entry gap = t.entry("a");
  gap.chunks[2].file_offset += 10;
  auto got = ReadFile(t.index, gap, 0, 192 << 10);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), EIO);
  EXPECT_NE(got.error().message().find("no chunk covering offset 131072"), std::string::npos)
      << got.error().message();
  // The flights this read led (chunks 0, 1) were still fetched: the real entry reads at once.
  auto t0 = SteadyClock::now();
  auto good = ReadFile(t.index, t.entry("a"), 0, 192 << 10);
  ASSERT_TRUE(good) << good.error().message();
  EXPECT_EQ(*good, t.content["a"]);
  EXPECT_LT(SteadyClock::now() - t0, milliseconds(1000));
  // A size bomb is refused before anything is fetched.
  Entry bomb = t.entry("a");
  bomb.chunks[0].digest = Digest::Of("bomb");
  bomb.chunks[0].size = 1ull << 40;
  bomb.size = 1ull << 41;
  int before = source_.requests();
  auto refused = ReadFile(t.index, bomb, 0, 100);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("exceed the chunk cap"), std::string::npos);
  EXPECT_EQ(source_.requests(), before);
  // A chunk with no digest is never served.
  Entry nodigest = t.entry("a");
  nodigest.chunks[0].digest = Digest();
  EXPECT_EQ(ReadFile(t.index, nodigest, 0, 100).error().code(), EIO);
}

// --- unconverted layers ---

struct StreamTestLayer {
  LayerIndex index;
  std::string blob;
  std::string stream;
  std::vector<std::string> files;
};

// A tar+gzip-shaped layer: the "stream" is files separated by 512-byte headers, gzip'd whole.
StreamTestLayer BuildStreamLayer(LayerFormat format, int files, size_t file_size,
                                 bool file_digests) {
  StreamTestLayer t;
  t.index.format = format;
  for (int i = 0; i < files; ++i) {
    t.stream += std::string(512, 'H');
    std::string data = RandomBytes(file_size, 100 + i);
    Entry e;
    e.path = "f" + std::to_string(i);
    e.type = EntryType::kRegular;
    e.size = data.size();
    if (file_digests) e.digest = Digest::Of(data);
    Chunk c{.file_offset = 0,
            .size = data.size(),
            .inner_offset = t.stream.size(),
            .encoding = ChunkEncoding::kStream};
    if (format == LayerFormat::kTar) {
      c = Chunk{.file_offset = 0,
                .size = data.size(),
                .blob_offset = t.stream.size(),
                .blob_length = data.size(),
                .encoding = ChunkEncoding::kRaw};
    }
    e.chunks.push_back(c);
    t.stream += data;
    t.files.push_back(data);
    t.index.entries.push_back(e);
  }
  t.stream += std::string(1024, '\0');
  if (format == LayerFormat::kTarGzip) {
    t.blob = Gzip(t.stream);
  } else if (format == LayerFormat::kTarZstd) {
    t.blob = ZstdFrame(t.stream);
  } else {
    t.blob = t.stream;
  }
  t.index.layer_digest = Digest::Of(t.blob);
  t.index.blob_size = t.blob.size();
  return t;
}

TEST_F(ReadPathTest, UnconvertedLayersAreServedAfterTheirFullFetch) {
  for (LayerFormat f : {LayerFormat::kTarGzip, LayerFormat::kTarZstd, LayerFormat::kTar}) {
    StreamTestLayer t = BuildStreamLayer(f, 8, 100000, /*file_digests=*/false);
    source_.Add(t.index.layer_digest, t.blob);
    MakeReader(NoReadahead());
    for (int i = 7; i >= 0; --i) {
      auto got = ReadFile(t.index, t.index.entries[i], 1000, 50000);
      ASSERT_TRUE(got) << got.error().message();
      EXPECT_EQ(*got, t.files[i].substr(1000, 50000));
    }
    StreamProgress p = streams_->Get(t.index)->Progress();
    EXPECT_TRUE(p.verified);
    EXPECT_EQ(p.blob_bytes, t.blob.size());
    EXPECT_EQ(p.stream_bytes, t.stream.size());
  }
}

// Issues 17 and 19: an unconverted layer fetched whole counts its blob as fetched, once, and is
// local in full once verified (with no prefetch at all); reads the source serves from a local
// blob file are store reads, never "fetched". Exact per layer and in all.
TEST_F(ReadPathTest, StatsCountWholeStreamFetchesAndLocalStoreReadsApart) {
  StreamTestLayer net = BuildStreamLayer(LayerFormat::kTarGzip, 8, 100000, false);
  StreamTestLayer here = BuildStreamLayer(LayerFormat::kTarZstd, 5, 70000, false);
  source_.Add(net.index.layer_digest, net.blob);
  source_.Add(here.index.layer_digest, here.blob);
  source_.SetLocal(here.index.layer_digest);
  const std::vector<Digest> digests = {net.index.layer_digest, here.index.layer_digest};
  stats_.SetLayers(digests);
  MakeReader(NoReadahead());
  for (const StreamTestLayer* t : {&net, &here}) {
    for (size_t i = 0; i < t->files.size(); ++i) {
      auto got = ReadFile(t->index, t->index.entries[i], 0, t->files[i].size());
      ASSERT_TRUE(got) << got.error().message();
      EXPECT_TRUE(*got == t->files[i]);
    }
  }
  // The scan alone (prefetch=none) sets the image bytes.
  prefetcher_ =
      std::make_unique<Prefetcher>(reader_.get(),
                                   std::vector{std::make_shared<const LayerIndex>(net.index),
                                               std::make_shared<const LayerIndex>(here.index)},
                                   PrefetcherOptions{.mode = PrefetchMode::kNone});
  prefetcher_->Start();
  ASSERT_TRUE(prefetcher_->WaitDone(milliseconds(10000)));
  const auto pieces = [](const std::string& blob) {
    return static_cast<uint64_t>((blob.size() + (64 << 10) - 1) / (64 << 10));
  };
  const MountStatsSnapshot s = stats_.Snapshot();
  EXPECT_EQ(s.requests, pieces(net.blob));
  EXPECT_EQ(s.bytes_fetched, net.blob.size());
  EXPECT_EQ(s.store_requests, pieces(here.blob));
  EXPECT_EQ(s.store_bytes, here.blob.size());
  EXPECT_EQ(s.image_bytes, 8u * 100000u + 5u * 70000u);
  EXPECT_EQ(s.local_bytes, s.image_bytes);
  ASSERT_EQ(s.layers.size(), 2u);
  EXPECT_EQ(s.layers[0], (LayerStatsSnapshot{.digest = net.index.layer_digest,
                                             .requests = pieces(net.blob),
                                             .bytes_fetched = net.blob.size(),
                                             .image_bytes = 800000,
                                             .local_bytes = 800000}));
  EXPECT_EQ(s.layers[1], (LayerStatsSnapshot{.digest = here.index.layer_digest,
                                             .store_requests = pieces(here.blob),
                                             .store_bytes = here.blob.size(),
                                             .image_bytes = 350000,
                                             .local_bytes = 350000}));
  EXPECT_DOUBLE_EQ(s.layers[0].LocalShare(), 1.0);
  auto back = MountStatsFromJson(MountStatsToJson(s));
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, s);
  // A later daemon carries every counter on, per layer too.
  MountStats next;
  next.SetLayers(digests);
  next.Carry(s);
  EXPECT_EQ(next.Snapshot().layers[1].store_bytes, here.blob.size());
  EXPECT_EQ(next.Snapshot().store_bytes, here.blob.size());
  EXPECT_EQ(next.Snapshot().layers[0].bytes_fetched, net.blob.size());
}

TEST_F(ReadPathTest, UnconvertedLayerReadWaitsOnlyForItsRangeWhenFilesHaveDigests) {
  StreamTestLayer t = BuildStreamLayer(LayerFormat::kTar, 8, 100000, /*file_digests=*/true);
  source_.Add(t.index.layer_digest, t.blob);
  ChunkReaderOptions o = NoReadahead();
  o.timeout = milliseconds(1000);
  MakeReader(o);
  // Everything after the first 256 KiB of the blob hangs.
  source_.SetSilent(256 << 10);
  auto got = ReadFile(t.index, t.index.entries[0], 0, 100000);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(*got, t.files[0]);
  EXPECT_FALSE(streams_->Get(t.index)->Progress().verified);
  // A file beyond the stall: EIO within the bound.
  auto t0 = SteadyClock::now();
  auto late = ReadFile(t.index, t.index.entries[7], 0, 100);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code(), EIO);
  EXPECT_LT(SteadyClock::now() - t0, milliseconds(2000));
  EXPECT_EQ(stats_.Snapshot().timeouts, 1u);
  // The registry comes back: the same read succeeds.
  source_.Release();
  auto again = ReadFile(t.index, t.index.entries[7], 0, 100);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(*again, t.files[7].substr(0, 100));
}

TEST_F(ReadPathTest, CorruptUnconvertedLayerIsNeverServed) {
  StreamTestLayer t = BuildStreamLayer(LayerFormat::kTar, 4, 50000, /*file_digests=*/false);
  source_.Add(t.index.layer_digest, t.blob);
  source_.Corrupt(512 + 100, -1);  // inside f0
  MakeReader(NoReadahead());
  auto got = ReadFile(t.index, t.index.entries[1], 0, 100);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), EIO);
  EXPECT_NE(got.error().message().find("digest mismatch"), std::string::npos)
      << got.error().message();
}

TEST_F(ReadPathTest, PriorityPrefetchKeepsSeveralRequestsInFlight) {
  // 8 marked chunks of 64 KiB, one per request: with every read held, exactly
  // priority_requests of them are in the source at once; the unmarked file is not fetched in
  // the priority pass, and it is then fetched one request at a time.
  TestLayer t = BuildLayer({{"hot", RandomBytes(512 << 10, 40), 64 << 10, true},
                            {"cold", RandomBytes(256 << 10, 41), 64 << 10}});
  source_.Add(t.index.layer_digest, t.blob);
  MakeReader(NoReadahead());
  auto layer = std::make_shared<const LayerIndex>(t.index);
  source_.SetSilent();
  PrefetcherOptions po{.mode = PrefetchMode::kAll, .max_request_bytes = 64 << 10};
  ASSERT_EQ(po.priority_requests, 4);
  prefetcher_ = std::make_unique<Prefetcher>(reader_.get(), std::vector{layer}, po);
  prefetcher_->Start();
  ASSERT_TRUE(WaitUntil([&] { return source_.blocked() >= 4; }));
  const uint64_t cold_start = t.entry("cold").chunks.front().blob_offset;
  for (const ByteRange& r : source_.ranges()) EXPECT_LT(r.offset, cold_start);
  source_.Release();
  ASSERT_TRUE(prefetcher_->WaitDone(milliseconds(30000)));
  // Never more than four at once (every read was held until the release, so a fifth would have
  // been counted), and every hot request came before the first cold one.
  EXPECT_EQ(source_.max_blocked(), 4);
  const std::vector<ByteRange> ranges = source_.ranges();
  size_t hot = 0;
  while (hot < ranges.size() && ranges[hot].offset < cold_start) ++hot;
  EXPECT_EQ(hot, t.entry("hot").chunks.size());
  for (size_t i = hot; i < ranges.size(); ++i) EXPECT_GE(ranges[i].offset, cold_start) << i;
  for (const Chunk& c : t.entry("hot").chunks) EXPECT_TRUE(*store_->chunks().Contains(c.digest));
  for (const Chunk& c : t.entry("cold").chunks) EXPECT_TRUE(*store_->chunks().Contains(c.digest));
}

}  // namespace
}  // namespace hoist
