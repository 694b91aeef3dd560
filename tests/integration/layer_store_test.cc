// The layer store (fusefs/layer_store.h) against REAL parts: images built with GNU tar, pushed to
// the real registry, converted by the real `hoist convert` (zstd:chunked) and by ctr-remote
// (eStargz); the store mounted for real (in this process through the C++ API the snapshotter
// uses, and as `hoistfs --layers`); layers stacked with REAL kernel overlayfs. Runs as root;
// without /dev/fuse, overlayfs or the tools the tests FAIL, they never skip.
//
//   EachLayerDirIsTheLayerAsAnOverlayLower
//       every layer directory equals the layer's own tar extracted by GNU tar with the markers
//       turned into what overlayfs reads (reference built here, independently of hoist): 0/0
//       character devices for whiteouts (owner and mtime of the marker), trusted.overlay.opaque=y
//       on opaque directories, markers gone; hardlinks share an inode; exact modes, owners,
//       mtimes, xattrs, link targets, device numbers and bytes.
//   StackedLayersEqualUmociUnpack
//       `mount -t overlay -o ro,lowerdir=L3:L2:L1` of the layer directories equals `umoci unpack`
//       of the original gzip image exactly.
//   HoistfsLayersMode
//       the same through the `hoistfs --layers` binary: directories listed lowest first, the
//       overlay equals umoci's tree, `fusermount3 -u` ends the daemon; a gzip image whose index
//       the host store lacks fails with exit 1 and one line, nothing mounted.
//   GzipLayersWithAStoredIndexAreLazy
//       the plain gzip image, indexed once by a hoistfs mount on the same host store: a fresh
//       store adds its layers, a cold read of a small file fetches one span (never the whole
//       blob: the registry's log), and the stacked overlay equals umoci's tree.
//   GzipLayersWithAPublishedIndexAreLazyOnAFreshHost
//       the same with an empty cache and the index published by `hoist index`: one span (and
//       at most a window by Range) for the small file, Range reads only, overlay exact.
//   PrefetchedLayersServeEveryByteWithTheRegistryStopped
//       with -o prefetch=all each layer's prefetcher makes it local; with the registry stopped
//       the overlay still equals umoci's tree (every byte read from the verified cache).
//   RemovalAndTeardownUnderAMountedOverlay
//       a layer removed while stacked fails what the kernel had not looked up (ESTALE); the
//       store destroyed under a mounted overlay returns, its mount is gone, and the overlay's
//       uncached reads fail (ENOTCONN) instead of hanging.
//   EstargzLayerStacksOverAZstdChunkedLayer
//       a ctr-remote eStargz layer (whiteouts, opaque dir, hardlinks) added by layer digest,
//       stacked over a layer of another image: equals umoci's unpack of the gzip image.
//   AddRemoveAndRefusals
//       a plain gzip layer is refused with ENOTSUP and a reason; an unknown layer ENOENT; a
//       layer added twice is one directory until removed twice; a removed layer's directory
//       is gone (ENOENT) and RemoveLayer then fails ENOENT; 8 threads adding the same layers
//       at once all get the same directories.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "fusefs/layer_store.h"
#include "tests/harness/hoistfs_mounts.h"
#include "tests/harness/mountinfo.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/harness/tree_walk.h"
#include "tests/index/ctr_remote_util.h"

#ifndef HOISTFS_BINARY
#error "HOISTFS_BINARY must name the hoistfs executable"
#endif
#ifndef HOIST_BINARY
#error "HOIST_BINARY must name the hoist executable"
#endif

namespace hoist {
namespace {

using harness::CompareTrees;
using harness::FileSpec;
using harness::LayerSpec;
using harness::TreeNode;
using harness::WalkTree;
using Tree = std::map<std::string, TreeNode>;

std::string CapabilityXattr() {
  const unsigned char b[20] = {0x01, 0, 0, 0x02, 0x00, 0x04, 0, 0, 0, 0,
                               0,    0, 0, 0,    0,    0,    0, 0, 0, 0};
  return std::string(reinterpret_cast<const char*>(b), sizeof(b));
}

// Three layers with every kind of entry and both markers, including a whiteout of a name the
// same layer makes again as a directory (which must come out opaque).
std::vector<LayerSpec> TestLayers() {
  return {
      {
          FileSpec::Dir("etc"),
          FileSpec::File("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
          FileSpec::File("etc/shadow", "secret\n", 0600).Owner(0, 42),
          FileSpec::Dir("bin"),
          FileSpec::File("bin/ping", "#!/bin/sh\necho ping\n", 0755)
              .Xattr("security.capability", CapabilityXattr()),
          FileSpec::File("bin/su", "su\n", 04755),
          FileSpec::File("bin/wall", "wall\n", 02755).Owner(0, 5),
          FileSpec::File("home/user/notes", "mine\n").Owner(1000, 1000).Mtime(1600000000),
          FileSpec::File("home/user/tagged", "x").Xattr("user.tag", "blue"),
          FileSpec::Dir("a"),
          FileSpec::File("a/keep", "keep\n"),
          FileSpec::File("a/gone", "gone\n"),
          FileSpec::Dir("a/sub"),
          FileSpec::File("a/sub/x", "x\n"),
          FileSpec::Dir("opq"),
          FileSpec::File("opq/old1", "old1\n"),
          FileSpec::Dir("remade"),
          FileSpec::File("remade/old", "old\n"),
          FileSpec::File("links/target", "shared by three names\n", 0640).Owner(7, 8),
          FileSpec::Hardlink("links/second", "links/target"),
          FileSpec::Hardlink("links/third", "links/target"),
          FileSpec::Symlink("links/sym", "../etc/passwd"),
          FileSpec::Symlink("links/dangling", "/nowhere/at/all"),
          FileSpec::CharDevice("dev/null", 1, 3),
          FileSpec::Fifo("run/fifo", 0600),
          FileSpec::Dir("sticky", 01777),
          FileSpec::BigFile("data/big", (3 << 20) + 12345, 99),
      },
      {
          FileSpec::Whiteout("a/gone").Owner(3, 4).Mtime(1650000000),
          FileSpec::Whiteout("a/sub"),
          FileSpec::Opaque("opq"),
          FileSpec::File("opq/new", "new\n"),
          FileSpec::File("etc/passwd", "root:x:0:0::/root:/bin/bash\n"),
          FileSpec::File("l2/h", "layer two hardlinked\n"),
          FileSpec::Hardlink("l2/h2", "l2/h"),
          FileSpec::Dir("xdir").Xattr("user.dir", "attr on a dir"),
          // Whited out and made again in this layer: the new directory must hide the old one.
          FileSpec::Whiteout("remade"),
          FileSpec::Dir("remade", 0700),
          FileSpec::File("remade/new", "new\n"),
      },
      {
          FileSpec::Whiteout("links/third"),
          FileSpec::File("a/sub", "a file where a dir was\n"),
          FileSpec::Symlink("etc/alias", "passwd"),
          // A whiteout of a name no lower layer has, in a directory a lower layer has. (In a
          // directory only this layer has, overlayfs would list the device in readdir:
          // ARCHITECTURE.md, "Layer views and the layer store".)
          FileSpec::Whiteout("etc/never-was"),
      },
  };
}

class LayerStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setup_error_ = new std::string();
    auto fail = [](const std::string& e) { *setup_error_ = e; };
    if (::geteuid() != 0) return fail("the layer store tests must run as root");
    if (::access("/dev/fuse", R_OK | W_OK) != 0)
      return fail("/dev/fuse is missing or not accessible: FUSE mounts cannot be tested");
    if (auto s = harness::RequirePrograms(
            {"skopeo", "umoci", "fusermount3", "docker-registry", "gzip", "tar"});
        !s)
      return fail(s.error().message());
    char tmpl[] = "/tmp/hls-XXXXXX";  // short: containerd's socket path must fit
    if (::mkdtemp(tmpl) == nullptr) return fail("mkdtemp failed");
    work_ = new std::string(tmpl);
    auto reg = harness::TestRegistry::Launch();
    if (!reg) return fail(reg.error().message());
    registry_ = reg->release();
    auto image = harness::BuildOciImage(*work_ + "/layout", TestLayers(), {.tag = "v1"});
    if (!image) return fail("building the image: " + image.error().message());
    image_ = new harness::BuiltImage(*image);
    if (auto s = harness::PushOciLayout(image_->OciRef(), registry_->DockerRef("ls/gz", "v1")); !s)
      return fail("push: " + s.error().message());
    auto convert =
        harness::RunForResult({HOIST_BINARY, "convert", "-q", registry_->DockerRef("ls/gz", "v1"),
                               registry_->DockerRef("ls/hoist", "v1")});
    if (!convert.ok()) return fail("hoist convert: " + convert.stderr_text);
    auto unpack = harness::RunChecked(
        {"umoci", "unpack", "--image", *work_ + "/layout:v1", *work_ + "/bundle"});
    if (!unpack) return fail("umoci unpack: " + unpack.error().message());
    auto want = WalkTree(*work_ + "/bundle/rootfs");
    if (!want) return fail(want.error().message());
    umoci_tree_ = new Tree(std::move(*want));
  }

  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
    const char* keep = std::getenv("HOIST_TEST_KEEP");
    if (work_ != nullptr && (keep == nullptr || *keep != '1')) (void)RemoveTree(*work_);
    delete work_;
    delete image_;
    delete umoci_tree_;
    work_ = nullptr;
    image_ = nullptr;
    umoci_tree_ = nullptr;
    delete setup_error_;  // a --gtest_repeat iteration makes a new one
    setup_error_ = nullptr;
  }

  void SetUp() override { ASSERT_TRUE(setup_error_->empty()) << *setup_error_; }

  void TearDown() override {
    for (auto it = overlays_.rbegin(); it != overlays_.rend(); ++it)
      (void)::umount2(it->c_str(), 0);
    store_.reset();
    mounts_.UnmountAll();
  }

  // A new directory, never one another test of the suite used: the number runs on across the
  // suite's tests (a per-test number gave every test's first StartStore the same cache, so one
  // test's stored layer indexes and chunks were another's "fresh" cache).
  std::string NewDir(const std::string& name) {
    const std::string dir = *work_ + "/" + name + "-" + std::to_string(counter_++);
    EXPECT_TRUE(MakeDirs(dir, 0755).has_value());
    return dir;
  }

  // The store mounted in this process, on a fresh directory with a fresh cache.
  LayerStore& StartStore(const std::string& prefetch = "none",
                         std::chrono::milliseconds tag_reuse = std::chrono::seconds(10),
                         const std::string& cache_dir = "") {
    MountOptions options;
    options.tag_reuse = tag_reuse;
    options.mountpoint = NewDir("store");
    options.cache_dir = cache_dir.empty() ? NewDir("cache") : cache_dir;
    options.prefetch = *ParsePrefetchMode(prefetch);
    auto store = LayerStore::Start(options);
    EXPECT_TRUE(store.has_value()) << store.error().message();
    store_ = std::move(*store);
    return *store_;
  }

  // `mount -t overlay -o ro,lowerdir=...` with `lowest_first` reversed (overlayfs wants the top
  // layer first).
  std::string Overlay(const std::vector<std::string>& lowest_first) {
    std::string lower;
    for (auto it = lowest_first.rbegin(); it != lowest_first.rend(); ++it)
      lower += (lower.empty() ? "" : ":") + *it;
    const std::string target = NewDir("overlay");
    const std::string data = "lowerdir=" + lower;
    EXPECT_EQ(::mount("overlay", target.c_str(), "overlay", MS_RDONLY, data.c_str()), 0)
        << "mount -t overlay " << data << ": " << std::strerror(errno);
    overlays_.push_back(target);
    return target;
  }

  static std::string Diffs(const Tree& want, const Tree& got, const std::string& name) {
    std::vector<std::string> diffs = CompareTrees(want, got, name);
    std::string shown;
    for (size_t i = 0; i < diffs.size() && i < 30; ++i) shown += diffs[i] + "\n";
    return diffs.empty() ? "" : std::to_string(diffs.size()) + " differences:\n" + shown;
  }

  static std::string* setup_error_;
  static std::string* work_;
  static harness::TestRegistry* registry_;
  static harness::BuiltImage* image_;
  static Tree* umoci_tree_;

  std::unique_ptr<LayerStore> store_;
  harness::HoistfsMounts mounts_{HOISTFS_BINARY};
  std::vector<std::string> overlays_;
  static int counter_;
};

std::string* LayerStoreTest::setup_error_ = nullptr;
std::string* LayerStoreTest::work_ = nullptr;
harness::TestRegistry* LayerStoreTest::registry_ = nullptr;
harness::BuiltImage* LayerStoreTest::image_ = nullptr;
Tree* LayerStoreTest::umoci_tree_ = nullptr;
int LayerStoreTest::counter_ = 0;

// What overlayfs must see for one layer, made WITHOUT hoist: GNU tar extracts the layer's own
// tar (owners, modes, xattrs, mtimes), then each marker is turned into overlayfs's form as
// containerd's overlay applier does (and as merged_view.h "Layer views" says): ".wh.X" becomes
// a 0/0 character device X with mode 0 and the marker's owner and mtime, unless X exists (a
// directory X is made opaque, a non-directory X stays); ".wh..wh..opq" sets
// trusted.overlay.opaque=y on its directory. Directory mtimes are restored afterwards.
Result<Tree> ReferenceLayer(const std::string& blob_path, const std::string& dir) {
  HOIST_RETURN_IF_ERROR(MakeDirs(dir, 0755));
  HOIST_RETURN_IF_ERROR(
      harness::RunChecked({"tar", "-xzf", blob_path, "-C", dir, "--xattrs", "--xattrs-include=*",
                           "--numeric-owner", "--same-permissions", "--same-owner"}));
  std::vector<std::filesystem::path> markers;
  for (auto it = std::filesystem::recursive_directory_iterator(dir);
       it != std::filesystem::recursive_directory_iterator(); ++it) {
    if (it->path().filename().string().starts_with(".wh.")) markers.push_back(it->path());
  }
  std::map<std::string, struct stat> dir_times;  // parents to restore
  for (const auto& m : markers) {
    struct stat parent {};
    if (::lstat(m.parent_path().c_str(), &parent) != 0) return Fail(ErrnoError("lstat parent"));
    dir_times.emplace(m.parent_path().string(), parent);
  }
  for (const auto& m : markers) {
    const std::string name = m.filename().string();
    const std::string parent = m.parent_path().string();
    struct stat marker {};
    if (::lstat(m.c_str(), &marker) != 0) return Fail(ErrnoError("lstat " + m.string()));
    if (::unlink(m.c_str()) != 0) return Fail(ErrnoError("unlink " + m.string()));
    if (name == ".wh..wh..opq") {
      if (::lsetxattr(parent.c_str(), "trusted.overlay.opaque", "y", 1, 0) != 0)
        return Fail(ErrnoError("setxattr " + parent));
      continue;
    }
    const std::string target = parent + "/" + name.substr(4);
    struct stat existing {};
    if (::lstat(target.c_str(), &existing) == 0) {
      if (S_ISDIR(existing.st_mode) &&
          ::lsetxattr(target.c_str(), "trusted.overlay.opaque", "y", 1, 0) != 0)
        return Fail(ErrnoError("setxattr " + target));
      continue;
    }
    if (::mknod(target.c_str(), S_IFCHR, makedev(0, 0)) != 0)
      return Fail(ErrnoError("mknod " + target));
    if (::chmod(target.c_str(), 0) != 0) return Fail(ErrnoError("chmod " + target));
    if (::lchown(target.c_str(), marker.st_uid, marker.st_gid) != 0)
      return Fail(ErrnoError("lchown " + target));
    const timespec times[2] = {marker.st_mtim, marker.st_mtim};
    if (::utimensat(AT_FDCWD, target.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
      return Fail(ErrnoError("utimensat " + target));
  }
  for (const auto& [path, st] : dir_times) {
    const timespec times[2] = {st.st_mtim, st.st_mtim};
    if (::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
      return Fail(ErrnoError("utimensat " + path));
  }
  return WalkTree(dir);
}

std::string OpaqueOf(const std::string& path) {
  char value[8] = {};
  ssize_t n = ::lgetxattr(path.c_str(), "trusted.overlay.opaque", value, sizeof(value));
  if (n < 0) return "errno " + std::to_string(errno);
  return std::string(value, static_cast<size_t>(n));
}

TEST_F(LayerStoreTest, EachLayerDirIsTheLayerAsAnOverlayLower) {
  LayerStore& store = StartStore();
  auto dirs = store.AddImage(registry_->ImageRef("ls/hoist", "v1"));
  ASSERT_TRUE(dirs.has_value()) << dirs.error().message();
  ASSERT_EQ(dirs->size(), 3u);
  // The converted image's layers: their digests name the directories, lowest first.
  for (size_t i = 0; i < dirs->size(); ++i) {
    SCOPED_TRACE("layer " + std::to_string(i + 1));
    auto want = ReferenceLayer(image_->layers[i].blob_path, NewDir("reference"));
    ASSERT_TRUE(want.has_value()) << want.error().message();
    auto got = WalkTree((*dirs)[i]);
    ASSERT_TRUE(got.has_value()) << got.error().message();
    EXPECT_EQ(Diffs(*want, *got, "layer dir"), "");
  }
  const std::string l1 = (*dirs)[0], l2 = (*dirs)[1], l3 = (*dirs)[2];
  // Spot checks of what the comparison covers, stated plainly.
  struct stat st {};
  ASSERT_EQ(::lstat((l2 + "/a/gone").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, static_cast<mode_t>(S_IFCHR));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  EXPECT_EQ(st.st_uid, 3u);
  EXPECT_EQ(st.st_gid, 4u);
  EXPECT_EQ(st.st_mtime, 1650000000);
  EXPECT_EQ(OpaqueOf(l2 + "/opq"), "y");
  EXPECT_EQ(OpaqueOf(l2 + "/remade"), "y");
  EXPECT_EQ(OpaqueOf(l2 + "/xdir"), "errno " + std::to_string(ENODATA));
  EXPECT_EQ(OpaqueOf(l1 + "/opq"), "errno " + std::to_string(ENODATA));
  EXPECT_NE(::access((l2 + "/opq/.wh..wh..opq").c_str(), F_OK), 0);
  EXPECT_NE(::access((l2 + "/a/.wh.gone").c_str(), F_OK), 0);
  struct stat a {
  }, b{};
  ASSERT_EQ(::lstat((l1 + "/links/target").c_str(), &a), 0);
  ASSERT_EQ(::lstat((l1 + "/links/third").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 3u);
  ASSERT_EQ(::lstat((l1 + "/dev/null").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, static_cast<mode_t>(S_IFCHR | 0666));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  ASSERT_EQ(::lstat((l1 + "/bin/su").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, static_cast<mode_t>(S_IFREG | 04755));
  ASSERT_EQ(::lstat((l3 + "/etc/never-was").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, static_cast<mode_t>(S_IFCHR));
  // The store's root lists the layers in the order they were added.
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(store.mountpoint()))
    names.push_back(e.path().string());
  std::sort(names.begin(), names.end());
  std::vector<std::string> sorted_dirs = *dirs;
  std::sort(sorted_dirs.begin(), sorted_dirs.end());
  EXPECT_EQ(names, sorted_dirs);
}

TEST_F(LayerStoreTest, StackedLayersEqualUmociUnpack) {
  LayerStore& store = StartStore();
  auto dirs = store.AddImage(registry_->ImageRef("ls/hoist", "v1"));
  ASSERT_TRUE(dirs.has_value()) << dirs.error().message();
  const std::string target = Overlay(*dirs);
  auto got = WalkTree(target);
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(Diffs(*umoci_tree_, *got, "overlay of the layer store"), "");
  ASSERT_TRUE(umoci_tree_->count("remade/new"));
  EXPECT_FALSE(umoci_tree_->count("remade/old"));
  EXPECT_EQ(*ReadFile(target + "/data/big"), harness::PatternBytes(99, 0, (3 << 20) + 12345));
}

TEST_F(LayerStoreTest, HoistfsLayersMode) {
  const std::string mp = NewDir("layers-mnt");
  harness::CommandResult r =
      mounts_.Mount(registry_->ImageRef("ls/hoist", "v1"), mp, NewDir("layers-cache"),
                    {"--layers", "-o", "prefetch=none"});
  ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
  // `ls -f` order: lowest first.
  auto ls = harness::RunChecked({"ls", "-f", mp});
  ASSERT_TRUE(ls.has_value()) << ls.error().message();
  auto resolved = RegistryClient::CreateDefault();
  ASSERT_TRUE(resolved.has_value());
  auto image = (*resolved)->Resolve(*Reference::Parse(registry_->ImageRef("ls/hoist", "v1")));
  ASSERT_TRUE(image.has_value()) << image.error().message();
  std::string want_ls = ".\n..\n";
  std::vector<std::string> dirs;
  for (const Descriptor& d : image->manifest.layers) {
    want_ls += d.digest.hex() + "\n";
    dirs.push_back(mp + "/" + d.digest.hex());
  }
  EXPECT_EQ(*ls, want_ls);
  const std::string target = Overlay(dirs);
  auto got = WalkTree(target);
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(Diffs(*umoci_tree_, *got, "overlay of hoistfs --layers"), "");
  // `hoist stats` reads the store's state file: the bytes just read were fetched (the file is
  // rewritten every second; wait for the condition, at most 10 s).
  auto fetched = [](const std::string& json) -> uint64_t {
    auto at = json.find("\"bytes_fetched\":");
    return at == std::string::npos ? 0 : std::strtoull(json.c_str() + at + 16, nullptr, 10);
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::string stats;
  while (std::chrono::steady_clock::now() < deadline) {
    stats = harness::RunForResult({HOIST_BINARY, "stats", "--json", mp}).stdout_text;
    if (fetched(stats) >= (3u << 20)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(stats.find("\"image\":\"layers\""), std::string::npos) << stats;
  EXPECT_GE(fetched(stats), 3u << 20) << stats;
  ASSERT_EQ(::umount2(target.c_str(), 0), 0);
  overlays_.clear();
  Status u = mounts_.Unmount(mp);
  EXPECT_TRUE(u.has_value()) << u.error().message();
  EXPECT_FALSE(harness::IsMounted(mp));

  // An image with a layer that cannot be lazy: exit 1, one line naming the layer, no mount.
  const std::string gz_mp = NewDir("layers-gz-mnt");
  harness::CommandResult gz = mounts_.Mount(registry_->ImageRef("ls/gz", "v1"), gz_mp,
                                            NewDir("layers-gz-cache"), {"--layers"});
  EXPECT_EQ(gz.exit_code, 1) << gz.Describe();
  EXPECT_EQ(gz.stderr_text,
            "hoistfs: layer " + image_->layers[0].digest.str() +
                ": application/vnd.oci.image.layer.v1.tar+gzip without a TOC "
                "(not zstd:chunked or eStargz): it can only be read whole; the host store has no "
                "checkpoint index of it and none is published next to the image (a hoistfs mount "
                "or `hoist pull` of the image builds one; `hoist index` publishes one)\n");
  EXPECT_FALSE(harness::IsMounted(gz_mp));
}

TEST_F(LayerStoreTest, GzipLayersWithAStoredIndexAreLazy) {
  // A hoistfs mount of the gzip image indexes its layers into the host store.
  const std::string cache = NewDir("gz-cache");
  const std::string mp = NewDir("gz-mnt");
  harness::CommandResult r =
      mounts_.Mount(registry_->ImageRef("ls/gz", "v1"), mp, cache, {"-o", "prefetch=none"});
  ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
  ASSERT_TRUE(mounts_.Unmount(mp).has_value());

  // A fresh store on that host store: every layer admitted, from the stored index.
  LayerStore& store = StartStore("none", std::chrono::seconds(10), cache);
  const uint64_t mark = registry_->LogMark();
  auto dirs = store.AddImage(registry_->ImageRef("ls/gz", "v1"));
  ASSERT_TRUE(dirs.has_value()) << dirs.error().message();
  ASSERT_EQ(dirs->size(), image_->layers.size());
  // A cold read of a small file: one span of its blob, not the blob.
  auto passwd = ReadFile((*dirs)[0] + "/etc/passwd");
  ASSERT_TRUE(passwd.has_value()) << passwd.error().message();
  EXPECT_EQ(*passwd, "root:x:0:0::/root:/bin/sh\n");
  const harness::BuiltLayer& first = image_->layers[0];
  auto requests = registry_->Requests(mark);
  ASSERT_TRUE(requests.has_value());
  uint64_t sent = 0;
  int gets = 0;
  for (const auto& q : *requests) {
    if (!q.IsBlobGet() || q.uri.find(first.digest.str()) == std::string::npos) continue;
    sent += q.bytes_written;
    ++gets;
  }
  EXPECT_EQ(gets, 1);
  EXPECT_GT(first.size, 2u << 20);
  EXPECT_LE(sent, (1u << 20) + (64u << 10)) << "of a " << first.size << "-byte blob";
  std::cout << "cold read of a small file: " << gets << " GET, " << sent << " bytes of the "
            << first.size << "-byte blob\n";
  // Stacked: the image exactly (every byte through the spans).
  const std::string target = Overlay(*dirs);
  auto got = WalkTree(target);
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(Diffs(*umoci_tree_, *got, "overlay of the lazy gzip layers"), "");
}

// A fresh host (empty cache) and an index published next to the image (`hoist index`, in a
// repository of its own so the other tests' ls/gz has none): every layer admitted from the
// published table, a cold read of a small file fetches one span of its blob and at most one
// window (a Range of the windows blob), every blob read by Range only; the stack equals umoci's.
// Its host store (cache directory) is its own, as every test's is (NewDir): the indexes and
// chunks it stores there are in no other test's "fresh" cache.
TEST_F(LayerStoreTest, GzipLayersWithAPublishedIndexAreLazyOnAFreshHost) {
  const std::string ref = registry_->ImageRef("ls/gz-indexed", "v1");
  ASSERT_TRUE(
      harness::PushOciLayout(image_->OciRef(), registry_->DockerRef("ls/gz-indexed", "v1")));
  harness::CommandResult indexed = harness::RunForResult({HOIST_BINARY, "index", ref});
  ASSERT_TRUE(indexed.ok()) << indexed.Describe() << ": " << indexed.stderr_text;

  LayerStore& store = StartStore("none");
  const uint64_t mark = registry_->LogMark();
  auto dirs = store.AddImage(ref);
  ASSERT_TRUE(dirs.has_value()) << dirs.error().message();
  ASSERT_EQ(dirs->size(), image_->layers.size());
  auto passwd = ReadFile((*dirs)[0] + "/etc/passwd");
  ASSERT_TRUE(passwd.has_value()) << passwd.error().message();
  EXPECT_EQ(*passwd, "root:x:0:0::/root:/bin/sh\n");
  const harness::BuiltLayer& first = image_->layers[0];
  auto requests = registry_->Requests(mark);
  ASSERT_TRUE(requests.has_value());
  uint64_t sent = 0, other = 0;
  int gets = 0;
  for (const auto& q : *requests) {
    if (!q.IsBlobGet()) continue;
    if (q.uri.find(first.digest.str()) != std::string::npos) {
      sent += q.bytes_written;
      ++gets;
      EXPECT_EQ(q.status, 206) << q.uri;
    } else {
      other += q.bytes_written;  // the artifact's tables and windows, the config
    }
  }
  EXPECT_EQ(gets, 1);
  EXPECT_GT(first.size, 2u << 20);
  EXPECT_LE(sent, (1u << 20) + (64u << 10)) << "of a " << first.size << "-byte blob";
  EXPECT_LT(other, first.size / 4);
  std::cout << "fresh host, published index: cold read of a small file: " << gets << " GET, "
            << sent << " bytes of the " << first.size << "-byte blob; " << other
            << " bytes of other blobs (index tables, windows, config)\n";
  const std::string target = Overlay(*dirs);
  auto got = WalkTree(target);
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(Diffs(*umoci_tree_, *got, "overlay of the lazy gzip layers"), "");
  // Every read went through spans (Range requests; data/big's span is most of the first blob).
  requests = registry_->Requests(mark);
  ASSERT_TRUE(requests.has_value());
  for (const auto& q : *requests) {
    for (const harness::BuiltLayer& l : image_->layers) {
      if (q.IsBlobGet() && q.uri.find(l.digest.str()) != std::string::npos) {
        EXPECT_EQ(q.status, 206) << q.uri;
      }
    }
  }
}

TEST_F(LayerStoreTest, PrefetchedLayersServeEveryByteWithTheRegistryStopped) {
  LayerStore& store = StartStore("all");
  auto dirs = store.AddImage(registry_->ImageRef("ls/hoist", "v1"));
  ASSERT_TRUE(dirs.has_value()) << dirs.error().message();
  auto client = RegistryClient::CreateDefault();
  ASSERT_TRUE(client.has_value());
  auto image = (*client)->Resolve(*Reference::Parse(registry_->ImageRef("ls/hoist", "v1")));
  ASSERT_TRUE(image.has_value()) << image.error().message();
  for (const Descriptor& d : image->manifest.layers)
    ASSERT_TRUE(store.WaitPrefetched(d.digest, std::chrono::seconds(120))) << d.digest.str();
  registry_->Stop();
  const std::string target = Overlay(*dirs);
  auto got = WalkTree(target);  // reads every byte
  ASSERT_TRUE(registry_->Start().has_value());
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(Diffs(*umoci_tree_, *got, "overlay of the prefetched store"), "");
}

TEST_F(LayerStoreTest, RemovalAndTeardownUnderAMountedOverlay) {
  LayerStore& store = StartStore();
  auto dirs = store.AddImage(registry_->ImageRef("ls/hoist", "v1"));
  ASSERT_TRUE(dirs.has_value()) << dirs.error().message();
  const std::string target = Overlay(*dirs);
  EXPECT_EQ(*ReadFile(target + "/etc/passwd"), "root:x:0:0::/root:/bin/bash\n");
  // The top layer goes while the overlay stacks it: what the kernel has not looked up fails
  // with ESTALE (from the store) instead of serving anything stale.
  auto client = RegistryClient::CreateDefault();
  ASSERT_TRUE(client.has_value());
  auto image = (*client)->Resolve(*Reference::Parse(registry_->ImageRef("ls/hoist", "v1")));
  ASSERT_TRUE(image.has_value()) << image.error().message();
  ASSERT_TRUE(store.RemoveLayer(image->manifest.layers[2].digest).has_value());
  struct stat st {};
  EXPECT_EQ(::lstat((target + "/etc/alias").c_str(), &st), -1);
  EXPECT_EQ(errno, ESTALE);
  // overlayfs asks every layer, top first, so the removed top layer fails the lower paths too:
  // the snapshotter removes only layers no mounted overlay uses.
  EXPECT_EQ(::lstat((target + "/home/user/notes").c_str(), &st), -1);
  EXPECT_EQ(errno, ESTALE);
  // The store goes while the overlay is still mounted: the destructor returns (the FUSE
  // connection is aborted), the store's mount is gone, the overlay's uncached reads fail.
  const std::string mountpoint = store.mountpoint();
  store_.reset();
  EXPECT_FALSE(harness::IsMounted(mountpoint));
  auto gone = ReadFile(target + "/bin/su");
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code(), ENOTCONN) << gone.error().message();
  EXPECT_EQ(::umount2(target.c_str(), 0), 0) << std::strerror(errno);
  overlays_.clear();
}

TEST_F(LayerStoreTest, EstargzLayerStacksOverAZstdChunkedLayer) {
  // The upper layer as eStargz by ctr-remote; the lower one from the hoist-converted image.
  std::vector<LayerSpec> layers = TestLayers();
  layers.resize(2);
  const std::string dir = NewDir("esgz");
  ASSERT_TRUE(harness::BuildLayerTar(layers[1], dir + "/stage", dir + "/upper.tar").has_value());
  auto cd = testing::PrivateContainerd::Start(dir);
  ASSERT_TRUE(cd.has_value()) << cd.error().message();
  auto esgz =
      (*cd)->Convert(dir + "/upper.tar", "esgz", {"--estargz", "--estargz-chunk-size", "65536"});
  ASSERT_TRUE(esgz.has_value()) << esgz.error().message();
  ASSERT_TRUE(esgz->annotations.contains("containerd.io/snapshot/stargz/toc.digest"));
  ASSERT_TRUE(
      harness::PushOciLayout("oci:" + dir + "/esgz/out", registry_->DockerRef("ls/esgz", "v1"))
          .has_value());
  // The reference: umoci's unpack of the gzip image of the same two layers.
  auto image = harness::BuildOciImage(dir + "/layout", layers, {.tag = "v1"});
  ASSERT_TRUE(image.has_value()) << image.error().message();
  auto unpack =
      harness::RunChecked({"umoci", "unpack", "--image", dir + "/layout:v1", dir + "/bundle"});
  ASSERT_TRUE(unpack.has_value()) << unpack.error().message();
  auto want = WalkTree(dir + "/bundle/rootfs");
  ASSERT_TRUE(want.has_value()) << want.error().message();

  LayerStore& store = StartStore();
  auto lower = store.AddImage(registry_->ImageRef("ls/hoist", "v1"));
  ASSERT_TRUE(lower.has_value()) << lower.error().message();
  auto upper = store.AddLayer(registry_->ImageRef("ls/esgz", "v1"), esgz->layer_digest);
  ASSERT_TRUE(upper.has_value()) << upper.error().message();
  // The eStargz layer dir equals its tar as an overlay lower, like the zstd:chunked ones.
  auto ref_upper = ReferenceLayer(image->layers[1].blob_path, NewDir("esgz-reference"));
  ASSERT_TRUE(ref_upper.has_value()) << ref_upper.error().message();
  auto got_upper = WalkTree(*upper);
  ASSERT_TRUE(got_upper.has_value()) << got_upper.error().message();
  EXPECT_EQ(Diffs(*ref_upper, *got_upper, "eStargz layer dir"), "");
  const std::string target = Overlay({(*lower)[0], *upper});
  auto got = WalkTree(target);
  ASSERT_TRUE(got.has_value()) << got.error().message();
  EXPECT_EQ(Diffs(*want, *got, "overlay with the eStargz layer"), "");
}

TEST_F(LayerStoreTest, AddRemoveAndRefusals) {
  LayerStore& store = StartStore();
  // A plain gzip layer cannot be lazy: refused, with the reason.
  auto gz = store.AddLayer(registry_->ImageRef("ls/gz", "v1"), image_->layers[0].digest);
  ASSERT_FALSE(gz.has_value());
  EXPECT_EQ(gz.error().code(), ENOTSUP);
  EXPECT_NE(gz.error().message().find("without a TOC"), std::string::npos) << gz.error().message();
  EXPECT_EQ(store.layer_count(), 0u);
  // A digest the image does not have.
  auto missing = store.AddLayer(registry_->ImageRef("ls/hoist", "v1"), Digest::Of("nope"));
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), ENOENT);
  // A bad reference.
  auto bad = store.AddLayer("not a reference", Digest::Of("x"));
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), EINVAL) << bad.error().message();

  auto client = RegistryClient::CreateDefault();
  ASSERT_TRUE(client.has_value());
  auto image = (*client)->Resolve(*Reference::Parse(registry_->ImageRef("ls/hoist", "v1")));
  ASSERT_TRUE(image.has_value()) << image.error().message();
  const std::vector<Descriptor>& layers = image->manifest.layers;
  ASSERT_EQ(layers.size(), 3u);
  // Eight threads add every layer at once, pinned to the manifest digest: one load each, the
  // same directories for all.
  std::vector<std::vector<std::string>> got(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (const Descriptor& d : layers) {
        auto dir = store.AddLayer(registry_->ImageRef("ls/hoist", "v1"), d.digest,
                                  image->manifest_bytes.digest);
        got[t].push_back(dir ? *dir : "error: " + dir.error().message());
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int t = 0; t < 8; ++t) {
    for (size_t i = 0; i < layers.size(); ++i)
      EXPECT_EQ(got[t][i], store.mountpoint() + "/" + layers[i].digest.hex());
  }
  EXPECT_EQ(store.layer_count(), 3u);
  const std::string top = got[0][2];
  // Seven of the eight references go: still there.
  for (int t = 0; t < 7; ++t) ASSERT_TRUE(store.RemoveLayer(layers[2].digest).has_value());
  struct stat st {};
  EXPECT_EQ(::lstat((top + "/links/third").c_str(), &st), 0);
  // The last one: the directory is gone, and a further remove is an error.
  ASSERT_TRUE(store.RemoveLayer(layers[2].digest).has_value());
  EXPECT_EQ(::lstat(top.c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
  auto again = store.RemoveLayer(layers[2].digest);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), ENOENT);
  EXPECT_EQ(store.layer_count(), 2u);
  // Added again (from the host store's index now): served at the same path.
  auto back = store.AddLayer(registry_->ImageRef("ls/hoist", "v1"), layers[2].digest);
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(*back, top);
  EXPECT_EQ(*ReadFile(top + "/a/sub"), "a file where a dir was\n");
}

// The Prepare calls of one pull name the image by tag (ctr-remote's labels carry no manifest
// digest): the store resolves the tag once and reuses it for the pull's other layers, and
// resolves it again when the reused manifest lacks the layer asked for (the tag moved).
TEST_F(LayerStoreTest, ATagIsReusedForAPullAndResolvedAgainWhenItMoved) {
  // A reuse window no slow machine outlasts: what is tested is which manifest serves.
  LayerStore& store = StartStore("none", std::chrono::minutes(10));
  const std::string moving = registry_->ImageRef("ls/moving", "v1");
  harness::CommandResult copy = harness::RunForResult(
      {"skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
       registry_->DockerRef("ls/hoist", "v1"), registry_->DockerRef("ls/moving", "v1")});
  ASSERT_TRUE(copy.ok()) << copy.stderr_text;
  auto client = RegistryClient::CreateDefault();
  ASSERT_TRUE(client.has_value());
  auto image = (*client)->Resolve(*Reference::Parse(moving));
  ASSERT_TRUE(image.has_value()) << image.error().message();
  const std::vector<Descriptor>& layers = image->manifest.layers;
  ASSERT_EQ(layers.size(), 3u);
  auto first = store.AddLayer(moving, layers[0].digest);
  ASSERT_TRUE(first.has_value()) << first.error().message();

  // The tag moves to the gzip image (the old blobs stay in the repository).
  auto pushed = harness::PushOciLayout(image_->OciRef(), registry_->DockerRef("ls/moving", "v1"));
  ASSERT_TRUE(pushed.has_value()) << pushed.error().message();
  // The pull goes on with the manifest it started with: its layers are still served.
  for (size_t i = 1; i < 3; ++i) {
    auto dir = store.AddLayer(moving, layers[i].digest);
    ASSERT_TRUE(dir.has_value()) << dir.error().message();
    EXPECT_EQ(*dir, store.mountpoint() + "/" + layers[i].digest.hex());
  }
  // A layer the reused manifest lacks: the tag is resolved again, and the gzip layer is found
  // there and refused for what it is (no TOC), not as missing.
  auto gz = store.AddLayer(moving, image_->layers[0].digest);
  ASSERT_FALSE(gz.has_value());
  EXPECT_EQ(gz.error().code(), ENOTSUP) << gz.error().message();
  // And a layer neither manifest has is missing.
  auto none = store.AddLayer(moving, Digest::Of("no such layer"));
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code(), ENOENT) << none.error().message();
}

}  // namespace
}  // namespace hoist
