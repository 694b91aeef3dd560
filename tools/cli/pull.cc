// hoist pull IMAGE: fetches every chunk of the image into the host cache and records the image
// in the local store, so hoistfs can mount it with no registry (--offline, or automatically).
//
// Every blob is fetched at most once, and not at all when the store already has it:
//   - unconverted layers (tar, tar+gzip, tar+zstd without a TOC), whose index can only be built
//     by reading the whole blob: the blob is fetched first, whole and verified (one GET), as a
//     local blob file (fusefs/local_image.h), and indexed from that file. A tar+gzip / tar+zstd
//     layer keeps the file (the mount's StreamLayer reads it instead of the registry); a plain
//     tar layer's file only feeds its index and chunks and is deleted once they are cached. A
//     layer whose blob file is already there (a re-run pull) is not fetched; neither is a plain
//     tar layer whose index is stored (its missing chunks are fetched by range below);
//   - layers whose chunks are verified on their own (zstd:chunked, eStargz, plain tar): the TOC
//     (or the index from the store), then every missing chunk with ChunkReader::FetchForPrefetch
//     (coalesced range requests, sha256-checked, cached).
// Then the layers go through the merge rules exactly as a mount applies them (MergedView::Build):
// an image the mount would refuse is refused here, same message, before any chunk is fetched
// (the whole blobs above are fetched first: an unconverted layer cannot be checked without them,
// and a failed pull deletes the blob files it added).
// Then every chunk is checked to be in the cache (a quota or a disk too small for the image is
// ENOSPC, with no reference written), and the config, manifest and the reference are stored,
// the reference last.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <set>
#include <thread>

#include "base/cleanup_on_signal.h"
#include "base/mutex.h"
#include "base/parallel.h"
#include "fusefs/chunk_reader.h"
#include "fusefs/layer_loader.h"
#include "fusefs/local_image.h"
#include "fusefs/merged_view.h"
#include "fusefs/mount_stats.h"
#include "index/layer_index.h"
#include "tools/cli/progress.h"
#include "tools/cli/registry_flags.h"
#include "tools/cli/verbs.h"
#include "tools/image/image_impl.h"
#include "tools/image/local_store.h"

namespace hoist {
namespace {

struct PullArgs {
  RegistryFlags registry;
  std::string image;
  std::string cache;
  bool quiet = false;
  bool json = false;
  int jobs = 4;
};

// Whether `layer` is unconverted (tar, tar+gzip or tar+zstd without a TOC): indexing it reads
// its whole blob. Lying annotations and unknown media types are not: LoadLayers reports them.
bool WholeBlobLayer(const Descriptor& layer, LayerFormat* format) {
  Status lazy = CheckLazyLayer(layer);
  if (lazy || lazy.error().code() != ENOTSUP) return false;
  auto f = StreamFormatForMediaType(layer.media_type);
  if (!f) return false;
  *format = *f;
  return true;
}

Status Pull(const PullArgs& a, std::string* summary, std::vector<std::string>* created) {
  HOIST_RETURN_IF_ERROR(InstallSignalCleanup());
  HOIST_ASSIGN_OR_RETURN(Reference ref, ParseRegistryReference(a.image));
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<RegistryClient> client, a.registry.MakeClient());
  HOIST_ASSIGN_OR_RETURN(ResolvedImage img, client->Resolve(ref, std::nullopt, ConfigFetch::kSkip));
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<LocalStore> local, LocalStore::Open(a.cache));
  Store& store = local->store();
  // The config: kept by an earlier pull (the store checks its digest), else fetched (checked by
  // the client against its digest).
  {
    const Descriptor& config = img.manifest.config;
    HOIST_ASSIGN_OR_RETURN(std::optional<std::string> kept, store.GetBlob(config.digest));
    std::string bytes;
    if (kept) {
      bytes = std::move(*kept);
    } else {
      HOIST_ASSIGN_OR_RETURN(
          bytes, client->GetBlob(ref, config.digest, client->options().max_manifest_size));
    }
    if (config.size >= 0 && bytes.size() != static_cast<uint64_t>(config.size)) {
      return Fail(EIO, "config " + config.digest.str() + " is " + std::to_string(bytes.size()) +
                           " bytes, the manifest says " + std::to_string(config.size));
    }
    HOIST_ASSIGN_OR_RETURN(img.config, ParseImageConfig(bytes));
  }
  const std::vector<Descriptor>& descriptors = img.manifest.layers;
  auto label = [&](size_t i) {
    return LayerLabel(i, descriptors.size(), descriptors[i].digest.str());
  };

  // Unconverted layers: their whole blobs, once, before they are indexed (see the file comment).
  std::vector<size_t> whole;        // layers whose blob is fetched whole now
  std::vector<std::string> spools;  // plain tar blob files, deleted once their chunks are cached
  for (size_t i = 0; i < descriptors.size(); ++i) {
    const Descriptor& d = descriptors[i];
    LayerFormat format;
    if (!WholeBlobLayer(d, &format) || local->HasBlobFile(d)) continue;
    if (format == LayerFormat::kTar) {
      HOIST_ASSIGN_OR_RETURN(bool indexed, store.HasLayerIndex(d.digest));
      if (indexed) continue;  // its missing chunks are fetched by range
      spools.push_back(local->BlobFilePath(d.digest));
    }
    whole.push_back(i);
  }
  // One line per layer: those fetched whole now, and (below) those with missing chunks.
  ProgressDisplay progress(ChooseProgressMode(a.quiet, a.json));
  std::map<Digest, int> items;
  for (size_t i : whole) {
    items[descriptors[i].digest] =
        progress.Add(descriptors[i].digest.str(),
                     static_cast<uint64_t>(std::max<int64_t>(descriptors[i].size, 0)));
  }
  auto item_of = [&](const Descriptor& d) {
    auto [it, added] = items.try_emplace(d.digest, 0);
    if (added) it->second = progress.Add(d.digest.str(), 0);
    return it->second;
  };
  auto fetch_whole = [&](const std::vector<size_t>& layers) -> Status {
    if (layers.empty()) return Ok();
    HOIST_ASSIGN_OR_RETURN(RegistryOptions options, a.registry.Options());
    HOIST_ASSIGN_OR_RETURN(
        std::unique_ptr<ImageSource> docker,
        NewDockerSource(ref.WithDigest(img.manifest_bytes.digest).String(), std::move(options)));
    Mutex mu;
    return ParallelFor(layers.size(), static_cast<size_t>(std::max(1, a.jobs)),
                       [&](size_t k) -> Status {
                         const Descriptor& d = descriptors[layers[k]];
                         auto r = docker->OpenBlob(d);
                         if (!r) return Fail(r.error().Context(label(layers[k])));
                         const int item = items.at(d.digest);
                         ProgressReader counting(std::move(*r), &progress, item);
                         auto wrote = local->WriteBlobFile(d, counting);
                         if (!wrote) return Fail(wrote.error().Context(label(layers[k])));
                         progress.Done(item);
                         if (*wrote) {
                           MutexLock lock(mu);
                           created->push_back(local->BlobFilePath(d.digest));
                         }
                         return Ok();
                       });
  };
  HOIST_RETURN_IF_ERROR(fetch_whole(whole));

  // Indexes: from the store, the TOCs, or the local blob files just written (no network).
  std::unique_ptr<BlobSource> source =
      std::make_unique<LocalBlobSource>(local->cache_dir(), client->OpenBlobSource(ref));
  HOIST_ASSIGN_OR_RETURN(LoadedLayers layers, LoadLayers(*source, &store, descriptors));
  // The merge rules, exactly as a mount applies them: an image that would not mount is refused
  // before any chunk is fetched, with the mount's message.
  HOIST_RETURN_IF_ERROR(MergedView::Build(layers.layers));

  // What is missing.
  struct Work {
    Digest blob;
    std::vector<Chunk> chunks;  // one coalesced group
  };
  std::vector<Work> groups;
  std::vector<size_t> file_layers;
  std::vector<Chunk> all_chunks;
  std::map<int, uint64_t> pending;  // progress item -> chunk bytes still to fetch
  for (size_t i = 0; i < layers.layers.size(); ++i) {
    const LayerIndex& li = *layers.layers[i];
    if (LayerNeedsBlobFile(li)) {
      // A layer served from its whole blob that is not an unconverted one by its descriptor
      // (none is known; kept so such a layer is still pulled, once).
      if (!local->HasBlobFile(descriptors[i])) {
        file_layers.push_back(i);
        progress.AddTotal(item_of(descriptors[i]),
                          static_cast<uint64_t>(std::max<int64_t>(descriptors[i].size, 0)));
      }
      continue;
    }
    std::vector<Chunk> missing;
    uint64_t layer_missing = 0;
    for (const Chunk& c : DistinctCachedChunks(li)) {
      all_chunks.push_back(c);
      HOIST_ASSIGN_OR_RETURN(bool have, store.chunks().Contains(c.digest));
      if (!have) {
        missing.push_back(c);
        layer_missing += c.blob_length;
      }
    }
    if (layer_missing > 0) {
      const int item = item_of(descriptors[i]);
      progress.AddTotal(item, layer_missing);
      pending[item] += layer_missing;
    }
    for (auto& g : CoalesceChunks(std::move(missing), 16 << 10, 4 << 20)) {
      groups.push_back(Work{li.layer_digest, std::move(g)});
    }
  }
  HOIST_RETURN_IF_ERROR(fetch_whole(file_layers));
  // Chunks, `jobs` groups at a time (a plain tar layer's from its blob file, if it was fetched
  // whole above).
  {
    MountStats stats;
    ChunkReaderOptions ro;
    ro.timeout = std::chrono::minutes(10);
    ChunkReader reader(source.get(), &store.chunks(), &stats, ro, nullptr);
    Mutex pending_mu;
    HOIST_RETURN_IF_ERROR(ParallelFor(
        groups.size(), static_cast<size_t>(std::max(1, a.jobs)), [&](size_t k) -> Status {
          HOIST_RETURN_IF_ERROR(reader.FetchForPrefetch(groups[k].blob, groups[k].chunks));
          uint64_t n = 0;
          for (const Chunk& c : groups[k].chunks) n += c.blob_length;
          const int item = items.at(groups[k].blob);
          progress.Advance(item, n);
          MutexLock lock(pending_mu);
          if ((pending[item] -= n) == 0) progress.Done(item);
          return Ok();
        }));
  }
  progress.Finish();
  HOIST_RETURN_IF_ERROR(store.chunks().Flush());
  // Everything must really be there: a quota or a disk too small drops or evicts chunks.
  uint64_t absent = 0;
  for (const Chunk& c : all_chunks) {
    HOIST_ASSIGN_OR_RETURN(bool have, store.chunks().Contains(c.digest));
    if (!have) ++absent;
  }
  if (absent > 0) {
    return Fail(ENOSPC, std::to_string(absent) + " of " + std::to_string(all_chunks.size()) +
                            " chunks could not be kept in the cache " + local->cache_dir() +
                            " (cache quota or disk too small for the image)");
  }
  // Plain tar layers live as chunks: their blob files have done their work.
  for (const std::string& path : spools) {
    ::unlink(path.c_str());
    std::erase(*created, path);
  }
  HOIST_RETURN_IF_ERROR(local->PutImage(img.manifest_bytes.bytes, img.config.raw, {ref.String()}));
  *summary = ref.String() + " " + img.manifest_bytes.digest.str() + "\n";
  return Ok();
}

int RunPull(const PullArgs& a) {
  std::string summary;
  std::vector<std::string> created;
  Status st = Pull(a, &summary, &created);
  if (!st) {
    // Blob files this pull added go again: the store is as before (chunks are only cache).
    for (const std::string& path : created) ::unlink(path.c_str());
    return ReportError("pull", st.error().message());
  }
  if (a.json) {
    const size_t space = summary.find(' ');
    std::printf("{\"event\":\"pulled\",\"image\":\"%s\",\"digest\":\"%s\"}\n",
                summary.substr(0, space).c_str(),
                summary.substr(space + 1, summary.size() - space - 2).c_str());
  } else if (!a.quiet) {
    std::fputs(("Pulled " + summary).c_str(), stdout);
  }
  return 0;
}

}  // namespace

void RegisterPull(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<PullArgs>();
  CLI::App* sub = app.add_subcommand(
      "pull", "Fetch every chunk of an image into the local cache, for mounting offline");
  args->registry.Add(sub);
  sub->add_option("IMAGE", args->image, "Image reference (registry/repo:tag or @digest)")
      ->required();
  sub->add_option("--cache", args->cache, "Host store directory (env HOIST_CACHE)");
  sub->add_option("-j,--jobs", args->jobs, "Range requests in flight (default 4)");
  sub->add_flag("-q,--quiet", args->quiet, "No progress and no summary");
  sub->add_flag("--json", args->json,
                "Progress and the result as JSON lines on stdout (start/progress/done/pulled)");
  sub->callback([args, run] { *run = [args] { return RunPull(*args); }; });
}

}  // namespace hoist
