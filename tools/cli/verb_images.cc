#include "tools/cli/verb_images.h"

#include <cstdlib>

namespace hoist {

std::string ScratchParent(const std::string& work_dir, const char* fallback) {
  if (!work_dir.empty()) return work_dir;
  const char* tmp = ::getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : fallback;
}

Status VerbImageSource::Open(const ImageName& name, const RegistryOptions& registry,
                             const std::string& parent, std::string_view prefix) {
  HOIST_RETURN_IF_ERROR(work_.Create(parent, prefix));
  SourceOptions so;
  so.work_dir = work_.path();
  so.registry = registry;
  HOIST_ASSIGN_OR_RETURN(source_, OpenImageSource(name, so));
  return Ok();
}

}  // namespace hoist
