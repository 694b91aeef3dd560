#include "index/tar_split.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <zstd.h>

#include <map>

#include "index/chunk_codec.h"
#include "index/tar_path.h"
#include "index/tar_reader.h"
#include "index/zstd_chunked.h"
#include "index/zstd_chunked_writer.h"
#include "tests/index/format_test_util.h"

namespace hoist {
namespace {

using testing::Sh;
using testing::Slurp;

std::string Zstd(std::string_view data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

struct Written {
  std::string blob;
  ZstdChunkedWriteResult result;
};

Written WriteChunked(const std::string& tar) {
  Written w;
  auto r = WriteZstdChunked(MemoryReader(tar),
                            [&](std::string_view d) -> Status {
                              w.blob.append(d);
                              return Ok();
                            },
                            {.chunk_target = 16 << 10});
  EXPECT_TRUE(r) << r.error().message();
  if (r) w.result = *r;
  return w;
}

// Rebuilds the tar of a hoist-written zstd:chunked blob from its tar-split, taking every file's
// content from the layer's chunks (as a mount would), and compares it with the source tar.
void ExpectRoundTrip(const std::string& tar, const std::string& dir, const std::string& name) {
  Written w = WriteChunked(tar);
  ASSERT_FALSE(w.blob.empty());
  auto a = ParseZstdChunkedAnnotations(w.result.annotations);
  ASSERT_TRUE(a) << a.error().message();
  ASSERT_TRUE(a->tar_split);
  auto layer = LoadZstdChunkedLayer(
      [&](uint64_t off, uint64_t len) -> Result<std::string> { return w.blob.substr(off, len); },
      w.blob.size(), w.result.blob_digest, *a);
  ASSERT_TRUE(layer) << layer.error().message();
  // The TOC's tarSplitDigest is the sha256 of the compressed tar-split bytes.
  const std::string compressed = w.blob.substr(a->tar_split->offset, a->tar_split->length);
  EXPECT_EQ(layer->tar_split_digest, Digest::Of(compressed));
  EXPECT_EQ(layer->tar_split_digest, w.result.tar_split_digest);
  ASSERT_TRUE(layer->footer.tar_split);
  EXPECT_EQ(layer->footer.tar_split->offset, a->tar_split->offset);

  std::map<std::string, const Entry*> by_path;
  for (const Entry& e : layer->index.entries) by_path[e.path] = &e;
  std::vector<std::string> opened;
  std::vector<std::string> keep;  // contents handed out, alive until the end
  keep.reserve(1000);
  auto open = [&](std::string_view raw, uint64_t size) -> Result<ReadCallback> {
    opened.emplace_back(raw);
    HOIST_ASSIGN_OR_RETURN(std::string path, CleanEntryPath(raw));
    auto it = by_path.find(path);
    if (it == by_path.end()) return Fail(ENOENT, "no entry " + path);
    if (it->second->size != size) return Fail(EINVAL, "size mismatch for " + path);
    std::string content;
    for (const Chunk& c : it->second->chunks) {
      HOIST_ASSIGN_OR_RETURN(
          std::string d,
          DecodeAndVerifyChunkBytes(
              c, std::string_view(w.blob).substr(c.blob_offset, c.blob_length), 64 << 20));
      content += d;
    }
    keep.push_back(std::move(content));
    return MemoryReader(keep.back());
  };
  std::string out;
  auto stats =
      ReassembleTar(compressed, layer->tar_split_digest, open, [&](std::string_view d) -> Status {
        out.append(d);
        return Ok();
      });
  ASSERT_TRUE(stats) << stats.error().message();
  EXPECT_EQ(stats->tar_size, tar.size());
  EXPECT_GT(stats->files, 3u);
  EXPECT_TRUE(out == tar) << name << ": reassembled tar differs from the source";
  ASSERT_EQ(WriteFileAtomic(dir + "/" + name + ".out", out).has_value(), true);
  EXPECT_EQ(Sh("cmp " + dir + "/" + name + ".tar " + dir + "/" + name + ".out"), 0) << name;
}

class TarSplitRoundTrip : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    const std::string long_dir = "long/" + std::string(120, 'd');
    ASSERT_EQ(
        Sh("cd " + dir_ + " && mkdir -p src/dir/sub src/" + long_dir +
           " && printf 'hi\\n' > src/dir/small && head -c 200000 /dev/urandom > src/dir/big"
           " && head -c 70000 /dev/zero > src/zeros && : > src/empty"
           " && printf x > src/" +
           long_dir + "/" + std::string(100, 'f') + " && ln -s small src/dir/sym && ln -s " +
           std::string(150, 't') + " src/dir/longsym" +
           " && ln src/dir/small src/dir/zhard && ln src/" + long_dir + "/" +
           std::string(100, 'f') + " src/" + long_dir + "/" + std::string(101, 'h') +
           " && mkfifo src/dir/fifo && mknod src/dir/null c 1 3 && mknod src/dir/loop b 7 0"
           " && printf suid > src/suid && chmod 4755 src/suid && chown 1234:5678 src/suid"
           " && python3 -c 'import os; os.setxattr(\"src/dir/small\", \"user.hoist\", b\"v\")'"
           " && touch -d '2023-01-02 03:04:05.123456789' src/dir/big"),
        0);
  }
  void TearDown() override { Sh("rm -rf " + dir_); }
  std::string dir_;
};

TEST_F(TarSplitRoundTrip, PaxArchiveWithEveryEntryType) {
  ASSERT_EQ(Sh("cd " + dir_ +
               " && tar --format=pax --xattrs --sort=name --pax-option=comment=hello -C src "
               "-cf pax.tar ."),
            0);
  ExpectRoundTrip(Slurp(dir_ + "/pax.tar"), dir_, "pax");
}

TEST_F(TarSplitRoundTrip, GnuArchiveWithLongNamesAndLinks) {
  ASSERT_EQ(Sh("cd " + dir_ + " && tar --format=gnu --sort=name -C src -cf gnu.tar ."), 0);
  ExpectRoundTrip(Slurp(dir_ + "/gnu.tar"), dir_, "gnu");
}

TEST_F(TarSplitRoundTrip, UstarArchiveWithoutTrailerPadding) {
  // No blocking factor padding: the archive ends right after the two zero blocks.
  ASSERT_EQ(
      Sh("cd " + dir_ +
         " && tar --format=ustar --sort=name --record-size=512 -C src -cf ustar.tar "
         "--no-recursion ./dir ./dir/small ./dir/big ./dir/fifo ./dir/null ./zeros ./empty ./suid"),
      0);
  ExpectRoundTrip(Slurp(dir_ + "/ustar.tar"), dir_, "ustar");
}

// ---- hostile input ----------------------------------------------------------------------------

struct Outcome {
  Result<TarSplitStats> stats;
  std::string out;
};

Outcome Reassemble(const std::string& jsonl, std::map<std::string, std::string> files = {},
                   TarSplitLimits limits = {}) {
  const std::string z = Zstd(jsonl);
  Outcome o{TarSplitStats{}, {}};
  auto open = [files = std::move(files)](std::string_view name, uint64_t) -> Result<ReadCallback> {
    auto it = files.find(std::string(name));
    if (it == files.end()) return Fail(ENOENT, "no such file");
    auto data = std::make_shared<std::string>(it->second);
    auto pos = std::make_shared<size_t>(0);
    return ReadCallback([data, pos](char* buf, size_t n) -> Result<size_t> {
      size_t k = std::min(n, data->size() - *pos);
      std::memcpy(buf, data->data() + *pos, k);
      *pos += k;
      return k;
    });
  };
  o.stats = ReassembleTar(
      z, Digest::Of(z), open,
      [&](std::string_view d) -> Status {
        o.out.append(d);
        return Ok();
      },
      limits);
  return o;
}

std::string Crc(std::string_view data) {
  const uint64_t c = Crc64Iso(0, data.data(), data.size());
  std::string be(8, '\0');
  for (int i = 0; i < 8; ++i) be[i] = static_cast<char>(c >> (56 - 8 * i));
  return Base64Encode(be);
}

TEST(TarSplit, ReassemblesSegmentsAndFiles) {
  const std::string jsonl = R"({"type":2,"payload":")" + Base64Encode("HDR") +
                            R"(","position":0})"
                            "\n" +
                            R"({"type":1,"name":"./a","size":5,"payload":")" + Crc("hello") +
                            R"(","position":1,"unknown":[1,2]})"
                            "\n"
                            R"({"type":1,"name_raw":")" +
                            Base64Encode("caf\xe9") +
                            R"(","size":2,"payload":null,"position":2})"
                            "\n"
                            R"({"type":1,"name":"./empty","position":3})"
                            "\n\n"
                            R"({"type":2,"payload":")" +
                            Base64Encode("END") + R"(","position":4})";  // no final \n
  auto o = Reassemble(jsonl, {{"./a", "hello"}, {"caf\xe9", "xy"}});
  ASSERT_TRUE(o.stats) << o.stats.error().message();
  EXPECT_EQ(o.out, "HDRhelloxyEND");
  EXPECT_EQ(o.stats->tar_size, 13u);
  EXPECT_EQ(o.stats->records, 5u);
  EXPECT_EQ(o.stats->files, 2u);
}

TEST(TarSplit, RejectsHostileInput) {
  auto expect = [](const std::string& jsonl, int code, const std::string& msg,
                   std::map<std::string, std::string> files = {}, TarSplitLimits limits = {}) {
    auto o = Reassemble(jsonl, std::move(files), limits);
    ASSERT_FALSE(o.stats) << jsonl;
    EXPECT_EQ(o.stats.error().code(), code) << jsonl;
    EXPECT_EQ(o.stats.error().message(), msg) << jsonl;
  };
  expect(R"({"type":3,"position":0})", EBADMSG, "tar-split record 0: unknown type 3");
  expect(R"({"position":0})", EBADMSG, "tar-split record 0: no \"type\"");
  expect(R"({"type":2,"payload":"***","position":0})", EBADMSG,
         "tar-split record 0: \"payload\" is not base64");
  expect(R"({"type":2,"payload":7,"position":0})", EBADMSG,
         "tar-split record 0: \"payload\" is not a string");
  expect(R"({"type":1,"name":"a","size":-1,"position":0})", EBADMSG,
         "tar-split record 0: \"size\" is not a non-negative integer");
  expect(R"({"type":1,"name":"a","size":1.5,"position":0})", EBADMSG,
         "tar-split record 0: \"size\" is not a non-negative integer");
  expect(R"({"type":2,"payload":"","position":1})", EBADMSG,
         "tar-split record 0: position 1 is out of order (want 0)");
  expect("{\"type\":2,\"payload\":\"\",\"position\":0}\n{\"type\":2,\"position\":0}", EBADMSG,
         "tar-split record 1: position 0 is out of order (want 1)");
  expect(R"({"type":2})", EBADMSG, "tar-split record 0: no \"position\"");
  expect(R"({"type":1,"size":3,"position":0})", EBADMSG,
         "tar-split record 0: file record without a name");
  expect("not json", EBADMSG, "tar-split record 0: not JSON (Invalid value. at offset 1)");
  expect("[1]", EBADMSG, "tar-split record 0: not a JSON object");
  expect(R"({"type":1,"name":"a","size":3,"payload":"AAAA","position":0})", EBADMSG,
         "tar-split record 0: file checksum is 3 bytes, not 8 (CRC-64)");
  expect(R"({"type":1,"name":"a","size":99999999999999999,"position":0})", EFBIG,
         "tar-split record 0: size 99999999999999999 is over the cap");
  // Content that does not match the record.
  expect(R"({"type":1,"name":"a","size":6,"position":0})", EBADMSG,
         "tar-split file \"a\": content ended after 5 of 6 bytes", {{"a", "hello"}});
  expect(R"({"type":1,"name":"a","size":4,"position":0})", EBADMSG,
         "tar-split file \"a\": content is longer than its recorded size 4", {{"a", "hello"}});
  expect(R"({"type":1,"name":"a","size":5,"payload":")" + Crc("hellO") + R"(","position":0})", EIO,
         "tar-split file \"a\": content CRC-64 does not match the tar-split", {{"a", "hello"}});
  expect(R"({"type":1,"name":"b","size":5,"position":0})", ENOENT,
         "tar-split file \"b\": no such file");
  // Caps.
  expect(R"({"type":2,"payload":")" + Base64Encode(std::string(3000, 'x')) + R"(","position":0})",
         EFBIG, "tar-split record 0 is longer than 1000 bytes", {}, {.max_record = 1000});
  expect(std::string(5000, '\n'), EFBIG, "tar-split decompresses to more than 4096 bytes", {},
         {.max_uncompressed = 4096});
}

TEST(TarSplit, RejectsBadCompressionAndDigest) {
  const std::string z = Zstd(R"({"type":2,"payload":"QUJD","position":0})");
  auto sink = [](std::string_view) -> Status { return Ok(); };
  auto open = [](std::string_view, uint64_t) -> Result<ReadCallback> {
    return Fail(ENOENT, "none");
  };
  auto r = ReassembleTar(z, Digest::Of("other"), open, sink);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EIO);
  EXPECT_EQ(r.error().message(), "tar-split digest mismatch: got " + Digest::Of(z).str() +
                                     ", want " + Digest::Of("other").str());
  r = ReassembleTar(z, Digest(), open, sink);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EINVAL);
  const std::string cut = z.substr(0, z.size() - 3);
  r = ReassembleTar(cut, Digest::Of(cut), open, sink);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EBADMSG);
  EXPECT_EQ(r.error().message(), "tar-split zstd data is truncated (incomplete frame)");
  const std::string junk = "definitely not zstd";
  r = ReassembleTar(junk, Digest::Of(junk), open, sink);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EBADMSG);
  r = ReassembleTar("", Digest::Of(""), open, sink);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "tar-split is empty");
  // A sink error passes through unchanged.
  auto failing = [](std::string_view) -> Status { return Fail(ENOSPC, "disk full"); };
  r = ReassembleTar(z, Digest::Of(z), open, failing);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ENOSPC);
}

// Records stream out without the whole text in memory; a long run of records crosses many
// decompression refills.
TEST(TarSplit, ReaderStreamsManyRecords) {
  std::string jsonl;
  for (int i = 0; i < 20000; ++i)
    jsonl += R"({"type":2,"payload":"QUJD","position":)" + std::to_string(i) + "}\n";
  const std::string z = Zstd(jsonl);
  TarSplitReader reader(z);
  uint64_t n = 0;
  for (;;) {
    auto r = reader.Next();
    ASSERT_TRUE(r) << r.error().message();
    if (!*r) break;
    EXPECT_EQ((*r)->position, n);
    EXPECT_EQ((*r)->payload, "ABC");
    ++n;
  }
  EXPECT_EQ(n, 20000u);
}

// skopeo 1.9.3 writes no tar-split: v1 footer, no tarsplit-position annotation, no
// tarSplitDigest in the TOC.
TEST(TarSplitProducers, Skopeo193WritesNoTarSplit) {
  ASSERT_TRUE(testing::HaveTool("skopeo")) << "skopeo is not installed (run scripts/setup.sh)";
  std::string dir = testing::MakeTempDir();
  ASSERT_EQ(Sh("cd " + dir +
               " && mkdir -p root/etc && printf hello > root/etc/hello"
               " && head -c 100000 /dev/urandom > root/big"
               " && tar -C root --sort=name -cf l.tar . && " HOIST_TEST_SRC_DIR
               "/make_oci_layout.sh l.tar src"
               " && timeout 120 skopeo copy -q --dest-compress-format zstd:chunked oci:src:t "
               "oci:out:t"),
            0);
  rapidjson::Document idoc;
  std::string index = Slurp(dir + "/out/index.json");
  idoc.Parse(index.c_str());
  std::string mdig = idoc["manifests"][0]["digest"].GetString();
  std::string manifest = Slurp(dir + "/out/blobs/sha256/" + mdig.substr(7));
  rapidjson::Document mdoc;
  mdoc.Parse(manifest.c_str());
  const auto& layer = mdoc["layers"][0];
  std::map<std::string, std::string> ann;
  for (const auto& m : layer["annotations"].GetObject())
    ann[m.name.GetString()] = m.value.GetString();
  EXPECT_FALSE(ann.contains("io.containers.zstd-chunked.tarsplit-position"));
  EXPECT_FALSE(ann.contains(kAnnotationTarSplitPosition));
  auto a = ParseZstdChunkedAnnotations(ann);
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_FALSE(a->tar_split);
  std::string ldig = layer["digest"].GetString();
  std::string blob = Slurp(dir + "/out/blobs/sha256/" + ldig.substr(7));
  ZstdChunkedAnnotations no_position = *a;  // read the footer
  no_position.toc.reset();
  auto l = LoadZstdChunkedLayer(
      [&](uint64_t off, uint64_t len) -> Result<std::string> { return blob.substr(off, len); },
      blob.size(), *Digest::Parse(ldig), no_position);
  ASSERT_TRUE(l) << l.error().message();
  EXPECT_EQ(l->footer.version, 1);
  EXPECT_FALSE(l->footer.tar_split);
  EXPECT_TRUE(l->tar_split_digest.empty());
  Sh("rm -rf " + dir);
}

}  // namespace
}  // namespace hoist
