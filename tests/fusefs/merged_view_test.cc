#include "fusefs/merged_view.h"

#include <gtest/gtest.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <string>
#include <vector>

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

using Layers = std::vector<std::shared_ptr<const LayerIndex>>;

// Children of the directory at `path` in readdir order (without "." and "..").
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

InodeNumber Ino(const MergedView& view, std::string_view path) {
  auto ino = view.LookupPath(path);
  return ino ? *ino : 0;
}

int LookupErrno(const MergedView& view, std::string_view path) {
  auto ino = view.LookupPath(path);
  return ino ? 0 : ino.error().code();
}

#define ASSERT_BUILDS(view_var, layers)                                  \
  auto view_var##_result = MergedView::Build(layers);                    \
  ASSERT_TRUE(view_var##_result) << view_var##_result.error().message(); \
  const MergedView& view_var = *view_var##_result

std::string BuildError(Layers layers) {
  auto view = MergedView::Build(std::move(layers));
  if (view) return "<built>";
  return std::to_string(view.error().code()) + " " + view.error().message();
}

TEST(MergedViewTest, EmptyImageIsAnEmptyRoot) {
  ASSERT_BUILDS(view, Layers{});
  EXPECT_EQ(view.inode_count(), 1u);
  auto st = view.GetAttr(kRootInode);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->st_mode, S_IFDIR | 0755u);
  EXPECT_EQ(st->st_nlink, 2u);
  EXPECT_EQ(st->st_ino, 1u);
  EXPECT_EQ(List(view, ""), std::vector<std::string>{});
}

TEST(MergedViewTest, WhiteoutHidesLowerFileAndMarker) {
  ASSERT_BUILDS(view, (Layers{Layer({File("a", 1), File("b", 2), Dir("d"), File("d/x", 3)}),
                              Layer({Whiteout(".wh.a"), Whiteout("d/.wh.x")})}));
  EXPECT_EQ(List(view, ""), (std::vector<std::string>{"b", "d"}));
  EXPECT_EQ(List(view, "d"), std::vector<std::string>{});
  EXPECT_EQ(LookupErrno(view, "a"), ENOENT);
  EXPECT_EQ(LookupErrno(view, ".wh.a"), ENOENT);
  EXPECT_EQ(LookupErrno(view, "d/.wh.x"), ENOENT);
  EXPECT_EQ(view.inode_count(), 3u);  // root, b, d
}

TEST(MergedViewTest, WhiteoutOfDirectoryRemovesSubtree) {
  ASSERT_BUILDS(
      view,
      (Layers{Layer({Dir("d"), Dir("d/e"), File("d/e/f", 1), File("d/g", 1), File("keep", 1)}),
              Layer({Whiteout(".wh.d")})}));
  EXPECT_EQ(List(view, ""), std::vector<std::string>{"keep"});
  EXPECT_EQ(view.inode_count(), 2u);
  EXPECT_EQ(Attr(view, "").st_nlink, 2u);
}

TEST(MergedViewTest, WhiteoutOnlyAffectsLowerLayers) {
  // The same layer whites out "f" and "g" and re-creates them, in either tar order.
  ASSERT_BUILDS(view, (Layers{Layer({File("f", 10), Dir("g"), File("g/old", 1), File("h", 1)}),
                              Layer({File("f", 20), Whiteout(".wh.f"), Whiteout(".wh.g"), Dir("g"),
                                     File("g/new", 2)})}));
  EXPECT_EQ(List(view, ""), (std::vector<std::string>{"f", "g", "h"}));
  EXPECT_EQ(Attr(view, "f").st_size, 20);
  EXPECT_EQ(List(view, "g"), std::vector<std::string>{"new"});
}

TEST(MergedViewTest, WhiteoutOfMissingNameIsNoop) {
  ASSERT_BUILDS(
      view, (Layers{Layer({File("f", 1)}), Layer({Whiteout(".wh.nothing"), Whiteout("n/.wh.x")})}));
  // The marker implies its directory "n" in the upper layer.
  EXPECT_EQ(List(view, ""), (std::vector<std::string>{"f", "n"}));
  EXPECT_EQ(List(view, "n"), std::vector<std::string>{});
}

TEST(MergedViewTest, OpaqueDirectoryAppliesWhateverTheTarOrder) {
  Layers lower_layers = {Layer(
      {Dir("d", 0750), File("d/old1", 1), Dir("d/sub"), File("d/sub/old2", 1), File("e", 1)})};
  for (bool marker_first : {true, false}) {
    SCOPED_TRACE(marker_first ? "marker first" : "marker last");
    std::vector<Entry> upper;
    if (marker_first) upper.push_back(Whiteout("d/.wh..wh..opq"));
    upper.push_back(File("d/new", 5));
    if (!marker_first) upper.push_back(Whiteout("d/.wh..wh..opq"));
    Layers layers = lower_layers;
    layers.push_back(Layer(std::move(upper)));
    ASSERT_BUILDS(view, layers);
    EXPECT_EQ(List(view, "d"), std::vector<std::string>{"new"});
    EXPECT_EQ(List(view, ""), (std::vector<std::string>{"d", "e"}));
    // The upper layer does not list "d" itself: the lower directory's attributes stay.
    EXPECT_EQ(Attr(view, "d").st_mode, S_IFDIR | 0750u);
    EXPECT_EQ(Attr(view, "d").st_nlink, 2u);
    EXPECT_EQ(LookupErrno(view, "d/.wh..wh..opq"), ENOENT);
  }
}

TEST(MergedViewTest, OpaqueRootHidesEverythingBelow) {
  ASSERT_BUILDS(view, (Layers{Layer({File("a", 1), Dir("b")}),
                              Layer({File("c", 1), Whiteout(".wh..wh..opq")})}));
  EXPECT_EQ(List(view, ""), std::vector<std::string>{"c"});
}

TEST(MergedViewTest, FileReplacesDirectoryAndDirectoryReplacesFile) {
  ASSERT_BUILDS(view, (Layers{Layer({Dir("a"), Dir("a/sub"), File("a/x", 1), File("b", 7)}),
                              Layer({File("a", 3), Dir("b", 0711), File("b/y", 1)})}));
  EXPECT_EQ(Attr(view, "a").st_mode, S_IFREG | 0644u);
  EXPECT_EQ(Attr(view, "a").st_size, 3);
  EXPECT_EQ(LookupErrno(view, "a/x"), ENOTDIR);
  EXPECT_EQ(Attr(view, "b").st_mode, S_IFDIR | 0711u);
  EXPECT_EQ(List(view, "b"), std::vector<std::string>{"y"});
  EXPECT_EQ(view.inode_count(), 4u);  // root, a, b, b/y
  EXPECT_EQ(Attr(view, "").st_nlink, 3u);
}

TEST(MergedViewTest, DirectoryOverDirectoryUpdatesAttributesOnly) {
  Entry lower = Dir("c", 0755);
  lower.uid = 1;
  lower.gid = 1;
  lower.mtime_sec = 100;
  lower.xattrs = {{"user.lower", "1"}};
  Entry upper = Dir("c", 0700);
  upper.uid = 2;
  upper.gid = 3;
  upper.mtime_sec = 200;
  upper.mtime_nsec = 5;
  upper.xattrs = {{"user.upper", "2"}};
  ASSERT_BUILDS(
      view, (Layers{Layer({lower, File("c/k", 1), Dir("c/s")}), Layer({upper, File("c/m", 1)})}));
  struct stat st = Attr(view, "c");
  EXPECT_EQ(st.st_mode, S_IFDIR | 0700u);
  EXPECT_EQ(st.st_uid, 2u);
  EXPECT_EQ(st.st_gid, 3u);
  EXPECT_EQ(st.st_mtim.tv_sec, 200);
  EXPECT_EQ(st.st_mtim.tv_nsec, 5);
  EXPECT_EQ(st.st_nlink, 3u);
  EXPECT_EQ(List(view, "c"), (std::vector<std::string>{"k", "m", "s"}));
  auto xattrs = view.ListXattr(Ino(view, "c"));
  ASSERT_TRUE(xattrs);
  EXPECT_EQ(*xattrs, std::string("user.upper\0", 11));
}

TEST(MergedViewTest, RootEntryUpdatesRootAttributes) {
  Entry root = Dir("", 0700);
  root.uid = 9;
  ASSERT_BUILDS(view, (Layers{Layer({File("x", 1)}), Layer({root})}));
  EXPECT_EQ(Attr(view, "").st_mode, S_IFDIR | 0700u);
  EXPECT_EQ(Attr(view, "").st_uid, 9u);
  EXPECT_EQ(List(view, ""), std::vector<std::string>{"x"});
}

TEST(MergedViewTest, HardlinksShareOneInode) {
  ASSERT_BUILDS(view, (Layers{Layer({File("f", 5, 0600), Hardlink("h1", "f"), Dir("d"),
                                     Hardlink("d/h2", "h1"), File("g", 1), Hardlink("g2", "g")})}));
  InodeNumber f = Ino(view, "f");
  ASSERT_NE(f, 0u);
  EXPECT_EQ(Ino(view, "h1"), f);
  EXPECT_EQ(Ino(view, "d/h2"), f) << "hardlink to a hardlink joins the same inode";
  struct stat st = Attr(view, "d/h2");
  EXPECT_EQ(st.st_nlink, 3u);
  EXPECT_EQ(st.st_size, 5);
  EXPECT_EQ(st.st_mode, S_IFREG | 0600u) << "attributes are the target's";
  EXPECT_EQ(st.st_ino, f);
  EXPECT_EQ(Attr(view, "g").st_nlink, 2u);
  EXPECT_EQ(Ino(view, "g2"), Ino(view, "g"));
  EXPECT_EQ(view.inode_count(), 4u);  // root, d, f-group, g-group
  auto file = view.OpenFile(Ino(view, "h1"));
  ASSERT_TRUE(file);
  EXPECT_EQ(file->entry, &view.layers()[0]->entries[0]);
}

TEST(MergedViewTest, HardlinkNlinkDropsWhenUpperLayerRemovesNames) {
  ASSERT_BUILDS(
      view,
      (Layers{Layer({File("f", 5), Hardlink("h1", "f"), Hardlink("h2", "f"), Hardlink("h3", "h2")}),
              Layer({Whiteout(".wh.f"), File("h3", 9)})}));
  InodeNumber h1 = Ino(view, "h1");
  EXPECT_EQ(Ino(view, "h2"), h1);
  EXPECT_EQ(Attr(view, "h1").st_nlink, 2u);
  EXPECT_EQ(Attr(view, "h1").st_size, 5);
  EXPECT_NE(Ino(view, "h3"), h1);
  EXPECT_EQ(Attr(view, "h3").st_nlink, 1u);
  EXPECT_EQ(LookupErrno(view, "f"), ENOENT);
  auto file = view.OpenFile(h1);
  ASSERT_TRUE(file);
  EXPECT_EQ(file->entry->path, "f") << "the whited-out name's entry still backs the inode";
}

TEST(MergedViewTest, HardlinkToSymlinkAndDevice) {
  ASSERT_BUILDS(view,
                (Layers{Layer({Symlink("s", "t"), Hardlink("s2", "s"),
                               Device("n", EntryType::kCharDevice, 1, 3), Hardlink("n2", "n")})}));
  EXPECT_EQ(Attr(view, "s2").st_mode, S_IFLNK | 0777u);
  EXPECT_EQ(Attr(view, "s2").st_nlink, 2u);
  EXPECT_EQ(*view.ReadLink(Ino(view, "s2")), "t");
  EXPECT_EQ(Attr(view, "n2").st_rdev, makedev(1, 3));
}

TEST(MergedViewTest, HardlinkErrors) {
  EXPECT_EQ(
      BuildError({Layer({File("a", 1), Hardlink("b", "zz")})}),
      "22 layer 1 of 1: hardlink \"b\" -> \"zz\": target is not an earlier entry of this layer");
  EXPECT_EQ(
      BuildError({Layer({Hardlink("b", "a"), File("a", 1)})}),
      "22 layer 1 of 1: hardlink \"b\" -> \"a\": target is not an earlier entry of this layer");
  EXPECT_EQ(BuildError({Layer({File("a", 1)}), Layer({Hardlink("b", "a")})}),
            "22 layer 2 of 2: hardlink \"b\" -> \"a\": target is not an earlier entry of this "
            "layer");
  EXPECT_EQ(BuildError({Layer({Dir("d"), Hardlink("b", "d")})}),
            "22 layer 1 of 1: hardlink \"b\" -> \"d\": target is a directory");
  EXPECT_EQ(
      BuildError({Layer({File("a", 1), Hardlink("b", "../a")})}),
      "22 layer 1 of 1: hardlink \"b\" -> \"../a\": entry path \"../a\" has a \"..\" component");
  EXPECT_EQ(BuildError({Layer({Hardlink("b", "")})}),
            "22 layer 1 of 1: hardlink \"b\" -> \"\": target is the root");
  auto digest = Digest::Of("layer");
  auto layer = std::make_shared<LayerIndex>();
  layer->layer_digest = digest;
  layer->entries = {Hardlink("x", "y")};
  EXPECT_EQ(BuildError({layer}), "22 layer 1 of 1 (" + digest.str() +
                                     "): hardlink \"x\" -> \"y\": target is not an earlier "
                                     "entry of this layer");
}

TEST(MergedViewTest, SymlinkTargetsAreStoredNotResolved) {
  ASSERT_BUILDS(view, (Layers{Layer({Symlink("up", "../../etc/passwd"), Symlink("abs", "/bin/sh"),
                                     Symlink("lib", "usr/lib"), Dir("usr"), Dir("usr/lib")})}));
  auto target = view.ReadLink(Ino(view, "up"));
  ASSERT_TRUE(target);
  EXPECT_EQ(*target, "../../etc/passwd");
  EXPECT_EQ(target->data()[target->size()], '\0');
  EXPECT_EQ(*view.ReadLink(Ino(view, "abs")), "/bin/sh");
  struct stat st = Attr(view, "up");
  EXPECT_EQ(st.st_mode, S_IFLNK | 0777u);
  EXPECT_EQ(st.st_size, 16);
  EXPECT_EQ(st.st_blocks, 0);
  EXPECT_EQ(LookupErrno(view, "lib/x"), ENOTDIR) << "lookup never follows symlinks";
  auto not_link = view.ReadLink(Ino(view, "usr"));
  ASSERT_FALSE(not_link);
  EXPECT_EQ(not_link.error().code(), EINVAL);
}

TEST(MergedViewTest, DevicesAndFifos) {
  ASSERT_BUILDS(view, (Layers{Layer({Device("null", EntryType::kCharDevice, 1, 3),
                                     Device("sda", EntryType::kBlockDevice, 8, 1),
                                     Device("big", EntryType::kBlockDevice, 259, 70000),
                                     Device("pipe", EntryType::kFifo, 0, 0),
                                     Device("wh", EntryType::kCharDevice, 0, 0)})}));
  struct stat null = Attr(view, "null");
  EXPECT_EQ(null.st_mode, S_IFCHR | 0600u);
  EXPECT_EQ(null.st_rdev, makedev(1, 3));
  EXPECT_EQ(null.st_size, 0);
  EXPECT_EQ(Attr(view, "sda").st_mode, S_IFBLK | 0600u);
  EXPECT_EQ(Attr(view, "sda").st_rdev, makedev(8, 1));
  EXPECT_EQ(major(Attr(view, "big").st_rdev), 259u);
  EXPECT_EQ(minor(Attr(view, "big").st_rdev), 70000u);
  EXPECT_EQ(Attr(view, "pipe").st_mode, S_IFIFO | 0600u);
  EXPECT_EQ(Attr(view, "pipe").st_rdev, 0u);
  // A char 0/0 in a layer is an ordinary device node to the view.
  EXPECT_EQ(Attr(view, "wh").st_mode, S_IFCHR | 0600u);
  auto listing = view.OpenDir(kRootInode);
  ASSERT_TRUE(listing);
  EXPECT_EQ((*listing)[2].name, "big");
  EXPECT_EQ((*listing)[2].type, static_cast<mode_t>(S_IFBLK));
  EXPECT_EQ((*listing)[3].type, static_cast<mode_t>(S_IFCHR));
  EXPECT_EQ((*listing)[4].type, static_cast<mode_t>(S_IFIFO));
  auto open = view.OpenFile(Ino(view, "null"));
  ASSERT_FALSE(open);
  EXPECT_EQ(open.error().code(), EINVAL);
}

TEST(MergedViewTest, XattrsPassExceptOverlayOnes) {
  const std::string cap("\x01\x00\x00\x02\x00\x20\x00\x00", 8);
  Entry f = File("ping", 1, 0755);
  f.xattrs = {{"security.capability", cap},
              {"trusted.overlay.opaque", "y"},
              {"user.overlay.redirect", "/x"},
              {"user.mime", "text/plain"},
              {"trusted.other", "t"},
              {"security.selinux", "system_u:object_r:bin_t:s0"},
              {"user.mime", "text/x-shellscript"}};
  Entry d = Dir("opq");
  d.xattrs = {{"trusted.overlay.opaque", "y"}};
  ASSERT_BUILDS(view, (Layers{Layer({f, d})}));
  InodeNumber ino = Ino(view, "ping");
  auto value = view.GetXattr(ino, "security.capability");
  ASSERT_TRUE(value);
  EXPECT_EQ(*value, cap);
  EXPECT_EQ(*view.GetXattr(ino, "trusted.other"), "t");
  EXPECT_EQ(*view.GetXattr(ino, "user.mime"), "text/x-shellscript") << "last one wins";
  for (const char* hidden : {"trusted.overlay.opaque", "user.overlay.redirect", "user.none"}) {
    auto missing = view.GetXattr(ino, hidden);
    ASSERT_FALSE(missing) << hidden;
    EXPECT_EQ(missing.error().code(), ENODATA);
  }
  auto list = view.ListXattr(ino);
  ASSERT_TRUE(list);
  static constexpr char kExpected[] =
      "security.capability\0trusted.other\0security.selinux\0user.mime\0";
  EXPECT_EQ(*list, std::string(kExpected, sizeof(kExpected) - 1));
  auto opq_list = view.ListXattr(Ino(view, "opq"));
  ASSERT_TRUE(opq_list);
  EXPECT_EQ(*opq_list, "");
  EXPECT_EQ(view.ListXattr(kRootInode).value(), "") << "synthesised root has no xattrs";
  auto stale = view.ListXattr(99);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code(), ESTALE);
}

TEST(MergedViewTest, ImplicitParentsAreSynthesisedOrInherited) {
  Entry x = Dir("x", 0700);
  x.uid = 5;
  x.gid = 6;
  x.mtime_sec = 1234;
  ASSERT_BUILDS(view, (Layers{Layer({File("a/b/c", 1), x, File("p", 1)}),
                              Layer({File("x/y/z", 1), File("p/q", 1)})}));
  for (const char* synthesised : {"a", "a/b", "x/y", "p"}) {
    SCOPED_TRACE(synthesised);
    struct stat st = Attr(view, synthesised);
    EXPECT_EQ(st.st_mode, S_IFDIR | 0755u);
    EXPECT_EQ(st.st_uid, 0u);
    EXPECT_EQ(st.st_gid, 0u);
    EXPECT_EQ(st.st_mtim.tv_sec, 0);
  }
  struct stat inherited = Attr(view, "x");
  EXPECT_EQ(inherited.st_mode, S_IFDIR | 0700u);
  EXPECT_EQ(inherited.st_uid, 5u);
  EXPECT_EQ(inherited.st_mtim.tv_sec, 1234);
  EXPECT_EQ(inherited.st_nlink, 3u);
  EXPECT_EQ(List(view, "p"), std::vector<std::string>{"q"}) << "a lower file became a directory";
  EXPECT_EQ(Attr(view, "a/b/c").st_mode, S_IFREG | 0644u);
}

TEST(MergedViewTest, ParentListedAfterChildGetsItsAttributes) {
  ASSERT_BUILDS(view, (Layers{Layer({File("d/f", 1), Dir("d", 0711)})}));
  EXPECT_EQ(Attr(view, "d").st_mode, S_IFDIR | 0711u);
  EXPECT_EQ(List(view, "d"), std::vector<std::string>{"f"});
}

TEST(MergedViewTest, ReaddirIsSortedWithStableOffsets) {
  ASSERT_BUILDS(view, (Layers{Layer({File("b", 1), File("a", 1), File("C", 1), Dir("aa"),
                                     File("\xc3\xa9", 1), File("aa/in", 1)})}));
  auto listing = view.OpenDir(kRootInode);
  ASSERT_TRUE(listing);
  ASSERT_EQ(listing->size(), 7u);
  EXPECT_EQ((*listing)[0].name, ".");
  EXPECT_EQ((*listing)[0].ino, kRootInode);
  EXPECT_EQ((*listing)[1].name, "..");
  EXPECT_EQ((*listing)[1].ino, kRootInode);
  const std::vector<std::string> expected = {"C", "a", "aa", "b", "\xc3\xa9"};
  for (uint64_t off = 2; off < listing->size(); ++off) {
    DirEntry e = (*listing)[off];
    EXPECT_EQ(e.name, expected[off - 2]);
    EXPECT_EQ(e.name.data()[e.name.size()], '\0');
    EXPECT_EQ(e.ino, Ino(view, e.name));
    // Inodes are numbered breadth first in name order: root 1, then its children 2..6.
    EXPECT_EQ(e.ino, off);
  }
  EXPECT_EQ((*listing)[4].type, static_cast<mode_t>(S_IFDIR));
  EXPECT_EQ((*listing)[5].type, static_cast<mode_t>(S_IFREG));
  // Resuming at an offset gives the same entry: a fresh listing, as a new readdir call would.
  auto again = view.OpenDir(kRootInode);
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)[5].name, "b");
  auto sub = view.OpenDir(Ino(view, "aa"));
  ASSERT_TRUE(sub);
  EXPECT_EQ((*sub)[0].ino, Ino(view, "aa"));
  EXPECT_EQ((*sub)[1].ino, kRootInode);
  EXPECT_EQ((*sub)[2].name, "in");
  auto not_dir = view.OpenDir(Ino(view, "a"));
  ASSERT_FALSE(not_dir);
  EXPECT_EQ(not_dir.error().code(), ENOTDIR);
}

TEST(MergedViewTest, ListingSurvivesMovingTheView) {
  auto built = MergedView::Build({Layer({File("a", 1), File("b", 1)})});
  ASSERT_TRUE(built);
  auto listing = built->OpenDir(kRootInode);
  ASSERT_TRUE(listing);
  MergedView moved = std::move(*built);
  EXPECT_EQ((*listing)[3].name, "b");
  EXPECT_EQ(moved.inode_count(), 3u);
}

TEST(MergedViewTest, SpecialModeBitsAreKept) {
  ASSERT_BUILDS(view, (Layers{Layer({File("su", 1, 04755), File("sg", 1, 02711), Dir("tmp", 01777),
                                     Dir("sgdir", 02775)})}));
  EXPECT_EQ(Attr(view, "su").st_mode, S_IFREG | 04755u);
  EXPECT_EQ(Attr(view, "sg").st_mode, S_IFREG | 02711u);
  EXPECT_EQ(Attr(view, "tmp").st_mode, S_IFDIR | 01777u);
  EXPECT_EQ(Attr(view, "sgdir").st_mode, S_IFDIR | 02775u);
}

TEST(MergedViewTest, ModeTypeBitsComeFromTypeNotFromMode) {
  Entry f = File("f", 1, S_IFDIR | 0644);  // a hostile mode claiming to be a directory
  ASSERT_BUILDS(view, (Layers{Layer({f})}));
  EXPECT_EQ(Attr(view, "f").st_mode, S_IFREG | 0644u);
}

TEST(MergedViewTest, RegularFileAttributes) {
  Entry f = File("f", 1000, 0640);
  f.uid = 1000;
  f.gid = 100;
  f.mtime_sec = 1700000000;
  f.mtime_nsec = 123456789;
  ASSERT_BUILDS(view, (Layers{Layer({f, File("empty", 0), File("e512", 512)})}));
  struct stat st = Attr(view, "f");
  EXPECT_EQ(st.st_mode, S_IFREG | 0640u);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 100u);
  EXPECT_EQ(st.st_size, 1000);
  EXPECT_EQ(st.st_blocks, 2);
  EXPECT_EQ(st.st_nlink, 1u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1700000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123456789);
  EXPECT_EQ(st.st_atim.tv_sec, 1700000000);
  EXPECT_EQ(st.st_atim.tv_nsec, 123456789);
  EXPECT_EQ(st.st_ctim.tv_sec, 1700000000);
  EXPECT_EQ(st.st_ctim.tv_nsec, 123456789);
  EXPECT_EQ(st.st_rdev, 0u);
  EXPECT_EQ(Attr(view, "empty").st_blocks, 0);
  EXPECT_EQ(Attr(view, "e512").st_blocks, 1);
}

TEST(MergedViewTest, DirectoryNlinkCountsSubdirectories) {
  ASSERT_BUILDS(view, (Layers{Layer({Dir("d"), Dir("d/a"), Dir("d/b"), File("d/f", 1),
                                     Hardlink("d/g", "d/f"), Dir("d/a/deep")})}));
  EXPECT_EQ(Attr(view, "").st_nlink, 3u);
  EXPECT_EQ(Attr(view, "d").st_nlink, 4u);
  EXPECT_EQ(Attr(view, "d/a").st_nlink, 3u);
  EXPECT_EQ(Attr(view, "d/a/deep").st_nlink, 2u);
}

TEST(MergedViewTest, DuplicatePathInLayerLastOneWins) {
  ASSERT_BUILDS(view, (Layers{Layer({File("a", 1), Hardlink("keep", "a"), File("a", 2),
                                     Dir("d", 0700), Dir("d", 0750)})}));
  EXPECT_EQ(Attr(view, "a").st_size, 2);
  EXPECT_EQ(Attr(view, "a").st_nlink, 1u);
  // The hardlink joined "a" as it stood then.
  EXPECT_EQ(Attr(view, "keep").st_size, 1);
  EXPECT_EQ(Attr(view, "keep").st_nlink, 1u);
  EXPECT_EQ(Attr(view, "d").st_mode, S_IFDIR | 0750u);
}

// Duplicates within one layer apply in tar order, the last entry winning, as umoci 0.4.7 and
// containerd 1.6 extract them (checked with both on this machine's kind; see FORMATS.md).
TEST(MergedViewTest, RepeatedPathsInOneLayerApplyInOrder) {
  ASSERT_BUILDS(
      view, (Layers{Layer({Dir("low"), File("low/k", 1)}),
                    Layer({Symlink("s", "t"), File("s", 7), File("f", 7), Symlink("f", "tf"),
                           File("g", 7), Dir("g", 0700), File("g/child", 3), Dir("e", 0755),
                           File("e/x", 3), Dir("e", 0700), Dir("h", 0755), File("h/y", 3),
                           File("h", 6), File("low", 16), File("i/j", 2), Symlink("i", "h")})}));
  EXPECT_EQ(Attr(view, "s").st_mode, S_IFREG | 0644u);
  EXPECT_EQ(Attr(view, "s").st_size, 7);
  EXPECT_EQ(Attr(view, "f").st_mode, S_IFLNK | 0777u);
  EXPECT_EQ(*view.ReadLink(Ino(view, "f")), "tf");
  EXPECT_EQ(Attr(view, "g").st_mode, S_IFDIR | 0700u);
  EXPECT_EQ(Attr(view, "g/child").st_size, 3);
  EXPECT_EQ(Attr(view, "e").st_mode, S_IFDIR | 0700u);  // the later entry's attributes
  EXPECT_EQ(Attr(view, "e/x").st_size, 3);              // children kept
  EXPECT_EQ(Attr(view, "h").st_mode, S_IFREG | 0644u);  // the directory and its child are gone
  EXPECT_EQ(Attr(view, "h").st_size, 6);
  EXPECT_EQ(LookupErrno(view, "h/y"), ENOTDIR);
  EXPECT_EQ(Attr(view, "low").st_size, 16);  // a lower directory replaced by this layer's file
  EXPECT_EQ(*view.ReadLink(Ino(view, "i")), "h");  // an implicit parent replaced, child gone
  EXPECT_EQ(view.GetAttr(kRootInode)->st_nlink, 2u + 2u);  // subdirectories g and e
}

TEST(MergedViewTest, CheckLayerRulesIsTheBuildOfOneLayerWithoutItsLabel) {
  EXPECT_TRUE(CheckLayerRules(*Layer({File("a", 1), Dir("a"), File("a/b", 1)})).has_value());
  auto refused = CheckLayerRules(*Layer({File("a", 1), File("a/b", 1)}));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), EINVAL);
  EXPECT_EQ(refused.error().message(),
            "entry \"a/b\": parent \"a\" is not a directory in this layer");
  // The message depends on this layer alone: a lower directory this layer never touched is
  // "not an earlier entry", as it is for the layer checked alone (found by fuzz_merged_view).
  EXPECT_EQ(BuildError({Layer({Dir("d"), Dir("d/e")}), Layer({Hardlink("d/e", "d/e")})}),
            "22 layer 2 of 2: hardlink \"d/e\" -> \"d/e\": target is not an earlier entry of "
            "this layer");
  EXPECT_EQ(BuildError({Layer({Dir("d")}), Layer({File("d/x", 1), Hardlink("h", "d")})}),
            "22 layer 2 of 2: hardlink \"h\" -> \"d\": target is a directory");
  refused = CheckLayerRules(*Layer({Hardlink("b", "a")}));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().message(),
            "hardlink \"b\" -> \"a\": target is not an earlier entry of this layer");
}

TEST(MergedViewTest, LayerConflictsAreErrors) {
  EXPECT_EQ(BuildError({Layer({File("a", 1), File("a/b", 1)})}),
            "22 layer 1 of 1: entry \"a/b\": parent \"a\" is not a directory in this layer");
  EXPECT_EQ(BuildError({Layer({File("a", 1), Whiteout("a/b/.wh.c")})}),
            "22 layer 1 of 1: entry \"a/b/.wh.c\": parent \"a\" is not a directory in this layer");
  // A directory this layer replaced with a file is gone: nothing may go under it afterwards.
  EXPECT_EQ(BuildError({Layer({Dir("a"), File("a", 1), File("a/b", 1)})}),
            "22 layer 1 of 1: entry \"a/b\": parent \"a\" is not a directory in this layer");
  EXPECT_EQ(BuildError({Layer({File("", 0)})}),
            "22 layer 1 of 1: the root entry is not a directory");
  EXPECT_EQ(BuildError({Layer({File("x", 1)}), Layer({Whiteout("d/.wh.")})}),
            "22 layer 2 of 2: entry path \"d/.wh.\" is a bare whiteout \".wh.\"");
  EXPECT_EQ(
      BuildError({Layer({File("x\ny", 1), File("x\ny/z", 1)})}),
      "22 layer 1 of 1: entry \"x\\x0ay/z\": parent \"x\\x0ay\" is not a directory in this layer")
      << "messages stay on one line";
  Entry weird = File("w", 1);
  weird.type = static_cast<EntryType>(42);
  EXPECT_EQ(BuildError({Layer({weird})}), "22 layer 1 of 1: entry \"w\" has unknown type 42");
}

TEST(MergedViewTest, HostilePathsAreRejected) {
  EXPECT_EQ(BuildError({Layer({File("../x", 1)})}),
            "22 layer 1 of 1: entry path \"../x\" has a \"..\" component");
  EXPECT_EQ(BuildError({Layer({File("/etc/passwd", 1)})}),
            "22 layer 1 of 1: entry path \"/etc/passwd\" is absolute");
  EXPECT_EQ(BuildError({Layer({File("a/./b", 1)})}),
            "22 layer 1 of 1: entry path \"a/./b\" has a \".\" component");
  EXPECT_EQ(BuildError({Layer({File("a//b", 1)})}),
            "22 layer 1 of 1: entry path \"a//b\" has an empty component");
  EXPECT_EQ(BuildError({Layer({File("x\ny", 1), File(std::string("n\0ul", 4), 1)})}),
            "22 layer 1 of 1: entry path \"n\\x00ul\" contains a NUL byte");
  EXPECT_EQ(BuildError({Layer({File(std::string(256, 'n'), 1)})}).substr(0, 3), "36 ");
  EXPECT_EQ(
      BuildError({Layer({File(".wh.x/y", 1)})}),
      "22 layer 1 of 1: entry path \".wh.x/y\" has a whiteout name (\".wh.x\") as a directory");
}

TEST(MergedViewTest, AufsMetadataIsSkipped) {
  ASSERT_BUILDS(view, (Layers{Layer({Dir(".wh..wh.plnk"), File(".wh..wh.plnk/1.2", 1),
                                     File(".wh..wh.aufs", 0), File("real", 1)})}));
  EXPECT_EQ(List(view, ""), std::vector<std::string>{"real"});
}

TEST(MergedViewTest, LookupErrorsAndDotNames) {
  ASSERT_BUILDS(view, (Layers{Layer({Dir("d"), File("d/f", 1)})}));
  InodeNumber d = Ino(view, "d");
  EXPECT_EQ(view.Lookup(d, ".").value(), d);
  EXPECT_EQ(view.Lookup(d, "..").value(), kRootInode);
  EXPECT_EQ(view.Lookup(kRootInode, "..").value(), kRootInode);
  auto missing = view.Lookup(d, "nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ENOENT);
  auto not_dir = view.Lookup(Ino(view, "d/f"), "x");
  ASSERT_FALSE(not_dir);
  EXPECT_EQ(not_dir.error().code(), ENOTDIR);
  for (InodeNumber bad : {InodeNumber{0}, InodeNumber{4}, ~InodeNumber{0}}) {
    auto stale = view.Lookup(bad, "x");
    ASSERT_FALSE(stale);
    EXPECT_EQ(stale.error().code(), ESTALE);
    EXPECT_EQ(view.GetAttr(bad).error().code(), ESTALE);
  }
  auto long_name = view.Lookup(d, std::string(256, 'x'));
  ASSERT_FALSE(long_name);
  EXPECT_EQ(long_name.error().code(), ENAMETOOLONG);
  EXPECT_EQ(view.Lookup(d, "f/x").error().code(), ENOENT);
}

TEST(MergedViewTest, OpenFileGivesTheBackingEntry) {
  ASSERT_BUILDS(view, (Layers{Layer({File("f", 100), Dir("d")}), Layer({File("f", 200)})}));
  auto file = view.OpenFile(Ino(view, "f"));
  ASSERT_TRUE(file);
  EXPECT_EQ(file->layer, 1u);
  EXPECT_EQ(file->index, view.layers()[1].get());
  EXPECT_EQ(file->entry, &view.layers()[1]->entries[0]);
  EXPECT_EQ(file->entry->size, 200u);
  auto dir = view.OpenFile(Ino(view, "d"));
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error().code(), EISDIR);
}

TEST(MergedViewTest, StatFsCountsEachInodeOnce) {
  ASSERT_BUILDS(view, (Layers{Layer({File("a", 1), File("b", 4096), File("c", 4097),
                                     Hardlink("c2", "c"), File("z", 0), Symlink("s", "abcdef")})}));
  struct statvfs st = view.StatFs();
  EXPECT_EQ(st.f_bsize, 4096u);
  EXPECT_EQ(st.f_frsize, 4096u);
  EXPECT_EQ(st.f_blocks, 4u);
  EXPECT_EQ(st.f_bfree, 0u);
  EXPECT_EQ(st.f_bavail, 0u);
  EXPECT_EQ(st.f_files, 6u);
  EXPECT_EQ(st.f_files, view.inode_count());
  EXPECT_EQ(st.f_ffree, 0u);
  EXPECT_EQ(st.f_namemax, 255u);
}

TEST(ChunksForRangeTest, PicksOverlappingChunks) {
  Entry e = File("f", 0);
  e.size = 250;
  e.chunks = {Chunk{.file_offset = 0, .size = 100}, Chunk{.file_offset = 100, .size = 100},
              Chunk{.file_offset = 200, .size = 50}};
  auto range = [&](uint64_t off, uint64_t len) {
    std::span<const Chunk> s = ChunksForRange(e, off, len);
    std::vector<uint64_t> starts;
    for (const Chunk& c : s) starts.push_back(c.file_offset);
    return starts;
  };
  EXPECT_EQ(range(0, 1), std::vector<uint64_t>{0});
  EXPECT_EQ(range(99, 2), (std::vector<uint64_t>{0, 100}));
  EXPECT_EQ(range(100, 100), std::vector<uint64_t>{100});
  EXPECT_EQ(range(150, 1000), (std::vector<uint64_t>{100, 200}));
  EXPECT_EQ(range(0, UINT64_MAX), (std::vector<uint64_t>{0, 100, 200}));
  EXPECT_EQ(range(250, 10), std::vector<uint64_t>{});
  EXPECT_EQ(range(10, 0), std::vector<uint64_t>{});
}

}  // namespace
}  // namespace hoist
