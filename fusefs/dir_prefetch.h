// DirPrefetch: prefetch with no trace, by directory locality. An OpenObserver (fuse_ops.h) that,
// when a program opens a file that is not local, fetches the other small files of the same
// directory in the background: an interpreter's imports (python's __pycache__, a package's
// modules), a program's data files and plugins are opened one after another from a few
// directories, and each would otherwise be a round trip of its own on the start's critical path.
//
//   1. OnOpen (a FUSE thread, before the open is answered; never blocks): if the opened file is
//      local (its first chunks are in the cache: a trace or an earlier prefetch made it so),
//      nothing happens, so a later cold open there can still trigger. Decided at the open, not by
//      the worker, which could find it fetched by the opener's own read. Otherwise its directory
//      (its path in its layer) is queued unless it was queued before in this mount (bounded
//      queue: when it is full the open is dropped).
//   2. A worker thread lists the directory in the merged view and collects the chunks missing
//      from the cache of every regular file up to max_file_bytes (not the opened file itself:
//      the opener is reading it already).
//   3. If they come to at most max_dir_bytes of blob, they are handed to the fetch pool
//      (file_fetch.h: coalesced per layer into requests of at most max_request_bytes, several at
//      once on their own connections, single-flight with on-demand reads). A larger directory
//      (/usr/bin, /usr/lib/x86_64-linux-gnu) is left alone: the ELF prefetch and the neighbour
//      window serve those.
// Every path comes from the merged view: nothing resolves outside the image.
// Log: info "dir prefetch: N files of DIR (B bytes)" per fetched directory; debug per request
// (file_fetch.h) and "dir prefetch: DIR left alone (B bytes missing)".
//
// Thread-safety: OnOpen is thread-safe and non-blocking. Lifetime: the view and the reader must
// outlive the object; the destructor stops the worker and the pool (queued fetches are dropped,
// a request in the BlobSource finishes first). Destroy it after the FUSE session and before the
// reader.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <unordered_set>

#include "base/mutex.h"
#include "fusefs/chunk_reader.h"
#include "fusefs/fetch_pool.h"
#include "fusefs/fuse_ops.h"
#include "fusefs/merged_view.h"

namespace hoist {

struct DirPrefetchOptions {
  int fetch_threads = 8;  // requests in flight at once
  size_t max_queue = 1024;
  uint64_t max_file_bytes = 1ull << 20;
  uint64_t max_dir_bytes = 4ull << 20;
  uint64_t max_request_bytes = 512ull << 10;
};

struct DirPrefetchCounters {
  uint64_t directories = 0;  // directories whose files were handed to the pool
  uint64_t files = 0;        // files with something missing in them
  uint64_t bytes = 0;        // blob bytes asked for
  uint64_t too_large = 0;    // directories left alone (over max_dir_bytes)
};

class DirPrefetch : public OpenObserver {
 public:
  DirPrefetch(const MergedView* view, ChunkReader* reader, DirPrefetchOptions options = {});
  ~DirPrefetch() override;
  DirPrefetch(const DirPrefetch&) = delete;
  DirPrefetch& operator=(const DirPrefetch&) = delete;

  void OnOpen(const FileRef& file) override;

  DirPrefetchCounters counters() const;

 private:
  struct Job {
    std::string dir;
    std::string suffix;  // of the opened file's name; siblings must share it
    FileRef opened;
  };
  void Loop();
  void Examine(const Job& job);

  const MergedView* view_;
  ChunkReader* reader_;
  const DirPrefetchOptions options_;

  mutable Mutex mu_;
  CondVar cv_;
  std::deque<Job> queue_ HOIST_GUARDED_BY(mu_);
  std::unordered_set<std::string> seen_ HOIST_GUARDED_BY(mu_);  // dir + '\0' + suffix
  bool stop_ HOIST_GUARDED_BY(mu_) = false;
  DirPrefetchCounters counters_ HOIST_GUARDED_BY(mu_);

  std::unique_ptr<FetchPool> fetches_;
  std::thread thread_;  // last: started once everything else is built
};

}  // namespace hoist
