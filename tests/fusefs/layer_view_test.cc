// MergedView::BuildLayer: one layer as an overlayfs lower layer (merged_view.h, "Layer views").
#include <gtest/gtest.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <string>
#include <vector>

#include "fusefs/merged_view.h"
#include "tests/fusefs/test_layers.h"

namespace hoist {
namespace {

using testing::Device;
using testing::Dir;
using testing::File;
using testing::Hardlink;
using testing::Layer;
using testing::Symlink;
using testing::Whiteout;

std::vector<std::string> List(const MergedView& view, std::string_view path) {
  std::vector<std::string> names;
  auto ino = view.LookupPath(path);
  if (!ino) return {"<lookup failed: " + ino.error().message() + ">"};
  auto listing = view.OpenDir(*ino);
  if (!listing) return {"<opendir failed: " + listing.error().message() + ">"};
  for (uint64_t off = 2; off < listing->size(); ++off) names.emplace_back((*listing)[off].name);
  return names;
}

struct stat Attr(const MergedView& view, std::string_view path) {
  auto ino = view.LookupPath(path);
  EXPECT_TRUE(ino) << path;
  if (!ino) return {};
  auto st = view.GetAttr(*ino);
  EXPECT_TRUE(st) << path;
  return st ? *st : (struct stat){};
}

std::string Xattr(const MergedView& view, std::string_view path, std::string_view name) {
  auto ino = view.LookupPath(path);
  if (!ino) return "<no " + std::string(path) + ">";
  auto value = view.GetXattr(*ino, name);
  if (!value) return "<errno " + std::to_string(value.error().code()) + ">";
  return std::string(*value);
}

std::string XattrList(const MergedView& view, std::string_view path) {
  auto ino = view.LookupPath(path);
  if (!ino) return "<no " + std::string(path) + ">";
  auto list = view.ListXattr(*ino);
  return list ? *list : "<error>";
}

#define ASSERT_LAYER_BUILDS(view_var, layer)                             \
  auto view_var##_result = MergedView::BuildLayer(layer);                \
  ASSERT_TRUE(view_var##_result) << view_var##_result.error().message(); \
  const MergedView& view_var = *view_var##_result

bool IsWhiteoutDevice(const struct stat& st) {
  return st.st_mode == S_IFCHR && st.st_rdev == makedev(0, 0) && st.st_size == 0;
}

TEST(LayerViewTest, WhiteoutBecomesCharDeviceZeroZeroWithTheMarkersOwner) {
  Entry marker = Whiteout("etc/.wh.hosts");
  marker.uid = 7;
  marker.gid = 8;
  marker.mtime_sec = 1234;
  marker.mtime_nsec = 5;
  marker.xattrs = {{"user.k", "v"}};
  ASSERT_LAYER_BUILDS(view, Layer({Dir("etc"), marker, File("etc/keep", 3)}));
  EXPECT_EQ(List(view, "etc"), (std::vector<std::string>{"hosts", "keep"}));
  const struct stat st = Attr(view, "etc/hosts");
  EXPECT_TRUE(IsWhiteoutDevice(st)) << std::oct << st.st_mode;
  EXPECT_EQ(st.st_uid, 7u);
  EXPECT_EQ(st.st_gid, 8u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1234);
  EXPECT_EQ(st.st_mtim.tv_nsec, 5);
  EXPECT_EQ(st.st_nlink, 1u);
  // The marker's own name and xattrs are not shown.
  EXPECT_EQ(view.LookupPath("etc/.wh.hosts").error().code(), ENOENT);
  EXPECT_EQ(XattrList(view, "etc/hosts"), "");
  EXPECT_EQ(Xattr(view, "etc/hosts", "user.k"), "<errno 61>");
  // Not a file: reading it is refused.
  EXPECT_EQ(view.OpenFile(*view.LookupPath("etc/hosts")).error().code(), EINVAL);
  // The readdir type is a character device.
  auto listing = view.OpenDir(*view.LookupPath("etc"));
  ASSERT_TRUE(listing);
  EXPECT_EQ((*listing)[2].type, static_cast<mode_t>(S_IFCHR));
}

TEST(LayerViewTest, WhiteoutImpliesItsParentsLikeAnyEntry) {
  ASSERT_LAYER_BUILDS(view, Layer({Whiteout("a/b/.wh.c"), Whiteout(".wh.top")}));
  EXPECT_EQ(List(view, ""), (std::vector<std::string>{"a", "top"}));
  EXPECT_EQ(List(view, "a/b"), std::vector<std::string>{"c"});
  EXPECT_EQ(Attr(view, "a/b").st_mode, S_IFDIR | 0755u);
  EXPECT_TRUE(IsWhiteoutDevice(Attr(view, "a/b/c")));
  EXPECT_TRUE(IsWhiteoutDevice(Attr(view, "top")));
}

TEST(LayerViewTest, OpaqueMarkerSetsTheOverlayXattrWhateverTheTarOrder) {
  for (bool marker_first : {true, false}) {
    SCOPED_TRACE(marker_first ? "marker first" : "marker last");
    std::vector<Entry> entries;
    Entry dir = Dir("d", 0750);
    dir.xattrs = {{"user.a", "1"}};
    entries.push_back(dir);
    if (marker_first) entries.push_back(Whiteout("d/.wh..wh..opq"));
    entries.push_back(File("d/new", 5));
    if (!marker_first) entries.push_back(Whiteout("d/.wh..wh..opq"));
    ASSERT_LAYER_BUILDS(view, Layer(std::move(entries)));
    EXPECT_EQ(List(view, "d"), std::vector<std::string>{"new"});
    EXPECT_EQ(Xattr(view, "d", "trusted.overlay.opaque"), "y");
    EXPECT_EQ(XattrList(view, "d"), std::string("trusted.overlay.opaque\0user.a\0", 30));
    EXPECT_EQ(Attr(view, "d").st_mode, S_IFDIR | 0750u);
    // Other directories are not opaque.
    EXPECT_EQ(Xattr(view, "", "trusted.overlay.opaque"), "<errno 61>");
    EXPECT_EQ(XattrList(view, ""), "");
  }
}

TEST(LayerViewTest, OpaqueMarkerOnAnImplicitDirectory) {
  ASSERT_LAYER_BUILDS(view, Layer({Whiteout("x/y/.wh..wh..opq")}));
  EXPECT_EQ(List(view, "x/y"), std::vector<std::string>{});
  EXPECT_EQ(Xattr(view, "x/y", "trusted.overlay.opaque"), "y");
  EXPECT_EQ(Xattr(view, "x", "trusted.overlay.opaque"), "<errno 61>");
}

TEST(LayerViewTest, LayerSuppliedOverlayXattrsStayHidden) {
  Entry dir = Dir("d");
  dir.xattrs = {{"trusted.overlay.opaque", "y"},
                {"trusted.overlay.redirect", "/elsewhere"},
                {"user.overlay.opaque", "y"},
                {"user.ok", "1"}};
  Entry file = File("f", 1);
  file.xattrs = {{"trusted.overlay.metacopy", ""}, {"security.capability", "cap"}};
  ASSERT_LAYER_BUILDS(view, Layer({dir, file}));
  // The layer's own trusted.overlay.opaque does not make d opaque.
  EXPECT_EQ(Xattr(view, "d", "trusted.overlay.opaque"), "<errno 61>");
  EXPECT_EQ(Xattr(view, "d", "trusted.overlay.redirect"), "<errno 61>");
  EXPECT_EQ(XattrList(view, "d"), std::string("user.ok\0", 8));
  EXPECT_EQ(Xattr(view, "f", "trusted.overlay.metacopy"), "<errno 61>");
  EXPECT_EQ(XattrList(view, "f"), std::string("security.capability\0", 20));
}

TEST(LayerViewTest, WhiteoutAndTheLayersOwnEntryOfTheSameName) {
  // A file with the whited-out name hides the lower one by itself: no device, the file wins.
  // A directory with that name must not merge with the lower one: it becomes opaque.
  for (bool marker_first : {true, false}) {
    SCOPED_TRACE(marker_first ? "marker first" : "marker last");
    std::vector<Entry> entries = {File("f", 4), Dir("d"), File("d/x", 1)};
    std::vector<Entry> markers = {Whiteout(".wh.f"), Whiteout(".wh.d")};
    entries.insert(marker_first ? entries.begin() : entries.end(), markers.begin(), markers.end());
    ASSERT_LAYER_BUILDS(view, Layer(std::move(entries)));
    EXPECT_EQ(List(view, ""), (std::vector<std::string>{"d", "f"}));
    EXPECT_EQ(Attr(view, "f").st_mode, S_IFREG | 0644u);
    EXPECT_EQ(Attr(view, "f").st_size, 4);
    EXPECT_EQ(Attr(view, "d").st_mode, S_IFDIR | 0755u);
    EXPECT_EQ(Xattr(view, "d", "trusted.overlay.opaque"), "y");
    EXPECT_EQ(List(view, "d"), std::vector<std::string>{"x"});
  }
}

TEST(LayerViewTest, WhiteoutOfADirectoryTheLayerUsesAsAParent) {
  // ".wh.d" plus "d/.wh.e": d is a directory of this layer (implicit), so it is opaque, and e
  // inside it is a whiteout (harmless under an opaque directory).
  ASSERT_LAYER_BUILDS(view, Layer({Whiteout(".wh.d"), Whiteout("d/.wh.e")}));
  EXPECT_EQ(List(view, ""), std::vector<std::string>{"d"});
  EXPECT_EQ(Xattr(view, "d", "trusted.overlay.opaque"), "y");
  EXPECT_TRUE(IsWhiteoutDevice(Attr(view, "d/e")));
}

TEST(LayerViewTest, MarkerUnderADirectoryLaterReplacedByAFileIsDropped) {
  // The marker makes "p" a directory; the later file "p" replaces it with all it holds.
  ASSERT_LAYER_BUILDS(view, Layer({Whiteout("p/.wh.q"), File("p", 2)}));
  EXPECT_EQ(List(view, ""), std::vector<std::string>{"p"});
  EXPECT_EQ(Attr(view, "p").st_mode, S_IFREG | 0644u);
}

TEST(LayerViewTest, RepeatedWhiteoutIsOneDevice) {
  ASSERT_LAYER_BUILDS(view, Layer({Whiteout(".wh.a"), Whiteout(".wh.a")}));
  EXPECT_EQ(List(view, ""), std::vector<std::string>{"a"});
  EXPECT_EQ(view.inode_count(), 2u);
}

TEST(LayerViewTest, OwnEntriesAreAsInTheLayer) {
  Entry file = File("bin/su", 3, 04755);
  file.uid = 0;
  file.gid = 42;
  file.mtime_sec = 1600000000;
  file.mtime_nsec = 7;
  file.xattrs = {{"security.capability", "cap"}};
  ASSERT_LAYER_BUILDS(
      view, Layer({Dir("bin"), file, Hardlink("bin/su2", "bin/su"), Symlink("bin/sh", "busybox"),
                   Device("dev/null", EntryType::kCharDevice, 1, 3),
                   Device("dev/sda", EntryType::kBlockDevice, 8, 0), Dir("tmp", 01777)}));
  const struct stat su = Attr(view, "bin/su");
  EXPECT_EQ(su.st_mode, S_IFREG | 04755u);
  EXPECT_EQ(su.st_gid, 42u);
  EXPECT_EQ(su.st_mtim.tv_sec, 1600000000);
  EXPECT_EQ(su.st_mtim.tv_nsec, 7);
  EXPECT_EQ(su.st_nlink, 2u);
  EXPECT_EQ(Attr(view, "bin/su2").st_ino, su.st_ino);
  EXPECT_EQ(Xattr(view, "bin/su2", "security.capability"), "cap");
  EXPECT_EQ(*view.ReadLink(*view.LookupPath("bin/sh")), "busybox");
  EXPECT_EQ(Attr(view, "dev/null").st_mode, S_IFCHR | 0600u);
  EXPECT_EQ(Attr(view, "dev/null").st_rdev, makedev(1, 3));
  EXPECT_EQ(Attr(view, "dev/sda").st_mode, S_IFBLK | 0600u);
  EXPECT_EQ(Attr(view, "tmp").st_mode, S_IFDIR | 01777u);
  auto ref = view.OpenFile(*view.LookupPath("bin/su2"));
  ASSERT_TRUE(ref);
  EXPECT_EQ(ref->layer, 0u);
  EXPECT_EQ(ref->entry->path, "bin/su");
}

TEST(LayerViewTest, AufsMetadataIsSkipped) {
  ASSERT_LAYER_BUILDS(view, Layer({Dir(".wh..wh.plnk"), File(".wh..wh.plnk/1.2", 1), File("a")}));
  EXPECT_EQ(List(view, ""), std::vector<std::string>{"a"});
}

TEST(LayerViewTest, TheSameRulesRefuseALayerAsTheMergedView) {
  const std::vector<std::vector<Entry>> bad = {
      {File("f", 1), File("f/x", 1)},  // entry under a non-directory of the layer
      {Hardlink("h", "missing")},      // hardlink to nothing
      {Dir("d"), Hardlink("h", "d")},  // hardlink to a directory
      {File(".wh.", 0)},               // bare whiteout
      {File(".wh.x/y", 1)},            // whiteout prefix on a directory
  };
  for (const auto& entries : bad) {
    auto layer = Layer(entries);
    auto merged = MergedView::Build({layer});
    auto single = MergedView::BuildLayer(layer);
    ASSERT_FALSE(merged) << entries.back().path;
    ASSERT_FALSE(single) << entries.back().path;
    EXPECT_EQ(single.error().code(), merged.error().code());
    EXPECT_EQ(single.error().message(), merged.error().message());
  }
  EXPECT_EQ(MergedView::BuildLayer(nullptr).error().code(), EINVAL);
}

TEST(LayerViewTest, MergedViewShowsNoLayerViewArtifacts) {
  // The same layer on top of a lower one, merged: markers applied and hidden, no device, no
  // opaque xattr.
  auto lower = Layer({Dir("d"), File("d/old", 1), File("gone", 1)});
  auto upper = Layer({Whiteout(".wh.gone"), Whiteout("d/.wh..wh..opq"), File("d/new", 1)});
  auto view = MergedView::Build({lower, upper});
  ASSERT_TRUE(view) << view.error().message();
  EXPECT_EQ(List(*view, ""), std::vector<std::string>{"d"});
  EXPECT_EQ(List(*view, "d"), std::vector<std::string>{"new"});
  EXPECT_EQ(Xattr(*view, "d", "trusted.overlay.opaque"), "<errno 61>");
  EXPECT_EQ(XattrList(*view, "d"), "");
}

}  // namespace
}  // namespace hoist
