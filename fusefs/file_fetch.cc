#include "fusefs/file_fetch.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <utility>

#include "base/log.h"

namespace hoist {

bool AddMissingChunks(const ChunkReader& reader, const FileRef& file, uint64_t max_file_bytes,
                      MissingChunks* out) {
  const Entry& entry = *file.entry;
  if (entry.size > max_file_bytes) return false;
  bool any = false;
  for (const Chunk& c : entry.chunks) {
    if (c.encoding == ChunkEncoding::kZeros || NeedsStreamFetch(c) || c.digest.empty()) continue;
    auto present = reader.cache()->Contains(c.digest);
    if (present && *present) continue;
    out->by_layer[file.index->layer_digest].push_back(c);
    out->bytes += c.blob_length;
    any = true;
  }
  if (any) ++out->files;
  return true;
}

uint64_t SubmitMissingChunks(ChunkReader* reader, FetchPool* pool, MissingChunks missing,
                             uint64_t max_request_bytes, const std::string& prefix,
                             const std::string& what) {
  std::vector<std::pair<Digest, std::vector<Chunk>>> groups;
  uint64_t bytes = 0;
  for (auto& [blob, chunks] : missing.by_layer) {
    for (auto& g : CoalesceChunks(std::move(chunks), reader->options().max_coalesce_gap,
                                  std::max<uint64_t>(max_request_bytes, 1))) {
      for (const Chunk& c : g) bytes += c.blob_length;
      groups.emplace_back(blob, std::move(g));
    }
  }
  if (groups.empty()) return 0;
  HOIST_LOG(kDebug) << prefix << "fetching " << what << " (" << bytes << " bytes in "
                    << groups.size() << " requests)";
  struct Progress {
    std::string label;
    std::atomic<size_t> left;
    std::atomic<bool> failed{false};
  };
  auto progress = std::make_shared<Progress>();
  progress->label = prefix + what;
  progress->left = groups.size();
  auto done = [progress](bool ok) {
    if (!ok) progress->failed = true;
    if (progress->left.fetch_sub(1) == 1 && !progress->failed) {
      HOIST_LOG(kDebug) << progress->label << " is local";
    }
  };
  const uint64_t requests = groups.size();
  for (auto& [blob, g] : groups) {
    auto group = std::make_shared<std::vector<Chunk>>(std::move(g));
    pool->Submit(
        [reader, blob, group, done, prefix] {
          Status s = reader->FetchForPrefetch(blob, *group);
          if (!s) {
            HOIST_LOG(kDebug) << prefix << s.error().message();
          }
          done(s.has_value());
        },
        [done] { done(false); });
  }
  return requests;
}

}  // namespace hoist
