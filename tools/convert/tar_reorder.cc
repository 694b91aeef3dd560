#include "tools/convert/tar_reorder.h"

#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "base/file_util.h"
#include "base/log.h"
#include "index/tar_path.h"
#include "index/tar_reader.h"

namespace hoist {
namespace {

// Whether the metadata blocks of one member (pax 'x'/'g', GNU 'L'/'K', then the main header)
// include a pax global header.
bool HasGlobalHeader(std::string_view raw) {
  size_t pos = 0;
  while (pos + 512 <= raw.size()) {
    const char type = raw[pos + 156];
    if (type == 'g') return true;
    if (type != 'x' && type != 'L' && type != 'K') return false;  // the main header
    auto size = ParseTarNumber(raw.substr(pos + 124, 12), /*allow_negative=*/false);
    if (!size || *size < 0) return false;
    pos += 512 + static_cast<size_t>((static_cast<uint64_t>(*size) + 511) / 512 * 512);
  }
  return false;
}

bool IsWhiteout(std::string_view path) {
  size_t slash = path.rfind('/');
  std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
  return base.starts_with(".wh.");
}

// Buffered write(2) of the spool.
class SpoolWriter {
 public:
  explicit SpoolWriter(int fd) : fd_(fd) { buf_.reserve(kSize); }
  Status Write(const char* data, size_t n) {
    if (buf_.size() + n > kSize) HOIST_RETURN_IF_ERROR(Flush());
    if (n >= kSize) return WriteAll(data, n);
    buf_.insert(buf_.end(), data, data + n);
    return Ok();
  }
  Status Flush() {
    Status st = WriteAll(buf_.data(), buf_.size());
    buf_.clear();
    return st;
  }

 private:
  static constexpr size_t kSize = 1 << 20;
  Status WriteAll(const char* data, size_t n) {
    return hoist::WriteAll(fd_, std::string_view(data, n), "the tar spool file");
  }
  int fd_;
  std::vector<char> buf_;
};

}  // namespace

Result<TarLayout> SpoolTar(ByteReader& tar, int out_fd) {
  TarLayout layout;
  SpoolWriter spool(out_fd);
  Sha256 sha;
  uint64_t total = 0;
  TarReader reader([&](char* buf, size_t n) -> Result<size_t> {
    HOIST_ASSIGN_OR_RETURN(size_t got, tar.Read(buf, n));
    if (got) {
      sha.Update(buf, got);
      total += got;
      HOIST_RETURN_IF_ERROR(spool.Write(buf, got));
    }
    return got;
  });
  for (;;) {
    HOIST_ASSIGN_OR_RETURN(const TarMember* m, reader.Next());
    if (!m) break;
    TarLayoutMember& lm = layout.members.emplace_back();
    lm.begin = m->header_offset;
    lm.end = m->payload_offset + m->payload_size;  // padding added below
    lm.path = m->entry.path;
    lm.type = m->entry.type;
    if (m->entry.type == EntryType::kHardlink || m->entry.type == EntryType::kSymlink) {
      lm.link = m->entry.link_name;
    }
    if (m->header_length > 512 && HasGlobalHeader(reader.raw_header())) {
      layout.has_global_header = true;
    }
    HOIST_ASSIGN_OR_RETURN(std::string_view pad, reader.FinishMember());
    lm.end += pad.size();
  }
  layout.trailer_offset = reader.trailer_offset();
  std::string buf(1 << 16, '\0');
  for (;;) {
    HOIST_ASSIGN_OR_RETURN(size_t n, reader.ReadTrailer(buf.data(), buf.size()));
    if (!n) break;
  }
  // The trailer may end before EOF of the source (TarReader stops at the end of the stream it
  // was given, but make sure): every byte goes to the spool and the digest.
  for (;;) {
    HOIST_ASSIGN_OR_RETURN(size_t n, tar.Read(buf.data(), buf.size()));
    if (!n) break;
    sha.Update(buf.data(), n);
    total += n;
    HOIST_RETURN_IF_ERROR(spool.Write(buf.data(), n));
  }
  HOIST_RETURN_IF_ERROR(spool.Flush());
  layout.size = total;
  layout.digest = Digest::FromSha256(sha.Final());
  // Members tile [0, trailer_offset): the reorder relies on it.
  uint64_t at = 0;
  for (const auto& m : layout.members) {
    if (m.begin != at || m.end < m.begin) {
      return Fail(EIO,
                  "tar spool: member '" + QuoteName(m.path) + "' does not follow the previous one");
    }
    at = m.end;
  }
  if (at != layout.trailer_offset || layout.trailer_offset > total) {
    return Fail(EIO, "tar spool: the trailer does not follow the last member");
  }
  return layout;
}

namespace {

// Where the symlink member `i` leads inside the image root (absolute targets start at the root,
// ".." stops at it), followed through this layer's symlinks (at most 40, as the kernel does):
// the member at the end when it is in this layer (once) and not a symlink itself. Links through
// a symlinked directory are not followed.
std::optional<size_t> SymlinkTarget(const TarLayout& layout,
                                    const std::map<std::string_view, size_t>& by_path, size_t i) {
  constexpr size_t kDup = static_cast<size_t>(-1);
  for (int hops = 0; hops < 40; ++hops) {
    if (i == kDup || layout.members[i].type != EntryType::kSymlink) {
      return i == kDup ? std::nullopt : std::optional<size_t>(i);
    }
    const TarLayoutMember& m = layout.members[i];
    std::string joined;
    if (!m.link.starts_with('/')) {
      const size_t slash = m.path.rfind('/');
      if (slash != std::string::npos) joined = m.path.substr(0, slash + 1);
    }
    joined += m.link;
    // ".." at the root stays at the root (as in a chroot): drop the components that would climb.
    std::vector<std::string_view> parts;
    std::string_view rest = joined;
    while (!rest.empty()) {
      const size_t slash = rest.find('/');
      std::string_view part = rest.substr(0, slash);
      rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
      if (part.empty() || part == ".") continue;
      if (part == "..") {
        if (!parts.empty()) parts.pop_back();
        continue;
      }
      parts.push_back(part);
    }
    std::string target;
    for (std::string_view part : parts) {
      if (!target.empty()) target += '/';
      target += part;
    }
    auto t = by_path.find(target);
    if (t == by_path.end()) return std::nullopt;
    i = t->second;
  }
  return std::nullopt;
}

}  // namespace

std::optional<PrefetchPlan> PrefetchOrder(const TarLayout& layout,
                                          const std::vector<std::string>& prefetch) {
  if (prefetch.empty() || layout.members.empty()) return std::nullopt;
  // path -> member index; paths seen twice map to npos (not moved).
  constexpr size_t kDup = static_cast<size_t>(-1);
  std::map<std::string_view, size_t> by_path;
  for (size_t i = 0; i < layout.members.size(); ++i) {
    auto [it, inserted] = by_path.emplace(layout.members[i].path, i);
    if (!inserted) it->second = kDup;
  }
  PrefetchPlan plan;
  std::vector<size_t> listed;  // in list order, hardlink targets before their links
  std::vector<bool> moved(layout.members.size(), false);
  std::set<std::string_view> marks;
  // Adds member `i` (a listed entry or a hardlink target), its target first. False when it
  // cannot move (then a link to it cannot move either).
  std::function<bool(size_t, int)> add = [&](size_t i, int depth) -> bool {
    if (moved[i]) return true;
    const TarLayoutMember& m = layout.members[i];
    if (IsWhiteout(m.path) || depth > 64) return false;
    if (m.type == EntryType::kHardlink) {
      auto t = by_path.find(m.link);
      if (t != by_path.end()) {
        if (t->second == kDup || t->second > i || !add(t->second, depth + 1)) return false;
        marks.insert(layout.members[t->second].path);
      }
    }
    moved[i] = true;
    listed.push_back(i);
    return true;
  };
  for (const std::string& p : prefetch) {
    auto it = by_path.find(p);
    if (it == by_path.end()) continue;
    marks.insert(it->first);
    if (it->second != kDup) add(it->second, 0);
    // A listed symlink: its target (in this layer) is what a program opens.
    if (std::optional<size_t> t = SymlinkTarget(layout, by_path, it->second)) {
      marks.insert(layout.members[*t].path);
      add(*t, 0);
    }
  }
  if (layout.has_global_header) {
    if (!listed.empty()) {
      HOIST_LOG(kWarning) << "layer has a pax global header: listed entries are marked but not "
                             "moved to the front";
    }
    listed.clear();
  }
  if (listed.empty()) return std::nullopt;
  // Ancestor directories of the moved entries, sorted by path (a parent sorts before its
  // children: it is a prefix of theirs).
  std::set<std::string_view> dir_paths;
  for (size_t i : listed) {
    std::string_view p = layout.members[i].path;
    for (;;) {
      size_t slash = p.rfind('/');
      p = slash == std::string_view::npos ? std::string_view() : p.substr(0, slash);
      dir_paths.insert(p);
      if (p.empty()) break;
    }
  }
  for (std::string_view d : dir_paths) {
    auto it = by_path.find(d);
    if (it == by_path.end() || it->second == kDup) continue;
    const size_t i = it->second;
    if (layout.members[i].type != EntryType::kDirectory) continue;
    if (moved[i]) {  // a listed directory that is also a parent: place it with the parents
      listed.erase(std::find(listed.begin(), listed.end(), i));
    }
    moved[i] = true;
    plan.order.push_back(i);
  }
  plan.order.insert(plan.order.end(), listed.begin(), listed.end());
  for (size_t i = 0; i < layout.members.size(); ++i) {
    if (!moved[i]) plan.order.push_back(i);
  }
  for (std::string_view m : marks) plan.marks.emplace_back(m);
  return plan;
}

ReorderedReader::ReorderedReader(ScopedFd fd, const TarLayout& layout,
                                 const std::vector<size_t>& order)
    : fd_(std::move(fd)) {
  auto push = [&](uint64_t b, uint64_t e) {
    if (b == e) return;
    if (!spans_.empty() && spans_.back().end == b) {
      spans_.back().end = e;
    } else {
      spans_.push_back(Span{b, e});
    }
  };
  for (size_t i : order) push(layout.members[i].begin, layout.members[i].end);
  push(layout.trailer_offset, layout.size);
}

Result<size_t> ReorderedReader::Read(char* buf, size_t n) {
  while (next_ < spans_.size()) {
    const Span& s = spans_[next_];
    const uint64_t left = s.end - s.begin - pos_;
    if (left == 0) {
      ++next_;
      pos_ = 0;
      continue;
    }
    const size_t want = static_cast<size_t>(std::min<uint64_t>(left, n));
    ssize_t got = ::pread(fd_.get(), buf, want, static_cast<off_t>(s.begin + pos_));
    if (got < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrnoError("read the tar spool file"));
    }
    if (got == 0) return Fail(EIO, "tar spool file is shorter than its layout");
    pos_ += static_cast<uint64_t>(got);
    return static_cast<size_t>(got);
  }
  return size_t{0};
}

}  // namespace hoist
