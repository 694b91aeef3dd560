// The `hoist` verbs. Each verb lives in its own file (tools/<verb>.cc) and registers its CLI11
// subcommand here. A verb returns the process exit code; errors are printed as one line
// "hoist <verb>: <message>" on stderr and never as a trace.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

namespace hoist {

// Called after parsing when the subcommand was chosen; returns the exit code.
using VerbRunner = std::function<int()>;

// Adds every verb to `app`; `*run` is set to the runner of the chosen one.
void RegisterVerbs(CLI::App& app, VerbRunner* run);

// Prints "hoist <verb>: <message>" to stderr and returns 1 (or `code`).
int ReportError(const std::string& verb, const std::string& message, int code = 1);

}  // namespace hoist
