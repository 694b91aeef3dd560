// ParseElfDeps: real ELF files of the host checked against readelf, hand-built ELF32/ELF64
// little- and big-endian files with exact results, and damaged or hostile files that must fail
// quickly (EBADMSG, ENOEXEC) with bounded reads, never outside the file.
#include "index/elf_deps.h"

#include <elf.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/spawn.h"
#include "tests/index/elf_test_util.h"

namespace hoist {
namespace {

using testing::BuildElf;
using testing::CountingReader;
using testing::ElfParts;
using testing::ElfSpec;
using testing::ElfWriter;

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Result<ElfDeps> Parse(CountingReader& r, const ElfLimits& limits = {}) {
  return ParseElfDeps(r.Reader(), r.data.size(), limits);
}

// ---- Real files against readelf.

struct ReadelfView {
  std::string interp, soname;
  std::vector<std::string> needed, rpath, runpath;
  bool dynamic = false;
};

std::string Readelf(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"readelf", "-W"};
  argv.insert(argv.end(), args.begin(), args.end());
  SpawnOptions spawn{
      .search_path = true, .stdout_to = Stdio::Capture(), .stderr_to = Stdio::Null()};
  auto r = RunAndCapture(argv, spawn);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message());
  return r ? r->stdout_text : "";
}

// The value after `marker` on one line, without its brackets: "marker: [value]" (readelf -d)
// or "[... marker: value]" (readelf -l).
std::string Bracketed(const std::string& line, const std::string& marker) {
  std::string v = line.substr(line.find(marker) + marker.size());
  v.erase(0, v.find_first_not_of(' '));
  if (!v.empty() && v.front() == '[') v.erase(0, 1);
  if (!v.empty() && v.back() == ']') v.pop_back();
  return v;
}

std::vector<std::string> SplitColons(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, ':')) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

ReadelfView ReadelfOf(const std::string& path) {
  ReadelfView v;
  std::istringstream phdrs(Readelf({"-l", path}));
  for (std::string line; std::getline(phdrs, line);) {
    if (line.find("Requesting program interpreter:") != std::string::npos) {
      v.interp = Bracketed(line, "interpreter:");
    }
  }
  std::istringstream dyn(Readelf({"-d", path}));
  for (std::string line; std::getline(dyn, line);) {
    if (line.find("Dynamic section at offset") != std::string::npos) v.dynamic = true;
    if (line.find("(NEEDED)") != std::string::npos) {
      v.needed.push_back(Bracketed(line, "Shared library:"));
    } else if (line.find("(SONAME)") != std::string::npos) {
      v.soname = Bracketed(line, "Library soname:");
    } else if (line.find("(RPATH)") != std::string::npos) {
      v.rpath = SplitColons(Bracketed(line, "Library rpath:"));
    } else if (line.find("(RUNPATH)") != std::string::npos) {
      v.runpath = SplitColons(Bracketed(line, "Library runpath:"));
    }
  }
  return v;
}

// Host ELF files: a few named programs and libraries, and the first shared objects of the
// multiarch library directory, each real path once.
std::vector<std::string> HostElfFiles() {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  auto add = [&](const fs::path& p) {
    std::error_code ec;
    fs::path real = fs::canonical(p, ec);
    if (ec || !fs::is_regular_file(real, ec)) return;
    if (std::find(out.begin(), out.end(), real.string()) == out.end()) out.push_back(real);
  };
  for (const char* p : {"/bin/ls", "/usr/bin/python3", "/usr/bin/readelf", "/usr/bin/cmake",
                        "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2",
                        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"}) {
    add(p);
  }
  std::vector<fs::path> libs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/usr/lib/x86_64-linux-gnu", ec)) {
    if (e.path().filename().string().find(".so") != std::string::npos) libs.push_back(e.path());
  }
  std::sort(libs.begin(), libs.end());
  for (size_t i = 0; i < libs.size() && i < 40; ++i) add(libs[i]);
  return out;
}

TEST(ElfDepsTest, HostFilesMatchReadelf) {
  std::vector<std::string> files = HostElfFiles();
  ASSERT_GE(files.size(), 3u) << "no ELF files on this host?";
  int checked = 0;
  for (const std::string& path : files) {
    CountingReader r{ReadWholeFile(path)};
    if (r.data.size() < 4 || r.data.compare(0, 4,
                                            "\x7f"
                                            "ELF") != 0)
      continue;  // linker script
    SCOPED_TRACE(path);
    auto deps = Parse(r);
    ASSERT_TRUE(deps.has_value()) << deps.error().message();
    ReadelfView want = ReadelfOf(path);
    EXPECT_EQ(deps->interp, want.interp);
    EXPECT_EQ(deps->needed, want.needed);
    EXPECT_EQ(deps->soname, want.soname);
    EXPECT_EQ(deps->rpath, want.rpath);
    EXPECT_EQ(deps->runpath, want.runpath);
    EXPECT_EQ(deps->elf_class, 64);
    EXPECT_EQ(deps->machine, EM_X86_64);
    EXPECT_FALSE(r.out_of_range);
    // Header, program headers, interpreter, dynamic entries, strings: a handful of small reads.
    EXPECT_LE(r.reads, 8);
    EXPECT_LE(r.bytes, uint64_t{64} << 10);
    ++checked;
  }
  EXPECT_GE(checked, 3);
}

TEST(ElfDepsTest, LsNeedsLibcThroughItsInterpreter) {
  CountingReader r{ReadWholeFile("/bin/ls")};
  auto deps = Parse(r);
  ASSERT_TRUE(deps.has_value()) << deps.error().message();
  EXPECT_EQ(deps->interp, "/lib64/ld-linux-x86-64.so.2");
  EXPECT_NE(std::find(deps->needed.begin(), deps->needed.end(), "libc.so.6"), deps->needed.end());
  EXPECT_EQ(deps->type, ET_DYN);
}

// ---- Hand-built files: exact results in every class and byte order.

class ElfLayoutTest : public ::testing::TestWithParam<std::tuple<int, bool, uint16_t>> {};

TEST_P(ElfLayoutTest, ParsesEveryField) {
  auto [cls, big, type] = GetParam();
  ElfSpec spec{.elf_class = cls,
               .big_endian = big,
               .type = type,
               .machine = static_cast<uint16_t>(big ? EM_PPC64 : EM_386),
               .interp = "/lib/ld-linux.so.2",
               .needed = {"libfoo.so.1", "libbar.so", "libc.so.6"},
               .soname = "libself.so.3",
               .rpath = "/opt/r1::$ORIGIN/../r2",
               .runpath = "/opt/run"};
  CountingReader r{BuildElf(spec).bytes};
  auto deps = Parse(r);
  ASSERT_TRUE(deps.has_value()) << deps.error().message();
  EXPECT_EQ(deps->elf_class, cls);
  EXPECT_EQ(deps->big_endian, big);
  EXPECT_EQ(deps->type, type);
  EXPECT_EQ(deps->machine, spec.machine);
  EXPECT_EQ(deps->interp, "/lib/ld-linux.so.2");
  EXPECT_EQ(deps->needed, (std::vector<std::string>{"libfoo.so.1", "libbar.so", "libc.so.6"}));
  EXPECT_EQ(deps->soname, "libself.so.3");
  EXPECT_EQ(deps->rpath, (std::vector<std::string>{"/opt/r1", "$ORIGIN/../r2"}));
  EXPECT_EQ(deps->runpath, (std::vector<std::string>{"/opt/run"}));
  EXPECT_TRUE(deps->has_runpath);
  // Header, program headers, interpreter, dynamic entries, one span of strings.
  EXPECT_EQ(r.reads, 5);
  EXPECT_FALSE(r.out_of_range);
}

INSTANTIATE_TEST_SUITE_P(AllLayouts, ElfLayoutTest,
                         ::testing::Combine(::testing::Values(32, 64), ::testing::Bool(),
                                            ::testing::Values(uint16_t{ET_EXEC},
                                                              uint16_t{ET_DYN})));

TEST(ElfDepsTest, StaticProgramHasNoDependencies) {
  CountingReader r{BuildElf({.type = ET_EXEC, .no_dynamic = true}).bytes};
  auto deps = Parse(r);
  ASSERT_TRUE(deps.has_value()) << deps.error().message();
  EXPECT_TRUE(deps->interp.empty());
  EXPECT_TRUE(deps->needed.empty());
  EXPECT_FALSE(deps->has_runpath);
  EXPECT_EQ(r.reads, 2);  // header, program headers
}

TEST(ElfDepsTest, NotElfIsEnoexecFromOneRead) {
  for (std::string data : {std::string("#!/bin/sh\necho hi\n"),
                           std::string("\x7f"
                                       "EL"),
                           std::string(""), std::string(100000, 'x')}) {
    CountingReader r{data};
    auto deps = Parse(r);
    ASSERT_FALSE(deps.has_value());
    EXPECT_EQ(deps.error().code(), ENOEXEC) << deps.error().message();
    EXPECT_LE(r.reads, 1);
    EXPECT_LE(r.bytes, 64u);
  }
}

TEST(ElfDepsTest, RelocatableObjectIsEnoexec) {
  CountingReader r{BuildElf({.type = ET_REL}).bytes};
  auto deps = Parse(r);
  ASSERT_FALSE(deps.has_value());
  EXPECT_EQ(deps.error().code(), ENOEXEC);
}

// ---- Damaged and hostile files.

void ExpectBadMessage(CountingReader& r, const ElfLimits& limits = {}) {
  auto deps = Parse(r, limits);
  ASSERT_FALSE(deps.has_value());
  EXPECT_EQ(deps.error().code(), EBADMSG) << deps.error().message();
  EXPECT_EQ(deps.error().message().find('\n'), std::string::npos);
  EXPECT_FALSE(r.out_of_range);
  EXPECT_LE(r.bytes, limits.max_read_bytes);
}

TEST(ElfDepsTest, EveryTruncationFailsCleanly) {
  for (int cls : {32, 64}) {
    ElfParts p = BuildElf({.elf_class = cls, .interp = "/ld.so", .needed = {"liba.so"}});
    for (size_t n = 0; n < p.bytes.size(); ++n) {
      CountingReader r{p.bytes.substr(0, n)};
      auto deps = Parse(r);
      ASSERT_FALSE(deps.has_value()) << n;
      EXPECT_TRUE(deps.error().code() == EBADMSG || deps.error().code() == ENOEXEC) << n;
      EXPECT_FALSE(r.out_of_range) << n;
    }
  }
}

TEST(ElfDepsTest, HostileHeaderFields) {
  ElfParts p = BuildElf({.needed = {"liba.so"}});
  ElfWriter w(64, false);
  auto damaged = [&](uint64_t pos, uint64_t value, int bytes) {
    std::string b = p.bytes;
    w.Put(b, pos, value, bytes);
    return CountingReader{b};
  };
  {
    SCOPED_TRACE("phoff past the end");
    auto r = damaged(32, ~uint64_t{0} - 8, 8);
    ExpectBadMessage(r);
  }
  {
    SCOPED_TRACE("huge program header count");
    auto r = damaged(56, 0xffff, 2);
    ExpectBadMessage(r);
    EXPECT_LE(r.reads, 1);
  }
  {
    SCOPED_TRACE("wrong program header size");
    auto r = damaged(54, 40, 2);
    ExpectBadMessage(r);
  }
  {
    SCOPED_TRACE("unknown class");
    auto r = damaged(EI_CLASS, 7, 1);
    ExpectBadMessage(r);
  }
  {
    SCOPED_TRACE("PT_LOAD size overflows");
    auto r = damaged(p.phoff + 32, ~uint64_t{0}, 8);
    ExpectBadMessage(r);
  }
  {
    SCOPED_TRACE("PT_DYNAMIC offset past the end");
    auto r = damaged(p.phoff + 56 + 8, p.bytes.size() + 1, 8);
    ExpectBadMessage(r);
  }
}

// The dynamic entries of a built file, rewritten: (tag, value) pairs ending where given.
ElfParts WithDynamic(const std::vector<std::pair<uint64_t, uint64_t>>& entries,
                     uint64_t dynamic_filesz = 0) {
  ElfParts p = BuildElf({.needed = {"liba.so"}});
  ElfWriter w(64, false);
  p.bytes.resize(p.dynamic_off);
  for (const auto& [tag, val] : entries) {
    uint64_t at = p.bytes.size();
    w.Put(p.bytes, at, tag, 8);
    w.Put(p.bytes, at + 8, val, 8);
  }
  uint64_t size = dynamic_filesz ? dynamic_filesz : p.bytes.size() - p.dynamic_off;
  w.Put(p.bytes, p.phoff + 32, p.bytes.size(), 8);  // PT_LOAD filesz
  w.Put(p.bytes, p.phoff + 56 + 32, size, 8);       // PT_DYNAMIC filesz
  return p;
}

TEST(ElfDepsTest, HostileDynamicSections) {
  ElfParts base = BuildElf({.needed = {"liba.so"}});
  uint64_t strtab = base.strtab_off;
  {
    SCOPED_TRACE("more DT_NEEDED than allowed");
    std::vector<std::pair<uint64_t, uint64_t>> e(300, {DT_NEEDED, 1});
    e.push_back({DT_STRTAB, strtab});
    e.push_back({DT_NULL, 0});
    CountingReader r{WithDynamic(e).bytes};
    ExpectBadMessage(r);
  }
  {
    SCOPED_TRACE("no DT_NULL in a huge dynamic section");
    std::vector<std::pair<uint64_t, uint64_t>> e(5000, {DT_DEBUG, 0});
    CountingReader r{WithDynamic(e).bytes};
    ExpectBadMessage(r);
    EXPECT_LE(r.bytes, 1024 * 16 + 4096u);
  }
  {
    SCOPED_TRACE("DT_STRTAB outside every PT_LOAD");
    CountingReader r{WithDynamic({{DT_NEEDED, 1}, {DT_STRTAB, 1u << 30}, {DT_NULL, 0}}).bytes};
    ExpectBadMessage(r);
  }
  {
    SCOPED_TRACE("DT_NEEDED without DT_STRTAB");
    CountingReader r{WithDynamic({{DT_NEEDED, 1}, {DT_NULL, 0}}).bytes};
    ExpectBadMessage(r);
  }
  {
    SCOPED_TRACE("string offset past DT_STRSZ");
    CountingReader r{
        WithDynamic({{DT_NEEDED, 50}, {DT_STRTAB, strtab}, {DT_STRSZ, 10}, {DT_NULL, 0}}).bytes};
    ExpectBadMessage(r);
  }
  {
    SCOPED_TRACE("string offset overflowing");
    CountingReader r{
        WithDynamic({{DT_NEEDED, ~uint64_t{0}}, {DT_STRTAB, strtab}, {DT_NULL, 0}}).bytes};
    ExpectBadMessage(r);
  }
  {
    SCOPED_TRACE("a string with no NUL before the table's end");
    // The string table is cut right inside "liba.so" by DT_STRSZ.
    CountingReader r{
        WithDynamic({{DT_NEEDED, 1}, {DT_STRTAB, strtab}, {DT_STRSZ, 4}, {DT_NULL, 0}}).bytes};
    ExpectBadMessage(r);
  }
  {
    SCOPED_TRACE("a string past the length limit");
    ElfParts p = BuildElf({.needed = {std::string(10000, 'a')}});
    CountingReader r{p.bytes};
    ExpectBadMessage(r);
    EXPECT_LE(r.bytes, 4096u + 4096u);
  }
  {
    SCOPED_TRACE("PT_DYNAMIC of zero entries");
    CountingReader r{WithDynamic({{DT_NULL, 0}}, 4).bytes};
    ExpectBadMessage(r);
  }
}

TEST(ElfDepsTest, InterpreterWithoutNul) {
  ElfParts p = BuildElf({.interp = "/lib/ld.so", .needed = {"liba.so"}});
  p.bytes[p.interp_off + 10] = 'x';  // the NUL
  CountingReader r{p.bytes};
  ExpectBadMessage(r);
}

TEST(ElfDepsTest, ManyNeededNamesShareFewReads) {
  ElfSpec spec;
  for (int i = 0; i < 200; ++i) spec.needed.push_back("libn" + std::to_string(i) + ".so");
  CountingReader r{BuildElf(spec).bytes};
  auto deps = Parse(r);
  ASSERT_TRUE(deps.has_value()) << deps.error().message();
  EXPECT_EQ(deps->needed.size(), 200u);
  EXPECT_EQ(deps->needed[199], "libn199.so");
  EXPECT_LE(r.reads, 6);
}

TEST(ElfDepsTest, ReadBudgetIsEnforced) {
  ElfSpec spec;
  for (int i = 0; i < 200; ++i) spec.needed.push_back("libn" + std::to_string(i) + ".so");
  CountingReader r{BuildElf(spec).bytes};
  ElfLimits limits{.max_read_bytes = 1000};
  ExpectBadMessage(r, limits);
  EXPECT_LE(r.bytes, 1000u);
}

TEST(ElfDepsTest, ShortReadIsBadMessageAndReaderErrorsPassThrough) {
  std::string bytes = BuildElf({.needed = {"liba.so"}}).bytes;
  ElfReader short_reader = [&](uint64_t off, uint64_t len) -> Result<std::string> {
    return bytes.substr(off, len > 1 ? len - 1 : len);
  };
  auto deps = ParseElfDeps(short_reader, bytes.size());
  ASSERT_FALSE(deps.has_value());
  EXPECT_EQ(deps.error().code(), EBADMSG);
  ElfReader failing = [](uint64_t, uint64_t) -> Result<std::string> {
    return Fail(ETIMEDOUT, "fetch timed out");
  };
  deps = ParseElfDeps(failing, bytes.size());
  ASSERT_FALSE(deps.has_value());
  EXPECT_EQ(deps.error().code(), ETIMEDOUT);
}

}  // namespace
}  // namespace hoist
