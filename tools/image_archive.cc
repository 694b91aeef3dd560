#include "tools/image_impl.h"

namespace hoist {

Result<std::unique_ptr<ImageSource>> NewDockerArchiveSource(const std::string& file,
                                                            const SourceOptions&) {
  return Fail(ENOTSUP, "docker-archive:" + file + ": not supported yet");
}

}  // namespace hoist
