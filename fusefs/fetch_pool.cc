#include "fusefs/fetch_pool.h"

#include <algorithm>
#include <utility>

namespace hoist {

FetchPool::FetchPool(int threads) {
  threads = std::max(threads, 1);
  threads_.reserve(threads);
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

FetchPool::~FetchPool() {
  std::deque<Task> dropped;
  {
    MutexLock lock(mu_);
    stop_ = true;
    dropped.swap(queue_);
  }
  cv_.NotifyAll();
  for (Task& t : dropped) {
    if (t.cancel) t.cancel();
  }
  for (std::thread& t : threads_) t.join();
}

bool FetchPool::Submit(std::function<void()> run, std::function<void()> cancel) {
  {
    MutexLock lock(mu_);
    if (!stop_) {
      queue_.push_back(Task{std::move(run), std::move(cancel)});
      cv_.NotifyOne();
      return true;
    }
  }
  if (cancel) cancel();
  return false;
}

void FetchPool::Loop() {
  while (true) {
    Task task;
    {
      MutexLock lock(mu_);
      while (!stop_ && queue_.empty()) cv_.Wait(mu_);
      if (stop_) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task.run();
  }
}

}  // namespace hoist
