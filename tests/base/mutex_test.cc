// Mutex, MutexLock and CondVar (base/mutex.h): the lock is really held and released, a relocked
// MutexLock releases once, waits return when notified and report a passed deadline.
#include "base/mutex.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace hoist {
namespace {

// True if another thread can take `mu` right now (it is not held).
bool FreeElsewhere(Mutex& mu) {
  bool took = false;
  std::thread([&] {
    if (mu.TryLock()) {
      took = true;
      mu.Unlock();
    }
  }).join();
  return took;
}

TEST(Mutex, LockUnlockTryLock) {
  Mutex mu;
  EXPECT_TRUE(FreeElsewhere(mu));
  mu.Lock();
  EXPECT_FALSE(FreeElsewhere(mu));
  mu.Unlock();
  if (!mu.TryLock()) {
    ADD_FAILURE() << "TryLock of a free mutex failed";
    return;
  }
  EXPECT_FALSE(FreeElsewhere(mu));
  mu.Unlock();
  EXPECT_TRUE(FreeElsewhere(mu));
}

TEST(MutexLock, HoldsUntilScopeEnds) {
  Mutex mu;
  {
    MutexLock lock(mu);
    EXPECT_FALSE(FreeElsewhere(mu));
  }
  EXPECT_TRUE(FreeElsewhere(mu));
}

TEST(MutexLock, UnlockAndRelockReleaseOnce) {
  Mutex mu;
  {
    MutexLock lock(mu);
    lock.Unlock();
    EXPECT_TRUE(FreeElsewhere(mu));
    lock.Lock();
    EXPECT_FALSE(FreeElsewhere(mu));
  }
  EXPECT_TRUE(FreeElsewhere(mu));
  {
    MutexLock lock(mu);
    lock.Unlock();  // released early: the destructor must not unlock again
  }
  EXPECT_TRUE(FreeElsewhere(mu));
}

class Flag {
 public:
  void Set() HOIST_EXCLUDES(mu_) {
    {
      MutexLock lock(mu_);
      set_ = true;
    }
    cv_.NotifyAll();
  }
  void Wait() HOIST_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    while (!set_) cv_.Wait(mu_);
  }
  // False if the deadline passed first.
  bool WaitUntil(std::chrono::steady_clock::time_point deadline) HOIST_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    while (!set_) {
      if (!cv_.WaitUntil(mu_, deadline)) return set_;
    }
    return true;
  }
  bool WaitForZero() HOIST_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return cv_.WaitFor(mu_, std::chrono::milliseconds(0)) || set_;
  }
  // The mutex is free again after a wait returns and the lock goes.
  Mutex& mu() { return mu_; }

 private:
  Mutex mu_;
  CondVar cv_;
  bool set_ HOIST_GUARDED_BY(mu_) = false;
};

TEST(CondVar, WaitReturnsOnceNotified) {
  Flag flag;
  std::thread setter([&] { flag.Set(); });
  flag.Wait();
  setter.join();
  EXPECT_TRUE(FreeElsewhere(flag.mu()));
}

TEST(CondVar, PassedDeadlineReportsTimeout) {
  Flag flag;
  EXPECT_FALSE(flag.WaitUntil(std::chrono::steady_clock::now() - std::chrono::seconds(1)));
  EXPECT_FALSE(flag.WaitForZero());
  EXPECT_TRUE(FreeElsewhere(flag.mu()));
  flag.Set();
  EXPECT_TRUE(flag.WaitUntil(std::chrono::steady_clock::now() - std::chrono::seconds(1)));
}

}  // namespace
}  // namespace hoist
