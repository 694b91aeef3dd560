// Internal to fusefs/: the compact, frozen arrays a MergedView is made of, and the function that
// builds them from an ordered list of layers by OCI layer semantics (TreeMode::kMerged), or from
// ONE layer as an overlayfs lower layer shows it (TreeMode::kLayer: whiteouts as 0/0 character
// devices, opaque directories flagged; merged_view.h, "Layer views"). MergedView is the public
// API; only it and the tests include this header.
//
// Layout (about 40 bytes per inode plus the names, independent of the layers' own memory):
//   inodes[ino - 1]   one record per inode; root is ino 1. Records point at the layer entry that
//                     backs the inode (no Entry is copied).
//   children          every directory's children as one contiguous run, sorted by name (bytes),
//                     so lookup is a binary search and readdir offsets are indexes into the run.
//   names             the children's names, each followed by a NUL (FUSE wants C strings).
//
// Thread-safety: plain values; immutable once built.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "index/layer_index.h"

namespace hoist {

// InodeRecord::layer of a directory no layer lists (an implicit parent): mode 0755, owner 0:0,
// mtime 0, no xattrs.
inline constexpr uint32_t kSynthesizedLayer = UINT32_MAX;
// Size unit of statfs figures and of the rounding of file sizes there.
inline constexpr uint64_t kStatfsBlockSize = 4096;

// How the tree represents whiteouts and opaque markers.
enum class TreeMode : uint8_t {
  kMerged,  // applied to the lower layers, markers hidden (the image's merged filesystem)
  kLayer,   // one layer, markers represented the way overlayfs reads a lower layer
};

// InodeRecord::flags (TreeMode::kLayer only; always 0 in a merged tree).
inline constexpr uint8_t kInodeWhiteout = 1;  // a 0/0 character device made from ".wh.<name>"
inline constexpr uint8_t kInodeOpaque = 2;    // a directory made opaque by ".wh..wh..opq"

struct InodeRecord {
  uint32_t layer = kSynthesizedLayer;  // position in the layer list (0 = lowest)
  uint32_t entry = 0;                  // index into that layer's entries
  uint32_t parent = 0;                 // directories: ino of ".." (root: 1); others: 0
  uint32_t nlink = 0;                  // names in the merged tree; directories: 2 + subdirs
  uint32_t child_begin = 0;            // directories: run in MergedTree::children
  uint32_t child_count = 0;
  EntryType type = EntryType::kDirectory;  // never kHardlink
  uint8_t flags = 0;                       // kInodeWhiteout (entry: the marker), kInodeOpaque
};

struct ChildRecord {
  uint32_t name_offset = 0;  // into MergedTree::names; NUL-terminated
  uint16_t name_length = 0;
  EntryType type = EntryType::kDirectory;
  uint32_t ino = 0;
};

struct MergedTree {
  std::vector<InodeRecord> inodes;
  std::vector<ChildRecord> children;
  std::string names;
  uint64_t content_blocks = 0;  // sum over regular inodes of ceil(size / kStatfsBlockSize)
};

// Applies `layers` (lowest first) onto an empty root. Error: EINVAL (or ENAMETOOLONG) naming the
// layer and the entry, for a layer that breaks the rules in merged_view.h; EOVERFLOW past 2^32-2
// inodes or 4 GiB of names. TreeMode::kLayer takes exactly one layer (EINVAL otherwise); the
// rules that refuse a layer are the same in both modes.
[[nodiscard]] Result<MergedTree> BuildMergedTree(
    std::span<const std::shared_ptr<const LayerIndex>> layers, TreeMode mode = TreeMode::kMerged);

}  // namespace hoist
