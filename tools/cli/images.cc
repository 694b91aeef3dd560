// hoist images [--json]: the local images (reference, manifest digest, size, the share of the
// image that is local, last use). hoist rm IMAGE...: removes references (all or none).
//
// Size: config + layer blob sizes from the manifest. Cached share: per layer, the share of its
// cacheable chunks (uncompressed bytes) present in the chunk cache, or 1 when the layer is a
// local blob file; weighted by layer blob size. An image with a share under 1 is "partial" (an
// image a mount recorded, fusefs/local_image.h, or a pulled one whose chunks were evicted): an
// offline mount of it fails reads of what is missing. The share shown is rounded down, so a
// partial image never shows 100.0%. Last use: the latest access of any of the
// image's chunks or blob files (chunk access times are flushed lazily, so this is approximate).
#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <set>

#include "base/rfc3339.h"
#include "tools/cli/json_out.h"
#include "tools/cli/verbs.h"
#include "tools/image/local_store.h"

namespace hoist {
namespace {

struct ImagesArgs {
  std::string cache;
  bool json = false;
};

struct ImageRow {
  LocalImage image;
  uint64_t size = 0;
  double cached = 0;      // 0..1
  int64_t last_used = 0;  // unix seconds, 0 = never
};

std::string FormatTime(int64_t t) {
  if (t <= 0) return "never";
  return FormatRfc3339(t);
}

Result<std::vector<ImageRow>> Rows(LocalStore& local) {
  HOIST_ASSIGN_OR_RETURN(std::vector<LocalImage> images, local.List());
  HOIST_ASSIGN_OR_RETURN(std::vector<ChunkInfo> chunks, local.store().chunks().List());
  std::map<Digest, int64_t> atime;
  for (const ChunkInfo& c : chunks) atime[c.digest] = c.atime_sec;
  std::vector<ImageRow> rows;
  for (LocalImage& img : images) {
    ImageRow row;
    row.size = static_cast<uint64_t>(std::max<int64_t>(0, img.manifest.config.size));
    double weighted = 0, weight = 0;
    for (const Descriptor& l : img.manifest.layers) {
      const double w = static_cast<double>(std::max<int64_t>(1, l.size));
      row.size += static_cast<uint64_t>(std::max<int64_t>(0, l.size));
      weight += w;
      struct stat st {};
      if (::stat(local.BlobFilePath(l.digest).c_str(), &st) == 0) {
        weighted += w;
        row.last_used = std::max<int64_t>(row.last_used, std::max(st.st_atime, st.st_mtime));
        continue;
      }
      HOIST_ASSIGN_OR_RETURN(std::optional<LayerIndex> li, local.store().GetLayerIndex(l.digest));
      if (!li) continue;
      uint64_t total = 0, present = 0;
      for (const Chunk& c : DistinctCachedChunks(*li)) {
        total += c.size;
        auto it = atime.find(c.digest);
        if (it != atime.end()) {
          present += c.size;
          row.last_used = std::max(row.last_used, it->second);
        }
      }
      weighted += total == 0 ? (LayerNeedsBlobFile(*li) ? 0 : w)
                             : w * static_cast<double>(present) / static_cast<double>(total);
    }
    row.cached = weight == 0 ? 1 : weighted / weight;
    row.image = std::move(img);
    rows.push_back(std::move(row));
  }
  return rows;
}

int RunImages(const ImagesArgs& a) {
  auto local = LocalStore::Open(a.cache);
  if (!local) return ReportError("images", local.error().message());
  auto rows = Rows(**local);
  if (!rows) return ReportError("images", rows.error().message());
  std::string out;
  if (a.json) {
    JsonOut j;
    auto& w = j.w();
    w.StartArray();
    for (const ImageRow& r : *rows) {
      w.StartObject();
      j.KeyString("Name", r.image.name);
      j.KeyString("Repository", r.image.reference.Name());
      j.KeyString("Tag", r.image.reference.tag);
      j.KeyString("Digest", r.image.manifest_digest.str());
      j.Key("Size");
      w.Uint64(r.size);
      j.Key("CachedShare");
      w.Double(r.cached);
      j.Key("Partial");
      w.Bool(r.cached < 1);
      j.Key("LastUsed");
      if (r.last_used > 0) {
        j.String(FormatTime(r.last_used));
      } else {
        w.Null();
      }
      w.EndObject();
    }
    w.EndArray();
    out = j.Finish();
  } else {
    char line[1024];
    std::snprintf(line, sizeof(line), "%-48s %-16s %-19s %10s %-14s  %s\n", "REPOSITORY", "TAG",
                  "DIGEST", "SIZE", "CACHED", "LAST USED");
    out += line;
    for (const ImageRow& r : *rows) {
      std::string tag = r.image.reference.tag.empty() ? "<none>" : r.image.reference.tag;
      std::string digest = r.image.manifest_digest.str().substr(0, 19);
      char cached[32];
      std::snprintf(cached, sizeof(cached), "%.1f%%%s", std::floor(r.cached * 1000) / 10,
                    r.cached < 1 ? " partial" : "");
      std::snprintf(line, sizeof(line), "%-48s %-16s %-19s %10s %-14s  %s\n",
                    r.image.reference.Name().c_str(), tag.c_str(), digest.c_str(),
                    HumanSize(r.size).c_str(), cached, FormatTime(r.last_used).c_str());
      out += line;
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

struct RmArgs {
  std::string cache;
  std::vector<std::string> images;
};

int RunRm(const RmArgs& a) {
  auto local = LocalStore::Open(a.cache);
  if (!local) return ReportError("rm", local.error().message());
  // Check every name first: either all are removed or none.
  std::vector<std::string> names;
  for (const std::string& text : a.images) {
    auto name = LocalStore::NormalizeName(text);
    if (!name) return ReportError("rm", name.error().message());
    auto digest = (*local)->store().GetRef(*name);
    // A corrupt record (EIO) is still a reference, and removing it is the way out.
    if (!digest && digest.error().code() != EIO) {
      return ReportError("rm", digest.error().message());
    }
    if (digest && !*digest) return ReportError("rm", "no such local image: " + *name);
    names.push_back(*name);
  }
  for (const std::string& name : names) {
    auto removed = (*local)->store().DeleteRef(name);
    if (!removed) return ReportError("rm", removed.error().message());
    std::printf("Untagged: %s\n", name.c_str());
  }
  return 0;
}

}  // namespace

void RegisterImages(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<ImagesArgs>();
  CLI::App* sub = app.add_subcommand("images", "List local images");
  sub->add_option("--cache", args->cache, "Host store directory (env HOIST_CACHE)");
  sub->add_flag("--json", args->json, "JSON output");
  sub->callback([args, run] { *run = [args] { return RunImages(*args); }; });
}

void RegisterRm(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<RmArgs>();
  CLI::App* sub =
      app.add_subcommand("rm", "Remove local image references (`hoist prune` frees the data)");
  sub->add_option("--cache", args->cache, "Host store directory (env HOIST_CACHE)");
  sub->add_option("IMAGE", args->images, "Local image references")->required();
  sub->callback([args, run] { *run = [args] { return RunRm(*args); }; });
}

}  // namespace hoist
