#include "index/store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "base/file_util.h"
#include "tests/harness/wait.h"
#include "tests/index/store_test_util.h"

namespace hoist {
namespace {

using testutil::ChunkBody;
using testutil::ExpectSameIndex;
using testutil::SampleIndex;
using testutil::TempDir;

std::unique_ptr<Store> OpenOrDie(const std::string& dir, const StoreOptions& options = {}) {
  Result<std::unique_ptr<Store>> s = Store::Open(dir, options);
  EXPECT_TRUE(s) << s.error().message();
  return s ? std::move(*s) : nullptr;
}

TEST(ResolveCacheDirTest, PrecedenceAndDefaults) {
  CacheDirInputs in{.euid = 1000, .hoist_cache = "/hc", .xdg_cache_home = "/xdg", .home = "/h"};
  EXPECT_EQ(*ResolveCacheDir("/flag", in), "/flag");
  EXPECT_EQ(*ResolveCacheDir("", in), "/hc");
  in.hoist_cache = "";
  EXPECT_EQ(*ResolveCacheDir("", in), "/xdg/hoist");
  in.xdg_cache_home = "";
  EXPECT_EQ(*ResolveCacheDir("", in), "/h/.cache/hoist");
  in.euid = 0;
  EXPECT_EQ(*ResolveCacheDir("", in), "/var/lib/hoist");
  in.euid = 1000;
  in.home = "";
  Result<std::string> none = ResolveCacheDir("", in);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), ENOENT);
}

TEST(StoreTest, LayerIndexRoundTripAndPersistence) {
  TempDir dir;
  LayerIndex index = SampleIndex(Digest::Of("layer-a"));
  {
    auto store = OpenOrDie(dir.path());
    ASSERT_TRUE(store->PutLayerIndex(index));
    auto missing = store->GetLayerIndex(Digest::Of("nope"));
    ASSERT_TRUE(missing);
    EXPECT_FALSE(missing->has_value());
  }
  auto store = OpenOrDie(dir.path());
  auto got = store->GetLayerIndex(index.layer_digest);
  ASSERT_TRUE(got) << got.error().message();
  ASSERT_TRUE(got->has_value());
  ExpectSameIndex(index, **got);
  EXPECT_EQ(*store->ListLayerIndexes(), std::vector<Digest>{index.layer_digest});
  EXPECT_EQ(*store->HasLayerIndex(index.layer_digest), true);
  EXPECT_EQ(*store->HasLayerIndex(Digest::Of("nope")), false);
  EXPECT_EQ(*store->DeleteLayerIndex(index.layer_digest), true);
  EXPECT_EQ(*store->HasLayerIndex(index.layer_digest), false);
  EXPECT_EQ(*store->DeleteLayerIndex(index.layer_digest), false);
  EXPECT_FALSE(store->GetLayerIndex(index.layer_digest)->has_value());
  LayerIndex no_digest;
  Status s = store->PutLayerIndex(no_digest);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), EINVAL);
}

TEST(StoreTest, RefsAndBlobs) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  Digest m1 = Digest::Of("manifest1"), m2 = Digest::Of("manifest2");
  ASSERT_TRUE(store->PutRef("docker.io/library/b:1", m1));
  ASSERT_TRUE(store->PutRef("docker.io/library/a:1", m2));
  ASSERT_TRUE(store->PutRef("docker.io/library/b:1", m2));  // retag
  auto refs = store->ListRefs();
  ASSERT_TRUE(refs);
  ASSERT_EQ(refs->size(), 2u);
  EXPECT_EQ((*refs)[0].first, "docker.io/library/a:1");
  EXPECT_EQ((*refs)[0].second, m2);
  EXPECT_EQ((*refs)[1].first, "docker.io/library/b:1");
  EXPECT_EQ((*refs)[1].second, m2);
  EXPECT_EQ(**store->GetRef("docker.io/library/a:1"), m2);
  EXPECT_EQ(*store->DeleteRef("docker.io/library/a:1"), true);
  EXPECT_EQ(*store->DeleteRef("docker.io/library/a:1"), false);
  EXPECT_FALSE(store->GetRef("docker.io/library/a:1")->has_value());
  Status long_name = store->PutRef(std::string(501, 'x'), m1);
  ASSERT_FALSE(long_name);
  EXPECT_EQ(long_name.error().code(), ENAMETOOLONG);
  EXPECT_EQ(store->PutRef("", m1).error().code(), EINVAL);

  std::string config = R"({"architecture":"amd64"})";
  Digest cd = Digest::Of(config);
  ASSERT_TRUE(store->PutBlob(cd, config));
  EXPECT_EQ(**store->GetBlob(cd), config);
  Status wrong = store->PutBlob(m1, config);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code(), EINVAL);
  EXPECT_EQ(*store->ListBlobs(), std::vector<Digest>{cd});
  EXPECT_EQ(*store->DeleteBlob(cd), true);
  EXPECT_FALSE(store->GetBlob(cd)->has_value());
  auto stats = store->Stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->refs, 1u);
  EXPECT_EQ(stats->blobs, 0u);
  EXPECT_TRUE(store->Check(true));
}

// Prune's disk step (Store::Compact): freed pages go back to the filesystem, but only when nobody
// has the store open; the store is whole afterwards.
TEST(StoreTest, CompactGivesFreedPagesBackOnlyWhenNobodyHasItOpen) {
  TempDir dir;
  const std::string data = dir.path() + "/data.mdb";
  auto disk_bytes = [&] {
    struct stat st {};
    EXPECT_EQ(::stat(data.c_str(), &st), 0);
    return static_cast<uint64_t>(st.st_blocks) * 512;
  };
  const Digest m = Digest::Of("manifest");
  const Digest kept = Digest::Of(ChunkBody(1000, 5000));
  {
    auto store = OpenOrDie(dir.path());
    ASSERT_TRUE(store->PutRef("docker.io/library/a:1", m));
    for (uint64_t i = 0; i < 200; ++i) {
      ASSERT_TRUE(store->chunks().Put(Digest::Of(ChunkBody(i, 100000)), ChunkBody(i, 100000)));
    }
    ASSERT_TRUE(store->chunks().Put(kept, ChunkBody(1000, 5000)));
  }
  uint64_t freed = 0;
  {
    auto store = OpenOrDie(dir.path());
    auto list = store->chunks().List();
    ASSERT_TRUE(list.has_value());
    ASSERT_EQ(list->size(), 201u);
    std::vector<Digest> doomed;
    for (const ChunkInfo& c : *list) {
      if (c.digest != kept) doomed.push_back(c.digest);
    }
    auto removed = store->chunks().Remove(doomed);
    ASSERT_TRUE(removed.has_value());
    EXPECT_EQ(removed->first, 200u);
    freed = removed->second;
    // In use (here by this process, as a mount would): nothing is rewritten.
    auto busy = Store::Compact(dir.path());
    ASSERT_TRUE(busy.has_value()) << busy.error().message();
    EXPECT_FALSE(busy->compacted);
    EXPECT_NE(busy->not_compacted.find("in use"), std::string::npos) << busy->not_compacted;
  }
  ASSERT_GE(freed, 200u * 100000);
  const uint64_t before = disk_bytes();
  auto done = Store::Compact(dir.path());
  ASSERT_TRUE(done.has_value()) << done.error().message();
  EXPECT_TRUE(done->compacted);
  const uint64_t after = disk_bytes();
  ASSERT_LT(after, before);
  EXPECT_GE(before - after, freed / 10 * 8)
      << "freed " << freed << ", file " << before << " -> " << after;
  auto store = OpenOrDie(dir.path());
  EXPECT_EQ(**store->GetRef("docker.io/library/a:1"), m);
  auto list = store->chunks().List();
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].digest, kept);
  std::string body(5000, '\0');
  auto read = store->chunks().Read(kept, 0, body);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(body, ChunkBody(1000, 5000));
  EXPECT_TRUE(store->Check(true));
}

// LMDB forbids two environments on one file in one process (closing either drops the other's
// locks and reader slots). A second open is refused with EBUSY, by directory identity (a
// symlinked path too), and works again once the first is closed.
TEST(StoreTest, ASecondOpenInOneProcessIsRefused) {
  TempDir dir;
  auto first = Store::Open(dir.path());
  ASSERT_TRUE(first.has_value()) << first.error().message();
  auto second = Store::Open(dir.path());
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), EBUSY);
  EXPECT_NE(second.error().message().find("already open in this process"), std::string::npos)
      << second.error().message();
  const std::string link = dir.path() + ".link";
  ASSERT_EQ(::symlink(dir.path().c_str(), link.c_str()), 0);
  auto via_link = Store::Open(link);
  ::unlink(link.c_str());
  ASSERT_FALSE(via_link.has_value());
  EXPECT_EQ(via_link.error().code(), EBUSY);
  first->reset();
  auto again = Store::Open(dir.path());
  EXPECT_TRUE(again.has_value()) << again.error().message();
}

TEST(StoreTest, SchemaMismatchIsRefused) {
  TempDir dir;
  {
    auto env = LmdbEnv::Open(dir.path(), LmdbEnvOptions{});
    ASSERT_TRUE(env);
    auto txn = (*env)->BeginWrite();
    ASSERT_TRUE(txn);
    ASSERT_TRUE(txn->Put(Table::kMeta, "schema", std::string("\x07\0\0\0\0\0\0\0", 8)));
    ASSERT_TRUE(txn->Commit());
  }
  auto s = Store::Open(dir.path());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), EPROTO);
  EXPECT_EQ(s.error().message(), "cache " + dir.path() +
                                     " has schema 7, this hoist reads schema 1; remove the "
                                     "directory to start afresh");
}

class ChunkCacheTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  StoreOptions Options(uint64_t quota) {
    StoreOptions o;
    o.cache.quota_bytes = quota;
    o.cache.segment_bytes = GetParam();
    return o;
  }
};

TEST_P(ChunkCacheTest, PutGetReadAndDedup) {
  TempDir dir;
  auto store = OpenOrDie(dir.path(), Options(64 << 20));
  ChunkCache& cache = store->chunks();
  std::string body = ChunkBody(1, 100000);
  Digest d = Digest::Of(body);
  EXPECT_FALSE(cache.Get(d)->has_value());
  ASSERT_TRUE(cache.Put(d, body));
  EXPECT_EQ(**cache.Get(d), body);  // served from the queue before commit
  ASSERT_TRUE(cache.Put(d, body));  // dedup while queued
  ASSERT_TRUE(cache.Flush());
  ASSERT_TRUE(cache.Put(d, body));  // dedup once stored
  ASSERT_TRUE(cache.Flush());
  EXPECT_EQ(**cache.Get(d), body);
  std::string slice(70000, '\0');
  auto n = cache.Read(d, 50000, std::span<char>(slice));
  ASSERT_TRUE(n);
  ASSERT_EQ(**n, 50000u);  // clipped at the end of the chunk
  EXPECT_EQ(slice.substr(0, 50000), body.substr(50000));
  std::string empty_body;
  Digest ed = Digest::Of(empty_body);
  ASSERT_TRUE(cache.Put(ed, empty_body));
  ASSERT_TRUE(cache.Flush());
  EXPECT_EQ(**cache.Get(ed), "");
  auto stats = cache.Stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->chunk_count, 2u);
  EXPECT_EQ(stats->chunk_bytes, 100000u);
  EXPECT_EQ(stats->puts, 2u);
  EXPECT_EQ(stats->dedup, 2u);
  EXPECT_EQ(stats->hits, 4u);
  EXPECT_EQ(stats->misses, 1u);
  EXPECT_EQ(stats->pending_bytes, 0u);
  EXPECT_TRUE(store->Check(true));
  store.reset();
  store = OpenOrDie(dir.path(), Options(64 << 20));
  EXPECT_EQ(**store->chunks().Get(d), body);
}

// Finds `needle` in the data file and flips one bit of it.
void FlipBitInDataFile(const std::string& dir, const std::string& needle, size_t at) {
  std::string path = dir + "/data.mdb";
  Result<std::string> data = ReadFile(path);
  ASSERT_TRUE(data);
  size_t pos = data->find(needle);
  ASSERT_NE(pos, std::string::npos);
  ASSERT_EQ(data->find(needle, pos + 1), std::string::npos);
  int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  char c = static_cast<char>((*data)[pos + at] ^ 0x10);
  ASSERT_EQ(::pwrite(fd, &c, 1, static_cast<off_t>(pos + at)), 1);
  ::close(fd);
}

TEST_P(ChunkCacheTest, FlippedBitOnDiskIsAMissAndTheRecordIsDropped) {
  TempDir dir;
  std::string body = ChunkBody(7, 200000);
  Digest d = Digest::Of(body);
  {
    auto store = OpenOrDie(dir.path(), Options(64 << 20));
    ASSERT_TRUE(store->chunks().Put(d, body));
    ASSERT_TRUE(store->chunks().Put(Digest::Of(ChunkBody(8, 5000)), ChunkBody(8, 5000)));
  }
  FlipBitInDataFile(dir.path(), body.substr(150000, 64), 10);
  auto store = OpenOrDie(dir.path(), Options(64 << 20));
  ChunkCache& cache = store->chunks();
  auto got = cache.Get(d);
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->has_value());
  ASSERT_TRUE(cache.Flush());  // the drop is committed by the writer
  std::string buf(10, '\0');
  auto read = cache.Read(d, 0, std::span<char>(buf));
  ASSERT_TRUE(read);
  EXPECT_FALSE(read->has_value());
  auto stats = cache.Stats();
  EXPECT_EQ(stats->corrupt, 1u);
  EXPECT_EQ(stats->misses, 2u);
  EXPECT_EQ(stats->hits, 0u);
  EXPECT_EQ(stats->chunk_count, 1u);  // the corrupt one is gone
  EXPECT_EQ(stats->chunk_bytes, 5000u);
  EXPECT_FALSE(*cache.Contains(d));
  EXPECT_TRUE(store->Check(true)) << store->Check(true).error().message();
  ASSERT_TRUE(cache.Put(d, body));  // refetched
  ASSERT_TRUE(cache.Flush());
  EXPECT_EQ(**cache.Get(d), body);
}

TEST_P(ChunkCacheTest, FlippedBitInBlobIsAMiss) {
  TempDir dir;
  std::string manifest = ChunkBody(9, 3000);
  Digest d = Digest::Of(manifest);
  {
    auto store = OpenOrDie(dir.path(), Options(64 << 20));
    ASSERT_TRUE(store->PutBlob(d, manifest));
  }
  FlipBitInDataFile(dir.path(), manifest.substr(1000, 64), 3);
  auto store = OpenOrDie(dir.path(), Options(64 << 20));
  auto got = store->GetBlob(d);
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->has_value());
  EXPECT_EQ(store->ListBlobs()->size(), 0u);
}

TEST_P(ChunkCacheTest, EvictsInExactLruOrder) {
  TempDir dir;
  // quota 10000: high watermark 9500, low 8500; chunks of 1000 bytes.
  auto store = OpenOrDie(dir.path(), Options(10000));
  ChunkCache& cache = store->chunks();
  std::vector<Digest> d;
  std::vector<std::string> body;
  for (int i = 0; i < 10; ++i) {
    body.push_back(ChunkBody(100 + i, 1000));
    d.push_back(Digest::Of(body.back()));
  }
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(cache.Put(d[i], body[i]));
  ASSERT_TRUE(cache.Flush());
  EXPECT_TRUE(cache.Get(d[0])->has_value());
  EXPECT_TRUE(cache.Get(d[2])->has_value());
  ASSERT_TRUE(cache.Flush());  // access order now 1 3 4 5 6 7 0 2
  ASSERT_TRUE(cache.Put(d[8], body[8]));
  ASSERT_TRUE(cache.Put(d[9], body[9]));
  ASSERT_TRUE(cache.Flush());  // 10000 > 9500: evict 1 and 3, down to 8000 <= 8500
  auto list = cache.List();
  ASSERT_TRUE(list);
  std::vector<Digest> order;
  for (const ChunkInfo& c : *list) order.push_back(c.digest);
  EXPECT_EQ(order, (std::vector<Digest>{d[4], d[5], d[6], d[7], d[0], d[2], d[8], d[9]}));
  auto stats = cache.Stats();
  EXPECT_EQ(stats->chunk_bytes, 8000u);
  EXPECT_EQ(stats->chunk_count, 8u);
  EXPECT_EQ(stats->evicted_chunks, 2u);
  EXPECT_EQ(stats->evicted_bytes, 2000u);
  EXPECT_FALSE(cache.Get(d[1])->has_value());
  EXPECT_FALSE(cache.Get(d[3])->has_value());
  // Explicit eviction down to 3000 bytes keeps the 3 most recent: 2 8 9... after the hits
  // above (misses do not count as accesses).
  ASSERT_TRUE(cache.Flush());
  EXPECT_EQ(*cache.Evict(3000), 5u);
  list = cache.List();
  order.clear();
  for (const ChunkInfo& c : *list) order.push_back(c.digest);
  EXPECT_EQ(order, (std::vector<Digest>{d[2], d[8], d[9]}));
  EXPECT_TRUE(store->Check(true));
}

TEST_P(ChunkCacheTest, MapFullIsHandledByEviction) {
  TempDir dir;
  StoreOptions o = Options(1ull << 30);  // quota far above the map: only MDB_MAP_FULL limits
  o.map_size = 2 << 20;
  auto store = OpenOrDie(dir.path(), o);
  ChunkCache& cache = store->chunks();
  std::string last;
  for (int i = 0; i < 200; ++i) {
    std::string body = ChunkBody(1000 + i, 32768);
    ASSERT_TRUE(cache.Put(Digest::Of(body), body));
    if (i % 10 == 9) {
      ASSERT_TRUE(cache.Flush());
    }
    last = body;
  }
  ASSERT_TRUE(cache.Flush());
  EXPECT_EQ(**cache.Get(Digest::Of(last)), last);
  // A layer index still fits: chunks make room for it.
  LayerIndex big = SampleIndex(Digest::Of("big"));
  for (int i = 0; i < 1000; ++i) big.entries.push_back(big.entries[1]);
  ASSERT_TRUE(store->PutLayerIndex(big));
  ASSERT_TRUE(store->GetLayerIndex(big.layer_digest)->has_value());
  // A chunk larger than the whole map is dropped, not an error.
  std::string huge = ChunkBody(5, 3 << 20);
  ASSERT_TRUE(cache.Put(Digest::Of(huge), huge));
  ASSERT_TRUE(cache.Flush());
  EXPECT_FALSE(*cache.Contains(Digest::Of(huge)));
  auto stats = cache.Stats();
  EXPECT_GT(stats->map_full_retries, 0u);
  EXPECT_GT(stats->evicted_chunks, 0u);
  EXPECT_EQ(stats->dropped, 1u);
  EXPECT_EQ(stats->puts, 200u);
  EXPECT_EQ(stats->chunk_count + stats->evicted_chunks, 200u);
  EXPECT_TRUE(store->Check(true)) << store->Check(true).error().message();
}

TEST_P(ChunkCacheTest, QuotaSmallerThanWorkingSetWithConcurrentReaders) {
  TempDir dir;
  constexpr uint64_t kQuota = 2 << 20;
  auto store = OpenOrDie(dir.path(), Options(kQuota));
  ChunkCache& cache = store->chunks();
  constexpr int kChunks = 256;  // ~10 MiB working set
  std::vector<std::string> bodies;
  std::vector<Digest> digests;
  for (int i = 0; i < kChunks; ++i) {
    bodies.push_back(ChunkBody(5000 + i, 16384 + (i % 4) * 16384));
    digests.push_back(Digest::Of(bodies.back()));
  }
  std::atomic<int> errors{0}, wrong{0}, hits{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      uint64_t x = t + 1;
      for (int op = 0; op < 600; ++op) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int i = static_cast<int>((x >> 33) % kChunks);
        auto got = cache.Get(digests[i]);
        if (!got) {
          ++errors;
          continue;
        }
        if (got->has_value()) {
          ++hits;
          if (**got != bodies[i]) ++wrong;
        } else if (!cache.Put(digests[i], bodies[i])) {
          ++errors;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(cache.Flush());
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(hits.load(), 0);
  auto stats = cache.Stats();
  EXPECT_LE(stats->chunk_bytes, kQuota * 95 / 100);
  EXPECT_GT(stats->evicted_chunks, 0u);
  EXPECT_EQ(stats->dropped, 0u);
  EXPECT_TRUE(store->Check(true)) << store->Check(true).error().message();
}

TEST_P(ChunkCacheTest, HitsAreWrittenInBatchesNotPerRead) {
  TempDir dir;
  StoreOptions o = Options(64 << 20);
  o.cache.access_flush_interval = std::chrono::milliseconds(300);
  auto store = OpenOrDie(dir.path(), o);
  ChunkCache& cache = store->chunks();
  std::string a = ChunkBody(1, 3000), b = ChunkBody(2, 3000);
  ASSERT_TRUE(cache.Put(Digest::Of(a), a));
  ASSERT_TRUE(cache.Put(Digest::Of(b), b));
  ASSERT_TRUE(cache.Flush());
  uint64_t batches = cache.Stats()->batches;
  auto order = [&] {
    std::vector<Digest> out;
    auto list = cache.List();
    EXPECT_TRUE(list);
    for (const ChunkInfo& c : *list) out.push_back(c.digest);
    return out;
  };
  EXPECT_EQ(order(), (std::vector<Digest>{Digest::Of(a), Digest::Of(b)}));
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(cache.Get(Digest::Of(a))->has_value());
  // No write txn yet: the hits are only recorded in memory.
  EXPECT_EQ(cache.Stats()->batches, batches);
  EXPECT_EQ(order(), (std::vector<Digest>{Digest::Of(a), Digest::Of(b)}));
  // After the flush interval, one txn records them all.
  ASSERT_TRUE(harness::WaitUntil([&] { return cache.Stats()->batches != batches; }));
  EXPECT_EQ(cache.Stats()->batches, batches + 1);
  EXPECT_EQ(order(), (std::vector<Digest>{Digest::Of(b), Digest::Of(a)}));
  EXPECT_EQ(cache.Stats()->hits, 100u);
}

TEST_P(ChunkCacheTest, CorruptLayerIndexRecordIsAnErrorNotACrash) {
  TempDir dir;
  LayerIndex index = SampleIndex(Digest::Of("layer-c"));
  for (int i = 0; i < 40; ++i) index.entries.push_back(index.entries[1]);  // > 2 KB: own pages
  index.entries.back().path = "unique/marker/path/for/the/test";
  {
    auto store = OpenOrDie(dir.path(), Options(64 << 20));
    ASSERT_TRUE(store->PutLayerIndex(index));
  }
  // (Stored after the prefix it shares with the path before it.)
  FlipBitInDataFile(dir.path(), "marker/path/for/the/test", 3);
  auto store = OpenOrDie(dir.path(), Options(64 << 20));
  auto got = store->GetLayerIndex(index.layer_digest);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), EIO);
  EXPECT_EQ(got.error().message(), "layer " + index.layer_digest.str() +
                                       ": corrupt layer index record: checksum mismatch");
  Status check = store->Check(false);
  ASSERT_FALSE(check);
  EXPECT_EQ(check.error().code(), EIO);
  EXPECT_EQ(*store->DeleteLayerIndex(index.layer_digest), true);
  ASSERT_TRUE(store->PutLayerIndex(index));
  EXPECT_TRUE(store->GetLayerIndex(index.layer_digest)->has_value());
}

INSTANTIATE_TEST_SUITE_P(Layouts, ChunkCacheTest, ::testing::Values(0u, 65536u),
                         [](const auto& info) {
                           return info.param == 0 ? std::string("WholeValue")
                                                  : "Segments" + std::to_string(info.param);
                         });

}  // namespace
}  // namespace hoist
