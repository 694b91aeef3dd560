#include "fetcher/retry.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <thread>

namespace hoist {

int64_t Clock::UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

class SteadyClock : public Clock {
 public:
  TimePoint Now() override { return std::chrono::steady_clock::now(); }
  void SleepFor(std::chrono::milliseconds delay) override {
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
  }
};

}  // namespace

Clock* RealClock() {
  static SteadyClock* clock = new SteadyClock();  // stateless; never destroyed
  return clock;
}

std::chrono::milliseconds BackoffDelay(const RetryPolicy& policy, int retry, double unit_random) {
  if (retry < 1) retry = 1;
  double base = static_cast<double>(policy.base_delay.count());
  double cap = static_cast<double>(policy.max_delay.count());
  double delay = base * std::ldexp(1.0, std::min(retry - 1, 30));
  delay = std::min(delay, cap);
  double jitter = std::clamp(policy.jitter, 0.0, 1.0);
  double r = std::clamp(unit_random, 0.0, 1.0);
  delay = delay * (1.0 - jitter * r);
  return std::chrono::milliseconds(static_cast<int64_t>(delay));
}

}  // namespace hoist
