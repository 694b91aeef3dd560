// Reading docker-archive files (what `docker save` and `skopeo copy ... docker-archive:` write):
// shared by `hoist load` and the docker-archive: source of `hoist convert`.
//
// TarArchive maps the members of an uncompressed tar file (scanned once with index/tar_reader.h)
// to their payload (offset, size), following symlink members (legacy archives link repeated
// layers); member bytes are then read with pread, so any number of readers may be open at once.
// ParseDockerArchiveManifest reads manifest.json ([{Config, RepoTags, Layers}]).
// DescribeArchiveLayer reads one layer member to the end: its digest and size as stored, its
// compression (from the magic) and its diff_id (sha256 of the uncompressed tar).
//
// Thread-safety: a scanned TarArchive is immutable; Open/Read may be called from several threads.
// Lifetime: readers returned by Open own their file descriptor and do not reference the archive.
// Errors: EINVAL for a missing member or a malformed manifest.json, EFBIG for a "small" member
// over 8 MiB or an archive of more than 65536 (kept) members, EIO for a truncated or corrupt
// tar/compressed stream, the OS errno otherwise.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/digest.h"
#include "base/status.h"
#include "fetcher/manifest.h"
#include "tools/image/image_stream.h"

namespace hoist {

class TarArchive {
 public:
  // Reads every header of the uncompressed tar at `path`.
  [[nodiscard]] static Result<TarArchive> Scan(const std::string& path);

  bool Has(const std::string& name) const { return Resolve(name).has_value(); }
  // The payload of member `name` ("./" prefix and symlinks resolved), or its bytes
  // [offset, offset+length) (EINVAL when that range is not inside the payload).
  [[nodiscard]] Result<std::unique_ptr<ByteReader>> Open(const std::string& name,
                                                         uint64_t offset = 0,
                                                         uint64_t length = UINT64_MAX) const;
  // A small member (manifest.json, a config): at most 8 MiB.
  [[nodiscard]] Result<std::string> Read(const std::string& name) const;
  // Payload size of member `name`.
  [[nodiscard]] Result<uint64_t> Size(const std::string& name) const;
  const std::string& path() const { return path_; }

 private:
  struct Member {
    bool symlink = false;
    std::string target;  // cleaned path of the symlink target
    uint64_t offset = 0;
    uint64_t size = 0;
  };
  std::optional<Member> Resolve(std::string name) const;
  Result<Member> Find(const std::string& name) const;

  std::string path_;
  std::map<std::string, Member> members_;
};

// One entry of manifest.json.
struct DockerArchiveEntry {
  std::string config;                  // member name of the config
  std::vector<std::string> repo_tags;  // as written ("name:tag"); may be empty
  std::vector<std::string> layers;     // member names, base layer first
};

[[nodiscard]] Result<std::vector<DockerArchiveEntry>> ParseDockerArchiveManifest(
    std::string_view manifest_json);

struct ArchiveLayer {
  Digest digest;  // sha256 of the member bytes as stored
  uint64_t size = 0;
  Compression compression = Compression::kNone;
  Digest diff_id;  // sha256 of the uncompressed tar (== digest when uncompressed)
};

// Reads member `name` once (and decompresses it when compressed) to describe it.
[[nodiscard]] Result<ArchiveLayer> DescribeArchiveLayer(const TarArchive& archive,
                                                        const std::string& name);

// An image manifest of `media_type` (the OCI or the Docker v2 manifest type; compact JSON,
// fixed member order) for `config` and `layers` (mediaType, digest, size of each).
std::string SynthesizeManifest(std::string_view media_type, const Descriptor& config,
                               const std::vector<Descriptor>& layers);

// A plain tar path for `input`: `input` itself, or a decompressed copy written to `scratch`
// (gzip/zstd input; the caller removes `scratch`).
[[nodiscard]] Result<std::string> UncompressedArchive(const std::string& input,
                                                      const std::string& scratch);

}  // namespace hoist
