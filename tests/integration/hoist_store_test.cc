// hoist-store (issue 15) with the real parts: Debian's podman (private storage.conf,
// containers.conf and registries.conf; runc, cgroupfs), the real registry, the real hoist-store
// and hoist binaries, real FUSE and overlayfs. Needs root and /dev/fuse.
//
// The suite builds the python image (tests/harness/python_image.h), pushes it gzip to py/gzip,
// converts it with `hoist convert` to py/zstd (zstd:chunked), unpacks it with umoci (the tree
// every rootfs is compared with), starts one hoist-store on work/store (its layer views on
// work/store.layers) and one podman configuration whose additionallayerstores names it.
//
//   PullRunRmiZstdChunked        hoist's zstd:chunked: pull + run lazily (Range reads only),
//                                `info` exact, lookup by TOC digest, rmi releases every layer.
//   RootfsEqualsUmociUnpack      `podman image mount` of it equals `umoci unpack` exactly.
//   (the three above run before the save tests, which reuse their images)
//   SaveAndPushZstdChunked, SaveAndPushEstargz
//                                `podman save` (oci-archive; docker-archive too for eStargz: podman
//                                refuses it for zstd) and `podman push` give the image's config
//                                digest and layers whose uncompressed digests are its diff_ids,
//                                the bytes read through `blob` (Range reads of the original blobs).
//   LazyBySkopeo, LazyZstdChunkedByCtrRemote, LazyEstargzByCtrRemote
//                                the same python image made by `skopeo copy
//                                --dest-compress-format zstd:chunked` and by `ctr-remote image
//                                convert --oci --zstdchunked` / `--estargz`: pull + run lazily,
//                                the rootfs equals umoci's, rmi releases.
//   MixedGzipAndZstdChunkedRuns  a plain gzip layer (pulled whole) under a lazy one.
//   HostilePathsAreEnoent        names that are not base64 references or digests.
//   LazyGzipWithAPublishedIndex  the python image as plain gzip, after `hoist index`: pull +
//                                run lazily, each gzip blob sent by Range only, span by span.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "base/digest.h"
#include "base/file_util.h"
#include "fetcher/reference.h"
#include "fetcher/registry.h"
#include "tests/harness/containerd.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/python_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/harness/tree_walk.h"
#include "tests/harness/wait.h"
#include "tools/store/additional_store.h"

namespace hoist {
namespace {

using harness::CommandResult;

constexpr char kPython[] = "print(40+2)";

CommandResult RunTool(const std::vector<std::string>& argv, std::vector<std::string> env = {}) {
  return harness::RunForResult(argv, {.timeout = std::chrono::seconds(180), .env = std::move(env)});
}

bool Mounted(const std::string& path) {
  auto info = ReadFile("/proc/self/mountinfo");
  return info && info->find(" " + path + " ") != std::string::npos;
}

std::vector<std::string> DirEntries(const std::string& dir) {
  CommandResult r = RunTool({"ls", "-A", dir});
  std::vector<std::string> out;
  size_t start = 0;
  const std::string& s = r.stdout_text;
  while (start < s.size()) {
    const size_t end = s.find('\n', start);
    out.push_back(s.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

int StatErrno(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 ? 0 : errno;
}

class StoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setup_error_ = new std::string();
    auto fail = [](const std::string& why) { *setup_error_ = why; };
    if (::geteuid() != 0) return fail("needs root (FUSE mounts, podman's overlay storage)");
    if (auto s = harness::RequirePrograms({"podman", "skopeo", "umoci", "containerd", "ctr",
                                           "ctr-remote", "gzip", "zstd", "tar"});
        !s) {
      return fail(s.error().message() + " (scripts/setup.sh)");
    }
    char tmpl[] = "/tmp/hoist-store-test-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return fail("mkdtemp");
    work_ = new std::string(tmpl);
    auto reg = harness::TestRegistry::Launch({});
    if (!reg) return fail(reg.error().message());
    registry_ = reg->release();
    auto layers = harness::PythonImageLayers();
    if (!layers) return fail(layers.error().message());
    layout_ = new std::string(*work_ + "/py-layout");
    auto image = harness::BuildOciImage(*layout_, *layers, {.tag = "py", .cmd = {"python3"}});
    if (!image) return fail(image.error().message());
    if (auto p = harness::PushOciLayout(image->OciRef(), registry_->DockerRef("py/gzip", "v1")); !p)
      return fail(p.error().message());
    CommandResult conv =
        RunTool({HOIST_BINARY, "convert", "-q", registry_->DockerRef("py/gzip", "v1"),
                 registry_->DockerRef("py/zstd", "v1")});
    if (!conv.ok()) return fail("hoist convert: " + conv.stderr_text);
    CommandResult u =
        RunTool({"umoci", "unpack", "--image", *layout_ + ":py", *work_ + "/umoci-bundle"});
    if (!u.ok()) return fail("umoci unpack: " + u.stderr_text);
    auto tree = harness::WalkTree(*work_ + "/umoci-bundle/rootfs");
    if (!tree) return fail(tree.error().message());
    umoci_tree_ = new Tree(std::move(*tree));

    // podman's private configuration.
    const std::string& w = *work_;
    for (const char* d : {"/store", "/graph", "/run", "/tmp"}) {
      if (auto s = MakeDirs(w + d); !s) return fail(s.error().message());
    }
    const std::string storage =
        "[storage]\ndriver = \"overlay\"\ngraphroot = \"" + w + "/graph\"\nrunroot = \"" + w +
        "/run\"\n[storage.options]\nadditionallayerstores = [\"" + w + "/store:ref\"]\n";
    const std::string containers =
        "[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"
        "tmp_dir = \"" +
        w + "/tmp\"\n";
    const std::string registries =
        "[[registry]]\nlocation = \"" + registry_->host_port() + "\"\ninsecure = true\n";
    for (auto [name, text] :
         {std::pair{"/storage.conf", storage}, std::pair{"/containers.conf", containers},
          std::pair{"/registries.conf", registries}}) {
      if (auto s = WriteFileAtomic(w + name, text); !s) return fail(s.error().message());
    }
    // The daemon: forks, and returns once both mounts serve.
    CommandResult started =
        RunTool({HOIST_STORE_BINARY, "--cache", w + "/cache", "-o",
                 "log_level=info,log_file=" + w +
                     "/store.log,insecure_registry=" + registry_->host_port() + ",prefetch=none",
                 w + "/store"});
    if (!started.ok()) return fail("hoist-store: " + started.stderr_text);
    if (!Mounted(w + "/store") || !Mounted(w + "/store.layers"))
      return fail("hoist-store returned before mounting");
  }

  static void TearDownTestSuite() {
    if (work_ != nullptr) {
      (void)Podman({"system", "reset", "-f"});
      // An unmount from outside ends the daemon, which then unmounts its layer views.
      (void)RunTool({"umount", *work_ + "/store"});
      EXPECT_TRUE(harness::WaitUntil([] { return !Mounted(*work_ + "/store.layers"); }));
    }
    delete registry_;
    registry_ = nullptr;
    const char* keep = std::getenv("HOIST_TEST_KEEP");
    if (work_ != nullptr && (keep == nullptr || *keep != '1')) (void)RemoveTree(*work_);
  }

  void SetUp() override {
    ASSERT_TRUE(setup_error_->empty()) << *setup_error_;
    // Each test starts with no image, whatever the one before left after a failure (podman
    // would otherwise reuse layers by diff_id).
    CommandResult rmi = Podman({"rmi", "-a", "-f"});
    ASSERT_TRUE(rmi.ok()) << rmi.stderr_text;
  }

  static CommandResult Podman(std::vector<std::string> args) {
    args.insert(args.begin(), "podman");
    const std::string& w = *work_;
    return RunTool(args, {"CONTAINERS_STORAGE_CONF=" + w + "/storage.conf",
                          "CONTAINERS_CONF=" + w + "/containers.conf",
                          "CONTAINERS_REGISTRIES_CONF=" + w + "/registries.conf"});
  }
  static CommandResult PodmanRunPython(const std::string& ref) {
    return Podman({"run", "--rm", "--network", "none", "--ulimit", "nofile=20000:20000", "--ulimit",
                   "nproc=1000:1000", ref, "python3", "-c", kPython});
  }

  static ResolvedImage Resolve(const std::string& ref) {
    auto client = RegistryClient::CreateDefault();
    EXPECT_TRUE(client.has_value());
    auto image = (*client)->Resolve(*Reference::Parse(ref));
    EXPECT_TRUE(image.has_value()) << image.error().message();
    return image ? *image : ResolvedImage{};
  }
  static std::string KeyDir(const std::string& ref, const Digest& key) {
    return *work_ + "/store/" + Base64Encode(ref) + "/" + key.str();
  }

  // Every GET of a blob in `lazy` since `mark` was a Range request (206), and (need_reads) there
  // was one.
  static void ExpectOnlyRangeReads(uint64_t mark, const std::vector<Digest>& lazy,
                                   bool need_reads = true) {
    auto requests = registry_->Requests(mark);
    ASSERT_TRUE(requests.has_value()) << requests.error().message();
    std::map<std::string, int> ranged;
    for (const harness::RegistryRequest& r : *requests) {
      if (!r.IsBlobGet()) continue;
      for (const Digest& d : lazy) {
        if (r.uri.find(d.str()) == std::string::npos) continue;
        EXPECT_EQ(r.status, 206) << "whole-blob download of a lazy layer: " << r.uri;
        ++ranged[d.str()];
      }
    }
    if (!need_reads) return;
    for (const Digest& d : lazy) EXPECT_GT(ranged[d.str()], 0) << d.str();
  }

  static void ExpectNoLayersServed() {
    EXPECT_TRUE(harness::WaitUntil([] { return DirEntries(*work_ + "/store.layers").empty(); }))
        << "still served: " << testing::PrintToString(DirEntries(*work_ + "/store.layers"));
  }

  // `podman image mount REF` walked, then unmounted: the image's rootfs as the overlay of its
  // layers shows it, compared with umoci's unpack of the python layout.
  static void ExpectRootfsEqualsUmoci(const std::string& ref) {
    CommandResult mount = Podman({"image", "mount", ref});
    ASSERT_TRUE(mount.ok()) << mount.stderr_text;
    std::string dir = mount.stdout_text;
    while (!dir.empty() && dir.back() == '\n') dir.pop_back();
    auto got = harness::WalkTree(dir);
    CommandResult unmount = Podman({"image", "unmount", ref});
    ASSERT_TRUE(got.has_value()) << got.error().message();
    EXPECT_TRUE(unmount.ok()) << unmount.stderr_text;
    EXPECT_EQ(harness::CompareTrees(*umoci_tree_, *got, "podman image mount"),
              std::vector<std::string>{});
  }

  // The python image at `ref` (made by some producer; every layer of `media_type`): pulled and
  // run through the store with Range reads only, every layer served by the store, the rootfs
  // equals umoci's, rmi releases every layer.
  // Plain gzip layers (a published index) are also checked to be sent by span: no one request
  // sent a blob larger than two spans whole.
  // need_reads: every layer blob was read at least once (false when the store's chunk cache may
  // hold the files already: it is keyed by file digest, shared by every format of the image).
  static void ExpectLazyPython(const std::string& ref, const std::string& media_type,
                               bool need_reads = true) {
    const ResolvedImage image = Resolve(ref);
    ASSERT_EQ(image.manifest.layers.size(), 2u);
    std::vector<Digest> layers;
    for (const Descriptor& d : image.manifest.layers) {
      // A producer that reused a gzip blob instead of converting it would show here.
      EXPECT_EQ(d.media_type, media_type) << d.digest.str();
      layers.push_back(d.digest);
    }
    const uint64_t mark = registry_->LogMark();
    CommandResult pull = Podman({"pull", "-q", ref});
    ASSERT_TRUE(pull.ok()) << pull.stderr_text;
    CommandResult run = PodmanRunPython(ref);
    ASSERT_TRUE(run.ok()) << run.stderr_text;
    EXPECT_EQ(run.stdout_text, "42\n");
    ExpectOnlyRangeReads(mark, layers, need_reads);
    if (media_type.ends_with("+gzip")) {
      // Span ranges, not the blob: no one request of a blob larger than two spans sent all of
      // it (a smaller one may be a single span). Totals printed (see snapshotter_test).
      auto requests = registry_->Requests(mark);
      ASSERT_TRUE(requests.has_value()) << requests.error().message();
      for (const Descriptor& d : image.manifest.layers) {
        uint64_t sent = 0;
        int gets = 0;
        for (const harness::RegistryRequest& r : *requests) {
          if (!r.IsBlobGet() || r.uri.find(d.digest.str()) == std::string::npos) continue;
          sent += r.bytes_written;
          ++gets;
          if (d.size > (2 << 20)) {
            EXPECT_LT(r.bytes_written, static_cast<uint64_t>(d.size))
                << d.digest.str() << ": one request sent the whole gzip blob";
          }
        }
        std::printf("%s: %d range requests, %llu bytes sent, blob %lld bytes\n",
                    d.digest.str().c_str(), gets, static_cast<unsigned long long>(sent),
                    static_cast<long long>(d.size));
      }
    }
    std::vector<std::string> served;
    for (const Digest& d : layers) served.emplace_back(d.hex());
    std::sort(served.begin(), served.end());
    EXPECT_EQ(DirEntries(*work_ + "/store.layers"), served);
    ExpectRootfsEqualsUmoci(ref);
    CommandResult rmi = Podman({"rmi", ref});
    ASSERT_TRUE(rmi.ok()) << rmi.stderr_text;
    ExpectNoLayersServed();
  }

  // `ctr-remote image convert --oci FLAGS` of the python layout, in a containerd of its own
  // under work_/dir, pushed to the registry as `repo`:v1. Once per suite and repo.
  static void ConvertByCtrRemote(const std::string& dir, const std::vector<std::string>& flags,
                                 const std::string& repo) {
    const std::string ref = registry_->ImageRef(repo, "v1");
    const std::string conv = *work_ + "/" + dir;
    if (StatErrno(conv) == 0) return;
    ASSERT_TRUE(MakeDirs(conv).has_value());
    auto converter = harness::PrivateContainerd::Start(conv);
    ASSERT_TRUE(converter.has_value()) << converter.error().message();
    CommandResult t = RunTool({"tar", "-C", *layout_, "-cf", conv + "/img.tar", "."});
    ASSERT_TRUE(t.ok()) << t.stderr_text;
    // The layout's tag ("py") is appended to the base name.
    const std::string base = registry_->host_port() + "/py/conv-src";
    auto imported =
        (*converter)
            ->Ctr({"images", "import", "--no-unpack", "--base-name", base, conv + "/img.tar"});
    ASSERT_TRUE(imported.has_value()) << imported.error().message();
    std::vector<std::string> argv = {"ctr-remote", "-a",      (*converter)->socket(),
                                     "image",      "convert", "--oci"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back(base + ":py");
    argv.push_back(ref);
    auto converted = harness::RunChecked(argv, {.timeout = std::chrono::seconds(180)});
    ASSERT_TRUE(converted.has_value()) << converted.error().message();
    auto pushed = (*converter)->Ctr({"images", "push", "--plain-http", ref});
    ASSERT_TRUE(pushed.has_value()) << pushed.error().message();
  }

  // `podman save` in each of `formats` and `podman push` of the image at `repo`:v1, pulled
  // lazily: the config is the registry's original (same digest, so the same diff_ids), every
  // layer's uncompressed digest is its diff_id, and the layer bytes came through the store's
  // `blob` (the registry sent the original layer blobs by Range only, together at least their
  // whole size).
  void SaveAndPush(const std::string& repo, const std::vector<std::string>& formats);

  using Tree = std::map<std::string, harness::TreeNode>;
  static std::string* setup_error_;
  static std::string* work_;
  static std::string* layout_;
  static harness::TestRegistry* registry_;
  static Tree* umoci_tree_;
};

std::string* StoreTest::setup_error_ = nullptr;
std::string* StoreTest::work_ = nullptr;
std::string* StoreTest::layout_ = nullptr;
harness::TestRegistry* StoreTest::registry_ = nullptr;
StoreTest::Tree* StoreTest::umoci_tree_ = nullptr;

// The hoist-converted (zstd:chunked) python image: pulled and run lazily through the store,
// every layer by Range reads only; `info` is exact; rmi releases every layer.
TEST_F(StoreTest, PullRunRmiZstdChunked) {
  const std::string ref = registry_->ImageRef("py/zstd", "v1");
  const ResolvedImage image = Resolve(ref);
  ASSERT_EQ(image.manifest.layers.size(), 2u);
  std::vector<Digest> layers;
  for (const Descriptor& d : image.manifest.layers) layers.push_back(d.digest);
  const uint64_t mark = registry_->LogMark();
  CommandResult pull = Podman({"pull", "-q", ref});
  ASSERT_TRUE(pull.ok()) << pull.stderr_text;
  CommandResult run = PodmanRunPython(ref);
  ASSERT_TRUE(run.ok()) << run.stderr_text;
  EXPECT_EQ(run.stdout_text, "42\n");
  ExpectOnlyRangeReads(mark, layers);

  // What containers/storage read: info, the diff link into the layer store, blob's size.
  // No diff-size: hoist convert declares none (see StoreLayerInfo).
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string dir = KeyDir(ref, layers[i]);
    const Descriptor& d = image.manifest.layers[i];
    const std::string toc = d.annotations.at("io.github.containers.zstd-chunked.manifest-checksum");
    EXPECT_EQ(ReadFile(dir + "/info").value_or(""),
              "{\"compressed-diff-digest\":\"" + d.digest.str() + "\",\"compressed-size\":" +
                  std::to_string(d.size) + ",\"diff-digest\":\"" + image.config.diff_ids[i].str() +
                  "\",\"compression\":4,\"toc-digest\":\"" + toc + "\"}\n");
    char target[4096];
    const ssize_t n = ::readlink((dir + "/diff").c_str(), target, sizeof(target));
    ASSERT_GT(n, 0) << dir;
    EXPECT_EQ(std::string(target, static_cast<size_t>(n)),
              *work_ + "/store.layers/" + std::string(layers[i].hex()));
    struct stat st;
    ASSERT_EQ(::stat((dir + "/blob").c_str(), &st), 0);
    EXPECT_EQ(st.st_size, d.size);
    EXPECT_EQ(st.st_mode, S_IFREG | 0444u);
    // The same layer by its TOC digest (newer containers/storage asks so).
    EXPECT_EQ(ReadFile(KeyDir(ref, *Digest::Parse(toc)) + "/info").value_or(""),
              ReadFile(dir + "/info").value_or("x"));
    (void)::rmdir(KeyDir(ref, *Digest::Parse(toc)).c_str());  // the lookup's reference
  }
  // The layer's view through the store: busybox as the image has it.
  struct stat st;
  ASSERT_EQ(::stat((KeyDir(ref, layers[0]) + "/diff/bin/busybox").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, S_IFREG | 0755u);
  EXPECT_EQ(st.st_uid, 0u);

  CommandResult rmi = Podman({"rmi", ref});
  ASSERT_TRUE(rmi.ok()) << rmi.stderr_text;
  ExpectNoLayersServed();
}

// The hoist-converted image's rootfs through the store (`podman image mount`: podman's overlay
// of the store's layer views) is umoci's unpack of the python layout, exactly.
TEST_F(StoreTest, RootfsEqualsUmociUnpack) {
  const std::string ref = registry_->ImageRef("py/zstd", "v1");
  CommandResult pull = Podman({"pull", "-q", ref});
  ASSERT_TRUE(pull.ok()) << pull.stderr_text;
  ExpectRootfsEqualsUmoci(ref);
  CommandResult rmi = Podman({"rmi", ref});
  ASSERT_TRUE(rmi.ok()) << rmi.stderr_text;
  ExpectNoLayersServed();
}

// Prints "config <digest>" and one "layer <sha256 of the uncompressed layer>" per layer of a
// docker-archive directory (manifest.json) or an OCI layout (index.json), checking on the way
// that every blob's name is its digest.
constexpr char kArchiveDigests[] = R"(
import gzip, hashlib, json, os, subprocess, sys
d = sys.argv[1]
def sha(b): return "sha256:" + hashlib.sha256(b).hexdigest()
def read(p): return open(os.path.join(d, p), "rb").read()
if os.path.exists(os.path.join(d, "manifest.json")):
    m = json.loads(read("manifest.json"))[0]
    c = read(m["Config"])
    assert m["Config"].startswith(sha(c)[7:]), m["Config"]
    print("config", sha(c))
    for l in m["Layers"]:
        print("layer", sha(read(l)))
else:
    blob = lambda dg: read("blobs/sha256/" + dg[7:])
    m = json.loads(blob(json.loads(read("index.json"))["manifests"][0]["digest"]))
    c = blob(m["config"]["digest"])
    assert sha(c) == m["config"]["digest"]
    print("config", sha(c))
    for l in m["layers"]:
        b = blob(l["digest"])
        assert sha(b) == l["digest"] and len(b) == l["size"], l
        t = l["mediaType"]
        if t.endswith("gzip"): b = gzip.decompress(b)
        elif t.endswith("zstd"): b = subprocess.run(["zstd", "-dc"], input=b, capture_output=True, check=True).stdout
        print("layer", sha(b))
)";

// The python image as zstd:chunked by skopeo (containers/image's own writer). Converted into an
// OCI layout first, then pushed unchanged: straight into the registry, skopeo would reuse the
// gzip blobs py/gzip already holds instead of converting them.
TEST_F(StoreTest, LazyBySkopeo) {
  const std::string zstd_layout = *work_ + "/py-skopeo";
  CommandResult convert =
      RunTool({"skopeo", "copy", "-q", "--dest-compress", "--dest-compress-format", "zstd:chunked",
               "oci:" + *layout_ + ":py", "oci:" + zstd_layout + ":py"});
  ASSERT_TRUE(convert.ok()) << convert.stderr_text;
  ASSERT_TRUE(harness::PushOciLayout("oci:" + zstd_layout + ":py",
                                     registry_->DockerRef("py/skopeo", "v1")));
  ExpectLazyPython(registry_->ImageRef("py/skopeo", "v1"),
                   "application/vnd.oci.image.layer.v1.tar+zstd");
}

// The python image as zstd:chunked by `ctr-remote image convert --zstdchunked --oci`.
TEST_F(StoreTest, LazyZstdChunkedByCtrRemote) {
  ASSERT_NO_FATAL_FAILURE(ConvertByCtrRemote("ctr-zstd", {"--zstdchunked"}, "py/ctr-zstd"));
  const std::string ref = registry_->ImageRef("py/ctr-zstd", "v1");
  ExpectLazyPython(ref, "application/vnd.oci.image.layer.v1.tar+zstd");
}

// The python image as eStargz by `ctr-remote image convert --estargz --oci` (its landmark and TOC
// entries are not in the layer views, so the rootfs still equals umoci's unpack of the source).
TEST_F(StoreTest, LazyEstargzByCtrRemote) {
  ASSERT_NO_FATAL_FAILURE(ConvertByCtrRemote("ctr-esgz", {"--estargz"}, "py/estargz"));
  const std::string ref = registry_->ImageRef("py/estargz", "v1");
  // The files the zstd:chunked tests of this suite read are in the store's chunk cache already
  // (same file digests): a layer may need no read at all.
  ExpectLazyPython(ref, "application/vnd.oci.image.layer.v1.tar+gzip", /*need_reads=*/false);
}

TEST_F(StoreTest, SaveAndPushZstdChunked) {
  // docker-archive cannot carry zstd layers: podman 4.3 refuses it for any zstd image ("zstd
  // compression is not supported for docker images"), pulled through the store or not.
  SaveAndPush("py/zstd", {"oci-archive"});
}

// The eStargz image also saves to a docker-archive: that needs diff-size in `info` (the tar
// header of each layer), here from ctr-remote's uncompressed-size annotation.
TEST_F(StoreTest, SaveAndPushEstargz) {
  ASSERT_NO_FATAL_FAILURE(ConvertByCtrRemote("ctr-esgz", {"--estargz"}, "py/estargz"));
  SaveAndPush("py/estargz", {"docker-archive", "oci-archive"});
}

void StoreTest::SaveAndPush(const std::string& repo, const std::vector<std::string>& formats) {
  const std::string ref = registry_->ImageRef(repo, "v1");
  const ResolvedImage image = Resolve(ref);
  ASSERT_EQ(image.manifest.layers.size(), 2u);
  std::string want = "config " + image.manifest.config.digest.str() + "\n";
  for (const Digest& d : image.config.diff_ids) want += "layer " + d.str() + "\n";
  CommandResult pull = Podman({"pull", "-q", ref});
  ASSERT_TRUE(pull.ok()) << pull.stderr_text;
  const uint64_t mark = registry_->LogMark();

  const std::string dir = *work_ + "/save-" + Base64Encode(repo);
  for (const std::string& format : formats) {
    const std::string tar = dir + "/" + format + ".tar";
    const std::string out = dir + "/" + format;
    ASSERT_TRUE(MakeDirs(out).has_value());
    CommandResult save = Podman({"save", "--format", format, "-o", tar, ref});
    ASSERT_TRUE(save.ok()) << format << ": " << save.stderr_text;
    CommandResult x = RunTool({"tar", "-C", out, "-xf", tar});
    ASSERT_TRUE(x.ok()) << x.stderr_text;
    CommandResult digests = RunTool({"python3", "-c", kArchiveDigests, out});
    ASSERT_TRUE(digests.ok()) << format << ": " << digests.stderr_text;
    EXPECT_EQ(digests.stdout_text, want) << format;
  }

  const std::string pushed = registry_->ImageRef(repo + "-pushed", "v1");
  CommandResult push = Podman({"push", "-q", "--tls-verify=false", ref, pushed});
  ASSERT_TRUE(push.ok()) << push.stderr_text;
  CommandResult copy =
      RunTool({"skopeo", "copy", "-q", "--src-tls-verify=false",
               registry_->DockerRef(repo + "-pushed", "v1"), "oci:" + dir + "/pushed:v1"});
  ASSERT_TRUE(copy.ok()) << copy.stderr_text;
  CommandResult digests = RunTool({"python3", "-c", kArchiveDigests, dir + "/pushed"});
  ASSERT_TRUE(digests.ok()) << digests.stderr_text;
  EXPECT_EQ(digests.stdout_text, want) << "pushed";

  auto requests = registry_->Requests(mark);
  ASSERT_TRUE(requests.has_value()) << requests.error().message();
  for (const Descriptor& d : image.manifest.layers) {
    uint64_t bytes = 0;
    for (const harness::RegistryRequest& r : *requests) {
      if (!r.IsBlobGet() || r.uri.find("/" + repo + "/") == std::string::npos ||
          r.uri.find(d.digest.str()) == std::string::npos)
        continue;
      EXPECT_EQ(r.status, 206) << "whole-blob download: " << r.uri;
      bytes += r.bytes_written;
    }
    EXPECT_GE(bytes, static_cast<uint64_t>(d.size)) << d.digest.str();
  }
  // (push made no local image of `pushed`)
  CommandResult rmi = Podman({"rmi", ref});
  ASSERT_TRUE(rmi.ok()) << rmi.stderr_text;
  ExpectNoLayersServed();
}

// One plain gzip layer (podman pulls it whole) under a zstd:chunked one (served lazily).
TEST_F(StoreTest, MixedGzipAndZstdChunkedRuns) {
  const std::string dir = *work_ + "/mixed";
  const std::string ref = registry_->ImageRef("py/mixed", "v1");
  CommandResult copy = RunTool({"skopeo", "copy", "-q", "--src-tls-verify=false",
                                registry_->DockerRef("py/zstd", "v1"), "oci:" + dir + ":v1"});
  ASSERT_TRUE(copy.ok()) << copy.stderr_text;
  const std::string script = R"(
import hashlib, json, shutil, sys
m, g = sys.argv[1], sys.argv[2]
def blob(l, d): return open(l + "/blobs/sha256/" + d[7:], "rb").read()
def put(l, b):
    d = "sha256:" + hashlib.sha256(b).hexdigest()
    open(l + "/blobs/sha256/" + d[7:], "wb").write(b)
    return d
gi = json.load(open(g + "/index.json"))
gm = json.loads(blob(g, gi["manifests"][0]["digest"]))
gc = json.loads(blob(g, gm["config"]["digest"]))
mi = json.load(open(m + "/index.json"))
mm = json.loads(blob(m, mi["manifests"][0]["digest"]))
mc = json.loads(blob(m, mm["config"]["digest"]))
mm["layers"][0] = gm["layers"][0]
mc["rootfs"]["diff_ids"][0] = gc["rootfs"]["diff_ids"][0]
shutil.copy(g + "/blobs/sha256/" + gm["layers"][0]["digest"][7:], m + "/blobs/sha256/")
cb = json.dumps(mc).encode()
mm["config"]["digest"], mm["config"]["size"] = put(m, cb), len(cb)
mb = json.dumps(mm).encode()
mi["manifests"][0]["digest"], mi["manifests"][0]["size"] = put(m, mb), len(mb)
json.dump(mi, open(m + "/index.json", "w"))
)";
  CommandResult mix = RunTool({"python3", "-c", script, dir, *layout_});
  ASSERT_TRUE(mix.ok()) << mix.stderr_text;
  ASSERT_TRUE(harness::PushOciLayout("oci:" + dir + ":v1", registry_->DockerRef("py/mixed", "v1")));
  const ResolvedImage image = Resolve(ref);
  ASSERT_EQ(image.manifest.layers.size(), 2u);
  const Digest gzip = image.manifest.layers[0].digest;
  const Digest zstd = image.manifest.layers[1].digest;

  const uint64_t mark = registry_->LogMark();
  CommandResult pull = Podman({"pull", "-q", ref});
  ASSERT_TRUE(pull.ok()) << pull.stderr_text;
  CommandResult run = PodmanRunPython(ref);
  ASSERT_TRUE(run.ok()) << run.stderr_text;
  EXPECT_EQ(run.stdout_text, "42\n");
  // The zstd:chunked layer is the one PullRunRmiZstdChunked ran (its chunks may all be cached
  // by now): never downloaded whole.
  ExpectOnlyRangeReads(mark, {zstd}, /*need_reads=*/false);
  // The gzip layer is not in the store: podman downloaded it whole.
  EXPECT_EQ(StatErrno(KeyDir(ref, gzip)), ENOENT);
  auto requests = registry_->Requests(mark);
  ASSERT_TRUE(requests.has_value());
  int whole = 0;
  for (const harness::RegistryRequest& r : *requests)
    whole += r.IsBlobGet() && r.uri.find(gzip.str()) != std::string::npos && r.status == 200;
  EXPECT_EQ(whole, 1);
  EXPECT_EQ(DirEntries(*work_ + "/store.layers"),
            std::vector<std::string>{std::string(zstd.hex())});

  CommandResult rmi = Podman({"rmi", ref});
  ASSERT_TRUE(rmi.ok()) << rmi.stderr_text;
  ExpectNoLayersServed();
}

// Names that are not a base64 reference or not a digest, and layers that cannot be lazy, are
// ENOENT; none of them adds a layer.
TEST_F(StoreTest, HostilePathsAreEnoent) {
  const std::string root = *work_ + "/store/";
  const std::string zstd_ref = registry_->ImageRef("py/zstd", "v1");
  const std::string gzip_ref = registry_->ImageRef("py/gzip", "v1");
  const ResolvedImage zstd = Resolve(zstd_ref);
  const ResolvedImage gzip = Resolve(gzip_ref);
  ASSERT_FALSE(zstd.manifest.layers.empty());
  ASSERT_FALSE(gzip.manifest.layers.empty());
  const std::string b64 = Base64Encode(zstd_ref);
  const std::string layer = zstd.manifest.layers[0].digest.str();
  for (const std::string& path : {
           root + "not-base64!",
           root + "...",
           root + b64.substr(0, b64.size() - 1),     // truncated
           root + Base64Encode("not a reference!"),  // base64 of garbage
           root + b64 + "/not-a-digest",
           root + b64 + "/sha256:" + std::string(64, 'g'),
           root + b64 + "/" + layer.substr(0, layer.size() - 1),
           root + b64 + "/SHA256:" + layer.substr(7),
           root + b64 + "/sha256:" + std::string(64, '0'),  // not in the image
           root + b64 + "/" + layer + "/other",
           root + b64 + "/" + layer + "/use",
           KeyDir(gzip_ref, gzip.manifest.layers[0].digest),  // plain gzip: not lazy
           KeyDir(registry_->ImageRef("py/none", "v1"), zstd.manifest.layers[0].digest),
       }) {
    EXPECT_EQ(StatErrno(path), ENOENT) << path;
  }
  // Nothing can be made there but `use`.
  EXPECT_NE(::mkdir((root + b64 + "/x").c_str(), 0755), 0);
  (void)::rmdir(KeyDir(zstd_ref, zstd.manifest.layers[0].digest).c_str());  // the lookup's ref
  ExpectNoLayersServed();
}

// The python image as plain gzip (never converted), in a repository of its own. (With no index,
// none in the host store and none published, the store answers ENOENT and podman pulls the blob
// whole: MixedGzipAndZstdChunkedRuns.) After `hoist index` publishes the layer indexes, podman
// pulls and runs it lazily through the store (ExpectLazyPython): Range reads only, span by span,
// the rootfs equals umoci's, rmi releases every layer.
// (Last of the suite: the store's host cache then holds these layers' indexes, which would make
// the gzip layer that HostilePathsAreEnoent expects to be refused lazy.)
TEST_F(StoreTest, LazyGzipWithAPublishedIndex) {
  const std::string ref = registry_->ImageRef("py/gzip-indexed", "v1");
  ASSERT_TRUE(harness::PushOciLayout("oci:" + *layout_ + ":py",
                                     registry_->DockerRef("py/gzip-indexed", "v1")));
  const ResolvedImage image = Resolve(ref);
  ASSERT_EQ(image.manifest.layers.size(), 2u);
  CommandResult indexed = RunTool({HOIST_BINARY, "index", ref});
  ASSERT_TRUE(indexed.ok()) << indexed.stderr_text;
  EXPECT_NE(indexed.stdout_text.find("Published 2 layer indexes"), std::string::npos)
      << indexed.stdout_text;
  // The files the zstd:chunked tests of this suite read are in the store's chunk cache already
  // (same file digests): a layer may need no read at all.
  ExpectLazyPython(ref, "application/vnd.oci.image.layer.v1.tar+gzip", /*need_reads=*/false);
}

// diff-size from ctr-remote's annotation: a decimal number, else EBADMSG; absent, nothing; and
// where `info` puts it.
TEST(StoreNamesTest, AnnotatedDiffSize) {
  Descriptor layer;
  layer.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
  layer.digest = *Digest::Parse("sha256:" + std::string(64, 'a'));
  layer.size = 10;
  EXPECT_EQ(StoreAnnotatedDiffSize(layer).value(), std::nullopt);
  for (const char* bad : {"", "12x", "-1", " 12", "99999999999999999999999"}) {
    layer.annotations["io.containers.estargz.uncompressed-size"] = bad;
    auto size = StoreAnnotatedDiffSize(layer);
    ASSERT_FALSE(size.has_value()) << bad;
    EXPECT_EQ(size.error().code(), EBADMSG) << bad;
  }
  layer.annotations["io.containers.estargz.uncompressed-size"] = "2004480";
  EXPECT_EQ(StoreAnnotatedDiffSize(layer).value(), std::optional<uint64_t>(2004480));
  const Digest diff_id = *Digest::Parse("sha256:" + std::string(64, 'b'));
  EXPECT_EQ(StoreLayerInfo(layer, diff_id, 2004480),
            "{\"compressed-diff-digest\":\"sha256:" + std::string(64, 'a') +
                "\",\"compressed-size\":10,\"diff-digest\":\"sha256:" + std::string(64, 'b') +
                "\",\"diff-size\":2004480,\"compression\":2}\n");
  EXPECT_EQ(StoreLayerInfo(layer, diff_id),
            "{\"compressed-diff-digest\":\"sha256:" + std::string(64, 'a') +
                "\",\"compressed-size\":10,\"diff-digest\":\"sha256:" + std::string(64, 'b') +
                "\",\"compression\":2}\n");
}

TEST(StoreNamesTest, RefNamesAndKeys) {
  EXPECT_EQ(DecodeStoreRefName(Base64Encode("localhost:5000/a/b:c")).value_or(""),
            "localhost:5000/a/b:c");
  EXPECT_FALSE(DecodeStoreRefName("bG9jYWxob3N0Og").has_value());  // unpadded
  EXPECT_FALSE(DecodeStoreRefName("").has_value());
  EXPECT_FALSE(ParseStoreLayerKey("sha256:" + std::string(63, 'a')).has_value());
  EXPECT_TRUE(ParseStoreLayerKey("sha256:" + std::string(64, 'a')).has_value());
}

}  // namespace
}  // namespace hoist
