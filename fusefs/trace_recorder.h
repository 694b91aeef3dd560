// TraceRecorder: the OpenObserver (fuse_ops.h) behind -o trace=FILE. It records each regular
// file a mount opens as (layer digest, Entry::path), in first-open order, each file once; the
// kernel resolves symlinks before it opens, so what is recorded is the file itself, never a
// link. Snapshot() returns the trace so far (fusefs/access_trace.h); WriteTo writes it
// atomically (a temporary file in the same directory, then rename).
//
// A mount taken over from a previous daemon (fuse_handoff.h) seeds its recorder with the trace
// that daemon wrote when it handed over (Seed), so one trace covers the mount's whole life.
//
// Cost: OnOpen takes a mutex for one hash-set lookup (and an append the first time a file is
// opened); it never blocks on I/O. Memory: one record per distinct file opened.
// Thread-safety: every method is thread-safe.
#pragma once

#include <string>
#include <unordered_set>
#include <vector>

#include "base/digest.h"
#include "base/mutex.h"
#include "base/status.h"
#include "fusefs/access_trace.h"
#include "fusefs/fuse_ops.h"

namespace hoist {

class TraceRecorder : public OpenObserver {
 public:
  // `image`: the digest of the mounted image manifest (AccessTrace::image).
  explicit TraceRecorder(Digest image) : image_(std::move(image)) {}

  void OnOpen(const FileRef& file) override HOIST_EXCLUDES(mu_);

  // Records the files of `trace` (which must be of this image; else EINVAL and nothing is
  // recorded) ahead of anything opened since, as if they had been opened first.
  [[nodiscard]] Status Seed(const AccessTrace& trace) HOIST_EXCLUDES(mu_);

  AccessTrace Snapshot() const HOIST_EXCLUDES(mu_);

  // SerializeAccessTrace(Snapshot()) written to `path` atomically (mode 0644).
  [[nodiscard]] Status WriteTo(const std::string& path) const HOIST_EXCLUDES(mu_);

 private:
  bool Add(const Digest& layer, std::string_view path) HOIST_REQUIRES(mu_);

  const Digest image_;
  mutable Mutex mu_;
  std::unordered_set<std::string> seen_ HOIST_GUARDED_BY(mu_);  // "<layer digest> <path>"
  std::vector<TracedFile> files_ HOIST_GUARDED_BY(mu_);
};

}  // namespace hoist
