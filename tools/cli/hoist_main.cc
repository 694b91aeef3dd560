// hoist: companion tools for lazily mounted container images.
//
// Exit status (README "Exit status", `hoist.1` EXIT STATUS): 0 success, 1 the command failed,
// 2 a usage error (unknown command or option, missing or malformed argument), and for `hoist run`
// the container's own status, or 125/127 as `docker run` (a usage error of `run` is 125).
// A usage error is one line on stderr naming the command: "hoist: unknown command "foo" (see
// hoist --help)", "hoist inspect: IMAGE is required (see hoist inspect --help)".
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "tools/cli/cli_doc.h"
#include "tools/cli/verbs.h"
#include "tools/cli/version.h"

namespace {

constexpr int kUsageError = 2;
constexpr int kRunUsageError = 125;  // docker run's "the command itself failed"

std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// The verb named on the command line (the first argument not starting with '-'), "" if none.
std::string FirstWord(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] != '-') return argv[i];
  }
  return "";
}

// pflag (docker, skopeo) accepts a short flag with a value after '=' ("-H=false"); CLI11 does
// not. Each "-X=VALUE" (before any "--") becomes "--long=VALUE" when the verb's -X has a long
// name.
std::vector<std::string> ShortEqualsToLong(CLI::App& app, int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  const std::string word = FirstWord(argc, argv);
  CLI::App* verb = nullptr;
  try {
    verb = word.empty() ? nullptr : app.get_subcommand(word);
  } catch (const CLI::OptionNotFound&) {
    verb = nullptr;
  }
  // Not for verbs that pass what follows their image on (run, bundle: a container's command).
  if (verb == nullptr || verb->get_prefix_command()) return args;
  for (std::string& a : args) {
    if (a == "--") break;
    if (a.size() < 3 || a[0] != '-' || a[1] == '-' || a[2] != '=') continue;
    const CLI::Option* o = verb->get_option_no_throw(a.substr(0, 2));
    if (o != nullptr && !o->get_lnames().empty()) a = "--" + o->get_lnames()[0] + a.substr(2);
  }
  return args;
}

int UsageError(CLI::App& app, int argc, char** argv, const CLI::ParseError& e) {
  const std::string word = FirstWord(argc, argv);
  CLI::App* verb = nullptr;
  if (!word.empty()) {
    try {
      verb = app.get_subcommand(word);
    } catch (const CLI::OptionNotFound&) {
      verb = nullptr;
    }
  }
  if (verb == nullptr || verb->get_group().empty()) {
    if (word.empty()) {
      std::fprintf(stderr, "hoist: %s (see hoist --help)\n",
                   argc > 1 ? OneLine(e.what()).c_str() : "no command given");
    } else {
      std::fprintf(stderr, "hoist: unknown command \"%s\" (see hoist --help)\n", word.c_str());
    }
    return kUsageError;
  }
  std::fprintf(stderr, "hoist %s: %s (see hoist %s --help)\n", word.c_str(),
               OneLine(e.what()).c_str(), word.c_str());
  return word == "run" ? kRunUsageError : kUsageError;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hoist: mount container images lazily, straight from a registry", "hoist"};
  app.require_subcommand(1);
  app.set_version_flag("--version", hoist::VersionLine(), "Print the version and exit");
  app.footer(
      "Exit status: 0 success, 1 failure, 2 usage error (hoist run: the container's, or "
      "125/127 as docker run).");
  hoist::VerbRunner run;
  hoist::RegisterVerbs(app, &run);
  hoist::RegisterGenerate(app, &run);
  std::vector<std::string> args = ShortEqualsToLong(app, argc, argv);
  std::reverse(args.begin(), args.end());
  args.pop_back();  // the program name
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return UsageError(app, argc, argv, e);
  }
  return run ? run() : 0;
}
