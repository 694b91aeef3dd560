// hoist version [--format json]: the client's details, like `docker version`'s client part and
// `skopeo --version`: version, git commit, commit date, compiler, OS/arch.
#include "tools/cli/version.h"

#include <cstdio>
#include <memory>

#include "fetcher/manifest.h"
#include "tools/cli/json_out.h"
#include "tools/cli/verbs.h"

namespace hoist {

std::string VersionLine() {
  std::string line = std::string("hoist version ") + kHoistVersion;
  if (*kHoistGitCommit != '\0') line += std::string(", commit ") + kHoistGitCommit;
  return line;
}

namespace {

std::string Compiler() {
#if defined(__clang__)
  return "clang " __clang_version__;
#elif defined(__GNUC__)
  return "gcc " __VERSION__;
#else
  return "unknown";
#endif
}

struct VersionArgs {
  std::string format;
};

int RunVersion(const VersionArgs& a) {
  const Platform host = Platform::Host();
  const std::string os_arch = host.os + "/" + host.architecture;
  const std::string commit = *kHoistGitCommit ? kHoistGitCommit : "unknown";
  const std::string built = *kHoistCommitDate ? kHoistCommitDate : "unknown";
  if (a.format == "json") {
    JsonOut j;
    j.w().StartObject();
    j.KeyString("Version", kHoistVersion);
    j.KeyString("GitCommit", commit);
    j.KeyString("GitDescribe", kHoistGitDescribe);
    j.KeyString("Built", built);
    j.KeyString("Compiler", Compiler());
    j.KeyString("Os", host.os);
    j.KeyString("Arch", host.architecture);
    j.w().EndObject();
    std::fputs(j.Finish().c_str(), stdout);
    return 0;
  }
  if (!a.format.empty()) {
    return ReportError("version", "unknown --format \"" + a.format + "\" (only json is known)", 2);
  }
  std::printf("Version:     %s\n", kHoistVersion);
  std::printf("Git commit:  %s\n", commit.c_str());
  std::printf("Built:       %s\n", built.c_str());
  std::printf("Compiler:    %s\n", Compiler().c_str());
  std::printf("OS/Arch:     %s\n", os_arch.c_str());
  return 0;
}

}  // namespace

void RegisterVersion(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<VersionArgs>();
  CLI::App* sub = app.add_subcommand("version", "Show the version, commit, compiler and OS/arch");
  sub->add_option("-f,--format", args->format, "json: the same fields as one JSON object");
  sub->callback([args, run] { *run = [args] { return RunVersion(*args); }; });
}

}  // namespace hoist
