// Logging: one line per event that matters, to stderr (which systemd sends to the journal).
//
//   HOIST_LOG(kInfo) << "mounted " << image << " in " << ms << " ms";
//
// The line is written with a single write(2), so lines from several threads never interleave.
// The level is process-wide; set it once at start-up (SetLogLevel) before starting threads.
#pragma once

#include <sstream>
#include <string_view>

namespace hoist {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kOff = 4 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// Parses "debug", "info", "warn"/"warning", "error", "off". Returns false if unknown.
bool ParseLogLevel(std::string_view text, LogLevel* level);

class LogLine {
 public:
  explicit LogLine(LogLevel level) : level_(level) {}
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

}  // namespace hoist

#define HOIST_LOG(level)                                   \
  if (::hoist::LogLevel::level < ::hoist::GetLogLevel()) { \
  } else                                                   \
    ::hoist::LogLine(::hoist::LogLevel::level).stream()
