// Image references ("ubuntu", "ghcr.io/a/b:v1", "localhost:5000/x@sha256:...") parsed and
// normalised the way docker does it:
//   - the first path component is a registry host only if it contains '.' or ':', equals
//     "localhost", or has an upper-case letter; otherwise the registry is "docker.io";
//   - "index.docker.io" becomes "docker.io"; a one-component docker.io name gets "library/";
//   - with neither tag nor digest the tag is "latest"; with only a digest the tag stays empty;
//   - repository components are lower-case [a-z0-9] joined by '.', '_', '__' or dashes; the
//     name (registry/repository) is at most 255 characters; tags match [A-Za-z0-9_][\w.-]{0,127}.
//
// Errors: EINVAL with a one-line message that quotes the reference and says what is wrong.
// Thread-safety: plain values.
#pragma once

#include <string>
#include <string_view>

#include "base/digest.h"
#include "base/status.h"

namespace hoist {

inline constexpr std::string_view kDockerHubRegistry = "docker.io";
inline constexpr std::string_view kDockerHubApiHost = "registry-1.docker.io";

struct Reference {
  std::string registry;    // "docker.io", "ghcr.io", "localhost:5000", "[::1]:5000"
  std::string repository;  // "library/ubuntu"
  std::string tag;         // "latest", or "" when only a digest was given
  Digest digest;           // empty unless "@sha256:..." was given

  [[nodiscard]] static Result<Reference> Parse(std::string_view text);

  // Fully qualified: "docker.io/library/ubuntu:latest", "r/x:t@sha256:..", "r/x@sha256:..".
  std::string String() const;
  // "registry/repository".
  std::string Name() const;
  // The host[:port] to talk HTTP to: "registry-1.docker.io" for docker.io, else `registry`.
  std::string ApiHost() const;
  // What to put after /manifests/: the digest if set, else the tag.
  std::string Identifier() const;

  // The same repository with another tag (digest cleared) / another digest (tag cleared).
  Reference WithTag(std::string_view new_tag) const;
  Reference WithDigest(const Digest& new_digest) const;

  friend bool operator==(const Reference&, const Reference&) = default;
};

// The host[:port] for registry `registry` ("docker.io" -> "registry-1.docker.io").
std::string RegistryApiHost(std::string_view registry);
// The host part of a registry, without port or brackets ("[::1]:5000" -> "::1").
std::string RegistryHostName(std::string_view registry);
// True for localhost, 127.0.0.0/8 and ::1 (with or without a port): plain HTTP is allowed there.
bool IsLoopbackRegistry(std::string_view registry);

}  // namespace hoist
