// Access traces: which files of an image a workload opened, in the order it first opened them,
// as recorded by a mount with -o trace=FILE (fusefs/trace_recorder.h) and consumed by `hoist
// optimize` (as a prefetch list) and by mounts that prefetch what a trace names.
//
// The format (application/vnd.hoist.trace.v1+json, also the artifactType of a trace published
// as an OCI referrer of the image), one JSON object:
//   {"schemaVersion":1,"image":"sha256:<manifest>","files":[{"layer":"sha256:..","path":".."}]}
//   image   the digest of the image manifest the trace was recorded on (one platform's
//           manifest, never an index)
//   files   in first-open order, each (layer, path) once; `layer` is the compressed layer
//           blob's digest (manifest order names no layer twice), `path` the file's cleaned path
//           in that layer as LayerIndex Entry::path has it ("usr/bin/env": no leading "/", no
//           "." or ".." components, never "")
// SerializeAccessTrace writes exactly that, keys in that order, no whitespace: the same trace
// gives the same bytes. Paths are written byte for byte (only what JSON requires is escaped),
// so a path that is not UTF-8 round-trips.
//
// ParseAccessTrace takes untrusted bytes: it parses iteratively (no recursion on nesting),
// ignores unknown keys, and checks every field. Errors, one line starting "access trace: ":
// EBADMSG for anything malformed (not JSON, not an object, schemaVersion not 1, a bad digest,
// an unclean or repeated path); EFBIG beyond the caps (more than `max_files` files, input over
// kMaxAccessTraceBytes).
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "base/digest.h"
#include "base/status.h"

namespace hoist {

inline constexpr char kAccessTraceArtifactType[] = "application/vnd.hoist.trace.v1+json";
inline constexpr char kAccessTraceMediaType[] = "application/vnd.hoist.trace.v1+json";
inline constexpr size_t kMaxAccessTraceBytes = size_t{256} << 20;

struct TracedFile {
  Digest layer;
  std::string path;  // as in the layer's Entry::path
};

struct AccessTrace {
  Digest image;                   // the manifest digest
  std::vector<TracedFile> files;  // in first-open order, each once
};

// Deterministic JSON (see above).
std::string SerializeAccessTrace(const AccessTrace& trace);

// See above.
[[nodiscard]] Result<AccessTrace> ParseAccessTrace(std::string_view json,
                                                   size_t max_files = 100000);

}  // namespace hoist
