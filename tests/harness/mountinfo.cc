#include "tests/harness/mountinfo.h"

#include "base/mountinfo.h"

namespace hoist::harness {

bool IsMounted(const std::string& path) {
  auto table = ReadMountInfo();
  if (!table) return false;
  for (const MountInfoEntry& e : *table) {
    if (e.mount_point == path) return true;
  }
  return false;
}

}  // namespace hoist::harness
