// ParseMountInfo on lines in the kernel's format, and ReadMountInfo on this process's table.
#include "base/mountinfo.h"

#include <gtest/gtest.h>

namespace hoist {
namespace {

TEST(MountInfo, ParsesFieldsOptionalFieldsAndEscapes) {
  const std::string text =
      "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root "
      "rw,errors=continue\n"
      "40 36 0:50 / /tmp/b/lower ro,nosuid,nodev - fuse.hoistfs hoistfs rw,user_id=0\n"
      "garbage\n"
      "41 36 0:51 / /tmp/b/rootfs ro,nodev shared:5 unbindable - overlay overlay ro,lowerdir=x\n"
      "42 36 0:52 / /back\\134slash\\011tab rw - tmpfs tmp\\012fs rw";
  const std::vector<MountInfoEntry> t = ParseMountInfo(text);
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[0].root, "/mnt1");
  EXPECT_EQ(t[0].mount_point, "/mnt/with space");
  EXPECT_EQ(t[0].options, "rw,noatime");
  EXPECT_EQ(t[0].fs_type, "ext3");
  EXPECT_EQ(t[0].source, "/dev/root");
  EXPECT_EQ(t[1].mount_point, "/tmp/b/lower");
  EXPECT_EQ(t[1].options, "ro,nosuid,nodev");
  EXPECT_EQ(t[1].fs_type, "fuse.hoistfs");
  EXPECT_EQ(t[2].mount_point, "/tmp/b/rootfs");
  EXPECT_EQ(t[2].fs_type, "overlay");
  EXPECT_EQ(t[3].mount_point, "/back\\slash\ttab");
  EXPECT_EQ(t[3].source, "tmp\nfs");
}

TEST(MountInfo, UnescapeLeavesIncompleteEscapesAlone) {
  EXPECT_EQ(UnescapeMountInfo("a\\04"), "a\\04");
  EXPECT_EQ(UnescapeMountInfo("a\\089"), "a\\089");
  EXPECT_EQ(UnescapeMountInfo("end\\040"), "end ");
}

TEST(MountInfo, ThisProcessHasARootMount) {
  auto table = ReadMountInfo();
  ASSERT_TRUE(table.has_value()) << table.error().message();
  ASSERT_FALSE(table->empty());
  bool root = false;
  for (const MountInfoEntry& e : *table) root = root || e.mount_point == "/";
  EXPECT_TRUE(root);
  auto under = MountPointsUnder("/proc");
  ASSERT_TRUE(under.has_value());
  ASSERT_FALSE(under->empty());
  EXPECT_EQ(under->front(), "/proc");
}

}  // namespace
}  // namespace hoist
