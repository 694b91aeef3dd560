// Helpers shared by the libFuzzer targets in tests/fuzz/: a cursor that turns the fuzz input into
// small integers and strings (the structure-aware targets build their inputs from it), and
// FUZZ_CHECK, which aborts (a crash libFuzzer records) when a documented invariant of a parser's
// successful result does not hold.
//
// Thread-safety: plain values, one thread. Ownership: FuzzInput borrows the input bytes, which
// must outlive it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

namespace hoist::fuzz {

inline std::string_view AsView(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

class FuzzInput {
 public:
  explicit FuzzInput(std::string_view data) : data_(data) {}

  bool empty() const { return pos_ >= data_.size(); }
  size_t remaining() const { return data_.size() - pos_; }

  // The next byte, or 0 once the input is used up.
  uint8_t Byte() { return pos_ < data_.size() ? static_cast<uint8_t>(data_[pos_++]) : 0; }

  // Little-endian integer from the next `bytes` bytes (missing bytes are 0).
  uint64_t Uint(int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= uint64_t{Byte()} << (8 * i);
    return v;
  }

  // A value in [0, n), n > 0.
  uint64_t Below(uint64_t n) { return Uint(n <= 256 ? 1 : n <= 65536 ? 2 : 8) % n; }

  // Up to `max` bytes, length taken from the input.
  std::string_view Bytes(size_t max) {
    size_t n = static_cast<size_t>(Below(max + 1));
    if (n > remaining()) n = remaining();
    std::string_view out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }

  // Everything not consumed yet.
  std::string_view Rest() {
    std::string_view out = data_.substr(pos_ < data_.size() ? pos_ : data_.size());
    pos_ = data_.size();
    return out;
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

}  // namespace hoist::fuzz
