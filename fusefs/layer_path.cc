#include "fusefs/layer_path.h"

#include <cerrno>

namespace hoist {
namespace {

constexpr size_t kMaxQuotedLength = 200;

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

std::string QuotePath(std::string_view path) {
  std::string out = "\"";
  std::string_view shown = path;
  bool shortened = false;
  if (shown.size() > kMaxQuotedLength) {
    shown = shown.substr(0, kMaxQuotedLength / 2);
    shortened = true;
  }
  auto append = [&out](std::string_view part) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (unsigned char c : part) {
      if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
        out += "\\x";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
      } else {
        out += static_cast<char>(c);
      }
    }
  };
  append(shown);
  if (shortened) {
    out += "...";
    append(path.substr(path.size() - kMaxQuotedLength / 2));
  }
  out += "\"";
  return out;
}

Status ValidateEntryPath(std::string_view path) {
  if (path.empty()) return Ok();  // the root
  if (path.find('\0') != std::string_view::npos) {
    return Fail(EINVAL, "entry path " + QuotePath(path) + " contains a NUL byte");
  }
  if (path.front() == '/') return Fail(EINVAL, "entry path " + QuotePath(path) + " is absolute");
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    std::string_view component = path.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (component.empty()) {
      return Fail(EINVAL, "entry path " + QuotePath(path) + " has an empty component");
    }
    if (component == "." || component == "..") {
      return Fail(EINVAL, "entry path " + QuotePath(path) + " has a \"" + std::string(component) +
                              "\" component");
    }
    if (component.size() > kMaxNameLength) {
      return Fail(ENAMETOOLONG, "entry path " + QuotePath(path) + " has a component longer than " +
                                    std::to_string(kMaxNameLength) + " bytes");
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return Ok();
}

Result<EntryName> ClassifyEntryPath(std::string_view path) {
  EntryName name;
  size_t last_slash = path.rfind('/');
  if (last_slash == std::string_view::npos) {
    name.base = path;
  } else {
    name.parent = path.substr(0, last_slash);
    name.base = path.substr(last_slash + 1);
  }
  // Directory components: AUFS metadata directories are skipped with their content; any other
  // whiteout-named directory has no meaning.
  size_t start = 0;
  while (start < name.parent.size()) {
    size_t slash = name.parent.find('/', start);
    if (slash == std::string_view::npos) slash = name.parent.size();
    std::string_view component = name.parent.substr(start, slash - start);
    if (StartsWith(component, kWhiteoutMetaPrefix)) {
      name.kind = EntryNameKind::kSkip;
      return name;
    }
    if (StartsWith(component, kWhiteoutPrefix)) {
      return Fail(EINVAL, "entry path " + QuotePath(path) + " has a whiteout name (\"" +
                              std::string(component) + "\") as a directory");
    }
    start = slash + 1;
  }
  if (!StartsWith(name.base, kWhiteoutPrefix)) return name;
  if (name.base == kOpaqueMarker) {
    name.kind = EntryNameKind::kOpaque;
  } else if (StartsWith(name.base, kWhiteoutMetaPrefix)) {
    name.kind = EntryNameKind::kSkip;
  } else {
    name.target = name.base.substr(kWhiteoutPrefix.size());
    if (name.target.empty()) {
      return Fail(EINVAL, "entry path " + QuotePath(path) + " is a bare whiteout \".wh.\"");
    }
    if (name.target == "." || name.target == "..") {
      return Fail(EINVAL, "entry path " + QuotePath(path) + " whites out \"" +
                              std::string(name.target) + "\"");
    }
    name.kind = EntryNameKind::kWhiteout;
  }
  return name;
}

}  // namespace hoist
