// Learned prefetch (issue 16), end to end with a REAL registry (TestRegistry), REAL FUSE mounts
// by the real hoistfs, the REAL runc, and the real hoist binary. Runs as root; a missing runc,
// skopeo or /dev/fuse makes the tests FAIL, never skip.
//
//   RecorderWritesExactTrace   hoistfs -o trace=F; `cat b l a b` on the host (l -> c); after
//                              unmounting, F holds exactly b, c, a with the pushed digests
//   OptimizeMarksTracedFilesFirst
//                              hoist optimize SRC oci:DST --trace-out F (the image's own
//                              entrypoint): F names busybox and etc/data (not etc/unused), and
//                              DST's TOC marks exactly the traced files, which come first
//   AttachPublishesTheTrace    hoist optimize --attach: ListReferrers finds one artifact of
//                              the trace type on the traced manifest, and FetchReferrer returns
//                              the --trace-out bytes exactly
#include <sys/mount.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "base/file_util.h"
#include "fetcher/referrers.h"
#include "fetcher/registry.h"
#include "fusefs/access_trace.h"
#include "index/zstd_chunked.h"
#include "tests/harness/hoistfs_mounts.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/integration/layout_image.h"

#ifndef HOIST_BINARY
#error "HOIST_BINARY must name the hoist executable"
#endif
#ifndef HOISTFS_BINARY
#error "HOISTFS_BINARY must name the hoistfs executable"
#endif

namespace hoist {
namespace {

using harness::FileSpec;
using harness::ImageSpec;
using harness::LayerSpec;

std::string Describe(const harness::CommandResult& r) {
  return r.Describe() + "\nstdout: " + r.stdout_text + "\nstderr: " + r.stderr_text;
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

Result<LayerIndex> Toc(const testutil::LayoutImage& img, const Descriptor& layer) {
  HOIST_ASSIGN_OR_RETURN(std::string blob, ReadFile(img.BlobPath(layer.digest)));
  HOIST_ASSIGN_OR_RETURN(ZstdChunkedAnnotations ann,
                         ParseZstdChunkedAnnotations(layer.annotations));
  HOIST_ASSIGN_OR_RETURN(ZstdChunkedLayer loaded,
                         LoadZstdChunkedLayer(
                             [&](uint64_t off, uint64_t len) -> Result<std::string> {
                               if (off > blob.size() || len > blob.size() - off)
                                 return Fail(EIO, "out of range");
                               return blob.substr(off, len);
                             },
                             blob.size(), layer.digest, ann));
  return loaded.index;
}

class TraceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto check = harness::RequirePrograms({"runc", "skopeo", "fusermount3"});
    if (!check) {
      setup_error_ = check.error().message();
      return;
    }
    if (auto s = Prepare(); !s) setup_error_ = s.error().message();
  }

  static Status Prepare() {
    char templ[] = "/tmp/hoist-trace-test-XXXXXX";
    if (::mkdtemp(templ) == nullptr) return Fail(ErrnoError("mkdtemp"));
    work_ = templ;
    HOIST_ASSIGN_OR_RETURN(registry_, harness::TestRegistry::Launch());
    const std::string layout = work_ + "/layout";
    // "files": a, b, c, l -> c, a directory.
    HOIST_ASSIGN_OR_RETURN(
        harness::BuiltImage files,
        harness::BuildOciImage(layout,
                               {LayerSpec({FileSpec::File("a", "A\n"), FileSpec::File("b", "B\n"),
                                           FileSpec::File("c", "C\n"), FileSpec::Symlink("l", "c"),
                                           FileSpec::Dir("d")})},
                               ImageSpec{.tag = "files"}));
    HOIST_RETURN_IF_ERROR(
        harness::PushOciLayout(files.OciRef(), registry_->DockerRef("tr", "files")));
    // "box": busybox, whose entrypoint reads etc/data through the sh and cat links.
    HOIST_ASSIGN_OR_RETURN(std::string busybox, ReadFile("/bin/busybox"));
    std::vector<FileSpec> box = {FileSpec::Dir("bin"),
                                 FileSpec::File("bin/busybox", busybox, 0755),
                                 FileSpec::Symlink("bin/sh", "busybox"),
                                 FileSpec::Symlink("bin/cat", "busybox"),
                                 FileSpec::File("etc/data", "data\n"),
                                 FileSpec::File("etc/unused", "unused\n"),
                                 FileSpec::Dir("tmp", 01777)};
    for (const char* dir : {"proc", "dev", "sys"}) box.push_back(FileSpec::Dir(dir));
    ImageSpec box_spec{.tag = "box"};
    box_spec.entrypoint = {"/bin/sh", "-c"};
    box_spec.cmd = {"cat /etc/data"};
    HOIST_ASSIGN_OR_RETURN(harness::BuiltImage built,
                           harness::BuildOciImage(layout, {LayerSpec(box)}, box_spec));
    HOIST_RETURN_IF_ERROR(
        harness::PushOciLayout(built.OciRef(), registry_->DockerRef("tr", "box")));
    return Ok();
  }

  static void TearDownTestSuite() {
    if (!work_.empty()) (void)RemoveTree(work_);
    registry_.reset();
  }

  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }
  void TearDown() override { mounts_.UnmountAll(); }

  static Result<ResolvedImage> Resolve(const std::string& image) {
    HOIST_ASSIGN_OR_RETURN(auto client, RegistryClient::CreateDefault(RegistryOptions{}));
    HOIST_ASSIGN_OR_RETURN(Reference ref, Reference::Parse(image));
    return client->Resolve(ref, std::nullopt, ConfigFetch::kSkip);
  }

  harness::CommandResult Hoist(std::vector<std::string> args) {
    args.insert(args.begin(), HOIST_BINARY);
    harness::CommandOptions options;
    options.timeout = std::chrono::seconds(300);
    return harness::RunForResult(args, options);
  }

  static inline std::string setup_error_;
  static inline std::string work_;
  static inline std::unique_ptr<harness::TestRegistry> registry_;
  harness::HoistfsMounts mounts_{HOISTFS_BINARY};
};

TEST_F(TraceTest, RecorderWritesExactTrace) {
  const std::string image = registry_->ImageRef("tr", "files");
  auto resolved = Resolve(image);
  ASSERT_TRUE(resolved.has_value()) << resolved.error().message();
  ASSERT_EQ(resolved->manifest.layers.size(), 1u);
  const std::string layer = resolved->manifest.layers[0].digest.str();
  const std::string mp = work_ + "/mp";
  const std::string trace = work_ + "/files-trace.json";
  ASSERT_TRUE(MakeDirs(mp).has_value());
  auto m = mounts_.Mount(image, mp, work_ + "/cache", {"-o", "prefetch=none,trace=" + trace});
  ASSERT_TRUE(m.ok()) << Describe(m);
  auto cat = harness::RunForResult({"cat", mp + "/b", mp + "/l", mp + "/a", mp + "/b"});
  ASSERT_TRUE(cat.ok()) << Describe(cat);
  EXPECT_EQ(cat.stdout_text, "B\nC\nA\nB\n");
  EXPECT_FALSE(Exists(trace)) << "written before the mount ended";
  ASSERT_TRUE(mounts_.Unmount(mp).has_value());
  EXPECT_EQ(ReadFile(trace).value_or("<no trace>"),
            "{\"schemaVersion\":1,\"image\":\"" + resolved->manifest_bytes.digest.str() +
                "\",\"files\":[{\"layer\":\"" + layer + "\",\"path\":\"b\"},{\"layer\":\"" + layer +
                "\",\"path\":\"c\"},{\"layer\":\"" + layer + "\",\"path\":\"a\"}]}");
}

TEST_F(TraceTest, OptimizeMarksTracedFilesFirst) {
  const std::string trace_file = work_ + "/box-trace.json";
  const std::string out = work_ + "/optimized";
  auto r = Hoist({"optimize", "--cache", work_ + "/cache", "--timeout", "60", "--trace-out",
                  trace_file, registry_->ImageRef("tr", "box"), "oci:" + out + ":opt"});
  ASSERT_TRUE(r.ok()) << Describe(r);
  auto bytes = ReadFile(trace_file);
  ASSERT_TRUE(bytes.has_value()) << bytes.error().message();
  auto trace = ParseAccessTrace(*bytes);
  ASSERT_TRUE(trace.has_value()) << trace.error().message();
  std::vector<std::string> traced;
  for (const TracedFile& f : trace->files) traced.push_back(f.path);
  const std::set<std::string> traced_set(traced.begin(), traced.end());
  EXPECT_TRUE(traced_set.contains("bin/busybox")) << *bytes;
  EXPECT_TRUE(traced_set.contains("etc/data")) << *bytes;
  EXPECT_FALSE(traced_set.contains("etc/unused")) << *bytes;
  EXPECT_FALSE(traced_set.contains("bin/sh")) << "a link is never opened: " << *bytes;
  auto resolved = Resolve(registry_->ImageRef("tr", "box"));
  ASSERT_TRUE(resolved.has_value()) << resolved.error().message();
  EXPECT_EQ(trace->image, resolved->manifest_bytes.digest);

  auto img = testutil::ReadLayoutImage(out, "opt");
  ASSERT_TRUE(img.has_value()) << img.error().message();
  ASSERT_EQ(img->manifest.layers.size(), 1u);
  auto toc = Toc(*img, img->manifest.layers[0]);
  ASSERT_TRUE(toc.has_value()) << toc.error().message();
  std::set<std::string> marked;
  std::vector<std::string> regular;
  for (const Entry& e : toc->entries) {
    if (e.prefetch) marked.insert(e.path);
    if (e.type == EntryType::kRegular) regular.push_back(e.path);
  }
  EXPECT_EQ(marked, traced_set);
  ASSERT_GE(regular.size(), traced.size());
  EXPECT_EQ(std::vector<std::string>(regular.begin(), regular.begin() + traced.size()), traced);
}

TEST_F(TraceTest, AttachPublishesTheTrace) {
  const std::string image = registry_->ImageRef("tr", "box");
  const std::string trace_file = work_ + "/attach-trace.json";
  auto r = Hoist({"optimize", "-q", "--cache", work_ + "/cache", "--timeout", "60", "--trace-out",
                  trace_file, "--attach", image, "--", "/bin/cat", "/etc/data"});
  ASSERT_TRUE(r.ok()) << Describe(r);
  auto bytes = ReadFile(trace_file);
  ASSERT_TRUE(bytes.has_value()) << bytes.error().message();
  auto resolved = Resolve(image);
  ASSERT_TRUE(resolved.has_value()) << resolved.error().message();
  auto client = RegistryClient::CreateDefault(RegistryOptions{});
  ASSERT_TRUE(client.has_value());
  auto ref = Reference::Parse(image);
  ASSERT_TRUE(ref.has_value());
  auto listed =
      ListReferrers(**client, *ref, resolved->manifest_bytes.digest, kAccessTraceArtifactType);
  ASSERT_TRUE(listed.has_value()) << listed.error().message();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(r.stdout_text, (*listed)[0].digest.str() + "\n");
  auto fetched = FetchReferrer(**client, *ref, resolved->manifest_bytes.digest, (*listed)[0],
                               kAccessTraceArtifactType, kAccessTraceMediaType, 1 << 20);
  ASSERT_TRUE(fetched.has_value()) << fetched.error().message();
  EXPECT_EQ(fetched->data, *bytes);
  auto trace = ParseAccessTrace(fetched->data);
  ASSERT_TRUE(trace.has_value()) << trace.error().message();
  std::vector<std::string> paths;
  for (const TracedFile& f : trace->files) paths.push_back(f.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"bin/busybox", "etc/data"}));
}

}  // namespace
}  // namespace hoist
