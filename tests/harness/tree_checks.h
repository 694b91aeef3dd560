// gtest checks that a mounted tree shows exactly an unpacked one (umoci unpack, the reference):
// every entry by the shared tree walk (tree_walk.h), and random byte ranges of every regular file
// read through the mount with pread. Header-only: only test binaries (which link gtest) use it.
//
//   harness::ExpectTreeAndRanges(work + "/bundle/rootfs", mountpoint, {.per_file = 3,
//                                                                      .min_files = 300});
//
// The ranges come from a fixed seed, so a failure names the same path and offset every run.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "base/status.h"
#include "tests/harness/tree_walk.h"

namespace hoist::harness {

// `len` bytes of `path` from `offset` (fewer at the end of the file).
inline Result<std::string> PRead(const std::string& path, uint64_t offset, size_t len) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(ErrnoError("open " + path));
  std::string out(len, '\0');
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd, out.data() + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      Error e = ErrnoError("pread " + path);
      ::close(fd);
      return Fail(e);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(done);
  return out;
}

struct RangeChecks {
  int per_file = 0;   // random ranges read of each non-empty regular file (0: none)
  int min_files = 0;  // with per_file: more files than this must have been checked
};

// The tree under `got_root` equals the one under `want_root` (the first 20 differences shown),
// then `ranges` as above.
inline void ExpectTreeAndRanges(const std::string& want_root, const std::string& got_root,
                                RangeChecks ranges = {}) {
  auto want = WalkTree(want_root);
  ASSERT_TRUE(want.has_value()) << want.error().message();
  auto got = WalkTree(got_root);
  ASSERT_TRUE(got.has_value()) << got.error().message();
  std::vector<std::string> diffs = CompareTrees(*want, *got);
  std::string shown;
  for (size_t i = 0; i < diffs.size() && i < 20; ++i) shown += diffs[i] + "\n";
  EXPECT_TRUE(diffs.empty()) << diffs.size() << " differences:\n" << shown;
  if (ranges.per_file == 0) return;
  std::mt19937_64 rng(17);
  int files = 0;
  for (const auto& [path, node] : *want) {
    if (node.type != 'f' || node.size == 0) continue;
    auto truth = ReadFile(want_root + "/" + path);
    ASSERT_TRUE(truth.has_value());
    for (int k = 0; k < ranges.per_file; ++k) {
      const uint64_t off = rng() % node.size;
      const size_t len = static_cast<size_t>(1 + rng() % (node.size - off));
      auto r = PRead(got_root + "/" + path, off, len);
      ASSERT_TRUE(r.has_value()) << path << ": " << r.error().message();
      ASSERT_EQ(*r, truth->substr(off, len)) << path << " at " << off;
    }
    ++files;
  }
  EXPECT_GT(files, ranges.min_files);
}

}  // namespace hoist::harness
