// The man page (hoist.1, man(7) macros) and the bash completion script, both generated from the
// CLI11 definition of every verb, so they list exactly the verbs, options and help texts
// `hoist --help` shows. The build runs the hidden verb `hoist __generate man|bash` to write them
// (tools/cli/CMakeLists.txt) and `cmake --install` installs them (man1/, bash-completion/).
// Hidden subcommands (group "") are left out. Plain functions; no state.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "tools/cli/verbs.h"

namespace hoist {

// The exit status scheme, one line per code (the man page's EXIT STATUS and README say the same).
inline constexpr const char* kExitStatusText[][2] = {
    {"0", "success"},
    {"1", "the command failed (registry, network, store or image error)"},
    {"2", "usage error: unknown command or option, missing or malformed argument"},
    {"125", "hoist run: hoist could not start the container, or a usage error"},
    {"127", "hoist run: the container runtime was not found"},
};

std::string ManPage(const CLI::App& app);
std::string BashCompletion(const CLI::App& app);

// Registers the hidden `__generate man|bash` verb, which prints one of the two above for `app`.
void RegisterGenerate(CLI::App& app, VerbRunner* run);

}  // namespace hoist
