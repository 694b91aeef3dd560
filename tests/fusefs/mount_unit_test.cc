// Unit tests of the mount's pure parts: -o option parsing (mount_options.h) and the layer loader
// (layer_loader.h) on real GNU tar output (harness BuildLayerTar), compressed with real zlib and
// zstd, served by an in-memory BlobSource; the store is a real LMDB store in a temp dir.
#include <zlib.h>
#include <zstd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <string>

#include "base/digest.h"
#include "base/file_util.h"
#include "fusefs/chunk_reader.h"
#include "fusefs/layer_loader.h"
#include "fusefs/mount_options.h"
#include "fusefs/mount_stats.h"
#include "fusefs/prefetcher.h"
#include "fusefs/stream_layer.h"
#include "fusefs/zran_reader.h"
#include "index/gzip_index.h"
#include "index/layer_index_codec.h"
#include "index/lmdb_env.h"
#include "index/store.h"
#include "tests/harness/oci_image.h"

namespace hoist {
namespace {

TEST(MountOptionsTest, ParsesMirrorOptions) {
  MountOptions o;
  ASSERT_TRUE(ApplyMountOptionList("hosts_dir=/etc/containerd/certs.d,registries_conf=/r.conf,"
                                   "mirror_connect_timeout=250",
                                   &o)
                  .has_value());
  EXPECT_EQ(o.hosts_dir, "/etc/containerd/certs.d");
  EXPECT_EQ(o.registries_conf, "/r.conf");
  EXPECT_EQ(o.mirror_connect_timeout_ms, 250);
  MountOptions bad;
  auto s = ApplyMountOptionList("mirror_connect_timeout=soon", &bad);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), EINVAL);
  EXPECT_EQ(s.error().message(), "mount option \"mirror_connect_timeout\" must be 1..3600000 ms");
  auto empty = ApplyMountOptionList("hosts_dir=", &bad);
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().message(), "mount option \"hosts_dir\" needs a value");
}

TEST(MountOptionsTest, ParsesEveryOption) {
  MountOptions o;
  ASSERT_TRUE(
      ApplyMountOptionList("ro,timeout=7,prefetch=priority,bandwidth=2m,cache=/c,cache_size=1g,"
                           "insecure_registry=h:5000,insecure_registry=g,platform=linux/arm64,"
                           "log_level=debug,allow_other,nodev,rw,defaults,_netdev",
                           &o)
          .has_value());
  EXPECT_EQ(o.timeout, std::chrono::seconds(7));
  EXPECT_EQ(o.prefetch, PrefetchMode::kPriority);
  EXPECT_EQ(o.bandwidth_bytes_per_sec, 2u << 20);
  EXPECT_EQ(o.cache_dir, "/c");
  EXPECT_EQ(o.cache_size, 1ull << 30);
  EXPECT_EQ(o.insecure_registries, (std::vector<std::string>{"h:5000", "g"}));
  EXPECT_EQ(o.platform, "linux/arm64");
  EXPECT_EQ(o.log_level, "debug");
  EXPECT_TRUE(o.allow_other);
  EXPECT_FALSE(o.suid);
  EXPECT_TRUE(o.elf_prefetch);  // default on
  ASSERT_TRUE(ApplyMountOptionList("elf_prefetch=0", &o).has_value());
  EXPECT_FALSE(o.elf_prefetch);
  ASSERT_TRUE(ApplyMountOptionList("elf_prefetch=1", &o).has_value());
  EXPECT_TRUE(o.elf_prefetch);
  EXPECT_EQ(o.connect_timeout, std::chrono::seconds(5));  // default
  ASSERT_TRUE(ApplyMountOptionList("connect_timeout=2", &o).has_value());
  EXPECT_EQ(o.connect_timeout, std::chrono::seconds(2));
}

TEST(MountOptionsTest, RejectsBadOptionsWithOneLine) {
  MountOptions o;
  auto bad = ApplyMountOptionList("bogus=1", &o);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), EINVAL);
  EXPECT_EQ(bad.error().message(), "unknown mount option \"bogus=1\"");
  EXPECT_FALSE(ApplyMountOptionList("timeout=0", &o).has_value());
  EXPECT_FALSE(ApplyMountOptionList("timeout=x", &o).has_value());
  auto zero = ApplyMountOptionList("connect_timeout=0", &o);
  ASSERT_FALSE(zero.has_value());
  EXPECT_EQ(zero.error().message(), "connect_timeout must be 1..3600 seconds");
  EXPECT_FALSE(ApplyMountOptionList("connect_timeout", &o).has_value());
  EXPECT_FALSE(ApplyMountOptionList("prefetch=some", &o).has_value());
  EXPECT_FALSE(ApplyMountOptionList("elf_prefetch=yes", &o).has_value());
  EXPECT_FALSE(ApplyMountOptionList("elf_prefetch", &o).has_value());
  EXPECT_TRUE(o.dir_prefetch);  // default on
  ASSERT_TRUE(ApplyMountOptionList("dir_prefetch=0", &o).has_value());
  EXPECT_FALSE(o.dir_prefetch);
  ASSERT_TRUE(ApplyMountOptionList("dir_prefetch=1", &o).has_value());
  EXPECT_TRUE(o.dir_prefetch);
  EXPECT_FALSE(ApplyMountOptionList("dir_prefetch=on", &o).has_value());
  EXPECT_FALSE(ApplyMountOptionList("cache=", &o).has_value());
  EXPECT_FALSE(ParseByteSize("12q").has_value());
  EXPECT_FALSE(ParseByteSize("").has_value());
  EXPECT_EQ(*ParseByteSize("4k"), 4096u);
  EXPECT_EQ(*ParseByteSize("123"), 123u);
}

TEST(MountOptionsTest, SuidOnlyOnRequestAndMountFuseDefaultsStayNosuid) {
  MountOptions o;
  ASSERT_TRUE(ApplyMountOptionList("suid", &o).has_value());
  EXPECT_TRUE(o.suid);
  MountOptions m;  // what mount.fuse3 passes for `mount -t fuse.hoistfs IMG MP`
  ASSERT_TRUE(ApplyMountOptionList("rw,prefetch=none,dev,suid", &m).has_value());
  EXPECT_FALSE(m.suid);
  MountOptions n;
  ASSERT_TRUE(ApplyMountOptionList("nodev,suid", &n).has_value());
  EXPECT_TRUE(n.suid);
}

TEST(MountOptionsTest, FuseOptionStringIsHardened) {
  MountOptions o;
  o.image = "localhost:5000/a,b:v1";
  EXPECT_EQ(FuseMountOptionString(o),
            "ro,nodev,default_permissions,nosuid,fsname=hoist:localhost:5000/a\\,b:v1,"
            "subtype=hoistfs,max_read=1048576");
  o.allow_other = true;
  o.suid = true;
  EXPECT_EQ(FuseMountOptionString(o).substr(0, 45),
            "ro,nodev,default_permissions,suid,allow_other");
}

class MemoryBlobSource : public BlobSource {
 public:
  void Add(const Digest& d, std::string bytes) { blobs_[d] = std::move(bytes); }
  Result<std::string> ReadAt(const Digest& blob, uint64_t offset, uint64_t length) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++reads_;
    auto it = blobs_.find(blob);
    if (it == blobs_.end()) return Fail(ENOENT, "no blob " + blob.str());
    if (offset + length > it->second.size()) return Fail(EIO, "range past the end");
    return it->second.substr(offset, length);
  }
  Result<uint64_t> Size(const Digest& blob) override {
    auto it = blobs_.find(blob);
    if (it == blobs_.end()) return Fail(ENOENT, "no blob");
    return it->second.size();
  }
  int reads() {
    std::lock_guard<std::mutex> lock(mu_);
    return reads_;
  }

 private:
  std::mutex mu_;
  std::map<Digest, std::string> blobs_;
  int reads_ = 0;
};

std::string Gzip(const std::string& data) {
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, data.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string Zstd(const std::string& data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3));
  return out;
}

class LayerLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/hoist-layer-loader-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
    harness::LayerSpec spec = {
        harness::FileSpec::Dir("d"),
        harness::FileSpec::File("d/small", "hello\n"),
        harness::FileSpec::BigFile("d/big", 300000, 5),
        harness::FileSpec::Hardlink("d/link", "d/small"),
        harness::FileSpec::Symlink("d/sym", "small"),
        harness::FileSpec::File("d/empty", ""),
    };
    ASSERT_TRUE(harness::BuildLayerTar(spec, dir_ + "/stage", dir_ + "/layer.tar").has_value());
    tar_ = *ReadFile(dir_ + "/layer.tar");
  }
  void TearDown() override { (void)RemoveTree(dir_); }

  Descriptor Layer(const std::string& blob, const std::string& media_type) {
    Descriptor d;
    d.digest = Digest::Of(blob);
    d.size = static_cast<int64_t>(blob.size());
    d.media_type = media_type;
    source_.Add(d.digest, blob);
    return d;
  }

  // Reads a regular file's bytes through its chunks (kRaw) or the stream (kStream).
  std::string Content(const Entry& e, LayerFormat format) {
    std::string out;
    for (const Chunk& c : e.chunks) {
      if (format == LayerFormat::kTar) {
        EXPECT_EQ(c.encoding, ChunkEncoding::kRaw);
        std::string bytes = tar_.substr(c.blob_offset, c.size);
        EXPECT_EQ(Digest::Of(bytes), c.digest);
        out += bytes;
      } else {
        EXPECT_EQ(c.encoding, ChunkEncoding::kStream);
        out += tar_.substr(c.inner_offset, c.size);
      }
    }
    return out;
  }

  std::string dir_;
  std::string tar_;
  MemoryBlobSource source_;
};

TEST_F(LayerLoaderTest, IndexesTarGzipAndZstdStreams) {
  struct Case {
    std::string blob;
    std::string media_type;
    LayerFormat format;
  };
  for (const Case& c :
       {Case{tar_, "application/vnd.oci.image.layer.v1.tar", LayerFormat::kTar},
        Case{Gzip(tar_), "application/vnd.docker.image.rootfs.diff.tar.gzip",
             LayerFormat::kTarGzip},
        Case{Zstd(tar_), "application/vnd.oci.image.layer.v1.tar+zstd", LayerFormat::kTarZstd}}) {
    SCOPED_TRACE(c.media_type);
    Descriptor d = Layer(c.blob, c.media_type);
    LayerLoaderOptions options;
    options.raw_chunk_bytes = 65536;  // the 300000-byte file gets 5 raw chunks
    options.piece_bytes = 7000;       // many pieces: decoders must resume across them
    LayerOrigin origin{};
    auto index = IndexLayer(source_, d, options, &origin);
    ASSERT_TRUE(index.has_value()) << index.error().message();
    EXPECT_EQ(origin, LayerOrigin::kTarStream);
    EXPECT_EQ(index->format, c.format);
    EXPECT_EQ(index->layer_digest, d.digest);
    std::map<std::string, const Entry*> by_path;
    for (const Entry& e : index->entries) by_path[e.path] = &e;
    ASSERT_TRUE(by_path.count("d/big"));
    const Entry& big = *by_path["d/big"];
    EXPECT_EQ(big.size, 300000u);
    EXPECT_EQ(big.chunks.size(), c.format == LayerFormat::kTar ? 5u : 1u);
    const std::string want = harness::PatternBytes(5, 0, 300000);
    EXPECT_EQ(big.digest, Digest::Of(want));
    EXPECT_TRUE(Content(big, c.format) == want);
    EXPECT_EQ(Content(*by_path["d/small"], c.format), "hello\n");
    EXPECT_EQ(by_path["d/link"]->type, EntryType::kHardlink);
    EXPECT_EQ(by_path["d/link"]->link_name, "d/small");
    EXPECT_EQ(by_path["d/sym"]->link_name, "small");
    EXPECT_TRUE(by_path["d/empty"]->chunks.empty());
  }
}

TEST_F(LayerLoaderTest, RejectsABlobThatDoesNotHashToItsDigest) {
  Descriptor d = Layer(Gzip(tar_), "application/vnd.oci.image.layer.v1.tar+gzip");
  d.digest = Digest::Of("something else");
  source_.Add(d.digest, Gzip(tar_));
  auto index = IndexLayer(source_, d, {}, nullptr);
  ASSERT_FALSE(index.has_value());
  EXPECT_EQ(index.error().code(), EIO);
  EXPECT_NE(index.error().message().find("digest mismatch"), std::string::npos);
}

TEST_F(LayerLoaderTest, RejectsTruncatedAndUnknownLayers) {
  std::string gz = Gzip(tar_);
  Descriptor cut =
      Layer(gz.substr(0, gz.size() / 2), "application/vnd.oci.image.layer.v1.tar+gzip");
  auto index = IndexLayer(source_, cut, {}, nullptr);
  ASSERT_FALSE(index.has_value());
  EXPECT_EQ(index.error().code(), EBADMSG) << index.error().message();
  Descriptor odd = Layer("xyz", "application/vnd.example.thing");
  index = IndexLayer(source_, odd, {}, nullptr);
  ASSERT_FALSE(index.has_value());
  EXPECT_EQ(index.error().code(), EINVAL);
  EXPECT_EQ(index.error().message(),
            "unsupported layer media type \"application/vnd.example.thing\"");
}

TEST_F(LayerLoaderTest, LoadsInParallelAndTheSecondTimeFromTheStore) {
  auto store = Store::Open(dir_ + "/store");
  ASSERT_TRUE(store.has_value()) << store.error().message();
  std::vector<Descriptor> layers = {
      Layer(tar_, "application/vnd.oci.image.layer.v1.tar"),
      Layer(Gzip(tar_), "application/vnd.oci.image.layer.v1.tar+gzip"),
      Layer(Zstd(tar_), "application/vnd.oci.image.layer.v1.tar+zstd"),
  };
  auto first = LoadLayers(source_, store->get(), layers);
  ASSERT_TRUE(first.has_value()) << first.error().message();
  ASSERT_EQ(first->layers.size(), 3u);
  ASSERT_EQ(first->origins.size(), 3u);
  for (LayerOrigin o : first->origins) EXPECT_EQ(o, LayerOrigin::kTarStream);
  const int reads = source_.reads();
  auto second = LoadLayers(source_, store->get(), layers);
  ASSERT_TRUE(second.has_value()) << second.error().message();
  ASSERT_EQ(second->origins.size(), 3u);
  ASSERT_EQ(second->layers.size(), 3u);
  for (LayerOrigin o : second->origins) EXPECT_EQ(o, LayerOrigin::kStore);
  EXPECT_EQ(source_.reads(), reads);  // nothing fetched
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(second->layers[i]->layer_digest, layers[i].digest);
    EXPECT_EQ(second->layers[i]->entries.size(), first->layers[i]->entries.size());
  }
  // A failing layer fails the load, naming it.
  std::vector<Descriptor> with_missing = layers;
  with_missing[1].digest = Digest::Of("missing");
  auto failed = LoadLayers(source_, store->get(), with_missing);
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code(), ENOENT);
  EXPECT_TRUE(failed.error().message().starts_with("layer 2 of 3 (" + Digest::Of("missing").str()))
      << failed.error().message();
}

// Indexing an unconverted gzip/zstd layer reads its whole blob once: with stream_temp_dir the
// decompressed stream is kept, verified, and a StreamLayers that adopts it serves files without
// a second fetch.
TEST_F(LayerLoaderTest, AnUnconvertedLayerKeepsTheStreamItWasIndexedFrom) {
  std::vector<Descriptor> layers = {
      Layer(tar_, "application/vnd.oci.image.layer.v1.tar"),
      Layer(Gzip(tar_), "application/vnd.oci.image.layer.v1.tar+gzip"),
      Layer(Zstd(tar_), "application/vnd.oci.image.layer.v1.tar+zstd"),
  };
  LayerLoaderOptions options;
  options.stream_temp_dir = dir_;
  auto loaded = LoadLayers(source_, nullptr, layers, options);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message();
  ASSERT_EQ(loaded->streams.size(), 3u);
  EXPECT_FALSE(loaded->streams[0].file);  // plain tar is served by range: nothing kept
  for (size_t i = 1; i < 3; ++i) {
    const VerifiedStream& v = loaded->streams[i];
    ASSERT_TRUE(v.file) << i;
    EXPECT_EQ(v.bytes, tar_.size());
    std::string back(tar_.size() + 1, '\0');
    EXPECT_EQ(::pread(v.file->get(), back.data(), back.size(), 0),
              static_cast<ssize_t>(tar_.size()));
    back.resize(tar_.size());
    EXPECT_TRUE(back == tar_) << "layer " << i << ": the kept stream is not the layer's tar";
  }
  MountStats stats;
  StreamLayers streams(&source_, &stats, StreamLayerOptions{.temp_dir = dir_});
  const int reads = source_.reads();
  for (size_t i = 1; i < 3; ++i) {
    const LayerIndex& index = *loaded->layers[i];
    ASSERT_TRUE(streams.Adopt(index, loaded->streams[i]));
    EXPECT_FALSE(streams.Adopt(index, loaded->streams[i]));  // once only
    const Entry* small = nullptr;
    for (const Entry& e : index.entries) {
      if (e.path == "d/small") small = &e;
    }
    ASSERT_NE(small, nullptr);
    std::string out(6, '\0');
    auto n = streams.Read(index, *small, small->chunks.at(0), 0, out,
                          std::chrono::steady_clock::now() + std::chrono::seconds(5));
    ASSERT_TRUE(n.has_value()) << n.error().message();
    EXPECT_EQ(out, "hello\n");
    EXPECT_TRUE(streams.Get(index)->Progress().verified);
  }
  EXPECT_EQ(source_.reads(), reads);  // served without fetching anything again
}

// A stored index that no longer decodes (a flipped bit on disk) is deleted and the layer indexed
// again from its blob; the next load takes the fresh record from the store.
TEST_F(LayerLoaderTest, AnUnusableStoredIndexIsRebuilt) {
  std::vector<Descriptor> layers = {
      Layer(tar_, "application/vnd.oci.image.layer.v1.tar"),
      Layer(Gzip(tar_), "application/vnd.oci.image.layer.v1.tar+gzip"),
  };
  {
    auto store = Store::Open(dir_ + "/store");
    ASSERT_TRUE(store.has_value()) << store.error().message();
    ASSERT_TRUE(LoadLayers(source_, store->get(), layers).has_value());
  }
  // The record of layer 2 starts with the codec version: rewrite the record with another version
  // byte through LMDB itself (searching data.mdb for the record's bytes depends on where LMDB put
  // them, and finds stale copies in freed pages).
  {
    auto env = LmdbEnv::Open(dir_ + "/store", LmdbEnvOptions{});
    ASSERT_TRUE(env.has_value()) << env.error().message();
    auto txn = (*env)->BeginWrite();
    ASSERT_TRUE(txn.has_value()) << txn.error().message();
    const auto raw = layers[1].digest.raw();
    const std::string key(reinterpret_cast<const char*>(raw.data()), raw.size());
    auto record = txn->Get(Table::kLayers, key);
    ASSERT_TRUE(record.has_value() && record->has_value());
    std::string damaged(**record);
    ASSERT_FALSE(damaged.empty());
    ASSERT_EQ(damaged[0], static_cast<char>(kLayerIndexCodecVersion));
    damaged[0] = static_cast<char>(0x7f);  // no codec has this version
    ASSERT_TRUE(txn->Put(Table::kLayers, key, damaged).has_value());
    ASSERT_TRUE(txn->Commit().has_value());
  }

  auto store = Store::Open(dir_ + "/store");
  ASSERT_TRUE(store.has_value()) << store.error().message();
  const int reads = source_.reads();
  auto second = LoadLayers(source_, store->get(), layers);
  ASSERT_TRUE(second.has_value()) << second.error().message();
  EXPECT_EQ(second->origins[0], LayerOrigin::kStore);
  EXPECT_EQ(second->origins[1], LayerOrigin::kTarStream);  // indexed again from the blob
  EXPECT_GT(source_.reads(), reads);
  EXPECT_EQ(second->layers[1]->entries.size(), second->layers[0]->entries.size());
  auto third = LoadLayers(source_, store->get(), layers);
  ASSERT_TRUE(third.has_value()) << third.error().message();
  ASSERT_EQ(third->origins.size(), 2u);
  for (LayerOrigin o : third->origins) EXPECT_EQ(o, LayerOrigin::kStore);
}

// A PAX sparse file (GNU tar 1.0) in a plain, gzip and zstd layer: data segments become chunks
// at their stream offsets (raw ones cut at raw_chunk_bytes), holes kZeros chunks, the digest is
// of the expanded file.
TEST_F(LayerLoaderTest, IndexesPaxSparseFilesInEveryStreamFormat) {
  const std::string stage = dir_ + "/sparse";
  ASSERT_TRUE(MakeDirs(stage).has_value());
  ASSERT_EQ(std::system(("cd " + stage +
                         " && truncate -s 3M f && printf HEAD | dd of=f conv=notrunc status=none"
                         " && head -c 150000 /dev/urandom | dd of=f bs=1000 seek=1000"
                         " conv=notrunc status=none && truncate -s 1M allhole && tar"
                         " --format=posix --sparse -cf ../sparse.tar f allhole")
                            .c_str()),
            0);
  const std::string tar = *ReadFile(dir_ + "/sparse.tar");
  const std::string want = *ReadFile(stage + "/f");
  struct Case {
    std::string blob;
    std::string media_type;
    LayerFormat format;
  };
  for (const Case& c :
       {Case{tar, "application/vnd.oci.image.layer.v1.tar", LayerFormat::kTar},
        Case{Gzip(tar), "application/vnd.oci.image.layer.v1.tar+gzip", LayerFormat::kTarGzip},
        Case{Zstd(tar), "application/vnd.oci.image.layer.v1.tar+zstd", LayerFormat::kTarZstd}}) {
    SCOPED_TRACE(c.media_type);
    LayerLoaderOptions options;
    options.raw_chunk_bytes = 65536;
    auto index = IndexLayer(source_, Layer(c.blob, c.media_type), options, nullptr);
    ASSERT_TRUE(index.has_value()) << index.error().message();
    ASSERT_EQ(index->entries.size(), 2u);
    const Entry& f = index->entries[0];
    EXPECT_EQ(f.path, "f");
    EXPECT_EQ(f.size, 3u << 20);
    EXPECT_EQ(f.digest, Digest::Of(want));
    std::string got;
    size_t holes = 0, data = 0;
    for (const Chunk& ch : f.chunks) {
      EXPECT_EQ(ch.file_offset, got.size());
      if (ch.encoding == ChunkEncoding::kZeros) {
        ++holes;
        got.append(ch.size, '\0');
      } else if (c.format == LayerFormat::kTar) {
        ++data;
        EXPECT_EQ(ch.encoding, ChunkEncoding::kRaw);
        EXPECT_LE(ch.size, 65536u);
        const std::string bytes = tar.substr(ch.blob_offset, ch.size);
        EXPECT_EQ(Digest::Of(bytes), ch.digest);
        got += bytes;
      } else {
        ++data;
        EXPECT_EQ(ch.encoding, ChunkEncoding::kStream);
        got += tar.substr(ch.inner_offset, ch.size);
      }
    }
    EXPECT_TRUE(got == want);
    EXPECT_EQ(holes, 2u);  // between the segments and after the last one
    EXPECT_GE(data, c.format == LayerFormat::kTar ? 4u : 2u);
    const Entry& allhole = index->entries[1];
    EXPECT_EQ(allhole.size, 1u << 20);
    ASSERT_EQ(allhole.chunks.size(), 1u);
    EXPECT_EQ(allhole.chunks[0].encoding, ChunkEncoding::kZeros);
    EXPECT_EQ(allhole.digest, Digest::Of(std::string(1 << 20, '\0')));
  }
}

// --- lazy unconverted layers through their checkpoint index (zran_reader.h) ---

// A layer of many files, compressed as several gzip members or zstd frames (so checkpoints fall
// at member starts too), indexed once with a small span; a remount loads the index from LMDB and
// serves every file by Range reads of its span only, verified, then from the chunk cache.
class ZranLayerTest : public LayerLoaderTest {
 protected:
  void SetUp() override {
    LayerLoaderTest::SetUp();
    harness::LayerSpec spec = {harness::FileSpec::Dir("z")};
    for (int i = 0; i < 120; ++i) {
      const std::string name = "z/f" + std::to_string(i);
      if (i % 3 == 0) {
        std::string text;
        while (text.size() < static_cast<size_t>(2000 + 977 * i))
          text += "line " + std::to_string(text.size() % 97) + " of file " + name + "\n";
        spec.files.push_back(harness::FileSpec::File(name, text));
      } else {
        spec.files.push_back(harness::FileSpec::BigFile(
            name, 1000 + 1501 * static_cast<uint64_t>(i), static_cast<uint32_t>(i)));
      }
    }
    ASSERT_TRUE(harness::BuildLayerTar(spec, dir_ + "/zstage", dir_ + "/z.tar").has_value());
    ztar_ = *ReadFile(dir_ + "/z.tar");
    ASSERT_GT(ztar_.size(), 4000000u);
  }
  // The tar cut in `parts` pieces, each compressed on its own and concatenated.
  std::string Members(bool zstd, int parts) {
    std::string out;
    const size_t step = ztar_.size() / parts + 1;
    for (size_t at = 0; at < ztar_.size(); at += step) {
      std::string piece = ztar_.substr(at, step);
      out += zstd ? Zstd(piece) : Gzip(piece);
    }
    return out;
  }
  std::string ztar_;
};

TEST_F(ZranLayerTest, RemountReadsEveryFileLazilyAndVerified) {
  struct Case {
    std::string name;
    std::string blob;
    std::string media_type;
  };
  for (const Case& c :
       {Case{"gzip one member", Gzip(ztar_), "application/vnd.oci.image.layer.v1.tar+gzip"},
        Case{"gzip 5 members", Members(false, 5), "application/vnd.oci.image.layer.v1.tar+gzip"},
        Case{"zstd 9 frames", Members(true, 9), "application/vnd.oci.image.layer.v1.tar+zstd"}}) {
    SCOPED_TRACE(c.name);
    const std::string store_dir = dir_ + "/zstore-" + std::to_string(Digest::Of(c.name).raw()[0]);
    std::vector<Descriptor> layers = {Layer(c.blob, c.media_type)};
    LayerLoaderOptions options;
    options.checkpoint_span = 256 << 10;
    {
      auto store = Store::Open(store_dir);
      ASSERT_TRUE(store.has_value()) << store.error().message();
      auto first = LoadLayers(source_, store->get(), layers, options);
      ASSERT_TRUE(first.has_value()) << first.error().message();
      ASSERT_FALSE(first->layers[0]->stream_index.empty());
    }
    auto store = Store::Open(store_dir);
    ASSERT_TRUE(store.has_value());
    const int before_load = source_.reads();
    auto loaded = LoadLayers(source_, store->get(), layers, options);
    ASSERT_TRUE(loaded.has_value());
    ASSERT_EQ(loaded->origins[0], LayerOrigin::kStore);
    EXPECT_EQ(source_.reads(), before_load);  // the remount fetched nothing to load
    const LayerIndex& index = *loaded->layers[0];
    auto parsed = ParseCheckpointIndex(index.stream_index, index.blob_size, index.layer_digest);
    ASSERT_TRUE(parsed.has_value()) << parsed.error().message();
    EXPECT_GE(parsed->checkpoints.size(), 5u);

    MountStats stats;
    ZranReader zran(&source_, &(*store)->chunks(), &stats);
    StreamLayers streams(&source_, &stats, StreamLayerOptions{.temp_dir = dir_}, &zran);
    EXPECT_TRUE(streams.Lazy(index));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    // One small file first: one Range read of about a span, not the blob.
    const Entry* first_file = nullptr;
    for (const Entry& e : index.entries) {
      if (e.path == "z/f61") first_file = &e;
    }
    ASSERT_NE(first_file, nullptr);
    const int r0 = source_.reads();
    std::string out(first_file->size, '\0');
    auto n = streams.Read(index, *first_file, first_file->chunks.at(0), 0, out, deadline);
    ASSERT_TRUE(n.has_value()) << n.error().message();
    EXPECT_EQ(source_.reads(), r0 + 1);
    EXPECT_EQ(Digest::Of(out), first_file->digest);
    EXPECT_LT(stats.Snapshot().bytes_fetched, c.blob.size() / 4);
    // Every file, at random offsets, equals the tar's bytes.
    std::mt19937 rng(11);
    for (const Entry& e : index.entries) {
      if (e.type != EntryType::kRegular || e.size == 0) continue;
      const std::string want = ztar_.substr(e.chunks.at(0).inner_offset, e.size);
      for (int k = 0; k < 3; ++k) {
        const uint64_t off = k == 0 ? 0 : rng() % e.size;
        const uint64_t len = 1 + rng() % (e.size - off);
        std::string got(len, '\0');
        auto r = streams.Read(index, e, e.chunks.at(0), off, got, deadline);
        ASSERT_TRUE(r.has_value()) << e.path << ": " << r.error().message();
        ASSERT_EQ(got, want.substr(off, len)) << e.path << " at " << off;
      }
    }
    EXPECT_LT(stats.Snapshot().bytes_fetched, 3 * c.blob.size());
    EXPECT_EQ(stats.Snapshot().digest_mismatches, 0u);
    // A second pass is local: the chunk cache holds every verified file.
    const int r1 = source_.reads();
    for (const Entry& e : index.entries) {
      if (e.type != EntryType::kRegular || e.size == 0) continue;
      std::string got(e.size, '\0');
      ASSERT_TRUE(streams.Read(index, e, e.chunks.at(0), 0, got, deadline).has_value());
    }
    EXPECT_EQ(source_.reads(), r1);
    EXPECT_TRUE(streams.Lazy(index));  // never fetched whole
  }
}

// prefetch=all completes a lazy gzip layer span by span (prefetcher.h): the layer 100% local in
// the stats, requests of about max_request_bytes (the blob about once in all), and then every
// file reads, verified, with no source at all.
TEST_F(ZranLayerTest, PrefetchAllCompletesTheLayerBySpans) {
  const std::string blob = Gzip(ztar_);
  std::vector<Descriptor> layers = {Layer(blob, "application/vnd.oci.image.layer.v1.tar+gzip")};
  LayerLoaderOptions options;
  options.checkpoint_span = 256 << 10;
  auto store = Store::Open(dir_ + "/pstore");
  ASSERT_TRUE(store.has_value()) << store.error().message();
  auto loaded = LoadLayers(source_, store->get(), layers, options);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message();
  std::shared_ptr<const LayerIndex> index = loaded->layers[0];
  auto parsed = ParseCheckpointIndex(index->stream_index, index->blob_size, index->layer_digest);
  ASSERT_TRUE(parsed.has_value());
  MountStats stats;
  const std::vector<Digest> digests = {index->layer_digest};
  stats.SetLayers(digests);
  ZranReader zran(&source_, &(*store)->chunks(), &stats);
  StreamLayers streams(&source_, &stats, StreamLayerOptions{.temp_dir = dir_}, &zran);
  ChunkReader reader(&source_, &(*store)->chunks(), &stats, {}, &streams);
  ASSERT_TRUE(streams.Lazy(*index));
  const int r0 = source_.reads();
  {
    PrefetcherOptions po;
    po.mode = PrefetchMode::kAll;
    po.yield_quiet = std::chrono::milliseconds(0);
    po.max_request_bytes = 1 << 20;
    Prefetcher prefetcher(&reader, {index}, po);
    prefetcher.Start();
    ASSERT_TRUE(prefetcher.WaitDone(std::chrono::seconds(120)));
  }
  const int reads = source_.reads() - r0;
  // Requests of about max_request_bytes (1 MiB), each overlapping the next by at most two
  // checkpoint spans (256 KiB: the one the cut file starts in and the one it ends in).
  const uint64_t span = 256 << 10;
  EXPECT_GE(static_cast<uint64_t>(reads), blob.size() / (1 << 20));
  EXPECT_LE(static_cast<uint64_t>(reads), blob.size() / ((1 << 20) - 2 * span) + 1);
  const MountStatsSnapshot snap = stats.Snapshot();
  ASSERT_EQ(snap.layers.size(), 1u);
  EXPECT_GT(snap.layers[0].image_bytes, 3000000u);
  EXPECT_EQ(snap.layers[0].local_bytes, snap.layers[0].image_bytes);
  EXPECT_EQ(snap.prefetch_requests, static_cast<uint64_t>(reads));
  EXPECT_LE(snap.prefetch_bytes, blob.size() + static_cast<uint64_t>(reads) * 2 * span);

  // No source: every file from the cache, each checked against its digest.
  MemoryBlobSource none;
  MountStats offline;
  ZranReader zran2(&none, &(*store)->chunks(), &offline);
  StreamLayers streams2(&none, &offline, StreamLayerOptions{.temp_dir = dir_}, &zran2);
  ChunkReader reader2(&none, &(*store)->chunks(), &offline, {}, &streams2);
  int files = 0;
  for (const Entry& e : index->entries) {
    if (e.type != EntryType::kRegular || e.size == 0) continue;
    std::string out(e.size, '\0');
    auto n = reader2.Read(*index, e, 0, out);
    ASSERT_TRUE(n.has_value()) << e.path << ": " << n.error().message();
    ASSERT_EQ(*n, e.size);
    EXPECT_EQ(Digest::Of(out), e.digest) << e.path;
    ++files;
  }
  EXPECT_EQ(files, 120);
  EXPECT_EQ(none.reads(), 0);
}

// A checkpoint index that passes the parser but lies (a wrong bit count, a shifted compressed
// offset): a read fails with EIO, or (a harmless lie) gives the true bytes; no wrong byte is
// ever served or cached. The first failure drops the layer's index (one warning): the reader
// then serves none of its files (they go to the whole-blob fetch).
TEST_F(ZranLayerTest, ALyingIndexNeverServesAWrongByte) {
  const std::string blob = Gzip(ztar_);
  std::vector<Descriptor> layers = {Layer(blob, "application/vnd.oci.image.layer.v1.tar+gzip")};
  LayerLoaderOptions options;
  options.checkpoint_span = 256 << 10;
  auto loaded = LoadLayers(source_, nullptr, layers, options);
  ASSERT_TRUE(loaded.has_value());
  auto good = ParseCheckpointIndex(loaded->layers[0]->stream_index, blob.size());
  ASSERT_TRUE(good.has_value());
  for (int variant = 0; variant < 2; ++variant) {
    SCOPED_TRACE(variant);
    CheckpointIndex bad = *good;
    for (size_t k = 1; k < bad.checkpoints.size(); ++k) {
      if (variant == 0)
        bad.checkpoints[k].bits = static_cast<uint8_t>((bad.checkpoints[k].bits + 1) % 8);
      if (variant == 1) bad.checkpoints[k].in_offset += 1;
    }
    LayerIndex index = *loaded->layers[0];
    index.stream_index = SerializeCheckpointIndex(bad);
    auto store = Store::Open(dir_ + "/lie-store-" + std::to_string(variant));
    ASSERT_TRUE(store.has_value());
    MountStats stats;
    ZranReader zran(&source_, &(*store)->chunks(), &stats);
    int failed = 0;
    for (const Entry& e : index.entries) {
      if (e.type != EntryType::kRegular || e.size == 0) continue;
      auto plan =
          PlanExtract(bad, e.chunks.at(0).inner_offset, e.chunks.at(0).inner_offset + e.size);
      ASSERT_TRUE(plan.has_value());
      if (plan->checkpoint == 0) continue;  // starts at the (true) stream start
      if (failed > 0) {
        EXPECT_FALSE(zran.Serves(index, e)) << e.path << ": served after the index was dropped";
        continue;
      }
      ASSERT_TRUE(zran.Serves(index, e));
      std::string got(e.size, '\0');
      auto r =
          zran.Read(index, e, 0, got, std::chrono::steady_clock::now() + std::chrono::seconds(30));
      if (r.has_value()) {
        // A harmless lie (e.g. one more unread bit in front of a stored block's all-zero
        // header) decodes correctly: then the bytes served must be the true ones.
        ASSERT_EQ(got, ztar_.substr(e.chunks.at(0).inner_offset, e.size)) << e.path;
        continue;
      }
      EXPECT_EQ(r.error().code(), EIO);
      EXPECT_EQ(r.error().message().find('\n'), std::string::npos);
      auto cached = (*store)->chunks().Contains(e.digest);
      ASSERT_TRUE(cached.has_value());
      EXPECT_FALSE(*cached) << e.path << ": a file that failed was cached";
      ++failed;
    }
    EXPECT_EQ(failed, 1);
    EXPECT_FALSE(zran.HasIndex(index));
    EXPECT_GT(stats.Snapshot().digest_mismatches, 0u);
  }
}

}  // namespace
}  // namespace hoist
