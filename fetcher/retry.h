// Retry policy and the time seam used by the registry client.
//
// Clock is the only way fetcher/ code reads time or sleeps, so tests can run the backoff with a
// fake clock that records the requested delays and returns at once. RealClock() is stateless
// (steady_clock + nanosleep) and safe from any thread. A RetryPolicy is a plain value.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

namespace hoist {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual TimePoint Now() = 0;
  virtual void SleepFor(std::chrono::milliseconds delay) = 0;
  // Wall-clock seconds since the epoch (used for token `issued_at` and Retry-After dates).
  virtual int64_t UnixSeconds();
};

// The process's real clock. Never null; lives for the whole process (stateless).
Clock* RealClock();

struct RetryPolicy {
  // Attempts in total (1 = no retry).
  int max_attempts = 6;
  // Attempts in total when the registry cannot be reached at all: connection refused
  // (ECONNREFUSED), a name that does not resolve or a host with no route (EHOSTUNREACH,
  // ENETUNREACH). Such errors rarely heal within a retry budget, so one-shot tools set this to 2
  // (one quick retry) and fail with that errno; 0 = max_attempts (mounts, which keep waiting).
  int max_unreachable_attempts = 0;
  // Delay before retry n (n >= 1) is base_delay * 2^(n-1), capped at max_delay, then jittered
  // down by up to `jitter` of itself (0.5: uniformly in [50%, 100%]).
  std::chrono::milliseconds base_delay{200};
  std::chrono::milliseconds max_delay{5000};
  double jitter = 0.5;
  // A Retry-After longer than this is cut to it.
  std::chrono::milliseconds max_retry_after{10000};
  // No retry starts after this much time since the first attempt (the operation then fails with
  // ETIMEDOUT if the last failure was a timeout-like one, EIO otherwise). 0 = unbounded.
  std::chrono::milliseconds total_budget{30000};
};

// The backoff before retry `retry` (1-based). `unit_random` in [0, 1) supplies the jitter.
std::chrono::milliseconds BackoffDelay(const RetryPolicy& policy, int retry, double unit_random);

}  // namespace hoist
