// hoist prune [--all] [--keep-bytes N]: frees what no local image references, then trims the
// chunk cache in LRU order.
//
//   default        deletes chunks, layer blob files, manifests and configs that no local image
//                  (`hoist images`) references. Layer indexes are kept (small; they make
//                  remounts of registry images skip the TOC fetch).
//   --all          also deletes layer indexes no local image uses, and evicts every chunk
//                  (cached data of pulled images too: it is fetched again on use). Layer blob
//                  files of local images are kept: they may be the only copy.
//   --keep-bytes N then evicts least recently used chunks until at most N bytes remain.
//
// Local images include those a mount recorded (fusefs/local_image.h: partial ones): their
// manifest, config, layer indexes and chunks are kept like a pulled image's; --all evicts their
// chunks (they stay listed, 0% local); `hoist rm` then prune removes the rest.
//
// A live mount is never broken: its chunks may go, and its reads then fetch them again (from the
// registry, or from the mount's open layer blob files, which stay readable after unlink).
//
// Disk: LMDB reuses freed pages but never shrinks data.mdb. When no other process has the store
// open (no mount, no daemon), prune then rewrites the file without its free pages
// (Store::Compact), so `du` of the cache drops by what was freed. With a mount live the file
// keeps its size (the pages are reused by later chunks) and the report says so.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <set>

#include "fusefs/local_image.h"
#include "fusefs/mount_options.h"
#include "tools/cli/verbs.h"
#include "tools/image/local_store.h"

namespace hoist {
namespace {

struct PruneArgs {
  std::string cache;
  bool all = false;
  std::string keep_bytes;
};

struct Referenced {
  std::set<Digest> blobs;   // manifests and configs
  std::set<Digest> layers;  // layer digests
  std::set<Digest> chunks;
};

Result<Referenced> CollectReferenced(LocalStore& local) {
  Referenced r;
  HOIST_ASSIGN_OR_RETURN(std::vector<LocalImage> images, local.List());
  for (const LocalImage& img : images) {
    r.blobs.insert(img.manifest_digest);
    r.blobs.insert(img.manifest.config.digest);
    for (const Descriptor& l : img.manifest.layers) {
      r.layers.insert(l.digest);
      HOIST_ASSIGN_OR_RETURN(std::optional<LayerIndex> li, local.store().GetLayerIndex(l.digest));
      if (!li) continue;
      for (const Chunk& c : DistinctCachedChunks(*li)) r.chunks.insert(c.digest);
    }
  }
  return r;
}

Status Prune(const PruneArgs& a, std::string* report) {
  std::optional<uint64_t> keep;
  if (!a.keep_bytes.empty()) {
    HOIST_ASSIGN_OR_RETURN(uint64_t k, ParseByteSize(a.keep_bytes));
    keep = k;
  }
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<LocalStore> local, LocalStore::Open(a.cache));
  Store& store = local->store();
  HOIST_ASSIGN_OR_RETURN(Referenced ref, CollectReferenced(*local));

  uint64_t blobs = 0, files = 0, indexes = 0;
  HOIST_ASSIGN_OR_RETURN(std::vector<Digest> all_blobs, store.ListBlobs());
  for (const Digest& d : all_blobs) {
    if (ref.blobs.contains(d)) continue;
    HOIST_ASSIGN_OR_RETURN(bool gone, store.DeleteBlob(d));
    blobs += gone ? 1 : 0;
  }
  // Layer blob files (and temp files of loads/pulls that died: older than an hour).
  const std::string dir = LocalBlobDir(local->cache_dir());
  if (DIR* d = ::opendir(dir.c_str()); d != nullptr) {
    std::vector<std::string> doomed;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      const std::string path = dir + "/" + name;
      if (name.starts_with(".tmp-")) {
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0 && st.st_mtime + 3600 < ::time(nullptr)) {
          doomed.push_back(path);
        }
        continue;
      }
      auto digest = Digest::Parse("sha256:" + name);
      if (digest && ref.layers.contains(*digest)) continue;
      doomed.push_back(path);
    }
    ::closedir(d);
    for (const std::string& p : doomed) {
      if (::unlink(p.c_str()) == 0) ++files;
    }
  }
  if (a.all) {
    HOIST_ASSIGN_OR_RETURN(std::vector<Digest> li, store.ListLayerIndexes());
    for (const Digest& d : li) {
      if (ref.layers.contains(d)) continue;
      HOIST_ASSIGN_OR_RETURN(bool gone, store.DeleteLayerIndex(d));
      indexes += gone ? 1 : 0;
    }
  }
  // Chunks.
  HOIST_ASSIGN_OR_RETURN(std::vector<ChunkInfo> chunks, store.chunks().List());
  std::vector<Digest> unreferenced;
  for (const ChunkInfo& c : chunks) {
    if (a.all || !ref.chunks.contains(c.digest)) unreferenced.push_back(c.digest);
  }
  HOIST_ASSIGN_OR_RETURN(auto removed, store.chunks().Remove(unreferenced));
  uint64_t evicted = 0;
  if (keep) {
    HOIST_ASSIGN_OR_RETURN(evicted, store.chunks().Evict(*keep));
  }
  HOIST_ASSIGN_OR_RETURN(ChunkCacheStats stats, store.chunks().Stats());
  // Give the freed pages back: LMDB reuses free pages but never shrinks its file, so the file
  // is rewritten without them once nothing has the store open (this process closes it first).
  const std::string cache_dir = local->cache_dir();
  local.reset();
  HOIST_ASSIGN_OR_RETURN(LmdbEnv::CompactResult compact, Store::Compact(cache_dir));
  std::string disk;
  if (compact.compacted) {
    disk = " Data file compacted: " + HumanSize(compact.bytes_before) + " -> " +
           HumanSize(compact.bytes_after) + ".";
  } else {
    disk = " Data file not compacted (" + compact.not_compacted + "): it keeps its " +
           HumanSize(compact.bytes_before) + "; the freed pages are reused by new data.";
  }
  *report = "Freed " + std::to_string(removed.first) + " unreferenced chunks (" +
            HumanSize(removed.second) + "), evicted " + std::to_string(evicted) +
            " more; removed " + std::to_string(blobs) + " manifests/configs, " +
            std::to_string(files) + " layer files, " + std::to_string(indexes) +
            " layer indexes. Cache: " + std::to_string(stats.chunk_bytes) + " bytes in " +
            std::to_string(stats.chunk_count) + " chunks." + disk;
  return Ok();
}

int RunPrune(const PruneArgs& a) {
  std::string report;
  Status st = Prune(a, &report);
  if (!st) return ReportError("prune", st.error().message());
  std::printf("%s\n", report.c_str());
  return 0;
}

}  // namespace

void RegisterPrune(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<PruneArgs>();
  CLI::App* sub = app.add_subcommand(
      "prune", "Free cached data no local image references; trim the cache to a size");
  sub->add_option("--cache", args->cache, "Host store directory (env HOIST_CACHE)");
  sub->add_flag("--all", args->all,
                "Also evict every chunk and unused layer indexes (all of it is fetched again)");
  sub->add_option("--keep-bytes", args->keep_bytes,
                  "Then evict LRU chunks down to this many bytes (k/m/g suffixes)");
  sub->callback([args, run] { *run = [args] { return RunPrune(*args); }; });
}

}  // namespace hoist
