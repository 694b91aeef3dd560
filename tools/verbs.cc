#include "tools/verbs.h"

#include <cstdio>

namespace hoist {

int ReportError(const std::string& verb, const std::string& message, int code) {
  std::fprintf(stderr, "hoist %s: %s\n", verb.c_str(), message.c_str());
  return code;
}

void RegisterVerbs(CLI::App& app, VerbRunner* run) {
  (void)app;
  (void)run;
}

}  // namespace hoist
