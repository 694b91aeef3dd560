// Helpers for the index/ format tests: temp dirs, running real tools, reading files.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <string>

#include "base/file_util.h"

namespace hoist::testing {

inline std::string MakeTempDir() {
  char tmpl[] = "/tmp/hoist-fmt-XXXXXX";
  char* d = mkdtemp(tmpl);
  EXPECT_NE(d, nullptr);
  return d ? std::string(d) : std::string();
}

// Runs `cmd` with /bin/sh; returns its exit status (0 = success).
inline int Sh(const std::string& cmd) {
  int rc = std::system(("set -e; " + cmd).c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

inline std::string Slurp(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return {};
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

inline bool HaveTool(const std::string& name) {
  return Sh("command -v " + name + " >/dev/null 2>&1") == 0;
}

}  // namespace hoist::testing
