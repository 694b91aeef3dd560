// Which layer-supplied extended attributes the mount shows.
//
// Hidden: "trusted.overlay.*" and "user.overlay.*". overlayfs interprets these on its lower
// layers (opaque, redirect, metacopy, whiteout, origin; the "user." form with userxattr, as
// rootless podman mounts it), so an image must not be able to plant them on a mount that is
// used as an overlay lower layer. Everything else passes unchanged, including
// security.capability (file capabilities are part of the image; the mount is nosuid).
//
// A layer view (merged_view.h, "Layer views") shows one more: kOverlayOpaqueXattr = "y" on the
// directories an OCI opaque marker made opaque. It is synthesised by the view, never taken from
// the layer (a layer-supplied trusted.overlay.opaque stays hidden).
//
// Pure function; thread-safe.
#pragma once

#include <string_view>

namespace hoist {

inline constexpr std::string_view kOverlayOpaqueXattr = "trusted.overlay.opaque";

bool IsHiddenXattr(std::string_view name);

}  // namespace hoist
