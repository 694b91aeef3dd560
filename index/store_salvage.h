// ReadDamagedStore: copies the records of a few tables out of a damaged LMDB data file, in a
// child process, so that liblmdb crashing, faulting or looping on a damaged page costs only that
// child. Used by Store::Open after it set a damaged data.mdb aside, to bring back what cannot be
// refetched by itself (image references, manifests and configs) and what is slow to rebuild
// (layer indexes). The caller verifies every record before it trusts it (blobs against their
// digest, layer indexes against their checksum and digest, references against a recovered
// manifest): the bytes returned here are untrusted.
//
// The child opens the file read-only without a lock file (MDB_NOSUBDIR | MDB_RDONLY |
// MDB_NOLOCK: the file is no longer anyone's store), walks the named tables with a cursor and
// streams length-prefixed records to a pipe. The parent stops at `deadline` or at `max_bytes`
// (killing the child) and keeps the whole records received before the child died or was
// stopped.
//
// Thread-safety: may be called from any thread; it forks (the child only runs liblmdb and
// write(2), then _exit). Errors: the errno of pipe/fork; a child that fails is not an error (the
// result is then what it sent, often nothing).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "index/lmdb_env.h"

namespace hoist {

struct SalvagedRecord {
  Table table;
  std::string key;
  std::string value;
};

struct SalvageLimits {
  std::chrono::milliseconds deadline{5000};
  uint64_t max_bytes = 512ull << 20;  // all records together
  uint64_t max_value = 64ull << 20;   // a larger value is skipped
};

[[nodiscard]] Result<std::vector<SalvagedRecord>> ReadDamagedStore(const std::string& data_file,
                                                                   const std::vector<Table>& tables,
                                                                   const SalvageLimits& limits);

}  // namespace hoist
