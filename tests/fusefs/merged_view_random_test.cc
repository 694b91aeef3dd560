// Random layer stacks drawn from a tiny name alphabet, so that whiteouts, opaque markers,
// replacements, duplicates and hardlinks collide often. Each stack either fails with EINVAL and
// a one-line message, or yields a tree whose invariants hold.
#include <gtest/gtest.h>

#include <cerrno>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "fusefs/merged_view.h"
#include "tests/fusefs/test_layers.h"

namespace hoist {
namespace {

std::string RandomPath(std::mt19937& rng) {
  static const char* kNames[] = {"a", "b", "c", ".wh.a", ".wh.b", ".wh..wh..opq"};
  int depth = 1 + rng() % 3;
  std::string path;
  for (int i = 0; i < depth; ++i) {
    if (!path.empty()) path += '/';
    // Markers only as the last component (a marker as a directory is a separate test).
    path += kNames[rng() % (i + 1 == depth ? 6 : 3)];
  }
  return path;
}

Entry RandomEntry(std::mt19937& rng) {
  std::string path = RandomPath(rng);
  switch (rng() % 5) {
    case 0:
    case 1:
      return testing::Dir(path, 0700 + rng() % 8);
    case 2:
      return testing::File(path, rng() % 5000);
    case 3:
      return testing::Symlink(path, "../x");
    default:
      return testing::Hardlink(path, RandomPath(rng));
  }
}

// Walks the whole tree; checks sortedness, ranges, nlink and that no marker is visible.
void CheckInvariants(const MergedView& view) {
  std::map<InodeNumber, uint32_t> names_of;  // non-directory inode -> names seen
  std::vector<InodeNumber> dirs = {kRootInode};
  uint64_t seen_dirs = 0;
  for (size_t d = 0; d < dirs.size(); ++d) {
    ++seen_dirs;
    auto listing = view.OpenDir(dirs[d]);
    ASSERT_TRUE(listing);
    uint32_t subdirs = 0;
    std::string_view previous;
    for (uint64_t off = 2; off < listing->size(); ++off) {
      DirEntry e = (*listing)[off];
      ASSERT_GE(e.ino, 1u);
      ASSERT_LE(e.ino, view.inode_count());
      ASSERT_FALSE(e.name.starts_with(".wh.")) << e.name;
      if (off > 2) {
        ASSERT_LT(previous, e.name);
      }
      previous = e.name;
      auto st = view.GetAttr(e.ino);
      ASSERT_TRUE(st);
      ASSERT_EQ(st->st_mode & S_IFMT, e.type);
      ASSERT_EQ(view.Lookup(dirs[d], e.name).value(), e.ino);
      if (e.type == S_IFDIR) {
        ++subdirs;
        dirs.push_back(e.ino);
        ASSERT_EQ((*view.OpenDir(e.ino))[1].ino, dirs[d]);
      } else {
        ++names_of[e.ino];
      }
    }
    ASSERT_EQ(view.GetAttr(dirs[d])->st_nlink, 2u + subdirs);
  }
  for (auto [ino, names] : names_of) ASSERT_EQ(view.GetAttr(ino)->st_nlink, names);
  ASSERT_EQ(seen_dirs + names_of.size(), view.inode_count()) << "every inode is reachable";
}

TEST(MergedViewRandomTest, InvariantsHoldOrLayerIsRejected) {
  std::mt19937 rng(20261128);
  int built = 0;
  for (int round = 0; round < 3000; ++round) {
    std::vector<std::shared_ptr<const LayerIndex>> layers;
    int layer_count = 1 + rng() % 3;
    for (int l = 0; l < layer_count; ++l) {
      std::vector<Entry> entries;
      int n = rng() % 8;
      for (int i = 0; i < n; ++i) entries.push_back(RandomEntry(rng));
      layers.push_back(testing::Layer(std::move(entries)));
    }
    auto view = MergedView::Build(layers);
    if (!view) {
      ASSERT_EQ(view.error().code(), EINVAL) << view.error().message();
      ASSERT_EQ(view.error().message().find('\n'), std::string::npos);
      continue;
    }
    ++built;
    SCOPED_TRACE("round " + std::to_string(round));
    CheckInvariants(*view);
    if (::testing::Test::HasFatalFailure()) return;
  }
  // The generator must exercise both outcomes.
  EXPECT_GT(built, 500);
  EXPECT_LT(built, 3000);
}

}  // namespace
}  // namespace hoist
