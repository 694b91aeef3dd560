// `hoist convert` end to end: a real distribution registry (tests/harness), images built with
// GNU tar and pushed with skopeo, the real `hoist` binary, and the real zstd / skopeo to judge
// the output.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "fetcher/manifest.h"
#include "index/byte_stream.h"
#include "index/tar_reader.h"
#include "index/zstd_chunked.h"
#include "tests/harness/hoist_cli.h"
#include "tests/harness/oci_image.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_registry.h"
#include "tests/integration/layout_image.h"
#include "tools/image/image_manifest.h"
#include "tools/image/image_stream.h"
#include "tools/image/image_transport.h"

#ifndef HOIST_BINARY
#error "HOIST_BINARY must name the hoist executable"
#endif

namespace hoist {
namespace {

using harness::RunHoist;

using testutil::DecompressedDigest;
using testutil::LayoutImage;
using testutil::ReadLayoutImage;

using harness::CommandOptions;
using harness::CommandResult;
using harness::FileSpec;
using harness::LayerCompression;
using harness::LayerSpec;

std::string MakeTempDir() {
  const char* tmp = ::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/hoist-convert-test-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return {};
  return templ;
}

// skopeo copy between two transports (registries on loopback, no TLS).
Status Skopeo(std::vector<std::string> extra, const std::string& src, const std::string& dst) {
  std::vector<std::string> argv = {"skopeo", "copy", "--insecure-policy", "--src-tls-verify=false",
                                   "--dest-tls-verify=false"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(src);
  argv.push_back(dst);
  CommandOptions options;
  options.timeout = std::chrono::minutes(5);
  auto out = harness::RunChecked(argv, options);
  if (!out) return Fail(out.error());
  return Ok();
}

// The manifest, config and layers of an image in a local OCI layout.
// The TOC of a converted layer, read with index/'s zstd:chunked reader, must list exactly the
// source tar's members (index/'s tar reader), in order, with the same metadata, and every chunk
// range of the blob must decompress to the file bytes it claims, with the digest it claims.
Status CheckTocAgainstTar(const std::string& blob_path, const Descriptor& layer) {
  HOIST_ASSIGN_OR_RETURN(std::string blob, ReadFile(blob_path));
  HOIST_ASSIGN_OR_RETURN(std::string tar, harness::RunChecked({"zstd", "-dc", "--", blob_path}));
  HOIST_ASSIGN_OR_RETURN(ZstdChunkedAnnotations ann,
                         ParseZstdChunkedAnnotations(layer.annotations));
  HOIST_ASSIGN_OR_RETURN(ZstdChunkedLayer loaded,
                         LoadZstdChunkedLayer(
                             [&](uint64_t off, uint64_t len) -> Result<std::string> {
                               if (off + len > blob.size()) return Fail(EIO, "range past the end");
                               return blob.substr(off, len);
                             },
                             blob.size(), layer.digest, ann));
  const std::vector<Entry>& entries = loaded.index.entries;
  TarReader reader(MemoryReader(tar));
  size_t k = 0;
  for (;;) {
    HOIST_ASSIGN_OR_RETURN(const TarMember* m, reader.Next());
    if (m == nullptr) break;
    if (k >= entries.size()) return Fail(EIO, "TOC lacks tar member " + m->entry.path);
    const Entry& e = entries[k++];
    std::string what = "entry " + std::to_string(k - 1) + " (" + m->entry.path + ")";
    if (e.path != m->entry.path || e.type != m->entry.type || e.mode != m->entry.mode ||
        e.uid != m->entry.uid || e.gid != m->entry.gid || e.size != m->entry.size ||
        e.link_name != m->entry.link_name || e.dev_major != m->entry.dev_major ||
        e.dev_minor != m->entry.dev_minor || e.xattrs != m->entry.xattrs) {
      return Fail(EIO, what + ": TOC metadata differs from the tar (TOC path " + e.path + ")");
    }
    if (e.type != EntryType::kRegular || e.size == 0) continue;
    std::string content(tar.data() + m->payload_offset, m->payload_size);
    if (e.digest != Digest::Of(content)) return Fail(EIO, what + ": file digest differs");
    uint64_t covered = 0;
    for (const Chunk& c : e.chunks) {
      if (c.file_offset != covered) return Fail(EIO, what + ": chunks leave a gap");
      std::string_view want(content.data() + c.file_offset, c.size);
      if (c.encoding == ChunkEncoding::kZeros) {
        if (want.find_first_not_of('\0') != std::string_view::npos) {
          return Fail(EIO, what + ": a zeros chunk covers non-zero bytes");
        }
      } else {
        if (c.blob_offset + c.blob_length > blob.size())
          return Fail(EIO, what + ": chunk past end");
        HOIST_ASSIGN_OR_RETURN(std::string got,
                               ZstdDecompressCapped(blob.substr(c.blob_offset, c.blob_length),
                                                    c.size + c.inner_offset));
        if (std::string_view(got).substr(c.inner_offset, c.size) != want) {
          return Fail(EIO, what + ": chunk at " + std::to_string(c.file_offset) +
                               " does not decompress to the file bytes");
        }
        if (!c.digest.empty() && c.digest != Digest::Of(want)) {
          return Fail(EIO, what + ": chunk digest differs");
        }
      }
      covered += c.size;
    }
    if (covered != e.size) return Fail(EIO, what + ": chunks do not cover the file");
  }
  if (k != entries.size()) {
    return Fail(EIO, "TOC has " + std::to_string(entries.size()) + " entries, the tar " +
                         std::to_string(k));
  }
  return Ok();
}

// Parses --json output.
struct JsonLayer {
  std::string action;
  std::string source;
  std::string digest;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
};
struct JsonReport {
  std::string digest;
  std::vector<JsonLayer> layers;
};
Result<JsonReport> ParseReport(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("layers")) {
    return Fail(EINVAL, "bad --json output: " + text);
  }
  JsonReport r;
  r.digest = doc["digest"].GetString();
  for (const auto& l : doc["layers"].GetArray()) {
    r.layers.push_back(JsonLayer{l["action"].GetString(), l["source"].GetString(),
                                 l["digest"].GetString(), l["bytesIn"].GetUint64(),
                                 l["bytesOut"].GetUint64()});
  }
  return r;
}

// A one-image OCI layout built by hand from raw tar bytes, so tests can use tars the harness
// refuses to make (devices, hostile names, truncated or corrupt data).
struct RawLayer {
  std::string tar;
  std::string compression = "gzip";  // gzip | zstd | none
  bool corrupt_compressed = false;   // flip bytes in the middle of the compressed blob
};

Result<std::string> Compress(const std::string& dir, const std::string& data,
                             const std::string& how) {
  std::string in = dir + "/compress-in";
  HOIST_RETURN_IF_ERROR(WriteFileAtomic(in, data));
  if (how == "none") return data;
  std::vector<std::string> argv = how == "gzip" ? std::vector<std::string>{"gzip", "-n", "-c", in}
                                                : std::vector<std::string>{"zstd", "-q", "-c", in};
  CommandOptions options;
  options.stdout_path = dir + "/compress-out";
  HOIST_RETURN_IF_ERROR(harness::RunChecked(argv, options));
  return ReadFile(options.stdout_path);
}

Status PutLayoutBlob(const std::string& dir, const std::string& bytes, Digest* digest) {
  *digest = Digest::Of(bytes);
  HOIST_RETURN_IF_ERROR(MakeDirs(dir + "/blobs/sha256"));
  return WriteFileAtomic(harness::LayoutBlobPath(dir, *digest), bytes);
}

Status BuildRawImage(const std::string& dir, const std::vector<RawLayer>& layers,
                     const std::string& tag,
                     const std::string& config_media_type = std::string(kMediaTypeOciConfig)) {
  HOIST_RETURN_IF_ERROR(MakeDirs(dir));
  std::string diff_ids, layer_json;
  for (const auto& l : layers) {
    HOIST_ASSIGN_OR_RETURN(std::string blob, Compress(dir, l.tar, l.compression));
    if (l.corrupt_compressed) {
      for (size_t i = blob.size() / 2; i < blob.size() / 2 + 64 && i < blob.size(); ++i) {
        blob[i] = static_cast<char>(blob[i] ^ 0x5a);
      }
    }
    Digest d;
    HOIST_RETURN_IF_ERROR(PutLayoutBlob(dir, blob, &d));
    std::string type = l.compression == "gzip"   ? std::string(kMediaTypeOciLayerGzip)
                       : l.compression == "zstd" ? std::string(kMediaTypeOciLayerZstd)
                                                 : std::string(kMediaTypeOciLayerTar);
    if (!diff_ids.empty()) diff_ids += ",";
    diff_ids += "\"" + Digest::Of(l.tar).str() + "\"";
    if (!layer_json.empty()) layer_json += ",";
    layer_json += "{\"mediaType\":\"" + type + "\",\"digest\":\"" + d.str() +
                  "\",\"size\":" + std::to_string(blob.size()) + "}";
  }
  std::string config =
      "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{},"
      "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[" +
      diff_ids + "]}}";
  Digest config_digest;
  HOIST_RETURN_IF_ERROR(PutLayoutBlob(dir, config, &config_digest));
  std::string manifest = "{\"schemaVersion\":2,\"mediaType\":\"" +
                         std::string(kMediaTypeOciManifest) + "\",\"config\":{\"mediaType\":\"" +
                         config_media_type + "\",\"digest\":\"" + config_digest.str() +
                         "\",\"size\":" + std::to_string(config.size()) + "},\"layers\":[" +
                         layer_json + "]}";
  Digest manifest_digest;
  HOIST_RETURN_IF_ERROR(PutLayoutBlob(dir, manifest, &manifest_digest));
  HOIST_RETURN_IF_ERROR(WriteFileAtomic(dir + "/oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}"));
  std::string index = "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" +
                      std::string(kMediaTypeOciManifest) + "\",\"digest\":\"" +
                      manifest_digest.str() + "\",\"size\":" + std::to_string(manifest.size()) +
                      ",\"annotations\":{\"org.opencontainers.image.ref.name\":\"" + tag + "\"}}]}";
  return WriteFileAtomic(dir + "/index.json", index);
}

// Python's tarfile writes the entries the harness (rightly) refuses to create on disk.
constexpr char kTarScript[] = R"PY(
import io, sys, tarfile
kind, out = sys.argv[1], sys.argv[2]
buf = io.BytesIO()
tf = tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT)
def add(name, data=b"", type=tarfile.REGTYPE, link="", major=0, minor=0):
    ti = tarfile.TarInfo(name)
    ti.type = type; ti.size = len(data) if type == tarfile.REGTYPE else 0
    ti.linkname = link; ti.devmajor = major; ti.devminor = minor
    ti.mtime = 1700000000; ti.mode = 0o644
    tf.addfile(ti, io.BytesIO(data) if type == tarfile.REGTYPE else None)
if kind == "devices":
    add("dev", type=tarfile.DIRTYPE)
    add("dev/null", type=tarfile.CHRTYPE, major=1, minor=3)
    add("dev/loop0", type=tarfile.BLKTYPE, major=7, minor=0)
    add("dev/fifo", type=tarfile.FIFOTYPE)
    add("etc", type=tarfile.DIRTYPE)
    add("etc/file", b"hello\n")
    add("etc/gnu-" + "x" * 150, b"long\n")
elif kind == "dotdot":
    add("ok", b"fine\n")
    add("../evil", b"escape\n")
elif kind == "absolute":
    add("/etc/evil", b"abs\n")
elif kind == "hardlink-out":
    add("ok", b"fine\n")
    add("link", type=tarfile.LNKTYPE, link="../../etc/shadow")
elif kind == "truncated":
    add("a", b"A" * 100000)
    add("b", b"B" * 100000)
tf.close()
data = buf.getvalue()
if kind == "truncated":
    data = data[:512 + 50000]
open(out, "wb").write(data)
)PY";

Result<std::string> MakeTar(const std::string& dir, const std::string& kind) {
  std::string script = dir + "/maketar.py";
  HOIST_RETURN_IF_ERROR(WriteFileAtomic(script, kTarScript));
  std::string out = dir + "/" + kind + ".tar";
  HOIST_RETURN_IF_ERROR(harness::RunChecked({"python3", script, kind, out}));
  return ReadFile(out);
}

// ---- pieces of the converter, without a registry ----

TEST(ImageNameTest, ParsesSkopeoTransports) {
  auto a = ParseImageName("localhost:5000/x/y:tag");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->transport, ImageName::Transport::kDocker);
  EXPECT_EQ(a->path, "localhost:5000/x/y:tag");
  auto b = ParseImageName("oci:/tmp/layout:v1");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->transport, ImageName::Transport::kOci);
  EXPECT_EQ(b->path, "/tmp/layout");
  EXPECT_EQ(b->tag, "v1");
  auto c = ParseImageName("docker://busybox");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->path, "busybox");
  EXPECT_EQ(ParseImageName("oci:/x:").error().code(), EINVAL);
  auto d = ParseImageName("oci-archive:/x.tar:v2");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->transport, ImageName::Transport::kOciArchive);
  EXPECT_EQ(d->path, "/x.tar");
  EXPECT_EQ(d->tag, "v2");
  EXPECT_EQ(d->ToString(), "oci-archive:/x.tar:v2");
  EXPECT_EQ(ParseImageName("oci-archive:/x.tar:").error().code(), EINVAL);
  EXPECT_EQ(ParseImageName("docker-daemon:x:y").error().code(), ENOTSUP);
  EXPECT_EQ(ParseImageName("docker://").error().code(), EINVAL);
}

Result<std::string> ReadAllThrough(Compression c, std::string data) {
  StringReader in(std::move(data));
  auto reader = NewDecompressor(c, &in);
  std::string out;
  char buf[1000];
  for (;;) {
    HOIST_ASSIGN_OR_RETURN(size_t got, reader->Read(buf, sizeof buf));
    if (got == 0) return out;
    out.append(buf, got);
  }
}

TEST(DecompressorTest, GzipMembersZstdFramesAndErrors) {
  std::string dir = MakeTempDir();
  std::string text1(70000, 'a'), text2 = "second member\n";
  auto g1 = Compress(dir, text1, "gzip");
  auto g2 = Compress(dir, text2, "gzip");
  ASSERT_TRUE(g1.has_value() && g2.has_value());
  EXPECT_EQ(DetectCompression(*g1), Compression::kGzip);
  auto both = ReadAllThrough(Compression::kGzip, *g1 + *g2);
  ASSERT_TRUE(both.has_value()) << both.error().message();
  EXPECT_EQ(*both, text1 + text2);
  auto truncated = ReadAllThrough(Compression::kGzip, g1->substr(0, g1->size() - 5));
  ASSERT_FALSE(truncated.has_value());
  EXPECT_EQ(truncated.error().code(), EIO);
  EXPECT_NE(truncated.error().message().find("truncated"), std::string::npos);
  std::string corrupt = *g1;
  corrupt[corrupt.size() / 2] ^= 0x55;
  corrupt[corrupt.size() / 2 + 1] ^= 0x55;
  auto bad = ReadAllThrough(Compression::kGzip, corrupt);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), EIO);
  EXPECT_TRUE(bad.error().message().starts_with("corrupt gzip")) << bad.error().message();

  auto z = Compress(dir, text1, "zstd");
  ASSERT_TRUE(z.has_value());
  EXPECT_EQ(DetectCompression(*z), Compression::kZstd);
  auto zz = ReadAllThrough(Compression::kZstd, *z + *z);
  ASSERT_TRUE(zz.has_value()) << zz.error().message();
  EXPECT_EQ(*zz, text1 + text1);
  auto zt = ReadAllThrough(Compression::kZstd, z->substr(0, z->size() - 3));
  ASSERT_FALSE(zt.has_value());
  EXPECT_EQ(zt.error().code(), EIO);
  EXPECT_EQ(DetectCompression(std::string(512, '\0')), Compression::kNone);
  (void)RemoveTree(dir);
}

// Gives `data` in pieces of at most `piece` bytes, then fails with EIO (or ends, if !fail); or,
// with endless, gives 'x' forever.
class PieceReader : public ByteReader {
 public:
  PieceReader(std::string data, size_t piece, bool fail, bool endless = false)
      : data_(std::move(data)), piece_(piece), fail_(fail), endless_(endless) {}
  Result<size_t> Read(char* buf, size_t n) override {
    if (endless_) {
      std::memset(buf, 'x', n);
      return n;
    }
    size_t take = std::min({n, piece_, data_.size() - pos_});
    if (take == 0 && fail_) return Fail(EIO, "boom at " + std::to_string(pos_));
    std::memcpy(buf, data_.data() + pos_, take);
    pos_ += take;
    return take;
  }

 private:
  std::string data_;
  size_t piece_, pos_ = 0;
  bool fail_, endless_;
};

Result<std::string> ReadAllInPieces(ByteReader& r, size_t piece) {
  std::string out, buf(piece, '\0');
  for (;;) {
    HOIST_ASSIGN_OR_RETURN(size_t got, r.Read(buf.data(), buf.size()));
    if (got == 0) return out;
    out.append(buf.data(), got);
  }
}

TEST(ReadAheadReaderTest, BytesInOrderThenEndOrTheError) {
  std::string data;
  for (int i = 0; i < 20000; ++i) data += std::to_string(i) + ",";
  // Small buffers and a short queue: many hand-overs between the threads.
  ReadAheadReader ok(std::make_unique<PieceReader>(data, 13, false), 7, 2);
  auto all = ReadAllInPieces(ok, 5);
  ASSERT_TRUE(all.has_value()) << all.error().message();
  EXPECT_EQ(*all, data);
  char c;
  EXPECT_EQ(ok.Read(&c, 1).value(), 0u);  // the end stays the end

  ReadAheadReader failing(std::make_unique<PieceReader>(data, 1000, true), 4096, 3);
  std::string got(data.size(), '\0');
  auto n = ReadFull(failing, got.data(), got.size());
  ASSERT_TRUE(n.has_value()) << n.error().message();
  EXPECT_EQ(*n, data.size());
  EXPECT_EQ(got, data);  // every byte before the error comes out first
  auto err = failing.Read(&c, 1);
  ASSERT_FALSE(err.has_value());
  EXPECT_EQ(err.error().code(), EIO);
  EXPECT_EQ(err.error().message(), "boom at " + std::to_string(data.size()));
  auto again = failing.Read(&c, 1);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().message(), err.error().message());
}

TEST(ReadAheadReaderTest, StopsWhenDestroyedMidStreamAndCarriesDecompressorErrors) {
  {
    ReadAheadReader endless(std::make_unique<PieceReader>("", 0, false, true), 1 << 16, 4);
    char buf[100];
    EXPECT_EQ(endless.Read(buf, sizeof buf).value(), 100u);
    EXPECT_EQ(std::string(buf, 100), std::string(100, 'x'));
  }  // joins its thread without reading to the end (a hang would time the test out)

  std::string dir = MakeTempDir();
  std::string text(300000, 'q');
  auto gz = Compress(dir, text, "gzip");
  ASSERT_TRUE(gz.has_value());
  StringReader in(gz->substr(0, gz->size() - 5));
  ReadAheadReader truncated(NewDecompressor(Compression::kGzip, &in), 1 << 12, 2);
  auto all = ReadAllInPieces(truncated, 1000);
  ASSERT_FALSE(all.has_value());
  EXPECT_EQ(all.error().code(), EIO);
  EXPECT_NE(all.error().message().find("truncated"), std::string::npos) << all.error().message();
  (void)RemoveTree(dir);
}

TEST(ManifestRewriteTest, DockerManifestBecomesOciWithConfigBytesKept) {
  std::string docker =
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",)"
      R"("config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":7,)"
      R"("digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},)"
      R"("layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":9,)"
      R"("digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222"}]})";
  Descriptor layer;
  layer.media_type = std::string(kMediaTypeOciLayerZstd);
  layer.digest =
      *Digest::Parse("sha256:3333333333333333333333333333333333333333333333333333333333333333");
  layer.size = 42;
  layer.annotations = {{"b", "2"}, {"a", "1"}};
  auto out = RewriteManifest(docker, {layer});
  ASSERT_TRUE(out.has_value()) << out.error().message();
  EXPECT_EQ(
      *out,
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
      R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":7,)"
      R"("digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},)"
      R"("layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","size":42,)"
      R"("digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333",)"
      R"("annotations":{"a":"1","b":"2"}}]})");
  // Rewriting the output again with the same layers is a fixed point.
  auto again = RewriteManifest(*out, {layer});
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, *out);
  EXPECT_EQ(RewriteManifest(docker, {}).error().code(), EINVAL);
  auto not_image = ParseContainerImageManifest(
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
      R"("config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","size":7,)"
      R"("digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},"layers":[]})",
      kMediaTypeOciManifest);
  ASSERT_FALSE(not_image.has_value());
  EXPECT_EQ(not_image.error().code(), EINVAL);
  EXPECT_NE(not_image.error().message().find("not an image"), std::string::npos);
}

class ConvertTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto programs =
        harness::RequirePrograms({"skopeo", "zstd", "gzip", "python3", "docker-registry"});
    ASSERT_TRUE(programs.has_value()) << programs.error().message();
    work_ = new std::string(MakeTempDir());
    ASSERT_FALSE(work_->empty());
    auto reg = harness::TestRegistry::Launch();
    ASSERT_TRUE(reg.has_value()) << reg.error().message();
    registry_ = reg->release();

    // The main test image: three layers (gzip, zstd, plain tar) with every entry type GNU tar
    // makes from a real tree, whiteouts, an opaque directory, hardlinks, xattrs, long names, a
    // run of zeros and a file over 64 MiB.
    std::string long_dir = "opt/" + std::string(120, 'd');
    std::vector<LayerSpec> layers = {
        LayerSpec(
            {FileSpec::Dir("etc"), FileSpec::File("etc/hosts", "127.0.0.1 localhost\n"),
             FileSpec::File("etc/passwd", "root:x:0:0::/root:/bin/sh\n").Owner(0, 0),
             FileSpec::Dir("usr/bin"),
             FileSpec::File("usr/bin/tool", "#!/bin/sh\necho tool\n", 0755)
                 .Xattr("user.origin", "hoist-test")
                 .Owner(1000, 1000),
             FileSpec::Symlink("usr/bin/link", "tool"),
             FileSpec::Hardlink("usr/bin/tool-hard", "usr/bin/tool"), FileSpec::Fifo("run/fifo"),
             FileSpec::File(long_dir + "/" + std::string(140, 'f'), "long name\n"),
             FileSpec::File("data/zeros", std::string(3 << 20, '\0')),
             FileSpec::BigFile("data/big", (64 << 20) + 12345, /*seed=*/7),
             FileSpec::Dir("var/cache/app"), FileSpec::File("var/cache/app/old", "old\n"),
             FileSpec::File("usr/setuid", "s", 04755)},
            LayerCompression::kGzip),
        LayerSpec(
            {FileSpec::Whiteout("etc/hosts"), FileSpec::Opaque("var/cache/app"),
             FileSpec::File("var/cache/app/new", "new\n"), FileSpec::File("etc/motd", "welcome\n")},
            LayerCompression::kZstd),
        LayerSpec({FileSpec::File("srv/a", "a\n"), FileSpec::Hardlink("srv/b", "srv/a"),
                   FileSpec::Symlink("srv/dangling", "/nonexistent")},
                  LayerCompression::kNone),
    };
    auto image = harness::BuildOciImage(*work_ + "/src-layout", layers, {.tag = "v1"});
    ASSERT_TRUE(image.has_value()) << image.error().message();
    image_ = new harness::BuiltImage(*image);
    auto pushed = harness::PushOciLayout(image->OciRef(), registry_->DockerRef("src/img", "v1"));
    ASSERT_TRUE(pushed.has_value()) << pushed.error().message();
  }

  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
    delete image_;
    image_ = nullptr;
    if (work_ != nullptr) (void)RemoveTree(*work_);
    delete work_;
    work_ = nullptr;
  }

  std::string Ref(const std::string& repo, const std::string& tag = "v1") {
    return registry_->DockerRef(repo, tag);
  }
  std::string Dir(const std::string& name) { return *work_ + "/" + name; }

  // Converts src to dst with --json and returns the parsed report.
  Result<JsonReport> Convert(const std::string& src, const std::string& dst,
                             std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"convert", "--json", src, dst};
    args.insert(args.end(), extra.begin(), extra.end());
    CommandResult r = RunHoist(args);
    if (!r.ok()) return Fail(EIO, "hoist convert failed (" + r.Describe() + "): " + r.stderr_text);
    return ParseReport(r.stdout_text);
  }

  // True when the registry has a manifest for repo:tag.
  bool HasManifest(const std::string& repo, const std::string& tag) {
    auto r =
        harness::RunCommand({"skopeo", "inspect", "--raw", "--tls-verify=false", Ref(repo, tag)});
    return r.has_value() && r->ok();
  }

  static harness::TestRegistry* registry_;
  static harness::BuiltImage* image_;
  static std::string* work_;
};

harness::TestRegistry* ConvertTest::registry_ = nullptr;
harness::BuiltImage* ConvertTest::image_ = nullptr;
std::string* ConvertTest::work_ = nullptr;

TEST_F(ConvertTest, RegistryToRegistryKeepsTarsAndConfig) {
  auto report = Convert(Ref("src/img"), Ref("out/img"));
  ASSERT_TRUE(report.has_value()) << report.error().message();
  ASSERT_EQ(report->layers.size(), 3u);
  for (const auto& l : report->layers) EXPECT_EQ(l.action, "converted");

  // skopeo must copy the converted image without error.
  ASSERT_TRUE(Skopeo({}, Ref("out/img"), "oci:" + Dir("out-layout") + ":v1").has_value());
  auto out = ReadLayoutImage(Dir("out-layout"), "v1");
  ASSERT_TRUE(out.has_value()) << out.error().message();
  EXPECT_EQ(out->raw.digest.str(), report->digest);
  EXPECT_EQ(out->raw.media_type, kMediaTypeOciManifest);
  // The config is unchanged, byte for byte.
  EXPECT_EQ(out->manifest.config.digest, image_->config_digest);
  EXPECT_EQ(out->config_bytes, image_->config);
  ASSERT_EQ(out->manifest.layers.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const Descriptor& layer = out->manifest.layers[i];
    SCOPED_TRACE("layer " + std::to_string(i));
    EXPECT_EQ(layer.media_type, kMediaTypeOciLayerZstd);
    EXPECT_EQ(layer.annotations.count(std::string(kAnnotationTocChecksum)), 1u);
    EXPECT_EQ(layer.annotations.count(std::string(kAnnotationTocPosition)), 1u);
    EXPECT_EQ(layer.annotations.count(std::string(kAnnotationTarSplitPosition)), 1u);
    // `zstd -d` of the converted layer is the source tar exactly.
    auto diff = DecompressedDigest(out->BlobPath(layer.digest));
    ASSERT_TRUE(diff.has_value()) << diff.error().message();
    EXPECT_EQ(*diff, image_->layers[i].diff_id);
    EXPECT_EQ(*diff, out->config.diff_ids[i]);
    EXPECT_EQ(report->layers[i].digest, layer.digest.str());
    EXPECT_EQ(report->layers[i].source, image_->layers[i].digest.str());
    EXPECT_EQ(report->layers[i].bytes_in, image_->layers[i].size);
    EXPECT_EQ(report->layers[i].bytes_out, static_cast<uint64_t>(layer.size));
    auto toc = CheckTocAgainstTar(out->BlobPath(layer.digest), layer);
    EXPECT_TRUE(toc.has_value()) << toc.error().message();
  }
}

TEST_F(ConvertTest, ConvertingTwiceGivesTheSameDigests) {
  auto a = Convert(Ref("src/img"), Ref("twice/a"));
  ASSERT_TRUE(a.has_value()) << a.error().message();
  auto b = Convert(Ref("src/img"), Ref("twice/b"));
  ASSERT_TRUE(b.has_value()) << b.error().message();
  EXPECT_EQ(a->digest, b->digest);
  // Converting the converted image reuses every layer and changes nothing.
  auto c = Convert(Ref("twice/a"), Ref("twice/c"));
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_EQ(c->digest, a->digest);
  for (const auto& l : c->layers) EXPECT_EQ(l.action, "reused");
}

TEST_F(ConvertTest, RegistryToOciLayoutAndBack) {
  std::string layout = Dir("oci-out");
  auto a = Convert(Ref("src/img"), "oci:" + layout + ":conv");
  ASSERT_TRUE(a.has_value()) << a.error().message();
  auto local = ReadLayoutImage(layout, "conv");
  ASSERT_TRUE(local.has_value()) << local.error().message();
  EXPECT_EQ(local->raw.digest.str(), a->digest);
  for (size_t i = 0; i < local->manifest.layers.size(); ++i) {
    auto diff = DecompressedDigest(local->BlobPath(local->manifest.layers[i].digest));
    ASSERT_TRUE(diff.has_value()) << diff.error().message();
    EXPECT_EQ(*diff, image_->layers[i].diff_id);
  }
  // oci: source, docker:// destination; the same digest as registry to registry.
  auto b = Convert("oci:" + image_->layout_dir + ":v1", Ref("from-oci/img"));
  ASSERT_TRUE(b.has_value()) << b.error().message();
  EXPECT_EQ(b->digest, a->digest);
  // A second tag in the same layout keeps the first one.
  auto c = Convert("oci:" + image_->layout_dir + ":v1", "oci:" + layout + ":again");
  ASSERT_TRUE(c.has_value()) << c.error().message();
  EXPECT_TRUE(ReadLayoutImage(layout, "conv").has_value());
  EXPECT_TRUE(ReadLayoutImage(layout, "again").has_value());
}

TEST_F(ConvertTest, SkopeoZstdChunkedImageIsReused) {
  // skopeo 1.9.3 reuses (mounts) blobs it already saw in a registry instead of recompressing
  // them, so its zstd:chunked copy goes to a registry that has never seen this image.
  auto fresh = harness::TestRegistry::Launch();
  ASSERT_TRUE(fresh.has_value()) << fresh.error().message();
  std::string chunked = (*fresh)->DockerRef("skopeo/chunked", "v1");
  ASSERT_TRUE(Skopeo({"--dest-compress", "--dest-compress-format", "zstd:chunked"},
                     image_->OciRef(), chunked)
                  .has_value());
  ASSERT_TRUE(Skopeo({}, chunked, "oci:" + Dir("skopeo-layout") + ":v1").has_value());
  auto skopeo_image = ReadLayoutImage(Dir("skopeo-layout"), "v1");
  ASSERT_TRUE(skopeo_image.has_value()) << skopeo_image.error().message();
  for (const auto& l : skopeo_image->manifest.layers) {
    ASSERT_EQ(l.media_type, kMediaTypeOciLayerZstd) << "skopeo did not make zstd:chunked";
  }
  auto report = Convert(chunked, (*fresh)->DockerRef("skopeo/hoist", "v1"));
  ASSERT_TRUE(report.has_value()) << report.error().message();
  ASSERT_EQ(report->layers.size(), skopeo_image->manifest.layers.size());
  for (size_t i = 0; i < report->layers.size(); ++i) {
    EXPECT_EQ(report->layers[i].action, "reused");
    EXPECT_EQ(report->layers[i].digest, skopeo_image->manifest.layers[i].digest.str());
  }
}

TEST_F(ConvertTest, DevicesAndLongNamesRoundTrip) {
  auto tar = MakeTar(*work_, "devices");
  ASSERT_TRUE(tar.has_value()) << tar.error().message();
  std::string layout = Dir("devices-layout");
  ASSERT_TRUE(BuildRawImage(layout, {{*tar, "gzip"}}, "v1").has_value());
  auto report = Convert("oci:" + layout + ":v1", "oci:" + Dir("devices-out") + ":v1");
  ASSERT_TRUE(report.has_value()) << report.error().message();
  auto out = ReadLayoutImage(Dir("devices-out"), "v1");
  ASSERT_TRUE(out.has_value()) << out.error().message();
  auto diff = DecompressedDigest(out->BlobPath(out->manifest.layers[0].digest));
  ASSERT_TRUE(diff.has_value()) << diff.error().message();
  EXPECT_EQ(*diff, Digest::Of(*tar));
}

// Bad input: a clear one-line error naming the layer (and the entry), a non-zero exit, and no
// manifest at the destination.
class ConvertBadInputTest : public ConvertTest {
 protected:
  void ExpectFails(const std::string& kind, const std::vector<RawLayer>& layers,
                   const std::vector<std::string>& expected_words,
                   const std::string& config_type = std::string(kMediaTypeOciConfig)) {
    std::string layout = Dir("bad-" + kind);
    ASSERT_TRUE(BuildRawImage(layout, layers, "v1", config_type).has_value());
    ASSERT_TRUE(harness::PushOciLayout("oci:" + layout + ":v1", Ref("bad/" + kind)).has_value());
    for (const std::string& dst :
         {Ref("bad-out/" + kind), "oci:" + Dir("bad-out-" + kind) + ":v1"}) {
      SCOPED_TRACE(dst);
      CommandResult r = RunHoist({"convert", "-q", Ref("bad/" + kind), dst});
      EXPECT_EQ(r.exit_code, 1) << r.Describe() << ": " << r.stderr_text;
      EXPECT_TRUE(r.stderr_text.starts_with("hoist convert: ")) << r.stderr_text;
      EXPECT_EQ(std::count(r.stderr_text.begin(), r.stderr_text.end(), '\n'), 1) << r.stderr_text;
      for (const auto& w : expected_words) {
        EXPECT_NE(r.stderr_text.find(w), std::string::npos)
            << "missing \"" << w << "\" in " << r.stderr_text;
      }
    }
    EXPECT_FALSE(HasManifest("bad-out/" + kind, "v1"));
    struct stat st;
    EXPECT_NE(::lstat(Dir("bad-out-" + kind).c_str(), &st), 0) << "oci: destination was created";
  }
};

TEST_F(ConvertBadInputTest, CorruptGzip) {
  RawLayer good{std::string(10240, '\0'), "gzip"};
  auto tar = MakeTar(*work_, "devices");
  ASSERT_TRUE(tar.has_value());
  RawLayer bad{*tar + std::string(1 << 20, 'x'), "gzip", /*corrupt_compressed=*/true};
  ExpectFails("corrupt-gzip", {good, bad}, {"layer 2 of 2", "gzip"});
}

TEST_F(ConvertBadInputTest, TruncatedTar) {
  auto tar = MakeTar(*work_, "truncated");
  ASSERT_TRUE(tar.has_value());
  ExpectFails("truncated", {{*tar, "zstd"}}, {"layer 1 of 1"});
}

TEST_F(ConvertBadInputTest, DotDotName) {
  auto tar = MakeTar(*work_, "dotdot");
  ASSERT_TRUE(tar.has_value());
  ExpectFails("dotdot", {{*tar, "gzip"}}, {"layer 1 of 1", "../evil"});
}

// Absolute names are normalised ("/etc/evil" is "etc/evil"), as index/'s shared name cleaning
// does for every format (and as runtimes do); the tar itself is kept byte for byte.
TEST_F(ConvertTest, AbsoluteNameIsNormalisedNotRejected) {
  auto tar = MakeTar(*work_, "absolute");
  ASSERT_TRUE(tar.has_value());
  std::string layout = Dir("absolute-layout");
  ASSERT_TRUE(BuildRawImage(layout, {{*tar, "gzip"}}, "v1").has_value());
  auto report = Convert("oci:" + layout + ":v1", "oci:" + Dir("absolute-out") + ":v1");
  ASSERT_TRUE(report.has_value()) << report.error().message();
  auto out = ReadLayoutImage(Dir("absolute-out"), "v1");
  ASSERT_TRUE(out.has_value()) << out.error().message();
  auto diff = DecompressedDigest(out->BlobPath(out->manifest.layers[0].digest));
  ASSERT_TRUE(diff.has_value()) << diff.error().message();
  EXPECT_EQ(*diff, Digest::Of(*tar));
}

TEST_F(ConvertBadInputTest, HardlinkOutsideTheLayer) {
  auto tar = MakeTar(*work_, "hardlink-out");
  ASSERT_TRUE(tar.has_value());
  ExpectFails("hardlink-out", {{*tar, "none"}}, {"layer 1 of 1", "link"});
}

TEST_F(ConvertBadInputTest, NotAnImage) {
  ExpectFails("artifact", {{std::string(10240, '\0'), "gzip"}}, {"not an image"},
              "application/vnd.example.artifact.config.v1+json");
}

TEST_F(ConvertTest, MissingImageFailsCleanly) {
  CommandResult r = RunHoist({"convert", "-q", Ref("no/such", "v1"), Ref("no/out")});
  EXPECT_EQ(r.exit_code, 1) << r.stderr_text;
  EXPECT_TRUE(r.stderr_text.starts_with("hoist convert: ")) << r.stderr_text;
  EXPECT_FALSE(HasManifest("no/out", "v1"));
}

}  // namespace
}  // namespace hoist
