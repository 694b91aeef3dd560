// Image plumbing several `hoist` verbs share, so that each step is written once:
//
// - ScratchParent: where a verb's scratch directory goes (--work-dir, else $TMPDIR, else a
//   fallback: /var/tmp by default, as big layers and archives may be spooled there).
// - VerbImageSource: an image of any transport (tools/image/image_transport.h) opened for reading,
//   with the scratch directory its source may spool into (rootfs:, compressed archives); the
//   directory is removed after the source is closed (base/file_util.h ScratchDir).
// - PinnedManifest / ResolvePinned: a registry image's platform manifest, resolved once and named
//   by digest from then on, with the descriptor a referrer's `subject` gives it.
//
// Errors are the underlying calls' (ParseImageName, ScratchDir::Create, OpenImageSource,
// RegistryClient::Resolve), unchanged.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/file_util.h"
#include "base/status.h"
#include "fetcher/registry.h"
#include "tools/image/image_transport.h"

namespace hoist {

// `work_dir` if set, else $TMPDIR if set and non-empty, else `fallback`.
std::string ScratchParent(const std::string& work_dir, const char* fallback = "/var/tmp");

class VerbImageSource {
 public:
  // Creates PARENT/PREFIX-<pid>-XXXXXX and opens `name` with it as the source's work_dir.
  [[nodiscard]] Status Open(const ImageName& name, const RegistryOptions& registry,
                            const std::string& parent, std::string_view prefix);
  ImageSource& source() { return *source_; }
  // Hands the source over (the scratch directory stays until this object goes).
  std::unique_ptr<ImageSource> Release() { return std::move(source_); }
  const std::string& work_dir() const { return work_.path(); }

 private:
  ScratchDir work_;  // destroyed after source_ (declared first)
  std::unique_ptr<ImageSource> source_;
};

// The manifest `ref` resolves to for the client's platform (options().platform: --platform, else
// the host's; the index's entry, or the manifest itself), and its descriptor (media type, digest,
// size of the bytes served). The config is not fetched.
struct PinnedManifest {
  ResolvedImage resolved;
  Descriptor subject;
};
[[nodiscard]] Result<PinnedManifest> ResolvePinned(RegistryClient& client, const Reference& ref);

// The descriptor of a manifest as served: its media type, digest and byte size.
Descriptor ManifestDescriptor(const ManifestBytes& m);

}  // namespace hoist
