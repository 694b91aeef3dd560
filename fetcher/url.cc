#include "fetcher/url.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <vector>

namespace hoist {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Removes "." and ".." segments (RFC 3986 §5.2.4) from an absolute path.
std::string RemoveDotSegments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 0;
  bool trailing_slash = false;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view seg = path.substr(i, j - i);
    trailing_slash = false;
    if (seg == ".") {
      trailing_slash = true;
    } else if (seg == "..") {
      if (!out.empty()) out.pop_back();
      trailing_slash = true;
    } else if (!seg.empty() || j == path.size()) {
      out.push_back(seg);
    } else if (i != 0) {
      out.push_back(seg);  // keep empty segments ("//") except the leading one
    }
    i = j + 1;
  }
  std::string result;
  for (std::string_view seg : out) {
    result += '/';
    result += seg;
  }
  if (result.empty() || trailing_slash) result += '/';
  return result;
}

}  // namespace

Result<Url> Url::Parse(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Fail(EINVAL,
                "malformed URL \"" + std::string(text.substr(0, 200)) + "\": " + std::string(why));
  };
  size_t colon = text.find("://");
  if (colon == std::string_view::npos) return bad("no scheme");
  Url url;
  url.scheme = Lower(text.substr(0, colon));
  if (url.scheme != "http" && url.scheme != "https") return bad("scheme is not http or https");
  std::string_view rest = text.substr(colon + 3);
  size_t hash = rest.find('#');
  if (hash != std::string_view::npos) rest = rest.substr(0, hash);
  size_t end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, end);
  std::string_view path = end == std::string_view::npos ? "" : rest.substr(end);
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) authority = authority.substr(at + 1);
  if (authority.empty()) return bad("no host");
  std::string_view host;
  std::string_view port;
  if (authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated IPv6 address");
    host = authority.substr(0, close + 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("junk after IPv6 address");
      port = after.substr(1);
    }
  } else {
    size_t c = authority.rfind(':');
    host = authority.substr(0, c);
    if (c != std::string_view::npos) port = authority.substr(c + 1);
  }
  if (host.empty()) return bad("no host");
  for (char c : host) {
    if (std::isspace(static_cast<unsigned char>(c)) || c == '/' || c == '\\') {
      return bad("bad character in host");
    }
  }
  url.host = Lower(host);
  url.port = url.scheme == "https" ? 443 : 80;
  if (!port.empty()) {
    int p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || ptr != port.data() + port.size() || p <= 0 || p > 65535) {
      return bad("bad port");
    }
    url.port = p;
  }
  if (path.empty()) {
    url.path_and_query = "/";
  } else if (path.front() == '?') {
    url.path_and_query = "/" + std::string(path);
  } else {
    url.path_and_query = std::string(path);
  }
  for (char c : url.path_and_query) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return bad("control or space in path");
  }
  return url;
}

std::string Url::String() const {
  std::string out = scheme + "://" + host;
  bool default_port = (scheme == "https" && port == 443) || (scheme == "http" && port == 80);
  if (!default_port) out += ":" + std::to_string(port);
  out += path_and_query;
  return out;
}

std::string Url::Origin() const { return scheme + "://" + host + ":" + std::to_string(port); }

Result<std::string> ResolveUrl(std::string_view base, std::string_view reference) {
  HOIST_ASSIGN_OR_RETURN(Url b, Url::Parse(base));
  // Trim surrounding whitespace.
  while (!reference.empty() && std::isspace(static_cast<unsigned char>(reference.front()))) {
    reference.remove_prefix(1);
  }
  while (!reference.empty() && std::isspace(static_cast<unsigned char>(reference.back()))) {
    reference.remove_suffix(1);
  }
  if (reference.empty()) return b.String();
  // Absolute (has a scheme before any '/', '?' or '#').
  size_t colon = reference.find(':');
  size_t first_delim = reference.find_first_of("/?#");
  if (colon != std::string_view::npos &&
      (first_delim == std::string_view::npos || colon < first_delim)) {
    HOIST_ASSIGN_OR_RETURN(Url u, Url::Parse(reference));
    return u.String();
  }
  if (reference.starts_with("//")) {
    HOIST_ASSIGN_OR_RETURN(Url u, Url::Parse(b.scheme + ":" + std::string(reference)));
    return u.String();
  }
  size_t hash = reference.find('#');
  if (hash != std::string_view::npos) reference = reference.substr(0, hash);
  std::string base_path = b.path_and_query.substr(0, b.path_and_query.find('?'));
  if (reference.front() == '?') {
    b.path_and_query = base_path + std::string(reference);
    return b.String();
  }
  std::string ref_path(reference.substr(0, reference.find('?')));
  std::string query;
  if (size_t q = reference.find('?'); q != std::string_view::npos) query = reference.substr(q);
  std::string merged;
  if (ref_path.front() == '/') {
    merged = ref_path;
  } else {
    merged = base_path.substr(0, base_path.rfind('/') + 1) + ref_path;
  }
  b.path_and_query = RemoveDotSegments(merged) + query;
  return b.String();
}

bool SameOrigin(std::string_view a, std::string_view b) {
  auto ua = Url::Parse(a);
  auto ub = Url::Parse(b);
  return ua && ub && ua->Origin() == ub->Origin();
}

std::string QueryEscape(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string AppendQuery(std::string_view url, std::string_view name, std::string_view value) {
  std::string out(url);
  size_t hash = out.find('#');
  std::string fragment;
  if (hash != std::string::npos) {
    fragment = out.substr(hash);
    out.resize(hash);
  }
  if (out.find('?') == std::string::npos) {
    out += '?';
  } else if (out.back() != '?' && out.back() != '&') {
    out += '&';
  }
  out += QueryEscape(name);
  out += '=';
  out += QueryEscape(value);
  return out + fragment;
}

}  // namespace hoist
