// Golden layers (tests/golden/README.md): real skopeo and ctr-remote output, checked in, read by
// hoist's own readers with no producer, network or FUSE. For each producer's two-layer image:
// every layer is indexed by the layer loader's entry point (IndexLayer: annotations, footer, TOC
// digest, TOC parse), every regular file is read by decoding and verifying its chunks from the
// blob as the read path does (DecodeAndVerifyChunkBytes), and the result must equal tree.txt,
// which golden.py wrote from the producer's blobs with Python's tarfile, field for field and in
// order. The merged view of the two layers must equal merged.txt, umoci's unpack of the source
// image. A flipped byte in the TOC or in a chunk, and a wrong TOC digest, must be refused with an
// error naming what failed.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "base/digest.h"
#include "base/file_util.h"
#include "base/status.h"
#include "fetcher/blob_source.h"
#include "fetcher/manifest.h"
#include "fusefs/chunk_reader.h"
#include "fusefs/layer_loader.h"
#include "fusefs/merged_view.h"
#include "index/chunk_codec.h"
#include "index/estargz.h"
#include "index/layer_index.h"
#include "index/zstd_chunked.h"

namespace hoist {
namespace {

// Blobs by digest, read by offset. Not checked against the digest on read (as a registry that
// serves whatever it stores), so a test can replace a blob's bytes.
class GoldenBlobSource : public BlobSource {
 public:
  void Put(const Digest& digest, std::string bytes) { blobs_[digest] = std::move(bytes); }
  const std::string& Get(const Digest& digest) { return blobs_.at(digest); }
  Result<std::string> ReadAt(const Digest& blob, uint64_t offset, uint64_t length) override {
    auto it = blobs_.find(blob);
    if (it == blobs_.end()) return Fail(ENOENT, "no blob " + blob.str());
    if (offset > it->second.size() || length > it->second.size() - offset)
      return Fail(EIO, "range past the end of " + blob.str());
    return it->second.substr(offset, length);
  }
  Result<uint64_t> Size(const Digest& blob) override {
    auto it = blobs_.find(blob);
    if (it == blobs_.end()) return Fail(ENOENT, "no blob " + blob.str());
    return it->second.size();
  }

 private:
  std::map<Digest, std::string> blobs_;
};

struct Producer {
  const char* dir;
  LayerOrigin origin;      // how the loader must take its layers
  ChunkEncoding encoding;  // of every content chunk
};

std::ostream& operator<<(std::ostream& os, const Producer& p) { return os << p.dir; }

const Producer kProducers[] = {
    {"skopeo-zstd-chunked", LayerOrigin::kZstdChunked, ChunkEncoding::kZstdFrame},
    {"ctr-remote-estargz", LayerOrigin::kEstargz, ChunkEncoding::kGzipMember},
    {"ctr-remote-zstd-chunked", LayerOrigin::kZstdChunked, ChunkEncoding::kZstdFramePrefix},
};

const uint64_t kMaxChunk = ChunkReaderOptions{}.max_chunk_size;

std::string GoldenPath(const std::string& producer, const std::string& name) {
  return std::string(HOIST_GOLDEN_DIR) + "/" + producer + "/" + name;
}

// The checked-in image: manifest, and every blob (config, layers) verified against its digest.
struct GoldenImage {
  ImageManifest manifest;
  ImageConfig config;
  GoldenBlobSource source;
};

Result<std::string> ReadBlob(const std::string& producer, const Descriptor& d) {
  HOIST_ASSIGN_OR_RETURN(std::string bytes,
                         ReadFile(GoldenPath(producer, "blobs/" + d.digest.hex())));
  if (Digest::Of(bytes) != d.digest || bytes.size() != static_cast<uint64_t>(d.size))
    return Fail(EIO, producer + ": blob " + d.digest.str() + " does not match its descriptor");
  return bytes;
}

Result<GoldenImage> LoadImage(const std::string& producer) {
  GoldenImage image;
  HOIST_ASSIGN_OR_RETURN(std::string manifest, ReadFile(GoldenPath(producer, "manifest.json")));
  HOIST_ASSIGN_OR_RETURN(image.manifest, ParseImageManifest(manifest, kMediaTypeOciManifest));
  HOIST_ASSIGN_OR_RETURN(std::string config, ReadBlob(producer, image.manifest.config));
  HOIST_ASSIGN_OR_RETURN(image.config, ParseImageConfig(config));
  for (const Descriptor& layer : image.manifest.layers) {
    HOIST_ASSIGN_OR_RETURN(std::string blob, ReadBlob(producer, layer));
    image.source.Put(layer.digest, std::move(blob));
  }
  return image;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

const char* TypeName(EntryType type) {
  switch (type) {
    case EntryType::kRegular:
      return "file";
    case EntryType::kDirectory:
      return "dir";
    case EntryType::kSymlink:
      return "symlink";
    case EntryType::kHardlink:
      return "hardlink";
    case EntryType::kCharDevice:
      return "char";
    case EntryType::kBlockDevice:
      return "block";
    case EntryType::kFifo:
      return "fifo";
  }
  return "?";
}

// A regular file's content, chunk by chunk from the blob, each decoded and verified against its
// TOC digest exactly as the read path does; the chunks must tile [0, size).
Result<std::string> ReadContent(BlobSource& source, const Digest& blob, const Entry& e) {
  std::string content;
  for (const Chunk& c : e.chunks) {
    if (c.file_offset != content.size())
      return Fail(EBADMSG, e.path + ": chunk at " + std::to_string(c.file_offset) +
                               " does not follow the previous one");
    std::string bytes;
    if (c.blob_length > 0) {
      HOIST_ASSIGN_OR_RETURN(bytes, source.ReadAt(blob, c.blob_offset, c.blob_length));
    }
    HOIST_ASSIGN_OR_RETURN(std::string data, DecodeAndVerifyChunkBytes(c, bytes, kMaxChunk));
    content += data;
  }
  if (content.size() != e.size)
    return Fail(EBADMSG, e.path + ": chunks hold " + std::to_string(content.size()) +
                             " bytes, the entry says " + std::to_string(e.size));
  if (!e.digest.empty() && Digest::Of(content) != e.digest)
    return Fail(EIO, e.path + ": content does not match the entry's digest");
  return content;
}

// One line of tree.txt (format: tests/golden/golden.py). `content` is what the chunks of a
// regular file decoded to (ReadContent checked that its size is e.size).
std::string TreeLine(size_t layer, const Entry& e, const std::string& content) {
  const bool file = e.type == EntryType::kRegular;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", e.mode);
  std::string xattrs;
  std::vector<Xattr> sorted = e.xattrs;
  std::sort(sorted.begin(), sorted.end(),
            [](const Xattr& a, const Xattr& b) { return a.name < b.name; });
  for (const Xattr& x : sorted) {
    if (!xattrs.empty()) xattrs += ",";
    xattrs += x.name + "=" + HexEncode(x.value.data(), x.value.size());
  }
  std::ostringstream line;
  line << layer << " " << e.path << " " << TypeName(e.type) << " " << mode << " " << e.uid << " "
       << e.gid << " " << e.size << " " << (file ? Digest::Of(content).str() : "-") << " "
       << (e.link_name.empty() ? "-" : e.link_name) << " " << e.mtime_sec << " "
       << (xattrs.empty() ? "-" : xattrs);
  return line.str();
}

class GoldenTest : public ::testing::TestWithParam<Producer> {
 protected:
  void SetUp() override {
    auto image = LoadImage(GetParam().dir);
    ASSERT_TRUE(image.has_value()) << image.error().message();
    image_ = std::move(*image);
    ASSERT_EQ(image_.manifest.layers.size(), 2u);
    EXPECT_EQ(image_.config.diff_ids.size(), 2u);  // the producer's config parses and agrees
  }

  Result<LayerIndex> Index(const Descriptor& layer, LayerOrigin* origin = nullptr) {
    LayerOrigin ignored;
    return IndexLayer(image_.source, layer, LayerLoaderOptions{}, origin ? origin : &ignored);
  }

  // The entry named `path` of layer `i`.
  Entry Find(size_t i, const std::string& path) {
    auto index = Index(image_.manifest.layers[i]);
    EXPECT_TRUE(index.has_value()) << index.error().message();
    if (index)
      for (const Entry& e : index->entries)
        if (e.path == path) return e;
    ADD_FAILURE() << "no entry " << path << " in layer " << i + 1;
    return Entry{};
  }

  GoldenImage image_;
};

TEST_P(GoldenTest, EveryLayerReadsBackAsTheGoldenTree) {
  const Producer& p = GetParam();
  auto golden = ReadFile(GoldenPath(p.dir, "tree.txt"));
  ASSERT_TRUE(golden.has_value()) << golden.error().message();
  std::vector<std::string> got;
  for (size_t i = 0; i < image_.manifest.layers.size(); ++i) {
    const Descriptor& layer = image_.manifest.layers[i];
    LayerOrigin origin;
    auto index = Index(layer, &origin);
    ASSERT_TRUE(index.has_value()) << "layer " << i + 1 << ": " << index.error().message();
    EXPECT_EQ(LayerOriginName(origin), std::string(LayerOriginName(p.origin)));
    EXPECT_EQ(index->layer_digest, layer.digest);
    EXPECT_EQ(index->blob_size, static_cast<uint64_t>(layer.size));
    for (const Entry& e : index->entries) {
      std::string content;
      if (e.type == EntryType::kRegular) {
        auto read = ReadContent(image_.source, layer.digest, e);
        ASSERT_TRUE(read.has_value()) << "layer " << i + 1 << ": " << read.error().message();
        content = std::move(*read);
        for (const Chunk& c : e.chunks) EXPECT_EQ(c.encoding, p.encoding) << e.path;
      }
      got.push_back(TreeLine(i + 1, e, content));
    }
  }
  const std::vector<std::string> want = Lines(*golden);
  ASSERT_FALSE(want.empty());
  for (size_t i = 0; i < std::max(want.size(), got.size()); ++i) {
    EXPECT_EQ(i < got.size() ? got[i] : "(none)", i < want.size() ? want[i] : "(none)")
        << "tree line " << i + 1;
  }
}

// The image as the mount shows it: the merged view of the two layers, every file read through
// its backing entry's chunks, must equal merged.txt, umoci's unpack of the source image (the
// whiteout and the opaque marker applied; etc/hello.hard outlives its whited-out target).
TEST_P(GoldenTest, TheMergedViewEqualsUmocisUnpack) {
  auto golden = ReadFile(std::string(HOIST_GOLDEN_DIR) + "/merged.txt");
  ASSERT_TRUE(golden.has_value()) << golden.error().message();
  std::vector<std::shared_ptr<const LayerIndex>> layers;
  for (const Descriptor& layer : image_.manifest.layers) {
    auto index = Index(layer);
    ASSERT_TRUE(index.has_value()) << index.error().message();
    layers.push_back(std::make_shared<const LayerIndex>(std::move(*index)));
  }
  auto view = MergedView::Build(layers);
  ASSERT_TRUE(view.has_value()) << view.error().message();
  std::vector<std::pair<std::string, std::string>> got;  // (path, line)
  std::vector<std::pair<std::string, InodeNumber>> todo = {{".", kRootInode}};
  while (!todo.empty()) {
    const auto [path, ino] = todo.back();
    todo.pop_back();
    auto st = view->GetAttr(ino);
    ASSERT_TRUE(st.has_value()) << path << ": " << st.error().message();
    std::string type = "?", sha = "-", link = "-";
    uint64_t size = 0;
    if (S_ISDIR(st->st_mode)) {
      type = "dir";
      auto dir = view->OpenDir(ino);
      ASSERT_TRUE(dir.has_value()) << path << ": " << dir.error().message();
      for (uint64_t i = 2; i < dir->size(); ++i) {
        const DirEntry child = (*dir)[i];
        todo.emplace_back(
            path == "." ? std::string(child.name) : path + "/" + std::string(child.name),
            child.ino);
      }
    } else if (S_ISREG(st->st_mode)) {
      type = "file";
      auto file = view->OpenFile(ino);
      ASSERT_TRUE(file.has_value()) << path << ": " << file.error().message();
      auto content = ReadContent(image_.source, file->index->layer_digest, *file->entry);
      ASSERT_TRUE(content.has_value()) << path << ": " << content.error().message();
      size = content->size();
      sha = Digest::Of(*content).str();
    } else if (S_ISLNK(st->st_mode)) {
      type = "symlink";
      auto target = view->ReadLink(ino);
      ASSERT_TRUE(target.has_value()) << path << ": " << target.error().message();
      link = std::string(*target);
      size = link.size();
    }
    EXPECT_EQ(S_ISDIR(st->st_mode) ? 0 : static_cast<uint64_t>(st->st_size), size) << path;
    auto names = view->ListXattr(ino);
    ASSERT_TRUE(names.has_value()) << path << ": " << names.error().message();
    std::vector<std::string> xattrs;
    for (size_t at = 0; at < names->size();) {
      const std::string name = names->c_str() + at;
      at += name.size() + 1;
      auto value = view->GetXattr(ino, name);
      ASSERT_TRUE(value.has_value()) << path << ": " << name << ": " << value.error().message();
      xattrs.push_back(name + "=" + HexEncode(value->data(), value->size()));
    }
    std::sort(xattrs.begin(), xattrs.end());
    std::string joined;
    for (const std::string& x : xattrs) joined += (joined.empty() ? "" : ",") + x;
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st->st_mode & 07777));
    std::ostringstream line;
    line << path << " " << type << " " << mode << " " << st->st_uid << " " << st->st_gid << " "
         << size << " " << sha << " " << link << " " << st->st_mtim.tv_sec << " " << st->st_nlink
         << " " << (joined.empty() ? "-" : joined);
    got.emplace_back(path, line.str());
  }
  std::sort(got.begin(), got.end());
  const std::vector<std::string> want = Lines(*golden);
  ASSERT_FALSE(want.empty());
  for (size_t i = 0; i < std::max(want.size(), got.size()); ++i) {
    EXPECT_EQ(i < got.size() ? got[i].second : "(none)", i < want.size() ? want[i] : "(none)")
        << "merged line " << i + 1;
  }
}

TEST_P(GoldenTest, TheBigFileSpansSeveralChunks) {
  const Entry big = Find(0, "data/big.txt");
  EXPECT_EQ(big.size, 180000u);
  EXPECT_GE(big.chunks.size(), 3u);
}

// The TOC of layer 1 as the layer loader locates it: the annotation's position for zstd:chunked,
// the footer's offset for eStargz.
struct TocRange {
  uint64_t start = 0;
  uint64_t end = 0;
};

// Each TOC digest the producer annotates is checked: with one of them wrong the layer is refused
// (ctr-remote's zstd:chunked carries both, and each is checked on its own).
TEST_P(GoldenTest, AWrongTocDigestAnnotationIsRefused) {
  const Descriptor& original = image_.manifest.layers[0];
  int checked = 0;
  for (const char* key :
       {kAnnotationStargzTocDigest, "io.containers.zstd-chunked.manifest-checksum"}) {
    if (!original.annotations.contains(key)) continue;
    ++checked;
    Descriptor layer = original;
    std::string& value = layer.annotations[key];
    const std::string right = value;
    value.back() = value.back() == '0' ? '1' : '0';
    auto index = Index(layer);
    ASSERT_FALSE(index.has_value()) << key;
    EXPECT_EQ(index.error().code(), EIO) << index.error().message();
    std::string want;
    if (std::string_view(key) == kAnnotationStargzTocDigest &&
        GetParam().origin == LayerOrigin::kEstargz) {
      want = "eStargz TOC digest mismatch: got " + right + ", want " + value;
    } else if (std::string_view(key) == kAnnotationStargzTocDigest) {
      want = "zstd:chunked TOC (stargz toc.digest) mismatch: got " + right + ", want " + value;
    } else {
      want = "zstd:chunked TOC digest mismatch: got " + right + ", want " + value;
    }
    EXPECT_EQ(index.error().message(), want) << key;
  }
  EXPECT_GT(checked, 0) << "no TOC digest annotation on " << GetParam().dir;
}

TEST_P(GoldenTest, AFlippedTocByteIsRefused) {
  const Descriptor& layer = image_.manifest.layers[0];
  std::string blob = image_.source.Get(layer.digest);
  TocRange toc;
  if (GetParam().origin == LayerOrigin::kEstargz) {
    auto footer = ParseEstargzFooter(
        std::string_view(blob).substr(blob.size() - kEstargzFooterSize), blob.size());
    ASSERT_TRUE(footer.has_value()) << footer.error().message();
    toc = {footer->toc_offset, blob.size() - footer->footer_size};
  } else {
    auto annotations = ParseZstdChunkedAnnotations(layer.annotations);
    ASSERT_TRUE(annotations.has_value()) << annotations.error().message();
    ASSERT_TRUE(annotations->toc.has_value());
    toc = {annotations->toc->offset, annotations->toc->offset + annotations->toc->length};
  }
  ASSERT_LT(toc.start, toc.end);
  blob[(toc.start + toc.end) / 2] ^= 0x01;
  image_.source.Put(layer.digest, blob);
  auto index = Index(layer);
  ASSERT_FALSE(index.has_value());
  if (GetParam().origin == LayerOrigin::kEstargz) {
    // The TOC member's own gzip CRC catches it before the JSON is hashed.
    EXPECT_EQ(index.error().code(), EBADMSG) << index.error().message();
    EXPECT_EQ(index.error().message(),
              "eStargz TOC member: gzip data is corrupt: incorrect data check");
  } else {
    // The compressed TOC is hashed before a byte of it is decoded.
    EXPECT_EQ(index.error().code(), EIO) << index.error().message();
    EXPECT_EQ(index.error().message(),
              "zstd:chunked TOC digest mismatch: got " +
                  Digest::Of(std::string_view(blob).substr(toc.start, toc.end - toc.start)).str() +
                  ", want " + layer.annotations.at("io.containers.zstd-chunked.manifest-checksum"));
  }
}

// A byte of data/random.bin flipped in the blob. The chunk's sha256 from the TOC is what must
// catch it. The content is incompressible, so the zstd producers store it as it is (a raw
// block) and the flip decodes to wrong bytes; skopeo's whole-chunk frames also carry a content
// checksum, which is checked first, so the test then recomputes it and only the TOC digest is
// left to catch the flip. ctr-remote's eStargz does not store it as it is (deflate codes it
// with the tar header in one block), so there the middle byte of the chunk is flipped.
TEST_P(GoldenTest, AFlippedChunkByteFailsItsDigest) {
  const Descriptor& layer = image_.manifest.layers[0];
  const Entry e = Find(0, "data/random.bin");
  ASSERT_EQ(e.chunks.size(), 1u);
  const Chunk& c = e.chunks[0];
  auto content = ReadContent(image_.source, layer.digest, e);
  ASSERT_TRUE(content.has_value()) << content.error().message();
  const std::string prefix = "chunk " + c.digest.str() + " (blob range [" +
                             std::to_string(c.blob_offset) + ", +" + std::to_string(c.blob_length) +
                             ")): ";
  std::string blob = image_.source.Get(layer.digest);
  const size_t stored = blob.find(*content, c.blob_offset);
  if (GetParam().encoding == ChunkEncoding::kGzipMember) {
    ASSERT_EQ(stored, std::string::npos) << "eStargz now stores the content as it is";
    blob[c.blob_offset + c.blob_length / 2] ^= 0x01;
    image_.source.Put(layer.digest, blob);
    auto read = ReadContent(image_.source, layer.digest, e);
    ASSERT_FALSE(read.has_value());
    EXPECT_EQ(read.error().code(), EIO) << read.error().message();
    EXPECT_TRUE(read.error().message().starts_with(prefix + "digest mismatch (got sha256:"))
        << read.error().message();
    return;
  }
  ASSERT_NE(stored, std::string::npos) << "the content is not stored as it is";
  ASSERT_LE(stored + content->size(), c.blob_offset + c.blob_length);
  std::string changed = *content;
  changed[1000] ^= 0x01;
  blob[stored + 1000] ^= 0x01;
  // Both zstd producers set Content_Checksum_flag (bit 2 of the frame header descriptor): the
  // frame ends with the low 32 bits of XXH64 of everything it decodes to. Only a whole-frame
  // chunk (skopeo) is decoded to its end, so only there does the frame checksum get checked;
  // ctr-remote's frames run on past the file into the next tar headers and are cut short.
  EXPECT_NE(static_cast<uint8_t>(blob[c.blob_offset + 4]) & 0x04, 0);
  if (GetParam().encoding == ChunkEncoding::kZstdFrame) {
    image_.source.Put(layer.digest, blob);
    auto read = ReadContent(image_.source, layer.digest, e);
    ASSERT_FALSE(read.has_value());
    EXPECT_EQ(read.error().code(), EBADMSG) << read.error().message();
    EXPECT_EQ(read.error().message(), prefix + "zstd: Restored data doesn't match checksum");
    ASSERT_EQ(c.blob_length, content->size() + 14)  // magic, header, one raw block, checksum
        << "skopeo's frame for data/random.bin is no longer one raw block";
    const uint32_t sum = static_cast<uint32_t>(XXH64(changed.data(), changed.size(), 0));
    const uint64_t at = c.blob_offset + c.blob_length - 4;
    for (int i = 0; i < 4; ++i) blob[at + i] = static_cast<char>((sum >> (8 * i)) & 0xff);
  }
  image_.source.Put(layer.digest, blob);
  auto read = ReadContent(image_.source, layer.digest, e);
  ASSERT_FALSE(read.has_value());
  EXPECT_EQ(read.error().code(), EIO) << read.error().message();
  EXPECT_EQ(read.error().message(),
            prefix + "digest mismatch (got " + Digest::Of(changed).str() + ")");
}

INSTANTIATE_TEST_SUITE_P(Producers, GoldenTest, ::testing::ValuesIn(kProducers),
                         [](const ::testing::TestParamInfo<Producer>& info) {
                           std::string name = info.param.dir;
                           std::erase(name, '-');
                           return name;
                         });

}  // namespace
}  // namespace hoist
