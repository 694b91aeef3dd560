// BuildMergedTree: applies layers onto a mutable tree of nodes, then freezes the live tree into
// the compact MergedTree arrays.
//
// The mutable tree separates names (Node, one per path) from inodes (BuildInode, shared by the
// names of a hardlink group). Children of a directory are an intrusive doubly linked list, and
// an open-addressing table maps (parent, name) to a node, so replacing or whiting out a path is
// O(1) plus the size of the removed subtree. Node names are string_views into the layers' entry
// paths; they are copied once, into the frozen name arena, at the end.
//
// Each layer is applied in two passes, so that a layer's whiteouts and opaque markers affect
// only the lower layers, whatever their position in the tar:
//   1. deletions: every ".wh.<name>" removes <name>, every ".wh..wh..opq" empties its directory,
//      looked up in the tree as the lower layers left it;
//   2. entries, in tar order: implicit parents, directory-over-directory attribute updates,
//      replacements, hardlinks (resolved against this layer's earlier entries). A layer's own
//      entries replace each other as an extractor writing them in order would: the last wins.
//
// The same builder, run on one layer alone, is CheckLayerRules: every rule is per layer, so the
// one code path decides for the mount, `hoist convert` and `hoist pull`.
//
// TreeMode::kLayer (one layer, as an overlayfs lower layer): pass 1 deletes nothing (there is
// nothing below), pass 2 is the same, and a third pass represents the markers, again whatever
// their tar order: ".wh.<name>" becomes a whiteout inode <name> (a 0/0 character device) unless
// the layer itself has <name>: a non-directory there already hides the lower one, a directory is
// flagged opaque (it must not merge with the lower one it replaces, as overlayfs does when a
// directory is removed and made again); ".wh..wh..opq" flags its directory opaque. A marker
// whose directory the layer later replaced with a non-directory is dropped with it.
#include <algorithm>
#include <cerrno>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/log.h"
#include "fusefs/layer_path.h"
#include "fusefs/merged_tree.h"
#include "fusefs/merged_view.h"

namespace hoist {
namespace {

constexpr uint32_t kNoNode = UINT32_MAX;
constexpr uint32_t kNoLayer = UINT32_MAX;
constexpr uint32_t kRootNode = 0;
// Inode numbers are uint32 in the records; keep clear of the sentinels.
constexpr size_t kMaxNodes = UINT32_MAX - 16;

struct Node {
  std::string_view name;
  uint32_t parent = kNoNode;
  uint32_t first_child = kNoNode;
  uint32_t next_sibling = kNoNode;
  uint32_t prev_sibling = kNoNode;
  uint32_t inode = 0;
  uint32_t created_layer = kNoLayer;  // the layer that put this node here
  uint32_t seen_layer = kNoLayer;     // directories: the last layer that declared or traversed it
  bool is_dir = false;
};

struct BuildInode {
  uint32_t layer = kSynthesizedLayer;
  uint32_t entry = 0;
  EntryType type = EntryType::kDirectory;
  uint8_t flags = 0;  // kInodeWhiteout, kInodeOpaque (TreeMode::kLayer)
};

// (parent node, name) -> node, open addressing with linear probing and tombstones.
class ChildTable {
 public:
  ChildTable(const std::vector<Node>& nodes, size_t expected_nodes) : nodes_(nodes) {
    size_t capacity = kMinCapacity;
    while (capacity < expected_nodes * 2) capacity *= 2;
    slots_.assign(capacity, kEmpty);
  }

  uint32_t Find(uint32_t parent, std::string_view name) const {
    size_t mask = slots_.size() - 1;
    for (size_t i = Hash(parent, name) & mask;; i = (i + 1) & mask) {
      uint32_t slot = slots_[i];
      if (slot == kEmpty) return kNoNode;
      if (slot != kTombstone && nodes_[slot].parent == parent && nodes_[slot].name == name) {
        return slot;
      }
    }
  }

  // REQUIRES: no node with the same (parent, name) is in the table.
  void Insert(uint32_t node) {
    if ((used_ + 1) * 2 > slots_.size()) Rehash();
    size_t mask = slots_.size() - 1;
    for (size_t i = Hash(nodes_[node].parent, nodes_[node].name) & mask;; i = (i + 1) & mask) {
      if (slots_[i] == kEmpty || slots_[i] == kTombstone) {
        if (slots_[i] == kEmpty) ++used_;
        slots_[i] = node;
        ++live_;
        return;
      }
    }
  }

  // REQUIRES: `node` is in the table.
  void Erase(uint32_t node) {
    size_t mask = slots_.size() - 1;
    for (size_t i = Hash(nodes_[node].parent, nodes_[node].name) & mask;; i = (i + 1) & mask) {
      if (slots_[i] == node) {
        slots_[i] = kTombstone;
        --live_;
        return;
      }
    }
  }

 private:
  static constexpr uint32_t kEmpty = UINT32_MAX;
  static constexpr uint32_t kTombstone = UINT32_MAX - 1;
  static constexpr size_t kMinCapacity = 1024;

  static size_t Hash(uint32_t parent, std::string_view name) {
    return std::hash<std::string_view>{}(name) ^ (uint64_t{parent} * 0x9e3779b97f4a7c15ull);
  }

  void Rehash() {
    size_t capacity = kMinCapacity;
    while (capacity < (live_ + 1) * 4) capacity *= 2;
    std::vector<uint32_t> old = std::move(slots_);
    slots_.assign(capacity, kEmpty);
    used_ = 0;
    live_ = 0;
    for (uint32_t slot : old) {
      if (slot != kEmpty && slot != kTombstone) Insert(slot);
    }
  }

  const std::vector<Node>& nodes_;
  std::vector<uint32_t> slots_;
  size_t used_ = 0;  // live entries + tombstones
  size_t live_ = 0;
};

bool IsKnownType(EntryType type) {
  switch (type) {
    case EntryType::kRegular:
    case EntryType::kDirectory:
    case EntryType::kSymlink:
    case EntryType::kHardlink:
    case EntryType::kCharDevice:
    case EntryType::kBlockDevice:
    case EntryType::kFifo:
      return true;
  }
  return false;
}

class TreeBuilder {
 public:
  // `labelled`: errors start with the layer's LayerLabel; otherwise the caller names the layer.
  TreeBuilder(std::span<const std::shared_ptr<const LayerIndex>> layers, bool labelled,
              TreeMode mode = TreeMode::kMerged)
      : layers_(layers), labelled_(labelled), mode_(mode), table_(nodes_, ExpectedNodes(layers)) {
    // Every entry adds at most one node and one inode (implicit parents are few in real images).
    nodes_.reserve(ExpectedNodes(layers));
    inodes_.reserve(ExpectedNodes(layers));
    nodes_.push_back(Node{.inode = 0, .is_dir = true});
    inodes_.push_back(BuildInode{});  // the root: synthesised until a layer lists ""
    live_nodes_ = 1;
  }

  Status ApplyLayer(uint32_t l) {
    const LayerIndex& layer = *layers_[l];
    if (layer.entries.size() >= kMaxNodes) {
      return Fail(LayerError(l, EOVERFLOW, "too many entries"));
    }
    // Pass 1: check every entry, and apply the layer's whiteouts and opaque markers to the tree
    // as the lower layers left it. Nothing is kept per entry: pass 2 classifies again.
    for (const Entry& entry : layer.entries) {
      Status valid = ValidateEntryPath(entry.path);
      if (!valid) return Fail(LayerError(l, valid.error()));
      Result<EntryName> name = ClassifyEntryPath(entry.path);
      if (!name) return Fail(LayerError(l, name.error()));
      if (!IsKnownType(entry.type)) {
        return Fail(LayerError(l, EINVAL,
                               "entry " + QuotePath(entry.path) + " has unknown type " +
                                   std::to_string(static_cast<int>(entry.type))));
      }
      if (mode_ == TreeMode::kMerged) ApplyDeletion(*name);
    }
    // Pass 2: the layer's own entries, in tar order.
    cache_valid_ = false;
    duplicates_ = 0;
    for (uint32_t i = 0; i < layer.entries.size(); ++i) {
      Result<EntryName> name = ClassifyEntryPath(layer.entries[i].path);
      if (!name) return Fail(LayerError(l, name.error()));  // not reached: checked in pass 1
      HOIST_RETURN_IF_ERROR(ApplyEntry(l, i, *name));
    }
    if (mode_ == TreeMode::kLayer) {
      // Pass 3: the markers as overlayfs reads them (see the file comment).
      for (uint32_t i = 0; i < layer.entries.size(); ++i) {
        Result<EntryName> name = ClassifyEntryPath(layer.entries[i].path);
        if (!name) return Fail(LayerError(l, name.error()));  // not reached: checked in pass 1
        HOIST_RETURN_IF_ERROR(ApplyOverlayMarker(l, i, *name));
      }
    }
    if (duplicates_ > 0 && labelled_) {
      HOIST_LOG(kWarning) << LayerName(l) << ": " << duplicates_
                          << " duplicate paths; the last entry of each wins";
    }
    return Ok();
  }

  Result<MergedTree> Freeze() const;

  static size_t ExpectedNodes(std::span<const std::shared_ptr<const LayerIndex>> layers) {
    size_t n = 1;
    for (const auto& layer : layers) n += layer->entries.size();
    return std::min(n, kMaxNodes);
  }

 private:
  std::string LayerName(uint32_t l) const {
    const Digest& digest = layers_[l]->layer_digest;
    return LayerLabel(l, layers_.size(), digest.empty() ? std::string() : digest.str());
  }
  Error LayerError(uint32_t l, int code, std::string_view what) const {
    if (!labelled_) return Error(code, std::string(what));
    return Error(code, LayerName(l) + ": " + std::string(what));
  }
  Error LayerError(uint32_t l, const Error& error) const {
    return labelled_ ? error.Context(LayerName(l)) : error;
  }

  uint32_t NewInode(uint32_t layer, uint32_t entry, EntryType type, uint8_t flags = 0) {
    inodes_.push_back(BuildInode{.layer = layer, .entry = entry, .type = type, .flags = flags});
    return static_cast<uint32_t>(inodes_.size() - 1);
  }

  Result<uint32_t> AddNode(uint32_t l, uint32_t parent, std::string_view name, uint32_t inode,
                           bool is_dir) {
    if (nodes_.size() >= kMaxNodes) return Fail(LayerError(l, EOVERFLOW, "too many inodes"));
    uint32_t id = static_cast<uint32_t>(nodes_.size());
    nodes_.push_back(Node{.name = name,
                          .parent = parent,
                          .next_sibling = nodes_[parent].first_child,
                          .inode = inode,
                          .created_layer = l,
                          .seen_layer = is_dir ? l : kNoLayer,
                          .is_dir = is_dir});
    if (nodes_[parent].first_child != kNoNode) nodes_[nodes_[parent].first_child].prev_sibling = id;
    nodes_[parent].first_child = id;
    table_.Insert(id);
    ++live_nodes_;
    return id;
  }

  // Unlinks `node` from its parent and drops it with everything under it.
  void RemoveSubtree(uint32_t node) {
    Node& n = nodes_[node];
    if (n.prev_sibling != kNoNode) {
      nodes_[n.prev_sibling].next_sibling = n.next_sibling;
    } else {
      nodes_[n.parent].first_child = n.next_sibling;
    }
    if (n.next_sibling != kNoNode) nodes_[n.next_sibling].prev_sibling = n.prev_sibling;
    stack_.clear();
    stack_.push_back(node);
    while (!stack_.empty()) {
      uint32_t x = stack_.back();
      stack_.pop_back();
      table_.Erase(x);
      --live_nodes_;
      for (uint32_t c = nodes_[x].first_child; c != kNoNode; c = nodes_[c].next_sibling) {
        stack_.push_back(c);
      }
    }
  }

  // The node at `path`, or kNoNode when it (or a directory on the way) does not exist.
  uint32_t FindPath(std::string_view path) const {
    uint32_t node = kRootNode;
    size_t start = 0;
    while (start < path.size()) {
      if (!nodes_[node].is_dir) return kNoNode;
      size_t slash = path.find('/', start);
      if (slash == std::string_view::npos) slash = path.size();
      node = table_.Find(node, path.substr(start, slash - start));
      if (node == kNoNode) return kNoNode;
      start = slash + 1;
    }
    return node;
  }

  // A whiteout removes its target (with the subtree), an opaque marker empties its directory.
  void ApplyDeletion(const EntryName& name) {
    if (name.kind != EntryNameKind::kWhiteout && name.kind != EntryNameKind::kOpaque) return;
    uint32_t dir = FindPath(name.parent);
    if (dir == kNoNode || !nodes_[dir].is_dir) return;
    if (name.kind == EntryNameKind::kWhiteout) {
      uint32_t victim = table_.Find(dir, name.target);
      if (victim != kNoNode) RemoveSubtree(victim);
    } else {
      while (nodes_[dir].first_child != kNoNode) RemoveSubtree(nodes_[dir].first_child);
    }
  }

  // Walks `parent_path`, creating missing directories (synthesised) and replacing lower-layer
  // non-directories in the way; every directory on the way is marked as seen by layer `l`.
  Result<uint32_t> EnsureParentDirs(uint32_t l, std::string_view entry_path,
                                    std::string_view parent_path) {
    if (parent_path.empty()) return kRootNode;
    if (cache_valid_ && parent_path == cache_path_) return cache_node_;
    uint32_t node = kRootNode;
    size_t start = 0;
    while (start < parent_path.size()) {
      size_t slash = parent_path.find('/', start);
      if (slash == std::string_view::npos) slash = parent_path.size();
      std::string_view component = parent_path.substr(start, slash - start);
      uint32_t child = table_.Find(node, component);
      if (child != kNoNode && nodes_[child].is_dir) {
        nodes_[child].seen_layer = l;
        node = child;
      } else {
        if (child != kNoNode) {
          if (nodes_[child].created_layer == l) {
            return Fail(LayerError(l, EINVAL,
                                   "entry " + QuotePath(entry_path) + ": parent " +
                                       QuotePath(parent_path.substr(0, slash)) +
                                       " is not a directory in this layer"));
          }
          RemoveSubtree(child);  // a lower-layer file in the way: this layer makes it a directory
        }
        HOIST_ASSIGN_OR_RETURN(
            node, AddNode(l, node, component, NewInode(kSynthesizedLayer, 0, EntryType::kDirectory),
                          /*is_dir=*/true));
      }
      start = slash + 1;
    }
    cache_valid_ = true;
    cache_path_ = parent_path;
    cache_node_ = node;
    return node;
  }

  // TreeMode::kLayer, pass 3: a whiteout or opaque marker as overlayfs reads a lower layer.
  Status ApplyOverlayMarker(uint32_t l, uint32_t i, const EntryName& name) {
    if (name.kind != EntryNameKind::kWhiteout && name.kind != EntryNameKind::kOpaque) return Ok();
    // Pass 2 made the marker's directory; a later entry of the layer may have replaced it with a
    // non-directory, which drops the marker as an extractor would.
    const uint32_t dir = FindPath(name.parent);
    if (dir == kNoNode || !nodes_[dir].is_dir) return Ok();
    if (name.kind == EntryNameKind::kOpaque) {
      inodes_[nodes_[dir].inode].flags |= kInodeOpaque;
      return Ok();
    }
    const uint32_t existing = table_.Find(dir, name.target);
    if (existing == kNoNode) {
      HOIST_ASSIGN_OR_RETURN(
          uint32_t unused,
          AddNode(l, dir, name.target, NewInode(l, i, EntryType::kCharDevice, kInodeWhiteout),
                  /*is_dir=*/false));
      (void)unused;
    } else if (nodes_[existing].is_dir) {
      inodes_[nodes_[existing].inode].flags |= kInodeOpaque;
    }
    // Else a non-directory of this layer (or a whiteout repeated) already hides the lower name.
    return Ok();
  }

  Status ApplyEntry(uint32_t l, uint32_t i, const EntryName& name) {
    const Entry& entry = layers_[l]->entries[i];
    if (name.kind == EntryNameKind::kSkip) return Ok();
    if (entry.path.empty()) {
      if (entry.type != EntryType::kDirectory) {
        return Fail(LayerError(l, EINVAL, "the root entry is not a directory"));
      }
      inodes_[nodes_[kRootNode].inode] = BuildInode{.layer = l, .entry = i};
      return Ok();
    }
    HOIST_ASSIGN_OR_RETURN(uint32_t parent, EnsureParentDirs(l, entry.path, name.parent));
    if (name.kind != EntryNameKind::kNormal) return Ok();  // markers only imply their parents

    uint32_t existing = table_.Find(parent, name.base);
    if (entry.type == EntryType::kDirectory) {
      if (existing != kNoNode && nodes_[existing].is_dir) {
        // Directory over directory: attributes (and xattrs) from this entry, children kept.
        BuildInode& inode = inodes_[nodes_[existing].inode];
        if (inode.layer == l) ++duplicates_;
        inode = BuildInode{.layer = l, .entry = i};
        nodes_[existing].seen_layer = l;
        return Ok();
      }
      if (existing != kNoNode) {
        // A non-directory (of a lower layer, or earlier in this one): the directory replaces it.
        if (nodes_[existing].created_layer == l) ++duplicates_;
        RemoveSubtree(existing);
      }
      HOIST_ASSIGN_OR_RETURN(
          uint32_t unused,
          AddNode(l, parent, name.base, NewInode(l, i, EntryType::kDirectory), /*is_dir=*/true));
      (void)unused;
      return Ok();
    }

    uint32_t inode;
    if (entry.type == EntryType::kHardlink) {
      HOIST_ASSIGN_OR_RETURN(inode, ResolveHardlink(l, entry));
    } else {
      inode = NewInode(l, i, entry.type);
    }
    if (existing != kNoNode) {
      // The non-directory replaces what is there, a directory with all it holds included (also
      // one this layer made or listed: the extractors remove it, children and all).
      if (nodes_[existing].created_layer == l || nodes_[existing].seen_layer == l) ++duplicates_;
      if (nodes_[existing].is_dir) cache_valid_ = false;  // the cached parent may be under it
      RemoveSubtree(existing);
    }
    HOIST_ASSIGN_OR_RETURN(uint32_t unused, AddNode(l, parent, name.base, inode, /*is_dir=*/false));
    (void)unused;
    return Ok();
  }

  // The inode a hardlink entry joins: that of an earlier non-directory entry of the same layer.
  Result<uint32_t> ResolveHardlink(uint32_t l, const Entry& entry) {
    std::string prefix = "hardlink " + QuotePath(entry.path) + " -> " + QuotePath(entry.link_name);
    if (entry.link_name.empty()) {
      return Fail(LayerError(l, EINVAL, prefix + ": target is the root"));
    }
    Status valid = ValidateEntryPath(entry.link_name);
    if (!valid) return Fail(LayerError(l, valid.error().Context(prefix)));
    // A target in a lower layer is refused like a missing one: containerd's overlayfs
    // snapshotter extracts each layer into an empty directory and fails such a link (umoci
    // would link the lower file); refusing it keeps every image hoist mounts runnable there.
    // The message must not depend on the lower layers (CheckLayerRules sees this layer alone and
    // must say what the image build says): only what this layer made, listed or traversed counts.
    uint32_t target = FindPath(entry.link_name);
    const bool of_this_layer =
        target != kNoNode && (nodes_[target].is_dir ? nodes_[target].seen_layer == l
                                                    : nodes_[target].created_layer == l);
    if (!of_this_layer) {
      return Fail(LayerError(l, EINVAL, prefix + ": target is not an earlier entry of this layer"));
    }
    if (nodes_[target].is_dir) {
      return Fail(LayerError(l, EINVAL, prefix + ": target is a directory"));
    }
    return nodes_[target].inode;
  }

  std::span<const std::shared_ptr<const LayerIndex>> layers_;
  const bool labelled_;
  const TreeMode mode_;
  std::vector<Node> nodes_;
  std::vector<BuildInode> inodes_;
  ChildTable table_;
  size_t live_nodes_ = 0;
  std::vector<uint32_t> stack_;
  // EnsureParentDirs cache: tar lists a directory's entries together. Valid within one layer's
  // second pass until the layer replaces one of its directories with a non-directory.
  bool cache_valid_ = false;
  std::string_view cache_path_;
  uint32_t cache_node_ = kNoNode;
  size_t duplicates_ = 0;
};

Result<MergedTree> TreeBuilder::Freeze() const {
  MergedTree tree;
  size_t name_bytes = 0;
  std::vector<uint32_t> ino_of(inodes_.size(), 0);
  std::vector<uint32_t> dirs;  // directory nodes in inode-number order (breadth first)
  std::vector<uint32_t> kids;
  tree.inodes.reserve(live_nodes_);
  tree.children.reserve(live_nodes_ - 1);

  auto add_inode = [&](uint32_t node, uint32_t parent_ino) -> uint32_t {
    const BuildInode& b = inodes_[nodes_[node].inode];
    tree.inodes.push_back(InodeRecord{.layer = b.layer,
                                      .entry = b.entry,
                                      .parent = nodes_[node].is_dir ? parent_ino : 0,
                                      .type = b.type,
                                      .flags = b.flags});
    if (b.type == EntryType::kRegular) {
      uint64_t size = layers_[b.layer]->entries[b.entry].size;
      tree.content_blocks += size / kStatfsBlockSize + (size % kStatfsBlockSize != 0);
    }
    if (nodes_[node].is_dir) dirs.push_back(node);
    uint32_t ino = static_cast<uint32_t>(tree.inodes.size());
    ino_of[nodes_[node].inode] = ino;
    return ino;
  };

  add_inode(kRootNode, 1);
  for (size_t d = 0; d < dirs.size(); ++d) {
    uint32_t dir_node = dirs[d];
    uint32_t dir_ino = ino_of[nodes_[dir_node].inode];
    kids.clear();
    for (uint32_t c = nodes_[dir_node].first_child; c != kNoNode; c = nodes_[c].next_sibling) {
      kids.push_back(c);
    }
    std::sort(kids.begin(), kids.end(),
              [this](uint32_t a, uint32_t b) { return nodes_[a].name < nodes_[b].name; });
    uint32_t subdirs = 0;
    uint32_t child_begin = static_cast<uint32_t>(tree.children.size());
    for (uint32_t c : kids) {
      const Node& n = nodes_[c];
      uint32_t ino = ino_of[n.inode];
      if (ino == 0) ino = add_inode(c, dir_ino);
      if (n.is_dir) {
        ++subdirs;
      } else {
        ++tree.inodes[ino - 1].nlink;
      }
      if (name_bytes + n.name.size() + 1 > UINT32_MAX) {
        return Fail(EOVERFLOW, "merged view: names exceed 4 GiB");
      }
      tree.children.push_back(ChildRecord{.name_offset = static_cast<uint32_t>(name_bytes),
                                          .name_length = static_cast<uint16_t>(n.name.size()),
                                          .type = tree.inodes[ino - 1].type,
                                          .ino = ino});
      tree.names.append(n.name);
      tree.names.push_back('\0');
      name_bytes += n.name.size() + 1;
    }
    InodeRecord& dir = tree.inodes[dir_ino - 1];
    dir.child_begin = child_begin;
    dir.child_count = static_cast<uint32_t>(kids.size());
    dir.nlink = 2 + subdirs;
  }
  tree.inodes.shrink_to_fit();
  tree.names.shrink_to_fit();
  return tree;
}

}  // namespace

Result<MergedTree> BuildMergedTree(std::span<const std::shared_ptr<const LayerIndex>> layers,
                                   TreeMode mode) {
  if (layers.size() >= kNoLayer) return Fail(EOVERFLOW, "merged view: too many layers");
  if (mode == TreeMode::kLayer && layers.size() != 1)
    return Fail(EINVAL, "layer view: exactly one layer, not " + std::to_string(layers.size()));
  for (size_t l = 0; l < layers.size(); ++l) {
    if (layers[l] == nullptr)
      return Fail(EINVAL, "merged view: " + LayerLabel(l, layers.size(), "") + " is null");
  }
  TreeBuilder builder(layers, /*labelled=*/true, mode);
  for (uint32_t l = 0; l < layers.size(); ++l) HOIST_RETURN_IF_ERROR(builder.ApplyLayer(l));
  return builder.Freeze();
}

Status CheckLayerRules(const LayerIndex& layer) {
  // Non-owning: the builder lives only during this call.
  const std::shared_ptr<const LayerIndex> one(std::shared_ptr<const LayerIndex>(), &layer);
  TreeBuilder builder(std::span(&one, 1), /*labelled=*/false);
  return builder.ApplyLayer(0);
}

}  // namespace hoist
