// Mutex, MutexLock and CondVar: std::mutex and std::condition_variable with the lock contracts
// clang's thread-safety analysis checks (base/thread_annotations.h). libstdc++'s own types carry no
// annotations, so a member HOIST_GUARDED_BY a std::mutex could not be checked.
//
//   Mutex mu_;
//   CondVar cv_;
//   bool ready_ HOIST_GUARDED_BY(mu_) = false;
//
//   void Wait() HOIST_EXCLUDES(mu_) {
//     MutexLock lock(mu_);
//     while (!ready_) cv_.Wait(mu_);  // the condition is read with mu_ held: checked
//   }
//
// CondVar waits take the Mutex (held by the caller, checked), not a predicate: the caller loops on
// its condition itself, so the analysis sees every guarded read in the function that holds the
// lock (a lambda predicate would be analysed on its own, without the lock).
//
// Cost: that of the std types they wrap: every method is an inline forward, and a MutexLock is a
// reference and a bool, as a std::unique_lock is.
// SharedMutex (std::shared_mutex) is a reader/writer lock: WriterLock holds it exclusively,
// ReaderLock shared; a member HOIST_GUARDED_BY a SharedMutex may be read under either and written
// only under WriterLock. SharedCondVar waits on a SharedMutex held exclusively.
//
// Thread-safety: Mutex, SharedMutex and the condition variables are thread-safe; a MutexLock,
// WriterLock or ReaderLock belongs to the thread that made it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>

#include "base/thread_annotations.h"

namespace hoist {

class HOIST_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() HOIST_ACQUIRE() { mu_.lock(); }
  void Unlock() HOIST_RELEASE() { mu_.unlock(); }
  // Takes the lock if it is free now: true if taken.
  bool TryLock() HOIST_TRY_ACQUIRE(true) { return mu_.try_lock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds a Mutex from construction to destruction. Unlock() and Lock() let a function drop the lock
// around slow work and take it back; the destructor unlocks only if it is held then.
class HOIST_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) HOIST_ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~MutexLock() HOIST_RELEASE() {
    if (held_) mu_.Unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() HOIST_RELEASE() {
    held_ = false;
    mu_.Unlock();
  }
  void Lock() HOIST_ACQUIRE() {
    mu_.Lock();
    held_ = true;
  }

 private:
  Mutex& mu_;
  bool held_ = true;
};

class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // Releases `mu` while blocked; holds it again on return. May wake spuriously: loop on the
  // condition.
  void Wait(Mutex& mu) HOIST_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu.mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();  // still held: the caller's
  }
  // As Wait, until `deadline` at the latest. False if it returned because the deadline passed.
  template <class Clock, class Duration>
  bool WaitUntil(Mutex& mu, std::chrono::time_point<Clock, Duration> deadline) HOIST_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu.mu_, std::adopt_lock);
    const std::cv_status status = cv_.wait_until(lock, deadline);
    lock.release();
    return status == std::cv_status::no_timeout;
  }
  // As Wait, for `timeout` at the latest. False if it returned because the time ran out.
  template <class Rep, class Period>
  bool WaitFor(Mutex& mu, std::chrono::duration<Rep, Period> timeout) HOIST_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu.mu_, std::adopt_lock);
    const std::cv_status status = cv_.wait_for(lock, timeout);
    lock.release();
    return status == std::cv_status::no_timeout;
  }

  void NotifyOne() { cv_.notify_one(); }
  void NotifyAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

class HOIST_CAPABILITY("mutex") SharedMutex {
 public:
  SharedMutex() = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void Lock() HOIST_ACQUIRE() { mu_.lock(); }
  void Unlock() HOIST_RELEASE() { mu_.unlock(); }
  void LockShared() HOIST_ACQUIRE_SHARED() { mu_.lock_shared(); }
  void UnlockShared() HOIST_RELEASE_SHARED() { mu_.unlock_shared(); }

 private:
  friend class SharedCondVar;
  std::shared_mutex mu_;
};

// Holds a SharedMutex exclusively from construction to destruction.
class HOIST_SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(SharedMutex& mu) HOIST_ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~WriterLock() HOIST_RELEASE() { mu_.Unlock(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  SharedMutex& mu_;
};

// Holds a SharedMutex shared from construction to destruction.
class HOIST_SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedMutex& mu) HOIST_ACQUIRE_SHARED(mu) : mu_(mu) { mu_.LockShared(); }
  ~ReaderLock() HOIST_RELEASE() { mu_.UnlockShared(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  SharedMutex& mu_;
};

// A condition variable for a SharedMutex held exclusively (std::condition_variable_any).
class SharedCondVar {
 public:
  SharedCondVar() = default;
  SharedCondVar(const SharedCondVar&) = delete;
  SharedCondVar& operator=(const SharedCondVar&) = delete;

  // Releases `mu` while blocked; holds it (exclusively) again on return. May wake spuriously.
  void Wait(SharedMutex& mu) HOIST_REQUIRES(mu) {
    std::unique_lock<std::shared_mutex> lock(mu.mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();  // still held: the caller's
  }

  void NotifyOne() { cv_.notify_one(); }
  void NotifyAll() { cv_.notify_all(); }

 private:
  std::condition_variable_any cv_;
};

}  // namespace hoist
