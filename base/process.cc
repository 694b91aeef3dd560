#include "base/process.h"

#include <string>

#include "base/file_util.h"

namespace hoist {

bool ProcessAlive(int64_t pid) {
  if (pid <= 0) return false;
  auto stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  // "pid (comm) S ...": the state follows the last ')' (comm may hold spaces and parentheses).
  const size_t paren = stat->rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat->size()) return false;
  const char state = (*stat)[paren + 2];
  return state != 'Z' && state != 'X';
}

}  // namespace hoist
