#include "bench/wan_proxy/connection.h"

#include <sys/socket.h>

#include <algorithm>
#include <utility>

namespace hoist::wan {

size_t Connection::QueueLimit(const LinkParams& link) {
  constexpr size_t kMin = 1 << 20;
  constexpr size_t kMax = 64 << 20;
  if (link.bytes_per_second == 0) return kMax;
  const double bdp =
      static_cast<double>(link.bytes_per_second) * std::chrono::duration<double>(link.rtt).count();
  const double limit = 2 * bdp + 4 * 65536.0;
  return static_cast<size_t>(
      std::clamp(limit, static_cast<double>(kMin), static_cast<double>(kMax)));
}

Connection::Connection(ScopedFd client, ScopedFd upstream, const LinkParams& link,
                       LinkSchedule::Clock::time_point accepted_at)
    : client_(std::move(client)), upstream_(std::move(upstream)) {
  const auto one_way = link.rtt / 2;
  const size_t limit = QueueLimit(link);
  const auto first_send = link.handshake ? accepted_at + link.rtt : accepted_at;
  to_upstream_ = std::make_unique<Direction>(
      client_.get(), upstream_.get(), LinkSchedule(one_way, link.bytes_per_second, first_send),
      limit, [this] { Abort(); });
  to_client_ = std::make_unique<Direction>(upstream_.get(), client_.get(),
                                           LinkSchedule(one_way, link.bytes_per_second), limit,
                                           [this] { Abort(); });
  to_upstream_->Start();
  to_client_->Start();
}

Connection::~Connection() {
  // Every thread of both directions ends before either direction is destroyed: a thread of one
  // may be inside Abort, calling Stop on the other. Then the sockets close (members).
  Abort();
  to_upstream_->Join();
  to_client_->Join();
}

void Connection::Abort() {
  if (aborted_.exchange(true)) return;
  to_upstream_->Stop();
  to_client_->Stop();
  ::shutdown(client_.get(), SHUT_RDWR);
  ::shutdown(upstream_.get(), SHUT_RDWR);
}

}  // namespace hoist::wan
