#include "tests/harness/hoist_cli.h"

#ifndef HOIST_BINARY
#error "HOIST_BINARY must name the hoist executable"
#endif

namespace hoist::harness {

const char* HoistBinary() { return HOIST_BINARY; }

CommandResult RunHoist(const std::vector<std::string>& args, const std::vector<std::string>& env,
                       const std::string& stdin_data, std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {HoistBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandOptions options;
  options.timeout = timeout;
  options.env = env;
  options.stdin_data = stdin_data;
  return RunForResult(argv, options);
}

}  // namespace hoist::harness
