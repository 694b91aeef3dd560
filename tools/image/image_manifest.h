// Manifest rewriting for `hoist convert`, on top of fetcher/manifest.h's parsers: checking that
// a manifest is a container image, and rewriting it into an OCI manifest (or index) with new
// layer descriptors while keeping every other field, and the config bytes, as they are. Output
// is compact JSON in the input's member order, so the same input always gives the same bytes.
//
// Thread-safety: pure functions. Errors: EINVAL for malformed JSON or a document that is not an
// image manifest/index (the message says which field).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "fetcher/manifest.h"

namespace hoist {

inline constexpr std::string_view kMediaTypeDockerLayerTar =
    "application/vnd.docker.image.rootfs.diff.tar";
inline constexpr std::string_view kMediaTypeDockerForeignLayerGzip =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
inline constexpr std::string_view kRefNameAnnotation = "org.opencontainers.image.ref.name";

// The zstd:chunked annotation keys are defined once, in index/zstd_chunked.h.

// tar, tar+gzip, tar+zstd in OCI or Docker spelling (not foreign layers).
bool IsLayerMediaType(std::string_view media_type);

// Parses an image manifest and rejects what is not a container image: a config media type
// that is not an image config, a layer that is not a tar layer (EINVAL, naming it).
Result<ImageManifest> ParseContainerImageManifest(std::string_view bytes,
                                                  std::string_view media_type);

// Returns the OCI manifest for `original` with layers replaced by `layers` (same count;
// mediaType, digest, size, annotations) and the config media type made OCI. With `config`, the
// config descriptor's digest and size are replaced too. Other fields and member order are kept.
Result<std::string> RewriteManifest(std::string_view original,
                                    const std::vector<Descriptor>& layers,
                                    const Descriptor* config = nullptr);

// Returns the image config `original` with rootfs.diff_ids replaced by `diff_ids` (same count);
// other fields and member order are kept. EINVAL if it has no rootfs.diff_ids array.
Result<std::string> RewriteConfigDiffIds(std::string_view original,
                                         const std::vector<Digest>& diff_ids);

// Returns the OCI index for `original` keeping only the entries whose replacement is set, with
// their mediaType, digest and size replaced; other fields are kept.
Result<std::string> RewriteIndex(std::string_view original,
                                 const std::vector<std::optional<Descriptor>>& replacements);

}  // namespace hoist
