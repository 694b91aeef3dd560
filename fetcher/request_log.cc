#include "fetcher/request_log.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "base/log.h"

namespace hoist {
namespace {
thread_local bool t_unrecorded = false;
}  // namespace

UnrecordedRequests::UnrecordedRequests() : previous_(t_unrecorded) { t_unrecorded = true; }
UnrecordedRequests::~UnrecordedRequests() { t_unrecorded = previous_; }

void RequestLog::Record(Clock::time_point start, Clock::time_point end, uint64_t body_bytes) {
  MutexLock lock(mu_);
  if (stopped_) return;
  intervals_.push_back({start, end});
  body_bytes_ += body_bytes;
}

void RequestLog::Reset() {
  MutexLock lock(mu_);
  intervals_.clear();
  body_bytes_ = 0;
  stopped_ = false;
}

void RequestLog::Stop() {
  MutexLock lock(mu_);
  stopped_ = true;
}

RequestSummary RequestLog::Summary() const {
  std::vector<std::pair<int64_t, int64_t>> spans;
  RequestSummary out;
  {
    MutexLock lock(mu_);
    out.requests = intervals_.size();
    out.body_bytes = body_bytes_;
    if (intervals_.empty()) return out;
    Clock::time_point first = intervals_.front().start;
    Clock::time_point last = intervals_.front().end;
    spans.reserve(intervals_.size());
    for (const Interval& i : intervals_) {
      first = std::min(first, i.start);
      last = std::max(last, i.end);
      spans.emplace_back(i.start.time_since_epoch().count(), i.end.time_since_epoch().count());
    }
    out.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(last - first);
  }
  out.sequential = LongestSequentialChain(std::move(spans));
  return out;
}

uint64_t LongestSequentialChain(std::vector<std::pair<int64_t, int64_t>> intervals) {
  // Sorted by end, chain[i] = 1 + the best chain among intervals ending at or before i starts;
  // those all sort before i (they end before i does), so a running maximum serves.
  std::sort(intervals.begin(), intervals.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
  std::vector<uint64_t> best_upto(intervals.size());  // max chain over [0, i]
  uint64_t best = 0;
  for (size_t i = 0; i < intervals.size(); ++i) {
    auto it = std::upper_bound(intervals.begin(), intervals.begin() + static_cast<long>(i),
                               intervals[i].first,
                               [](int64_t start, const auto& iv) { return start < iv.second; });
    const size_t before = static_cast<size_t>(it - intervals.begin());
    const uint64_t chain = 1 + (before > 0 ? best_upto[before - 1] : 0);
    best = std::max(best, chain);
    best_upto[i] = best;
  }
  return best;
}

namespace {

class LoggingTransport : public HttpTransport {
 public:
  LoggingTransport(std::shared_ptr<HttpTransport> inner, std::shared_ptr<RequestLog> log)
      : inner_(std::move(inner)), log_(std::move(log)) {}

  Result<HttpResponse> RoundTrip(const HttpRequest& request) override {
    // Only a request with a sink is copied (to count what the sink sees); an upload's body is
    // never copied.
    uint64_t sunk = 0;
    std::optional<HttpRequest> counted = WithCountingSink(request, &sunk);
    const auto start = RequestLog::Clock::now();
    Result<HttpResponse> result = inner_->RoundTrip(counted ? *counted : request);
    const auto end = RequestLog::Clock::now();
    const uint64_t bytes = sunk + (result ? result->body.size() : 0);
    if (!t_unrecorded) log_->Record(start, end, bytes);
    if (GetLogLevel() <= LogLevel::kDebug) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(end - start).count();
      std::string range;
      for (const auto& [name, value] : request.headers) {
        if (name == "Range") range = " " + value;
      }
      if (result) {
        HOIST_LOG(kDebug) << "http: " << request.method << " " << request.url << range << " -> "
                          << result->status << ", " << bytes << " bytes in " << ms << " ms";
      } else {
        HOIST_LOG(kDebug) << "http: " << request.method << " " << request.url << range
                          << " failed in " << ms << " ms: " << result.error().message();
      }
    }
    return result;
  }

 private:
  std::shared_ptr<HttpTransport> inner_;
  std::shared_ptr<RequestLog> log_;
};

}  // namespace

std::shared_ptr<HttpTransport> NewLoggingTransport(std::shared_ptr<HttpTransport> inner,
                                                   std::shared_ptr<RequestLog> log) {
  return std::make_shared<LoggingTransport>(std::move(inner), std::move(log));
}

}  // namespace hoist
