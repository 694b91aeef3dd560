// Which layer-supplied extended attributes the mount shows.
//
// Hidden: "trusted.overlay.*" and "user.overlay.*". overlayfs interprets these on its lower
// layers (opaque, redirect, metacopy, whiteout, origin; the "user." form with userxattr, as
// rootless podman mounts it), so an image must not be able to plant them on a mount that is
// used as an overlay lower layer. Everything else passes unchanged, including
// security.capability (file capabilities are part of the image; the mount is nosuid).
//
// Pure function; thread-safe.
#pragma once

#include <string_view>

namespace hoist {

bool IsHiddenXattr(std::string_view name);

}  // namespace hoist
