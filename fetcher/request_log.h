// RequestLog: counts and times the HTTP requests a client makes, and finds how many of them had
// to happen one after another.
//
// LoggingTransport wraps any HttpTransport; every RoundTrip (token requests and probes included,
// since RegistryAuth shares the transport) is recorded in the RequestLog as an interval
// [start, end] of the steady clock, and logged at debug level as
// "http: GET <url> -> 206, 65536 bytes in 41 ms".
//
// RequestLog::Summary() reports the number of requests since the log was made (or Reset) and
// the length of the longest chain of them in which each began after the previous one had ended:
// the dependent round trips, the figure that multiplies with the network's RTT. Requests that
// overlapped count once in a chain, however many ran. (Two independent requests made one after
// the other by one thread count as two: the measure is an upper bound on what the code must wait
// for, and exact for what it did wait for.)
//
// Thread-safety: all methods are thread-safe. Memory: the log keeps one interval per request
// until Reset (a mount resets it once it is ready; the read path does not keep a log).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/mutex.h"
#include "fetcher/http.h"

namespace hoist {

struct RequestSummary {
  uint64_t requests = 0;
  uint64_t sequential = 0;               // the longest chain of requests that did not overlap
  uint64_t body_bytes = 0;               // response bytes handed to sinks or kept in bodies
  std::chrono::milliseconds elapsed{0};  // first start to last end
};

class RequestLog {
 public:
  using Clock = std::chrono::steady_clock;
  void Record(Clock::time_point start, Clock::time_point end, uint64_t body_bytes);
  [[nodiscard]] RequestSummary Summary() const;
  void Reset();
  // Stops keeping intervals (Summary then reports what was kept so far).
  void Stop();

 private:
  struct Interval {
    Clock::time_point start, end;
  };
  mutable Mutex mu_;
  std::vector<Interval> intervals_ HOIST_GUARDED_BY(mu_);
  uint64_t body_bytes_ HOIST_GUARDED_BY(mu_) = 0;
  bool stopped_ HOIST_GUARDED_BY(mu_) = false;
};

// The longest chain of intervals in which each starts at or after the previous one's end.
uint64_t LongestSequentialChain(std::vector<std::pair<int64_t, int64_t>> intervals);

// While one lives, requests made by this thread are not recorded (still logged at debug): for
// background work that overlaps what is being counted (the mount's access-trace lookup).
class UnrecordedRequests {
 public:
  UnrecordedRequests();
  ~UnrecordedRequests();
  UnrecordedRequests(const UnrecordedRequests&) = delete;
  UnrecordedRequests& operator=(const UnrecordedRequests&) = delete;

 private:
  bool previous_;
};

// A transport that records every request of `inner` in `log` (see the file comment).
std::shared_ptr<HttpTransport> NewLoggingTransport(std::shared_ptr<HttpTransport> inner,
                                                   std::shared_ptr<RequestLog> log);

}  // namespace hoist
