#include "fusefs/merged_view.h"

#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "fusefs/layer_path.h"
#include "fusefs/xattr_policy.h"

namespace hoist {
namespace {

constexpr mode_t kSynthesizedDirMode = 0755;
constexpr blksize_t kPreferredIoSize = 4096;

std::unexpected<Error> Stale() { return Fail(ESTALE, "stale inode"); }

}  // namespace

mode_t FileTypeBits(EntryType type) {
  switch (type) {
    case EntryType::kRegular:
      return S_IFREG;
    case EntryType::kDirectory:
      return S_IFDIR;
    case EntryType::kSymlink:
      return S_IFLNK;
    case EntryType::kCharDevice:
      return S_IFCHR;
    case EntryType::kBlockDevice:
      return S_IFBLK;
    case EntryType::kFifo:
      return S_IFIFO;
    case EntryType::kHardlink:
      return 0;
  }
  return 0;
}

DirEntry DirListing::operator[](uint64_t offset) const {
  if (offset == 0) return DirEntry{.name = ".", .ino = ino_, .type = S_IFDIR};
  if (offset == 1) return DirEntry{.name = "..", .ino = dir_->parent, .type = S_IFDIR};
  const ChildRecord& child = children_[offset - 2];
  return DirEntry{.name = std::string_view(names_ + child.name_offset, child.name_length),
                  .ino = child.ino,
                  .type = FileTypeBits(child.type)};
}

Result<MergedView> MergedView::Build(std::vector<std::shared_ptr<const LayerIndex>> layers) {
  HOIST_ASSIGN_OR_RETURN(MergedTree tree, BuildMergedTree(layers));
  return MergedView(std::move(layers), std::move(tree));
}

Result<MergedView> MergedView::BuildLayer(std::shared_ptr<const LayerIndex> layer) {
  std::vector<std::shared_ptr<const LayerIndex>> layers = {std::move(layer)};
  HOIST_ASSIGN_OR_RETURN(MergedTree tree, BuildMergedTree(layers, TreeMode::kLayer));
  return MergedView(std::move(layers), std::move(tree));
}

const InodeRecord* MergedView::Record(InodeNumber ino) const {
  if (ino == 0 || ino > tree_.inodes.size()) return nullptr;
  return &tree_.inodes[ino - 1];
}

const Entry* MergedView::BackingEntry(const InodeRecord& record) const {
  if (record.layer == kSynthesizedLayer) return nullptr;
  return &layers_[record.layer]->entries[record.entry];
}

Result<InodeNumber> MergedView::Lookup(InodeNumber parent, std::string_view name) const {
  const InodeRecord* dir = Record(parent);
  if (dir == nullptr) return Stale();
  if (dir->type != EntryType::kDirectory) return Fail(ENOTDIR, "not a directory");
  if (name.size() > kMaxNameLength) return Fail(ENAMETOOLONG, "name too long");
  if (name == ".") return parent;
  if (name == "..") return dir->parent;
  auto begin = tree_.children.begin() + dir->child_begin;
  auto end = begin + dir->child_count;
  std::string_view names = tree_.names;
  auto it = std::partition_point(begin, end, [&](const ChildRecord& c) {
    return names.substr(c.name_offset, c.name_length) < name;
  });
  if (it == end || names.substr(it->name_offset, it->name_length) != name) {
    return Fail(ENOENT, "no such entry");
  }
  return it->ino;
}

Result<InodeNumber> MergedView::LookupPath(std::string_view path) const {
  InodeNumber ino = kRootInode;
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    HOIST_ASSIGN_OR_RETURN(ino, Lookup(ino, path.substr(start, slash - start)));
    start = slash + 1;
  }
  return ino;
}

Result<struct stat> MergedView::GetAttr(InodeNumber ino) const {
  const InodeRecord* record = Record(ino);
  if (record == nullptr) return Stale();
  struct stat st;
  std::memset(&st, 0, sizeof(st));
  st.st_ino = ino;
  st.st_nlink = record->nlink;
  st.st_blksize = kPreferredIoSize;
  const Entry* entry = BackingEntry(*record);
  if (entry == nullptr) {
    st.st_mode = S_IFDIR | kSynthesizedDirMode;
    return st;
  }
  if (record->flags & kInodeWhiteout) {
    // overlayfs's whiteout: a character device 0/0; owner and mtime of the marker.
    st.st_mode = S_IFCHR;
    st.st_uid = entry->uid;
    st.st_gid = entry->gid;
    st.st_mtim.tv_sec = entry->mtime_sec;
    st.st_mtim.tv_nsec = std::min<uint32_t>(entry->mtime_nsec, 999'999'999);
    st.st_atim = st.st_mtim;
    st.st_ctim = st.st_mtim;
    st.st_rdev = makedev(0, 0);
    return st;
  }
  st.st_mode = FileTypeBits(record->type) | (entry->mode & 07777);
  st.st_uid = entry->uid;
  st.st_gid = entry->gid;
  st.st_mtim.tv_sec = entry->mtime_sec;
  st.st_mtim.tv_nsec = std::min<uint32_t>(entry->mtime_nsec, 999'999'999);
  st.st_atim = st.st_mtim;
  st.st_ctim = st.st_mtim;
  switch (record->type) {
    case EntryType::kRegular:
      st.st_size = static_cast<off_t>(std::min<uint64_t>(entry->size, INT64_MAX));
      st.st_blocks = static_cast<blkcnt_t>(entry->size / 512 + (entry->size % 512 != 0));
      break;
    case EntryType::kSymlink:
      st.st_size = static_cast<off_t>(entry->link_name.size());
      break;
    case EntryType::kCharDevice:
    case EntryType::kBlockDevice:
      st.st_rdev = makedev(entry->dev_major, entry->dev_minor);
      break;
    default:
      break;
  }
  return st;
}

Result<DirListing> MergedView::OpenDir(InodeNumber ino) const {
  const InodeRecord* record = Record(ino);
  if (record == nullptr) return Stale();
  if (record->type != EntryType::kDirectory) return Fail(ENOTDIR, "not a directory");
  return DirListing(static_cast<uint32_t>(ino), record, tree_.children.data() + record->child_begin,
                    tree_.names.data());
}

Result<std::string_view> MergedView::ReadLink(InodeNumber ino) const {
  const InodeRecord* record = Record(ino);
  if (record == nullptr) return Stale();
  if (record->type != EntryType::kSymlink) return Fail(EINVAL, "not a symlink");
  return std::string_view(BackingEntry(*record)->link_name);
}

Result<std::string_view> MergedView::GetXattr(InodeNumber ino, std::string_view name) const {
  const InodeRecord* record = Record(ino);
  if (record == nullptr) return Stale();
  if ((record->flags & kInodeOpaque) && name == kOverlayOpaqueXattr) return std::string_view("y");
  if (record->flags & kInodeWhiteout) return Fail(ENODATA, "no such xattr");
  const Entry* entry = BackingEntry(*record);
  if (entry != nullptr && !IsHiddenXattr(name)) {
    for (auto it = entry->xattrs.rbegin(); it != entry->xattrs.rend(); ++it) {
      if (it->name == name) return std::string_view(it->value);
    }
  }
  return Fail(ENODATA, "no such xattr");
}

Result<std::string> MergedView::ListXattr(InodeNumber ino) const {
  const InodeRecord* record = Record(ino);
  if (record == nullptr) return Stale();
  std::string list;
  if (record->flags & kInodeOpaque) {
    list.append(kOverlayOpaqueXattr);
    list.push_back('\0');
  }
  const Entry* entry = BackingEntry(*record);
  if (entry == nullptr || (record->flags & kInodeWhiteout)) return list;
  const std::vector<Xattr>& xattrs = entry->xattrs;
  for (size_t i = 0; i < xattrs.size(); ++i) {
    const std::string& name = xattrs[i].name;
    // Empty names and names with a NUL cannot be listed (or asked for); skip them.
    if (name.empty() || name.find('\0') != std::string::npos || IsHiddenXattr(name)) continue;
    bool repeated_later = std::any_of(xattrs.begin() + i + 1, xattrs.end(),
                                      [&](const Xattr& x) { return x.name == name; });
    if (repeated_later) continue;
    list.append(name);
    list.push_back('\0');
  }
  return list;
}

Result<FileRef> MergedView::OpenFile(InodeNumber ino) const {
  const InodeRecord* record = Record(ino);
  if (record == nullptr) return Stale();
  if (record->type == EntryType::kDirectory) return Fail(EISDIR, "is a directory");
  if (record->type != EntryType::kRegular) return Fail(EINVAL, "not a regular file");
  return FileRef{.layer = record->layer,
                 .index = layers_[record->layer].get(),
                 .entry = BackingEntry(*record)};
}

struct statvfs MergedView::StatFs() const {
  struct statvfs st;
  std::memset(&st, 0, sizeof(st));
  st.f_bsize = kStatfsBlockSize;
  st.f_frsize = kStatfsBlockSize;
  st.f_blocks = tree_.content_blocks;
  st.f_files = tree_.inodes.size();
  st.f_namemax = kMaxNameLength;
  st.f_flag = ST_RDONLY;
  return st;
}

size_t MergedView::MemoryUsage() const {
  return tree_.inodes.capacity() * sizeof(InodeRecord) +
         tree_.children.capacity() * sizeof(ChildRecord) + tree_.names.capacity() +
         layers_.capacity() * sizeof(layers_[0]);
}

std::span<const Chunk> ChunksForRange(const Entry& entry, uint64_t offset, uint64_t length) {
  if (length == 0 || offset >= entry.size) return {};
  uint64_t end = offset + std::min(length, entry.size - offset);
  const std::vector<Chunk>& chunks = entry.chunks;
  // First chunk whose end is past `offset`, then up to the first chunk starting at or past `end`.
  auto first = std::partition_point(chunks.begin(), chunks.end(), [&](const Chunk& c) {
    return c.file_offset + c.size <= offset;
  });
  auto last = std::partition_point(first, chunks.end(),
                                   [&](const Chunk& c) { return c.file_offset < end; });
  return std::span<const Chunk>(first, last);
}

}  // namespace hoist
