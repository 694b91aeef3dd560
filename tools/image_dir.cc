#include "tools/image_impl.h"

namespace hoist {

Result<std::unique_ptr<ImageSource>> NewDirSource(const std::string& rootfs, const SourceOptions&) {
  return Fail(ENOTSUP, "dir:" + rootfs + ": not supported yet");
}

}  // namespace hoist
