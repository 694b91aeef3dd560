#include "fusefs/trace_prefetch.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "base/file_util.h"
#include "base/log.h"
#include "fetcher/referrers.h"
#include "fetcher/request_log.h"

namespace hoist {
namespace {

Status CheckTraceImage(const AccessTrace& trace, const Digest& manifest) {
  if (trace.image != manifest)
    return Fail(EBADMSG, "the trace is for image " + trace.image.str() + ", not " + manifest.str());
  return Ok();
}

}  // namespace

Result<std::optional<FoundTrace>> FindPublishedTrace(RegistryClient& client, const Reference& repo,
                                                     const Digest& manifest) {
  HOIST_ASSIGN_OR_RETURN(std::vector<Descriptor> listed,
                         ListReferrers(client, repo, manifest, kAccessTraceArtifactType));
  SortReferrersNewestFirst(&listed);
  for (size_t i = 0; i < listed.size() && i < kMaxTraceCandidates; ++i) {
    const Descriptor& d = listed[i];
    auto fetched = FetchReferrer(client, repo, manifest, d, kAccessTraceArtifactType,
                                 kAccessTraceMediaType, kMaxTraceBytes);
    Result<AccessTrace> trace =
        fetched ? ParseAccessTrace(fetched->data) : Result<AccessTrace>(Fail(fetched.error()));
    if (trace) {
      if (Status ok = CheckTraceImage(*trace, manifest); !ok) trace = Fail(ok.error());
    }
    if (!trace) {
      HOIST_LOG(kWarning) << "access trace " << d.digest.str()
                          << " refused: " << trace.error().message();
      continue;
    }
    return std::optional<FoundTrace>(FoundTrace{d.digest, std::move(*trace)});
  }
  return std::optional<FoundTrace>();
}

Result<AccessTrace> ReadTraceFile(const std::string& path, const Digest& manifest) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Fail(errno, "trace file " + path);
  if (!S_ISREG(st.st_mode)) return Fail(EINVAL, "trace file " + path + " is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > kMaxTraceBytes)
    return Fail(EFBIG, "trace file " + path + " is larger than " + std::to_string(kMaxTraceBytes) +
                           " bytes");
  HOIST_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  auto trace = ParseAccessTrace(bytes);
  if (!trace) return Fail(trace.error().Context("trace file " + path));
  if (Status ok = CheckTraceImage(*trace, manifest); !ok)
    return Fail(ok.error().Context("trace file " + path));
  return trace;
}

std::vector<FileRef> TracedFiles(const AccessTrace& trace,
                                 const std::vector<std::shared_ptr<const LayerIndex>>& layers,
                                 size_t* missing) {
  // Path maps are built only for the layers the trace names.
  std::unordered_map<Digest, size_t, DigestHash> layer_pos;
  for (size_t i = layers.size(); i-- > 0;) layer_pos[layers[i]->layer_digest] = i;
  std::unordered_map<size_t, std::unordered_map<std::string_view, const Entry*>> paths;
  std::vector<FileRef> out;
  size_t skipped = 0;
  for (const TracedFile& f : trace.files) {
    auto l = layer_pos.find(f.layer);
    if (l == layer_pos.end()) {
      ++skipped;
      continue;
    }
    auto [map, fresh] = paths.try_emplace(l->second);
    if (fresh) {
      for (const Entry& e : layers[l->second]->entries) {
        if (e.type == EntryType::kRegular) map->second.emplace(e.path, &e);
      }
    }
    auto e = map->second.find(f.path);
    if (e == map->second.end()) {
      ++skipped;
      continue;
    }
    out.push_back(FileRef{static_cast<uint32_t>(l->second), layers[l->second].get(), e->second});
  }
  if (missing != nullptr) *missing = skipped;
  return out;
}

TracePrefetch::TracePrefetch(RegistryClient* client, Reference repo, Digest manifest,
                             std::string file)
    : client_(client),
      repo_(std::move(repo)),
      manifest_(std::move(manifest)),
      file_(std::move(file)),
      thread_([this] { Run(); }) {}

TracePrefetch::~TracePrefetch() { Stop(); }

void TracePrefetch::Begin(Prefetcher* prefetcher,
                          const std::vector<std::shared_ptr<const LayerIndex>>* layers) {
  MutexLock lock(mu_);
  prefetcher_ = prefetcher;
  layers_ = layers;
  cv_.NotifyAll();
}

void TracePrefetch::Stop() {
  {
    MutexLock lock(mu_);
    stop_ = true;
    cv_.NotifyAll();
  }
  if (thread_.joinable()) thread_.join();
}

void TracePrefetch::Run() {
  // Overlaps the mount's own requests, which the mount counts; these are not its round trips.
  UnrecordedRequests unrecorded;
  const auto t0 = std::chrono::steady_clock::now();
  std::optional<FoundTrace> found;
  if (!file_.empty()) {
    auto trace = ReadTraceFile(file_, manifest_);
    if (!trace) {
      HOIST_LOG(kWarning) << "access trace not used: " << trace.error().message();
      return;
    }
    found = FoundTrace{Digest(), std::move(*trace)};
  } else {
    auto published = FindPublishedTrace(*client_, repo_, manifest_);
    if (!published) {
      HOIST_LOG(kInfo) << "no trace to prefetch: " << published.error().message();
      return;
    }
    if (!*published) {
      HOIST_LOG(kInfo) << "no trace to prefetch for " << manifest_.str();
      return;
    }
    found = std::move(**published);
  }
  Prefetcher* prefetcher = nullptr;
  const std::vector<std::shared_ptr<const LayerIndex>>* layers = nullptr;
  {
    MutexLock lock(mu_);
    while (!stop_ && prefetcher_ == nullptr) cv_.Wait(mu_);
    if (stop_) return;
    prefetcher = prefetcher_;
    layers = layers_;
  }
  size_t missing = 0;
  std::vector<FileRef> files = TracedFiles(found->trace, *layers, &missing);
  const uint64_t failed = prefetcher->FetchFiles(files);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  HOIST_LOG(kInfo) << "access trace " << (file_.empty() ? found->artifact.str() : file_) << ": "
                   << files.size() << " files local in " << ms << " ms since mount start"
                   << (missing > 0 ? ", " + std::to_string(missing) + " not in the image" : "")
                   << (failed > 0 ? ", " + std::to_string(failed) + " requests failed" : "");
}

}  // namespace hoist
