// The docker-archive writer of `hoist save`, shared with `hoist copy ... docker-archive:FILE`.
//
// WriteDockerArchive writes the layout skopeo 1.9 writes (save.cc's file comment): per image its
// config, each layer UNCOMPRESSED as <diffid-hex>.tar (decompressed from the source, its
// compressed digest and its diff_id checked), the legacy v1 directories, then manifest.json and
// repositories naming `names`. WriteArchiveFile makes a file of it atomically: FILE.tmp-PID,
// fsync, rename; on error or SIGINT/SIGTERM/SIGHUP the temp file is removed and FILE untouched.
//
// Thread-safety: one thread. Errors: EIO for a layer that fails its digests, the source's and
// the OS's errors otherwise.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "fetcher/manifest.h"
#include "fetcher/reference.h"
#include "tools/cli/progress.h"
#include "tools/image/archive_writer.h"
#include "tools/image/image_transport.h"

namespace hoist {

struct SaveImage {
  std::unique_ptr<ImageSource> source;
  RawManifest manifest;  // an image manifest (not an index)
  ImageManifest parsed;
  std::vector<Reference> names;  // with a tag; empty for digest-only references
};

// Spools each layer under `spool_dir` (unlinked files) while it is decompressed.
[[nodiscard]] Status WriteDockerArchive(std::vector<SaveImage>& images, ArchiveWriter& out,
                                        const std::string& spool_dir, ProgressDisplay& progress);

// Runs `write(fd, dir of path)` on a temp file next to `path`, then renames it into place.
[[nodiscard]] Status WriteArchiveFile(
    const std::string& path, const std::function<Status(int fd, const std::string& dir)>& write);

}  // namespace hoist
