// The image model the registry serves: descriptors, image manifests and indexes (Docker v2 and
// OCI), image configs, and platforms. Pure parsing; no network.
//
// Parsers take the exact bytes and the media type from the response's Content-Type (parameters
// ignored); a body whose `mediaType` disagrees with it is rejected (OCI bodies may omit it).
// Errors: EINVAL with a one-line message saying what is malformed. Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/digest.h"
#include "base/status.h"

namespace hoist {

inline constexpr std::string_view kMediaTypeDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kMediaTypeDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kMediaTypeOciManifest =
    "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kMediaTypeOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kMediaTypeDockerConfig =
    "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kMediaTypeOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kMediaTypeDockerLayerGzip =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr std::string_view kMediaTypeOciLayerTar = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kMediaTypeOciLayerGzip =
    "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kMediaTypeOciLayerZstd =
    "application/vnd.oci.image.layer.v1.tar+zstd";

// The Accept header value listing all four manifest types.
std::string ManifestAcceptHeader();

// "application/x; charset=utf-8" -> "application/x" (trimmed, lower-cased).
std::string MediaTypeWithoutParams(std::string_view content_type);
bool IsIndexMediaType(std::string_view media_type);     // OCI index or Docker list
bool IsManifestMediaType(std::string_view media_type);  // OCI or Docker image manifest

// The effective media type of a manifest response: the Content-Type (without parameters) when
// it is one of the four manifest types, else the body's `mediaType`, else (OCI bodies may omit
// it) "manifests" -> OCI index, "config" -> OCI manifest. EINVAL when the body's mediaType
// disagrees with a manifest-type Content-Type, for schema1 and for anything unrecognisable.
[[nodiscard]] Result<std::string> ManifestMediaType(std::string_view content_type,
                                                    std::string_view bytes);

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
  std::string os_version;

  // "os/arch[/variant]" (e.g. "linux/arm64/v8"). EINVAL if malformed.
  [[nodiscard]] static Result<Platform> Parse(std::string_view text);
  // The platform this binary runs on (linux/amd64, linux/arm64/v8, ...).
  static Platform Host();
  std::string String() const;  // "os/arch[/variant]"
  // True if `candidate` (an index entry) serves this platform: same os and architecture, and the
  // same variant when this platform names one (arm64's "v8" and "" are the same).
  bool Matches(const Platform& candidate) const;
  friend bool operator==(const Platform&, const Platform&) = default;
};

struct Descriptor {
  std::string media_type;
  Digest digest;
  int64_t size = 0;
  std::map<std::string, std::string> annotations;
  std::vector<std::string> urls;
  std::optional<Platform> platform;  // index entries
  std::string artifact_type;
};

struct ImageManifest {
  std::string media_type;  // from Content-Type
  Descriptor config;
  std::vector<Descriptor> layers;
  std::map<std::string, std::string> annotations;
  std::optional<Descriptor> subject;
  std::string artifact_type;
};

struct ImageIndex {
  std::string media_type;
  std::vector<Descriptor> manifests;
  std::map<std::string, std::string> annotations;
  std::optional<Descriptor> subject;
};

[[nodiscard]] Result<ImageManifest> ParseImageManifest(std::string_view bytes,
                                                       std::string_view media_type);
[[nodiscard]] Result<ImageIndex> ParseImageIndex(std::string_view bytes,
                                                 std::string_view media_type);

// The index entry for `platform`: the first exact-variant match, else the first os/arch match
// whose variant is compatible; "unknown/unknown" entries (attestations) are skipped. ENOENT
// listing the platforms the index does offer.
[[nodiscard]] Result<Descriptor> SelectPlatform(const ImageIndex& index, const Platform& platform);

struct HistoryEntry {
  std::string created;
  std::string created_by;
  std::string author;
  std::string comment;
  bool empty_layer = false;
};

struct ImageConfig {
  std::string created;
  std::string author;
  std::string architecture;
  std::string os;
  std::string variant;
  std::vector<std::string> env;
  std::vector<std::string> cmd;
  std::vector<std::string> entrypoint;
  std::string working_dir;
  std::string user;
  std::map<std::string, std::string> labels;
  std::vector<Digest> diff_ids;
  std::vector<HistoryEntry> history;
  std::string raw;  // the exact bytes parsed
};

[[nodiscard]] Result<ImageConfig> ParseImageConfig(std::string_view bytes);

}  // namespace hoist
