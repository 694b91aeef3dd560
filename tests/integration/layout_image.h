// Reading a converted image back from an OCI layout, for the convert tests: the manifest as
// stored and parsed, the config, and the path of any blob; and the digest of a layer blob once
// decompressed by the real zstd or gzip tool (what a runtime's diff_id check computes).
//
// Thread-safety: plain functions. Errors: the layout reader's or the tool's, as values.
#pragma once

#include <string>

#include "base/digest.h"
#include "base/status.h"
#include "fetcher/manifest.h"
#include "tests/harness/oci_image.h"
#include "tools/image/image_transport.h"

namespace hoist::testutil {

struct LayoutImage {
  std::string dir;
  RawManifest raw;           // the manifest bytes as stored, with their digest and media type
  ImageManifest manifest;    // parsed
  Digest manifest_digest;    // == raw.digest
  std::string config_bytes;  // exactly as stored
  ImageConfig config;
  Digest config_digest;  // == manifest.config.digest
  std::string BlobPath(const Digest& d) const { return harness::LayoutBlobPath(dir, d); }
};

// The image tagged `tag` in the OCI layout `dir`.
[[nodiscard]] Result<LayoutImage> ReadLayoutImage(const std::string& dir, const std::string& tag);

// sha256 of `TOOL -dc BLOB` ("zstd" or "gzip").
[[nodiscard]] Result<Digest> DecompressedDigest(const std::string& blob,
                                                const std::string& tool = "zstd");

}  // namespace hoist::testutil
