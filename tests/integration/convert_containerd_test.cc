// `hoist convert` output as containerd sees it (issue 3): a multi-layer image with every tar entry
// type (regular, hardlink, symlink, character and block device, directory, fifo), whiteouts, an
// opaque directory, hardlinks, xattrs (security.capability and user.*), pax and GNU long names and
// long link targets, and a file over 64 MiB is pushed gzip-compressed to a real registry,
// converted to zstd:chunked by the real `hoist`, and each image is pulled by a private
// containerd 1.6 of its own (`ctr image pull --plain-http`, unpacked by its overlayfs snapshotter;
// its content store then holds exactly that image's blobs) and mounted with `ctr image mount`. The
// two trees must be equal in content sha256, type, mode, uid, gid, mtime, size, link target, device
// number, hardlink identity and xattrs, and the source tree must hold exactly the values the layers
// were built with.
//
// Runs as root (overlayfs, mknod, security.* xattrs); missing tools FAIL, they never skip.
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "fetcher/manifest.h"
#include "tests/harness/containerd.h"
#include "tests/harness/mountinfo.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/harness/tree_walk.h"

#ifndef HOIST_BINARY
#error "HOIST_BINARY must name the hoist executable"
#endif

namespace hoist {
namespace {

using harness::IsMounted;

using harness::FileSpec;
using harness::LayerSpec;
using harness::TreeNode;

constexpr uint64_t kBig = (64ull << 20) + 4321;
constexpr uint32_t kBigSeed = 31;
constexpr int64_t kMtime = 1700000000;  // FileSpec's default
const std::string kGnuLongName = "gnu/" + std::string(150, 'n');
const std::string kGnuLongTarget = "/" + std::string(150, 't');
const std::string kPaxLongDir = "opt/" + std::string(120, 'd');
const std::string kPaxLongName = kPaxLongDir + "/" + std::string(140, 'f');

// A valid VFS_CAP_REVISION_2 security.capability: effective, CAP_NET_BIND_SERVICE permitted.
std::string CapabilityXattr() {
  const unsigned char b[20] = {0x01, 0, 0, 0x02, 0x00, 0x04, 0, 0, 0, 0,
                               0,    0, 0, 0,    0,    0,    0, 0, 0, 0};
  return std::string(reinterpret_cast<const char*>(b), sizeof(b));
}

// The layer the harness cannot make from a real tree: devices (mknod into a tar), and GNU-format
// ././@LongLink headers for a long name, a long symlink target and a long hardlink target.
constexpr char kGnuTarScript[] = R"PY(
import io, sys, tarfile
out, long_name, long_target = sys.argv[1], sys.argv[2], sys.argv[3]
tf = tarfile.open(out, mode="w", format=tarfile.GNU_FORMAT)
def add(name, data=b"", type=tarfile.REGTYPE, link="", major=0, minor=0, mode=0o644,
        uid=0, gid=0, mtime=1700000000):
    ti = tarfile.TarInfo(name)
    ti.type = type; ti.size = len(data) if type == tarfile.REGTYPE else 0
    ti.linkname = link; ti.devmajor = major; ti.devminor = minor
    ti.mtime = mtime; ti.mode = mode; ti.uid = uid; ti.gid = gid
    tf.addfile(ti, io.BytesIO(data) if type == tarfile.REGTYPE else None)
add("dev/", type=tarfile.DIRTYPE, mode=0o755)
add("dev/null", type=tarfile.CHRTYPE, major=1, minor=3, mode=0o666)
add("dev/loop0", type=tarfile.BLKTYPE, major=7, minor=0, mode=0o660, gid=6)
add("dev/pipe", type=tarfile.FIFOTYPE, mode=0o600)
add("gnu/", type=tarfile.DIRTYPE, mode=0o750, uid=5, gid=6, mtime=1650000000)
add(long_name, b"gnu long name\n", mode=0o640, uid=5, gid=6, mtime=1650000001)
add("gnu/longlink", type=tarfile.SYMTYPE, link=long_target)
# A hardlink header carries the inode's metadata too (tar and containerd apply it to the inode).
add("gnu/hard-" + "h" * 120, type=tarfile.LNKTYPE, link=long_name, mode=0o640, uid=5, gid=6,
    mtime=1650000001)
tf.close()
)PY";

void WriteDescriptor(rapidjson::Writer<rapidjson::StringBuffer>& w, std::string_view media_type,
                     const Digest& digest, size_t size) {
  w.Key("mediaType");
  w.String(media_type.data(), static_cast<rapidjson::SizeType>(media_type.size()));
  w.Key("digest");
  w.String(digest.str().c_str());
  w.Key("size");
  w.Uint64(size);
}

Result<Digest> PutBlob(const std::string& layout, const std::string& bytes) {
  Digest d = Digest::Of(bytes);
  HOIST_RETURN_IF_ERROR(MakeDirs(layout + "/blobs/sha256"));
  HOIST_RETURN_IF_ERROR(WriteFileAtomic(harness::LayoutBlobPath(layout, d), bytes));
  return d;
}

// One layer tar, compressed by the real gzip or zstd.
struct SourceLayer {
  std::string tar_path;
  std::string compression;  // "gzip" | "zstd"
};

// An OCI layout (linux/amd64, tag v1) with the given layers; returns the source diff_ids.
Result<std::vector<Digest>> BuildLayout(const std::string& layout,
                                        const std::vector<SourceLayer>& layers) {
  std::vector<Digest> diff_ids;
  rapidjson::StringBuffer layers_json;
  std::vector<std::pair<Digest, size_t>> blobs;
  for (const SourceLayer& l : layers) {
    HOIST_ASSIGN_OR_RETURN(std::string tar, ReadFile(l.tar_path));
    diff_ids.push_back(Digest::Of(tar));
    harness::CommandOptions o;
    o.stdout_path = l.tar_path + "." + l.compression;
    HOIST_RETURN_IF_ERROR(harness::RunChecked(
        l.compression == "gzip" ? std::vector<std::string>{"gzip", "-n", "-c", l.tar_path}
                                : std::vector<std::string>{"zstd", "-q", "-c", l.tar_path},
        o));
    HOIST_ASSIGN_OR_RETURN(std::string blob, ReadFile(o.stdout_path));
    HOIST_ASSIGN_OR_RETURN(Digest d, PutBlob(layout, blob));
    blobs.emplace_back(d, blob.size());
  }
  rapidjson::StringBuffer cbuf;
  rapidjson::Writer<rapidjson::StringBuffer> c(cbuf);
  c.StartObject();
  c.Key("architecture");
  c.String("amd64");
  c.Key("os");
  c.String("linux");
  c.Key("config");
  c.StartObject();
  c.Key("Cmd");
  c.StartArray();
  c.String("/bin/sh");
  c.EndArray();
  c.EndObject();
  c.Key("rootfs");
  c.StartObject();
  c.Key("type");
  c.String("layers");
  c.Key("diff_ids");
  c.StartArray();
  for (const Digest& d : diff_ids) c.String(d.str().c_str());
  c.EndArray();
  c.EndObject();
  c.EndObject();
  std::string config = cbuf.GetString();
  HOIST_ASSIGN_OR_RETURN(Digest config_digest, PutBlob(layout, config));

  rapidjson::StringBuffer mbuf;
  rapidjson::Writer<rapidjson::StringBuffer> m(mbuf);
  m.StartObject();
  m.Key("schemaVersion");
  m.Int(2);
  m.Key("mediaType");
  m.String(kMediaTypeOciManifest.data());
  m.Key("config");
  m.StartObject();
  WriteDescriptor(m, kMediaTypeOciConfig, config_digest, config.size());
  m.EndObject();
  m.Key("layers");
  m.StartArray();
  for (size_t i = 0; i < layers.size(); ++i) {
    m.StartObject();
    WriteDescriptor(
        m, layers[i].compression == "gzip" ? kMediaTypeOciLayerGzip : kMediaTypeOciLayerZstd,
        blobs[i].first, blobs[i].second);
    m.EndObject();
  }
  m.EndArray();
  m.EndObject();
  std::string manifest = mbuf.GetString();
  HOIST_ASSIGN_OR_RETURN(Digest manifest_digest, PutBlob(layout, manifest));

  rapidjson::StringBuffer ibuf;
  rapidjson::Writer<rapidjson::StringBuffer> x(ibuf);
  x.StartObject();
  x.Key("schemaVersion");
  x.Int(2);
  x.Key("manifests");
  x.StartArray();
  x.StartObject();
  WriteDescriptor(x, kMediaTypeOciManifest, manifest_digest, manifest.size());
  x.Key("annotations");
  x.StartObject();
  x.Key("org.opencontainers.image.ref.name");
  x.String("v1");
  x.EndObject();
  x.EndObject();
  x.EndArray();
  x.EndObject();
  HOIST_RETURN_IF_ERROR(WriteFileAtomic(layout + "/index.json", ibuf.GetString()));
  HOIST_RETURN_IF_ERROR(
      WriteFileAtomic(layout + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})"));
  return diff_ids;
}

// sha256 of PatternBytes(seed, 0, size), streamed.
std::string PatternSha(uint32_t seed, uint64_t size) {
  Sha256 sha;
  for (uint64_t off = 0; off < size; off += 1 << 20) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(1 << 20, size - off));
    sha.Update(harness::PatternBytes(seed, off, n));
  }
  return Digest::FromSha256(sha.Final()).str();
}

std::string Sha(std::string_view s) { return Digest::Of(s).str(); }

class ConvertContainerdTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setup_error_ = new std::string();
    auto fail = [](const std::string& e) { *setup_error_ = e; };
    if (::geteuid() != 0) return fail("containerd's overlayfs snapshotter needs root");
    if (auto s = harness::RequirePrograms(
            {"containerd", "ctr", "skopeo", "docker-registry", "gzip", "zstd", "tar", "python3"});
        !s) {
      return fail(s.error().message());
    }
    // Short: containerd's socket lives under it (unix socket paths < 108 bytes).
    std::string templ = "/tmp/hcc-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) return fail("mkdtemp failed");
    work_ = new std::string(templ);
    auto reg = harness::TestRegistry::Launch();
    if (!reg) return fail(reg.error().message());
    registry_ = reg->release();
    if (auto s = BuildAndConvert(); !s) return fail(s.error().message());
  }

  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
    const char* keep = std::getenv("HOIST_TEST_KEEP");
    if (work_ != nullptr && (keep == nullptr || *keep != '1')) (void)RemoveTree(*work_);
    delete work_;
    work_ = nullptr;
    delete diff_ids_;
    diff_ids_ = nullptr;
  }

  void SetUp() override { ASSERT_TRUE(setup_error_->empty()) << *setup_error_; }

  static Status BuildAndConvert() {
    const std::string& w = *work_;
    std::vector<LayerSpec> specs = {
        LayerSpec({
            FileSpec::Dir("etc"),
            FileSpec::File("etc/hosts", "127.0.0.1 localhost\n"),
            FileSpec::File("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
            FileSpec::File("etc/shadow", "secret\n", 0600).Owner(0, 42),
            FileSpec::Dir("usr/bin"),
            FileSpec::File("usr/bin/tool", "#!/bin/sh\necho tool\n", 0755)
                .Xattr("user.origin", "hoist-test")
                .Owner(1000, 1000),
            FileSpec::Hardlink("usr/bin/tool-hard", "usr/bin/tool"),
            FileSpec::Symlink("usr/bin/link", "tool"),
            FileSpec::File("usr/bin/ping", "#!/bin/sh\necho ping\n", 0755)
                .Xattr("security.capability", CapabilityXattr()),
            FileSpec::File("usr/bin/su", "su\n", 04755),
            FileSpec::Fifo("run/fifo", 0600),
            FileSpec::File(kPaxLongName, "long name\n"),
            FileSpec::Dir("var/cache/app"),
            FileSpec::File("var/cache/app/old", "old\n"),
            FileSpec::File("home/user/notes", "mine\n").Owner(1000, 1000).Mtime(1600000000),
            FileSpec::Dir("sticky", 01777),
            FileSpec::File("empty", ""),
        }),
        LayerSpec({
            FileSpec::Whiteout("etc/hosts"),
            FileSpec::Opaque("var/cache/app"),
            FileSpec::File("var/cache/app/new", "new\n"),
            FileSpec::File("etc/passwd", "root:x:0:0::/root:/bin/bash\n"),
            FileSpec::BigFile("data/big", kBig, kBigSeed),
            FileSpec::File("data/zeros", std::string(3 << 20, '\0')),
            FileSpec::Dir("xdir").Xattr("user.dir", "attr on a dir"),
        }),
        LayerSpec({
            FileSpec::File("srv/a", "a\n"),
            FileSpec::Hardlink("srv/b", "srv/a"),
            FileSpec::Hardlink("srv/c", "srv/a"),
            FileSpec::Symlink("srv/dangling", "/nonexistent"),
            FileSpec::Whiteout("usr/bin/tool-hard"),
        }),
    };
    std::vector<SourceLayer> layers;
    for (size_t i = 0; i < specs.size(); ++i) {
      std::string tar = w + "/layer" + std::to_string(i) + ".tar";
      HOIST_RETURN_IF_ERROR(
          harness::BuildLayerTar(specs[i], w + "/stage" + std::to_string(i), tar));
      layers.push_back({tar, i == 1 ? "zstd" : "gzip"});
    }
    const std::string script = w + "/gnutar.py";
    const std::string gnu_tar = w + "/layer3.tar";
    HOIST_RETURN_IF_ERROR(WriteFileAtomic(script, kGnuTarScript));
    HOIST_RETURN_IF_ERROR(
        harness::RunChecked({"python3", script, gnu_tar, kGnuLongName, kGnuLongTarget}));
    layers.push_back({gnu_tar, "gzip"});
    HOIST_ASSIGN_OR_RETURN(auto diff_ids, BuildLayout(w + "/layout", layers));
    diff_ids_ = new std::vector<Digest>(diff_ids);
    HOIST_RETURN_IF_ERROR(
        harness::PushOciLayout("oci:" + w + "/layout:v1", registry_->DockerRef("src/img", "v1")));
    harness::CommandOptions o;
    o.timeout = std::chrono::minutes(5);
    HOIST_RETURN_IF_ERROR(
        harness::RunChecked({HOIST_BINARY, "convert", "-q", registry_->DockerRef("src/img", "v1"),
                             registry_->DockerRef("conv/img", "v1")},
                            o));
    return Ok();
  }

  // The registry's raw manifest for repo:v1, parsed.
  static Result<rapidjson::Document> RawManifest(const std::string& repo) {
    HOIST_ASSIGN_OR_RETURN(std::string raw,
                           harness::RunChecked({"skopeo", "inspect", "--raw", "--tls-verify=false",
                                                registry_->DockerRef(repo, "v1")}));
    rapidjson::Document doc;
    doc.Parse(raw.c_str());
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("layers")) {
      return Fail(EBADMSG, "not a manifest: " + raw);
    }
    return doc;
  }

  static std::string* setup_error_;
  static std::string* work_;
  static harness::TestRegistry* registry_;
  static std::vector<Digest>* diff_ids_;
};

std::string* ConvertContainerdTest::setup_error_ = nullptr;
std::string* ConvertContainerdTest::work_ = nullptr;
harness::TestRegistry* ConvertContainerdTest::registry_ = nullptr;
std::vector<Digest>* ConvertContainerdTest::diff_ids_ = nullptr;

TEST_F(ConvertContainerdTest, PulledAndMountedTreeEqualsTheSourceImages) {
  // What the registry holds: four zstd:chunked layers with the annotations, the config (and so
  // the diff_ids) unchanged.
  auto src = RawManifest("src/img");
  ASSERT_TRUE(src.has_value()) << src.error().message();
  auto conv = RawManifest("conv/img");
  ASSERT_TRUE(conv.has_value()) << conv.error().message();
  ASSERT_EQ((*conv)["layers"].Size(), 4u);
  EXPECT_STREQ((*conv)["config"]["digest"].GetString(), (*src)["config"]["digest"].GetString());
  for (const auto& l : (*conv)["layers"].GetArray()) {
    EXPECT_STREQ(l["mediaType"].GetString(), kMediaTypeOciLayerZstd.data());
    ASSERT_TRUE(l.HasMember("annotations"));
    for (const char* key : {"io.github.containers.zstd-chunked.manifest-checksum",
                            "io.github.containers.zstd-chunked.manifest-position",
                            "io.github.containers.zstd-chunked.tarsplit-position"}) {
      EXPECT_TRUE(l["annotations"].HasMember(key)) << key;
    }
  }

  // One containerd per image: snapshots are keyed by chain ID (from the diff_ids), which the two
  // images share, so a second pull into the same containerd would reuse the first image's
  // unpacked layers instead of unpacking the zstd:chunked blobs.
  std::map<std::string, std::map<std::string, TreeNode>> trees;
  for (const std::string repo : {"src/img", "conv/img"}) {
    SCOPED_TRACE(repo);
    const std::string name = repo.substr(0, repo.find('/'));
    const std::string cd_dir = *work_ + "/cd-" + name;
    ASSERT_TRUE(MakeDirs(cd_dir).has_value());
    // Destroyed at the end of each round, passed or not: unmounts, then stops containerd.
    auto cd = harness::PrivateContainerd::Start(cd_dir);
    ASSERT_TRUE(cd.has_value()) << cd.error().message();
    const std::string ref = registry_->ImageRef(repo, "v1");
    auto pulled = (*cd)->Pull(ref, /*plain_http=*/true);
    ASSERT_TRUE(pulled.has_value()) << pulled.error().message();
    // containerd fetched exactly this image's blobs (for conv/img: only zstd:chunked layers) and
    // unpacked every layer into a snapshot of its own.
    auto raw = harness::RunChecked(
        {"skopeo", "inspect", "--raw", "--tls-verify=false", registry_->DockerRef(repo, "v1")});
    ASSERT_TRUE(raw.has_value()) << raw.error().message();
    auto manifest = RawManifest(repo);
    ASSERT_TRUE(manifest.has_value()) << manifest.error().message();
    std::set<std::string> want_blobs = {Digest::Of(*raw).str(),
                                        (*manifest)["config"]["digest"].GetString()};
    for (const auto& l : (*manifest)["layers"].GetArray())
      want_blobs.insert(l["digest"].GetString());
    auto content = (*cd)->Ctr({"content", "ls", "-q"});
    ASSERT_TRUE(content.has_value()) << content.error().message();
    std::set<std::string> have_blobs;
    std::istringstream lines(*content);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) have_blobs.insert(line);
    }
    EXPECT_EQ(have_blobs, want_blobs);
    auto snapshots = (*cd)->Ctr({"snapshot", "ls"});
    ASSERT_TRUE(snapshots.has_value()) << snapshots.error().message();
    EXPECT_EQ(std::count(snapshots->begin(), snapshots->end(), '\n'), 1 + 4)
        << "want a header and one committed snapshot per layer:\n"
        << *snapshots;
    const std::string mnt = *work_ + "/mnt-" + name;
    ASSERT_TRUE(MakeDirs(mnt).has_value());
    auto mounted = (*cd)->Mount(ref, mnt);
    ASSERT_TRUE(mounted.has_value()) << mounted.error().message();
    EXPECT_TRUE(IsMounted(mnt));
    auto tree = harness::WalkTree(mnt);
    ASSERT_TRUE(tree.has_value()) << tree.error().message();
    trees[repo] = std::move(*tree);
    auto unmounted = (*cd)->Unmount(mnt);
    EXPECT_TRUE(unmounted.has_value()) << unmounted.error().message();
    EXPECT_FALSE(IsMounted(mnt));
  }

  // The converted image shows exactly the source image's tree.
  std::vector<std::string> diffs =
      harness::CompareTrees(trees["src/img"], trees["conv/img"], "converted image");
  std::string shown;
  for (size_t i = 0; i < diffs.size() && i < 20; ++i) shown += diffs[i] + "\n";
  EXPECT_TRUE(diffs.empty()) << diffs.size() << " differences:\n" << shown;

  // And that tree is the one the layers describe (so equality is not two equal mistakes).
  const auto& t = trees["src/img"];
  auto at = [&](const std::string& p) -> const TreeNode& {
    static const TreeNode kMissing;
    auto it = t.find(p);
    EXPECT_NE(it, t.end()) << "missing: " << p;
    return it == t.end() ? kMissing : it->second;
  };
  // Whiteouts and the opaque directory took effect; no .wh. entry is visible.
  for (const std::string gone : {"etc/hosts", "var/cache/app/old", "usr/bin/tool-hard"}) {
    EXPECT_EQ(t.count(gone), 0u) << gone;
  }
  for (const auto& [path, n] : t) EXPECT_EQ(path.find(".wh."), std::string::npos) << path;
  EXPECT_EQ(at("var/cache/app/new").sha, Sha("new\n"));
  EXPECT_EQ(at("etc/passwd").sha, Sha("root:x:0:0::/root:/bin/bash\n"));
  // The big file, the zeros, the long pax name.
  EXPECT_EQ(at("data/big").type, 'f');
  EXPECT_EQ(at("data/big").size, kBig);
  EXPECT_EQ(at("data/big").sha, PatternSha(kBigSeed, kBig));
  EXPECT_EQ(at("data/zeros").sha, Sha(std::string(3 << 20, '\0')));
  EXPECT_EQ(at(kPaxLongName).sha, Sha("long name\n"));
  // Owners, modes, mtimes.
  EXPECT_EQ(at("etc/shadow").mode, 0600u);
  EXPECT_EQ(at("etc/shadow").gid, 42u);
  EXPECT_EQ(at("usr/bin/su").mode, 04755u);
  EXPECT_EQ(at("sticky").mode, 01777u);
  EXPECT_EQ(at("sticky").type, 'd');
  EXPECT_EQ(at("home/user/notes").uid, 1000u);
  EXPECT_EQ(at("home/user/notes").mtime_sec, 1600000000);
  EXPECT_EQ(at("usr/bin/tool").mtime_sec, kMtime);
  EXPECT_EQ(at("empty").size, 0u);
  EXPECT_EQ(at("empty").sha, Sha(""));
  // xattrs, including security.capability.
  EXPECT_EQ(at("usr/bin/tool").xattrs,
            (std::map<std::string, std::string>{{"user.origin", "hoist-test"}}));
  EXPECT_EQ(at("usr/bin/ping").xattrs,
            (std::map<std::string, std::string>{{"security.capability", CapabilityXattr()}}));
  EXPECT_EQ(at("xdir").xattrs, (std::map<std::string, std::string>{{"user.dir", "attr on a dir"}}));
  // Hardlinks: the whited-out name is gone, the other names share one inode.
  EXPECT_EQ(at("usr/bin/tool").link_group, "usr/bin/tool");
  EXPECT_EQ(at("srv/b").link_group, "srv/a");
  EXPECT_EQ(at("srv/c").link_group, "srv/a");
  EXPECT_EQ(at("gnu/hard-" + std::string(120, 'h')).link_group,
            "gnu/hard-" + std::string(120, 'h'));
  EXPECT_EQ(at(kGnuLongName).link_group, "gnu/hard-" + std::string(120, 'h'));
  // Symlinks, fifos, devices, GNU long names and long link targets.
  EXPECT_EQ(at("usr/bin/link").type, 'l');
  EXPECT_EQ(at("usr/bin/link").target, "tool");
  EXPECT_EQ(at("srv/dangling").target, "/nonexistent");
  EXPECT_EQ(at("run/fifo").type, 'p');
  EXPECT_EQ(at("run/fifo").mode, 0600u);
  EXPECT_EQ(at("dev/null").type, 'c');
  EXPECT_EQ(at("dev/null").rdev, makedev(1, 3));
  EXPECT_EQ(at("dev/null").mode, 0666u);
  EXPECT_EQ(at("dev/loop0").type, 'b');
  EXPECT_EQ(at("dev/loop0").rdev, makedev(7, 0));
  EXPECT_EQ(at("dev/loop0").gid, 6u);
  EXPECT_EQ(at("dev/pipe").type, 'p');
  EXPECT_EQ(at(kGnuLongName).sha, Sha("gnu long name\n"));
  EXPECT_EQ(at(kGnuLongName).mode, 0640u);
  EXPECT_EQ(at(kGnuLongName).uid, 5u);
  EXPECT_EQ(at(kGnuLongName).mtime_sec, 1650000001);
  EXPECT_EQ(at("gnu").mode, 0750u);
  EXPECT_EQ(at("gnu").mtime_sec, 1650000000);
  EXPECT_EQ(at("gnu/longlink").target, kGnuLongTarget);
}

}  // namespace
}  // namespace hoist
