#include "index/image_path.h"

#include <vector>

namespace hoist {
namespace {

constexpr size_t kMaxPath = 4096;

// Pushes the components of `path` onto `stack` so that the first component is popped first.
void PushComponents(std::string_view path, std::vector<std::string>& stack) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view part = path.substr(pos, slash - pos);
    if (!part.empty() && part != ".") parts.emplace_back(part);
    pos = slash + 1;
  }
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) stack.push_back(std::move(*it));
}

std::string Join(const std::vector<std::string>& parts) {
  if (parts.empty()) return "/";
  std::string out;
  for (const std::string& p : parts) out += "/" + p;
  return out;
}

}  // namespace

std::string CleanImagePath(std::string_view path, std::string_view base) {
  std::vector<std::string> stack, parts;
  PushComponents(path, stack);
  if (path.empty() || path.front() != '/') {
    std::vector<std::string> base_stack;
    PushComponents(base, base_stack);
    stack.insert(stack.end(), base_stack.begin(), base_stack.end());
  }
  while (!stack.empty()) {
    std::string part = std::move(stack.back());
    stack.pop_back();
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else {
      parts.push_back(std::move(part));
    }
  }
  return Join(parts);
}

std::string ImageDirName(std::string_view path) {
  std::string clean = CleanImagePath(path);
  size_t slash = clean.rfind('/');
  return slash == 0 ? "/" : clean.substr(0, slash);
}

Result<std::string> ResolveImagePath(std::string_view path, const ImageLstat& lstat,
                                     int max_symlinks) {
  if (path.size() > kMaxPath) return Fail(ENAMETOOLONG, "image path longer than 4096 bytes");
  std::vector<std::string> pending;  // components still to walk, the next one last
  std::vector<std::string> current;  // the directory reached, no symlink in it
  PushComponents(path, pending);
  size_t pending_bytes = path.size();
  int links = 0;
  while (!pending.empty()) {
    std::string part = std::move(pending.back());
    pending.pop_back();
    pending_bytes -= std::min(pending_bytes, part.size() + 1);
    if (part == "..") {
      if (!current.empty()) current.pop_back();
      continue;
    }
    current.push_back(std::move(part));
    std::string at = Join(current);
    ImageNode node = lstat(at);
    switch (node.type) {
      case ImageNode::Type::kMissing:
        return Fail(ENOENT, at + ": not in the image");
      case ImageNode::Type::kDirectory:
        break;
      case ImageNode::Type::kSymlink:
        if (++links > max_symlinks) {
          return Fail(ELOOP, std::string(path) + ": more than " + std::to_string(max_symlinks) +
                                 " symlinks");
        }
        if (node.target.empty()) return Fail(ENOENT, at + ": empty symlink");
        pending_bytes += node.target.size() + 1;
        if (pending_bytes + at.size() > kMaxPath) {
          return Fail(ENAMETOOLONG, std::string(path) + ": longer than 4096 bytes through " + at);
        }
        current.pop_back();
        if (node.target.front() == '/') current.clear();
        PushComponents(node.target, pending);
        break;
      case ImageNode::Type::kRegular:
      case ImageNode::Type::kOther:
        if (!pending.empty()) return Fail(ENOTDIR, at + ": not a directory");
        break;
    }
  }
  return Join(current);
}

}  // namespace hoist
