// Helpers shared by the store tests: a sample LayerIndex using every field, a field-by-field
// comparison, a temporary directory, and deterministic chunk bodies.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <string>

#include "base/digest.h"
#include "base/file_util.h"
#include "index/layer_index.h"

namespace hoist::testutil {

inline LayerIndex SampleIndex(const Digest& layer) {
  LayerIndex index;
  index.layer_digest = layer;
  index.blob_size = 0xffffffffffffull;
  index.format = LayerFormat::kEstargz;
  Entry root;
  root.path = "";
  root.type = EntryType::kDirectory;
  root.mode = 0755;
  index.entries.push_back(root);

  Entry file;
  file.path = "usr/bin/tool";
  file.type = EntryType::kRegular;
  file.mode = 07755;
  file.uid = 4294967295u;
  file.gid = 12;
  file.mtime_sec = -1234567890123;
  file.mtime_nsec = 999999999;
  file.size = 5 * 1000;
  file.xattrs = {{"user.a", std::string("v\0\xff", 3)}, {"security.capability", ""}};
  file.digest = Digest::Of("file");
  file.prefetch = true;
  const ChunkEncoding encodings[] = {ChunkEncoding::kZstdFrame, ChunkEncoding::kGzipMember,
                                     ChunkEncoding::kZeros, ChunkEncoding::kRaw,
                                     ChunkEncoding::kStream};
  for (int i = 0; i < 5; ++i) {
    Chunk c;
    c.file_offset = i * 1000;
    c.size = 1000;
    c.blob_offset = UINT64_MAX - i;
    c.blob_length = 77 + i;
    c.inner_offset = 1ull << (60 - i);
    c.encoding = encodings[i];
    if (c.encoding != ChunkEncoding::kZeros) c.digest = Digest::Of(std::to_string(i));
    file.chunks.push_back(c);
  }
  index.entries.push_back(file);

  Entry link;
  link.path = "usr/bin/alias";
  link.type = EntryType::kSymlink;
  link.mode = 0777;
  link.link_name = "../../weird name\n";
  index.entries.push_back(link);
  Entry hard;
  hard.path = "usr/bin/hard";
  hard.type = EntryType::kHardlink;
  hard.link_name = "usr/bin/tool";
  index.entries.push_back(hard);
  for (EntryType t : {EntryType::kCharDevice, EntryType::kBlockDevice, EntryType::kFifo}) {
    Entry dev;
    dev.path = "dev/node" + std::to_string(static_cast<int>(t));
    dev.type = t;
    dev.mode = 0600;
    dev.dev_major = 4095;
    dev.dev_minor = 1048575;
    index.entries.push_back(dev);
  }
  Entry wh;
  wh.path = "etc/.wh..wh..opq";
  index.entries.push_back(wh);
  return index;
}

inline void ExpectSameIndex(const LayerIndex& a, const LayerIndex& b) {
  EXPECT_EQ(a.layer_digest, b.layer_digest);
  EXPECT_EQ(a.blob_size, b.blob_size);
  EXPECT_EQ(a.format, b.format);
  EXPECT_EQ(a.stream_index, b.stream_index);
  ASSERT_EQ(a.entries.size(), b.entries.size());
  for (size_t i = 0; i < a.entries.size(); ++i) {
    const Entry& x = a.entries[i];
    const Entry& y = b.entries[i];
    SCOPED_TRACE("entry " + x.path);
    EXPECT_EQ(x.path, y.path);
    EXPECT_EQ(x.type, y.type);
    EXPECT_EQ(x.mode, y.mode);
    EXPECT_EQ(x.uid, y.uid);
    EXPECT_EQ(x.gid, y.gid);
    EXPECT_EQ(x.mtime_sec, y.mtime_sec);
    EXPECT_EQ(x.mtime_nsec, y.mtime_nsec);
    EXPECT_EQ(x.size, y.size);
    EXPECT_EQ(x.link_name, y.link_name);
    EXPECT_EQ(x.dev_major, y.dev_major);
    EXPECT_EQ(x.dev_minor, y.dev_minor);
    EXPECT_EQ(x.xattrs, y.xattrs);
    EXPECT_EQ(x.digest, y.digest);
    EXPECT_EQ(x.prefetch, y.prefetch);
    ASSERT_EQ(x.chunks.size(), y.chunks.size());
    for (size_t j = 0; j < x.chunks.size(); ++j) {
      EXPECT_EQ(x.chunks[j].file_offset, y.chunks[j].file_offset);
      EXPECT_EQ(x.chunks[j].size, y.chunks[j].size);
      EXPECT_EQ(x.chunks[j].blob_offset, y.chunks[j].blob_offset);
      EXPECT_EQ(x.chunks[j].blob_length, y.chunks[j].blob_length);
      EXPECT_EQ(x.chunks[j].inner_offset, y.chunks[j].inner_offset);
      EXPECT_EQ(x.chunks[j].encoding, y.chunks[j].encoding);
      EXPECT_EQ(x.chunks[j].digest, y.chunks[j].digest);
    }
  }
}

// A directory removed at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "hoist-store-XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    path_ = tmpl;
  }
  ~TempDir() { (void)RemoveTree(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Deterministic pseudo-random bytes for chunk `id` (xorshift), `size` long.
inline std::string ChunkBody(uint64_t id, size_t size) {
  std::string out(size, '\0');
  uint64_t x = id * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = static_cast<char>(x);
  }
  return out;
}

}  // namespace hoist::testutil
