// Map fault guard: keeps a process alive when a file it maps read-only (LMDB's data.mdb) is
// truncated under it, and leaves word for the next opener when liblmdb crashes on a damaged file.
//
// A read of a shared file mapping past the file's end raises SIGBUS, and LMDB reads its data
// file only through such a mapping. RegisterMappedRange arms a process-wide SIGBUS handler for
// [begin, end): a fault inside the range replaces the mapping from the faulting page to `end`
// with anonymous zero pages (PROT_READ, MAP_FIXED) and returns, so the faulting read is retried
// and sees zeros, and `*faults` is incremented. Zeros are never served as data: LMDB rejects a
// zero page (MDB_CORRUPTED / MDB_PAGE_NOTFOUND), chunk bodies fail their xxh3 checksum, and
// callers compare `*faults` before and after a read (LmdbEnv poisons the environment on the
// first fault).
//
// Crash marker: a damaged page can also make liblmdb dereference garbage (SIGSEGV outside the
// map), which no handler can turn into an error. While a thread is inside a MapUse of a range
// (LmdbEnv holds one for the life of each transaction), a SIGSEGV, or a SIGBUS outside every
// range, first writes the range's marker file (`marker_path` with `marker_text`, with raw
// open/write/close) and then goes on to the previous handler, so the process still dies, but the
// next open finds the marker and sets the file aside: one crash, never a crash loop.
//
// Faults outside every registered range (and outside a MapUse), and signals not raised by the
// kernel, go to the previous handler (or the default action: the process dies as it would have).
//
// Why not sigsetjmp/siglongjmp: jumping out of liblmdb skips its cleanup (held mutexes, reader
// slots, C++ destructors between the jump and the handler) and is undefined behaviour with C++
// frames in between; patching the map lets every call return normally with an error.
//
// Thread-safety: all functions are thread-safe; the handlers are async-signal-safe (lock-free
// atomics, thread-locals and raw syscalls only). At most kMaxMappedRanges ranges at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace hoist {

inline constexpr int kMaxMappedRanges = 16;

// Registers [begin, end) (page aligned) and installs the handlers on first use. Returns a slot
// for UnregisterMappedRange, or -1 if every slot is taken (the range is then unguarded).
// `faults` must stay valid until UnregisterMappedRange returns. The marker path and text are
// copied (at most 4095 and 511 bytes; longer ones disable the marker).
int RegisterMappedRange(uintptr_t begin, uintptr_t end, std::atomic<uint64_t>* faults,
                        const std::string& marker_path, const std::string& marker_text);
// Must be called before the range is unmapped, with no MapUse of it left. No-op for slot -1.
void UnregisterMappedRange(int slot);

// Marks this thread as using `slot`'s mapping until the matching LeaveMapUse on the same thread
// (they nest; the innermost slot is the one marked on a crash).
void EnterMapUse(int slot);
void LeaveMapUse();

// EnterMapUse / LeaveMapUse for a scope.
class MapUse {
 public:
  explicit MapUse(int slot) { EnterMapUse(slot); }
  ~MapUse() { LeaveMapUse(); }
  MapUse(const MapUse&) = delete;
  MapUse& operator=(const MapUse&) = delete;
};

}  // namespace hoist
