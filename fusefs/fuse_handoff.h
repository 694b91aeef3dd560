// FUSE connection handoff: how a new daemon process takes over a live FUSE connection (the
// /dev/fuse fd of a mount that another process opened), so a mount survives its daemon's crash
// and its upgrade (docs/ARCHITECTURE.md, "Surviving the daemon").
//
// The kernel negotiates a connection once, with one FUSE_INIT request; a daemon that takes the fd
// over later never sees it, and libfuse answers every request before INIT with EIO. So:
//   - every hoist session runs on ConnectionIo (libfuse's custom I/O): reads and writes are
//     plain read(2)/writev(2) on the fd, except that the kernel's INIT request is handed to a
//     recorder as it passes (the daemon keeps it with the fd: fd store, state memfd);
//   - a taking-over daemon calls ReplayInit with the recorded bytes before its loop starts:
//     libfuse initializes exactly as the first daemon did, and the reply (to a unique the kernel
//     never issued) is swallowed by ConnectionIo, never written;
//   - requests the dead daemon had read but not answered sit in the kernel's processing queue.
//     NotifyResend (FUSE_NOTIFY_RESEND, Linux 6.9) moves every such request back to the pending
//     queue, marked with the resend bit in its unique, so the new daemon reads and answers it.
//     It must be sent only once the previous daemon is gone (it also moves requests that the
//     sender is handling right now; those are answered twice, the first answer is dropped by the
//     kernel, which is harmless for a read-only filesystem). Kernels before 6.9 reject it
//     (EINVAL): such requests then wait until the caller gives up (documented in RELIABILITY).
//
// Thread-safety: ConnectionIo's callbacks run on libfuse's worker threads; the recorder is
// called at most once per registered fd, from one of them. Register/Unregister are thread-safe.
// Errors: ReplayInit fails with EPROTO when libfuse refuses the recorded INIT, EINVAL when the
// bytes are not an INIT request; NotifyResend carries write(2)'s errno (EINVAL: kernel too old).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "base/status.h"

struct fuse_session;

namespace hoist {

// The unique given to a replayed INIT: the kernel numbers requests upward from 2 in steps of 2
// and marks resent ones with bit 63, so it never issues this one.
inline constexpr uint64_t kReplayedInitUnique = 0x7ffffffffffffff0ULL;

class ConnectionIo {
 public:
  using InitRecorder = std::function<void(std::string_view init_request)>;
  // Installs the custom I/O on `se` over `fd` (fuse_session_custom_io). `recorder` (may be
  // empty) gets the kernel's INIT request, once. Call after fuse_session_mount for a fresh mount
  // (same fd), instead of it for a taken-over one.
  [[nodiscard]] static Status Install(fuse_session* se, int fd, InitRecorder recorder);
  // Forgets `fd`'s recorder (before the fd is closed and its number reused).
  static void Uninstall(int fd);
};

// Feeds `init_request` (recorded by ConnectionIo) to `se` as if the kernel had sent it.
[[nodiscard]] Status ReplayInit(fuse_session* se, std::string_view init_request);

// Writes FUSE_NOTIFY_RESEND to the connection `fd`.
[[nodiscard]] Status NotifyResend(int fd);

// Blocks until process `pid` has exited (a zombie counts as exited), or `pid` <= 0.
// Errors: pidfd_open's errno other than ESRCH.
[[nodiscard]] Status WaitForExit(pid_t pid);

// A taking-over process's whole setup of `se` on the inherited connection `fd`: ConnectionIo
// (no recorder) and the replayed INIT. `fd` is the session's from here on, also on failure
// (it is closed then).
[[nodiscard]] Status TakeOverConnection(fuse_session* se, int fd, std::string_view init_request);

// WaitForExit(previous_pid), then NotifyResend(fd), each outcome logged as one line naming
// `who` ("the layer store", "the mount"). For a thread of a taking-over process.
void ResendAfterExit(pid_t previous_pid, int fd, std::string_view who);

}  // namespace hoist
