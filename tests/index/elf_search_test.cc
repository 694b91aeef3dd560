// Image paths, the library search and the dependency closure over an in-memory image tree (and
// once over the host's own root, checked against ldd).
#include "index/elf_search.h"

#include <elf.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "base/spawn.h"
#include "index/image_path.h"
#include "index/ld_so_conf.h"
#include "tests/index/elf_test_util.h"

namespace hoist {
namespace {

using testing::BuildElf;
using testing::ElfSpec;

// A tree of image paths: regular files (with contents), directories, symlinks.
class FakeImage {
 public:
  FakeImage() { nodes_["/"] = {ImageNode::Type::kDirectory, ""}; }

  void File(const std::string& path, std::string content = "") {
    Parents(path);
    nodes_[path] = {ImageNode::Type::kRegular, ""};
    contents_[path] = std::move(content);
  }
  void Elf(const std::string& path, const ElfSpec& spec) { File(path, BuildElf(spec).bytes); }
  void Link(const std::string& path, const std::string& target) {
    Parents(path);
    nodes_[path] = {ImageNode::Type::kSymlink, target};
  }
  void Dir(const std::string& path) {
    Parents(path);
    nodes_[path] = {ImageNode::Type::kDirectory, ""};
  }

  ImageLstat Lstat() {
    return [this](const std::string& path) {
      ++lstats;
      auto it = nodes_.find(path);
      return it == nodes_.end() ? ImageNode{} : it->second;
    };
  }
  OpenImageElf Open() {
    return [this](const std::string& path) -> Result<ElfFile> {
      opened.push_back(path);
      auto it = contents_.find(path);
      if (it == contents_.end()) return Fail(ENOENT, path);
      const std::string* data = &it->second;
      return ElfFile{data->size(), [data](uint64_t off, uint64_t len) -> Result<std::string> {
                       return data->substr(off, len);
                     }};
    };
  }

  int lstats = 0;
  std::vector<std::string> opened;

 private:
  void Parents(const std::string& path) {
    for (size_t slash = path.find('/', 1); slash != std::string::npos;
         slash = path.find('/', slash + 1)) {
      nodes_.try_emplace(path.substr(0, slash), ImageNode{ImageNode::Type::kDirectory, ""});
    }
  }
  std::map<std::string, ImageNode> nodes_;
  std::map<std::string, std::string> contents_;
};

ElfDeps X86_64(std::vector<std::string> needed, std::string interp = "") {
  ElfDeps d;
  d.elf_class = 64;
  d.machine = EM_X86_64;
  d.type = ET_DYN;
  d.needed = std::move(needed);
  d.interp = std::move(interp);
  return d;
}

// ---- Image paths.

TEST(ImagePathTest, CleanStaysInsideTheRoot) {
  EXPECT_EQ(CleanImagePath("/a/b/../c"), "/a/c");
  EXPECT_EQ(CleanImagePath("/../../etc/passwd"), "/etc/passwd");
  EXPECT_EQ(CleanImagePath("../../x", "/usr/lib"), "/x");
  EXPECT_EQ(CleanImagePath("x/./y//z/", "/usr"), "/usr/x/y/z");
  EXPECT_EQ(CleanImagePath(""), "/");
  EXPECT_EQ(CleanImagePath("/.."), "/");
  EXPECT_EQ(CleanImagePath("/abs", "/ignored"), "/abs");
  EXPECT_EQ(ImageDirName("/usr/lib/libc.so.6"), "/usr/lib");
  EXPECT_EQ(ImageDirName("/ls"), "/");
  EXPECT_EQ(ImageDirName("/"), "/");
}

TEST(ImagePathTest, ResolvesSymlinksInEveryComponent) {
  FakeImage img;
  img.Link("/lib", "usr/lib");
  img.Link("/lib64", "usr/lib64");
  img.Link("/usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
  img.File("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
  img.Link("/usr/lib/x86_64-linux-gnu/libz.so.1", "libz.so.1.2.13");
  img.File("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13");
  auto r = ResolveImagePath("/lib64/ld-linux-x86-64.so.2", img.Lstat());
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(*r, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
  r = ResolveImagePath("/lib/x86_64-linux-gnu/libz.so.1", img.Lstat());
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(*r, "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13");
}

TEST(ImagePathTest, DotDotAtTheRootAndInTargetsStaysInTheImage) {
  FakeImage img;
  img.File("/etc/passwd");
  img.Link("/usr/lib/evil", "../../../../../../etc/passwd");
  img.Link("/usr/lib/abs", "/../../etc/passwd");
  for (const char* p : {"/usr/lib/evil", "/usr/lib/abs", "/../../../etc/passwd"}) {
    auto r = ResolveImagePath(p, img.Lstat());
    ASSERT_TRUE(r.has_value()) << p;
    EXPECT_EQ(*r, "/etc/passwd") << p;
  }
  // ".." after a symlinked directory applies to the link's target, as the kernel does it.
  img.Link("/d", "usr/lib");
  auto r = ResolveImagePath("/d/../lib/abs", img.Lstat());
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(*r, "/etc/passwd");
}

TEST(ImagePathTest, LoopsAndDeadEndsAreErrors) {
  FakeImage img;
  img.Link("/a", "b");
  img.Link("/b", "a");
  img.Link("/self", "/self/x");
  img.File("/f");
  img.Link("/empty", "");
  auto r = ResolveImagePath("/a", img.Lstat());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ELOOP);
  r = ResolveImagePath("/self", img.Lstat());
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(r.error().code() == ELOOP || r.error().code() == ENAMETOOLONG);
  EXPECT_LE(img.lstats, 2000);
  r = ResolveImagePath("/f/x", img.Lstat());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ENOTDIR);
  r = ResolveImagePath("/missing", img.Lstat());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ENOENT);
  r = ResolveImagePath("/empty", img.Lstat());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ENOENT);
}

// ---- The search.

TEST(ElfSearchTest, DefaultDirectoriesPerMachine) {
  EXPECT_EQ(DefaultLibraryDirs(X86_64({})),
            (std::vector<std::string>{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
                                      "/lib64", "/usr/lib64", "/lib", "/usr/lib"}));
  ElfDeps arm64 = X86_64({}, "/lib/ld-musl-aarch64.so.1");
  arm64.machine = EM_AARCH64;
  EXPECT_EQ(
      DefaultLibraryDirs(arm64),
      (std::vector<std::string>{"/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64",
                                "/usr/lib64", "/lib", "/usr/local/lib", "/usr/lib"}));
  ElfDeps i386 = X86_64({});
  i386.machine = EM_386;
  i386.elf_class = 32;
  EXPECT_EQ(DefaultLibraryDirs(i386),
            (std::vector<std::string>{"/lib/i386-linux-gnu", "/usr/lib/i386-linux-gnu", "/lib",
                                      "/usr/lib"}));
  ElfDeps ppc = X86_64({});
  ppc.machine = EM_PPC64;
  ppc.big_endian = true;
  EXPECT_EQ(MultiarchTriplets(ppc), (std::vector<std::string>{"powerpc64-linux-gnu"}));
}

TEST(ElfSearchTest, DebianLayoutThroughSymlinks) {
  FakeImage img;
  img.Link("/lib", "usr/lib");
  img.Link("/lib64", "usr/lib64");
  img.Link("/usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
  img.File("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
  img.File("/usr/lib/x86_64-linux-gnu/libc.so.6");
  img.Link("/usr/lib/x86_64-linux-gnu/libselinux.so.1", "libselinux.so.1.0");
  img.File("/usr/lib/x86_64-linux-gnu/libselinux.so.1.0");
  LibrarySearch search{.lstat = img.Lstat()};
  ElfDeps ls =
      X86_64({"libselinux.so.1", "libc.so.6", "libmissing.so"}, "/lib64/ld-linux-x86-64.so.2");
  EXPECT_EQ(ResolveElfDeps(ls, "/usr/bin", search),
            (std::vector<std::string>{"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                                      "/usr/lib/x86_64-linux-gnu/libselinux.so.1.0",
                                      "/usr/lib/x86_64-linux-gnu/libc.so.6"}));
  auto detailed = ResolveElfDepsDetailed(ls, "/usr/bin", search);
  ASSERT_EQ(detailed.size(), 3u);
  EXPECT_EQ(detailed[1].name, "libselinux.so.1");
  EXPECT_EQ(detailed[1].path, "/lib/x86_64-linux-gnu/libselinux.so.1");
}

TEST(ElfSearchTest, OriginAndRunpathBeforeDefaults) {
  FakeImage img;
  img.File("/app/lib/libapp.so");
  img.File("/usr/lib/libapp.so");
  img.File("/opt/x/lib/libx.so");
  LibrarySearch search{.lstat = img.Lstat()};
  for (const char* runpath : {"$ORIGIN/../lib", "${ORIGIN}/../lib"}) {
    ElfDeps d = X86_64({"libapp.so"});
    d.runpath = {runpath};
    d.has_runpath = true;
    EXPECT_EQ(ResolveElfDeps(d, "/app/bin", search),
              (std::vector<std::string>{"/app/lib/libapp.so"}))
        << runpath;
  }
  // "$ORIGINX" is not the token: kept literally, found nowhere, so the default wins.
  ElfDeps d = X86_64({"libapp.so"});
  d.runpath = {"$ORIGINX/../lib"};
  d.has_runpath = true;
  EXPECT_EQ(ResolveElfDeps(d, "/app/bin", search),
            (std::vector<std::string>{"/usr/lib/libapp.so"}));
  // An $ORIGIN climbing above the root stays at the root.
  d.runpath = {"$ORIGIN/../../../../../opt/x/lib"};
  d.needed = {"libx.so"};
  EXPECT_EQ(ResolveElfDeps(d, "/app/bin", search),
            (std::vector<std::string>{"/opt/x/lib/libx.so"}));
}

TEST(ElfSearchTest, RunpathDisablesRpath) {
  FakeImage img;
  img.File("/rpath/libq.so");
  img.File("/runpath/libq.so");
  LibrarySearch search{.lstat = img.Lstat()};
  ElfDeps d = X86_64({"libq.so"});
  d.rpath = {"/rpath"};
  EXPECT_EQ(ResolveElfDeps(d, "/", search), (std::vector<std::string>{"/rpath/libq.so"}));
  d.runpath = {"/runpath"};
  d.has_runpath = true;
  EXPECT_EQ(ResolveElfDeps(d, "/", search), (std::vector<std::string>{"/runpath/libq.so"}));
  // An empty DT_RUNPATH still disables DT_RPATH.
  d.runpath.clear();
  EXPECT_TRUE(ResolveElfDeps(d, "/", search).empty());
  // Without RUNPATH, RPATH comes before the inherited RPATH of the loaders and ld.so.conf.
  img.File("/inherited/libq.so");
  img.File("/conf/libq.so");
  ElfDeps e = X86_64({"libq.so"});
  search.inherited_rpath = {"/inherited"};
  search.conf_dirs = {"/conf"};
  EXPECT_EQ(ResolveElfDeps(e, "/", search), (std::vector<std::string>{"/inherited/libq.so"}));
  e.rpath = {"/rpath"};
  EXPECT_EQ(ResolveElfDeps(e, "/", search), (std::vector<std::string>{"/rpath/libq.so"}));
  e.rpath.clear();
  e.runpath = {"/nowhere"};
  e.has_runpath = true;  // the inherited RPATH is ignored too
  EXPECT_EQ(ResolveElfDeps(e, "/", search), (std::vector<std::string>{"/conf/libq.so"}));
}

TEST(ElfSearchTest, LibAndPlatformTokens) {
  FakeImage img;
  img.File("/opt/lib/x86_64-linux-gnu/liba.so");
  img.File("/opt/lib64/libb.so");
  img.File("/opt/x86_64/libc2.so");
  LibrarySearch search{.lstat = img.Lstat()};
  ElfDeps d = X86_64({"liba.so", "libb.so", "libc2.so"});
  d.rpath = {"/opt/$LIB", "/opt/${PLATFORM}"};
  EXPECT_EQ(ResolveElfDeps(d, "/", search),
            (std::vector<std::string>{"/opt/lib/x86_64-linux-gnu/liba.so", "/opt/lib64/libb.so",
                                      "/opt/x86_64/libc2.so"}));
  EXPECT_EQ(ExpandSearchPath({"/o/$LIB/$PLATFORM/$FOO"}, "/", d),
            (std::vector<std::string>{"/o/lib/x86_64-linux-gnu/x86_64/$FOO", "/o/lib64/x86_64/$FOO",
                                      "/o/lib/x86_64/$FOO"}));
  ElfDeps unknown = d;
  unknown.machine = EM_SPARCV9;
  EXPECT_TRUE(ExpandSearchPath({"/o/$PLATFORM"}, "/", unknown).empty());
}

TEST(ElfSearchTest, SlashInNameIsAPathAndDirectoriesAreNotLibraries) {
  FakeImage img;
  img.File("/opt/plugin.so");
  img.Dir("/usr/lib/libdir.so");
  img.File("/lib/libdir.so");
  LibrarySearch search{.lstat = img.Lstat()};
  ElfDeps d = X86_64({"/opt/../opt/plugin.so", "libdir.so", "../../opt/plugin.so"});
  // "libdir.so" is a directory in /usr/lib... but /lib comes first anyway; check both orders.
  EXPECT_EQ(ResolveElfDeps(d, "/", search),
            (std::vector<std::string>{"/opt/plugin.so", "/lib/libdir.so"}));
  search.conf_dirs = {"/usr/lib"};
  EXPECT_EQ(ResolveElfDeps(d, "/", search),
            (std::vector<std::string>{"/opt/plugin.so", "/lib/libdir.so"}));
}

TEST(ElfSearchTest, SymlinkLoopsAreSkippedBounded) {
  FakeImage img;
  img.Link("/lib/x86_64-linux-gnu/libl.so", "libl.so");
  img.Link("/usr/lib/libl.so", "/usr/lib/libl.so");
  img.File("/usr/lib64/libl.so");  // /lib64 comes between them
  LibrarySearch search{.lstat = img.Lstat()};
  EXPECT_EQ(ResolveElfDeps(X86_64({"libl.so"}), "/", search),
            (std::vector<std::string>{"/usr/lib64/libl.so"}));
  EXPECT_LE(img.lstats, 500);
}

// ---- The closure.

TEST(ElfClosureTest, BreadthFirstWithInheritedRpathAndSonames) {
  FakeImage img;
  img.Link("/lib64/ld.so", "/lib/x86_64-linux-gnu/ld.so");
  img.File("/lib/x86_64-linux-gnu/ld.so");
  img.Elf("/app/bin/prog", {.type = ET_EXEC,
                            .interp = "/lib64/ld.so",
                            .needed = {"liba.so", "libb.so"},
                            .rpath = "$ORIGIN/../lib"});
  img.Elf("/app/lib/liba.so", {.needed = {"libc.so.6", "libdeep.so"}, .soname = "liba.so"});
  img.Link("/app/lib/libb.so", "libb.so.2");
  img.Elf("/app/lib/libb.so.2", {.needed = {"libc.so.6"}, .soname = "libb.so"});
  // Found only through prog's RPATH, inherited by liba.so (which has none of its own).
  img.Elf("/app/lib/libdeep.so", {.needed = {"libc.so.6"}});
  img.Elf("/lib/x86_64-linux-gnu/libc.so.6", {.interp = "/lib64/ld.so", .soname = "libc.so.6"});
  LibrarySearch search{.lstat = img.Lstat()};
  std::vector<std::string> seen;
  auto all = CollectElfClosure("/app/bin/prog", img.Open(), search, {},
                               [&](const std::string& p) { seen.push_back(p); });
  ASSERT_TRUE(all.has_value()) << all.error().message();
  std::vector<std::string> want{"/lib/x86_64-linux-gnu/ld.so", "/app/lib/liba.so",
                                "/app/lib/libb.so.2", "/lib/x86_64-linux-gnu/libc.so.6",
                                "/app/lib/libdeep.so"};
  EXPECT_EQ(*all, want);
  EXPECT_EQ(seen, want);
  // Each library opened once; the interpreter is not parsed.
  EXPECT_EQ(img.opened,
            (std::vector<std::string>{"/app/bin/prog", "/app/lib/liba.so", "/app/lib/libb.so.2",
                                      "/lib/x86_64-linux-gnu/libc.so.6", "/app/lib/libdeep.so"}));
}

TEST(ElfClosureTest, RunpathIsNotInherited) {
  FakeImage img;
  img.Elf("/p", {.needed = {"liba.so"}, .runpath = "/r"});
  img.Elf("/r/liba.so", {.needed = {"libb.so"}});
  img.Elf("/r/libb.so", {});
  auto all = CollectElfClosure("/p", img.Open(), {.lstat = img.Lstat()});
  ASSERT_TRUE(all.has_value()) << all.error().message();
  EXPECT_EQ(*all, (std::vector<std::string>{"/r/liba.so"}));
}

TEST(ElfClosureTest, BadLibrariesAndCyclesEndQuietly) {
  FakeImage img;
  img.Elf("/usr/bin/p", {.needed = {"liba.so", "libjunk.so"}});
  img.Elf("/usr/lib/liba.so", {.needed = {"libp.so"}});
  img.Elf("/usr/lib/libp.so", {.needed = {"liba.so", "libp.so"}});  // a cycle
  img.File("/usr/lib/libjunk.so", "not an ELF file");
  auto all = CollectElfClosure("/usr/bin/p", img.Open(), {.lstat = img.Lstat()});
  ASSERT_TRUE(all.has_value()) << all.error().message();
  EXPECT_EQ(*all, (std::vector<std::string>{"/usr/lib/liba.so", "/usr/lib/libjunk.so",
                                            "/usr/lib/libp.so"}));
  auto not_elf = CollectElfClosure("/usr/lib/libjunk.so", img.Open(), {.lstat = img.Lstat()});
  ASSERT_FALSE(not_elf.has_value());
  EXPECT_EQ(not_elf.error().code(), ENOEXEC);
}

TEST(ElfClosureTest, ObjectCountIsBounded) {
  FakeImage img;
  ElfSpec prog;
  for (int i = 0; i < 50; ++i) {
    std::string name = "lib" + std::to_string(i) + ".so";
    prog.needed.push_back(name);
    img.Elf("/usr/lib/" + name, {.needed = {"libz" + std::to_string(i) + ".so"}});
    img.Elf("/usr/lib/libz" + std::to_string(i) + ".so", {});
  }
  img.Elf("/p", prog);
  auto all = CollectElfClosure("/p", img.Open(), {.lstat = img.Lstat()}, {.max_objects = 10});
  ASSERT_TRUE(all.has_value()) << all.error().message();
  EXPECT_EQ(img.opened.size(), 10u);
  // The 50 direct ones are all found, and the one dependency of each of the 9 read.
  EXPECT_EQ(all->size(), 59u);
}

// ---- The host's own root as an image: the closure of real programs equals ldd's list.

std::set<std::string> LddPaths(const std::string& program) {
  SpawnOptions spawn{
      .search_path = true, .stdout_to = Stdio::Capture(), .stderr_to = Stdio::Null()};
  auto r = RunAndCapture({"ldd", program}, spawn);
  std::set<std::string> out;
  if (!r) return out;
  std::istringstream in(r->stdout_text);
  for (std::string line; std::getline(in, line);) {
    size_t arrow = line.find("=> ");
    size_t start = arrow != std::string::npos ? arrow + 3 : line.find('/');
    if (start == std::string::npos || start >= line.size() || line[start] != '/') continue;
    std::string path = line.substr(start, line.find(' ', start) - start);
    out.insert(std::filesystem::canonical(path).string());
  }
  return out;
}

ImageLstat HostLstat() {
  return [](const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::file_status st = fs::symlink_status(path, ec);
    if (ec || !fs::exists(st)) return ImageNode{};
    if (fs::is_symlink(st)) return ImageNode{ImageNode::Type::kSymlink, fs::read_symlink(path)};
    if (fs::is_directory(st)) return ImageNode{ImageNode::Type::kDirectory, ""};
    if (fs::is_regular_file(st)) return ImageNode{ImageNode::Type::kRegular, ""};
    return ImageNode{ImageNode::Type::kOther, ""};
  };
}

TEST(ElfClosureTest, HostProgramsMatchLdd) {
  namespace fs = std::filesystem;
  auto read_file = [](const std::string& path) -> Result<std::string> {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Fail(ENOENT, path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  };
  auto list_dir = [](const std::string& dir) -> Result<std::vector<std::string>> {
    std::error_code ec;
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir, ec)) names.push_back(e.path().filename());
    if (ec) return Fail(ENOENT, dir);
    return names;
  };
  auto conf = ParseLdSoConf(read_file, list_dir);
  ASSERT_TRUE(conf.has_value()) << conf.error().message();
  LibrarySearch search{.lstat = HostLstat(), .conf_dirs = *conf};
  auto open = [&](const std::string& path) -> Result<ElfFile> {
    auto data = std::make_shared<std::string>();
    HOIST_ASSIGN_OR_RETURN(*data, read_file(path));
    return ElfFile{data->size(), [data](uint64_t off, uint64_t len) -> Result<std::string> {
                     return data->substr(off, len);
                   }};
  };
  int checked = 0;
  for (const char* program :
       {"/bin/ls", "/usr/bin/python3", "/usr/bin/readelf", "/usr/bin/cmake", "/usr/bin/curl"}) {
    if (!fs::exists(program)) continue;
    SCOPED_TRACE(program);
    std::set<std::string> want = LddPaths(program);
    if (want.empty()) continue;
    auto all = CollectElfClosure(program, open, search);
    ASSERT_TRUE(all.has_value()) << all.error().message();
    EXPECT_EQ(std::set<std::string>(all->begin(), all->end()), want);
    ++checked;
  }
  EXPECT_GE(checked, 2);
}

}  // namespace
}  // namespace hoist
