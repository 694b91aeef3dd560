// Multi-process tests: two processes sharing one store, kill -9 at random moments, stale readers.
// Children are forked before the parent opens the store (or never use the parent's), as the
// Store contract requires, and leave with _exit.
#include <gtest/gtest.h>
#include <lmdb.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include "index/store.h"
#include "tests/index/store_test_util.h"

namespace hoist {
namespace {

using testutil::ChunkBody;
using testutil::SampleIndex;
using testutil::TempDir;

std::string Body(uint64_t i) { return ChunkBody(i, 4096 + (i % 16) * 4096); }

// Child: puts chunks [begin, end), flushes, reads them all back. Exit code 0 on success.
[[noreturn]] void PutRangeChild(const std::string& dir, int begin, int end) {
  auto store = Store::Open(dir);
  if (!store) _exit(2);
  ChunkCache& cache = (*store)->chunks();
  for (int i = begin; i < end; ++i) {
    std::string b = Body(i);
    if (!cache.Put(Digest::Of(b), b)) _exit(3);
    if (i % 7 == 0 && !cache.Flush()) _exit(4);
  }
  if (!cache.Flush()) _exit(4);
  for (int i = begin; i < end; ++i) {
    std::string b = Body(i);
    auto got = cache.Get(Digest::Of(b));
    if (!got || !got->has_value() || **got != b) _exit(5);
  }
  store->reset();
  _exit(0);
}

int WaitExitCode(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(StoreProcessTest, TwoProcessesShareOneStore) {
  TempDir dir;
  pid_t a = fork();
  ASSERT_GE(a, 0);
  if (a == 0) PutRangeChild(dir.path(), 0, 100);
  pid_t b = fork();
  ASSERT_GE(b, 0);
  if (b == 0) PutRangeChild(dir.path(), 50, 150);
  EXPECT_EQ(WaitExitCode(a), 0);
  EXPECT_EQ(WaitExitCode(b), 0);
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store);
  auto stats = (*store)->chunks().Stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->chunk_count, 150u);  // the 50 shared chunks are stored once
  uint64_t bytes = 0;
  for (int i = 0; i < 150; ++i) {
    std::string body = Body(i);
    bytes += body.size();
    auto got = (*store)->chunks().Get(Digest::Of(body));
    ASSERT_TRUE(got && got->has_value()) << i;
    EXPECT_EQ(**got, body);
  }
  EXPECT_EQ(stats->chunk_bytes, bytes);
  EXPECT_TRUE((*store)->Check(true));
}

// Child for the kill loop: writes chunks, layer indexes and refs until killed.
[[noreturn]] void WriteForeverChild(const std::string& dir, int round) {
  StoreOptions o;
  o.cache.quota_bytes = 3 << 20;  // small, so eviction runs too
  auto store = Store::Open(dir, o);
  if (!store) _exit(2);
  ChunkCache& cache = (*store)->chunks();
  for (uint64_t i = round * 100000 + 3;; ++i) {
    std::string b = Body(i);
    (void)cache.Put(Digest::Of(b), b);
    if (i % 5 == 0) (void)cache.Get(Digest::Of(Body(i - 3)));
    if (i % 50 == 0) {
      LayerIndex index = SampleIndex(Digest::Of("layer" + std::to_string(i)));
      (void)(*store)->PutLayerIndex(index);
      (void)(*store)->PutRef("img:" + std::to_string(i % 7), index.layer_digest);
    }
    if (i % 16 == 0) (void)cache.Flush();
  }
}

TEST(StoreProcessTest, KillNineLoopLeavesAConsistentStore) {
  TempDir dir;
  std::mt19937 rng(12345);
  constexpr int kRounds = 20;
  uint64_t seen_chunks = 0;
  for (int round = 0; round < kRounds; ++round) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) WriteForeverChild(dir.path(), round);
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 150));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    EXPECT_EQ(WaitExitCode(pid), 128 + SIGKILL);

    auto store = Store::Open(dir.path());
    ASSERT_TRUE(store) << store.error().message();
    Status check = (*store)->Check(true);
    ASSERT_TRUE(check) << "round " << round << ": " << check.error().message();
    auto list = (*store)->chunks().List();
    ASSERT_TRUE(list);
    for (const ChunkInfo& c : *list) {
      auto got = (*store)->chunks().Get(c.digest);
      ASSERT_TRUE(got && got->has_value()) << c.digest.str();
      EXPECT_EQ(Digest::Of(**got), c.digest);
    }
    seen_chunks = std::max<uint64_t>(seen_chunks, list->size());
    auto layers = (*store)->ListLayerIndexes();
    ASSERT_TRUE(layers);
    for (const Digest& layer : *layers) {
      auto index = (*store)->GetLayerIndex(layer);
      ASSERT_TRUE(index && index->has_value()) << layer.str();
    }
    ASSERT_TRUE((*store)->ListRefs());
  }
  EXPECT_GT(seen_chunks, 0u);
}

TEST(StoreProcessTest, StaleReaderOfAKilledProcessIsCleared) {
  TempDir dir;
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store);
  EXPECT_EQ(*(*store)->ClearStaleReaders(), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Take a reader slot with plain LMDB and die holding it.
    MDB_env* env = nullptr;
    MDB_txn* txn = nullptr;
    if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 8) != 0 ||
        mdb_env_set_mapsize(env, 1ull << 30) != 0 ||
        mdb_env_open(env, dir.path().c_str(), MDB_NOTLS, 0644) != 0 ||
        mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) != 0) {
      _exit(2);
    }
    raise(SIGKILL);
    _exit(3);
  }
  EXPECT_EQ(WaitExitCode(pid), 128 + SIGKILL);
  EXPECT_EQ(*(*store)->ClearStaleReaders(), 1);
  EXPECT_EQ(*(*store)->ClearStaleReaders(), 0);
}

TEST(StoreProcessTest, StaleReaderIsClearedAtOpen) {
  TempDir dir;
  int hold[2], ready[2];
  ASSERT_EQ(pipe(hold), 0);
  ASSERT_EQ(pipe(ready), 0);
  // Holder keeps the environment open, so the lock file (and the dead slot) survive.
  pid_t holder = fork();
  ASSERT_GE(holder, 0);
  if (holder == 0) {
    auto s = Store::Open(dir.path());
    if (!s) _exit(2);
    char c = 'r';
    if (write(ready[1], &c, 1) != 1) _exit(3);
    if (read(hold[0], &c, 1) < 0) _exit(4);
    _exit(0);
  }
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  pid_t victim = fork();
  ASSERT_GE(victim, 0);
  if (victim == 0) {
    auto s = Store::Open(dir.path());
    if (!s) _exit(2);
    // Hold a read snapshot (a pooled txn is reset and still owns its slot) and die.
    (void)(*s)->chunks().Contains(Digest::Of("x"));
    raise(SIGKILL);
    _exit(3);
  }
  EXPECT_EQ(WaitExitCode(victim), 128 + SIGKILL);
  {
    auto store = Store::Open(dir.path());
    ASSERT_TRUE(store);
    auto stats = (*store)->Stats();
    ASSERT_TRUE(stats);
    EXPECT_EQ(stats->stale_readers_cleared_at_open, 1);
  }
  ASSERT_EQ(write(hold[1], "x", 1), 1);
  EXPECT_EQ(WaitExitCode(holder), 0);
  for (int fd : {hold[0], hold[1], ready[0], ready[1]}) close(fd);
}

}  // namespace
}  // namespace hoist
