// One conformance suite for every image transport (issue 12): the same source image goes in,
// the same image comes out. REAL registry, REAL skopeo and umoci, the real hoist and hoistfs
// binaries, REAL FUSE mounts (root); missing tools FAIL the suite, never skip it.
//
// The source image: three layers (gzip, uncompressed, gzip) built by the harness with the real
// GNU tar: owners and modes (setuid, 0600, 0750 directories), xattrs on a file and a directory, a
// hardlink, relative and absolute symlinks, a fifo, a 3 MiB file, a whiteout, an opaque
// directory, a file replaced by an upper layer. It is pushed to the local registry
// (conform/src:v1) with skopeo --preserve-digests. The expected tree is `umoci unpack` of it.
//
// Per transport (one TEST_P case each), every producer that can write it puts the image in:
//   oci:             skopeo copy; hoist push; hoist convert
//   oci-archive:     skopeo copy; hoist push; hoist save --format oci-archive; hoist convert
//   docker-archive:  skopeo copy (and that archive gzip-compressed); hoist save
//   docker://        skopeo copy (the source push); hoist push and hoist convert (from the
//                    source's OCI layout)
//   local store      hoist pull; hoist load of skopeo's oci-archive and of its docker-archive
//   rootfs:          the directory umoci unpacked (no hoist writer: rootfs: is a source only)
// and every copy is read back through hoist: the transport's ImageSource in this process (the
// manifest, the config blob, and every layer blob decompressed and hashed), `hoist inspect --raw`
// and `--config` (the CLI), and the tree: the copy is pushed by `hoist push` (the same
// ImageSource, byte for byte) to the registry and mounted by hoistfs (the local store is mounted
// --offline from its cache, docker:// directly), walked, and compared with umoci's tree.
//
// What must come out (image_transport.h states the same):
//   - manifest: the source's exact bytes and digest (oci:, oci-archive:, docker://, local store).
//     Exception docker-archive: the archive has no manifest and stores layers uncompressed; hoist
//     serves a synthesised OCI manifest whose layer i is the uncompressed tar (digest = diff_id i,
//     media type ...layer.v1.tar); `hoist load` of one keeps the same layers under a Docker v2
//     manifest (...rootfs.diff.tar). Exception hoist convert: the same tars re-encoded as
//     zstd:chunked (media type ...tar+zstd), so a new manifest. Exception rootfs: a new one-layer
//     image (its own config).
//   - config: the source's exact bytes (every transport but rootfs:), so the same diff_ids.
//   - layers: each blob, decompressed, hashes to its diff_id; where the manifest is kept the
//     blob itself hashes to the manifest's layer digest.
//   - tree: umoci's, exactly (paths, types, modes, uids, gids, mtimes, sizes, content hashes, link
//     targets, xattrs, hardlink groups), for every transport.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "fetcher/manifest.h"
#include "tests/harness/hoist_cli.h"
#include "tests/harness/hoistfs_mounts.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/harness/tree_walk.h"
#include "tools/image/image_stream.h"
#include "tools/image/image_transport.h"
#include "tools/image/local_store.h"

#ifndef HOIST_BINARY
#error "HOIST_BINARY must name the hoist executable"
#endif
#ifndef HOISTFS_BINARY
#error "HOISTFS_BINARY must name the hoistfs executable"
#endif

namespace hoist {
namespace {

using harness::CommandResult;
using harness::FileSpec;
using harness::LayerCompression;
using harness::LayerSpec;
using harness::RunHoist;
using Tree = std::map<std::string, harness::TreeNode>;

enum class Transport { kOci, kOciArchive, kDockerArchive, kDocker, kLocalStore, kDir };

std::string TransportName(Transport t) {
  switch (t) {
    case Transport::kOci:
      return "oci";
    case Transport::kOciArchive:
      return "oci_archive";
    case Transport::kDockerArchive:
      return "docker_archive";
    case Transport::kDocker:
      return "docker";
    case Transport::kLocalStore:
      return "local_store";
    case Transport::kDir:
      return "rootfs";
  }
  return "?";
}

// gtest and ctest print the transport's name, not its bytes.
void PrintTo(Transport t, std::ostream* os) { *os << TransportName(t); }

// What a copy must keep of the source (see the file comment).
enum class Keeps {
  kManifest,            // manifest bytes, config bytes, layer blobs
  kConfigUncompressed,  // docker-archive: config bytes; layers stored as uncompressed tars
  kConfigConverted,     // hoist convert: config bytes; layers re-encoded as zstd:chunked
  kTree,                // rootfs: the tree only
};

// One copy of the source image in a transport.
struct Copy {
  std::string producer;  // "skopeo copy", "hoist push", ...
  std::string name;      // hoist's name for it: "oci:/dir:v1", a local image name, ...
  Keeps keeps = Keeps::kManifest;
  std::string cache;  // the local store's cache dir (kLocalStore only)
  // kConfigUncompressed: the media type of the uncompressed layers (hoist load keeps a
  // docker-archive as a Docker v2 image, the docker-archive: source serves OCI types).
  std::string uncompressed_type = std::string(kMediaTypeOciLayerTar);
  std::string manifest_type = std::string(kMediaTypeOciManifest);
};

CommandResult RunTool(const std::vector<std::string>& argv) {
  harness::CommandOptions o;
  o.timeout = std::chrono::minutes(5);
  return harness::RunForResult(argv, o);
}

// sha256 of a layer blob as the source streams it, and of its uncompressed tar.
struct LayerHashes {
  Digest stored;
  Digest plain;
};

Result<LayerHashes> HashLayer(ImageSource& source, const Descriptor& layer) {
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<ByteReader> blob, source.OpenBlob(layer));
  HashingReader raw(std::move(blob));
  std::string head(512, '\0');
  HOIST_ASSIGN_OR_RETURN(size_t got, ReadFull(raw, head.data(), head.size()));
  head.resize(got);
  const Compression c = DetectCompression(head);
  PrefixedReader prefixed(head, &raw);
  LayerHashes h;
  if (c == Compression::kNone) {
    HOIST_RETURN_IF_ERROR(Drain(prefixed));
  } else {
    HashingReader plain(NewDecompressor(c, &prefixed));
    HOIST_RETURN_IF_ERROR(Drain(plain));
    h.plain = plain.Finish();
  }
  HOIST_RETURN_IF_ERROR(Drain(raw));
  h.stored = raw.Finish();
  if (c == Compression::kNone) h.plain = h.stored;
  return h;
}

// The source image's layers: see the file comment.
std::vector<LayerSpec> SourceLayers() {
  return {
      LayerSpec(
          {
              FileSpec::Dir("etc"),
              FileSpec::File("etc/hosts", "127.0.0.1 localhost\n"),
              FileSpec::File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
              FileSpec::File("usr/bin/tool", "#!/bin/sh\necho tool\n", 0755).Owner(1000, 1000),
              FileSpec::Hardlink("usr/bin/tool-hard", "usr/bin/tool"),
              FileSpec::Symlink("usr/bin/link", "tool"),
              FileSpec::File("usr/bin/su", "setuid\n", 04755),
              FileSpec::File("srv/secret", "s3cret\n", 0600).Owner(123, 456).Xattr("user.k", "v"),
              FileSpec::Dir("opt/app", 0750).Owner(10, 20).Xattr("user.dir", "on a dir"),
              FileSpec::Fifo("run/pipe", 0620),
              FileSpec::File("var/old", "to be whited out\n"),
              FileSpec::Dir("var/cache"),
              FileSpec::File("var/cache/lower", "hidden by the opaque dir\n"),
              FileSpec::BigFile("data/big", 3 << 20, /*seed=*/7),
          },
          LayerCompression::kGzip),
      LayerSpec(
          {
              FileSpec::Whiteout("var/old"),
              FileSpec::Opaque("var/cache"),
              FileSpec::File("var/cache/upper", "upper\n").Mtime(1700000123),
              FileSpec::File("etc/hosts", "127.0.0.1 replaced\n"),
              FileSpec::File("srv/new", "new\n", 0640).Owner(5, 6).Xattr("user.a", "1"),
          },
          LayerCompression::kNone),
      LayerSpec(
          {
              FileSpec::Symlink("etc/alt-hosts", "/etc/hosts"),
              FileSpec::Whiteout("usr/bin/link"),
              // The directory again, with new metadata (the upper layer's wins).
              FileSpec::Dir("opt/app", 0750).Owner(10, 20).Xattr("user.dir", "upper"),
              FileSpec::Dir("opt/app/sub", 0700).Owner(10, 20),
              FileSpec::File("opt/app/sub/conf", "k=v\n", 0400).Owner(10, 20),
          },
          LayerCompression::kGzip),
  };
}

class TransportConformanceTest : public ::testing::TestWithParam<Transport> {
 protected:
  static void SetUpTestSuite() {
    setup_error_ = new std::string();
    auto fail = [](const std::string& e) { *setup_error_ = e; };
    if (::geteuid() != 0) return fail("the transport conformance tests must run as root");
    if (auto s = harness::RequirePrograms(
            {"skopeo", "umoci", "fusermount3", "docker-registry", "gzip", "tar"});
        !s) {
      return fail(s.error().message());
    }
    const char* tmp = ::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/hoist-conform-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) return fail("mkdtemp " + templ);
    work_ = new std::string(templ);
    auto reg = harness::TestRegistry::Launch();
    if (!reg) return fail(reg.error().message());
    registry_ = reg->release();
    auto image = harness::BuildOciImage(*work_ + "/src", SourceLayers(), {.tag = "v1"});
    if (!image) return fail("building the source image: " + image.error().message());
    source_ = new harness::BuiltImage(*image);
    if (auto p =
            harness::PushOciLayout(source_->OciRef(), registry_->DockerRef("conform/src", "v1"));
        !p) {
      return fail(p.error().message());
    }
    const std::string bundle = *work_ + "/umoci-bundle";
    CommandResult u = RunTool({"umoci", "unpack", "--image", *work_ + "/src:v1", bundle});
    if (!u.ok()) return fail("umoci unpack: " + u.stderr_text);
    rootfs_ = new std::string(bundle + "/rootfs");
    auto tree = harness::WalkTree(*rootfs_);
    if (!tree) return fail(tree.error().message());
    want_ = new Tree(std::move(*tree));
  }

  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
    const char* keep = std::getenv("HOIST_TEST_KEEP");
    if (work_ != nullptr && (keep == nullptr || *keep != '1')) (void)RemoveTree(*work_);
  }

  void SetUp() override { ASSERT_TRUE(setup_error_->empty()) << *setup_error_; }
  void TearDown() override { mounts_.UnmountAll(); }

  std::string Path(const std::string& name) {
    return *work_ + "/" + TransportName(GetParam()) + "-" + name;
  }
  std::string NewDir(const std::string& name) {
    std::string d = Path(name + "-" + std::to_string(counter_++));
    EXPECT_TRUE(MakeDirs(d).has_value());
    return d;
  }
  static std::string SourceRef() { return registry_->DockerRef("conform/src", "v1"); }

  void Produce(const std::vector<std::string>& argv) {
    CommandResult r = RunTool(argv);
    ASSERT_TRUE(r.ok()) << argv[0] << " " << argv[1] << ": " << r.Describe() << ": "
                        << r.stderr_text;
  }
  void Skopeo(const std::string& dest, bool preserve_digests = true) {
    std::vector<std::string> argv = {"skopeo",
                                     "copy",
                                     "-q",
                                     "--insecure-policy",
                                     "--src-tls-verify=false",
                                     "--dest-tls-verify=false"};
    if (preserve_digests) argv.push_back("--preserve-digests");
    argv.push_back(SourceRef());
    argv.push_back(dest);
    Produce(argv);
  }

  // skopeo reads what hoist wrote: the same manifest, and a copy to the registry keeps it.
  void SkopeoReads(const std::string& name) {
    SCOPED_TRACE("skopeo reads " + name);
    CommandResult raw = RunTool({"skopeo", "inspect", "--raw", name});
    ASSERT_TRUE(raw.ok()) << raw.stderr_text;
    EXPECT_EQ(raw.stdout_text, source_->manifest);
    const std::string dest =
        registry_->DockerRef("conform/skopeo-reads" + std::to_string(counter_++), "v1");
    Produce({"skopeo", "copy", "-q", "--insecure-policy", "--dest-tls-verify=false",
             "--preserve-digests", name, dest});
    CommandResult back = RunTool({"skopeo", "inspect", "--raw", "--tls-verify=false", dest});
    ASSERT_TRUE(back.ok()) << back.stderr_text;
    EXPECT_EQ(back.stdout_text, source_->manifest);
  }

  // The copies of the source this transport's producers make.
  std::vector<Copy> MakeCopies() {
    std::vector<Copy> copies;
    switch (GetParam()) {
      case Transport::kOci:
        Skopeo("oci:" + Path("skopeo") + ":v1");
        copies.push_back({"skopeo copy", "oci:" + Path("skopeo") + ":v1"});
        Produce({HOIST_BINARY, "push", SourceRef(), "oci:" + Path("hoist") + ":v1"});
        copies.push_back({"hoist push", "oci:" + Path("hoist") + ":v1"});
        SkopeoReads("oci:" + Path("hoist") + ":v1");
        Produce({HOIST_BINARY, "convert", "-q", SourceRef(), "oci:" + Path("convert") + ":v1"});
        copies.push_back(
            {"hoist convert", "oci:" + Path("convert") + ":v1", Keeps::kConfigConverted});
        break;
      case Transport::kOciArchive:
        Skopeo("oci-archive:" + Path("skopeo.tar") + ":v1");
        copies.push_back({"skopeo copy", "oci-archive:" + Path("skopeo.tar") + ":v1"});
        Produce(
            {HOIST_BINARY, "push", SourceRef(), "oci-archive:" + Path("hoist-push.tar") + ":v1"});
        copies.push_back({"hoist push", "oci-archive:" + Path("hoist-push.tar") + ":v1"});
        Produce({HOIST_BINARY, "save", "--cache", NewDir("save-cache"), "--format", "oci-archive",
                 "-o", Path("hoist-save.tar"), registry_->ImageRef("conform/src", "v1")});
        copies.push_back({"hoist save", "oci-archive:" + Path("hoist-save.tar") + ":v1"});
        Produce({HOIST_BINARY, "convert", "-q", SourceRef(),
                 "oci-archive:" + Path("convert.tar") + ":v1"});
        copies.push_back({"hoist convert", "oci-archive:" + Path("convert.tar") + ":v1",
                          Keeps::kConfigConverted});
        SkopeoReads("oci-archive:" + Path("hoist-push.tar") + ":v1");
        SkopeoReads("oci-archive:" + Path("hoist-save.tar") + ":v1");
        break;
      case Transport::kDockerArchive:
        Skopeo("docker-archive:" + Path("skopeo.tar") + ":conform/src:v1",
               /*preserve_digests=*/false);
        copies.push_back(
            {"skopeo copy", "docker-archive:" + Path("skopeo.tar"), Keeps::kConfigUncompressed});
        // The same archive gzip-compressed (read through a decompressed, unlinked scratch copy).
        Produce(
            {"sh", "-c", "gzip -c -- \"$0\" > \"$1\"", Path("skopeo.tar"), Path("skopeo.tar.gz")});
        copies.push_back({"skopeo copy | gzip", "docker-archive:" + Path("skopeo.tar.gz"),
                          Keeps::kConfigUncompressed});
        Produce({HOIST_BINARY, "save", "--cache", NewDir("save-cache"), "-o", Path("hoist.tar"),
                 registry_->ImageRef("conform/src", "v1")});
        copies.push_back(
            {"hoist save", "docker-archive:" + Path("hoist.tar"), Keeps::kConfigUncompressed});
        break;
      case Transport::kDocker:
        copies.push_back({"skopeo copy", SourceRef()});
        Produce({HOIST_BINARY, "push", source_->OciRef(),
                 registry_->DockerRef("conform/hoist-push", "v1")});
        copies.push_back({"hoist push", registry_->DockerRef("conform/hoist-push", "v1")});
        Produce({HOIST_BINARY, "convert", "-q", source_->OciRef(),
                 registry_->DockerRef("conform/hoist-convert", "v1")});
        copies.push_back({"hoist convert", registry_->DockerRef("conform/hoist-convert", "v1"),
                          Keeps::kConfigConverted});
        break;
      case Transport::kLocalStore: {
        const std::string pulled = NewDir("pull-cache");
        Produce({HOIST_BINARY, "pull", "-q", "--cache", pulled,
                 registry_->ImageRef("conform/src", "v1")});
        copies.push_back(
            {"hoist pull", registry_->ImageRef("conform/src", "v1"), Keeps::kManifest, pulled});
        // hoist load names a skopeo oci-archive "localhost/<file stem>:<ref.name>".
        const std::string archive = *work_ + "/local-store-skopeo.tar";
        Skopeo("oci-archive:" + archive + ":v1");
        const std::string loaded = NewDir("load-cache");
        Produce({HOIST_BINARY, "load", "-q", "--cache", loaded, "-i", archive});
        copies.push_back(
            {"hoist load", "localhost/local-store-skopeo:v1", Keeps::kManifest, loaded});
        // A docker-archive loaded: a Docker v2 manifest of the uncompressed layers it holds.
        const std::string docker_archive = *work_ + "/local-store-skopeo-docker.tar";
        Skopeo("docker-archive:" + docker_archive + ":conform/loaded:v1",
               /*preserve_digests=*/false);
        const std::string loaded_docker = NewDir("load-docker-cache");
        Produce({HOIST_BINARY, "load", "-q", "--cache", loaded_docker, "-i", docker_archive});
        copies.push_back({"hoist load (docker-archive)", "conform/loaded:v1",
                          Keeps::kConfigUncompressed, loaded_docker,
                          "application/vnd.docker.image.rootfs.diff.tar",
                          std::string(kMediaTypeDockerManifest)});
        break;
      }
      case Transport::kDir:
        copies.push_back({"umoci unpack", "rootfs:" + *rootfs_, Keeps::kTree});
        break;
    }
    return copies;
  }

  Result<std::unique_ptr<ImageSource>> Open(const Copy& c, std::unique_ptr<LocalStore>* store) {
    if (GetParam() == Transport::kLocalStore) {
      HOIST_ASSIGN_OR_RETURN(*store, LocalStore::Open(c.cache));
      HOIST_ASSIGN_OR_RETURN(LocalImage image, (*store)->Get(c.name));
      return NewLocalImageSource(store->get(), std::move(image));
    }
    HOIST_ASSIGN_OR_RETURN(ImageName name, ParseImageName(c.name));
    SourceOptions options;
    options.work_dir = NewDir("work");
    return OpenImageSource(name, options);
  }

  // The copy read through the transport's ImageSource, in this process.
  void CheckImageSource(const Copy& c, RawManifest* manifest, std::string* config) {
    std::unique_ptr<LocalStore> store;
    auto source = Open(c, &store);
    ASSERT_TRUE(source.has_value()) << source.error().message();
    auto top = (*source)->TopManifest();
    ASSERT_TRUE(top.has_value()) << top.error().message();
    *manifest = *top;
    if (c.keeps == Keeps::kManifest) {
      EXPECT_EQ(top->bytes, source_->manifest);
      EXPECT_EQ(top->digest, source_->manifest_digest);
      EXPECT_EQ(top->media_type, kMediaTypeOciManifest);
    }
    if (c.keeps == Keeps::kConfigUncompressed) {
      EXPECT_EQ(top->media_type, c.manifest_type);
    }
    EXPECT_EQ(top->digest, Digest::Of(top->bytes));
    auto parsed = ParseImageManifest(top->bytes, top->media_type);
    ASSERT_TRUE(parsed.has_value()) << parsed.error().message();
    auto config_bytes = (*source)->ReadBlob(parsed->config);
    ASSERT_TRUE(config_bytes.has_value()) << config_bytes.error().message();
    *config = *config_bytes;
    auto cfg = ParseImageConfig(*config_bytes);
    ASSERT_TRUE(cfg.has_value()) << cfg.error().message();
    if (c.keeps != Keeps::kTree) {
      EXPECT_EQ(*config_bytes, source_->config);
      EXPECT_EQ(parsed->config.digest, source_->config_digest);
      std::vector<Digest> want_diff_ids;
      for (const auto& l : source_->layers) want_diff_ids.push_back(l.diff_id);
      EXPECT_EQ(cfg->diff_ids, want_diff_ids);
    } else {
      EXPECT_EQ(cfg->diff_ids.size(), 1u);  // rootfs: one layer of the whole tree
    }
    ASSERT_EQ(parsed->layers.size(), cfg->diff_ids.size());
    for (size_t i = 0; i < parsed->layers.size(); ++i) {
      SCOPED_TRACE("layer " + std::to_string(i));
      const Descriptor& layer = parsed->layers[i];
      auto h = HashLayer(**source, layer);
      ASSERT_TRUE(h.has_value()) << h.error().message();
      EXPECT_EQ(h->plain, cfg->diff_ids[i]);
      EXPECT_EQ(h->stored, layer.digest);
      if (c.keeps == Keeps::kManifest) {
        EXPECT_EQ(layer.digest, source_->layers[i].digest);
        EXPECT_EQ(layer.media_type, source_->layers[i].media_type);
      }
      if (c.keeps == Keeps::kConfigConverted) {
        // The same tar, re-encoded: only the compression differs.
        EXPECT_EQ(layer.media_type, kMediaTypeOciLayerZstd);
      }
      if (c.keeps == Keeps::kConfigUncompressed) {
        // The documented exception: the archive holds each layer as its uncompressed tar.
        EXPECT_EQ(layer.digest, cfg->diff_ids[i]);
        EXPECT_EQ(layer.media_type, c.uncompressed_type);
      }
    }
  }

  // `hoist inspect --raw` / `--config` print what the ImageSource gave.
  void CheckInspect(const Copy& c, const RawManifest& manifest, const std::string& config) {
    std::vector<std::string> common = {"inspect"};
    if (GetParam() == Transport::kLocalStore) common = {"inspect", "--local", "--cache", c.cache};
    for (const char* what : {"--raw", "--config"}) {
      SCOPED_TRACE(what);
      std::vector<std::string> args = common;
      args.push_back(what);
      args.push_back(c.name);
      CommandResult r = RunHoist(args);
      ASSERT_TRUE(r.ok()) << r.Describe() << ": " << r.stderr_text;
      EXPECT_EQ(r.stdout_text, std::string(what) == "--raw" ? manifest.bytes : config);
    }
  }

  // The tree hoist shows for the copy: published by `hoist push` (byte for byte from the
  // transport's ImageSource) and mounted by hoistfs, or mounted straight from the registry or
  // the local store.
  void CheckTree(const Copy& c, size_t index) {
    const std::string mp = NewDir("mp");
    CommandResult m;
    if (GetParam() == Transport::kLocalStore) {
      m = mounts_.Mount(c.name, mp, c.cache, {"--offline"});
    } else if (GetParam() == Transport::kDocker) {
      m = mounts_.Mount(c.name.substr(std::string("docker://").size()), mp, NewDir("cache"));
    } else {
      const std::string repo = "conform/read-" + TransportName(GetParam()) + std::to_string(index);
      CommandResult p = RunHoist({"push", c.name, registry_->DockerRef(repo, "v1")});
      ASSERT_TRUE(p.ok()) << "hoist push " << c.name << ": " << p.stderr_text;
      m = mounts_.Mount(registry_->ImageRef(repo, "v1"), mp, NewDir("cache"));
    }
    ASSERT_TRUE(m.ok()) << m.Describe() << ": " << m.stderr_text;
    auto got = harness::WalkTree(mp);
    ASSERT_TRUE(got.has_value()) << got.error().message();
    EXPECT_EQ(harness::CompareTrees(*want_, *got, c.producer + " via hoist"),
              std::vector<std::string>{});
    Status u = mounts_.Unmount(mp);
    EXPECT_TRUE(u.has_value()) << u.error().message();
  }

  static std::string* setup_error_;
  static std::string* work_;
  static harness::TestRegistry* registry_;
  static harness::BuiltImage* source_;
  static std::string* rootfs_;
  static Tree* want_;
  harness::HoistfsMounts mounts_{HOISTFS_BINARY};
  int counter_ = 0;
};

std::string* TransportConformanceTest::setup_error_ = nullptr;
std::string* TransportConformanceTest::work_ = nullptr;
harness::TestRegistry* TransportConformanceTest::registry_ = nullptr;
harness::BuiltImage* TransportConformanceTest::source_ = nullptr;
std::string* TransportConformanceTest::rootfs_ = nullptr;
Tree* TransportConformanceTest::want_ = nullptr;

TEST_P(TransportConformanceTest, SameImageComesOut) {
  // The expected tree really has what the suite claims to check.
  auto node = [](const std::string& path) {
    auto it = want_->find(path);
    return it == want_->end() ? "missing" : harness::DescribeNode(it->second);
  };
  for (const char* hidden : {"var/old", "var/cache/lower", "usr/bin/link"}) {
    EXPECT_EQ(want_->count(hidden), 0u) << hidden << ": " << node(hidden);
  }
  auto has = [&](const std::string& path, const std::string& part) {
    EXPECT_NE(node(path).find(part), std::string::npos) << path << ": " << node(path);
  };
  has("usr/bin/tool-hard", "group=usr/bin/tool ");
  has("srv/secret", "user.k=");
  has("opt/app", "mode=750 uid=10 gid=20");
  has("opt/app", "user.dir=7570706572;");  // "upper"
  has("usr/bin/su", "mode=4755");
  has("run/pipe", "type=p");
  has("etc/alt-hosts", "target=/etc/hosts");
  if (HasFailure()) return;

  std::vector<Copy> copies = MakeCopies();
  if (HasFatalFailure()) return;
  ASSERT_FALSE(copies.empty());
  for (size_t i = 0; i < copies.size(); ++i) {
    const Copy& c = copies[i];
    SCOPED_TRACE(c.producer + " -> " + c.name);
    RawManifest manifest;
    std::string config;
    {
      SCOPED_TRACE("ImageSource");
      CheckImageSource(c, &manifest, &config);
    }
    if (HasFatalFailure()) return;
    {
      SCOPED_TRACE("hoist inspect");
      CheckInspect(c, manifest, config);
    }
    {
      SCOPED_TRACE("tree");
      CheckTree(c, i);
    }
  }
}

// ---- oci-archive: hostile and broken archives, and what a failed write leaves ----

// Writes a tar with python3's tarfile: `members` is a list of (name, kind, data) where kind is
// "file" (data = content), "symlink" (data = target).
struct TarMember {
  std::string name;
  std::string kind;
  std::string data;
};

Status WriteTar(const std::string& path, const std::vector<TarMember>& members) {
  std::string script =
      "import io, sys, tarfile\n"
      "args = sys.argv[2:]\n"
      "with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as t:\n"
      "    for i in range(0, len(args), 3):\n"
      "        name, kind, data = args[i], args[i + 1], args[i + 2]\n"
      "        ti = tarfile.TarInfo(name)\n"
      "        if kind == 'symlink':\n"
      "            ti.type = tarfile.SYMTYPE\n"
      "            ti.linkname = data\n"
      "            t.addfile(ti)\n"
      "        else:\n"
      "            if data.startswith('@'):\n"
      "                data = open(data[1:], 'rb').read()\n"
      "            else:\n"
      "                data = data.encode()\n"
      "            ti.size = len(data)\n"
      "            t.addfile(ti, io.BytesIO(data))\n";
  std::vector<std::string> argv = {"python3", "-c", script, path};
  for (const TarMember& m : members) {
    argv.push_back(m.name);
    argv.push_back(m.kind);
    argv.push_back(m.data);
  }
  HOIST_RETURN_IF_ERROR(harness::RunChecked(argv));
  return Ok();
}

Descriptor Desc(std::string_view media_type, const Digest& digest, int64_t size) {
  Descriptor d;
  d.media_type = media_type;
  d.digest = digest;
  d.size = size;
  return d;
}

std::string Json(const std::string& media_type, const Digest& d, size_t size) {
  return "{\"mediaType\":\"" + media_type + "\",\"digest\":\"" + d.str() +
         "\",\"size\":" + std::to_string(size) + "}";
}

class OciArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = ::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/hoist-oci-archive-XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override { (void)RemoveTree(dir_); }

  Result<std::unique_ptr<ImageSource>> OpenArchive(const std::string& name) {
    HOIST_ASSIGN_OR_RETURN(ImageName n, ParseImageName(name));
    SourceOptions options;
    options.work_dir = dir_;
    return OpenImageSource(n, options);
  }

  // A manifest naming `config` and `layer` (descriptors as given), and the index naming it.
  std::vector<TarMember> Layout(const Descriptor& config, const Descriptor& layer,
                                std::string* manifest) {
    *manifest =
        "{\"schemaVersion\":2,\"mediaType\":\"" + std::string(kMediaTypeOciManifest) +
        "\",\"config\":" + Json(std::string(kMediaTypeOciConfig), config.digest, config.size) +
        ",\"layers\":[" + Json(std::string(kMediaTypeOciLayerTar), layer.digest, layer.size) + "]}";
    const Digest md = Digest::Of(*manifest);
    const std::string index = "{\"schemaVersion\":2,\"manifests\":[" +
                              Json(std::string(kMediaTypeOciManifest), md, manifest->size()) + "]}";
    return {{"oci-layout", "file", "{\"imageLayoutVersion\":\"1.0.0\"}"},
            {"index.json", "file", index},
            {"blobs/sha256/" + std::string(md.hex()), "file", *manifest}};
  }

  std::string dir_;
};

// Blob members that are symlinks (to an absolute host path, or climbing out with "..") are
// looked up inside the archive only: the host file, though it has exactly the bytes the digest
// names, is never read.
TEST_F(OciArchiveTest, SymlinkMembersNeverReachTheHost) {
  const std::string secret = "host file that must not be read\n";
  const std::string host_file = dir_ + "/host-secret";
  ASSERT_TRUE(WriteFileAtomic(host_file, secret).has_value());
  Descriptor config = Desc(kMediaTypeOciConfig, Digest::Of(secret), secret.size());
  Descriptor layer = config;
  layer.media_type = kMediaTypeOciLayerTar;
  std::string manifest;
  std::vector<TarMember> members = Layout(config, layer, &manifest);
  // One member for both descriptors (same digest): try each kind of link in turn.
  for (std::string target : {host_file, "../../../../../../../../.." + host_file}) {
    SCOPED_TRACE(target);
    std::vector<TarMember> m = members;
    m.push_back({"blobs/sha256/" + std::string(config.digest.hex()), "symlink", target});
    const std::string tar = dir_ + "/links.tar";
    ASSERT_TRUE(WriteTar(tar, m).has_value());
    auto source = OpenArchive("oci-archive:" + tar);
    ASSERT_TRUE(source.has_value()) << source.error().message();
    auto top = (*source)->TopManifest();
    ASSERT_TRUE(top.has_value()) << top.error().message();
    EXPECT_EQ(top->bytes, manifest);
    auto read = (*source)->ReadBlob(config);
    ASSERT_FALSE(read.has_value());
    EXPECT_EQ(read.error().code(), ENOENT);
    EXPECT_EQ(read.error().message(), "blob " + config.digest.str() + " is missing from " + tar);
    auto open = (*source)->OpenBlob(layer);
    ASSERT_FALSE(open.has_value());
    EXPECT_EQ(open.error().code(), ENOENT);
  }
}

// A member name that climbs out of the archive root refuses the whole archive (nothing is ever
// extracted, so nothing is written either), with one line naming the member.
TEST_F(OciArchiveTest, EscapingMemberNameIsRefused) {
  Descriptor d = Desc(kMediaTypeOciConfig, Digest::Of("x"), 1);
  std::string manifest;
  std::vector<TarMember> m = Layout(d, d, &manifest);
  m.push_back({"../escape", "file", "x"});
  const std::string tar = dir_ + "/escape.tar";
  ASSERT_TRUE(WriteTar(tar, m).has_value());
  auto source = OpenArchive("oci-archive:" + tar);
  ASSERT_FALSE(source.has_value());
  EXPECT_EQ(source.error().code(), EINVAL);
  EXPECT_NE(source.error().message().find("\"../escape\" escapes the layer root"),
            std::string::npos)
      << source.error().message();
  EXPECT_EQ(source.error().message().find('\n'), std::string::npos);
  EXPECT_NE(::access((dir_ + "/../escape").c_str(), F_OK), 0);

  CommandResult r = RunHoist({"inspect", "--raw", "oci-archive:" + tar});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.stderr_text.find('\n'), r.stderr_text.size() - 1) << r.stderr_text;
  EXPECT_EQ(r.stderr_text.rfind("hoist inspect: oci-archive:" + tar + ": ", 0), 0u)
      << r.stderr_text;
}

// index.json over 8 MiB is refused before it is parsed; a blob member whose size is not its
// descriptor's is refused before it is read; a plain file is not an OCI archive.
TEST_F(OciArchiveTest, OversizedAndMismatchedMembersAreRefused) {
  const std::string config_bytes = "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
  Descriptor config = Desc(kMediaTypeOciConfig, Digest::Of(config_bytes), config_bytes.size() + 5);
  std::string manifest;
  std::vector<TarMember> m = Layout(config, config, &manifest);
  m.push_back({"blobs/sha256/" + std::string(config.digest.hex()), "file", config_bytes});
  const std::string tar = dir_ + "/sizes.tar";
  ASSERT_TRUE(WriteTar(tar, m).has_value());
  auto source = OpenArchive("oci-archive:" + tar);
  ASSERT_TRUE(source.has_value()) << source.error().message();
  auto read = (*source)->ReadBlob(config);
  ASSERT_FALSE(read.has_value());
  EXPECT_EQ(read.error().code(), EIO);
  EXPECT_EQ(read.error().message(), "blob " + config.digest.str() + " in " + tar + " has " +
                                        std::to_string(config_bytes.size()) +
                                        " bytes, its descriptor says " +
                                        std::to_string(config.size));

  const std::string big_index = dir_ + "/big-index.json";
  ASSERT_TRUE(WriteFileAtomic(big_index, std::string((8 << 20) + 1, ' ')).has_value());
  m[1] = {"index.json", "file", "@" + big_index};
  ASSERT_TRUE(WriteTar(tar, m).has_value());
  source = OpenArchive("oci-archive:" + tar);
  ASSERT_TRUE(source.has_value()) << source.error().message();
  auto top = (*source)->TopManifest();
  ASSERT_FALSE(top.has_value());
  EXPECT_EQ(top.error().code(), EFBIG);
  EXPECT_EQ(top.error().message(), tar + ": index.json: too large");

  ASSERT_TRUE(WriteTar(tar, {{"hello", "file", "hi"}}).has_value());
  source = OpenArchive("oci-archive:" + tar);
  ASSERT_TRUE(source.has_value()) << source.error().message();
  top = (*source)->TopManifest();
  ASSERT_FALSE(top.has_value());
  EXPECT_EQ(top.error().code(), ENOENT);
  EXPECT_EQ(top.error().message(), tar + " is not an OCI archive (no oci-layout member)");
}

// The member table is kept in memory, so an archive of more than 65536 files is refused at once
// (one line), whatever it holds.
TEST_F(OciArchiveTest, MemberCountIsCapped) {
  const std::string tar = dir_ + "/many.tar";
  ASSERT_TRUE(harness::RunChecked({"python3", "-c",
                                   "import io, sys, tarfile\n"
                                   "with tarfile.open(sys.argv[1], 'w') as t:\n"
                                   "    for i in range(65537):\n"
                                   "        t.addfile(tarfile.TarInfo('f%d' % i), io.BytesIO())\n",
                                   tar})
                  .has_value());
  auto source = OpenArchive("oci-archive:" + tar);
  ASSERT_FALSE(source.has_value());
  EXPECT_EQ(source.error().code(), EFBIG);
  EXPECT_EQ(source.error().message(),
            "oci-archive:" + tar + ": the archive has more than 65536 members");
}

// A write that fails (a blob of the source is missing) leaves neither the archive nor the private
// directory; one that succeeds leaves exactly the archive. gzip- and zstd-compressed archives read
// like plain ones.
TEST_F(OciArchiveTest, WritesAreAllOrNothing) {
  auto image = harness::BuildOciImage(dir_ + "/layout",
                                      {{FileSpec::File("a", "a\n")}, {FileSpec::File("b", "b\n")}},
                                      {.tag = "v1"});
  ASSERT_TRUE(image.has_value()) << image.error().message();
  const std::string out_dir = dir_ + "/out";
  ASSERT_TRUE(MakeDirs(out_dir).has_value());
  auto listing = [&] {
    std::vector<std::string> names;
    auto tree = harness::WalkTree(out_dir);
    EXPECT_TRUE(tree.has_value());
    if (tree) {
      for (const auto& [name, node] : *tree) names.push_back(name);
    }
    return names;
  };
  CommandResult ok = RunHoist({"push", image->OciRef(), "oci-archive:" + out_dir + "/img.tar:v1"});
  ASSERT_TRUE(ok.ok()) << ok.stderr_text;
  EXPECT_EQ(listing(), std::vector<std::string>{"img.tar"});
  for (std::string tool : {"gzip", "zstd"}) {
    SCOPED_TRACE(tool);
    const std::string packed = out_dir + "/img.tar." + tool;
    ASSERT_TRUE(harness::RunChecked(
                    {"sh", "-c", tool + " -c -- \"$0\" > \"$1\"", out_dir + "/img.tar", packed})
                    .has_value());
    auto source = OpenArchive("oci-archive:" + packed + ":v1");
    ASSERT_TRUE(source.has_value()) << source.error().message();
    auto top = (*source)->TopManifest();
    ASSERT_TRUE(top.has_value()) << top.error().message();
    EXPECT_EQ(top->bytes, image->manifest);
    ASSERT_EQ(::unlink(packed.c_str()), 0);
  }

  ASSERT_EQ(::unlink(harness::LayoutBlobPath(image->layout_dir, image->layers[1].digest).c_str()),
            0);
  CommandResult bad = RunHoist({"push", image->OciRef(), "oci-archive:" + out_dir + "/bad.tar:v1"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.stderr_text.find('\n'), bad.stderr_text.size() - 1) << bad.stderr_text;
  EXPECT_EQ(listing(), std::vector<std::string>{"img.tar"});
}

INSTANTIATE_TEST_SUITE_P(Transports, TransportConformanceTest,
                         ::testing::Values(Transport::kOci, Transport::kOciArchive,
                                           Transport::kDockerArchive, Transport::kDocker,
                                           Transport::kLocalStore, Transport::kDir),
                         [](const ::testing::TestParamInfo<Transport>& info) {
                           return TransportName(info.param);
                         });

}  // namespace
}  // namespace hoist
