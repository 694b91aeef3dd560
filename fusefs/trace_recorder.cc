#include "fusefs/trace_recorder.h"

#include <utility>

#include "base/file_util.h"
#include "index/layer_index.h"

namespace hoist {

bool TraceRecorder::Add(const Digest& layer, std::string_view path) {
  std::string key = layer.str();
  key += ' ';
  key += path;
  if (!seen_.insert(std::move(key)).second) return false;
  files_.push_back(TracedFile{layer, std::string(path)});
  return true;
}

void TraceRecorder::OnOpen(const FileRef& file) {
  if (file.index == nullptr || file.entry == nullptr || file.entry->path.empty()) return;
  MutexLock lock(mu_);
  Add(file.index->layer_digest, file.entry->path);
}

Status TraceRecorder::Seed(const AccessTrace& trace) {
  if (trace.image != image_) {
    return Fail(EINVAL, "the trace is of image " + trace.image.str() + ", not " + image_.str());
  }
  MutexLock lock(mu_);
  std::vector<TracedFile> later = std::move(files_);
  files_.clear();
  seen_.clear();
  for (const TracedFile& f : trace.files) Add(f.layer, f.path);
  for (const TracedFile& f : later) Add(f.layer, f.path);
  return Ok();
}

AccessTrace TraceRecorder::Snapshot() const {
  AccessTrace trace;
  trace.image = image_;
  MutexLock lock(mu_);
  trace.files = files_;
  return trace;
}

Status TraceRecorder::WriteTo(const std::string& path) const {
  Status s = WriteFileAtomic(path, SerializeAccessTrace(Snapshot()), 0644);
  if (!s) return Fail(s.error().Context("writing the access trace " + path));
  return Ok();
}

}  // namespace hoist
