#include "bench/wan_proxy/direction.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>
#include <vector>

namespace hoist::wan {
namespace {

constexpr size_t kReadSize = 64 * 1024;
// The most the writer takes off the queue at once (chunks already due), so the reader gets
// room back while a long backlog is written.
constexpr size_t kBatchBytes = 1024 * 1024;

// Writes all of `bytes`; false on an error other than EINTR (errno set).
bool SendAll(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

Direction::Direction(int from, int to, LinkSchedule schedule, size_t queue_limit,
                     std::function<void()> on_failure)
    : from_(from),
      to_(to),
      schedule_(schedule),
      queue_limit_(queue_limit),
      on_failure_(std::move(on_failure)) {}

Direction::~Direction() {
  Stop();
  Join();
}

void Direction::Join() {
  if (reader_.joinable()) reader_.join();
  if (writer_.joinable()) writer_.join();
}

void Direction::Start() {
  live_threads_ = 2;
  started_ = true;
  reader_ = std::thread([this] { ReadLoop(); });
  writer_ = std::thread([this] { WriteLoop(); });
}

void Direction::Stop() {
  MutexLock lock(mu_);
  stopped_ = true;
  queue_.clear();
  queued_bytes_ = 0;
  changed_.NotifyAll();
}

void Direction::ReadLoop() {
  std::vector<char> buffer(kReadSize);
  for (;;) {
    {
      MutexLock lock(mu_);
      while (!stopped_ && queued_bytes_ >= queue_limit_) changed_.Wait(mu_);
      if (stopped_) break;
    }
    const ssize_t n = ::read(from_, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      on_failure_();
      break;
    }
    Chunk chunk;
    chunk.eof = n == 0;
    chunk.bytes.assign(buffer.data(), static_cast<size_t>(n));
    chunk.due = schedule_.Deliver(LinkSchedule::Clock::now(), static_cast<uint64_t>(n));
    MutexLock lock(mu_);
    if (stopped_) break;
    queued_bytes_ += chunk.bytes.size();
    queue_.push_back(std::move(chunk));
    changed_.NotifyAll();
    if (n == 0) break;
  }
  --live_threads_;
}

void Direction::WriteLoop() {
  std::vector<Chunk> batch;
  bool done = false;
  while (!done) {
    batch.clear();
    {
      MutexLock lock(mu_);
      for (;;) {
        if (stopped_) {
          done = true;
          break;
        }
        if (queue_.empty()) {
          changed_.Wait(mu_);
          continue;
        }
        const auto due = queue_.front().due;
        if (LinkSchedule::Clock::now() >= due) break;
        changed_.WaitUntil(mu_, due);
      }
      if (done) break;
      const auto now = LinkSchedule::Clock::now();
      size_t taken = 0;
      while (!queue_.empty() && queue_.front().due <= now && taken < kBatchBytes) {
        taken += queue_.front().bytes.size();
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      queued_bytes_ -= taken;
      changed_.NotifyAll();
    }
    for (const Chunk& chunk : batch) {
      if (chunk.eof) {
        ::shutdown(to_, SHUT_WR);
        done = true;
        break;
      }
      if (!SendAll(to_, chunk.bytes)) {
        on_failure_();
        done = true;
        break;
      }
    }
  }
  --live_threads_;
}

}  // namespace hoist::wan
