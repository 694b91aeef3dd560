// `hoist convert [options] SRC DST`: rewrites every layer of an image into zstd:chunked (see
// tools/convert/convert_image.h for the work and its guarantees, tools/image/image_transport.h for
// the transports). Exit 0 on success; on failure one line "hoist convert: <what failed>" and a
// non-zero exit, with nothing new visible at DST.
#pragma once

#include <CLI/CLI.hpp>

#include "tools/cli/verbs.h"

namespace hoist {

void RegisterConvert(CLI::App& app, VerbRunner* run);

}  // namespace hoist
