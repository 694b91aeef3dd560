// Direction: one direction of a proxied TCP connection, bytes from socket `from` to socket `to`,
// through an emulated link (LinkSchedule: delay and bandwidth).
//
// Two threads. The reader reads up to 64 KiB at a time, stamps each chunk with its delivery time
// at the moment it was read, and queues it; it stops reading while `queue_limit` bytes are queued,
// so a slow link pushes back on the sender through TCP as a real one does. The writer sleeps
// (steady_clock) until the head chunk is due and writes every chunk that is due by then, in order.
// End of stream (the reader reads 0 bytes) is queued like data: once every byte before it is
// written, the writer shuts `to` down for writing, so the peer sees EOF after all the data.
//
// Failure (a read or write error other than EINTR: a reset, a peer gone) calls `on_failure`
// once, from the thread that saw it; the connection then tears both directions down (Stop and
// shutdown(2) of the sockets, which wakes a thread blocked in read or write).
//
// Thread-safety: Start, Stop and Finished may be called from any thread; Stop is idempotent. Join
// and the destructor (Stop, then Join) from the owner's. The sockets belong to the caller and must
// outlive the Direction.
#pragma once

#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <string>
#include <thread>

#include "base/mutex.h"
#include "bench/wan_proxy/link_schedule.h"

namespace hoist::wan {

class Direction {
 public:
  Direction(int from, int to, LinkSchedule schedule, size_t queue_limit,
            std::function<void()> on_failure);
  ~Direction();
  Direction(const Direction&) = delete;
  Direction& operator=(const Direction&) = delete;

  void Start();
  // Discards what is queued and makes both threads return as soon as they are not blocked in a
  // system call (the caller shuts the sockets down for that).
  void Stop();
  // Waits for both threads to return (call Stop first unless they are Finished).
  void Join();
  // Both threads have returned (normally after end of stream was delivered, or after Stop).
  bool Finished() const { return started_ && live_threads_.load() == 0; }

 private:
  struct Chunk {
    std::string bytes;
    LinkSchedule::Clock::time_point due;
    bool eof = false;
  };

  void ReadLoop();
  void WriteLoop();

  const int from_;
  const int to_;
  LinkSchedule schedule_;  // the reader thread's
  const size_t queue_limit_;
  const std::function<void()> on_failure_;

  Mutex mu_;
  CondVar changed_;  // a chunk queued or taken, or stopped
  std::deque<Chunk> queue_ HOIST_GUARDED_BY(mu_);
  size_t queued_bytes_ HOIST_GUARDED_BY(mu_) = 0;
  bool stopped_ HOIST_GUARDED_BY(mu_) = false;

  bool started_ = false;
  std::atomic<int> live_threads_{0};
  std::thread reader_;
  std::thread writer_;
};

}  // namespace hoist::wan
