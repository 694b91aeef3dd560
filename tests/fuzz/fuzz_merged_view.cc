// libFuzzer target: MergedView::Build over 1-4 small layers derived from the input. Names come
// from a tiny alphabet (so whiteouts, opaque markers, replacements, duplicates, hardlinks and
// AUFS names collide often), plus hostile names ("", ".", "..", a bare ".wh.", 256 bytes).
// A view that builds is walked completely: every inode answers GetAttr; every directory entry
// is found again by Lookup, has the type its inode has, and is never a ".wh." marker; directory
// nlink is 2 + subdirectories; regular files open with chunks that cover them; symlinks read;
// every listed xattr is readable and no overlay xattr is visible; unknown inodes are ESTALE.
// Each layer is also built alone as a layer view (MergedView::BuildLayer): it builds exactly
// when CheckLayerRules passes (same message), and is walked the same way, except that the one
// overlay xattr it may show is trusted.overlay.opaque = "y", on directories only.
#include <sys/stat.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fusefs/merged_view.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using hoist::fuzz::FuzzInput;

std::string Name(FuzzInput& in) {
  static const char* kNames[] = {
      "a", "b", "c",  ".wh.a", ".wh.b", ".wh..wh..opq", "a",   "b", ".wh.c",
      "",  ".", "..", ".wh.",  "d\x01", ".wh..wh.plnk", "a b", "x", "b"};
  uint8_t pick = in.Byte();
  if (pick == 0xff) return std::string(256, 'n');
  return kNames[pick % (sizeof(kNames) / sizeof(kNames[0]))];
}

std::string Path(FuzzInput& in) {
  int depth = 1 + static_cast<int>(in.Below(3));
  std::string path;
  for (int i = 0; i < depth; ++i) {
    if (i > 0) path += '/';
    path += Name(in);
  }
  if (in.Byte() == 0xfe) path = "/" + path;  // rarely: not cleaned
  return path;
}

hoist::Entry MakeEntry(FuzzInput& in) {
  hoist::Entry e;
  e.type = static_cast<hoist::EntryType>(in.Below(7));
  e.path = Path(in);
  e.mode = static_cast<uint32_t>(in.Uint(2)) & 07777;
  e.uid = in.Byte();
  e.gid = in.Byte();
  e.mtime_sec = static_cast<int8_t>(in.Byte());
  switch (e.type) {
    case hoist::EntryType::kRegular:
      e.size = in.Below(3) * 4096;
      if (e.size > 0) e.chunks.push_back(hoist::Chunk{.file_offset = 0, .size = e.size});
      break;
    case hoist::EntryType::kSymlink:
      e.link_name = in.Byte() % 2 ? "../../etc/passwd" : "a";
      break;
    case hoist::EntryType::kHardlink:
      e.link_name = Path(in);
      break;
    case hoist::EntryType::kCharDevice:
    case hoist::EntryType::kBlockDevice:
      e.dev_major = in.Byte();
      e.dev_minor = in.Byte();
      break;
    default:
      break;
  }
  uint8_t xattrs = in.Byte();
  if (xattrs & 1) e.xattrs.push_back({"trusted.overlay.opaque", "y"});
  if (xattrs & 2) e.xattrs.push_back({"user.overlay.x", "1"});
  if (xattrs & 4) e.xattrs.push_back({"user.a", "1"});
  if (xattrs & 8) e.xattrs.push_back({"user.a", "2"});
  if (xattrs & 16) e.xattrs.push_back({"security.capability", std::string("\0\1", 2)});
  return e;
}

void Walk(const hoist::MergedView& view, bool layer_view) {
  const uint64_t count = view.inode_count();
  FUZZ_CHECK(count >= 1);
  FUZZ_CHECK(!view.GetAttr(0).has_value() && view.GetAttr(0).error().code() == ESTALE);
  FUZZ_CHECK(!view.GetAttr(count + 1).has_value());
  for (hoist::InodeNumber ino = 1; ino <= count; ++ino) {
    auto st = view.GetAttr(ino);
    FUZZ_CHECK(st.has_value());
    FUZZ_CHECK(st->st_ino == ino);
    auto xattrs = view.ListXattr(ino);
    FUZZ_CHECK(xattrs.has_value());
    for (size_t pos = 0; pos < xattrs->size();) {
      size_t end = xattrs->find('\0', pos);
      FUZZ_CHECK(end != std::string::npos);
      std::string_view name(xattrs->data() + pos, end - pos);
      auto value = view.GetXattr(ino, name);
      FUZZ_CHECK(value.has_value());
      if (layer_view && name == "trusted.overlay.opaque") {
        FUZZ_CHECK(S_ISDIR(st->st_mode) && *value == "y");
      } else {
        FUZZ_CHECK(!name.starts_with("trusted.overlay.") && !name.starts_with("user.overlay."));
      }
      pos = end + 1;
    }
    if (S_ISDIR(st->st_mode)) {
      auto listing = view.OpenDir(ino);
      FUZZ_CHECK(listing.has_value());
      FUZZ_CHECK(listing->size() >= 2);
      uint32_t subdirs = 0;
      for (uint64_t off = 2; off < listing->size(); ++off) {
        hoist::DirEntry d = (*listing)[off];
        FUZZ_CHECK(!d.name.empty() && d.name != "." && d.name != "..");
        FUZZ_CHECK(d.name.find('/') == std::string_view::npos);
        FUZZ_CHECK(!d.name.starts_with(".wh."));
        FUZZ_CHECK(d.name.data()[d.name.size()] == '\0');
        auto found = view.Lookup(ino, d.name);
        FUZZ_CHECK(found.has_value() && *found == d.ino);
        auto child = view.GetAttr(d.ino);
        FUZZ_CHECK(child.has_value() && (child->st_mode & S_IFMT) == d.type);
        if (S_ISDIR(child->st_mode)) ++subdirs;
      }
      FUZZ_CHECK(st->st_nlink == 2 + subdirs);
      auto dot = view.Lookup(ino, ".");
      FUZZ_CHECK(dot.has_value() && *dot == ino);
    } else if (S_ISREG(st->st_mode)) {
      auto file = view.OpenFile(ino);
      FUZZ_CHECK(file.has_value() && file->entry != nullptr);
      FUZZ_CHECK(static_cast<uint64_t>(st->st_size) == file->entry->size);
      uint64_t covered = 0;
      for (const hoist::Chunk& c : file->entry->chunks) covered += c.size;
      FUZZ_CHECK(covered == file->entry->size);
      (void)hoist::ChunksForRange(*file->entry, 1000, 5000);
    } else if (S_ISLNK(st->st_mode)) {
      auto target = view.ReadLink(ino);
      FUZZ_CHECK(target.has_value() && target->data()[target->size()] == '\0');
    }
  }
  (void)view.StatFs();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput in(hoist::fuzz::AsView(data, size));
  std::vector<std::shared_ptr<const hoist::LayerIndex>> layers;
  const int layer_count = 1 + static_cast<int>(in.Below(4));
  std::vector<std::string> paths;
  for (int l = 0; l < layer_count && !in.empty(); ++l) {
    auto layer = std::make_shared<hoist::LayerIndex>();
    const int entries = static_cast<int>(in.Below(24));
    for (int i = 0; i < entries && !in.empty(); ++i) {
      layer->entries.push_back(MakeEntry(in));
      paths.push_back(layer->entries.back().path);
    }
    layers.push_back(std::move(layer));
  }
  // Every rule is decided within one layer: the image fails to build exactly when one of its
  // layers fails CheckLayerRules alone, with that message under the lowest such layer's label
  // (what convert and pull rely on to refuse what the mount refuses, the same way).
  std::optional<hoist::Error> want;
  for (size_t l = 0; l < layers.size(); ++l) {
    auto checked = hoist::CheckLayerRules(*layers[l]);
    if (!checked && !want) want = checked.error().Context(hoist::LayerLabel(l, layers.size(), ""));
    // The layer view: built by the same rules, labelled as layer 1 of 1.
    auto single = hoist::MergedView::BuildLayer(layers[l]);
    if (single.has_value() != checked.has_value()) __builtin_trap();
    if (!single) {
      if (single.error().message() !=
          checked.error().Context(hoist::LayerLabel(0, 1, "")).message())
        __builtin_trap();
      continue;
    }
    Walk(*single, /*layer_view=*/true);
  }
  auto view = hoist::MergedView::Build(std::move(layers));
  if (view.has_value() != !want.has_value()) __builtin_trap();
  if (!view && view.error().message() != want->message()) __builtin_trap();
  if (!view) return 0;
  Walk(*view, /*layer_view=*/false);
  for (const std::string& p : paths) (void)view->LookupPath(p);
  return 0;
}
