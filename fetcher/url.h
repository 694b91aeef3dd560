// Minimal absolute-URL handling for what the registry client needs: splitting an http(s) URL
// into scheme / authority / path+query, resolving a relative reference (Location, Link) against
// a base (RFC 3986 §5.2 for the forms registries use: absolute, "//host/..", "/path", "path",
// "?query"), comparing origins (scheme, host, port; default ports made explicit) and appending
// query parameters. Percent-encoding for query values is in QueryEscape.
//
// Errors: EINVAL naming the URL. Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace hoist {

struct Url {
  std::string scheme;          // "http" or "https", lower-cased
  std::string host;            // lower-cased; IPv6 kept in brackets
  int port = 0;                // explicit or the scheme default (80/443)
  std::string path_and_query;  // starts with '/'; "/" when empty

  [[nodiscard]] static Result<Url> Parse(std::string_view text);
  std::string String() const;  // default ports omitted
  // scheme://host:port with the port always explicit.
  std::string Origin() const;
};

// Resolves `reference` against absolute `base`.
[[nodiscard]] Result<std::string> ResolveUrl(std::string_view base, std::string_view reference);
// True if a and b are both parseable and have the same scheme, host and port.
bool SameOrigin(std::string_view a, std::string_view b);
// Appends "name=escaped(value)" with '?' or '&' as needed.
std::string AppendQuery(std::string_view url, std::string_view name, std::string_view value);
// Percent-encodes everything except unreserved characters (A-Z a-z 0-9 - . _ ~).
std::string QueryEscape(std::string_view value);

}  // namespace hoist
