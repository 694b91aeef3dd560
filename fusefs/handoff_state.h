// HandoffState: what a daemon taking over a live FUSE connection needs besides the fd itself,
// kept in a memfd stored next to the connection (fd store, base/fd_store.h), so it outlives
// the process that wrote it and needs no file on disk.
//
// Content (JSON): the canonical mountpoint, the kernel's FUSE INIT request as recorded
// (fuse_handoff.h; base64), and for a hoistfs mount the image exactly as the first daemon
// resolved it: the reference as given, the manifest's media type and bytes (so a tag that moved
// since, or a registry that is down, cannot change what the mount shows), and whether it came
// from the local store. The memfd is written once, complete, before it is stored; it is never
// changed afterwards.
//
// Thread-safety: plain values and reentrant functions.
// Errors: EINVAL naming the problem for malformed or foreign content; I/O errno otherwise.
#pragma once

#include <string>
#include <string_view>

#include "base/scoped_fd.h"
#include "base/status.h"

namespace hoist {

struct HandoffState {
  std::string mountpoint;  // canonical
  std::string init;        // raw FUSE_INIT request bytes
  // hoistfs (merged view) only:
  std::string reference;
  std::string manifest_media_type;
  std::string manifest;  // raw bytes
  bool from_local_store = false;
};

std::string HandoffStateToJson(const HandoffState& state);
[[nodiscard]] Result<HandoffState> HandoffStateFromJson(std::string_view json);

// A sealed-size memfd ("hoist-handoff") holding the state; close-on-exec.
[[nodiscard]] Result<ScopedFd> WriteHandoffMemfd(const HandoffState& state);
// Reads a memfd (or any file) from offset 0, at most 64 MiB.
[[nodiscard]] Result<HandoffState> ReadHandoffMemfd(int fd);

}  // namespace hoist
