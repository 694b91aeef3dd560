// Image plumbing several `hoist` verbs share, so that each step is written once:
//
// - ScratchParent: where a verb's scratch directory goes (--work-dir, else $TMPDIR, else a
//   fallback: /var/tmp by default, as big layers and archives may be spooled there).
// - VerbImageSource: an image of any transport (tools/image/image_transport.h) opened for reading,
//   with the scratch directory its source may spool into (rootfs:, compressed archives); the
//   directory is removed after the source is closed (base/file_util.h ScratchDir).
//
// Errors are the underlying calls' (ScratchDir::Create, OpenImageSource), unchanged.
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

}  // namespace hoist
