#include "tools/cli/verbs.h"

#include <cstdio>

#include "tools/cli/convert.h"

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
void RegisterUpgrade(CLI::App& app, VerbRunner* run);
void RegisterStats(CLI::App& app, VerbRunner* run);
void RegisterBundle(CLI::App& app, VerbRunner* run);
void RegisterRun(CLI::App& app, VerbRunner* run);
void RegisterPull(CLI::App& app, VerbRunner* run);
void RegisterImages(CLI::App& app, VerbRunner* run);
void RegisterRm(CLI::App& app, VerbRunner* run);
void RegisterPrune(CLI::App& app, VerbRunner* run);
void RegisterTag(CLI::App& app, VerbRunner* run);
void RegisterPush(CLI::App& app, VerbRunner* run);
void RegisterHistory(CLI::App& app, VerbRunner* run);
void RegisterLogin(CLI::App& app, VerbRunner* run);
void RegisterLoad(CLI::App& app, VerbRunner* run);
void RegisterSave(CLI::App& app, VerbRunner* run);
void RegisterReferrers(CLI::App& app, VerbRunner* run);
void RegisterAttach(CLI::App& app, VerbRunner* run);
void RegisterOptimize(CLI::App& app, VerbRunner* run);
void RegisterIndex(CLI::App& app, VerbRunner* run);
void RegisterCopy(CLI::App& app, VerbRunner* run);
void RegisterDelete(CLI::App& app, VerbRunner* run);
void RegisterManifestDigest(CLI::App& app, VerbRunner* run);
void RegisterVersion(CLI::App& app, VerbRunner* run);

void RegisterVerbs(CLI::App& app, VerbRunner* run) {
  RegisterConvert(app, run);
  RegisterInspect(app, run);
  RegisterTags(app, run);
  RegisterSearch(app, run);
  RegisterMount(app, run);
  RegisterUmount(app, run);
  RegisterUpgrade(app, run);
  RegisterStats(app, run);
  RegisterBundle(app, run);
  RegisterRun(app, run);
  RegisterPull(app, run);
  RegisterImages(app, run);
  RegisterRm(app, run);
  RegisterPrune(app, run);
  RegisterTag(app, run);
  RegisterPush(app, run);
  RegisterHistory(app, run);
  RegisterLogin(app, run);
  RegisterLoad(app, run);
  RegisterSave(app, run);
  RegisterReferrers(app, run);
  RegisterAttach(app, run);
  RegisterOptimize(app, run);
  RegisterIndex(app, run);
  RegisterCopy(app, run);
  RegisterDelete(app, run);
  RegisterManifestDigest(app, run);
  RegisterVersion(app, run);
}

}  // namespace hoist
