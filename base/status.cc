#include "base/status.h"

#include <cstring>

namespace hoist {

Error ErrnoError(std::string_view what, int err) {
  return Error(err, std::string(what) + ": " + std::strerror(err));
}

}  // namespace hoist
