// FetchPool: a fixed set of threads running fetch tasks in FIFO order, so a FUSE reader never
// blocks in the network itself: it hands the fetch to the pool and waits on a future with the
// mount's deadline, and can give up on time even while the fetch is still blocked.
//
// Thread-safety: Submit may be called from any thread. Lifetime: the destructor stops taking
// tasks, drops the ones not started (each task's `cancel` callback runs instead, so its waiters
// are told), and joins the threads after their current task returns (a task blocked in the
// network delays this until the BlobSource's own timeout).
#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "base/mutex.h"

namespace hoist {

class FetchPool {
 public:
  explicit FetchPool(int threads);
  ~FetchPool();
  FetchPool(const FetchPool&) = delete;
  FetchPool& operator=(const FetchPool&) = delete;

  // Queues `run`. If the pool is shutting down, or is destroyed before `run` starts, `cancel`
  // runs instead (on the caller's or the destroying thread). Returns false if cancelled at once.
  bool Submit(std::function<void()> run, std::function<void()> cancel);

 private:
  struct Task {
    std::function<void()> run;
    std::function<void()> cancel;
  };
  void Loop() HOIST_EXCLUDES(mu_);

  Mutex mu_;
  CondVar cv_;
  std::deque<Task> queue_ HOIST_GUARDED_BY(mu_);
  bool stop_ HOIST_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace hoist
