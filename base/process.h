// Whether a process is running, from /proc/PID/stat (a zombie or dead process is not).
// Used to wait for a hoistfs daemon to exit after its unmount. Thread-safety: reads /proc.
#pragma once

#include <cstdint>

namespace hoist {

bool ProcessAlive(int64_t pid);

}  // namespace hoist
