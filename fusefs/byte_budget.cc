#include "fusefs/byte_budget.h"

#include <algorithm>

namespace hoist {

bool ByteBudget::TryTake(uint64_t bytes) {
  MutexLock lock(mu_);
  if (bytes > total_ - used_) return false;
  used_ += bytes;
  return true;
}

uint64_t ByteBudget::Take(uint64_t bytes) {
  bytes = std::min(bytes, total_);
  MutexLock lock(mu_);
  while (bytes > total_ - used_) cv_.Wait(mu_);
  used_ += bytes;
  return bytes;
}

void ByteBudget::Give(uint64_t bytes) {
  {
    MutexLock lock(mu_);
    used_ -= std::min(bytes, used_);
  }
  cv_.NotifyAll();
}

BudgetLease& BudgetLease::operator=(BudgetLease&& other) noexcept {
  if (this != &other) {
    Reset();
    budget_ = other.budget_;
    bytes_ = other.bytes_;
    other.bytes_ = 0;
  }
  return *this;
}

bool BudgetLease::TryGrow(uint64_t more) {
  if (budget_ == nullptr) {
    bytes_ += more;
    return true;
  }
  if (!budget_->TryTake(more)) return false;
  bytes_ += more;
  return true;
}

void BudgetLease::Reset() {
  if (budget_ != nullptr && bytes_ > 0) budget_->Give(bytes_);
  bytes_ = 0;
}

}  // namespace hoist
