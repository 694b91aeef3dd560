// Linked into every fuzz target: silences hoist's log (parsers warn on odd but accepted input,
// e.g. duplicate paths in a layer) so stderr carries only libFuzzer's and the sanitizers' output.
#include "base/log.h"

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  hoist::SetLogLevel(hoist::LogLevel::kOff);
  return 0;
}
