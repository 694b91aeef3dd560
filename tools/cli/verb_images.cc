#include "tools/cli/verb_images.h"

#include <cstdlib>
#include <optional>

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

Descriptor ManifestDescriptor(const ManifestBytes& m) {
  Descriptor d;
  d.media_type = m.media_type;
  d.digest = m.digest;
  d.size = static_cast<int64_t>(m.bytes.size());
  return d;
}

Result<PinnedManifest> ResolvePinned(RegistryClient& client, const Reference& ref) {
  PinnedManifest out;
  HOIST_ASSIGN_OR_RETURN(out.resolved, client.Resolve(ref, std::nullopt, ConfigFetch::kSkip));
  out.subject = ManifestDescriptor(out.resolved.manifest_bytes);
  return out;
}

}  // namespace hoist
