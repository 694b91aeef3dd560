// ElfPrefetch: prefetch with no trace at all. An OpenObserver (fuse_ops.h) that, when an ELF
// program or library is opened, fetches the files the dynamic loader is about to open after it
// (its interpreter and its DT_NEEDED closure, index/elf_search.h), all in parallel, while the
// loader is still at the first one.
//
//   1. OnOpen (a FUSE thread; never blocks on I/O): a regular file of at least an ELF header's
//      size that may be ELF (an x bit, or ".so" in its name: looking costs a fetch of its first
//      chunk, so a .pyc or a locale file is never looked at) and was never seen before in this
//      mount is queued (bounded: when the queue is
//      full the open is dropped). Each entry is looked at once per mount.
//      The first open also queues the parse of the image's /etc/ld.so.conf (once per mount),
//      so it runs on one examine thread while another looks at that first file.
//   2. An examine thread (examine_threads of them) reads the file's first 4 bytes through the
//      ChunkReader (the verified read path; the opener reads them anyway) and stops unless they
//      are the ELF magic. For an ELF file it walks CollectElfClosure over the image's own tree
//      (the MergedView: lstat from LookupPath/GetAttr/ReadLink, headers read through the
//      ChunkReader, /etc/ld.so.conf parsed once per mount through the view).
//      Every path is an image path: nothing can resolve outside the image.
//   3. Each file the walk finds (and, with fetch_opened, the opened file itself) is marked seen
//      (the loader opening it later is not examined again: its dependencies are in this walk)
//      and its chunks that are not in the cache are coalesced (CoalesceChunks) and handed, one
//      request per group, to a pool of fetch_threads threads calling
//      ChunkReader::FetchForPrefetch, so every library is requested at once, each shares
//      single-flight with on-demand reads, and none queues on the on-demand pool.
//      Files larger than max_file_bytes are not fetched whole.
// Log: info "elf prefetch: N libraries for /usr/bin/python3.11 (B bytes to fetch)" per walk,
// debug "elf prefetch: fetching PATH (B bytes in R requests)" per file, and "elf prefetch: PATH
// is local" once all its requests succeeded.
//
// Thread-safety: OnOpen is thread-safe and non-blocking. Lifetime: the view and the reader must
// outlive the object; the destructor stops the threads (queued fetches are dropped, a request in
// the BlobSource finishes first). Destroy it after the FUSE session and before the reader.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "base/mutex.h"
#include "fusefs/chunk_reader.h"
#include "fusefs/fetch_pool.h"
#include "fusefs/fuse_ops.h"
#include "fusefs/merged_view.h"
#include "index/image_path.h"

namespace hoist {

struct ElfPrefetchOptions {
  int examine_threads = 2;
  int fetch_threads = 8;     // prefetch requests in flight at once
  size_t max_queue = 1024;   // opens waiting to be examined
  bool fetch_opened = true;  // fetch the opened ELF file itself too (the loader maps it)
  uint64_t max_file_bytes = 64ull << 20;
  uint64_t max_request_bytes = 512ull << 10;
};

struct ElfPrefetchCounters {
  uint64_t examined = 0;  // files whose magic was read
  uint64_t walked = 0;    // ELF files whose closure was collected
  uint64_t files = 0;     // files handed to the fetch pool (libraries and opened programs)
};

class ElfPrefetch : public OpenObserver {
 public:
  ElfPrefetch(const MergedView* view, ChunkReader* reader, ElfPrefetchOptions options = {});
  ~ElfPrefetch() override;
  ElfPrefetch(const ElfPrefetch&) = delete;
  ElfPrefetch& operator=(const ElfPrefetch&) = delete;

  void OnOpen(const FileRef& file) override;

  ElfPrefetchCounters counters() const;

 private:
  void Loop();
  void Examine(const FileRef& file);
  // Marks `file` seen; false if it already was.
  bool MarkSeen(const Entry* entry);
  // Queues the fetch of every missing chunk of `file`; returns the blob bytes asked for.
  uint64_t FetchWhole(const FileRef& file, const std::string& path);
  ImageNode Lstat(const std::string& path) const;
  // The image's ld.so.conf directories (parsed once, by the first caller; others wait).
  const std::vector<std::string>& ConfDirs();

  const MergedView* view_;
  ChunkReader* reader_;
  const ElfPrefetchOptions options_;

  mutable Mutex mu_;
  CondVar cv_;
  std::deque<FileRef> queue_ HOIST_GUARDED_BY(mu_);
  std::unordered_set<const Entry*> seen_ HOIST_GUARDED_BY(mu_);
  bool stop_ HOIST_GUARDED_BY(mu_) = false;
  bool conf_queued_ HOIST_GUARDED_BY(mu_) = false;
  ElfPrefetchCounters counters_ HOIST_GUARDED_BY(mu_);

  std::once_flag conf_once_;
  std::vector<std::string> conf_dirs_;  // written once under conf_once_

  std::unique_ptr<FetchPool> fetches_;
  std::vector<std::thread> threads_;  // last: started once everything else is built
};

}  // namespace hoist
