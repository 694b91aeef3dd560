// Byte-stream callbacks used by the format code in index/: a reader pulls bytes from wherever the
// caller keeps them (a file, a decompressor, a network body) and a sink receives output bytes.
// The format code never knows where bytes come from or go to (no files, no network, no FUSE).
//
// ReadCallback: fills up to `n` bytes of `buf`; returns the count, 0 only at the end of the
//   stream; an error is passed up unchanged (with context added by the caller of the format code).
// WriteCallback: consumes all of `data` or fails.
//
// Thread-safety: a callback is invoked from one thread at a time (the thread that drives the
// reader/writer), never concurrently.
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>

#include "base/status.h"

namespace hoist {

using ReadCallback = std::function<Result<size_t>(char* buf, size_t n)>;
using WriteCallback = std::function<Status(std::string_view data)>;

// A ReadCallback over a borrowed, in-memory buffer. `data` must outlive the callback.
ReadCallback MemoryReader(std::string_view data);

}  // namespace hoist
