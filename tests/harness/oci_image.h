// Test images: OCI image layouts built from a list of files per layer, pushed with skopeo.
//
//   std::vector<LayerSpec> layers = {
//       {FileSpec::Dir("etc"), FileSpec::File("etc/hosts", "127.0.0.1 x\n").Owner(0, 0)},
//       {FileSpec::Whiteout("etc/hosts"), FileSpec::BigFile("data/big", 8 << 20, /*seed=*/7)},
//   };
//   auto image = BuildOciImage(dir, layers, {.tag = "v1"});
//   PushOciLayout(image->OciRef(), reg->DockerRef("test/img", "v1"), {.creds = ...});
//
// Layers are produced by the real GNU tar (`--format=pax --no-recursion --numeric-owner
// --xattrs`) from a staging directory in which each FileSpec is created for real (as root, so
// uids, modes and xattrs stick; hardlinks are real links, so tar emits typeflag '1'). Entries are
// archived in exactly the listed order; missing parent directories are added (mode 0755, uid 0)
// just before their first child unless LayerSpec::implicit_parents is false. Entry names have no
// "./" prefix; directories end in "/". Compression: `gzip -n` (default), `zstd`, or none.
//
// The layout is written directly (oci-layout, index.json, blobs/sha256/...): manifest and config
// are OCI media types; index.json gets an entry annotated org.opencontainers.image.ref.name=tag
// (an existing entry with the same tag is replaced, other tags are kept).
//
// Thread-safety: functions are independent; don't build into the same layout from two threads.
// Errors: EINVAL for a bad spec (absolute path, "..", hardlink to an unknown path), otherwise the
// failing tool's or system call's error.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "base/digest.h"
#include "base/status.h"

namespace hoist::harness {

struct FileSpec {
  enum class Type { kFile, kDir, kSymlink, kHardlink, kFifo, kCharDevice };

  Type type = Type::kFile;
  std::string path;           // relative, "a/b/c"
  std::string content;        // kFile (unless pattern_size > 0)
  uint64_t pattern_size = 0;  // kFile: PatternBytes(pattern_seed, 0, pattern_size) instead
  uint32_t pattern_seed = 0;
  std::string link_target;  // kSymlink: the symlink text; kHardlink: an earlier path
  mode_t mode = 0644;       // permission bits incl. setuid/setgid/sticky
  uid_t uid = 0;
  gid_t gid = 0;
  int64_t mtime = 1700000000;                 // seconds since the epoch
  std::map<std::string, std::string> xattrs;  // e.g. {"user.k", "v"}, {"security.capability", ..}
  unsigned dev_major = 0;                     // kCharDevice
  unsigned dev_minor = 0;

  static FileSpec File(std::string path, std::string content, mode_t mode = 0644);
  // A file of `size` deterministic pseudo-random bytes (PatternBytes(seed, ...)).
  static FileSpec BigFile(std::string path, uint64_t size, uint32_t seed, mode_t mode = 0644);
  static FileSpec Dir(std::string path, mode_t mode = 0755);
  static FileSpec Symlink(std::string path, std::string target);
  static FileSpec Hardlink(std::string path, std::string existing_path);
  static FileSpec Fifo(std::string path, mode_t mode = 0644);
  // A character device node (mknod; the tests run as root).
  static FileSpec CharDevice(std::string path, unsigned major, unsigned minor, mode_t mode = 0666);
  // "a/b" -> the empty file "a/.wh.b", which hides a/b of lower layers.
  static FileSpec Whiteout(const std::string& path);
  // "a" -> the empty file "a/.wh..wh..opq": directory a is opaque.
  static FileSpec Opaque(const std::string& dir);

  FileSpec& Owner(uid_t u, gid_t g) {
    uid = u;
    gid = g;
    return *this;
  }
  FileSpec& Mode(mode_t m) {
    mode = m;
    return *this;
  }
  FileSpec& Mtime(int64_t t) {
    mtime = t;
    return *this;
  }
  FileSpec& Xattr(std::string name, std::string value) {
    xattrs[std::move(name)] = std::move(value);
    return *this;
  }
  uint64_t size() const { return pattern_size > 0 ? pattern_size : content.size(); }
};

// Deterministic bytes of a BigFile: byte i of the stream for `seed`. Cheap to recompute, so
// tests compare reads against it without keeping the file in memory.
std::string PatternBytes(uint32_t seed, uint64_t offset, size_t length);

enum class LayerCompression { kGzip, kZstd, kNone };

struct LayerSpec {
  LayerSpec() = default;
  LayerSpec(std::vector<FileSpec> f) : files(std::move(f)) {}  // NOLINT: implicit on purpose
  LayerSpec(std::initializer_list<FileSpec> f) : files(f) {}
  LayerSpec(std::vector<FileSpec> f, LayerCompression c) : files(std::move(f)), compression(c) {}

  std::vector<FileSpec> files;
  LayerCompression compression = LayerCompression::kGzip;
  bool implicit_parents = true;
  // When set, this uncompressed tar is the layer as it is and `files` is ignored: for layers a
  // staging directory cannot express (a path twice, GNU sparse members), made by the test with
  // the real GNU tar (--append, --sparse).
  std::string tar_file;
};

struct ImageSpec {
  std::string tag = "latest";
  std::string os = "linux";
  std::string architecture = "amd64";
  std::string variant;
  std::vector<std::string> env = {
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::string working_dir;
  std::string user;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> manifest_annotations;
  // The config's `created` and every history entry's (empty: a fixed date in 2023).
  std::string created;
  // The config's history as given (oldest first); empty: one entry per layer. The entries that
  // are not empty_layer must be as many as the layers.
  struct HistoryItem {
    std::string created_by;
    bool empty_layer = false;
    std::string comment;
  };
  std::vector<HistoryItem> history;
};

struct BuiltLayer {
  Digest digest;  // of the (compressed) blob
  uint64_t size = 0;
  Digest diff_id;  // of the uncompressed tar
  std::string media_type;
  std::string blob_path;  // inside the layout
};

struct BuiltImage {
  std::string layout_dir;
  std::string tag;
  Digest manifest_digest;
  std::string manifest;  // exact bytes
  Digest config_digest;
  std::string config;  // exact bytes
  std::vector<BuiltLayer> layers;

  std::string OciRef() const { return "oci:" + layout_dir + ":" + tag; }
};

struct BuiltIndex {
  std::string layout_dir;
  std::string tag;
  Digest index_digest;
  std::string index;               // exact bytes
  std::vector<BuiltImage> images;  // in the order given

  std::string OciRef() const { return "oci:" + layout_dir + ":" + tag; }
};

// The path of blob `digest` in an OCI layout.
std::string LayoutBlobPath(const std::string& layout_dir, const Digest& digest);

// sha256 and size of a file's contents, streamed (never the whole file in memory). Symlinks are
// not followed (ELOOP).
[[nodiscard]] Result<std::pair<Digest, uint64_t>> DigestFile(const std::string& path);

// Writes the uncompressed tar of `layer` to `tar_path`, staging files under `staging_dir`
// (created; removed afterwards).
[[nodiscard]] Status BuildLayerTar(const LayerSpec& layer, const std::string& staging_dir,
                                   const std::string& tar_path);

// Builds (or adds to) the OCI layout at `layout_dir`: layers, config, manifest, index.json.
[[nodiscard]] Result<BuiltImage> BuildOciImage(const std::string& layout_dir,
                                               const std::vector<LayerSpec>& layers,
                                               const ImageSpec& spec = {});

// A multi-platform image: one image per entry of `platforms` (each ImageSpec's os/architecture/
// variant is its platform), all in `layout_dir`, tied together by an OCI image index tagged
// `tag` in index.json. Push it with PushOptions::all = true.
struct PlatformImage {
  ImageSpec spec;
  std::vector<LayerSpec> layers;
};
[[nodiscard]] Result<BuiltIndex> BuildOciIndex(const std::string& layout_dir,
                                               const std::vector<PlatformImage>& platforms,
                                               const std::string& tag = "latest");

struct PushOptions {
  std::string creds;  // "user:pass" for --dest-creds; empty = anonymous
  bool all = false;   // --all (an index with every platform)
};

// `skopeo copy --insecure-policy --dest-tls-verify=false --preserve-digests [--all]
//  [--dest-creds ..] <source> <dest>`; source e.g. "oci:/dir:tag", dest "docker://host/repo:tag".
[[nodiscard]] Status PushOciLayout(const std::string& source, const std::string& dest,
                                   const PushOptions& options = {});

}  // namespace hoist::harness
