#include "tools/verbs.h"

#include <cstdio>

#include "tools/convert.h"

namespace hoist {

int ReportError(const std::string& verb, const std::string& message, int code) {
  std::fprintf(stderr, "hoist %s: %s\n", verb.c_str(), message.c_str());
  return code;
}

void RegisterInspect(CLI::App& app, VerbRunner* run);
void RegisterTags(CLI::App& app, VerbRunner* run);
void RegisterSearch(CLI::App& app, VerbRunner* run);
void RegisterMount(CLI::App& app, VerbRunner* run);
void RegisterUmount(CLI::App& app, VerbRunner* run);
void RegisterStats(CLI::App& app, VerbRunner* run);
void RegisterBundle(CLI::App& app, VerbRunner* run);
void RegisterRun(CLI::App& app, VerbRunner* run);

void RegisterVerbs(CLI::App& app, VerbRunner* run) {
  RegisterConvert(app, run);
  RegisterInspect(app, run);
  RegisterTags(app, run);
  RegisterSearch(app, run);
  RegisterMount(app, run);
  RegisterUmount(app, run);
  RegisterStats(app, run);
  RegisterBundle(app, run);
  RegisterRun(app, run);
}

}  // namespace hoist
