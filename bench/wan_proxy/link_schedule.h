// LinkSchedule: when each chunk of one direction of an emulated WAN link reaches the far end.
//
// The model is a wire of `bytes_per_second` followed by a propagation delay of `one_way`. A chunk
// of n bytes goes onto the wire once it has arrived and the wire is free, occupies it n / rate,
// then travels one_way:
//
//   finish_i  = max(arrival_i, finish_{i-1}) + n_i / rate
//   deliver_i = finish_i + one_way
//
// So deliver_i >= arrival_i + one_way (the delay) and deliver_i >= deliver_{i-1} + n_i / rate (the
// bandwidth), and deliveries keep the arrival order. A chunk of 0 bytes (end of stream) takes no
// wire time but is never delivered before the data queued ahead of it. bytes_per_second 0 means
// an unlimited rate (delay only). `not_before` holds the wire busy until then: the proxy starts
// the client-to-server direction one RTT after accept, the TCP handshake of a real WAN.
// Wire times are exact in nanoseconds (the remainder of n * 1e9 / rate is carried).
//
// Thread-safety: none; each direction's reader thread owns its schedule.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace hoist::wan {

class LinkSchedule {
 public:
  using Clock = std::chrono::steady_clock;

  LinkSchedule(std::chrono::nanoseconds one_way, uint64_t bytes_per_second,
               Clock::time_point not_before = {})
      : one_way_(one_way), rate_(bytes_per_second), wire_free_(not_before) {}

  // The delivery time of a chunk of `bytes` that arrived at `arrival`.
  Clock::time_point Deliver(Clock::time_point arrival, uint64_t bytes) {
    const Clock::time_point start = arrival > wire_free_ ? arrival : wire_free_;
    uint64_t wire_ns = 0;
    if (rate_ != 0 && bytes != 0) {
      const uint64_t numerator = bytes * 1'000'000'000ull + carry_;
      wire_ns = numerator / rate_;
      carry_ = numerator % rate_;
    }
    wire_free_ = start + std::chrono::nanoseconds(wire_ns);
    return wire_free_ + one_way_;
  }

 private:
  std::chrono::nanoseconds one_way_;
  uint64_t rate_;
  Clock::time_point wire_free_;
  uint64_t carry_ = 0;  // ns * rate not yet charged, < rate_
};

}  // namespace hoist::wan
