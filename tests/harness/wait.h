// WaitUntil: what a test does instead of sleeping and hoping. Polls `condition` until it holds
// or `deadline` has passed, and returns whether it held (the last evaluation decides, so a
// condition that becomes true just at the deadline still counts).
//
//   ASSERT_TRUE(harness::WaitUntil([&] { return source.blocked() == 4; }));
//
// The default deadline is generous (a loaded 2-core machine running sanitizer builds): a
// condition that holds returns at once, so a long deadline costs nothing when things work and
// only bounds how long a broken build takes to fail. Header-only, so tests that do not link the
// harness library can use it. Thread-safety: none of its own; `condition` must be safe to call
// from the test thread.
#pragma once

#include <chrono>
#include <thread>

namespace hoist::harness {

inline constexpr std::chrono::milliseconds kGenerousDeadline{30000};

template <class Condition>
bool WaitUntil(Condition&& condition, std::chrono::milliseconds deadline = kGenerousDeadline,
               std::chrono::milliseconds poll = std::chrono::milliseconds(5)) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= end) return condition();
    std::this_thread::sleep_for(poll);
  }
  return true;
}

}  // namespace hoist::harness
