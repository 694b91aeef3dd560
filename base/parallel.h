// ParallelFor: the one parallel loop of hoist (range reads, layer indexing, prefetch groups,
// convert jobs, pull groups).
//
// Runs body(i) for every i in [0, n) on up to `threads` threads, the calling thread being one of
// them (so threads <= 1 runs everything inline, in order); indices are taken in increasing order.
// Once a body returns an error no new index is started; the call returns when every started body
// has returned, with the error that was returned first (in time), or Ok. A body that must not
// stop the loop records its failure itself and returns Ok.
// Thread-safety: `body` runs concurrently on several threads and must be safe for that.
#pragma once

#include <cstddef>
#include <functional>

#include "base/status.h"

namespace hoist {

Status ParallelFor(size_t n, size_t threads, const std::function<Status(size_t)>& body);

}  // namespace hoist
