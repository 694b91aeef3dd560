#include "fetcher/link_header.h"

#include <cctype>

#include "fetcher/url.h"

namespace hoist {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool RelHasNext(std::string_view rel) {
  std::string lower = Lower(rel);
  size_t i = 0;
  while (i < lower.size()) {
    while (i < lower.size() && std::isspace(static_cast<unsigned char>(lower[i]))) ++i;
    size_t j = i;
    while (j < lower.size() && !std::isspace(static_cast<unsigned char>(lower[j]))) ++j;
    if (lower.substr(i, j - i) == "next") return true;
    i = j;
  }
  return false;
}

}  // namespace

Result<std::optional<std::string>> ParseLinkNext(std::string_view header,
                                                 std::string_view base_url) {
  auto bad = [&](std::string_view why) {
    return Fail(EINVAL, "malformed Link header \"" + std::string(header.substr(0, 200)) +
                            "\": " + std::string(why));
  };
  size_t pos = 0;
  while (true) {
    while (pos < header.size() &&
           (header[pos] == ',' || std::isspace(static_cast<unsigned char>(header[pos])))) {
      ++pos;
    }
    if (pos >= header.size()) return std::optional<std::string>();
    if (header[pos] != '<') return bad("expected '<'");
    size_t close = header.find('>', pos);
    if (close == std::string_view::npos) return bad("unterminated '<'");
    std::string_view target = Trim(header.substr(pos + 1, close - pos - 1));
    pos = close + 1;
    bool next = false;
    // Parameters: ;name=value or ;name="value", until ',' outside quotes.
    while (pos < header.size() && header[pos] != ',') {
      if (header[pos] != ';') {
        if (std::isspace(static_cast<unsigned char>(header[pos]))) {
          ++pos;
          continue;
        }
        return bad("expected ';'");
      }
      ++pos;
      size_t eq = pos;
      while (eq < header.size() && header[eq] != '=' && header[eq] != ';' && header[eq] != ',')
        ++eq;
      std::string name = Lower(Trim(header.substr(pos, eq - pos)));
      std::string value;
      pos = eq;
      if (pos < header.size() && header[pos] == '=') {
        ++pos;
        while (pos < header.size() && std::isspace(static_cast<unsigned char>(header[pos]))) ++pos;
        if (pos < header.size() && header[pos] == '"') {
          ++pos;
          while (pos < header.size() && header[pos] != '"') {
            if (header[pos] == '\\' && pos + 1 < header.size()) ++pos;
            value += header[pos++];
          }
          if (pos >= header.size()) return bad("unterminated quoted string");
          ++pos;
        } else {
          size_t end = pos;
          while (end < header.size() && header[end] != ';' && header[end] != ',') ++end;
          value = std::string(Trim(header.substr(pos, end - pos)));
          pos = end;
        }
      }
      if (name == "rel" && RelHasNext(value)) next = true;
    }
    if (next) {
      HOIST_ASSIGN_OR_RETURN(std::string url, ResolveUrl(base_url, target));
      return std::optional<std::string>(std::move(url));
    }
  }
}

}  // namespace hoist
