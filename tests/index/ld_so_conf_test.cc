// ParseLdSoConf over an in-memory image: includes with globs, comments, cleaning, bounds.
#include "index/ld_so_conf.h"

#include <gtest/gtest.h>

#include <map>

namespace hoist {
namespace {

class FakeConf {
 public:
  std::map<std::string, std::string> files;
  int reads = 0;

  ReadImageFile Read() {
    return [this](const std::string& path) -> Result<std::string> {
      ++reads;
      auto it = files.find(path);
      if (it == files.end()) return Fail(ENOENT, path + ": missing");
      return it->second;
    };
  }
  ListImageDir List() {
    return [this](const std::string& dir) -> Result<std::vector<std::string>> {
      std::vector<std::string> names;
      std::string prefix = dir == "/" ? "/" : dir + "/";
      for (const auto& [path, _] : files) {
        if (path.starts_with(prefix) && path.find('/', prefix.size()) == std::string::npos) {
          names.push_back(path.substr(prefix.size()));
        }
      }
      if (names.empty()) return Fail(ENOENT, dir + ": missing");
      std::reverse(names.begin(), names.end());  // the parser sorts
      return names;
    };
  }
  Result<std::vector<std::string>> Parse(const LdSoConfLimits& limits = {}) {
    return ParseLdSoConf(Read(), List(), limits);
  }
};

TEST(LdSoConfTest, DebianLayout) {
  FakeConf c;
  c.files["/etc/ld.so.conf"] = "include /etc/ld.so.conf.d/*.conf\n\n";
  c.files["/etc/ld.so.conf.d/libc.conf"] = "# libc default configuration\n/usr/local/lib\n";
  c.files["/etc/ld.so.conf.d/x86_64-linux-gnu.conf"] =
      "# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n"
      "/usr/lib/x86_64-linux-gnu\n";
  c.files["/etc/ld.so.conf.d/notes.txt"] = "/not/included\n";
  c.files["/etc/ld.so.conf.d/.hidden.conf"] = "/hidden\n";
  auto dirs = c.Parse();
  ASSERT_TRUE(dirs.has_value()) << dirs.error().message();
  EXPECT_EQ(*dirs,
            (std::vector<std::string>{"/usr/local/lib", "/usr/local/lib/x86_64-linux-gnu",
                                      "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"}));
}

TEST(LdSoConfTest, SyntaxDetails) {
  FakeConf c;
  c.files["/etc/ld.so.conf"] =
      "  /opt/a/  # trailing comment\n"
      "\t/opt/b=libc6\r\n"
      "relative/dir\n"
      "hwcap 1 nosegneg\n"
      "/opt/../../opt/c//d/.\n"
      "/opt/a\n"
      "include\tsub/one.conf  /etc/abs.conf\n"
      "includes_no_space\n"
      "/last";  // no final newline
  c.files["/etc/sub/one.conf"] = "/from/one\n";
  c.files["/etc/abs.conf"] = "/from/abs\n";
  auto dirs = c.Parse();
  ASSERT_TRUE(dirs.has_value()) << dirs.error().message();
  EXPECT_EQ(*dirs, (std::vector<std::string>{"/opt/a", "/opt/b", "/opt/c/d", "/from/one",
                                             "/from/abs", "/last"}));
}

TEST(LdSoConfTest, MissingFilesAndDirectoriesAreEmpty) {
  FakeConf c;
  auto dirs = c.Parse();
  ASSERT_TRUE(dirs.has_value());
  EXPECT_TRUE(dirs->empty());
  c.files["/etc/ld.so.conf"] = "include /etc/nowhere/*.conf\ninclude /etc/missing.conf\n/x\n";
  dirs = c.Parse();
  ASSERT_TRUE(dirs.has_value()) << dirs.error().message();
  EXPECT_EQ(*dirs, (std::vector<std::string>{"/x"}));
}

TEST(LdSoConfTest, OtherReadErrorsPassThrough) {
  ReadImageFile read = [](const std::string&) -> Result<std::string> {
    return Fail(EIO, "fetch failed");
  };
  ListImageDir list = [](const std::string&) -> Result<std::vector<std::string>> { return {}; };
  auto dirs = ParseLdSoConf(read, list);
  ASSERT_FALSE(dirs.has_value());
  EXPECT_EQ(dirs.error().code(), EIO);
}

TEST(LdSoConfTest, IncludeLoopsAndFloodsAreBounded) {
  FakeConf c;
  c.files["/etc/ld.so.conf"] = "include /etc/ld.so.conf\ninclude /etc/ld.so.conf\n";
  auto dirs = c.Parse();
  ASSERT_FALSE(dirs.has_value());
  EXPECT_EQ(dirs.error().code(), EBADMSG);
  EXPECT_LE(c.reads, 64);

  FakeConf lines;
  std::string many;
  for (int i = 0; i < 20000; ++i) many += "/d" + std::to_string(i % 10) + "\n";
  lines.files["/etc/ld.so.conf"] = many;
  dirs = lines.Parse();
  ASSERT_FALSE(dirs.has_value());
  EXPECT_EQ(dirs.error().code(), EBADMSG);

  FakeConf wide;
  std::string distinct;
  for (int i = 0; i < 300; ++i) distinct += "/d" + std::to_string(i) + "\n";
  wide.files["/etc/ld.so.conf"] = distinct;
  dirs = wide.Parse();
  ASSERT_FALSE(dirs.has_value());
  EXPECT_EQ(dirs.error().code(), EBADMSG);
  dirs = wide.Parse({.max_dirs = 1000});
  ASSERT_TRUE(dirs.has_value());
  EXPECT_EQ(dirs->size(), 300u);
}

}  // namespace
}  // namespace hoist
