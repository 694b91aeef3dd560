// One layer of `hoist convert`: a source layer blob (tar, tar+gzip, tar+zstd, or already
// zstd:chunked) in, a zstd:chunked blob spooled to a file in the work dir out.
//
// The blob is streamed through: [sha256 of the compressed bytes] -> decompressor (chosen by
// magic bytes, not media type) -> sha256 of the tar (must equal the config's diff_id) -> the
// zstd:chunked writer (index/), which writes the output file and computes its digest and the
// annotations in the same pass. Memory is bounded by the writer's buffers, not the layer size.
// A layer that already is zstd:chunked (annotations present, TOC checksum valid) is reused as
// it is, so converting twice changes nothing; with a prefetch list, only if every listed path
// it holds is already marked in its TOC.
//
// With a prefetch list (options.prefetch non-empty) the tar is first spooled, uncompressed, to
// an unlinked file in the work dir (checked against the config's diff_id), then fed to the
// writer reordered so that the listed entries come first (tools/convert/tar_reorder.h). The
// output's diff_id then differs from the source's (LayerOutcome::diff_id); a layer holding no
// listed path is streamed from the spool unchanged and keeps its diff_id.
//
// Thread-safety: ConvertLayer may run for several layers at once (the source must allow
// concurrent OpenBlob). Errors: EIO for corrupt compressed data, a truncated tar, a digest or
// diff_id mismatch; EINVAL for hostile entry names; the message names the entry when there is one
// (the caller adds the layer).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/status.h"
#include "fetcher/manifest.h"
#include "tools/image/image_transport.h"

namespace hoist {

struct LayerOptions {
  int compression_level = 3;
  int threads = 1;                    // frame compression threads for this layer
  std::vector<std::string> prefetch;  // cleaned paths to put first and mark in the TOC
  std::string work_dir;               // where the output is spooled
};

// Live counters for the progress display (read from another thread).
struct LayerProgress {
  std::atomic<uint64_t> bytes_in{0};   // compressed source bytes read so far
  std::atomic<uint64_t> bytes_out{0};  // output bytes written (set at the end)
  std::atomic<bool> done{false};
};

struct LayerOutcome {
  Descriptor output;       // media type, digest, size, annotations of the result
  Digest diff_id;          // sha256 of the output's tar (differs from the source when reordered)
  bool reused = false;     // the source blob is used as it is (no spool file)
  std::string spool_path;  // the converted blob (empty when reused); the caller deletes it
  uint64_t bytes_in = 0;   // compressed source bytes
  uint64_t tar_bytes = 0;  // uncompressed tar bytes
  Compression source_compression = Compression::kNone;
};

// True when `layer` carries zstd:chunked annotations (either prefix) and its TOC, read from the
// blob at the annotated position, hashes to the annotated checksum, and every path of
// `prefetch` that the TOC lists is marked for prefetch in it.
// Error (the merge rules', fusefs/merged_view.h CheckLayerRules) when such a layer would not
// mount: it is reused as it is, and converting it again would keep the same entries.
Result<bool> IsValidZstdChunked(ImageSource& source, const Descriptor& layer,
                                const std::vector<std::string>& prefetch = {});

// Converts (or reuses) one layer. The output's TOC is read back by the mount's own reader and
// checked by CheckLayerRules before the caller uploads anything, so a layer the mount would
// refuse fails here with the mount's message (the caller adds the layer's LayerLabel).
Result<LayerOutcome> ConvertLayer(ImageSource& source, const Descriptor& layer,
                                  const Digest& diff_id, const LayerOptions& options,
                                  LayerProgress* progress);

}  // namespace hoist
