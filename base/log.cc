#include "base/log.h"

#include <unistd.h>

#include <atomic>
#include <string>

namespace hoist {
namespace {
std::atomic<LogLevel> g_level{LogLevel::kWarning};
const char* Tag(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
    case LogLevel::kOff:
      return "";
  }
  return "";
}
}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(level); }
LogLevel GetLogLevel() { return g_level.load(std::memory_order_relaxed); }

bool ParseLogLevel(std::string_view text, LogLevel* level) {
  if (text == "debug")
    *level = LogLevel::kDebug;
  else if (text == "info")
    *level = LogLevel::kInfo;
  else if (text == "warn" || text == "warning")
    *level = LogLevel::kWarning;
  else if (text == "error")
    *level = LogLevel::kError;
  else if (text == "off" || text == "none")
    *level = LogLevel::kOff;
  else
    return false;
  return true;
}

LogLine::~LogLine() {
  std::string line = std::string("hoist ") + Tag(level_) + ": " + stream_.str() + "\n";
  ssize_t ignored = ::write(2, line.data(), line.size());
  (void)ignored;
}

}  // namespace hoist
