#include "base/mountinfo.h"

#include <sys/vfs.h>

#include <cerrno>

#include "base/file_util.h"

namespace hoist {

std::string UnescapeMountInfo(std::string_view s) {
  auto octal = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && octal(s[i + 1]) && octal(s[i + 2]) && octal(s[i + 3])) {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::vector<MountInfoEntry> ParseMountInfo(std::string_view text) {
  std::vector<MountInfoEntry> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    start = end + 1;
    std::vector<std::string_view> fields;
    size_t pos = 0;
    while (pos < line.size()) {
      size_t next = line.find(' ', pos);
      if (next == std::string_view::npos) next = line.size();
      fields.push_back(line.substr(pos, next - pos));
      pos = next + 1;
    }
    // At least: id parent dev root mount_point options "-" fstype source.
    size_t dash = 6;
    while (dash < fields.size() && fields[dash] != "-") ++dash;
    if (fields.size() < 6) continue;
    MountInfoEntry e;
    e.dev = std::string(fields[2]);
    e.root = UnescapeMountInfo(fields[3]);
    e.mount_point = UnescapeMountInfo(fields[4]);
    e.options = std::string(fields[5]);
    if (dash + 1 < fields.size()) {
      e.fs_type = std::string(fields[dash + 1]);
      if (dash + 2 < fields.size()) e.source = UnescapeMountInfo(fields[dash + 2]);
    }
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::vector<MountInfoEntry>> ReadMountInfo(const std::string& path) {
  HOIST_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParseMountInfo(text);
}

Result<std::vector<std::string>> MountPointsUnder(const std::string& dir) {
  HOIST_ASSIGN_OR_RETURN(std::vector<MountInfoEntry> table, ReadMountInfo());
  std::vector<std::string> out;
  for (MountInfoEntry& e : table) {
    const std::string& mp = e.mount_point;
    if (mp == dir || (mp.size() > dir.size() && mp.starts_with(dir) && mp[dir.size()] == '/')) {
      out.push_back(std::move(e.mount_point));
    }
  }
  return out;
}

bool IsDeadFuseMount(const std::string& path) {
  struct statfs st {};
  if (::statfs(path.c_str(), &st) == 0) return false;
  // ECONNABORTED: the kernel's word for a connection ended by an abort rather than a release.
  return errno == ENOTCONN || errno == ECONNABORTED;
}

}  // namespace hoist
