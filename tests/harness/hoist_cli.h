// RunHoist: runs the `hoist` binary of this build with arguments, for integration tests that
// assert on its exit code, stdout and stderr.
//
//   CommandResult r = harness::RunHoist({"inspect", "--raw", ref});
//   CommandResult r = harness::RunHoist({"login", "-u", user, "--password-stdin", host},
//                                       {"DOCKER_CONFIG=" + dir}, password + "\n");
//
// `env` entries ("KEY=VALUE") are added to the test's environment; `stdin_data` is written to the
// child's stdin (empty: /dev/null). The command is killed after `timeout`. A binary that could
// not be run comes back as a CommandResult with ok() false and the reason in stderr_text
// (RunForResult), so the reason shows in the test's failure message.
// Thread-safety: may be called from several threads at once.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "tests/harness/subprocess.h"

namespace hoist::harness {

// The path of the hoist executable built with these tests.
const char* HoistBinary();

CommandResult RunHoist(const std::vector<std::string>& args,
                       const std::vector<std::string>& env = {}, const std::string& stdin_data = "",
                       std::chrono::milliseconds timeout = std::chrono::minutes(5));

}  // namespace hoist::harness
