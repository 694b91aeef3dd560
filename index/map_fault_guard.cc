#include "index/map_fault_guard.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/mutex.h"

namespace hoist {
namespace {

struct Range {
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<std::atomic<uint64_t>*> faults{nullptr};
  std::atomic<bool> has_marker{false};
  char marker_path[4096] = {};
  char marker_text[512] = {};
  size_t marker_len = 0;
};

Range g_ranges[kMaxMappedRanges];
Mutex g_register_mu;  // serialises Register/Unregister (never taken in a handler)
struct sigaction g_previous_bus {};
struct sigaction g_previous_segv {};
bool g_installed HOIST_GUARDED_BY(g_register_mu) = false;
std::atomic<uintptr_t> g_page_size{4096};  // sysconf is not async-signal-safe
thread_local int t_slot = -1;              // the map use this thread is in
thread_local int t_depth = 0;

// Replaces [page, end) with anonymous read-only zero pages. A raw syscall: the handler must not
// go through an interposed mmap (sanitizers intercept it).
bool PatchWithZeros(uintptr_t page, uintptr_t end) {
  long r = ::syscall(SYS_mmap, page, end - page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                     -1, 0);
  return r != -1 && static_cast<uintptr_t>(r) == page;
}

void WriteMarker(int slot) {
  if (slot < 0 || slot >= kMaxMappedRanges) return;
  Range& r = g_ranges[slot];
  if (!r.has_marker.load(std::memory_order_acquire)) return;
  long fd = ::syscall(SYS_openat, AT_FDCWD, r.marker_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                      0644);
  if (fd < 0) return;
  (void)::syscall(SYS_write, fd, r.marker_text, r.marker_len);
  (void)::syscall(SYS_close, fd);
}

void Chain(const struct sigaction& previous, int sig, siginfo_t* info, void* context) {
  if ((previous.sa_flags & SA_SIGINFO) != 0 && previous.sa_sigaction != nullptr) {
    previous.sa_sigaction(sig, info, context);
    return;
  }
  if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN &&
      previous.sa_handler != nullptr) {
    previous.sa_handler(sig);
    return;
  }
  // Default action: restore it; a fault is raised again when the access is retried, a signal
  // sent by kill() is raised again here.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
  if (info == nullptr || info->si_code <= 0) ::raise(sig);
}

void OnFault(int sig, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  const bool from_kernel = info != nullptr && info->si_code > 0;
  if (sig == SIGBUS && from_kernel) {
    const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
    const uintptr_t page_size = g_page_size.load(std::memory_order_relaxed);
    for (Range& r : g_ranges) {
      const uintptr_t begin = r.begin.load(std::memory_order_acquire);
      const uintptr_t end = r.end.load(std::memory_order_acquire);
      if (begin == 0 || addr < begin || addr >= end) continue;
      if (PatchWithZeros(addr & ~(page_size - 1), end)) {
        if (auto* f = r.faults.load(std::memory_order_acquire)) {
          f->fetch_add(1, std::memory_order_release);
        }
        errno = saved_errno;
        return;  // the access is retried and reads zeros
      }
      break;
    }
  }
  // A crash inside a transaction: leave word for the next opener, then die as before.
  if (from_kernel) WriteMarker(t_slot);
  errno = saved_errno;
  Chain(sig == SIGBUS ? g_previous_bus : g_previous_segv, sig, info, context);
}

}  // namespace

int RegisterMappedRange(uintptr_t begin, uintptr_t end, std::atomic<uint64_t>* faults,
                        const std::string& marker_path, const std::string& marker_text) {
  MutexLock lock(g_register_mu);
  if (!g_installed) {
    g_page_size.store(static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE)), std::memory_order_relaxed);
    struct sigaction sa {};
    sa.sa_sigaction = OnFault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (::sigaction(SIGBUS, &sa, &g_previous_bus) != 0) return -1;
    if (::sigaction(SIGSEGV, &sa, &g_previous_segv) != 0) {
      ::sigaction(SIGBUS, &g_previous_bus, nullptr);
      return -1;
    }
    g_installed = true;
  }
  for (int i = 0; i < kMaxMappedRanges; ++i) {
    Range& r = g_ranges[i];
    if (r.begin.load(std::memory_order_relaxed) != 0) continue;
    const bool marker = marker_path.size() < sizeof r.marker_path &&
                        marker_text.size() < sizeof r.marker_text && !marker_path.empty();
    if (marker) {
      std::memcpy(r.marker_path, marker_path.c_str(), marker_path.size() + 1);
      std::memcpy(r.marker_text, marker_text.data(), marker_text.size());
      r.marker_len = marker_text.size();
    }
    r.has_marker.store(marker, std::memory_order_release);
    r.faults.store(faults, std::memory_order_release);
    r.end.store(end, std::memory_order_release);
    r.begin.store(begin, std::memory_order_release);
    return i;
  }
  return -1;
}

void UnregisterMappedRange(int slot) {
  if (slot < 0 || slot >= kMaxMappedRanges) return;
  MutexLock lock(g_register_mu);
  Range& r = g_ranges[slot];
  r.begin.store(0, std::memory_order_release);
  r.end.store(0, std::memory_order_release);
  r.faults.store(nullptr, std::memory_order_release);
  r.has_marker.store(false, std::memory_order_release);
}

void EnterMapUse(int slot) {
  ++t_depth;
  t_slot = slot;
}

void LeaveMapUse() {
  if (t_depth > 0 && --t_depth == 0) t_slot = -1;
}

}  // namespace hoist
