#include "fusefs/xattr_policy.h"

namespace hoist {

bool IsHiddenXattr(std::string_view name) {
  return name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.");
}

}  // namespace hoist
