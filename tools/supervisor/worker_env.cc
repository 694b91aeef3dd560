#include "tools/supervisor/worker_env.h"

#include <fcntl.h>

#include <cerrno>
#include <cstdlib>

namespace hoist {
namespace {

// A non-negative decimal that fits an int, or -1.
long ParseNonNegative(const char* text) {
  if (text == nullptr || *text == '\0') return -1;
  errno = 0;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || value < 0 || value > 0x7fffffff) return -1;
  return value;
}

}  // namespace

int InheritedFdFromEnv(const char* var) {
  const long value = ParseNonNegative(std::getenv(var));
  ::unsetenv(var);
  if (value < 0) return -1;
  const int fd = static_cast<int>(value);
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0) return -1;  // not open
  (void)::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  return fd;
}

pid_t InheritedPidFromEnv(const char* var) {
  const long value = ParseNonNegative(std::getenv(var));
  ::unsetenv(var);
  return value > 0 ? static_cast<pid_t>(value) : 0;
}

}  // namespace hoist
