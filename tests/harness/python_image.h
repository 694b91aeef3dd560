// The python test image: busybox-static (sh, cat, id, ...) plus the host's dynamically linked
// python3.11 with the shared libraries ldd names, its loader, and the few stdlib files
// `python3 -c` needs (os.py as the prefix landmark, encodings/). In it,
// `python3 -c 'print(40+2)'` prints "42\n".
//
//   auto layers = PythonImageLayers({FileSpec::File("etc/passwd", "root:x:0:0::/:/bin/sh\n")});
//   auto image = BuildOciImage(dir, *layers, {.tag = "py", .cmd = {"python3"}});
//
// Two layers, both gzip: layer 1 is bin/ (busybox and its applets sh cat id pwd ls echo test
// sleep kill), then `base_extra` in the order given, then tmp (01777), proc, dev, sys; layer 2 is
// usr/bin/python3.11 (+ the python3 symlink), every library of `ldd /usr/bin/python3.11` at its
// host path, usr/lib/python3.11/os.py, lib-dynload/ and encodings/{__init__,aliases,utf_8,
// ascii,latin_1}.py. The files are read from the host, so the digests are stable on one host.
//
// Thread-safety: independent calls. Errors: ENOENT for a missing host file or ldd, else the
// failing read's or command's error.
#pragma once

#include <vector>

#include "base/status.h"
#include "tests/harness/oci_image.h"

namespace hoist::harness {

[[nodiscard]] Result<std::vector<LayerSpec>> PythonImageLayers(
    const std::vector<FileSpec>& base_extra = {});

}  // namespace hoist::harness
