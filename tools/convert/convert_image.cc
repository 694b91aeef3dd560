#include "tools/convert/convert_image.h"

#include <unistd.h>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <thread>

#include "base/mutex.h"
#include "base/parallel.h"
#include "index/layer_index.h"
#include "tools/convert/convert_layer.h"
#include "tools/image/image_manifest.h"

namespace hoist {
namespace {

using SteadyClock = std::chrono::steady_clock;

double SecondsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

struct LayerJob {
  Descriptor source;
  Digest diff_id;
  std::string label;  // "layer 1 of 3 (sha256:...)[ of os/arch]" (LayerLabel)
  bool foreign = false;
  LayerProgress progress;
  Descriptor output;
  Digest output_diff_id;  // differs from diff_id when --prefetch-list reordered the layer
  LayerReport report;
};

struct PlannedManifest {
  std::string platform;  // "" unless from an index
  RawManifest raw;
  ImageManifest parsed;
  std::string config;
  std::vector<size_t> jobs;     // per layer, index into the job list
  Digest config_source_digest;  // the source config's (parsed.config may be replaced)
};

// When a layer's diff_id changed (reordered for --prefetch-list), replaces m.config with the
// config whose rootfs.diff_ids are the outputs', and m.parsed.config's digest and size.
Status RewriteConfigForLayers(PlannedManifest& m,
                              const std::vector<std::unique_ptr<LayerJob>>& jobs) {
  m.config_source_digest = m.parsed.config.digest;
  std::vector<Digest> ids;
  bool changed = false;
  for (size_t j : m.jobs) {
    ids.push_back(jobs[j]->output_diff_id);
    changed |= jobs[j]->output_diff_id != jobs[j]->diff_id;
  }
  if (!changed) return Ok();
  auto config = RewriteConfigDiffIds(m.config, ids);
  if (!config) return Fail(config.error().Context("config " + m.parsed.config.digest.str()));
  m.config = std::move(*config);
  m.parsed.config.digest = Digest::Of(m.config);
  m.parsed.config.size = static_cast<int64_t>(m.config.size());
  return Ok();
}

// One-line progress display on stderr, redrawn a few times a second.
class ProgressDisplay {
 public:
  ProgressDisplay(const std::vector<std::unique_ptr<LayerJob>>& jobs) : jobs_(jobs) {
    for (const auto& j : jobs_)
      total_ += static_cast<uint64_t>(std::max<int64_t>(j->source.size, 0));
    thread_ = std::thread([this] { Run(); });
  }
  ~ProgressDisplay() {
    {
      MutexLock lock(mu_);
      stop_ = true;
    }
    cv_.NotifyAll();
    thread_.join();
    Draw();
    std::fputc('\n', stderr);
  }

 private:
  void Run() HOIST_EXCLUDES(mu_) {
    MutexLock lock(mu_);
    while (true) {
      const auto deadline = SteadyClock::now() + std::chrono::milliseconds(200);
      while (!stop_ && cv_.WaitUntil(mu_, deadline)) {
      }
      if (stop_) return;
      Draw();
    }
  }
  void Draw() {
    uint64_t in = 0, out = 0;
    int done = 0;
    for (const auto& j : jobs_) {
      in += j->progress.bytes_in.load(std::memory_order_relaxed);
      out += j->progress.bytes_out.load(std::memory_order_relaxed);
      done += j->progress.done.load() ? 1 : 0;
    }
    std::fprintf(stderr,
                 "\rconverting: %d/%zu layers, %.1f/%.1f MB read, %.1f MB written, %.0f s   ", done,
                 jobs_.size(), in / 1e6, total_ / 1e6, out / 1e6, SecondsSince(start_));
    std::fflush(stderr);
  }

  const std::vector<std::unique_ptr<LayerJob>>& jobs_;
  uint64_t total_ = 0;
  SteadyClock::time_point start_ = SteadyClock::now();
  Mutex mu_;
  CondVar cv_;
  bool stop_ HOIST_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

Status RunJob(ImageSource& source, ImageDestination& destination, LayerJob& job,
              const LayerOptions& layer_options) {
  auto start = SteadyClock::now();
  job.report.source_digest = job.source.digest;
  if (job.foreign) {
    job.output = job.source;
    job.output_diff_id = job.diff_id;
    job.report.action = "foreign";
    job.report.output_digest = job.source.digest;
    job.progress.done = true;
    return Ok();
  }
  HOIST_ASSIGN_OR_RETURN(LayerOutcome out, ConvertLayer(source, job.source, job.diff_id,
                                                        layer_options, &job.progress));
  job.output = out.output;
  job.output_diff_id = out.diff_id;
  job.report.action = out.reused ? "reused" : "converted";
  job.report.source_compression = std::string(CompressionName(out.source_compression));
  job.report.bytes_in = out.bytes_in;
  job.report.tar_bytes = out.tar_bytes;
  job.report.bytes_out = static_cast<uint64_t>(out.output.size);
  job.report.output_digest = out.output.digest;
  struct Unlink {
    std::string path;
    ~Unlink() {
      if (!path.empty()) ::unlink(path.c_str());
    }
  } cleanup{out.spool_path};
  if (out.reused) {
    HOIST_ASSIGN_OR_RETURN(bool present, destination.EnsureBlob(job.source, &source));
    if (!present) {
      HOIST_ASSIGN_OR_RETURN(auto reader, source.OpenBlob(job.source));
      HOIST_RETURN_IF_ERROR(destination.PutBlob(job.source, *reader));
    }
  } else {
    HOIST_ASSIGN_OR_RETURN(bool present, destination.EnsureBlob(out.output, nullptr));
    if (!present) HOIST_RETURN_IF_ERROR(destination.PutBlobFile(out.output, out.spool_path));
  }
  job.report.seconds = SecondsSince(start);
  job.progress.done = true;
  return Ok();
}

Result<PlannedManifest> PlanManifest(ImageSource& source, RawManifest raw, std::string platform) {
  PlannedManifest m;
  m.platform = std::move(platform);
  std::string where = m.platform.empty() ? "" : " (" + m.platform + ")";
  auto parsed = ParseContainerImageManifest(raw.bytes, raw.media_type);
  if (!parsed) return Fail(parsed.error().Context("manifest " + raw.digest.str() + where));
  m.parsed = std::move(*parsed);
  auto config = source.ReadBlob(m.parsed.config);
  if (!config)
    return Fail(config.error().Context("config " + m.parsed.config.digest.str() + where));
  m.config = std::move(*config);
  m.raw = std::move(raw);
  return m;
}

}  // namespace

Result<ConvertReport> ConvertImage(ImageSource& source, ImageDestination& destination,
                                   const ConvertOptions& options) {
  auto start = SteadyClock::now();
  ConvertReport report;
  HOIST_ASSIGN_OR_RETURN(RawManifest top, source.TopManifest());

  // 1. Plan: which manifests, which layers.
  std::vector<PlannedManifest> manifests;
  std::optional<ImageIndex> index;
  std::vector<int> entry_to_manifest;  // index entry -> manifests[] or -1 (dropped)
  if (IsIndexMediaType(top.media_type)) {
    HOIST_ASSIGN_OR_RETURN(index, ParseImageIndex(top.bytes, top.media_type));
    std::optional<Digest> only;
    if (options.platform) {
      HOIST_ASSIGN_OR_RETURN(Descriptor d, SelectPlatform(*index, *options.platform));
      only = d.digest;
    }
    for (const Descriptor& d : index->manifests) {
      bool take = only ? d.digest == *only
                       : !(d.platform &&
                           (d.platform->os == "unknown" || d.platform->architecture == "unknown"));
      if (take && IsIndexMediaType(d.media_type)) {
        return Fail(ENOTSUP, "nested index " + d.digest.str() + " is not supported");
      }
      if (!take) {
        entry_to_manifest.push_back(-1);
        continue;
      }
      HOIST_ASSIGN_OR_RETURN(RawManifest child, source.Manifest(d.digest));
      std::string label = d.platform ? d.platform->String() : d.digest.str();
      HOIST_ASSIGN_OR_RETURN(PlannedManifest m, PlanManifest(source, std::move(child), label));
      entry_to_manifest.push_back(static_cast<int>(manifests.size()));
      manifests.push_back(std::move(m));
      if (only) break;
    }
    if (manifests.empty()) return Fail(ENOENT, "the index names no image manifest to convert");
    if (only) index.reset();  // one platform: the output is its manifest alone
  } else {
    HOIST_ASSIGN_OR_RETURN(PlannedManifest m, PlanManifest(source, std::move(top), ""));
    manifests.push_back(std::move(m));
  }

  std::vector<std::unique_ptr<LayerJob>> jobs;
  std::map<Digest, size_t> job_by_digest;
  for (auto& m : manifests) {
    HOIST_ASSIGN_OR_RETURN(ImageConfig config, ParseImageConfig(m.config));
    if (config.diff_ids.size() != m.parsed.layers.size()) {
      return Fail(EINVAL, "config " + m.parsed.config.digest.str() + " lists " +
                              std::to_string(config.diff_ids.size()) + " diff_ids for " +
                              std::to_string(m.parsed.layers.size()) + " layers");
    }
    for (size_t i = 0; i < m.parsed.layers.size(); ++i) {
      const Descriptor& layer = m.parsed.layers[i];
      auto [it, inserted] = job_by_digest.emplace(layer.digest, jobs.size());
      if (inserted) {
        auto job = std::make_unique<LayerJob>();
        job->source = layer;
        job->diff_id = config.diff_ids[i];
        job->foreign = layer.media_type == kMediaTypeDockerForeignLayerGzip || !layer.urls.empty();
        job->label = LayerLabel(i, m.parsed.layers.size(), layer.digest.str()) +
                     (m.platform.empty() ? "" : " of " + m.platform);
        job->report.platform = m.platform;
        job->report.index = static_cast<int>(i);
        jobs.push_back(std::move(job));
      }
      m.jobs.push_back(it->second);
    }
  }

  // 2. Convert and upload the layers, in parallel.
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int threads = options.threads > 0 ? options.threads : cores;
  LayerOptions layer_options;
  layer_options.compression_level = options.compression_level;
  layer_options.threads = threads;
  layer_options.prefetch = options.prefetch;
  layer_options.work_dir = options.work_dir;
  size_t workers = std::min<size_t>(jobs.size(), static_cast<size_t>(std::max(2, threads)));
  Status jobs_done;
  {
    std::optional<ProgressDisplay> display;
    if (options.progress) display.emplace(jobs);
    jobs_done = ParallelFor(jobs.size(), workers, [&](size_t i) -> Status {
      LayerJob& job = *jobs[i];
      Status st = RunJob(source, destination, job, layer_options);
      if (!st) return Fail(st.error().Context(job.label));
      return Ok();
    });
  }
  auto abort = [&](Error e) -> Result<ConvertReport> {
    destination.Abort();
    return Fail(std::move(e));
  };
  if (!jobs_done) return abort(jobs_done.error());

  // 3. Configs (unchanged bytes unless a reordered layer changed a diff_id), then manifests,
  // the top-level one last.
  std::vector<RawManifest> written;
  for (auto& m : manifests) {
    const Descriptor* new_config = nullptr;
    if (auto st = RewriteConfigForLayers(m, jobs); !st) return abort(st.error());
    if (m.parsed.config.digest != m.config_source_digest) new_config = &m.parsed.config;
    auto present = destination.EnsureBlob(m.parsed.config, new_config ? nullptr : &source);
    if (!present) return abort(present.error().Context("config " + m.parsed.config.digest.str()));
    if (!*present) {
      StringReader reader(m.config);
      if (auto st = destination.PutBlob(m.parsed.config, reader); !st) {
        return abort(st.error().Context("config " + m.parsed.config.digest.str()));
      }
    }
    std::vector<Descriptor> layers;
    for (size_t j : m.jobs) layers.push_back(jobs[j]->output);
    auto bytes = RewriteManifest(m.raw.bytes, layers, new_config);
    if (!bytes) return abort(bytes.error());
    Digest digest = Digest::Of(*bytes);
    written.push_back(RawManifest{std::move(*bytes), std::string(kMediaTypeOciManifest), digest});
  }
  RawManifest final_top;
  if (index) {
    for (const auto& w : written) {
      if (auto st = destination.PutManifest(w, /*top_level=*/false); !st) return abort(st.error());
    }
    std::vector<std::optional<Descriptor>> replacements;
    for (int k : entry_to_manifest) {
      if (k < 0) {
        replacements.push_back(std::nullopt);
        continue;
      }
      Descriptor d;
      d.media_type = written[k].media_type;
      d.digest = written[k].digest;
      d.size = static_cast<int64_t>(written[k].bytes.size());
      replacements.push_back(std::move(d));
    }
    auto bytes = RewriteIndex(top.bytes, replacements);
    if (!bytes) return abort(bytes.error());
    Digest digest = Digest::Of(*bytes);
    final_top = RawManifest{std::move(*bytes), std::string(kMediaTypeOciIndex), digest};
  } else {
    final_top = std::move(written.front());
  }
  if (auto st = destination.PutManifest(final_top, /*top_level=*/true); !st)
    return abort(st.error());
  if (auto st = destination.Commit(); !st) return abort(st.error());

  report.manifest_digest = final_top.digest;
  report.media_type = final_top.media_type;
  for (auto& m : manifests) {
    for (size_t j : m.jobs) {
      LayerReport r = jobs[j]->report;
      r.platform = m.platform;
      report.layers.push_back(std::move(r));
    }
  }
  report.seconds = SecondsSince(start);
  return report;
}

std::string ConvertReportJson(const ConvertReport& report) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("digest");
  w.String(report.manifest_digest.str().c_str());
  w.Key("mediaType");
  w.String(report.media_type.c_str());
  w.Key("seconds");
  w.Double(report.seconds);
  uint64_t in = 0, out = 0;
  w.Key("layers");
  w.StartArray();
  for (const auto& l : report.layers) {
    in += l.bytes_in;
    out += l.bytes_out;
    w.StartObject();
    if (!l.platform.empty()) {
      w.Key("platform");
      w.String(l.platform.c_str());
    }
    w.Key("index");
    w.Int(l.index);
    w.Key("action");
    w.String(l.action.c_str());
    w.Key("source");
    w.String(l.source_digest.str().c_str());
    w.Key("digest");
    w.String(l.output_digest.str().c_str());
    if (!l.source_compression.empty()) {
      w.Key("sourceCompression");
      w.String(l.source_compression.c_str());
    }
    w.Key("bytesIn");
    w.Uint64(l.bytes_in);
    w.Key("bytesOut");
    w.Uint64(l.bytes_out);
    w.Key("tarBytes");
    w.Uint64(l.tar_bytes);
    w.Key("seconds");
    w.Double(l.seconds);
    w.EndObject();
  }
  w.EndArray();
  w.Key("bytesIn");
  w.Uint64(in);
  w.Key("bytesOut");
  w.Uint64(out);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace hoist
