// AdditionalStore: containers/storage's *additional layer store* (podman, CRI-O) served from
// hoist's layer store, so `podman run` starts on lazily read layers.
//
//   MountOptions o;  o.mountpoint = "/var/lib/hoist/store";
//   auto store = AdditionalStore::Start(o, "/var/lib/hoist/store.layers");
//   // storage.conf: additionallayerstores = ["/var/lib/hoist/store:ref"]
//
// Two FUSE mounts in one process (docs/ARCHITECTURE.md "hoist-store"):
//   - `layers_dir`: a LayerStore (layer_store.h): <layers_dir>/<hex>/ is a layer's view as an
//     overlayfs lower layer (whiteouts as 0/0 character devices, trusted.overlay.opaque=y);
//   - the mountpoint: the namespace containers/storage looks up,
//       <root>/<base64(image reference)>/<layer key>/{diff,info,blob,use}
//     `diff` is a symlink to the layer's directory in the LayerStore (containers/storage itself
//     symlinks its layer's diff to it); `info` is the JSON of containers/storage's Layer;
//     `blob` the compressed layer, read lazily from the registry; `use` does not exist:
//     creating it takes a reference and rmdir of the layer directory drops one, both answered
//     ENOENT (what containers/storage expects of a store that counts references).
//
// Lookups only: readdir of the root and of a reference directory lists nothing. A reference
// directory is any name that is standard base64 of a reference hoist parses; a layer key is
// "sha256:<64 hex>" naming, in the image the reference resolves to (registry first, the local
// store as for a mount), a layer by its compressed digest or by its TOC digest (the
// zstd:chunked manifest-checksum or the eStargz toc.digest annotation). Anything else, and a
// layer the LayerStore does not admit (ENOTSUP: a plain gzip or zstd layer whose checkpoint index
// the host store does not hold and nobody published with `hoist index`, layer_store.h), is ENOENT,
// so containers/storage pulls it normally. An admitted plain gzip layer's `info` has no toc-digest
// and no diff-size.
//
// References: a key directory holds its layer in the LayerStore from its first lookup (one
// LayerStore reference per key directory) and counts `use` creations. rmdir drops one use; at
// zero (or for a key directory nobody used) the directory is forgotten and its LayerStore
// reference removed, so a layer no image uses leaves the store; its chunks stay in the cache
// until the cache quota reclaims them.
//
// Thread-safety: FUSE requests run on the namespace's own threads, concurrently; the public
// methods may be called from any thread. Start and the destructor are not concurrent with
// anything. Errors (Start): the LayerStore's, the mountpoint's (CheckMountpoint), EIO when
// mounting fails. Per request: ENOENT as above, EROFS for writes other than `use`, the
// registry's errno for a failed blob read.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/digest.h"
#include "base/status.h"
#include "fetcher/manifest.h"
#include "fusefs/layer_store.h"
#include "fusefs/mount_options.h"

namespace hoist {

// The reference a reference directory names: standard base64 (with padding) of a reference
// hoist parses, decoded. ENOENT otherwise.
[[nodiscard]] Result<std::string> DecodeStoreRefName(std::string_view name);
// "sha256:<64 lowercase hex>" as a digest; ENOENT otherwise.
[[nodiscard]] Result<Digest> ParseStoreLayerKey(std::string_view key);
// Whether `key` names `layer`: its digest, or its TOC digest annotation.
bool StoreKeyMatches(const Descriptor& layer, const Digest& key);
// The TOC digest a newer containers/storage asks by (empty Digest when the layer has none).
Digest StoreTocDigest(const Descriptor& layer);
// The layer's uncompressed (tar) size when the manifest declares it without reading the layer:
// the `io.containers.estargz.uncompressed-size` annotation (ctr-remote's eStargz and
// zstd:chunked). nullopt when absent; EBADMSG when present and not a decimal number.
[[nodiscard]] Result<std::optional<uint64_t>> StoreAnnotatedDiffSize(const Descriptor& layer);
// The `info` file: containers/storage's Layer JSON (compressed-diff-digest, compressed-size,
// diff-digest, diff-size when known, compression, toc-digest when known). podman needs
// diff-size for `podman save` to a docker-archive (the tar header of each layer); it is given
// only when the manifest declares it (StoreAnnotatedDiffSize), never read from the layer.
std::string StoreLayerInfo(const Descriptor& layer, const Digest& diff_id,
                           std::optional<uint64_t> diff_size = std::nullopt);

class AdditionalStore {
 public:
  [[nodiscard]] static Result<std::unique_ptr<AdditionalStore>> Start(const MountOptions& options,
                                                                      std::string layers_dir);
  ~AdditionalStore();
  AdditionalStore(const AdditionalStore&) = delete;
  AdditionalStore& operator=(const AdditionalStore&) = delete;

  // False once either FUSE loop has ended (unmounted from outside).
  bool Serving() const;
  const std::string& mountpoint() const { return mountpoint_; }
  LayerStore& layers() { return *layers_; }

  struct Impl;  // the FUSE handlers (additional_store.cc)

 private:
  AdditionalStore() = default;
  std::string mountpoint_;
  std::unique_ptr<LayerStore> layers_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hoist
