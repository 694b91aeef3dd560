// ParallelFor: every index once, inline for one thread, the first error stops new work.
#include "base/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace hoist {
namespace {

TEST(ParallelFor, RunsEveryIndexExactlyOnce) {
  for (size_t threads : {0u, 1u, 2u, 8u, 100u}) {
    std::vector<std::atomic<int>> seen(1000);
    Status s = ParallelFor(seen.size(), threads, [&](size_t i) {
      seen[i].fetch_add(1);
      return Ok();
    });
    ASSERT_TRUE(s.has_value()) << threads;
    for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i].load(), 1) << i << " " << threads;
  }
}

TEST(ParallelFor, OneThreadRunsInlineInOrder) {
  const std::thread::id caller = std::this_thread::get_id();
  std::vector<size_t> order;
  Status s = ParallelFor(5, 1, [&](size_t i) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    order.push_back(i);
    return Ok();
  });
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2, 3, 4}));
}

TEST(ParallelFor, NothingToDoIsOk) {
  EXPECT_TRUE(ParallelFor(0, 4, [](size_t) { return Fail(EIO, "never called"); }).has_value());
}

TEST(ParallelFor, FirstErrorStopsNewWorkAndIsReturned) {
  // Inline, the order is exact: index 3 fails, 4.. never start.
  std::vector<size_t> ran;
  Status s = ParallelFor(10, 1, [&](size_t i) -> Status {
    ran.push_back(i);
    if (i == 3) return Fail(ENOENT, "index 3");
    return Ok();
  });
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), ENOENT);
  EXPECT_EQ(s.error().message(), "index 3");
  EXPECT_EQ(ran, (std::vector<size_t>{0, 1, 2, 3}));
  // With threads, every index from 0 fails: the returned error is one of them and, since no new
  // index starts after the first failure, at most one index per thread ran.
  std::atomic<int> calls{0};
  s = ParallelFor(1000, 4, [&](size_t i) -> Status {
    calls.fetch_add(1);
    return Fail(EIO, "index " + std::to_string(i));
  });
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), EIO);
  EXPECT_LE(calls.load(), 4);
}

}  // namespace
}  // namespace hoist
