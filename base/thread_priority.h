// Background threads (the prefetcher, the index writer) give way to the threads serving reads.
//
// LowerThisThreadPriority sets the calling thread's nice value to kBackgroundNice (Linux nice
// values are per thread). Only CPU scheduling changes: a background thread still runs whenever a
// core is free, so it is never starved on an idle machine. Best effort: an error is ignored.
// Thread-safety: affects only the calling thread.
#pragma once

namespace hoist {

inline constexpr int kBackgroundNice = 10;

void LowerThisThreadPriority();

}  // namespace hoist
