// `hoist convert` without the command line: converts every layer of an image (every platform of
// an index, or one) to zstd:chunked and writes the image to a destination.
//
// Order of work: layers of all selected platforms are converted in parallel (a shared layer is
// converted once) and each is uploaded as soon as it is ready; the config follows; manifests are
// written only after every blob is in place, the top-level (tagged) one last, then Commit. If
// anything fails, the destination is aborted and no manifest has been written.
//
// Thread-safety: one ConvertImage call at a time per source/destination pair.
// Errors: the first failure, with context "layer N (sha256:...) of linux/amd64: ...".
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/status.h"
#include "fetcher/manifest.h"
#include "tools/image/image_transport.h"

namespace hoist {

struct ConvertOptions {
  std::optional<Platform> platform;  // only this platform of an index (output: its manifest)
  int compression_level = 3;
  int threads = 0;  // 0 = all cores
  std::vector<std::string> prefetch;
  std::string work_dir;   // REQUIRES: an existing writable directory
  bool progress = false;  // draw a one-line progress display on stderr
};

struct LayerReport {
  std::string platform;  // "" for a single-manifest image
  int index = 0;
  Digest source_digest;
  Digest output_digest;
  std::string action;  // "converted", "reused", "foreign" (left as it is)
  std::string source_compression;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t tar_bytes = 0;
  double seconds = 0;
};

struct ConvertReport {
  Digest manifest_digest;  // of the top-level manifest or index written
  std::string media_type;
  std::vector<LayerReport> layers;
  double seconds = 0;
};

Result<ConvertReport> ConvertImage(ImageSource& source, ImageDestination& destination,
                                   const ConvertOptions& options);

// The report as JSON (one object; see tools/cli/convert.cc for the schema).
std::string ConvertReportJson(const ConvertReport& report);

}  // namespace hoist
