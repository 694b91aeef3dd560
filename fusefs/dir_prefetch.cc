#include "fusefs/dir_prefetch.h"

#include <sys/stat.h>

#include <algorithm>
#include <utility>

#include "base/log.h"
#include "fusefs/file_fetch.h"

namespace hoist {

DirPrefetch::DirPrefetch(const MergedView* view, ChunkReader* reader, DirPrefetchOptions options)
    : view_(view), reader_(reader), options_(options) {
  fetches_ = std::make_unique<FetchPool>(std::max(options_.fetch_threads, 1));
  thread_ = std::thread([this] { Loop(); });
}

DirPrefetch::~DirPrefetch() {
  {
    MutexLock lock(mu_);
    stop_ = true;
    queue_.clear();
  }
  cv_.NotifyAll();
  thread_.join();
  fetches_.reset();  // drops the fetches not started, waits for the running ones
}

namespace {

// What follows the last '.' of a file name ("pyc", "so"; "" for "UTC" or ".profile").
std::string_view NameSuffix(std::string_view name) {
  const size_t dot = name.rfind('.');
  return dot == std::string_view::npos || dot == 0 ? std::string_view() : name.substr(dot + 1);
}

// Whether the first kOpenCheckChunks chunks of `file` that come from the blob are in the cache
// (a file with none is local). A trace or a prefetch makes whole files local, so the first
// chunks tell, at a bounded cost on the FUSE thread (one short read txn each).
constexpr int kOpenCheckChunks = 4;
bool OpenedFileIsLocal(const ChunkReader& reader, const FileRef& file) {
  int checked = 0;
  for (const Chunk& c : file.entry->chunks) {
    if (c.encoding == ChunkEncoding::kZeros || NeedsStreamFetch(c) || c.digest.empty()) continue;
    auto present = reader.cache()->Contains(c.digest);
    if (!present || !*present) return false;
    if (++checked == kOpenCheckChunks) break;
  }
  return true;
}

}  // namespace

void DirPrefetch::OnOpen(const FileRef& file) {
  if (file.entry == nullptr || file.index == nullptr) return;
  const std::string& path = file.entry->path;
  const size_t slash = path.rfind('/');
  const size_t base = slash == std::string::npos ? 0 : slash + 1;
  Job job;
  job.dir = path.substr(0, base == 0 ? 0 : base - 1);
  job.suffix = std::string(NameSuffix(std::string_view(path).substr(base)));
  job.opened = file;
  std::string key = job.dir + '\0' + job.suffix;
  {
    MutexLock lock(mu_);
    if (stop_ || queue_.size() >= options_.max_queue || seen_.contains(key)) return;
  }
  // Whether the opened file is local must be decided now, at the open: by the time the worker
  // looks, the opener's own read may have fetched it, and a directory whose first file came from
  // the network would be taken for one a trace had made local (it was, half the time, on
  // loopback). A file local at its open (a trace, an earlier prefetch) starts nothing.
  if (OpenedFileIsLocal(*reader_, file)) return;
  {
    MutexLock lock(mu_);
    if (stop_ || queue_.size() >= options_.max_queue) return;
    if (!seen_.insert(std::move(key)).second) return;
    queue_.push_back(std::move(job));
  }
  cv_.NotifyOne();
}

DirPrefetchCounters DirPrefetch::counters() const {
  MutexLock lock(mu_);
  return counters_;
}

void DirPrefetch::Loop() {
  for (;;) {
    Job job;
    {
      MutexLock lock(mu_);
      while (!stop_ && queue_.empty()) cv_.Wait(mu_);
      if (stop_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    Examine(job);
  }
}

void DirPrefetch::Examine(const Job& job) {
  auto ino = view_->LookupPath(job.dir);
  if (!ino) return;
  auto listing = view_->OpenDir(*ino);
  if (!listing) return;
  MissingChunks missing;
  for (uint64_t i = 2; i < listing->size(); ++i) {
    const DirEntry child = (*listing)[i];
    if (child.type != S_IFREG || NameSuffix(child.name) != job.suffix) continue;
    auto file = view_->OpenFile(child.ino);
    if (!file || file->entry == job.opened.entry) continue;
    (void)AddMissingChunks(*reader_, *file, options_.max_file_bytes, &missing);
  }
  const std::string shown = "/" + job.dir;
  if (missing.bytes > options_.max_dir_bytes) {
    HOIST_LOG(kDebug) << "dir prefetch: " << shown << " left alone (" << missing.bytes
                      << " bytes missing)";
    MutexLock lock(mu_);
    ++counters_.too_large;
    return;
  }
  if (missing.files == 0) return;
  const uint64_t files = missing.files, bytes = missing.bytes;
  HOIST_LOG(kInfo) << "dir prefetch: " << files << " files of " << shown << " (" << bytes
                   << " bytes, names ending \"." << job.suffix << "\")";
  (void)SubmitMissingChunks(reader_, fetches_.get(), std::move(missing), options_.max_request_bytes,
                            "dir prefetch: ", shown);
  MutexLock lock(mu_);
  ++counters_.directories;
  counters_.files += files;
  counters_.bytes += bytes;
}

}  // namespace hoist
