// Parser for the WWW-Authenticate response header (RFC 7235 challenges) as registries send it:
//   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",
//          scope="repository:a/b:pull,push"
//   Basic realm="Registry Realm"
// Several challenges may share one header value, separated by commas. Parameter names are
// case-insensitive (returned lower-cased); values may be tokens or quoted strings containing
// commas, '=' and backslash escapes. A token68 after the scheme is kept in `token68`.
//
// Errors: EINVAL (one line, quoting a short prefix of the header) for a header with no
// recognisable challenge or an unterminated quoted string. Thread-safety: pure functions.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace hoist {

struct AuthChallenge {
  std::string scheme;                         // lower-cased: "bearer", "basic", ...
  std::map<std::string, std::string> params;  // lower-cased names, unquoted values
  std::string token68;

  // The value of `name` (lower-cased) or "".
  std::string Param(std::string_view name) const;
};

[[nodiscard]] Result<std::vector<AuthChallenge>> ParseWwwAuthenticate(std::string_view header);

}  // namespace hoist
