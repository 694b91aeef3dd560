// SingleFlight: merges identical in-flight operations. The first caller of Join(key) becomes the
// leader and must eventually call Complete(key, result) exactly once; every other caller of
// Join(key) until then gets the same shared future. However many callers wait, one operation
// runs. After Complete the key is forgotten, so a later Join starts a new operation (a failed
// fetch never becomes a permanent failure).
//
// Waiting with a deadline: callers use future.wait_until(deadline), so a waiter gives up on time
// even if the leader is still blocked; the operation itself carries on and completes the
// future for whoever is still waiting.
//
// Thread-safety: all methods are thread-safe. Ownership: the futures share the result state and
// stay valid after Complete and after the SingleFlight is destroyed (an operation not
// completed by then reports std::future_error broken_promise to its waiters: destroy it only
// when no leader is running).
#pragma once

#include <future>
#include <string>
#include <unordered_map>
#include <utility>

#include "base/mutex.h"

namespace hoist {

template <class T>
class SingleFlight {
 public:
  using Future = std::shared_future<T>;

  struct Joined {
    Future future;
    bool leader = false;  // true: the caller must run the operation and Complete(key, ...)
  };

  Joined Join(const std::string& key) {
    MutexLock lock(mu_);
    auto it = flights_.find(key);
    if (it != flights_.end()) return Joined{it->second.future, false};
    std::promise<T> promise;
    Future future = promise.get_future().share();
    flights_.emplace(key, Flight{std::move(promise), future});
    return Joined{std::move(future), true};
  }

  // Publishes the result to every waiter and forgets the key. No-op for an unknown key.
  void Complete(const std::string& key, T value) {
    std::promise<T> promise;
    {
      MutexLock lock(mu_);
      auto it = flights_.find(key);
      if (it == flights_.end()) return;
      promise = std::move(it->second.promise);
      flights_.erase(it);
    }
    promise.set_value(std::move(value));
  }

  size_t size() const {
    MutexLock lock(mu_);
    return flights_.size();
  }

 private:
  struct Flight {
    std::promise<T> promise;
    Future future;
  };
  mutable Mutex mu_;
  std::unordered_map<std::string, Flight> flights_ HOIST_GUARDED_BY(mu_);
};

}  // namespace hoist
