// ByteBudget: a number of bytes that holders take and give back, shared by threads. The layer
// loader uses one to bound the TOC bytes held by layers indexed at once (a blocking Take), and a
// mount uses one for the disk its unconverted layers' stream files may use (TryGrow as bytes are
// written: a holder that cannot grow stops keeping its file).
//
// BudgetLease: a share of a budget, given back when the lease is destroyed or Reset.
//
// Thread-safety: ByteBudget is thread-safe. A BudgetLease is used by one thread at a time.
// Ownership: a lease borrows its budget, which must outlive it.
#pragma once

#include <cstdint>

#include "base/mutex.h"

namespace hoist {

class ByteBudget {
 public:
  explicit ByteBudget(uint64_t total) : total_(total) {}
  ByteBudget(const ByteBudget&) = delete;
  ByteBudget& operator=(const ByteBudget&) = delete;

  uint64_t total() const { return total_; }
  uint64_t used() const {
    MutexLock lock(mu_);
    return used_;
  }
  // Takes `bytes` if they are free now (true); otherwise takes nothing (false).
  bool TryTake(uint64_t bytes);
  // Waits until `bytes` are free, then takes them. A request over the total is cut to the total
  // (so it waits until the budget is all free, and runs alone). Returns the bytes taken.
  uint64_t Take(uint64_t bytes);
  void Give(uint64_t bytes);

 private:
  const uint64_t total_;
  mutable Mutex mu_;
  CondVar cv_;
  uint64_t used_ HOIST_GUARDED_BY(mu_) = 0;
};

class BudgetLease {
 public:
  BudgetLease() = default;
  // Holds `bytes` already taken from `budget` (or none: a null budget means unbounded).
  BudgetLease(ByteBudget* budget, uint64_t bytes) : budget_(budget), bytes_(bytes) {}
  BudgetLease(BudgetLease&& other) noexcept { *this = static_cast<BudgetLease&&>(other); }
  BudgetLease& operator=(BudgetLease&& other) noexcept;
  BudgetLease(const BudgetLease&) = delete;
  BudgetLease& operator=(const BudgetLease&) = delete;
  ~BudgetLease() { Reset(); }

  // Takes `more` bytes into the lease if they are free now; always true without a budget.
  bool TryGrow(uint64_t more);
  // Gives the bytes back (the lease stays bound to its budget, holding nothing).
  void Reset();
  uint64_t bytes() const { return bytes_; }
  ByteBudget* budget() const { return budget_; }

 private:
  ByteBudget* budget_ = nullptr;
  uint64_t bytes_ = 0;
};

}  // namespace hoist
