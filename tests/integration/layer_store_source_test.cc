// hoist-snapshotter's real lazy source (tools/snapshotter/layer_store_source.h) through its C++
// API, against REAL parts: a registry on 127.0.0.1, an image converted by the real
// `hoist convert`, the layer store mounted for real (FUSE). Runs as root; FAILS, never skips,
// without /dev/fuse or the tools.
//
//   ReferencesPerChainId   a chain resolved twice holds one reference (one Forget removes the
//                          layer dir); two chains of one layer hold two; a chain already
//                          served answers its own layer's dir even when asked with another
//                          digest; Forget of an unknown chain changes nothing.
//   RefusalsAreOneLine     no image reference label, no digest label, a bad digest, a gzip
//                          layer (ENOTSUP "without a TOC"): exact errors, nothing added.
//   FirstPrepareLoadsTheOtherLayersIndexes
//                          a Prepare whose labels list every layer (stargz.layers) loads the
//                          other layers' indexes in the background without adding them; their
//                          own Prepare then reads nothing from the registry; no second load.
//   DeadMountIsDetachedAtStart
//                          a source started on the path of a layer store daemon killed with
//                          SIGKILL (its dead mount answers ENOTCONN) detaches it, mounts a new
//                          store on the same path and serves the same directory names.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "fetcher/reference.h"
#include "fetcher/registry.h"
#include "tests/harness/mountinfo.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/harness/wait.h"
#include "tools/snapshotter/layer_store_source.h"

#ifndef HOIST_BINARY
#error "HOIST_BINARY must name the hoist executable"
#endif
#ifndef HOISTFS_BINARY
#error "HOISTFS_BINARY must name the hoistfs executable"
#endif

namespace hoist {
namespace {

using harness::FileSpec;
using harness::LayerSpec;

class LayerStoreSourceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setup_error_ = new std::string();
    auto fail = [](const std::string& e) { *setup_error_ = e; };
    if (::geteuid() != 0) return fail("the layer store source tests must run as root");
    if (::access("/dev/fuse", R_OK | W_OK) != 0) return fail("/dev/fuse is not accessible");
    if (auto s = harness::RequirePrograms({"skopeo", "docker-registry", "tar"}); !s)
      return fail(s.error().message());
    char tmpl[] = "/tmp/hlss-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return fail("mkdtemp failed");
    work_ = new std::string(tmpl);
    auto reg = harness::TestRegistry::Launch();
    if (!reg) return fail(reg.error().message());
    registry_ = reg->release();
    auto image = harness::BuildOciImage(
        *work_ + "/layout",
        {LayerSpec({FileSpec::File("a/one", "one\n")}),
         LayerSpec({FileSpec::File("b/two", "two\n"), FileSpec::Whiteout("a/one")})},
        {.tag = "v1"});
    if (!image) return fail(image.error().message());
    gzip_ = new harness::BuiltImage(*image);
    if (auto s = harness::PushOciLayout(image->OciRef(), registry_->DockerRef("src/gz", "v1")); !s)
      return fail(s.error().message());
    auto conv =
        harness::RunForResult({HOIST_BINARY, "convert", "-q", registry_->DockerRef("src/gz", "v1"),
                               registry_->DockerRef("src/zstd", "v1")});
    if (!conv.ok()) return fail("hoist convert: " + conv.stderr_text);
    auto client = RegistryClient::CreateDefault();
    if (!client) return fail(client.error().message());
    auto resolved = (*client)->Resolve(*Reference::Parse(ZstdRef()));
    if (!resolved) return fail(resolved.error().message());
    layers_ = new std::vector<Digest>();
    for (const Descriptor& d : resolved->manifest.layers) layers_->push_back(d.digest);
    if (layers_->size() != 2) return fail("the converted image does not have 2 layers");
  }

  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
    if (work_ != nullptr) (void)RemoveTree(*work_);
    // A --gtest_repeat iteration makes new ones.
    delete work_;
    work_ = nullptr;
    delete gzip_;
    gzip_ = nullptr;
    delete layers_;
    layers_ = nullptr;
    delete setup_error_;
    setup_error_ = nullptr;
  }

  void SetUp() override { ASSERT_TRUE(setup_error_->empty()) << *setup_error_; }

  static std::string ZstdRef() { return registry_->ImageRef("src/zstd", "v1"); }

  // A new directory, never one another test of the suite used (the number runs on across the
  // suite's tests): each test's cache is its own host store.
  std::string NewDir(const std::string& name) {
    const std::string d = *work_ + "/" + name + "-" + std::to_string(counter_++);
    EXPECT_TRUE(MakeDirs(d).has_value());
    return d;
  }

  std::shared_ptr<LayerStoreSource> Start(const std::string& mountpoint) {
    auto source = LayerStoreSource::Start({.mountpoint = mountpoint,
                                           .cache_dir = NewDir("cache"),
                                           .prefetch = PrefetchMode::kNone,
                                           .state_dir = NewDir("state")});
    EXPECT_TRUE(source.has_value()) << source.error().message();
    return source.value_or(nullptr);
  }

  // A stargz-style request (as ctr-remote rpull sends) for layer `digest` of `ref`.
  static RemoteLayerRequest Request(const std::string& chain, const std::string& ref,
                                    const std::string& digest) {
    return {.chain_id = chain,
            .parent = "",
            .labels = {{kLabelSnapshotRef, chain},
                       {kLabelStargzReference, ref},
                       {kLabelStargzDigest, digest}}};
  }

  static bool Exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  }

  static std::string* setup_error_;
  static std::string* work_;
  static harness::TestRegistry* registry_;
  static harness::BuiltImage* gzip_;
  static std::vector<Digest>* layers_;
  static int counter_;
};

std::string* LayerStoreSourceTest::setup_error_ = nullptr;
std::string* LayerStoreSourceTest::work_ = nullptr;
harness::TestRegistry* LayerStoreSourceTest::registry_ = nullptr;
harness::BuiltImage* LayerStoreSourceTest::gzip_ = nullptr;
std::vector<Digest>* LayerStoreSourceTest::layers_ = nullptr;
int LayerStoreSourceTest::counter_ = 0;

// hoist-snapshotter's flags reach the layer store's mount options: the registry and mirror
// settings (--mirror-connect-timeout included) pass through unchanged.
TEST(LayerStoreSourceOptions, DaemonFlagsReachTheMountOptions) {
  DaemonConfig config;
  config.root = "/var/lib/hoist-snapshotter";
  config.cache = "/var/cache/hoist";
  config.insecure_registries = {"reg.example:5000"};
  config.hosts_dir = "/etc/hoist/certs.d";
  config.registries_conf = "none";
  config.mirror_connect_timeout_ms = 250;
  config.prefetch = "priority";
  auto o = LayerStoreSourceOptionsFor(config);
  ASSERT_TRUE(o.has_value()) << o.error().message();
  const MountOptions mo = LayerStoreMountOptions(*o);
  EXPECT_EQ(mo.mountpoint, "/var/lib/hoist-snapshotter/layers");
  EXPECT_EQ(mo.cache_dir, "/var/cache/hoist");
  EXPECT_EQ(mo.insecure_registries, std::vector<std::string>{"reg.example:5000"});
  EXPECT_EQ(mo.hosts_dir, "/etc/hoist/certs.d");
  EXPECT_EQ(mo.registries_conf, "none");
  EXPECT_EQ(mo.mirror_connect_timeout_ms, 250);
  EXPECT_EQ(mo.prefetch, PrefetchMode::kPriority);
  EXPECT_TRUE(mo.allow_other);
  EXPECT_TRUE(mo.suid);
  config.mirror_connect_timeout_ms = 0;  // not given: the default applies later (UseMirrors)
  EXPECT_EQ(LayerStoreMountOptions(*LayerStoreSourceOptionsFor(config)).mirror_connect_timeout_ms,
            0);
  config.prefetch = "sometimes";
  auto bad = LayerStoreSourceOptionsFor(config);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message(), "--prefetch sometimes: expected none, priority or all");
}

TEST_F(LayerStoreSourceTest, ReferencesPerChainId) {
  const std::string mnt = NewDir("layers");
  auto source = Start(mnt);
  ASSERT_NE(source, nullptr);
  const std::string d1 = (*layers_)[0].str(), d2 = (*layers_)[1].str();
  const std::string dir1 = mnt + "/" + std::string((*layers_)[0].hex());
  const std::string dir2 = mnt + "/" + std::string((*layers_)[1].hex());

  auto a = source->Resolve(Request("chain-a", ZstdRef(), d1));
  ASSERT_TRUE(a.has_value()) << a.error().message();
  EXPECT_EQ(*a, dir1);
  auto one = ReadFile(dir1 + "/a/one");
  ASSERT_TRUE(one.has_value()) << one.error().message();
  EXPECT_EQ(*one, "one\n");
  // Asked again for the same chain (containerd may Prepare a chain twice): no second reference.
  auto again = source->Resolve(Request("chain-a", ZstdRef(), d1));
  ASSERT_TRUE(again.has_value()) << again.error().message();
  EXPECT_EQ(*again, dir1);
  // The same chain asked with another digest keeps its own layer.
  auto other = source->Resolve(Request("chain-a", ZstdRef(), d2));
  ASSERT_TRUE(other.has_value()) << other.error().message();
  EXPECT_EQ(*other, dir1);
  EXPECT_EQ(source->store().layer_count(), 1u);
  // A second chain of the same layer: a second reference.
  auto b = source->Resolve(Request("chain-b", ZstdRef(), d1));
  ASSERT_TRUE(b.has_value()) << b.error().message();
  EXPECT_EQ(*b, dir1);
  EXPECT_EQ(source->chain_count(), 2u);

  source->Forget("chain-a", dir1);
  EXPECT_TRUE(Exists(dir1));  // chain-b still holds it
  source->Forget("chain-unknown", dir1);
  EXPECT_TRUE(Exists(dir1));
  source->Forget("chain-b", dir1);
  EXPECT_FALSE(Exists(dir1));
  EXPECT_EQ(source->store().layer_count(), 0u);
  EXPECT_EQ(source->chain_count(), 0u);

  // The whiteout of the upper layer is an overlayfs whiteout (0/0 character device).
  auto c = source->Resolve(Request("chain-c", ZstdRef(), d2));
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_EQ(*c, dir2);
  struct stat st;
  ASSERT_EQ(::lstat((dir2 + "/a/one").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, 0u);
  source->Forget("chain-c", dir2);
  EXPECT_EQ(source->store().layer_count(), 0u);
  // Destroying the source unmounts the store.
  source.reset();
  EXPECT_FALSE(harness::IsMounted(mnt));
}

TEST_F(LayerStoreSourceTest, FirstPrepareLoadsTheOtherLayersIndexes) {
  const std::string mnt = NewDir("layers");
  std::shared_ptr<LayerStoreSource> source = Start(mnt);  // a cache of its own: no index yet
  ASSERT_NE(source, nullptr);
  const std::string d1 = (*layers_)[0].str(), d2 = (*layers_)[1].str();
  auto blob_gets_of = [&](uint64_t mark, const std::string& digest) {
    auto requests = registry_->Requests(mark);
    EXPECT_TRUE(requests.has_value()) << requests.error().message();
    int n = 0;
    for (const harness::RegistryRequest& r :
         requests.value_or(std::vector<harness::RegistryRequest>{})) {
      if (r.IsBlobGet() && r.uri.find(digest) != std::string::npos) ++n;
    }
    return n;
  };
  // The registry logs a request just after answering it: an absence is read only after the log
  // has had 300 ms to settle (far more than it lags, whatever the load).
  auto settled_gets_of = [&](uint64_t mark, const std::string& digest) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return blob_gets_of(mark, digest);
  };
  const uint64_t mark = registry_->LogMark();
  // The first layer's Prepare, with the labels ctr-remote rpull sends: every layer listed.
  RemoteLayerRequest first = Request("chain-p1", ZstdRef(), d1);
  first.labels[kLabelStargzLayers] = d1 + "," + d2;
  auto a = source->Resolve(first);
  ASSERT_TRUE(a.has_value()) << a.error().message();
  ASSERT_TRUE(source->store().WaitPreloads(std::chrono::seconds(60)));
  // The second layer's TOC was read without its own Prepare ...
  EXPECT_TRUE(harness::WaitUntil([&] { return blob_gets_of(mark, d2) >= 1; }));
  EXPECT_EQ(source->store().layer_count(), 1u);  // ... and it was not added
  // ... so its Prepare reads nothing from the registry: the index is in the host store.
  const int preloaded = settled_gets_of(mark, d2);
  RemoteLayerRequest second = Request("chain-p2", ZstdRef(), d2);
  second.labels[kLabelStargzLayers] = d2;
  auto b = source->Resolve(second);
  ASSERT_TRUE(b.has_value()) << b.error().message();
  EXPECT_EQ(*b, mnt + "/" + std::string((*layers_)[1].hex()));
  EXPECT_EQ(settled_gets_of(mark, d2), preloaded);
  struct stat st;
  ASSERT_EQ(::lstat((*b + "/b/two").c_str(), &st), 0);
  EXPECT_EQ(source->store().layer_count(), 2u);
  // Another chain with the same list: both layers are served already, nothing is loaded again.
  const uint64_t mark3 = registry_->LogMark();
  RemoteLayerRequest again = Request("chain-p3", ZstdRef(), d1);
  again.labels[kLabelStargzLayers] = d1 + "," + d2;
  ASSERT_TRUE(source->Resolve(again).has_value());
  ASSERT_TRUE(source->store().WaitPreloads(std::chrono::seconds(60)));
  EXPECT_EQ(settled_gets_of(mark3, d1) + blob_gets_of(mark3, d2), 0);
  source->Forget("chain-p1", *a);
  source->Forget("chain-p2", *b);
  source->Forget("chain-p3", *a);
  EXPECT_EQ(source->store().layer_count(), 0u);
}

TEST_F(LayerStoreSourceTest, RefusalsAreOneLine) {
  auto source = Start(NewDir("layers"));
  ASSERT_NE(source, nullptr);
  struct Case {
    RemoteLayerRequest request;
    int code;
    std::string message;  // the error's start (all of it for the label errors)
  };
  std::vector<Case> cases = {
      {{.chain_id = "c", .labels = {{kLabelSnapshotRef, "c"}}},
       EINVAL,
       "no image reference label (plain `ctr image pull` sends none: pull with `ctr-remote "
       "image rpull` or through the CRI plugin)"},
      {{.chain_id = "c", .labels = {{kLabelCriImageRef, ZstdRef()}}},
       EINVAL,
       "no layer digest label"},
      {Request("c", ZstdRef(), "sha256:XYZ"), EINVAL, "layer digest label: "},
      {Request("c", registry_->ImageRef("src/gz", "v1"), gzip_->layers[0].digest.str()), ENOTSUP,
       ""},
  };
  for (const Case& c : cases) {
    auto r = source->Resolve(c.request);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), c.code) << r.error().message();
    EXPECT_TRUE(r.error().message().starts_with(c.message)) << r.error().message();
    EXPECT_EQ(r.error().message().find('\n'), std::string::npos) << r.error().message();
  }
  // The gzip layer's reason names what is missing.
  auto gz = source->Resolve(
      Request("c", registry_->ImageRef("src/gz", "v1"), gzip_->layers[0].digest.str()));
  ASSERT_FALSE(gz.has_value());
  EXPECT_NE(gz.error().message().find("without a TOC"), std::string::npos) << gz.error().message();
  EXPECT_EQ(source->store().layer_count(), 0u);
  EXPECT_EQ(source->chain_count(), 0u);
}

TEST_F(LayerStoreSourceTest, DeadMountIsDetachedAtStart) {
  // A layer store daemon (`hoistfs --layers`) killed with SIGKILL leaves its mount behind, its
  // FUSE connection gone: stat answers ENOTCONN, as on ROOT/layers after a kill -9 of
  // hoist-snapshotter.
  const std::string mnt = NewDir("layers");
  auto daemon = harness::ChildProcess::Start(
      {HOISTFS_BINARY, "--layers", "-f", "-o", "prefetch=none", ZstdRef(), mnt},
      {.stdout_path = mnt + ".log", .stderr_path = mnt + ".log"});
  ASSERT_TRUE(daemon.has_value()) << daemon.error().message();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!harness::IsMounted(mnt)) {
    ASSERT_TRUE(daemon->Running()) << "hoistfs --layers exited; see " << mnt << ".log";
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  daemon->Kill();
  struct stat st;
  ASSERT_NE(::stat(mnt.c_str(), &st), 0);
  ASSERT_EQ(errno, ENOTCONN);

  auto source = Start(mnt);
  ASSERT_NE(source, nullptr);
  auto dir = source->Resolve(Request("chain-a", ZstdRef(), (*layers_)[0].str()));
  ASSERT_TRUE(dir.has_value()) << dir.error().message();
  EXPECT_EQ(*dir, mnt + "/" + std::string((*layers_)[0].hex()));
  auto one = ReadFile(*dir + "/a/one");
  ASSERT_TRUE(one.has_value()) << one.error().message();
  EXPECT_EQ(*one, "one\n");
  source.reset();
  EXPECT_FALSE(harness::IsMounted(mnt));
  EXPECT_EQ(::stat(mnt.c_str(), &st), 0) << std::strerror(errno);
}

}  // namespace
}  // namespace hoist
