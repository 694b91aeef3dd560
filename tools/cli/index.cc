// hoist index [--platform P] [--insecure-registry H] [-q] IMAGE: indexes every unconverted
// tar+gzip / tar+zstd layer of IMAGE's platform manifest (each blob streamed and decoded ONCE,
// through the mount's own indexer, IndexTarStream) and publishes the indexes as ONE OCI artifact
// referring to that manifest (artifactType application/vnd.hoist.layer-index.v2, two blobs per
// layer, the table and the windows: index/published_index.h, index/FORMATS.md "Published layer
// indexes"). A mount on any
// host then finds it (fusefs/published_indexes.h) and reads those layers lazily from the first
// byte. zstd:chunked and eStargz layers (lazy through their own TOC), plain tar layers (lazy by
// range) and single-frame zstd blobs (no checkpoint to start a read from) are skipped with a
// note. Prints one line per layer (layer size, index size) and the artifact's digest; -q prints
// only the digest. Exit 0 with nothing published when no layer needs an index.
#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <thread>

#include "base/parallel.h"
#include "fetcher/referrers.h"
#include "fusefs/layer_loader.h"
#include "index/published_index.h"
#include "tools/cli/registry_flags.h"
#include "tools/cli/verb_images.h"
#include "tools/cli/verbs.h"
#include "tools/image/image_transport.h"

namespace hoist {
namespace {

struct IndexArgs {
  RegistryFlags registry;
  std::string image;
  bool quiet = false;
  int threads = 0;
};

// "118.4 MB", "264 bytes".
std::string Mb(uint64_t bytes) {
  if (bytes < 100000) return std::to_string(bytes) + " bytes";
  char b[32];
  std::snprintf(b, sizeof(b), "%.1f MB", static_cast<double>(bytes) / 1e6);
  return b;
}

struct LayerJob {
  size_t position = 0;
  Descriptor layer;
  LayerFormat format = LayerFormat::kTarGzip;
  std::string blob;     // the published table, once indexed ("" : not published)
  std::string windows;  // its windows blob ("" : none)
  std::string note;     // why not, or the size line
};

Status Index(const IndexArgs& a, std::string* out) {
  HOIST_ASSIGN_OR_RETURN(Reference ref, ParseRegistryReference(a.image));
  HOIST_ASSIGN_OR_RETURN(std::unique_ptr<RegistryClient> client, a.registry.MakeClient());
  // The platform manifest, pinned: the indexes, the subject and the mounts name the same one.
  HOIST_ASSIGN_OR_RETURN(PinnedManifest pinned, ResolvePinned(*client, ref));
  const Descriptor& subject = pinned.subject;
  const std::vector<Descriptor>& layers = pinned.resolved.manifest.layers;

  std::vector<LayerJob> jobs;
  std::vector<std::string> skipped;
  uint64_t image_bytes = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    const Descriptor& d = layers[i];
    image_bytes += static_cast<uint64_t>(std::max<int64_t>(d.size, 0));
    const std::string label = LayerLabel(i, layers.size(), d.digest.str());
    if (CheckLazyLayer(d)) {
      skipped.push_back(label + ": zstd:chunked or eStargz, lazy through its own TOC; skipped");
      continue;
    }
    auto format = StreamFormatForMediaType(d.media_type);
    if (!format) {
      skipped.push_back(label + ": " + format.error().message() + "; skipped");
      continue;
    }
    if (*format == LayerFormat::kTar) {
      skipped.push_back(label + ": plain tar, lazy by range without an index; skipped");
      continue;
    }
    if (d.size <= 0) return Fail(EBADMSG, label + ": the manifest gives no size");
    jobs.push_back(LayerJob{i, d, *format, {}, {}});
  }

  // Each blob streamed once, through the indexer the mount uses; layers in parallel.
  std::unique_ptr<BlobSource> source = client->OpenBlobSource(ref);
  const size_t threads = a.threads > 0 ? static_cast<size_t>(a.threads)
                                       : std::max(1u, std::thread::hardware_concurrency());
  LayerLoaderOptions options;
  HOIST_RETURN_IF_ERROR(ParallelFor(jobs.size(), threads, [&](size_t j) -> Status {
    LayerJob& job = jobs[j];
    const std::string label = LayerLabel(job.position, layers.size(), job.layer.digest.str());
    auto index = IndexTarStream(*source, job.layer.digest, static_cast<uint64_t>(job.layer.size),
                                job.format, options);
    if (!index) return Fail(index.error().Context(label));
    if (index->stream_index.empty()) {
      job.note = label + ": no checkpoint to start a read from (one zstd frame?); not published";
      return Ok();
    }
    HOIST_ASSIGN_OR_RETURN(PublishedLayerBlobs published, PublishLayerIndex(*index));
    job.blob = std::move(published.table);
    job.windows = std::move(published.windows);
    const uint64_t both = job.blob.size() + job.windows.size();
    const double share = 100.0 * static_cast<double>(both) / static_cast<double>(job.layer.size);
    char pct[32];
    std::snprintf(pct, sizeof(pct), "%.1f%%", share);
    job.note = label + ": " + Mb(static_cast<uint64_t>(job.layer.size)) + " " +
               (job.format == LayerFormat::kTarGzip ? "gzip" : "zstd") + ", " +
               std::to_string(index->entries.size()) + " entries, index " + Mb(both) + " (" + pct +
               "; table " + Mb(job.blob.size()) + ", windows " + Mb(job.windows.size()) + ")";
    return Ok();
  }));

  std::vector<ReferrerBlob> blobs;
  uint64_t index_bytes = 0;
  size_t published = 0;  // layers
  std::string lines;
  for (const std::string& s : skipped) lines += s + "\n";
  for (LayerJob& job : jobs) {
    lines += job.note + "\n";
    if (job.blob.empty()) continue;
    index_bytes += job.blob.size() + job.windows.size();
    ++published;
    const std::map<std::string, std::string> annotations = {
        {std::string(kLayerIndexLayerAnnotation), job.layer.digest.str()},
        {std::string(kLayerIndexLayerSizeAnnotation), std::to_string(job.layer.size)}};
    blobs.push_back(
        ReferrerBlob{std::string(kLayerIndexBlobMediaType), std::move(job.blob), annotations});
    if (!job.windows.empty()) {
      blobs.push_back(ReferrerBlob{std::string(kLayerIndexWindowsMediaType), std::move(job.windows),
                                   annotations});
    }
  }
  if (blobs.empty()) {
    *out = a.quiet ? "" : lines + "nothing to publish: no layer needs an index\n";
    return Ok();
  }
  HOIST_ASSIGN_OR_RETURN(Descriptor pushed,
                         PushReferrer(*client, ref, subject, kLayerIndexArtifactType, blobs, {}));
  if (a.quiet) {
    *out = pushed.digest.str() + "\n";
    return Ok();
  }
  char pct[32];
  std::snprintf(pct, sizeof(pct), "%.1f%%",
                image_bytes > 0
                    ? 100.0 * static_cast<double>(index_bytes) / static_cast<double>(image_bytes)
                    : 0.0);
  *out = lines + "Published " + std::to_string(published) + " layer index" +
         (published == 1 ? "" : "es") + ", " + Mb(index_bytes) + " (" + pct + " of the image's " +
         Mb(image_bytes) + " compressed), referring to " + ref.WithDigest(subject.digest).String() +
         "\nDigest: " + pushed.digest.str() + "\n";
  return Ok();
}

int RunIndex(const IndexArgs& a) {
  std::string out;
  Status st = Index(a, &out);
  if (!st) return ReportError("index", st.error().message());
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace

void RegisterIndex(CLI::App& app, VerbRunner* run) {
  auto args = std::make_shared<IndexArgs>();
  CLI::App* sub = app.add_subcommand(
      "index",
      "Index an image's gzip/zstd layers and publish the indexes next to it (an OCI referrer), "
      "so mounts read those layers lazily from the first byte");
  args->registry.Add(sub);
  sub->add_flag("-q,--quiet", args->quiet, "Print only the artifact's digest");
  sub->add_option("--threads", args->threads, "Layers indexed at once (default: the CPUs)");
  sub->add_option("IMAGE", args->image, "Image (registry/repo:tag or @digest)")->required();
  sub->callback([args, run] { *run = [args] { return RunIndex(*args); }; });
}

}  // namespace hoist
