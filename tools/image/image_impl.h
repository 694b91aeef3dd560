// Constructors of the individual image transports (see image_transport.h for the contracts).
// Internal to tools/: callers use OpenImageSource / OpenImageDestination.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/root_dir.h"
#include "base/scoped_fd.h"
#include "base/status.h"
#include "fetcher/registry.h"
#include "tools/image/image_transport.h"

namespace hoist {

// The blob half of a source whose blobs are files of a directory read as an untrusted tree
// (oci:, dir:): blob D is the regular file BlobName(D) resolved inside `root` (a symlinked blob
// cannot point at a host file), read no further than its descriptor's size (up to 8 MiB when the
// size is unknown) and checked against its digest; `dir` names the directory in errors.
class TreeBlobSource : public ImageSource {
 public:
  Result<std::string> ReadBlob(const Descriptor& blob) override;
  Result<std::unique_ptr<ByteReader>> OpenBlob(const Descriptor& blob) override;
  Result<std::string> ReadBlobRange(const Descriptor& blob, uint64_t offset,
                                    uint64_t length) override;

 protected:
  TreeBlobSource(RootDir root, std::string dir) : root_(std::move(root)), dir_(std::move(dir)) {}
  virtual std::string BlobName(const Digest& d) const = 0;

  static constexpr size_t kMaxJsonBytes = 8 << 20;
  RootDir root_;
  std::string dir_;

 private:
  Result<std::unique_ptr<ByteReader>> OpenRange(const Descriptor& blob, uint64_t offset,
                                                uint64_t length);
};

Result<std::unique_ptr<ImageSource>> NewOciSource(const std::string& dir, const std::string& tag);
Result<std::unique_ptr<ImageDestination>> NewOciDestination(const std::string& dir,
                                                            const std::string& tag);
// oci-archive:FILE[:TAG]: a tar of an OCI image layout (tools/image/image_oci_archive.cc).
Result<std::unique_ptr<ImageSource>> NewOciArchiveSource(const std::string& file,
                                                         const std::string& tag,
                                                         const SourceOptions& options);
Result<std::unique_ptr<ImageDestination>> NewOciArchiveDestination(const std::string& file,
                                                                   const std::string& tag);
Result<std::unique_ptr<ImageSource>> NewDockerArchiveSource(const std::string& file,
                                                            const SourceOptions& options);
// rootfs:DIR (tools/image/image_rootfs.cc).
Result<std::unique_ptr<ImageSource>> NewRootfsSource(const std::string& rootfs,
                                                     const SourceOptions& options);
// dir:DIR, skopeo's directory layout (tools/image/image_dir.cc).
Result<std::unique_ptr<ImageSource>> NewSkopeoDirSource(const std::string& dir);
Result<std::unique_ptr<ImageDestination>> NewSkopeoDirDestination(const std::string& dir);
// `registry`: the client's options (insecure registries, platform); the defaults otherwise.
Result<std::unique_ptr<ImageSource>> NewDockerSource(const std::string& reference,
                                                     RegistryOptions registry = {});
Result<std::unique_ptr<ImageDestination>> NewDockerDestination(const std::string& reference,
                                                               RegistryOptions registry = {});

// The entry of an OCI layout's index.json that `tag` names (its ref.name annotation), or the only
// entry when `tag` is empty. `where` names the layout in errors, `syntax` is how to name one image
// ("oci:DIR:TAG"). EINVAL for a malformed index or several entries and no tag, ENOENT for none.
Result<Descriptor> SelectLayoutEntry(std::string_view index_bytes, const std::string& tag,
                                     const std::string& where, std::string_view syntax);

// The manifest with `digest`, read through source.ReadBlob (size unknown), with the media type its
// bytes declare. For sources that keep manifests as blobs (oci:, oci-archive:).
Result<RawManifest> ManifestFromBlob(ImageSource& source, const Digest& digest);

// The top manifest of an OCI layout whose index.json is `index_bytes`: the entry `tag` names
// (SelectLayoutEntry, same arguments), read with ManifestFromBlob, typed by the entry's media type
// when its bytes do not say.
Result<RawManifest> LayoutTopManifest(ImageSource& source, std::string_view index_bytes,
                                      const std::string& tag, const std::string& where,
                                      std::string_view syntax);

// A plain tar path for the archive `file`: `file` itself, or, when it is gzip/zstd, a
// decompressed copy in a scratch file of `work_dir` ($TMPDIR or /tmp when empty) that is unlinked
// at once and named "/proc/self/fd/N": it exists exactly as long as `*scratch` stays open, so
// nothing is left behind and concurrent readers never share a name.
Result<std::string> PlainArchive(const std::string& file, const std::string& work_dir,
                                 ScopedFd* scratch);

// Stores a blob as the file `final_path` (the OCI layout destination, the local store's blob
// files): reads `reader` to the end into a temporary file beside it (".tmp-<pid>-<name>-XXXXXX",
// which `hoist prune` spares for an hour, removed on a signal and swept by the next call once
// <pid> is dead: base/cleanup_on_signal.h), checks the digest and size,
// fsyncs, and renames it into place, so the name only ever holds a whole, verified blob.
Status WriteBlobFile(const std::string& final_path, const Descriptor& blob, ByteReader& reader);

}  // namespace hoist
