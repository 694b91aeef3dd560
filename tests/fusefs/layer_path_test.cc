#include "fusefs/layer_path.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>

namespace hoist {
namespace {

TEST(ValidateEntryPathTest, AcceptsCleanPaths) {
  EXPECT_TRUE(ValidateEntryPath(""));
  EXPECT_TRUE(ValidateEntryPath("a"));
  EXPECT_TRUE(ValidateEntryPath("a/b/c"));
  EXPECT_TRUE(ValidateEntryPath("...")) << "three dots is an ordinary name";
  EXPECT_TRUE(ValidateEntryPath(std::string(255, 'x')));
}

TEST(ValidateEntryPathTest, RejectsEscapesAndJunk) {
  struct Case {
    std::string path;
    int code;
    std::string message;
  };
  const Case cases[] = {
      {"../x", EINVAL, "entry path \"../x\" has a \"..\" component"},
      {"a/../../b", EINVAL, "entry path \"a/../../b\" has a \"..\" component"},
      {"/abs", EINVAL, "entry path \"/abs\" is absolute"},
      {"./", EINVAL, "entry path \"./\" has a \".\" component"},
      {"a//b", EINVAL, "entry path \"a//b\" has an empty component"},
      {"a/", EINVAL, "entry path \"a/\" has an empty component"},
      {std::string("a\0b", 3), EINVAL, "entry path \"a\\x00b\" contains a NUL byte"},
      {std::string(256, 'x'), ENAMETOOLONG, ""},
  };
  for (const Case& c : cases) {
    Status s = ValidateEntryPath(c.path);
    ASSERT_FALSE(s) << c.message;
    EXPECT_EQ(s.error().code(), c.code);
    if (!c.message.empty()) {
      EXPECT_EQ(s.error().message(), c.message);
    }
  }
}

TEST(ClassifyEntryPathTest, Kinds) {
  auto n = ClassifyEntryPath("a/b/.wh.c");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->kind, EntryNameKind::kWhiteout);
  EXPECT_EQ(n->parent, "a/b");
  EXPECT_EQ(n->base, ".wh.c");
  EXPECT_EQ(n->target, "c");

  n = ClassifyEntryPath("d/.wh..wh..opq");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->kind, EntryNameKind::kOpaque);
  EXPECT_EQ(n->parent, "d");

  n = ClassifyEntryPath(".wh..wh.plnk");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->kind, EntryNameKind::kSkip);
  n = ClassifyEntryPath(".wh..wh.plnk/123.456");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->kind, EntryNameKind::kSkip);

  n = ClassifyEntryPath("top");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->kind, EntryNameKind::kNormal);
  EXPECT_EQ(n->parent, "");
  EXPECT_EQ(n->base, "top");
  n = ClassifyEntryPath("a/x.wh.y");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->kind, EntryNameKind::kNormal);
}

TEST(ClassifyEntryPathTest, Errors) {
  auto n = ClassifyEntryPath("a/.wh.");
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code(), EINVAL);
  EXPECT_EQ(n.error().message(), "entry path \"a/.wh.\" is a bare whiteout \".wh.\"");
  n = ClassifyEntryPath(".wh...");
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().message(), "entry path \".wh...\" whites out \"..\"");
  n = ClassifyEntryPath(".wh.x/y");
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().message(),
            "entry path \".wh.x/y\" has a whiteout name (\".wh.x\") as a directory");
}

TEST(QuotePathTest, EscapesAndShortens) {
  EXPECT_EQ(QuotePath("a\nb\"c"), "\"a\\x0ab\\x22c\"");
  std::string quoted = QuotePath(std::string(150, 'a') + std::string(150, 'b'));
  EXPECT_EQ(quoted, "\"" + std::string(100, 'a') + "..." + std::string(100, 'b') + "\"");
}

}  // namespace
}  // namespace hoist
