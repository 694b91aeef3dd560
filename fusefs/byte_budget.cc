#include "fusefs/byte_budget.h"

#include <algorithm>

namespace hoist {

bool ByteBudget::TryTake(uint64_t bytes) {
  std::lock_guard lock(mu_);
  if (bytes > total_ - used_) return false;
  used_ += bytes;
  return true;
}

uint64_t ByteBudget::Take(uint64_t bytes) {
  bytes = std::min(bytes, total_);
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return bytes <= total_ - used_; });
  used_ += bytes;
  return bytes;
}

void ByteBudget::Give(uint64_t bytes) {
  {
    std::lock_guard lock(mu_);
    used_ -= std::min(bytes, used_);
  }
  cv_.notify_all();
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
