// gtest checks of the `hoist` binary's output that many integration tests make alike. Header-only:
// only test binaries (which link gtest) use it.
//
//   ExpectOneLineError(RunHoist({"tag", "x"}), "tag", "needs a tag");
//   rapidjson::Document d = ParseJson(RunHoist({"images", "--json"}).stdout_text);
#pragma once

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>

#include "tests/harness/subprocess.h"

namespace hoist::harness {

// A failed verb's report: exit 1, nothing on stdout, exactly one line on stderr that starts with
// "hoist <verb>: " and contains `needle`.
inline void ExpectOneLineError(const CommandResult& r, const std::string& verb,
                               const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "");
  ASSERT_FALSE(r.stderr_text.empty());
  EXPECT_EQ(r.stderr_text.find('\n'), r.stderr_text.size() - 1) << r.stderr_text;
  EXPECT_EQ(r.stderr_text.rfind("hoist " + verb + ": ", 0), 0u) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find(needle), std::string::npos) << r.stderr_text;
}

// `text` parsed as JSON; a parse error fails the test (non-fatally) and shows the text.
inline rapidjson::Document ParseJson(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  EXPECT_FALSE(d.HasParseError()) << text;
  return d;
}

}  // namespace hoist::harness
