// Test helpers: layer blobs whose TOC holds one entry with a huge, highly compressible name (a
// "TOC string bomb"), in the zstd:chunked and eStargz layouts, built byte by byte so nothing
// but hoist's readers looks at them. Used by the format tests and the mount tests.
#pragma once

#include <zlib.h>
#include <zstd.h>

#include <cstdio>
#include <string>

#include "base/digest.h"

namespace hoist::testing {

// {"version":1,"entries":[{"type":"reg","name":"<name_bytes x fill>","size":0}]}
inline std::string BombTocJson(size_t name_bytes, char fill = 'n') {
  return R"({"version":1,"entries":[{"type":"reg","name":")" + std::string(name_bytes, fill) +
         R"(","size":0}]})";
}

inline std::string GzipMember(const std::string& data) {
  z_stream zs{};
  deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, data.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// A ustar header for a regular file `name` of `size` bytes.
inline std::string TarHeader(const std::string& name, size_t size) {
  std::string h(512, '\0');
  h.replace(0, name.size(), name);
  std::snprintf(h.data() + 100, 8, "%07o", 0644);
  std::snprintf(h.data() + 108, 8, "%07o", 0);
  std::snprintf(h.data() + 116, 8, "%07o", 0);
  std::snprintf(h.data() + 124, 12, "%011llo", static_cast<unsigned long long>(size));
  std::snprintf(h.data() + 136, 12, "%011o", 0);
  h[156] = '0';
  h.replace(257, 6, std::string("ustar\0", 6));
  h.replace(263, 2, "00");
  h.replace(148, 8, "        ");
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(h.data() + 148, 8, "%06o", sum);
  h[155] = ' ';
  return h;
}

// The eStargz TOC member: a gzip member holding a tar with stargz.index.json = `json`.
inline std::string EstargzTocMember(const std::string& json) {
  std::string tar = TarHeader("stargz.index.json", json.size()) + json;
  tar.append((512 - json.size() % 512) % 512, '\0');
  tar.append(1024, '\0');
  return GzipMember(tar);
}

// An eStargz blob with no files and `json` as its TOC: [gzip: empty][TOC member][51-byte footer].
// Annotate it with containerd.io/snapshot/stargz/toc.digest = Digest::Of(json).
inline std::string EstargzBlob(const std::string& json) {
  std::string blob = GzipMember("");
  const size_t toc_offset = blob.size();
  blob += EstargzTocMember(json);
  // The footer: an empty gzip member whose extra field "SG" holds the TOC offset + "STARGZ".
  std::string f = {'\x1f', '\x8b', 8, 4, 0, 0, 0, 0, 0, '\xff', 26, 0, 'S', 'G', 22, 0};
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(toc_offset));
  f += std::string(hex, 16) + "STARGZ";
  f += std::string("\x01\x00\x00\xff\xff", 5);  // an empty stored final block
  f += std::string(8, '\0');                    // CRC32 and ISIZE of nothing
  return blob + f;
}

// A zstd:chunked blob with no files and `json` as its TOC: [zstd: empty tar][zstd: TOC][v1
// footer]. `position` gets the manifest-position annotation ("off:len:ulen:1"); annotate
// manifest-checksum = Digest::Of(*compressed_toc).
inline std::string ZstdChunkedBlob(const std::string& json, std::string* position,
                                   std::string* compressed_toc) {
  auto compress = [](const std::string& in) {
    std::string out(ZSTD_compressBound(in.size()), '\0');
    out.resize(ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3));
    return out;
  };
  std::string blob = compress(std::string(1024, '\0'));
  const uint64_t toc_offset = blob.size();
  *compressed_toc = compress(json);
  blob += *compressed_toc;
  auto le = [](uint64_t v, int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
    return s;
  };
  blob += le(0x184D2A50, 4) + le(40, 4) + le(toc_offset, 8) + le(compressed_toc->size(), 8) +
          le(json.size(), 8) + le(1, 8) + "GnUlInUx";
  *position = std::to_string(toc_offset) + ":" + std::to_string(compressed_toc->size()) + ":" +
              std::to_string(json.size()) + ":1";
  return blob;
}

}  // namespace hoist::testing
