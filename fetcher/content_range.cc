#include "fetcher/content_range.h"

#include <cctype>
#include <charconv>
#include <string>

namespace hoist {
namespace {

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<ContentRange> ParseContentRange(std::string_view header) {
  auto bad = [&](std::string_view why) {
    return Fail(EINVAL, "malformed Content-Range \"" + std::string(header.substr(0, 100)) +
                            "\": " + std::string(why));
  };
  std::string_view s = Trim(header);
  if (s.size() < 6 || !(s.substr(0, 5) == "bytes" || s.substr(0, 5) == "BYTES") ||
      !std::isspace(static_cast<unsigned char>(s[5]))) {
    return bad("unit is not bytes");
  }
  s = Trim(s.substr(6));
  size_t slash = s.find('/');
  if (slash == std::string_view::npos) return bad("no '/'");
  std::string_view range = Trim(s.substr(0, slash));
  std::string_view total = Trim(s.substr(slash + 1));
  ContentRange out;
  if (total != "*") {
    uint64_t t;
    if (!ParseU64(total, &t)) return bad("bad total");
    out.total = t;
  }
  if (range == "*") {
    if (!out.total) return bad("\"*/*\"");
    return out;
  }
  size_t dash = range.find('-');
  if (dash == std::string_view::npos) return bad("no '-'");
  uint64_t first, last;
  if (!ParseU64(range.substr(0, dash), &first) || !ParseU64(range.substr(dash + 1), &last)) {
    return bad("bad range numbers");
  }
  if (first > last) return bad("first byte after last byte");
  if (out.total && last >= *out.total) return bad("last byte beyond total");
  out.first = first;
  out.last = last;
  return out;
}

}  // namespace hoist
