// MergedView: the read-only filesystem tree of an image, merged from its layers by OCI layer
// semantics, addressed the way the libfuse3 low-level API addresses it (inode numbers, root 1).
// Pure logic: no FUSE call, no I/O; the FUSE ops (fuse_ops.cc) are a thin layer on top.
//
// Merge rules (layers applied lowest first; index/FORMATS.md, "Layer semantics"):
//   - ".wh.<name>" hides <name> (and its subtree) of the LOWER layers only; the marker is hidden.
//     "<dir>/.wh..wh..opq" hides all lower content of <dir>. Both act before the layer's own
//     entries, whatever the tar order, so a layer may white out a name and re-create it.
//     A bare ".wh." is an error. Other ".wh..wh.*" names (AUFS metadata) are skipped with
//     everything under them; any other ".wh." name used as a directory is an error.
//   - Directory over directory: the upper entry's attributes and xattrs replace the lower ones
//     (as overlayfs shows them); the children merge. Anything else replaces the lower path: a
//     file over a directory drops the whole lower subtree, a directory over a file replaces it.
//   - Implicit parents (a layer lists "a/b/c" but not "a/b"): an existing lower directory is
//     kept as it is; otherwise a directory is synthesised (mode 0755, uid/gid 0, mtime 0, no
//     xattrs), replacing a lower non-directory in the way. Markers imply their parents too.
//   - Duplicate paths within one layer: the entries apply in tar order and the last wins, as
//     umoci and containerd extract them (a warning is logged once per layer): a file over a
//     symlink or a symlink over a file replaces it, a directory over a non-directory replaces
//     it, a directory over a directory takes the later entry's attributes and keeps the
//     children, and a non-directory over a directory removes it with everything under it.
//   - Hardlinks: link_name names an earlier non-directory entry of the SAME layer, as the tree
//     stood when the hardlink entry came (tar order); the names share one inode with the
//     target's attributes, xattrs and content (the hardlink entry's own mode/uid/... are
//     ignored). A chain of hardlinks resolves to the same inode. A target that is missing or
//     in a lower layer ("target is not an earlier entry of this layer": containerd's overlayfs
//     snapshotter fails such a link) or a directory is an error. nlink counts the names of the
//     inode left in the merged tree, so it drops when an upper layer whites out or replaces a
//     name.
//   - An entry whose parent is a non-directory of the same layer (as the layer stands at that
//     entry) is an error, as in umoci and containerd. Paths are
//     re-validated (no "", ".", ".." components, no leading "/", NUL, or name > 255 bytes):
//     nothing can escape the root. Symlink targets are returned as stored, never resolved.
//   - Layer-supplied "trusted.overlay.*" and "user.overlay.*" xattrs are never shown
//     (xattr_policy.h); everything else passes, security.capability included.
// An error for a layer fails the whole Build (EINVAL; message names layer, digest and entry).
//
// Layer views (BuildLayer): ONE layer as kernel overlayfs reads a lower layer, for stacking
// layers with `mount -t overlay -o lowerdir=...` (the remote snapshotter, layer_store.h). The
// same builder and the same rules (a layer refused here is refused by Build and CheckLayerRules,
// with the same message), the layer's own entries as above, and the markers represented instead
// of applied, whatever their tar order:
//   - ".wh.<name>" is a character device <name> with device number 0/0 (overlayfs's whiteout),
//     permission bits 0, owner and mtime of the marker entry, no xattrs, nlink 1 (containerd's
//     overlayfs applier makes the same with mknod and chown). If the layer itself has <name>, a
//     non-directory there already hides the lower <name> (no device), and a directory there is
//     made opaque (it replaces, not merges with, the lower one).
//   - "<dir>/.wh..wh..opq" is hidden and makes <dir> opaque: GetXattr(<dir>,
//     "trusted.overlay.opaque") is "y" and ListXattr lists that name. This is the ONLY
//     trusted.overlay.* / user.overlay.* attribute a layer view shows: the layer's own are hidden
//     as in the merged view (xattr_policy.h), because overlayfs acts on them (redirect, metacopy,
//     origin, whiteout, opaque) and an image must not steer the overlay beyond what the OCI
//     markers say. A layer-supplied "trusted.overlay.opaque" therefore has no effect; only the
//     marker makes a directory opaque. (Rootless overlayfs with userxattr reads user.overlay.*:
//     not synthesised.)
//   - An opaque root ("/.wh..wh..opq") is flagged like any directory, but overlayfs does not
//     read opaqueness on a layer's root: stacked, such a layer does not hide the layers below.
//   - AUFS ".wh..wh.*" metadata is skipped, as in the merged view.
// Regular files are read through OpenFile exactly as in the merged view (FileRef::layer is 0).
//
// Attributes (GetAttr): st_mode = file type | (Entry::mode & 07777), so setuid/setgid/sticky
// bits are kept (the mount's nosuid neutralises them); st_nlink as above, directories 2 + number
// of subdirectories; uid, gid as stored; st_size: regular = Entry::size, symlink = length of the
// target, others 0; st_blocks = ceil(size / 512) for regular files, else 0; st_blksize 4096;
// st_rdev = makedev(major, minor) for char and block devices (the mount is nodev); atime = ctime
// = mtime (sec + nsec).
//
// Inodes: numbered 1..inode_count() at Build, breadth first with children in name order, so
// the same layers always give the same numbers. The view is immutable: an inode number stays
// valid, and means the same file, for the view's (the mount's) lifetime and is never reused.
// Therefore the FUSE layer needs no lookup counting: forget/forget_multi are no-ops
// (fuse_reply_none), lookup and readdirplus need not count, and fuse_entry_param.generation
// may be 0. An unknown inode number (0, or > inode_count()) yields ESTALE.
//
// Thread-safety: a built view is immutable; every const method may be called concurrently
// without locking. Ownership: the view shares ownership of its layers (shared_ptr), and every
// string_view, pointer and DirListing it returns stays valid as long as the view lives.
// Errors: each method lists its errnos; messages are short (they are on the lookup hot path).
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "fusefs/merged_tree.h"
#include "index/layer_index.h"

namespace hoist {

using InodeNumber = uint64_t;  // what fuse_ino_t is
inline constexpr InodeNumber kRootInode = 1;

// One readdir position.
struct DirEntry {
  std::string_view name;  // NUL-terminated: name.data() may be passed to fuse_add_direntry
  InodeNumber ino = 0;
  mode_t type = 0;  // S_IFMT bits only (S_IFDIR, S_IFREG, ...): set as st_mode for readdir
};

// The readdir positions of one directory: 0 is ".", 1 is "..", 2 + k is the k-th child in
// byte order of names. Offsets are stable for the view's lifetime: the FUSE layer passes
// `offset + 1` as the next offset of the entry at `offset`, and resumes at any offset it got.
// Cheap to copy; valid while the view lives.
class DirListing {
 public:
  uint64_t size() const { return uint64_t{2} + dir_->child_count; }
  // REQUIRES: offset < size().
  DirEntry operator[](uint64_t offset) const;

 private:
  friend class MergedView;
  DirListing(uint32_t ino, const InodeRecord* dir, const ChildRecord* children, const char* names)
      : ino_(ino), dir_(dir), children_(children), names_(names) {}
  // Pointers into the view's arrays (not into the view object, so moving the view is fine).
  uint32_t ino_;
  const InodeRecord* dir_;
  const ChildRecord* children_;  // this directory's run
  const char* names_;
};

// What backs a regular file: read (ino, off, len) from `entry->chunks` of blob
// `index->layer_digest` (see ChunksForRange).
struct FileRef {
  uint32_t layer = 0;  // position in the layer list (0 = lowest)
  const LayerIndex* index = nullptr;
  const Entry* entry = nullptr;  // type kRegular; chunks cover [0, entry->size)
};

class MergedView {
 public:
  // Merges `layers` (lowest first). An empty list gives an empty root directory.
  // Error: EINVAL (ENAMETOOLONG, EOVERFLOW) for a layer that breaks the rules above.
  [[nodiscard]] static Result<MergedView> Build(
      std::vector<std::shared_ptr<const LayerIndex>> layers);

  // The layer view of `layer` ("Layer views" above). Errors: as Build (EINVAL for null).
  [[nodiscard]] static Result<MergedView> BuildLayer(std::shared_ptr<const LayerIndex> layer);

  MergedView(MergedView&&) noexcept = default;
  MergedView& operator=(MergedView&&) noexcept = default;
  MergedView(const MergedView&) = delete;
  MergedView& operator=(const MergedView&) = delete;

  uint64_t inode_count() const { return tree_.inodes.size(); }

  // The child `name` of directory `parent`; "." and ".." are answered too.
  // Errors: ESTALE (unknown parent), ENOTDIR, ENAMETOOLONG (> 255 bytes), ENOENT.
  [[nodiscard]] Result<InodeNumber> Lookup(InodeNumber parent, std::string_view name) const;

  // The inode at a cleaned path relative to the root ("" is the root; no symlink is followed).
  // Errors: ENOENT, ENOTDIR (a component on the way is not a directory), ENAMETOOLONG.
  [[nodiscard]] Result<InodeNumber> LookupPath(std::string_view path) const;

  // Errors: ESTALE.
  [[nodiscard]] Result<struct stat> GetAttr(InodeNumber ino) const;

  // Errors: ESTALE, ENOTDIR.
  [[nodiscard]] Result<DirListing> OpenDir(InodeNumber ino) const;

  // The symlink target exactly as stored; data() is NUL-terminated (fuse_reply_readlink).
  // Errors: ESTALE, EINVAL (not a symlink).
  [[nodiscard]] Result<std::string_view> ReadLink(InodeNumber ino) const;

  // The value of xattr `name` (raw bytes; the last one if a layer repeats a name).
  // Errors: ESTALE, ENODATA (absent or filtered). ERANGE/size-query handling is the caller's.
  [[nodiscard]] Result<std::string_view> GetXattr(InodeNumber ino, std::string_view name) const;

  // The visible xattr names in listxattr(2) format: each name followed by a NUL, each once.
  // Errors: ESTALE.
  [[nodiscard]] Result<std::string> ListXattr(InodeNumber ino) const;

  // What backs a regular file. Errors: ESTALE, EISDIR, EINVAL (not a regular file).
  [[nodiscard]] Result<FileRef> OpenFile(InodeNumber ino) const;

  // statfs figures: f_bsize = f_frsize = 4096, f_blocks = sum over regular inodes (each once)
  // of ceil(size / 4096), f_files = inode_count(), nothing free, f_namemax 255, ST_RDONLY.
  struct statvfs StatFs() const;

  const std::vector<std::shared_ptr<const LayerIndex>>& layers() const { return layers_; }

  // Heap bytes held by the view itself (not counting the layers).
  size_t MemoryUsage() const;

 private:
  MergedView(std::vector<std::shared_ptr<const LayerIndex>> layers, MergedTree tree)
      : layers_(std::move(layers)), tree_(std::move(tree)) {}

  // nullptr for an unknown inode number.
  const InodeRecord* Record(InodeNumber ino) const;
  // nullptr for a synthesised directory.
  const Entry* BackingEntry(const InodeRecord& record) const;

  std::vector<std::shared_ptr<const LayerIndex>> layers_;
  MergedTree tree_;
};

// The chunks of `entry` that overlap [offset, offset + length), in file order (empty when the
// range is empty or past the end). REQUIRES: entry.chunks sorted by file_offset (LayerIndex).
std::span<const Chunk> ChunksForRange(const Entry& entry, uint64_t offset, uint64_t length);

// The S_IFMT bits of an entry type (0 for kHardlink, which never backs an inode).
mode_t FileTypeBits(EntryType type);

// The merge rules above that can refuse a layer, applied to `layer` alone. Every rule is decided
// within one layer, so a layer that passes here never fails the build of any image, and one
// that fails here fails every image that holds it, with this message. One code path (the
// builder) decides for the mount, `hoist convert` (on its output, before pushing) and `hoist
// pull` (before storing). Errors: BuildMergedTree's, without the layer label (the caller adds
// LayerLabel, which BuildMergedTree puts first).
[[nodiscard]] Status CheckLayerRules(const LayerIndex& layer);

}  // namespace hoist
