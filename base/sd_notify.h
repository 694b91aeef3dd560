// SdNotify: systemd's readiness protocol (sd_notify(3)) without libsystemd: one datagram with
// newline-separated "KEY=VALUE" assignments sent to the AF_UNIX socket named by
// $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace). hoistfs -f sends "READY=1"
// once its mount is usable, hoist-snapshotter once its socket serves, so `Type=notify` units
// (systemd/hoistfs@.service, systemd/hoist-snapshotter.service) start their dependents only then.
//
// Thread-safety: reentrant (reads the environment, opens and closes its own socket).
// Errors: none when NOTIFY_SOCKET is unset or empty (not under systemd: nothing to do);
// EINVAL for a malformed socket name; the socket call's errno otherwise.
#pragma once

#include <span>
#include <string_view>

#include "base/status.h"

namespace hoist {

[[nodiscard]] Status SdNotify(std::string_view state);

// The same, with `fds` passed along as SCM_RIGHTS (FDSTORE=1: base/fd_store.h).
[[nodiscard]] Status SdNotifyWithFds(std::string_view state, std::span<const int> fds);

}  // namespace hoist
