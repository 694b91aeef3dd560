#include "index/tar_path.h"

#include <cstdio>
#include <vector>

namespace hoist {

std::string QuoteName(std::string_view raw, size_t max) {
  std::string out = "\"";
  for (size_t i = 0; i < raw.size(); ++i) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    unsigned char c = static_cast<unsigned char>(raw[i]);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += "\"";
  return out;
}

Result<std::string> CleanEntryPath(std::string_view raw) {
  if (raw.empty()) return Fail(EINVAL, "empty entry name");
  if (raw.find('\0') != std::string_view::npos) {
    return Fail(EINVAL, "entry name " + QuoteName(raw) + " contains a NUL byte");
  }
  if (raw.size() > kMaxPathLength) {
    return Fail(ENAMETOOLONG, "entry name " + QuoteName(raw) + " is longer than " +
                                  std::to_string(kMaxPathLength) + " bytes");
  }
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (pos <= raw.size()) {
    size_t slash = raw.find('/', pos);
    if (slash == std::string_view::npos) slash = raw.size();
    std::string_view part = raw.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (parts.empty()) {
        return Fail(EINVAL, "entry name " + QuoteName(raw) + " escapes the layer root");
      }
      parts.pop_back();
      continue;
    }
    if (part.size() > kMaxNameLength) {
      return Fail(ENAMETOOLONG, "entry name " + QuoteName(raw) + " has a component longer than " +
                                    std::to_string(kMaxNameLength) + " bytes");
    }
    parts.push_back(part);
  }
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += '/';
    out += parts[i];
  }
  return out;
}

}  // namespace hoist
