// Reordering a layer's tar for `hoist convert --prefetch-list`: the listed entries move to the
// front of the layer (so a mount fetches them with a few large Range reads), everything else
// keeps its original order. Two passes over a spooled copy of the tar, so memory stays bounded
// whatever the layer size:
//   1. SpoolTar reads the tar to its end, writes every byte to a file, hashes it (the source
//      diff_id) and records where each member starts and ends (TarLayout; per member a few
//      dozen bytes plus its path);
//   2. PrefetchOrder picks the new order; ReorderedReader streams the members from the spool
//      file in that order, then the trailer, unchanged byte for byte.
//
// The order (PrefetchOrder):
//   - first the directory entries of this layer that are ancestors of a moved entry (the root
//     "./" included), sorted by path, so extractors apply their attributes before creating
//     children and every parent precedes its children;
//   - then the listed entries found in this layer, in the list's order; a listed hardlink is
//     preceded by its target (itself moved, recursively, when it is in this layer); a listed
//     symlink ("bin/sh" -> "busybox") is followed by the file it leads to, resolved inside the
//     image root through this layer's symlinks, when that file is in this layer (it is marked
//     and moved too: a program opens the file, never the link);
//   - then every other member in original order, then the trailer.
//   Not moved (but still marked by the writer): whiteouts and opaque markers (".wh." names; kept
//   in place), and paths that occur more than once in the layer (moving one occurrence could
//   change which one wins). A layer with a pax global header ('g') is not reordered at all (its
//   records apply to the members after it). When nothing moves, PrefetchOrder returns nullopt
//   and the caller streams the spool as it is (byte-exact, same diff_id).
//
// Thread-safety: pure functions / one reader per thread. Errors: SpoolTar: those of the tar
// reader (EBADMSG/EINVAL/... naming the member), of the source, and of write(2) (errno).
// ReorderedReader: pread errors (errno, naming the spool file).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/scoped_fd.h"
#include "base/status.h"
#include "index/layer_index.h"
#include "tools/image/image_stream.h"

namespace hoist {

struct TarLayoutMember {
  uint64_t begin = 0;  // offset of its first metadata block
  uint64_t end = 0;    // offset after its padding
  std::string path;    // cleaned
  EntryType type = EntryType::kRegular;
  std::string link;  // hardlink: cleaned target path; symlink: the target as written
};

struct TarLayout {
  std::vector<TarLayoutMember> members;  // in tar order; contiguous from offset 0
  uint64_t trailer_offset = 0;           // the end-of-archive blocks and anything after them
  uint64_t size = 0;                     // bytes in the stream
  bool has_global_header = false;        // a pax 'g' header precedes some member
  Digest digest;                         // sha256 of the stream (the source diff_id)
};

// Pass 1: reads `tar` to EOF, copying every byte to `out_fd` (from its current position).
[[nodiscard]] Result<TarLayout> SpoolTar(ByteReader& tar, int out_fd);

struct PrefetchPlan {
  std::vector<size_t> order;       // member indices: a permutation of [0, members.size())
  std::vector<std::string> marks;  // listed paths in this layer + hardlink targets moved
};

// The new order for `prefetch` (cleaned paths), or nullopt when no member moves.
std::optional<PrefetchPlan> PrefetchOrder(const TarLayout& layout,
                                          const std::vector<std::string>& prefetch);

// Streams the spool file's members in `order`, then [trailer_offset, size). Takes the fd.
class ReorderedReader : public ByteReader {
 public:
  ReorderedReader(ScopedFd fd, const TarLayout& layout, const std::vector<size_t>& order);
  Result<size_t> Read(char* buf, size_t n) override;

 private:
  struct Span {
    uint64_t begin, end;
  };
  ScopedFd fd_;
  std::vector<Span> spans_;  // adjacent spans merged
  size_t next_ = 0;
  uint64_t pos_ = 0;  // within spans_[next_]
};

}  // namespace hoist
