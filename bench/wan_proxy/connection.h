// Connection: one accepted client socket and its upstream socket, joined by two Directions
// (client -> upstream, upstream -> client) over the same emulated link parameters.
//
// The client-to-upstream direction starts with its wire busy until accept + RTT when
// `handshake` is set: a client on a real WAN cannot send before its SYN/SYN-ACK round trip, but
// the proxy's accept on loopback is instant, so the first request would otherwise be one RTT
// early. Half-close is propagated by the Directions (EOF after the queued data); when both have
// delivered their EOF the connection is Finished and its owner destroys it, which closes both
// sockets. Abort (a reset or error on either side, or the proxy stopping) shuts both sockets down
// and stops both directions at once, dropping what is queued.
//
// Thread-safety: Abort and Finished may be called from any thread (Directions call Abort from
// theirs). The destructor joins the threads; call it from the thread that owns the Connection.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include "base/scoped_fd.h"
#include "bench/wan_proxy/direction.h"

namespace hoist::wan {

struct LinkParams {
  std::chrono::nanoseconds rtt{0};
  uint64_t bytes_per_second = 0;  // per direction; 0: unlimited
  bool handshake = true;
};

class Connection {
 public:
  // Starts both directions. `accepted_at`: when the client's connection was accepted.
  Connection(ScopedFd client, ScopedFd upstream, const LinkParams& link,
             LinkSchedule::Clock::time_point accepted_at);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void Abort();
  bool Finished() const { return to_upstream_->Finished() && to_client_->Finished(); }

  // Bytes a direction may hold in its queue: twice the link's bandwidth-delay product plus a
  // few reads, at least 1 MiB, at most 64 MiB (the cap for an unlimited rate).
  static size_t QueueLimit(const LinkParams& link);

 private:
  ScopedFd client_;
  ScopedFd upstream_;
  std::atomic<bool> aborted_{false};
  std::unique_ptr<Direction> to_upstream_;
  std::unique_ptr<Direction> to_client_;
};

}  // namespace hoist::wan
