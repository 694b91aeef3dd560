// Internal to fetcher/ (hosts_toml.cc, registries_conf.cc): the one-line errors of the TOML
// mirror configurations, naming the file and the line of the offending node
// ("/etc/containers/registries.conf:12: location is empty").
//
// Thread-safety: pure functions. Errors: Bad() builds an EINVAL Error.
#pragma once

#include <string>
#include <string_view>

#include <toml++/toml.h>

#include "base/status.h"

namespace hoist::toml_errors {

// "PATH:LINE", or PATH alone when toml++ knows no line for the node.
inline std::string Located(std::string_view path, const toml::node& node) {
  const auto& src = node.source();
  if (src.begin.line == 0) return std::string(path);
  return std::string(path) + ":" + std::to_string(src.begin.line);
}

inline Error Bad(std::string_view path, const toml::node& node, std::string_view what) {
  return Error(EINVAL, Located(path, node) + ": " + std::string(what));
}

}  // namespace hoist::toml_errors
