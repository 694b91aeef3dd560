#include "tests/harness/mountinfo.h"

#include <fstream>
#include <sstream>

namespace hoist::harness {

bool IsMounted(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // mount ID, parent ID, major:minor, root, mount point, ...
    std::istringstream fields(line);
    std::string id, parent, dev, root, mount_point;
    fields >> id >> parent >> dev >> root >> mount_point;
    if (mount_point == path) return true;
  }
  return false;
}

}  // namespace hoist::harness
