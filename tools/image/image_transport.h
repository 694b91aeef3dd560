// Image transports for every verb that names an image, with skopeo's syntax:
//   docker://REF        a registry (the default when a name has no transport prefix)
//   oci:DIR[:TAG]       an OCI image layout directory
//   oci-archive:FILE[:TAG]  a tar of an OCI image layout (what skopeo, buildah and
//                       `hoist save --format oci-archive` write); read in place, never extracted
//   docker-archive:FILE what `docker save` writes (legacy layer.tar archives and OCI-style ones;
//                       source only)
//   dir:DIR             skopeo's directory layout: DIR/version ("Directory Transport Version:
//                       1.1\n"), DIR/manifest.json (the top manifest's bytes), each blob as
//                       DIR/<hex digest>, child manifests of an index as DIR/<hex>.manifest.json
//   rootfs:DIR          a one-layer image built from a root filesystem tree (source only)
// dir: refuses a directory without the version file (a plain tree: "use rootfs:"), rootfs: refuses
// a skopeo or OCI layout ("use dir:" / "use oci:").
//
// How a name is split (ParseImageName), in this order:
//   1. "docker://REF" is a registry reference.
//   2. Text with no ':' is a registry reference ("busybox").
//   3. The part before the first ':' names a transport when it is one of docker (only as
//      "docker://"), oci, oci-archive, docker-archive, dir, rootfs.
//   4. A skopeo transport hoist does not have (containers-storage, docker-daemon, ostree, sif,
//      tarball, atomic) is refused: ENOTSUP "transport "X" is not supported (known: ...)".
//   5. If that part holds '/' or '.' or '@' it is a registry host or a repository path
//      ("ghcr.io:443/x", "a/b:tag"): a registry reference.
//   6. Otherwise it is a one-component name followed by ':'. When the rest is a port and a path
//      (digits then '/': "localhost:5000/x") or a valid tag (busybox:1.36, nginx:alpine) it is a
//      registry reference, as docker reads it. Anything else ("bogus:foo/bar", "bogus:/tmp/x",
//      "bogus:") is EINVAL "unknown transport "bogus" (known: ...)".
// So "bogus:foo" is docker.io/library/bogus:foo, exactly as `docker pull bogus:foo` reads it: the
// text is a valid reference and nothing in it says it is meant as a transport.
// The directory of oci:, dir: and rootfs: loses its trailing slashes ("dir:out/" is "dir:out").
//
// What each transport keeps (checked by tests/integration/transport_conformance_test.cc):
// docker://, oci:, oci-archive: and the local store give back the manifest bytes, config bytes and
// layer blobs they were given. docker-archive: keeps the config bytes (so the diff_ids) but not
// the manifest: its layers are stored uncompressed and the source serves a manifest synthesised
// from them (OCI media types, layer digests of the stored members). dir: is a new one-layer image
// of the directory (its own config); only the tree it shows is the directory's (rootfs:). dir:
// keeps manifest, config and blobs byte for byte, like oci:.
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
#include "fetcher/reference.h"
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
  enum class Transport { kDocker, kOci, kOciArchive, kDockerArchive, kDir, kRootfs };
  Transport transport = Transport::kDocker;
  std::string path;  // docker: the reference; others: the file system path
  std::string tag;   // oci, oci-archive: the ref.name (may be empty)
  std::string ToString() const;
};

// Splits "transport:spec" by the rules above. EINVAL for an unknown transport or an empty name,
// ENOTSUP for a skopeo transport hoist lacks.
Result<ImageName> ParseImageName(const std::string& text);

// The one parser for verbs that need a registry reference (or a local image name, which is one):
// "REF" or "docker://REF", through ParseImageName, then Reference::Parse. Another transport is
// EINVAL "<text>: not a registry reference (this verb takes REF or docker://REF)".
Result<Reference> ParseRegistryReference(const std::string& text);
// The same check; returns the reference as written, without "docker://" (for verbs that hand the
// text on: to hoistfs, to the bundle builder).
Result<std::string> RegistryReferenceText(const std::string& text);

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  virtual std::string name() const = 0;
  // The manifest or index the name refers to.
  virtual Result<RawManifest> TopManifest() = 0;
  // A manifest referenced by an index. The returned digest is verified.
  virtual Result<RawManifest> Manifest(const Digest& digest) = 0;
  // A whole blob (configs; a few MB at most), verified against blob.digest (and blob.size when >=
  // 0). oci:, dir:, oci-archive: and docker-archive: refuse one over 8 MiB (EFBIG), whatever the
  // descriptor says.
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
  std::string work_dir;  // scratch space (rootfs: spools its tar here; compressed archives are
                         // decompressed here)
  // rootfs: config fields.
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
