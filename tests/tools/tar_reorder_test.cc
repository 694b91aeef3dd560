// PrefetchOrder and ReorderedReader (tools/convert/tar_reorder.h): pure unit tests, no registry
// or tar needed. The end-to-end `hoist convert --prefetch-list` tests are in
// tests/integration/convert_prefetch_test.cc.
#include "tools/convert/tar_reorder.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <tuple>
#include <vector>

#include "base/scoped_fd.h"

namespace hoist {
namespace {

// PrefetchOrder and ReorderedReader on hand-made layouts (no tar needed: they work on spans).
TarLayout Layout(std::vector<std::tuple<std::string, EntryType, std::string>> members) {
  TarLayout l;
  uint64_t at = 0;
  for (auto& [path, type, link] : members) {
    l.members.push_back(TarLayoutMember{at, at + 512, path, type, link});
    at += 512;
  }
  l.trailer_offset = at;
  l.size = at + 1024;
  return l;
}

TEST(TarReorderTest, HardlinkChainsMoveTargetsFirstParentsLeadAndRestKeepsOrder) {
  using T = EntryType;
  TarLayout l = Layout({{"d", T::kDirectory, ""},
                        {"d/t", T::kRegular, ""},
                        {"x", T::kRegular, ""},
                        {"d/l1", T::kHardlink, "d/t"},
                        {"l2", T::kHardlink, "d/l1"},
                        {"d/.wh.gone", T::kRegular, ""},
                        {"late", T::kHardlink, "after"},
                        {"after", T::kRegular, ""}});
  auto plan = PrefetchOrder(l, {"l2", "d/.wh.gone", "late", "nope"});
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->order, (std::vector<size_t>{0, 1, 3, 4, 2, 5, 6, 7}));
  EXPECT_EQ(plan->marks, (std::vector<std::string>{"d/.wh.gone", "d/l1", "d/t", "l2", "late"}));
}

TEST(TarReorderTest, ListedSymlinksBringTheirTargetsInsideTheRoot) {
  using T = EntryType;
  TarLayout l = Layout({{"bin", T::kDirectory, ""},
                        {"bin/busybox", T::kRegular, ""},
                        {"x", T::kRegular, ""},
                        {"bin/sh", T::kSymlink, "busybox"},
                        {"bin/abs", T::kSymlink, "/../../bin/sh"},
                        {"bin/gone", T::kSymlink, "/nowhere"}});
  auto plan = PrefetchOrder(l, {"bin/abs", "bin/gone"});
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->order, (std::vector<size_t>{0, 4, 1, 5, 2, 3}));
  EXPECT_EQ(plan->marks, (std::vector<std::string>{"bin/abs", "bin/busybox", "bin/gone"}));
}

TEST(TarReorderTest, NothingMovesForDuplicatesWhiteoutsGlobalHeadersOrAbsentPaths) {
  using T = EntryType;
  TarLayout dup = Layout({{"a", T::kRegular, ""}, {"b", T::kRegular, ""}, {"a", T::kRegular, ""}});
  EXPECT_FALSE(PrefetchOrder(dup, {"a"}).has_value());
  TarLayout wh = Layout({{"a", T::kRegular, ""}, {".wh.b", T::kRegular, ""}});
  EXPECT_FALSE(PrefetchOrder(wh, {".wh.b"}).has_value());
  EXPECT_FALSE(PrefetchOrder(wh, {"zzz"}).has_value());
  EXPECT_FALSE(PrefetchOrder(wh, {}).has_value());
  TarLayout g = Layout({{"a", T::kRegular, ""}, {"b", T::kRegular, ""}});
  g.has_global_header = true;
  EXPECT_FALSE(PrefetchOrder(g, {"b"}).has_value());
  g.has_global_header = false;
  auto plan = PrefetchOrder(g, {"b"});
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->order, (std::vector<size_t>{1, 0}));
}

TEST(TarReorderTest, ReorderedReaderStreamsSpansThenTrailer) {
  char path[] = "/tmp/hoist-reorder-XXXXXX";
  ScopedFd fd(::mkstemp(path));
  ASSERT_TRUE(fd.valid());
  ::unlink(path);
  const std::string data = "AAAABBBBCCCCtt";
  ASSERT_EQ(::write(fd.get(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
  TarLayout l;
  l.members = {{0, 4, "a", EntryType::kRegular, ""},
               {4, 8, "b", EntryType::kRegular, ""},
               {8, 12, "c", EntryType::kRegular, ""}};
  l.trailer_offset = 12;
  l.size = 14;
  ReorderedReader r(std::move(fd), l, {2, 0, 1});
  std::string out;
  char buf[3];
  for (;;) {
    auto n = r.Read(buf, sizeof buf);
    ASSERT_TRUE(n.has_value()) << n.error().message();
    if (*n == 0) break;
    out.append(buf, *n);
  }
  EXPECT_EQ(out, "CCCCAAAABBBBtt");
}

}  // namespace
}  // namespace hoist
