// File fetch: the shared last step of the heuristic prefetches (ELF, directory). It collects the
// chunks of whole files that are not in the cache, coalesces them per layer (CoalesceChunks: the
// files of one directory usually sit next to each other in the blob, so many small files become
// a few range requests) and hands one request per group to a FetchPool, whose threads call
// ChunkReader::FetchForPrefetch. So a prefetch never fetches on a FUSE thread, never queues on
// the on-demand pool, and shares single-flight with on-demand reads of the same chunks.
//
// Skipped: files larger than `max_file_bytes`, kZeros chunks, chunks without a digest and
// chunks only a layer's full fetch serves (NeedsStreamFetch).
// Log: debug "PREFIXfetching WHAT (B bytes in R requests)" when submitted, and "PREFIXWHAT is
// local" once every request of that submission succeeded; a failed request is logged at debug and
// left to the on-demand path.
//
// Thread-safety: MissingChunks is a plain value; SubmitMissing may run on any thread. Lifetime:
// the reader and the pool must outlive the submitted tasks (destroy the pool first).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/digest.h"
#include "fusefs/chunk_reader.h"
#include "fusefs/fetch_pool.h"
#include "fusefs/merged_view.h"

namespace hoist {

struct MissingChunks {
  std::map<Digest, std::vector<Chunk>> by_layer;  // layer digest -> chunks not in the cache
  uint64_t bytes = 0;                             // their blob bytes
  uint64_t files = 0;                             // files with at least one of them
};

// Adds the chunks of `file` that are not in the cache to `out`. Returns false (adding nothing)
// when the file is larger than `max_file_bytes`.
bool AddMissingChunks(const ChunkReader& reader, const FileRef& file, uint64_t max_file_bytes,
                      MissingChunks* out);

// Submits `missing` to `pool` (see above). Returns the number of range requests submitted.
uint64_t SubmitMissingChunks(ChunkReader* reader, FetchPool* pool, MissingChunks missing,
                             uint64_t max_request_bytes, const std::string& prefix,
                             const std::string& what);

}  // namespace hoist
