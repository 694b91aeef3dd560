// Compiled (syntax only, clang only) by the ThreadSafety* tests. Built with -DHOIST_ONLY_GOOD, it
// must compile cleanly under -Wthread-safety -Werror (held locks are recognised: no false
// alarms); built without it, each Bad* function below must be rejected, naming the rule broken.
#include "base/mutex.h"

namespace hoist {

class Counter {
 public:
  void Good() HOIST_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    ++count_;
    BumpLocked();
    lock.Unlock();
    lock.Lock();
    while (count_ == 0) cv_.Wait(mu_);
  }
  void GoodTry() {
    if (!mu_.TryLock()) return;
    ++count_;
    mu_.Unlock();
  }
#ifndef HOIST_ONLY_GOOD
  int BadRead() { return count_; }   // reads without mu_
  void BadWrite() { count_ = 1; }    // writes without mu_
  void BadCall() { BumpLocked(); }   // calls a REQUIRES(mu_) function without it
  void BadWait() { cv_.Wait(mu_); }  // waits without holding mu_
  void BadAfterUnlock() {
    MutexLock lock(mu_);
    lock.Unlock();
    ++count_;  // after giving the lock back
  }
#endif

 private:
  void BumpLocked() HOIST_REQUIRES(mu_) { ++count_; }

  Mutex mu_;
  CondVar cv_;
  int count_ HOIST_GUARDED_BY(mu_) = 0;
};

}  // namespace hoist
