#include "index/zstd_chunked.h"

#include <gtest/gtest.h>

#include <rapidjson/document.h>
#include <map>

#include "index/chunk_codec.h"
#include "index/tar_reader.h"
#include "tests/index/format_test_util.h"

namespace hoist {
namespace {

using testing::Sh;
using testing::Slurp;

std::string Le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

std::string Footer(std::vector<uint64_t> fields) {
  std::string payload;
  for (uint64_t f : fields) payload += Le64(f);
  payload += "GnUlInUx";
  std::string out = "\x50\x2a\x4d\x18";
  uint32_t n = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) out += static_cast<char>(n >> (8 * i));
  return out + payload;
}

TEST(ZstdChunkedFooter, V1AndV2) {
  std::string v1 = Footer({1059694, 2278, 8390, 1});
  ASSERT_EQ(v1.size(), 48u);
  auto f = ParseZstdChunkedFooter(v1, 2000000);
  ASSERT_TRUE(f) << f.error().message();
  EXPECT_EQ(f->version, 1);
  EXPECT_EQ(f->toc.offset, 1059694u);
  EXPECT_EQ(f->toc.length, 2278u);
  EXPECT_EQ(f->toc.uncompressed_length, 8390u);
  EXPECT_FALSE(f->tar_split);
  // A v1 footer read through a 72-byte tail.
  auto f1 = ParseZstdChunkedFooter(std::string(24, 'z') + v1, 2000000);
  ASSERT_TRUE(f1);
  EXPECT_EQ(f1->version, 1);
  std::string v2 = Footer({100, 50, 500, 1, 150, 30, 300});
  ASSERT_EQ(v2.size(), 72u);
  auto f2 = ParseZstdChunkedFooter(v2, 252);
  ASSERT_TRUE(f2) << f2.error().message();
  EXPECT_EQ(f2->version, 2);
  ASSERT_TRUE(f2->tar_split);
  EXPECT_EQ(f2->tar_split->offset, 150u);
  EXPECT_EQ(f2->tar_split->length, 30u);
}

TEST(ZstdChunkedFooter, RejectsBadFooters) {
  EXPECT_EQ(ParseZstdChunkedFooter(std::string(72, '\0'), 1000).error().code(), EBADMSG);
  std::string bad_magic = Footer({1, 2, 3, 1});
  bad_magic[47] = 'X';
  EXPECT_EQ(ParseZstdChunkedFooter(bad_magic, 1000).error().code(), EBADMSG);
  EXPECT_EQ(ParseZstdChunkedFooter(Footer({10, 20, 30, 2}), 1000).error().message(),
            "zstd:chunked footer: unknown TOC type 2");
  // Points at itself / past the end.
  EXPECT_EQ(ParseZstdChunkedFooter(Footer({960, 40, 30, 1}), 1000).error().code(), EBADMSG);
  EXPECT_EQ(ParseZstdChunkedFooter(Footer({UINT64_MAX - 5, 40, 30, 1}), 1000).error().code(),
            EBADMSG);
  // Overlapping TOC and tar-split.
  EXPECT_EQ(ParseZstdChunkedFooter(Footer({100, 50, 500, 1, 120, 30, 300}), 1000).error().code(),
            EBADMSG);
}

TEST(ZstdChunkedAnnotations, BothPrefixesAndStargz) {
  std::string d = "sha256:" + std::string(64, 'a');
  auto a =
      ParseZstdChunkedAnnotations({{"io.containers.zstd-chunked.manifest-checksum", d},
                                   {"io.containers.zstd-chunked.manifest-position", "1:2:3:1"}});
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(a->toc_digest.str(), d);
  ASSERT_TRUE(a->toc);
  EXPECT_EQ(a->toc->uncompressed_length, 3u);
  auto b = ParseZstdChunkedAnnotations(
      {{"io.github.containers.zstd-chunked.tarsplit-position", "10:20:30"},
       {"containerd.io/snapshot/stargz/toc.digest", d}});
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(b->tar_split->offset, 10u);
  EXPECT_EQ(b->toc_json_digest.str(), d);
  EXPECT_EQ(ParseZstdChunkedAnnotations({{"x", "y"}}).error().code(), ENOENT);
  EXPECT_EQ(ParseZstdChunkedAnnotations(
                {{"io.github.containers.zstd-chunked.manifest-position", "1:2:3"}})
                .error()
                .code(),
            EBADMSG);
  EXPECT_EQ(ParseZstdChunkedAnnotations(
                {{"io.github.containers.zstd-chunked.manifest-position", "1:2:x:1"}})
                .error()
                .code(),
            EBADMSG);
}

std::string Compress(const std::string& s) {
  std::string dir = testing::MakeTempDir();
  {
    FILE* f = std::fopen((dir + "/in").c_str(), "wb");
    std::fwrite(s.data(), 1, s.size(), f);
    std::fclose(f);
  }
  EXPECT_EQ(Sh("zstd -q -c " + dir + "/in > " + dir + "/out"), 0);
  std::string out = Slurp(dir + "/out");
  Sh("rm -rf " + dir);
  return out;
}

Result<LayerIndex> ParseJsonToc(const std::string& json, uint64_t data_end = 1000) {
  std::string c = Compress(json);
  return ParseZstdChunkedToc(c, Digest::Of(c), Digest(), json.size(), data_end);
}

const char kDigA[] = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

TEST(ZstdChunkedToc, ChunkRangesFromOffsets) {
  std::string json = std::string(R"({"version":1,"entries":[
    {"type":"dir","name":"./","mode":493,"modtime":"2020-01-02T03:04:05.25Z"},
    {"type":"reg","name":"./f","size":300,"offset":10,"endOffset":100,"chunkSize":100,"chunkDigest":")") +
                     kDigA + R"("},
    {"type":"chunk","name":"./f","offset":40,"chunkOffset":100,"chunkSize":150,"chunkDigest":")" +
                     kDigA + R"("},
    {"type":"chunk","name":"./f","offset":70,"chunkOffset":250,"chunkSize":50,"chunkType":"zeros"},
    {"type":"hardlink","name":"./g","linkName":"f"}]})";
  auto idx = ParseJsonToc(json);
  ASSERT_TRUE(idx) << idx.error().message();
  ASSERT_EQ(idx->entries.size(), 3u);
  EXPECT_EQ(idx->entries[0].path, "");
  EXPECT_EQ(idx->entries[0].mtime_sec, 1577934245);
  EXPECT_EQ(idx->entries[0].mtime_nsec, 250000000u);
  const Entry& f = idx->entries[1];
  ASSERT_EQ(f.chunks.size(), 3u);
  EXPECT_EQ(f.chunks[0].blob_offset, 10u);
  EXPECT_EQ(f.chunks[0].blob_length, 30u);
  EXPECT_EQ(f.chunks[1].blob_offset, 40u);
  EXPECT_EQ(f.chunks[1].blob_length, 30u);  // ends where the next (zeros) frame starts
  EXPECT_EQ(f.chunks[2].encoding, ChunkEncoding::kZeros);
  EXPECT_EQ(idx->entries[2].link_name, "f");
}

TEST(ZstdChunkedToc, RejectsLyingTocs) {
  auto reg = [](std::string extra) {
    return std::string(R"({"version":1,"entries":[{"type":"reg","name":"f","size":10,"digest":")") +
           kDigA + "\"" + extra + "}";
  };
  struct Case {
    std::string json;
    std::string want;
  } cases[] = {
      {reg(R"(,"offset":900,"endOffset":2000}]})"), "past the data end"},
      {reg(R"(,"offset":10,"endOffset":20,"chunkSize":4}]})"), "add up to 4"},
      {reg(R"(,"offset":10,"endOffset":20},{"type":"reg","name":"g","size":10,"digest":")" +
           std::string(kDigA) + R"(","offset":15,"endOffset":30}]})"),
       "overlap"},
      {R"({"version":1,"entries":[{"type":"reg","name":"../x"}]})", "escapes the layer root"},
      {R"({"version":1,"entries":[{"type":"reg","name":"x","size":-1}]})", "non-negative"},
      {R"({"version":1,"entries":[{"type":"chunk","name":"x"}]})", "without a preceding"},
      {R"({"version":1,"entries":[{"type":"reg","name":"x","size":5}]})", "without an offset"},
      {R"({"version":7,"entries":[]})", "version"},
      {R"({"version":1,"entries":[)", "not valid JSON"},
      {R"({"version":1,"entries":[{"type":"reg","name":"x","size":99999999999999999}]})",
       "over the cap"},
  };
  for (const auto& c : cases) {
    auto idx = ParseJsonToc(c.json);
    ASSERT_FALSE(idx) << c.json;
    EXPECT_NE(idx.error().message().find(c.want), std::string::npos)
        << idx.error().message() << " for " << c.json;
  }
}

TEST(ZstdChunkedToc, DigestAndSizeChecks) {
  std::string json = R"({"version":1,"entries":[]})";
  std::string c = Compress(json);
  auto wrong = ParseZstdChunkedToc(c, Digest::Of("x"), Digest(), json.size(), 10);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code(), EIO);
  auto lying_size = ParseZstdChunkedToc(c, Digest::Of(c), Digest(), json.size() + 1, 10);
  ASSERT_FALSE(lying_size);
  EXPECT_EQ(lying_size.error().code(), EBADMSG);
  // A bomb: 64 MiB of JSON whitespace against a 1 MiB cap (the TOC is parsed as it is
  // decompressed, so the cap, not the end of the text, stops it).
  std::string bomb = Compress(std::string(64 << 20, ' '));
  ZstdChunkedLimits small;
  small.max_toc_size = 1 << 20;
  auto b = ParseZstdChunkedToc(bomb, Digest::Of(bomb), Digest(), 0, 10, small);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code(), EFBIG);
  EXPECT_EQ(b.error().message(), "zstd data decompresses to more than 1048576 bytes");
  // 64 MiB of NULs is not JSON: rejected at its first byte, long before the cap.
  std::string nuls = Compress(std::string(64 << 20, '\0'));
  auto n = ParseZstdChunkedToc(nuls, Digest::Of(nuls), Digest(), 0, 10, small);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code(), EBADMSG);
  EXPECT_EQ(n.error().message(), "TOC is not valid JSON: The document is empty. at byte 0");
  // Trailing bytes after the root object count towards the declared size.
  std::string padded = json + "   ";
  std::string cp = Compress(padded);
  auto ok = ParseZstdChunkedToc(cp, Digest::Of(cp), Digest(), padded.size(), 10);
  ASSERT_TRUE(ok) << ok.error().message();
  auto short_decl = ParseZstdChunkedToc(cp, Digest::Of(cp), Digest(), json.size(), 10);
  ASSERT_FALSE(short_decl);
  EXPECT_EQ(short_decl.error().message(),
            "zstd data decompresses to 29 bytes, not the declared 26");
  // A truncated frame is an error even when the JSON inside it is complete.
  auto cut = ParseZstdChunkedToc(c.substr(0, c.size() - 3), Digest::Of(c.substr(0, c.size() - 3)),
                                 Digest(), 0, 10);
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().code(), EBADMSG);
  auto truncated = ZstdDecompressCapped(c.substr(0, c.size() - 3), 1000);
  ASSERT_FALSE(truncated);
  EXPECT_EQ(truncated.error().code(), EBADMSG);
}

// The real producer: skopeo 1.9.3 converting an uncompressed OCI layer to zstd:chunked.
TEST(ZstdChunkedSkopeo, ParsesSkopeoOutputAndEveryChunkVerifies) {
  if (!testing::HaveTool("skopeo")) GTEST_SKIP() << "skopeo not installed";
  std::string dir = testing::MakeTempDir();
  ASSERT_EQ(
      Sh("cd " + dir +
         " && mkdir -p root/etc root/bin && printf hello > root/etc/hello"
         " && ln -s hello root/etc/link && ln root/etc/hello root/etc/zhard"
         " && head -c 400000 /dev/urandom > root/bin/big && head -c 70000 /dev/zero > root/zeros"
         " && tar -C root --sort=name -cf l.tar . && " HOIST_TEST_SRC_DIR
         "/make_oci_layout.sh l.tar src"
         " && timeout 120 skopeo copy -q --dest-compress-format zstd:chunked oci:src:t oci:out:t"),
      0);
  // Find the layer and its annotations in the manifest.
  std::string index = Slurp(dir + "/out/index.json");
  rapidjson::Document idoc;
  idoc.Parse(index.c_str());
  std::string mdig = idoc["manifests"][0]["digest"].GetString();
  std::string manifest = Slurp(dir + "/out/blobs/sha256/" + mdig.substr(7));
  rapidjson::Document mdoc;
  mdoc.Parse(manifest.c_str());
  const auto& layer = mdoc["layers"][0];
  std::map<std::string, std::string> ann;
  for (const auto& m : layer["annotations"].GetObject())
    ann[m.name.GetString()] = m.value.GetString();
  auto a = ParseZstdChunkedAnnotations(ann);
  ASSERT_TRUE(a) << a.error().message();
  std::string ldig = layer["digest"].GetString();
  std::string blob = Slurp(dir + "/out/blobs/sha256/" + ldig.substr(7));
  ASSERT_EQ(blob.size(), layer["size"].GetUint64());
  auto read = [&](uint64_t off, uint64_t len) -> Result<std::string> {
    return blob.substr(off, len);
  };
  int reads = 0;
  auto counted = [&](uint64_t off, uint64_t len) -> Result<std::string> {
    ++reads;
    return read(off, len);
  };
  auto loaded = LoadZstdChunkedLayer(counted, blob.size(), *Digest::Parse(ldig), *a);
  ASSERT_TRUE(loaded) << loaded.error().message();
  // The manifest-position annotation: the TOC in one read, the footer not read at all.
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(loaded->footer.version, 0);
  EXPECT_EQ(loaded->footer.toc.offset, a->toc->offset);
  {
    // Without it, the footer says the same.
    ZstdChunkedAnnotations no_position = *a;
    no_position.toc.reset();
    auto by_footer = LoadZstdChunkedLayer(read, blob.size(), *Digest::Parse(ldig), no_position);
    ASSERT_TRUE(by_footer) << by_footer.error().message();
    EXPECT_EQ(by_footer->footer.version, 1);
    EXPECT_EQ(by_footer->footer.toc.offset, a->toc->offset);
    EXPECT_EQ(by_footer->index.entries.size(), loaded->index.entries.size());
  }

  // Compare with the source tar.
  std::string tar = Slurp(dir + "/l.tar");
  TarReader tr(MemoryReader(tar));
  std::map<std::string, std::string> contents;
  std::vector<std::string> tar_paths;
  for (;;) {
    auto m = tr.Next();
    ASSERT_TRUE(m) << m.error().message();
    if (!*m) break;
    tar_paths.push_back((*m)->entry.path);
    std::string data((*m)->payload_size, '\0');
    ASSERT_TRUE(tr.ReadPayload(data.data(), data.size()));
    contents[(*m)->entry.path] = data;
  }
  std::vector<std::string> toc_paths;
  for (const Entry& e : loaded->index.entries) {
    toc_paths.push_back(e.path);
    if (e.type != EntryType::kRegular) continue;
    std::string rebuilt;
    for (const Chunk& c : e.chunks) {
      auto data = DecodeAndVerifyChunkBytes(c, blob.substr(c.blob_offset, c.blob_length), 1 << 26);
      ASSERT_TRUE(data) << e.path << ": " << data.error().message();
      rebuilt += *data;
    }
    EXPECT_EQ(rebuilt, contents[e.path]) << e.path;
    EXPECT_EQ(e.digest, Digest::Of(contents[e.path])) << e.path;
  }
  EXPECT_EQ(toc_paths, tar_paths);
  Sh("rm -rf " + dir);
}

TEST(ChunkCodec, DecodesAndRejects) {
  std::string data = "hello world";
  Chunk c;
  c.size = data.size();
  c.digest = Digest::Of(data);
  c.encoding = ChunkEncoding::kZstdFrame;
  std::string z = Compress(data);
  auto ok = DecodeAndVerifyChunkBytes(c, z, 100);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(*ok, data);
  c.size = 5;
  c.digest = Digest::Of("hello");
  EXPECT_EQ(DecodeAndVerifyChunkBytes(c, z, 100).error().code(), EBADMSG);  // decodes to more
  c.encoding = ChunkEncoding::kZstdFramePrefix;
  EXPECT_EQ(*DecodeAndVerifyChunkBytes(c, z, 100), "hello");
  c.inner_offset = 6;
  c.digest = Digest::Of("world");
  EXPECT_EQ(*DecodeAndVerifyChunkBytes(c, z, 100), "world");
  c.digest = Digest::Of("other");
  EXPECT_EQ(DecodeAndVerifyChunkBytes(c, z, 100).error().code(), EIO);
  c.size = 1000;
  EXPECT_EQ(DecodeAndVerifyChunkBytes(c, z, 100).error().code(), EFBIG);
  Chunk zeros;
  zeros.encoding = ChunkEncoding::kZeros;
  zeros.size = 4;
  EXPECT_EQ(*DecodeAndVerifyChunkBytes(zeros, "", 100), std::string(4, '\0'));
}

}  // namespace
}  // namespace hoist
