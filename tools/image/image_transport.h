// Image transports for `hoist convert`, with skopeo's syntax:
//   docker://REF        a registry (the default when a name has no transport prefix)
//   oci:DIR[:TAG]       an OCI image layout directory
//   oci-archive:FILE[:TAG]  a tar of an OCI image layout (what skopeo, buildah and
//                       `hoist save --format oci-archive` write); read in place, never extracted
//   docker-archive:FILE what `docker save` writes (legacy layer.tar archives and OCI-style ones;
//                       source only)
//   dir:ROOTFS          a one-layer image built from a directory (source only)
//
// What each transport keeps (checked by tests/integration/transport_conformance_test.cc):
// docker://, oci:, oci-archive: and the local store give back the manifest bytes, config bytes and
// layer blobs they were given. docker-archive: keeps the config bytes (so the diff_ids) but not
// the manifest: its layers are stored uncompressed and the source serves a manifest synthesised
// from them (OCI media types, layer digests of the stored members). dir: is a new one-layer image
// of the directory (its own config); only the tree it shows is the directory's.
//
// An ImageSource yields the top-level manifest (or index), child manifests by digest, small
// blobs (configs) and a stream for each layer blob. An ImageDestination receives blobs, then
// manifests, and makes the image visible only in Commit(): a destination that is aborted (or
// destroyed without Commit) leaves nothing a reader of the destination would see as an image.
//
// Thread-safety: OpenBlob/PutBlob/EnsureBlob may be called from several threads at once (one
// per layer); manifest calls and Commit/Abort happen on one thread after the blobs.
// Errors: ENOENT for an image or blob that does not exist, EINVAL for a malformed name or a
// reference that is not an image, EIO for corrupt data, others from the fetcher or the OS.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/status.h"
#include "fetcher/manifest.h"
#include "fetcher/registry.h"
#include "tools/image/image_stream.h"

namespace hoist {

// A manifest or index as raw bytes (digest = sha256 of exactly these bytes).
struct RawManifest {
  std::string bytes;
  std::string media_type;
  Digest digest;
};

struct ImageName {
  enum class Transport { kDocker, kOci, kOciArchive, kDockerArchive, kDir };
  Transport transport = Transport::kDocker;
  std::string path;  // docker: the reference; others: the file system path
  std::string tag;   // oci, oci-archive: the ref.name (may be empty)
  std::string ToString() const;
};

// Splits "transport:spec". A name with no known transport prefix is a docker reference.
Result<ImageName> ParseImageName(const std::string& text);

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  virtual std::string name() const = 0;
  // The manifest or index the name refers to.
  virtual Result<RawManifest> TopManifest() = 0;
  // A manifest referenced by an index. The returned digest is verified.
  virtual Result<RawManifest> Manifest(const Digest& digest) = 0;
  // A whole blob (configs; a few MB at most), verified against blob.digest (and blob.size when >=
  // 0).
  virtual Result<std::string> ReadBlob(const Descriptor& blob) = 0;
  // A stream of the blob's bytes. Unless VerifiesBlobs(), NOT verified: the caller hashes what
  // it reads. With VerifiesBlobs(), the last Read fails (EIO "digest mismatch") instead of
  // returning 0 when the bytes do not match blob.digest, so the caller need not hash them again.
  virtual Result<std::unique_ptr<ByteReader>> OpenBlob(const Descriptor& blob) = 0;
  // blob[offset, offset+length): used to check the TOC of an already converted layer.
  virtual Result<std::string> ReadBlobRange(const Descriptor& blob, uint64_t offset,
                                            uint64_t length) = 0;
  virtual bool VerifiesBlobs() const { return false; }
  // docker sources: "host/repository" (blobs there can be cross-mounted); empty otherwise.
  virtual std::string registry_repository() const { return {}; }
};

class ImageDestination {
 public:
  virtual ~ImageDestination() = default;
  virtual std::string name() const = 0;
  // True when the destination already has the blob, or could get it without an upload
  // (a cross-repository mount from `source`, which may be null).
  virtual Result<bool> EnsureBlob(const Descriptor& blob, const ImageSource* source) = 0;
  // Uploads the blob read from `reader`; the bytes must hash to blob.digest (checked).
  virtual Status PutBlob(const Descriptor& blob, ByteReader& reader) = 0;
  // Uploads a blob from a file whose digest the caller already computed (a converted layer
  // spooled to the work dir). The destination may move the file (it is the caller's scratch
  // file); the default reads it through PutBlob.
  virtual Status PutBlobFile(const Descriptor& blob, const std::string& path);
  // Stores a manifest. `top_level` marks the one the destination name (tag) refers to; it is
  // always put last. Child manifests of an index are stored by digest only.
  virtual Status PutManifest(const RawManifest& manifest, bool top_level) = 0;
  // Makes the image visible (oci: writes index.json, moves a new layout into place; oci-archive:
  // writes the whole archive and renames it over FILE).
  virtual Status Commit() = 0;
  // Removes what was written and not committed, where the transport allows it.
  virtual void Abort() = 0;
};

struct SourceOptions {
  std::string work_dir;  // scratch space (dir: spools its tar here; compressed archives are
                         // decompressed here)
  // dir: config fields.
  std::vector<std::string> cmd;
  std::vector<std::string> entrypoint;
  std::vector<std::string> env;
  std::string workdir;
  std::map<std::string, std::string> labels;
  std::string os = "linux";
  std::string architecture;  // empty: the host's
  // docker://: the registry client's options (--insecure-registry).
  RegistryOptions registry;
};

Result<std::unique_ptr<ImageSource>> OpenImageSource(const ImageName& name,
                                                     const SourceOptions& options);
Result<std::unique_ptr<ImageDestination>> OpenImageDestination(
    const ImageName& name, const RegistryOptions& registry = {});

}  // namespace hoist
