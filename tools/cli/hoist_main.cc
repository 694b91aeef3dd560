// hoist: companion tools for lazily mounted container images.
#include <CLI/CLI.hpp>

#include "tools/cli/verbs.h"

int main(int argc, char** argv) {
  CLI::App app{"hoist: mount container images lazily, straight from a registry"};
  app.require_subcommand(1);
  hoist::VerbRunner run;
  hoist::RegisterVerbs(app, &run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return run ? run() : 0;
}
