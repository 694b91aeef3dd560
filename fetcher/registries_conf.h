// containers' registries.conf (v2 format, as podman, skopeo and buildah read it): the parser,
// drop-in merging and the prefix match.
//
// Honoured fields of each [[registry]]: prefix (defaults to location; "*.example.com" matches any
// subdomain's host part), location (what the matched prefix is rewritten to), insecure, blocked,
// mirror-by-digest-only, and [[registry.mirror]] entries (location, insecure, pull-from-mirror =
// "all" | "digest-only" | "tag-only") in order. Other top-level keys (unqualified-search-
// registries, short-name-mode, [aliases], ...) are accepted and ignored; the v1 format
// ([registries.search] ...) is refused.
//
// Files: FILE, then FILE.d/*.conf in name order (for the default /etc/containers/registries.conf
// that is /etc/containers/registries.conf.d, as containers/image reads it). A [[registry]] in a
// later file replaces one with the same prefix.
//
// Errors: EINVAL "<file>:<line>: <what>" for syntax errors, wrong types, a wildcard prefix with
// a location, a prefix that does not match its location.
// Thread-safety: pure functions (LoadRegistriesConf reads files).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace hoist {

struct RegistriesConfMirror {
  enum class PullFrom { kAll, kDigestOnly, kTagOnly };
  std::string location;  // host[:port][/path]
  bool insecure = false;
  PullFrom pull_from = PullFrom::kAll;
};

struct RegistriesConfEntry {
  std::string prefix;    // "example.com/foo", "*.example.com"
  std::string location;  // "" only for a wildcard prefix
  bool insecure = false;
  bool blocked = false;
  bool mirror_by_digest_only = false;
  std::vector<RegistriesConfMirror> mirrors;
  std::string source;  // "<file>:<line>", for messages
};

struct RegistriesConf {
  std::vector<RegistriesConfEntry> registries;

  // The entry whose prefix is the longest match of `name` ("host[:port]/repository"), or nullptr.
  // A plain prefix matches at a '/' boundary or the whole name; "*.d" matches hosts ending in ".d".
  const RegistriesConfEntry* Match(std::string_view name) const;
  // Adds `other`'s entries, replacing those with an equal prefix.
  void Merge(RegistriesConf other);
};

// Parses one file's text; `path` names it in errors.
[[nodiscard]] Result<RegistriesConf> ParseRegistriesConf(std::string_view text,
                                                         std::string_view path);

// FILE and FILE.d/*.conf. A missing FILE (and missing FILE.d) is an empty config when
// `missing_ok`, ENOENT naming it otherwise.
[[nodiscard]] Result<RegistriesConf> LoadRegistriesConf(const std::string& path, bool missing_ok);

// `name` rewritten for an entry (or mirror) location: the matched prefix replaced by
// `location` (for a wildcard prefix, the host part is replaced).
std::string RewriteForLocation(std::string_view name, std::string_view prefix,
                               std::string_view location);

}  // namespace hoist
