// Access traces (fusefs/access_trace.h) and the recorder (fusefs/trace_recorder.h): the exact
// bytes SerializeAccessTrace writes, round trips, and the exact one-line error for each kind of
// bad input; the recorder's first-open order, de-duplication, seeding and atomic write.
#include "fusefs/access_trace.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

#include "base/file_util.h"
#include "fusefs/trace_recorder.h"
#include "index/layer_index.h"
#include "index/tar_path.h"

namespace hoist {
namespace {

const std::string kA = "sha256:" + std::string(64, 'a');
const std::string kB = "sha256:" + std::string(64, 'b');
const std::string kI = "sha256:" + std::string(64, '1');

Digest D(const std::string& s) { return *Digest::Parse(s); }

TEST(AccessTraceTest, SerializesExactly) {
  AccessTrace t{D(kI), {{D(kA), "bin/busybox"}, {D(kB), "etc/a \"q\"\\"}}};
  EXPECT_EQ(SerializeAccessTrace(t), "{\"schemaVersion\":1,\"image\":\"" + kI +
                                         "\",\"files\":[{\"layer\":\"" + kA +
                                         "\",\"path\":\"bin/busybox\"},{\"layer\":\"" + kB +
                                         "\",\"path\":\"etc/a \\\"q\\\"\\\\\"}]}");
  EXPECT_EQ(SerializeAccessTrace(AccessTrace{D(kI), {}}),
            "{\"schemaVersion\":1,\"image\":\"" + kI + "\",\"files\":[]}");
}

TEST(AccessTraceTest, RoundTrips) {
  AccessTrace t{D(kI),
                {{D(kA), "usr/lib/x.so"},
                 {D(kA), "caf\xc3\xa9"},
                 {D(kB), "usr/lib/x.so"},
                 {D(kB), "raw\xff"}}};
  auto back = ParseAccessTrace(SerializeAccessTrace(t));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->image, t.image);
  ASSERT_EQ(back->files.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(back->files[i].layer, t.files[i].layer);
    EXPECT_EQ(back->files[i].path, t.files[i].path);
  }
  // Whitespace and unknown keys are fine.
  auto spaced = ParseAccessTrace(" {\"x\":[1,{}], \"files\" : [ ], \"image\":\"" + kI +
                                 "\", \"schemaVersion\" : 1 }\n");
  ASSERT_TRUE(spaced.has_value()) << spaced.error().message();
  EXPECT_TRUE(spaced->files.empty());
}

std::string Error(std::string_view json, size_t max_files = 100000) {
  auto r = ParseAccessTrace(json, max_files);
  if (r) return "parsed";
  return std::to_string(r.error().code()) + " " + r.error().message();
}

std::string Files(const std::string& files) {
  return "{\"schemaVersion\":1,\"image\":\"" + kI + "\",\"files\":" + files + "}";
}

TEST(AccessTraceTest, BadInputErrorsExactly) {
  const std::string bad = std::to_string(EBADMSG) + " access trace: ";
  EXPECT_EQ(Error(""), bad + "not valid JSON at offset 0: The document is empty.");
  EXPECT_EQ(Error("{\"a\":1} x"),
            bad +
                "not valid JSON at offset 8: The document root must not be followed by other "
                "values.");
  EXPECT_EQ(Error("[]"), bad + "not a JSON object");
  EXPECT_EQ(Error("{}"), bad + "schemaVersion is not 1");
  EXPECT_EQ(Error("{\"schemaVersion\":2}"), bad + "schemaVersion is not 1");
  EXPECT_EQ(Error("{\"schemaVersion\":\"1\"}"), bad + "schemaVersion is not 1");
  EXPECT_EQ(Error("{\"schemaVersion\":1}"), bad + "the trace has no image");
  EXPECT_EQ(Error("{\"schemaVersion\":1,\"image\":7}"), bad + "the trace.image is not a string");
  const std::string image_error = Error("{\"schemaVersion\":1,\"image\":\"sha256:12\"}");
  EXPECT_EQ(image_error.rfind(bad + "the trace.image: ", 0), 0u) << image_error;
  EXPECT_EQ(Error("{\"schemaVersion\":1,\"image\":\"" + kI + "\"}"),
            bad + "the trace has no files");
  EXPECT_EQ(Error(Files("{}")), bad + "files is not an array");
  EXPECT_EQ(Error(Files("[1]")), bad + "files[0] is not an object");
  EXPECT_EQ(Error(Files("[{\"path\":\"a\"}]")), bad + "files[0] has no layer");
  EXPECT_EQ(Error(Files("[{\"layer\":\"" + kA + "\"}]")), bad + "files[0] has no path");
  EXPECT_EQ(Error(Files("[{\"layer\":\"" + kA + "\",\"path\":1}]")),
            bad + "files[0].path is not a string");
  for (const char* path : {"", "/a", "a/", "./a", "a/../b", "..", "a//b", "a\\u0000b"}) {
    std::string quoted = path;
    if (quoted == "a\\u0000b")
      quoted = QuoteName(std::string("a\0b", 3));
    else
      quoted = QuoteName(path);
    EXPECT_EQ(Error(Files("[{\"layer\":\"" + kA + "\",\"path\":\"ok\"},{\"layer\":\"" + kA +
                          "\",\"path\":\"" + path + "\"}]")),
              bad + "files[1].path " + quoted + " is not a clean path inside a layer")
        << path;
  }
  EXPECT_EQ(Error(Files("[{\"layer\":\"" + kA + "\",\"path\":\"a\"},{\"layer\":\"" + kB +
                        "\",\"path\":\"a\"},{\"layer\":\"" + kA + "\",\"path\":\"a\"}]")),
            bad + "files[2] repeats an earlier file (" + QuoteName("a") + ")");
  EXPECT_EQ(Error(Files("[{\"layer\":\"" + kA + "\",\"path\":\"a\"},{\"layer\":\"" + kA +
                        "\",\"path\":\"b\"}]"),
                  1),
            std::to_string(EFBIG) + " access trace: more than 1 files");
  // Deep nesting is an error, not a stack overflow.
  EXPECT_EQ(Error(Files(std::string(1 << 20, '[') + std::string(1 << 20, ']'))),
            bad + "files[0] is not an object");
}

TEST(TraceRecorderTest, FirstOpenOrderEachOnceSeedAndWrite) {
  LayerIndex lower, upper;
  lower.layer_digest = D(kA);
  upper.layer_digest = D(kB);
  Entry a, b, c;
  a.path = "a";
  b.path = "b";
  c.path = "a";
  TraceRecorder rec(D(kI));
  rec.OnOpen(FileRef{1, &upper, &b});
  rec.OnOpen(FileRef{0, &lower, &a});
  rec.OnOpen(FileRef{1, &upper, &b});
  rec.OnOpen(FileRef{1, &upper, &c});
  AccessTrace want{D(kI), {{D(kB), "b"}, {D(kA), "a"}, {D(kB), "a"}}};
  EXPECT_EQ(SerializeAccessTrace(rec.Snapshot()), SerializeAccessTrace(want));

  // Seeding puts the earlier daemon's files first.
  TraceRecorder next(D(kI));
  next.OnOpen(FileRef{0, &lower, &a});
  ASSERT_TRUE(next.Seed(AccessTrace{D(kI), {{D(kB), "z"}, {D(kA), "a"}}}).has_value());
  EXPECT_EQ(SerializeAccessTrace(next.Snapshot()),
            SerializeAccessTrace(AccessTrace{D(kI), {{D(kB), "z"}, {D(kA), "a"}}}));
  auto other = next.Seed(AccessTrace{D(kA), {}});
  ASSERT_FALSE(other.has_value());
  EXPECT_EQ(other.error().message(), "the trace is of image " + kA + ", not " + kI);

  char dir[] = "/tmp/hoist-trace-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string file = std::string(dir) + "/t.json";
  ASSERT_TRUE(rec.WriteTo(file).has_value());
  EXPECT_EQ(ReadFile(file).value_or("?"), SerializeAccessTrace(want));
  (void)RemoveTree(dir);
}

}  // namespace
}  // namespace hoist
