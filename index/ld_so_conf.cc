#include "index/ld_so_conf.h"

#include <fnmatch.h>

#include <algorithm>
#include <string_view>

#include "index/image_path.h"

namespace hoist {
namespace {

constexpr std::string_view kBlanks = " \t\r\f\v";

std::string_view Trim(std::string_view s) {
  size_t b = s.find_first_not_of(kBlanks);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kBlanks) - b + 1);
}

bool HasGlob(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

class ConfReader {
 public:
  ConfReader(const ReadImageFile& read_file, const ListImageDir& list_dir,
             const LdSoConfLimits& limits)
      : read_file_(read_file), list_dir_(list_dir), limits_(limits) {}

  Status ReadFile(const std::string& path, int depth) {
    if (depth > limits_.max_depth) {
      return Fail(EBADMSG, path + ": ld.so.conf includes nest deeper than " +
                               std::to_string(limits_.max_depth));
    }
    if (++files_ > limits_.max_files) {
      return Fail(EBADMSG, path + ": ld.so.conf includes more than " +
                               std::to_string(limits_.max_files) + " files");
    }
    Result<std::string> text = read_file_(path);
    if (!text && text.error().code() == ENOENT) return Ok();
    if (!text) return Fail(text.error());
    std::string_view rest = *text;
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
      if (++lines_ > limits_.max_lines) {
        return Fail(EBADMSG, path + ": ld.so.conf files hold more than " +
                                 std::to_string(limits_.max_lines) + " lines");
      }
      HOIST_RETURN_IF_ERROR(ReadLine(path, line, depth));
    }
    return Ok();
  }

  std::vector<std::string> dirs() && { return std::move(dirs_); }

 private:
  Status ReadLine(const std::string& path, std::string_view line, int depth) {
    line = Trim(line.substr(0, line.find('#')));
    if (line.empty()) return Ok();
    auto keyword = [&](std::string_view word) {
      return line.size() > word.size() && line.starts_with(word) &&
             kBlanks.find(line[word.size()]) != std::string_view::npos;
    };
    if (keyword("hwcap")) return Ok();
    if (keyword("include")) {
      std::string_view patterns = line.substr(7);
      while (true) {
        patterns = Trim(patterns);
        if (patterns.empty()) return Ok();
        size_t end = patterns.find_first_of(kBlanks);
        HOIST_RETURN_IF_ERROR(Include(path, patterns.substr(0, end), depth));
        if (end == std::string_view::npos) return Ok();
        patterns.remove_prefix(end);
      }
    }
    std::string_view dir = Trim(line.substr(0, line.find('=')));
    if (dir.empty() || dir.front() != '/') return Ok();  // ldconfig skips relative directories
    std::string clean = CleanImagePath(dir);
    if (std::find(dirs_.begin(), dirs_.end(), clean) != dirs_.end()) return Ok();
    if (dirs_.size() >= limits_.max_dirs) {
      return Fail(EBADMSG, path + ": ld.so.conf names more than " +
                               std::to_string(limits_.max_dirs) + " directories");
    }
    dirs_.push_back(std::move(clean));
    return Ok();
  }

  Status Include(const std::string& from, std::string_view pattern, int depth) {
    std::string full = CleanImagePath(pattern, ImageDirName(from));
    if (!HasGlob(pattern)) return ReadFile(full, depth + 1);
    // The glob is matched in the last component; a pattern in a parent directory is not
    // supported (no distribution writes one) and matches nothing.
    std::string dir = ImageDirName(full);
    std::string name = full.substr(dir.size() == 1 ? 1 : dir.size() + 1);
    if (HasGlob(dir)) return Ok();
    Result<std::vector<std::string>> names = list_dir_(dir);
    if (!names && names.error().code() == ENOENT) return Ok();
    if (!names) return Fail(names.error());
    std::sort(names->begin(), names->end());
    for (const std::string& n : *names) {
      if (n.empty() || n == "." || n == ".." || n.find('/') != std::string::npos) continue;
      // FNM_PERIOD: glob(3) does not match a leading '.' with a wildcard.
      if (fnmatch(name.c_str(), n.c_str(), FNM_PERIOD) != 0) continue;
      HOIST_RETURN_IF_ERROR(ReadFile(CleanImagePath(n, dir), depth + 1));
    }
    return Ok();
  }

  const ReadImageFile& read_file_;
  const ListImageDir& list_dir_;
  const LdSoConfLimits& limits_;
  int files_ = 0;
  int lines_ = 0;
  std::vector<std::string> dirs_;
};

}  // namespace

Result<std::vector<std::string>> ParseLdSoConf(const ReadImageFile& read_file,
                                               const ListImageDir& list_dir,
                                               const LdSoConfLimits& limits,
                                               const std::string& path) {
  ConfReader reader(read_file, list_dir, limits);
  HOIST_RETURN_IF_ERROR(reader.ReadFile(CleanImagePath(path), 0));
  return std::move(reader).dirs();
}

}  // namespace hoist
