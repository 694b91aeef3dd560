#include "base/parallel.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <thread>
#include <vector>

#include "base/mutex.h"

namespace hoist {

Status ParallelFor(size_t n, size_t threads, const std::function<Status(size_t)>& body) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  Mutex mu;
  std::optional<Error> first;  // guarded by mu (a local: not annotatable), read after the joins
  auto work = [&] {
    while (!failed.load(std::memory_order_acquire)) {
      const size_t i = next.fetch_add(1);
      if (i >= n) return;
      Status s = body(i);
      if (!s) {
        MutexLock lock(mu);
        if (!first) first = s.error();
        failed.store(true, std::memory_order_release);
      }
    }
  };
  const size_t count = std::min(n, std::max<size_t>(threads, 1));
  std::vector<std::thread> pool;
  pool.reserve(count > 0 ? count - 1 : 0);
  for (size_t t = 1; t < count; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  if (first) return Fail(*first);
  return Ok();
}

}  // namespace hoist
